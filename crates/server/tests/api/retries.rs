//! Bulk retry of a webhook's failed deliveries, and per-webhook statistics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Answer, Backend, Receiver, TestServer};
use crate::{WAIT, hook, on_both};

on_both!(
    bulk_retry_resends_exactly_the_failed_ones,
    stats_count_outcomes_and_durations
);

/// A webhook that gives up after one attempt, so a failure is final at once.
fn one_shot(url: &str) -> Value {
    let mut spec = hook(url);
    spec["retry"] = json!({"schedule": [], "jitter": 0.0});
    spec
}

async fn bulk_retry_resends_exactly_the_failed_ones(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    // Patients named "fail…" get a 500 until the endpoint is fixed.
    let fixed = Arc::new(AtomicBool::new(false));
    let f = fixed.clone();
    rx.answer(move |r, _| {
        let name = r.json()["text"].as_str().unwrap_or("").to_string();
        if name.starts_with("fail") && !f.load(Ordering::SeqCst) {
            Answer::status(500)
        } else {
            Answer::ok()
        }
    });
    let created = server.create_webhook(one_shot(&rx.url("/h"))).await;
    let id = created["id"].as_str().unwrap().to_string();
    let mut other = one_shot(&rx.url("/other"));
    other["events"] = json!(["kc_patient_add"]);
    other["body"] = "{\"text\": \"{{patient_name}}\"}".into();
    server.create_webhook(other).await;

    let mut failed = Vec::new();
    let mut ok = Vec::new();
    for name in ["fail-1", "ok-1", "fail-2", "ok-2", "fail-3"] {
        let pushed = server
            .push("kc_appointment_book", json!({"patient_name": name}))
            .await;
        let d = pushed["deliveries"][0].as_str().unwrap().to_string();
        if name.starts_with("fail") {
            failed.push(d)
        } else {
            ok.push(d)
        }
    }
    // A failure of the other webhook is not this one's to retry.
    rx.answer({
        let f = fixed.clone();
        move |r, _| {
            if r.path == "/other" && !f.load(Ordering::SeqCst) {
                return Answer::status(500);
            }
            let name = r.json()["text"].as_str().unwrap_or("").to_string();
            if name.starts_with("fail") && !f.load(Ordering::SeqCst) {
                Answer::status(500)
            } else {
                Answer::ok()
            }
        }
    });
    let other_pushed = server.push("kc_patient_add", json!({})).await;
    let other_delivery = other_pushed["deliveries"][0].as_str().unwrap().to_string();
    for d in failed.iter().chain(std::iter::once(&other_delivery)) {
        server
            .wait_delivery(d, WAIT, |d| d["status"] == "failed")
            .await;
    }
    for d in &ok {
        server
            .wait_delivery(d, WAIT, |d| d["status"] == "succeeded")
            .await;
    }
    let before = rx.count();
    assert_eq!(before, 6);

    fixed.store(true, Ordering::SeqCst);
    let (s, r) = server
        .post(
            &format!("/api/v1/webhooks/{id}/retry-failed"),
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let mut retried: Vec<String> = r["retried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    retried.sort();
    failed.sort();
    assert_eq!(
        retried, failed,
        "exactly the failed deliveries of this webhook"
    );
    assert_eq!(r["count"], 3);
    for d in &failed {
        server
            .wait_delivery(d, WAIT, |d| d["status"] == "succeeded")
            .await;
    }
    let got = rx.wait_for(before + 3, WAIT).await;
    // The log is final: this webhook's five all succeeded, the other's failure was left
    // alone after its one attempt.
    let log = server.settled(WAIT).await;
    assert_eq!(log.len(), 6, "{log:#?}");
    for d in &log {
        let (status, attempts) = if d["id"] == other_delivery.as_str() {
            ("failed", 1)
        } else if failed.iter().any(|f| d["id"] == f.as_str()) {
            ("succeeded", 2)
        } else {
            ("succeeded", 1)
        };
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_i64()),
            (Some(status), Some(attempts)),
            "{d:#}"
        );
    }
    assert_eq!(rx.count(), before + 3, "nothing else was sent again");
    let resent: Vec<String> = got[before..]
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert!(resent.iter().all(|t| t.starts_with("fail-")), "{resent:?}");

    // Nothing failed now; an empty range; a range in the future.
    let (_, r) = server
        .post(&format!("/api/v1/webhooks/{id}/retry-failed"), json!({}))
        .await;
    assert_eq!(r["count"], 0);
    // Bad input.
    let (s, e) = server
        .post(
            &format!("/api/v1/webhooks/{id}/retry-failed"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("since")),
        "{e}"
    );
    let (s, e) = server
        .post(
            &format!("/api/v1/webhooks/{id}/retry-failed"),
            json!({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("until")),
        "{e}"
    );
    let (s, _) = server
        .post(
            &format!("/api/v1/webhooks/{}/retry-failed", uuid::Uuid::now_v7()),
            json!({}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = server
        .post("/api/v1/webhooks/not-an-id/retry-failed", json!({}))
        .await;
    assert_eq!(s, 400);
    server.stop().await;
}

async fn stats_count_outcomes_and_durations(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|r, _| {
        if r.json()["text"].as_str().unwrap_or("").starts_with("bad") {
            Answer::status(503).body("down")
        } else {
            Answer::ok().delay(Duration::from_millis(30))
        }
    });
    let created = server.create_webhook(one_shot(&rx.url("/s"))).await;
    let id = created["id"].as_str().unwrap();
    let (s, st) = server.get(&format!("/api/v1/webhooks/{id}/stats")).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["windows"][0]["success_rate"], Value::Null);
    assert_eq!(st["last"], Value::Null);

    let mut ids = Vec::new();
    for name in ["a", "b", "c", "bad"] {
        let p = server
            .push("kc_appointment_book", json!({"patient_name": name}))
            .await;
        ids.push(p["deliveries"][0].as_str().unwrap().to_string());
    }
    for d in &ids {
        server
            .wait_delivery(d, WAIT, |d| d["status"] != "pending")
            .await;
    }
    // A test send is left out of the statistics.
    server
        .post(&format!("/api/v1/webhooks/{id}/test"), json!({}))
        .await;

    let (_, st) = server.get(&format!("/api/v1/webhooks/{id}/stats")).await;
    assert_eq!(st["webhook_id"], id);
    let windows = st["windows"].as_array().unwrap();
    assert_eq!(
        windows
            .iter()
            .map(|w| w["window"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["1h", "24h", "7d"]
    );
    for w in windows {
        assert_eq!(
            w["deliveries"],
            json!({"pending": 0, "succeeded": 3, "failed": 1, "superseded": 0}),
            "{w}"
        );
        assert_eq!(
            w["attempts"],
            json!({"succeeded": 3, "failed": 1, "retry": 0, "gave_up": 0}),
            "{w}"
        );
        assert_eq!(w["success_rate"], 0.75);
        let (p50, p95) = (w["p50_ms"].as_i64().unwrap(), w["p95_ms"].as_i64().unwrap());
        assert!(p50 >= 25 && p95 >= p50, "{w}");
    }
    let last = &st["last"];
    assert_eq!(last["delivery_id"], ids[3].as_str());
    assert_eq!(last["status"], "failed");
    assert_eq!(last["http_status"], 503);
    assert!(last["error"].as_str().unwrap().contains("503"), "{last}");

    let (s, _) = server
        .get(&format!("/api/v1/webhooks/{}/stats", uuid::Uuid::now_v7()))
        .await;
    assert_eq!(s, 404);
    server.stop().await;
}
