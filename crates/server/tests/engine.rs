//! The engine cannot be stopped by one webhook: scheduling figures out of
//! bounds are refused at save, a panicking dispatcher is restarted (and
//! `/healthz` says so), one that keeps panicking ends `app::run` with an
//! error, and a delivery the retry policy gave up on is counted `gave_up`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use carehook::app;
use carehook::dispatcher::Fault;
use common::{Answer, Backend, Receiver, TestDatabase, TestServer, samples};
use serde_json::{Value, json};

on_both!(
    scheduling_figures_out_of_bounds_are_refused_and_delivery_goes_on,
    a_dispatcher_panic_is_survived_and_reported,
    a_delivery_given_up_is_counted_gave_up,
);

const WAIT: Duration = Duration::from_secs(15);

fn hook(url: &str) -> Value {
    json!({
        "name": "engine test",
        "events": ["kc_appointment_book"],
        "url": url,
        "body": "{\"text\": \"{{patient_name}}\"}",
    })
}

async fn healthz(base: &str) -> (u16, Value) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls `/healthz` until `pred` holds; panics with the last answer after `WAIT`.
async fn wait_health(base: &str, pred: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = healthz(base).await;
        if pred(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "healthz never matched: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scheduling_figures_out_of_bounds_are_refused_and_delivery_goes_on(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    // The call that used to stop every delivery on the node, and its kin.
    for (field, value) in [
        ("rate_limit", json!(1e-300)),
        ("rate_limit", json!(5e-324)),
        ("rate_limit", json!(1e308)),
        ("rate_limit", json!(0)),
        ("max_in_flight", json!(0)),
        ("max_in_flight", json!(u32::MAX)),
        ("timeout_ms", json!(u64::MAX)),
    ] {
        let mut spec = hook(&rx.url("/x"));
        spec[field] = value.clone();
        let (status, body) = server.post("/api/v1/webhooks", spec).await;
        assert_eq!(status, 422, "{field} = {value}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let mut spec = hook(&rx.url("/x"));
    spec["retry"] = json!({"max_age": "100000d"});
    let (status, body) = server.post("/api/v1/webhooks", spec).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "retry.max_age", "{body}");
    let (_, list) = server.get("/api/v1/webhooks").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");

    // The slowest rate accepted, and an ordinary webhook: both deliver.
    let mut slow = hook(&rx.url("/slow"));
    slow["rate_limit"] = json!(0.001);
    server.create_webhook(slow).await;
    server.create_webhook(hook(&rx.url("/ok"))).await;
    server
        .push("kc_appointment_book", json!({"patient_name": "a"}))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/ok", "/slow"]);
    let health = wait_health(&server.base, |s, _| s == 200).await;
    assert_eq!(health["tasks"]["dispatcher"], "running", "{health}");
    assert_eq!(health.get("panics"), None, "{health}");
    server.stop().await;
}

async fn a_dispatcher_panic_is_survived_and_reported(backend: Backend) {
    // The dispatcher panics once, on the delivery for patient "boom".
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    let fault = Fault::panic_when(move |c| {
        c.vars.get("patient_name").map(String::as_str) == Some("boom")
            && !flag.swap(true, Ordering::SeqCst)
    });
    let Some(server) = TestServer::start_with(backend, |s| {
        s.dispatcher.as_mut().unwrap().fault = fault;
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    server.create_webhook(hook(&rx.url("/a"))).await;
    let boom = server
        .push("kc_appointment_book", json!({"patient_name": "boom"}))
        .await;
    let boom_id = boom["deliveries"][0].as_str().unwrap().to_string();

    // The restarted dispatcher hands the held delivery back at once (its
    // lease is 150 s), so it arrives well within the wait.
    let d = server
        .wait_delivery(&boom_id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");
    assert!(fired.load(Ordering::SeqCst));
    let health = wait_health(&server.base, |s, h| {
        s == 200 && h["panics"]["dispatcher"] == 1
    })
    .await;
    assert_eq!(health["status"], "ok");
    for task in [
        "dispatcher",
        "recorder",
        "auto_disable",
        "registry_refresh",
        "intake_writer",
    ] {
        assert_eq!(health["tasks"][task], "running", "{task}: {health}");
    }

    // Deliveries go on after the restart.
    for name in ["after-1", "after-2"] {
        server
            .push("kc_appointment_book", json!({"patient_name": name}))
            .await;
    }
    let got = rx.wait_for(3, WAIT).await;
    let mut texts: Vec<String> = got
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    texts.sort();
    assert_eq!(texts, ["after-1", "after-2", "boom"]);
    server.stop().await;
}

/// A dispatcher that panics on every delivery: `/healthz` answers 503 while
/// it restarts, and after five panics `app::run` ends with an error (the
/// process exits non-zero) instead of serving with a dead engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_that_keeps_panicking_ends_the_process() {
    let db = TestDatabase::new(Backend::Sqlite).await.unwrap();
    let store = db.connect().await;
    let mut settings = common::test_settings();
    settings.dispatcher.as_mut().unwrap().fault = Fault::panic_when(|_| true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let run = tokio::spawn(app::run(
        settings,
        store.clone(),
        listener,
        std::future::pending(),
    ));
    // A second carehook on the same store, without a dispatcher, takes the
    // webhook and the event.
    let mut api_only = common::test_settings();
    api_only.dispatcher = None;
    let server = TestServer::start_on(store, None, api_only).await;
    let rx = Receiver::start().await;
    server.create_webhook(hook(&rx.url("/a"))).await;
    server
        .push("kc_appointment_book", json!({"patient_name": "x"}))
        .await;
    server.stop().await;

    let health = wait_health(&base, |s, h| {
        s == 503 && h["tasks"]["dispatcher"] == "restarting"
    })
    .await;
    assert_eq!(health["status"], "degraded", "{health}");
    let ended = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("app::run kept going with a dispatcher that keeps panicking")
        .unwrap();
    let err = ended.expect_err("app::run must end with an error");
    assert!(
        err.to_string().contains("dispatcher task panicked 5 times"),
        "{err:#}"
    );
    db.cleanup().await;
}

async fn a_delivery_given_up_is_counted_gave_up(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, _| Answer::status(500));
    let mut spec = hook(&rx.url("/down"));
    spec["retry"] = json!({"schedule": ["0s"], "max_attempts": 2, "jitter": 0.0});
    server.create_webhook(spec).await;
    let pushed = server
        .push("kc_appointment_book", json!({"patient_name": "a"}))
        .await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "failed")
        .await;
    // The log is unchanged: a retry, then the failed last attempt.
    let outcomes: Vec<&str> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "failed"], "{d}");

    let counted = |m: &HashMap<String, f64>, o: &str| {
        m.get(&format!(
            "carehook_delivery_attempts_total{{outcome=\"{o}\"}}"
        ))
        .copied()
    };
    let deadline = Instant::now() + WAIT;
    let m = loop {
        let text = server.metrics_text().await;
        let m = samples(&text);
        // Counted when recorded: the delivery's status above may be read
        // just before the counter is bumped in the same batch.
        if counted(&m, "retry") == Some(1.0) && counted(&m, "gave_up") == Some(1.0) {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed the give-up:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(counted(&m, "failed"), Some(0.0));
    assert_eq!(counted(&m, "succeeded"), Some(0.0));
    server.stop().await;
}
