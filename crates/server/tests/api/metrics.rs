//! `GET /metrics` after a small load shows every family with real values.

use std::collections::HashMap;

use serde_json::json;

use crate::common::{Answer, Backend, Receiver, TestServer, samples};
use crate::{WAIT, hook, on_both};

on_both!(metrics_show_the_load);

async fn metrics_show_the_load(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|r, _| {
        let a = if r.path == "/bad" {
            Answer::status(500)
        } else {
            Answer::ok()
        };
        a.delay(std::time::Duration::from_millis(5))
    });
    server.create_webhook(hook(&rx.url("/good"))).await;
    let mut bad = hook(&rx.url("/bad"));
    bad["retry"] = json!({"schedule": ["1h"], "jitter": 0.0});
    let bad = server.create_webhook(bad).await;
    let bad_id = bad["id"].as_str().unwrap();
    for _ in 0..5 {
        server.push("kc_appointment_book", json!({})).await;
    }
    rx.wait_for(10, WAIT).await;

    // No token needed; the families are there with real values.
    let mut m = HashMap::new();
    let mut text = String::new();
    for _ in 0..100 {
        text = server.metrics_text().await;
        m = samples(&text);
        if m.get("carehook_delivery_attempts_total{outcome=\"retry\"}") == Some(&5.0)
            && m.get("carehook_delivery_attempts_total{outcome=\"succeeded\"}") == Some(&5.0)
            // Counted before written: wait for the store to catch up.
            && m.get("carehook_queue_depth{state=\"scheduled\"}") == Some(&5.0)
            // The alert the first failure raises is recorded after that failure.
            && m.get("carehook_events_recorded_total") == Some(&6.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
    // The five pushed, and the `carehook_webhook_failing` the bad webhook's first failure raised.
    assert_eq!(get("carehook_events_recorded_total"), 6.0);
    assert_eq!(get("carehook_deliveries_created_total"), 10.0);
    assert_eq!(
        get("carehook_delivery_attempts_total{outcome=\"succeeded\"}"),
        5.0
    );
    assert_eq!(
        get("carehook_delivery_attempts_total{outcome=\"retry\"}"),
        5.0
    );
    assert_eq!(get("carehook_attempt_duration_seconds_count"), 10.0);
    assert_eq!(
        get("carehook_attempt_duration_seconds_bucket{le=\"+Inf\"}"),
        10.0
    );
    assert!(get("carehook_attempt_duration_seconds_sum") > 0.0);
    assert_eq!(
        get(&format!(
            "carehook_webhook_failures_total{{webhook_id=\"{bad_id}\"}}"
        )),
        5.0
    );
    // The failing webhook's five deliveries wait an hour for their retry.
    assert_eq!(get("carehook_queue_depth{state=\"scheduled\"}"), 5.0);
    assert_eq!(get("carehook_queue_depth{state=\"due\"}"), 0.0);
    assert!(text.contains("# TYPE carehook_attempt_duration_seconds histogram"));
    server.stop().await;
}

#[tokio::test]
async fn metrics_can_have_their_own_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = TestServer::start_with(Backend::Sqlite, |s| s.metrics_listen = Some(addr))
        .await
        .unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = server
            .http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().contains("carehook_queue_depth"));
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ok, "the metrics address never answered");
    let r = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "not on the API's address then");
    server.stop().await;
}
