//! The delivery engine end to end, on SQLite and PostgreSQL: the real server,
//! the real dispatcher, a real receiver on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Answer, Backend, Receiver, TestServer};
use serde_json::{Value, json};

on_both!(
    delivers_a_signed_request_an_independent_verifier_accepts,
    retries_on_a_short_schedule_until_success,
    retry_after_is_honoured,
    gone_disables_the_webhook,
    a_timeout_is_logged_and_retried,
    a_redirect_counts_as_a_failure,
    max_age_ends_a_delivery,
    the_concurrency_cap_holds,
    a_hanging_endpoint_does_not_delay_a_healthy_one,
    the_ssrf_guard_refuses_loopback_unless_allowed,
    idempotency_keys_return_the_first_event,
);

fn slack_like(url: &str) -> Value {
    json!({
        "name": "Slack: new appointment",
        "events": ["kc_appointment_book"],
        "url": url,
        "body": "{\"text\": \"New appointment: {{patient_name}} with {{doctor_name}} on {{appointment_date}}\"}"
    })
}

fn fast_retry(mut spec: Value, schedule: &[&str]) -> Value {
    spec["retry"] = json!({"schedule": schedule, "jitter": 0.0});
    spec
}

const WAIT: Duration = Duration::from_secs(15);

async fn delivers_a_signed_request_an_independent_verifier_accepts(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let hook = server
        .create_webhook(slack_like(&rx.url("/services/T1/B2/x")))
        .await;
    let secret = hook["signing_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let pushed = server
        .push("kc_appointment_book", json!({"patient_name": "Zoë \"Z\" O'Brien 🏥", "doctor_name": "Dr. Who", "appointment_date": "2026-12-01"}))
        .await;
    let got = rx.wait_for(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/services/T1/B2/x");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json()["text"],
        "New appointment: Zoë \"Z\" O'Brien 🏥 with Dr. Who on 2026-12-01"
    );

    // The standardwebhooks crate, not our code, checks the signature.
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    let mut headers = axum::http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.headers.get(name).unwrap().clone());
    }
    verifier
        .verify(&r.body, &headers)
        .expect("the signature verifies");
    let delivery_id = pushed["deliveries"][0].as_str().unwrap();
    assert_eq!(r.header("webhook-id"), Some(delivery_id));

    let d = server
        .wait_delivery(delivery_id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(d["attempts"][0]["response"]["status"], 200);
    assert_eq!(
        d["attempts"][0]["request"]["url"],
        rx.url("/services/T1/B2/x")
    );
    server.stop().await;
}

async fn retries_on_a_short_schedule_until_success(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, i| {
        if i < 2 {
            Answer::status(500).body("try later")
        } else {
            Answer::ok()
        }
    });
    server
        .create_webhook(fast_retry(
            slack_like(&rx.url("/hook")),
            &["100ms", "100ms", "100ms"],
        ))
        .await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let got = rx.wait_for(3, WAIT).await;
    // Every retry carries the same webhook-id.
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert!(ids.iter().all(|i| i == &ids[0]));
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["outcome"], "retry");
    assert_eq!(attempts[0]["response"]["status"], 500);
    assert_eq!(attempts[0]["response"]["body"], "try later");
    assert_eq!(attempts[2]["outcome"], "succeeded");
    server.stop().await;
}

async fn retry_after_is_honoured(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, i| {
        if i == 0 {
            Answer::status(429).header("Retry-After", "2")
        } else {
            Answer::ok()
        }
    });
    server
        .create_webhook(fast_retry(slack_like(&rx.url("/hook")), &["50ms"]))
        .await;
    server.push("kc_appointment_book", json!({})).await;
    let got = rx.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, before Retry-After's 2 s"
    );
    server.stop().await;
}

async fn gone_disables_the_webhook(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, _| Answer::status(410));
    let hook = server.create_webhook(slack_like(&rx.url("/hook"))).await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "failed")
        .await;
    assert!(d["last_error"].as_str().unwrap().contains("410"), "{d}");
    let path = format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap());
    let w = wait_disabled(&server, &path).await;
    assert!(
        w["disabled_reason"].as_str().unwrap().contains("410"),
        "{w}"
    );
    // A disabled webhook gets no new deliveries.
    let again = server.push("kc_appointment_book", json!({})).await;
    assert_eq!(again["deliveries"].as_array().unwrap().len(), 0);
    server.stop().await;
}

async fn a_timeout_is_logged_and_retried(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, i| {
        if i == 0 {
            Answer::ok().delay(Duration::from_secs(3))
        } else {
            Answer::ok()
        }
    });
    let mut spec = fast_retry(slack_like(&rx.url("/hook")), &["100ms"]);
    spec["timeout_ms"] = json!(300);
    server.create_webhook(spec).await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let a = d["attempts"].as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert!(
        a[0]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        a[0]
    );
    assert!(a[0]["duration_ms"].as_i64().unwrap() < 2000);
    server.stop().await;
}

async fn a_redirect_counts_as_a_failure(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let target = rx.url("/elsewhere");
    rx.answer(move |r, _| {
        if r.path == "/hook" {
            Answer::status(301).header("Location", &target)
        } else {
            Answer::ok()
        }
    });
    let mut spec = slack_like(&rx.url("/hook"));
    spec["retry"] = json!({"max_attempts": 1});
    server.create_webhook(spec).await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "failed")
        .await;
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{d}"
    );
    assert!(
        rx.received().iter().all(|r| r.path == "/hook"),
        "the redirect was followed"
    );
    server.stop().await;
}

async fn max_age_ends_a_delivery(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, _| Answer::status(503));
    let mut spec = slack_like(&rx.url("/hook"));
    spec["retry"] = json!({"schedule": ["2s"], "max_age": "1s", "jitter": 0.0, "max_attempts": 5});
    server.create_webhook(spec).await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "failed")
        .await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1);
    assert!(d["last_error"].as_str().unwrap().contains("max"), "{d}");
    server.stop().await;
}

async fn the_concurrency_cap_holds(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    // The receiver tracks how many requests overlap: each one holds 200 ms.
    let (n, p) = (now.clone(), peak.clone());
    rx.answer(move |_, _| {
        let c = n.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(c, Ordering::SeqCst);
        let n = n.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(190)).await;
            n.fetch_sub(1, Ordering::SeqCst);
        });
        Answer::ok().delay(Duration::from_millis(200))
    });
    let mut spec = slack_like(&rx.url("/hook"));
    spec["max_in_flight"] = json!(2);
    server.create_webhook(spec).await;
    for _ in 0..10 {
        server.push("kc_appointment_book", json!({})).await;
    }
    rx.wait_for(10, WAIT).await;
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 2, "{peak} requests overlapped with max_in_flight 2");
    assert_eq!(
        peak, 2,
        "the cap was never reached: is the dispatcher sending one at a time?"
    );
    server.stop().await;
}

async fn a_hanging_endpoint_does_not_delay_a_healthy_one(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let slow = Receiver::start().await;
    slow.answer(|_, _| Answer::ok().delay(Duration::from_secs(20)));
    let fast = Receiver::start().await;
    let mut hanging = slack_like(&slow.url("/hang"));
    hanging["timeout_ms"] = json!(10_000);
    hanging["max_in_flight"] = json!(4);
    server.create_webhook(hanging).await;
    let mut healthy = slack_like(&fast.url("/fast"));
    healthy["name"] = json!("healthy");
    server.create_webhook(healthy).await;
    let started = Instant::now();
    for _ in 0..40 {
        server.push("kc_appointment_book", json!({})).await;
    }
    fast.wait_for(40, Duration::from_secs(8)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "the healthy endpoint waited {took:?}"
    );
    assert!(
        slow.count() <= 4,
        "the hanging endpoint had {} requests open, over its cap of 4",
        slow.count()
    );
    // Stopping releases the deliveries stuck behind the hanging endpoint.
    server.stop().await;
}

async fn the_ssrf_guard_refuses_loopback_unless_allowed(backend: Backend) {
    let Some(server) = TestServer::start_with(backend, |s| {
        s.policy = carehook::outbound::DestinationPolicy::default();
    })
    .await
    else {
        return;
    };
    let rx = Receiver::start().await;
    // By name and by address: both resolve to loopback.
    let by_name = format!("http://localhost:{}/hook", rx.addr.port());
    server.create_webhook(slack_like(&by_name)).await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "failed")
        .await;
    let err = d["last_error"].as_str().unwrap();
    assert!(
        err.contains("destination refused") && err.contains("loopback"),
        "{err}"
    );
    assert!(err.contains("CAREHOOK_ALLOWED_DESTINATIONS"), "{err}");
    assert_eq!(rx.count(), 0);
    server.stop().await;
}

async fn idempotency_keys_return_the_first_event(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    server.create_webhook(slack_like(&rx.url("/hook"))).await;
    let body = json!({"event": "kc_appointment_book", "data": {}, "idempotency_key": "booking-42"});
    let (s1, first) = server.post("/api/v1/events", body.clone()).await;
    let (s2, second) = server.post("/api/v1/events", body).await;
    assert_eq!((s1, s2), (202, 200));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["deliveries"], second["deliveries"]);
    assert_eq!(second["duplicate"], true);
    rx.wait_for(1, WAIT).await;
    let log = server.settled(WAIT).await;
    assert_eq!(log.len(), 1, "one delivery for both calls: {log:#?}");
    assert_eq!(log[0]["id"], first["deliveries"][0]);
    assert_eq!(rx.count(), 1);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_changes_nothing() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let (s, e) = server
        .post(
            "/api/v1/events",
            json!({"event": "kc_apointment_book", "data": {}}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(e["error"]["field"], "event");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kc_appointment_book")
    );
    let (s, e) = server
        .post(
            "/api/v1/events",
            json!({"event": "kc_patient_add", "data": {"patient_nmae": "x"}}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("data.patient_nmae"))
    );
    let (s, e) = server
        .post("/api/v1/webhooks", json!({"name": "x", "events": ["kc_patient_add"], "url": "https://x.org", "body": "{\"a\": \"{{patient_nam}}\"}"}))
        .await;
    assert_eq!(s, 422);
    assert_eq!(
        (
            e["error"]["field"].as_str(),
            e["error"]["line"].as_u64(),
            e["error"]["column"].as_u64()
        ),
        (Some("body"), Some(1), Some(8))
    );
    let (s, e) = server
        .post(
            "/api/v1/webhooks",
            json!({"name": "x", "events": ["*"], "url": "https://x.org", "colour": "red"}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("colour"),
        "{e}"
    );
    let resp = server
        .http
        .post(format!("{}/api/v1/webhooks", server.base))
        .bearer_auth(common::TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (_, list) = server.get("/api/v1/webhooks").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "a refused webhook was stored"
    );
    // No token, wrong token.
    let resp = server
        .http
        .get(format!("{}/api/v1/webhooks", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = server
        .http
        .get(format!("{}/api/v1/webhooks", server.base))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = server
        .http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

on_both!(
    a_rate_limit_paces_requests,
    a_huge_answer_is_cut_for_the_log,
    a_reset_connection_is_retried,
    a_webhook_failing_for_the_whole_window_is_disabled
);

async fn a_huge_answer_is_cut_for_the_log(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let big = "x".repeat(10 * 1024 * 1024);
    rx.answer(move |_, _| Answer::ok().body(&big));
    server.create_webhook(slack_like(&rx.url("/hook"))).await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let body = d["attempts"][0]["response"]["body"].as_str().unwrap();
    assert_eq!(body.len(), 64 * 1024, "the log keeps the first 64 KiB");
    server.stop().await;
}

/// A receiver that accepts connections and closes them at once.
async fn resetting_endpoint() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            // Zero linger: closing sends RST, a reset rather than a clean close.
            #[allow(deprecated)]
            let _ = socket.set_linger(Some(Duration::ZERO));
            drop(socket);
        }
    });
    addr
}

async fn a_reset_connection_is_retried(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let addr = resetting_endpoint().await;
    server
        .create_webhook(fast_retry(
            slack_like(&format!("http://{addr}/hook")),
            &["100ms", "100ms"],
        ))
        .await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let id = pushed["deliveries"][0].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "failed")
        .await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{d}");
    assert!(
        attempts
            .iter()
            .all(|a| a["response"].is_null() && a["error"].is_string()),
        "{d}"
    );
    assert_eq!(attempts[0]["outcome"], "retry");
    server.stop().await;
}

async fn a_webhook_failing_for_the_whole_window_is_disabled(backend: Backend) {
    let Some(server) =
        TestServer::start_with(backend, |s| s.auto_disable_after = Duration::from_secs(2)).await
    else {
        return;
    };
    let rx = Receiver::start().await;
    rx.answer(|_, _| Answer::status(500));
    let mut spec = fast_retry(slack_like(&rx.url("/hook")), &["300ms"]);
    spec["retry"]["max_attempts"] = json!(50);
    let hook = server.create_webhook(spec).await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let path = format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap());
    let w = wait_disabled(&server, &path).await;
    assert!(
        w["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("every delivery failed"),
        "{w}"
    );
    // Not too early: the first failure is at least the window (2 s) before the disable, as
    // the log's own times say (a count of failures would depend on the machine's speed).
    let id = pushed["deliveries"][0].as_str().unwrap();
    let (_, d) = server.get(&format!("/api/v1/deliveries/{id}")).await;
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let first_failure = at(&d["attempts"][0]["started_at"]);
    let disabled = at(&w["updated_at"]);
    assert!(
        disabled - first_failure >= chrono::TimeDelta::seconds(2),
        "disabled {} ms after the first failure",
        (disabled - first_failure).num_milliseconds()
    );
    assert!(rx.count() >= 2, "it failed more than once before");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    rx.answer(|_, _| Answer::ok().delay(Duration::from_millis(800)));
    server.create_webhook(slack_like(&rx.url("/hook"))).await;
    let pushed = server.push("kc_appointment_book", json!({})).await;
    let id: carehook_store::DeliveryId = pushed["deliveries"][0].as_str().unwrap().parse().unwrap();
    rx.wait_for(1, WAIT).await;
    let store = server.store.clone();
    server.stop().await; // returns once the dispatcher has drained
    let (d, attempts) = store.get_delivery(id).await.unwrap().unwrap();
    assert_eq!(d.status, carehook_store::DeliveryStatus::Succeeded);
    assert_eq!(attempts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_made_from_a_preset_and_missing_values_are_named() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    let (s, e) = server
        .post(
            "/api/v1/webhooks",
            json!({"preset": "twilio_sms_confirmation"}),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let missing: Vec<_> = e["error"]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        [
            "values.account_sid",
            "values.from_number",
            "auth.username",
            "auth.password"
        ]
    );
    let (s, e) = server
        .post("/api/v1/webhooks", json!({"preset": "slak"}))
        .await;
    assert_eq!((s, e["error"]["field"].as_str()), (422, Some("preset")));

    let hook = server
        .create_webhook(json!({
            "preset": "twilio_sms_confirmation",
            "url": rx.url("/2010-04-01/Accounts/AC42/Messages.json"),
            "values": {"from_number": "+15550001111"},
            "auth": {"username": "AC42", "password": "s3cret"},
        }))
        .await;
    assert_eq!(hook["name"], "Twilio: SMS appointment confirmation");
    assert_eq!(hook["auth"]["password"], "********");
    server
        .push(
            "kc_appointment_book",
            json!({"patient_name": "Zoë O'Brien & Co = 100% +1"}),
        )
        .await;
    let got = rx.wait_for(1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.path, "/2010-04-01/Accounts/AC42/Messages.json");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.header("authorization"), Some("Basic QUM0MjpzM2NyZXQ="));
    let form = r.form();
    assert_eq!(form[1], ("From".to_string(), "+15550001111".to_string()));
    assert!(
        form[2]
            .1
            .starts_with("Hi Zoë O'Brien & Co = 100% +1, your appointment"),
        "{:?}",
        form[2]
    );
    let (_, list) = server.get("/api/v1/presets").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        17,
        "the guide's 15 and two reminders"
    );
    server.stop().await;
}

async fn a_rate_limit_paces_requests(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let mut spec = slack_like(&rx.url("/hook"));
    spec["rate_limit"] = json!(5.0);
    server.create_webhook(spec).await;
    for _ in 0..10 {
        server.push("kc_appointment_book", json!({})).await;
    }
    let got = rx.wait_for(10, WAIT).await;
    // A burst of 5, then one every 200 ms: the tenth comes at least ~1 s after the first.
    let span = got[9].at - got[0].at;
    assert!(
        span >= Duration::from_millis(900),
        "10 requests at 5/s took only {span:?}"
    );
    server.stop().await;
}

/// Polls a webhook until it is disabled; panics after `WAIT`.
async fn wait_disabled(server: &TestServer, path: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, w) = server.get(path).await;
        if w["enabled"] == false {
            return w;
        }
        assert!(Instant::now() < deadline, "webhook still enabled: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
