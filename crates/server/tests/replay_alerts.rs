//! Issue 16, items 3 and 4, on a real server and real receivers, on SQLite and PostgreSQL:
//! - replay with `only_missing` after a period of 500s sends exactly the missed events, once;
//!   a second identical replay creates nothing; a dry run only counts; replay keeps the
//!   webhook's rate limit;
//! - a 410 disables a webhook and a Slack alert preset tells a person, with no patient value;
//! - alerts do not loop: an alert is never about the webhook that carries it, and alert
//!   deliveries that fail raise no further alerts.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Answer, Backend, Receiver, TestServer, WAIT};
use serde_json::{Value, json};

/// A moment before anything this test records (unix ms, as the API takes it).
fn before_the_test() -> String {
    (chrono::Utc::now().timestamp_millis() - 1000).to_string()
}

fn appointment(patient: &str) -> Value {
    json!({
        "patient_name": patient,
        "doctor_name": "Aisha Patel",
        "appointment_date": "2026-11-26",
    })
}

async fn replay(server: &TestServer, id: &str, body: Value) -> Value {
    let (s, v) = server
        .post(&format!("/api/v1/webhooks/{id}/replay"), body)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// A receiver that answers 200, or 500 while its switch is on.
async fn breakable_receiver() -> (Receiver, Arc<AtomicBool>) {
    let rx = Receiver::start().await;
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    rx.answer(move |_, _| {
        if f.load(Ordering::SeqCst) {
            Answer::status(500)
        } else {
            Answer::ok()
        }
    });
    (rx, failing)
}

/// Pushes `events` (appointment bookings) while the receiver answers 500, waits until each has
/// failed for good, and mends the receiver.
async fn push_while_broken<const N: usize>(
    server: &TestServer,
    failing: &AtomicBool,
    events: [Value; N],
) {
    failing.store(true, Ordering::SeqCst);
    for e in events {
        server.push("kc_appointment_book", e).await;
    }
    let log = server.settled(WAIT).await;
    assert_eq!(log.iter().filter(|d| d["status"] == "failed").count(), N);
    failing.store(false, Ordering::SeqCst);
}

/// The patient names the receiver got, in arrival order.
fn patients(rx: &Receiver) -> Vec<String> {
    rx.received()
        .iter()
        .map(|r| {
            let text = r.json()["text"].as_str().unwrap().to_string();
            text.split(" with ").next().unwrap().to_string()
        })
        .collect()
}

async fn replay_with_only_missing_sends_exactly_the_missed_events_once(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let (rx, failing) = breakable_receiver().await;
    let since = before_the_test();
    let mut spec = common::hook(&rx.url("/crm"));
    spec["retry"] = json!({"max_attempts": 1});
    let w = server.create_webhook(spec).await;
    let id = w["id"].as_str().unwrap();

    for p in ["Ann One", "Ben Two"] {
        server.push("kc_appointment_book", appointment(p)).await;
    }
    server.settled(WAIT).await;
    // The receiver breaks for a while: these three fail for good.
    push_while_broken(
        &server,
        &failing,
        ["Cat Three", "Dan Four", "Eve Five"].map(appointment),
    )
    .await;
    assert_eq!(rx.count(), 5);

    // A dry run counts and creates nothing.
    let dry = replay(&server, id, json!({"since": since, "dry_run": true})).await;
    assert_eq!(
        (dry["created"].as_u64(), dry["scanned"].as_u64()),
        (Some(3), Some(5)),
        "{dry}"
    );
    assert_eq!(dry["skipped_already_delivered"], 2, "{dry}");
    assert!(
        dry["reasons"]["skipped_already_delivered"].is_string(),
        "{dry}"
    );
    assert_eq!(server.settled(WAIT).await.len(), 5);

    let first = replay(&server, id, json!({"since": since, "only_missing": true})).await;
    assert_eq!(first["created"], 3, "{first}");
    assert_eq!(first["delivery_ids"].as_array().unwrap().len(), 3);
    // The same call again at once: each missed event has a pending (or by now succeeded)
    // delivery, so nothing is created twice.
    let again = replay(&server, id, json!({"since": since, "only_missing": true})).await;
    assert_eq!(again["created"], 0, "{again}");
    assert_eq!(
        again["skipped_in_flight"].as_u64().unwrap()
            + again["skipped_already_delivered"].as_u64().unwrap(),
        5,
        "{again}"
    );
    let log = server.settled(WAIT).await;
    assert_eq!(log.len(), 8, "{log:#?}");
    let got = patients(&rx);
    assert_eq!(got.len(), 8, "{got:?}");
    let mut replayed = got[5..].to_vec();
    replayed.sort();
    assert_eq!(replayed, ["Cat Three", "Dan Four", "Eve Five"]);

    // Once they are delivered, a third replay still creates nothing.
    let third = replay(&server, id, json!({"since": since})).await;
    assert_eq!(third["created"], 0, "{third}");
    assert_eq!(third["skipped_already_delivered"], 5, "{third}");
    assert_eq!(server.settled(WAIT).await.len(), 8);
    assert_eq!(rx.count(), 8);

    // Bad input names its field.
    let (s, e) = server
        .post(
            &format!("/api/v1/webhooks/{id}/replay"),
            json!({"since": since, "events": ["kc_patient_add"]}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("events[0]")),
        "{e}"
    );
    let (s, e) = server
        .post(
            &format!("/api/v1/webhooks/{id}/replay"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("since")),
        "{e}"
    );
    server.stop().await;
}

async fn replay_keeps_the_webhooks_rate_limit(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let since = before_the_test();
    let mut spec = common::hook(&rx.url("/slow"));
    spec["rate_limit"] = json!(2);
    spec["enabled"] = json!(false);
    let w = server.create_webhook(spec).await;
    let id = w["id"].as_str().unwrap();
    // Recorded while the webhook was off: it missed them all.
    for i in 0..6 {
        server
            .push("kc_appointment_book", appointment(&format!("P{i} X")))
            .await;
    }
    let (s, e) = server
        .post(
            &format!("/api/v1/webhooks/{id}/replay"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(s, 409, "a disabled webhook is not replayed to: {e}");
    let (s, _) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, 200);
    let r = replay(&server, id, json!({"since": since})).await;
    assert_eq!(r["created"], 6, "{r}");
    let got = rx.wait_for(6, WAIT).await;
    // Two a second after a burst of two: then one every 0.5 s, the sixth 2 s after the first.
    let span = got[5].at.duration_since(got[0].at);
    assert!(span >= Duration::from_millis(1800), "{span:?}");
    for i in 2..6 {
        let gap = got[i].at.duration_since(got[i - 1].at);
        assert!(gap >= Duration::from_millis(400), "request {i}: {gap:?}");
    }
    server.settled(WAIT).await;
    server.stop().await;
}

/// A patient whose values must never reach an alert.
fn zelda() -> Value {
    json!({
        "patient_name": "Zelda Quartermain",
        "patient_email": "zelda.quartermain@example.org",
        "patient_contact_number": "+447700900999",
        "doctor_name": "Aisha Patel",
        "appointment_date": "2026-11-26",
    })
}

async fn a_410_disables_the_webhook_and_a_slack_alert_says_so_without_patient_data(
    backend: Backend,
) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let gone = Receiver::start().await;
    gone.answer(|_, _| Answer::status(410));
    let slack = Receiver::start().await;
    let alerts = server
        .create_webhook(json!({"preset": "slack_carehook_alerts", "url": slack.url("/slack")}))
        .await;
    assert_eq!(alerts["name"], "Slack: carehook alerts");
    let mut spec = common::hook(&gone.url("/crm"));
    spec["name"] = json!("Old CRM");
    spec["body"] = json!(
        "{\"text\": \"{{patient_name}} {{patient_email}} {{patient_contact_number}} with {{doctor_name}}\"}"
    );
    let w = server.create_webhook(spec).await;
    let id = w["id"].as_str().unwrap();
    server.push("kc_appointment_book", zelda()).await;

    let got = slack.wait_for(1, WAIT).await;
    let body = String::from_utf8(got[0].body.to_vec()).unwrap();
    let message = got[0].json();
    assert!(body.contains("carehook_webhook_disabled"), "{body}");
    assert!(
        body.contains("Old CRM") && body.contains("410 Gone"),
        "{body}"
    );
    assert!(body.contains(id), "{body}");
    for value in [
        "Zelda",
        "Quartermain",
        "zelda.quartermain@example.org",
        "+447700900999",
        "7700900999",
    ] {
        assert!(!body.contains(value), "{value} reached the alert: {body}");
    }
    assert!(message["blocks"].is_array(), "{message}");
    let (_, now) = server.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(now["enabled"], false, "{now}");

    // The dashboard's source lists it; a clinic system cannot forge one.
    let (s, list) = server.get("/api/v1/alerts").await;
    assert_eq!(s, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["event"], "carehook_webhook_disabled");
    assert_eq!(items[0]["webhook_id"], id);
    let (s, e) = server
        .post(
            "/api/v1/events",
            json!({"event": "carehook_webhook_disabled", "data": {}}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("event")),
        "{e}"
    );
    server.settled(WAIT).await;
    server.stop().await;
}

fn alert_hook(name: &str, url: &str) -> Value {
    json!({
        "name": name,
        "events": ["carehook_webhook_disabled", "carehook_delivery_failed",
                   "carehook_webhook_failing", "carehook_secret_rotated"],
        "url": url,
        "body": "{\"alert\": \"{{event_name}}\", \"about\": \"{{webhook_id}}\"}",
        "retry": {"max_attempts": 1},
    })
}

/// `(event type, webhook it is about)` of every operational event, oldest first.
async fn alert_log(server: &TestServer) -> Vec<(String, String)> {
    let (s, list) = server.get("/api/v1/alerts?limit=100").await;
    assert_eq!(s, 200, "{list}");
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["event"].as_str().unwrap().to_string(),
                a["webhook_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.reverse();
    out
}

/// Every delivery of the webhook, by its event type.
fn event_types_of(log: &[Value], webhook: &str) -> Vec<String> {
    let mut v: Vec<String> = log
        .iter()
        .filter(|d| d["webhook_id"] == webhook)
        .map(|d| d["event"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

async fn alert_webhooks_never_alert_about_themselves_or_each_other(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let broken = Receiver::start().await;
    broken.answer(|_, _| Answer::status(500));
    let fine = Receiver::start().await;
    let a = server
        .create_webhook(alert_hook("Alerts A", &broken.url("/a")))
        .await;
    let b = server
        .create_webhook(alert_hook("Alerts B", &broken.url("/b")))
        .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let mut spec = common::hook(&broken.url("/c"));
    spec["name"] = json!("Pharmacy");
    spec["retry"] = json!({"max_attempts": 1});
    let c = server.create_webhook(spec).await;
    let c = c["id"].as_str().unwrap();
    let mut spec = common::hook(&fine.url("/d"));
    spec["name"] = json!("Sentinel");
    spec["events"] = json!(["kc_patient_add"]);
    spec["body"] = json!("{\"text\": \"{{patient_name}} with nobody\"}");
    let d = server.create_webhook(spec).await;
    let d = d["id"].as_str().unwrap();

    server.push("kc_appointment_book", zelda()).await;
    // C fails and gives up: two alerts about C go to A and B, which fail too.
    let (s, _) = server
        .post(&format!("/api/v1/webhooks/{a}/rotate-secret"), json!({}))
        .await;
    assert_eq!(s, 200);
    server.settled(WAIT).await;
    // Whatever the recorder does after a failure it has logged, it has done before it logs a
    // later attempt: one more delivery through it, then the log is final.
    server
        .push("kc_patient_add", json!({"patient_name": "Sam Sentinel"}))
        .await;
    fine.wait_for(1, WAIT).await;
    let log = server.settled(WAIT).await;
    let sentinel = log.iter().find(|x| x["webhook_id"] == d).unwrap();
    assert_eq!(sentinel["status"], "succeeded", "{sentinel}");

    let alerts = alert_log(&server).await;
    let mut kinds: Vec<(String, String)> = alerts.clone();
    kinds.sort();
    let mut want = vec![
        ("carehook_delivery_failed".to_string(), c.to_string()),
        ("carehook_secret_rotated".to_string(), a.to_string()),
        ("carehook_webhook_failing".to_string(), c.to_string()),
    ];
    want.sort();
    assert_eq!(kinds, want, "{alerts:?}");
    // The rotation of A's secret went to B only; the two alerts about C to both.
    assert_eq!(
        event_types_of(&log, a),
        ["carehook_delivery_failed", "carehook_webhook_failing"]
    );
    assert_eq!(
        event_types_of(&log, b),
        [
            "carehook_delivery_failed",
            "carehook_secret_rotated",
            "carehook_webhook_failing"
        ]
    );
    for id in [a, b] {
        assert!(
            log.iter()
                .filter(|d| d["webhook_id"] == id)
                .all(|d| d["status"] == "failed"),
            "{log:#?}"
        );
    }
    // The receiver got C's request and the five alert requests: nothing more.
    assert_eq!(broken.count(), 6);
    assert_eq!(event_types_of(&log, d), ["kc_patient_add"]);
    server.stop().await;
}

async fn ui_get(server: &TestServer, http: &reqwest::Client, session: &str, path: &str) -> String {
    let resp = http
        .get(format!("{}{path}", server.base))
        .header("cookie", format!("carehook_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

/// The value of the first `name="csrf"` hidden field of a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn ui_post(
    server: &TestServer,
    http: &reqwest::Client,
    session: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(format!("{}{path}", server.base))
        .header("cookie", format!("carehook_session={session}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter().copied())
                .finish(),
        )
        .send()
        .await
        .unwrap()
}

async fn the_ui_counts_a_replay_before_it_sends_and_the_dashboard_shows_alerts(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let mut spec = common::hook(&rx.url("/later"));
    spec["enabled"] = json!(false);
    let w = server.create_webhook(spec).await;
    let id = w["id"].as_str().unwrap();
    for p in ["Ann One", "Ben Two"] {
        server.push("kc_appointment_book", appointment(p)).await;
    }
    let (s, _) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, 200);
    let (http, session) = server.ui_login().await;
    let edit = ui_get(&server, &http, &session, &format!("/ui/webhooks/{id}")).await;
    assert!(
        edit.contains("Count events to replay"),
        "the webhook page offers a replay"
    );
    let csrf = csrf_of(&edit);
    let since = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let path = format!("/ui/webhooks/{id}/replay");
    let resp = ui_post(
        &server,
        &http,
        &session,
        &path,
        &[("csrf", &csrf), ("since", &since)],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let confirm = resp.text().await.unwrap();
    assert!(
        confirm.contains("<strong>2</strong> of 2 stored events"),
        "{confirm}"
    );
    assert!(confirm.contains("Replay 2 events"), "{confirm}");
    // Counting sent nothing.
    assert!(server.settled(WAIT).await.is_empty());
    let until = confirm
        .split("name=\"until\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let since_ms = confirm
        .split("name=\"since\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let resp = ui_post(
        &server,
        &http,
        &session,
        &path,
        &[
            ("csrf", &csrf),
            ("since", &since_ms),
            ("until", &until),
            ("confirm", "1"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    rx.wait_for(2, WAIT).await;
    assert_eq!(server.settled(WAIT).await.len(), 2);

    // An alert on the dashboard: a secret rotation.
    let (s, _) = server
        .post(&format!("/api/v1/webhooks/{id}/rotate-secret"), json!({}))
        .await;
    assert_eq!(s, 200);
    let dash = ui_get(&server, &http, &session, "/ui").await;
    assert!(dash.contains("Latest alerts"), "{dash}");
    assert!(dash.contains("carehook_secret_rotated"), "{dash}");
    server.stop().await;
}

/// An ordered webhook's replayed deliveries join their keys after what the keys already
/// hold, numbered on from there, and arrive in event order.
async fn replayed_deliveries_of_an_ordered_webhook_keep_their_order(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let (rx, failing) = breakable_receiver().await;
    let since = before_the_test();
    let mut spec = common::hook(&rx.url("/pharmacy"));
    spec["retry"] = json!({"max_attempts": 1});
    spec["ordering_key"] = json!("{{patient_id}}");
    let w = server.create_webhook(spec).await;
    let id = w["id"].as_str().unwrap();
    let with_id = |name: &str| {
        let mut a = appointment(name);
        a["patient_id"] = json!(7);
        a
    };
    server.push("kc_appointment_book", with_id("Ann One")).await;
    server.settled(WAIT).await;
    push_while_broken(
        &server,
        &failing,
        ["Cat Three", "Dan Four", "Eve Five"].map(with_id),
    )
    .await;

    let made = replay(&server, id, json!({"since": since})).await;
    assert_eq!(made["created"], 3, "{made}");
    server.settled(WAIT).await;
    let got = rx.received();
    assert_eq!(
        got.len(),
        4 + 3,
        "one success, three failures, three replays"
    );
    let replayed: Vec<(String, Option<String>, Option<String>)> = got[4..]
        .iter()
        .map(|r| {
            let text = r.json()["text"].as_str().unwrap().to_string();
            (
                text.split(" with ").next().unwrap().to_string(),
                r.header("carehook-ordering-sequence").map(str::to_string),
                r.header("carehook-ordering-key").map(str::to_string),
            )
        })
        .collect();
    let names: Vec<&str> = replayed.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["Cat Three", "Dan Four", "Eve Five"], "event order");
    let seqs: Vec<Option<&str>> = replayed.iter().map(|(_, s, _)| s.as_deref()).collect();
    assert_eq!(
        seqs,
        [Some("5"), Some("6"), Some("7")],
        "numbered after the key's four"
    );
    let key = got[0].header("carehook-ordering-key").map(str::to_string);
    assert!(key.is_some());
    assert!(replayed.iter().all(|(_, _, k)| *k == key), "the same key");
}

on_both!(
    replay_with_only_missing_sends_exactly_the_missed_events_once,
    replayed_deliveries_of_an_ordered_webhook_keep_their_order,
    replay_keeps_the_webhooks_rate_limit,
    a_410_disables_the_webhook_and_a_slack_alert_says_so_without_patient_data,
    alert_webhooks_never_alert_about_themselves_or_each_other,
    the_ui_counts_a_replay_before_it_sends_and_the_dashboard_shows_alerts,
    an_alert_reaches_the_alert_webhooks_of_its_webhooks_clinic_only,
);

/// An alert about a webhook of clinic 2 reaches clinic 2's alert webhooks and those of every
/// clinic, never clinic 1's; and the event names the webhook's clinics.
async fn an_alert_reaches_the_alert_webhooks_of_its_webhooks_clinic_only(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    let mut ids = std::collections::HashMap::new();
    for (name, clinics) in [
        ("Alerts clinic 1", json!(["1"])),
        ("Alerts clinic 2", json!(["2"])),
        ("Alerts every clinic", json!([])),
    ] {
        let mut spec = alert_hook(name, &rx.url("/alerts"));
        spec["clinics"] = clinics;
        spec["body"] =
            json!("{\"alert\": \"{{event_name}}\", \"clinics\": \"{{webhook_clinics}}\"}");
        let w = server.create_webhook(spec).await;
        ids.insert(name, w["id"].as_str().unwrap().to_string());
    }
    let mut subjects = Vec::new();
    for clinic in ["1", "2"] {
        let mut spec = common::hook(&rx.url("/pharmacy"));
        spec["name"] = json!(format!("Pharmacy of clinic {clinic}"));
        spec["clinics"] = json!([clinic]);
        let w = server.create_webhook(spec).await;
        subjects.push(w["id"].as_str().unwrap().to_string());
    }
    for s in &subjects {
        let (status, _) = server
            .post(&format!("/api/v1/webhooks/{s}/rotate-secret"), json!({}))
            .await;
        assert_eq!(status, 200);
    }
    let log = server.settled(WAIT).await;
    // Which alert webhooks got the rotation of each subject, by the event's `webhook_id`.
    let mut got: Vec<(String, String)> = Vec::new();
    for d in log
        .iter()
        .filter(|d| d["event"] == "carehook_secret_rotated")
    {
        let (status, e) = server
            .get(&format!(
                "/api/v1/events/{}",
                d["event_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 200, "{e}");
        let about = e["data"]["webhook_id"].as_str().unwrap().to_string();
        let clinics = e["data"]["webhook_clinics"].as_str().unwrap().to_string();
        let clinic = if about == subjects[0] { "1" } else { "2" };
        assert_eq!(clinics, clinic, "{e}");
        let to = ids
            .iter()
            .find(|(_, id)| **id == d["webhook_id"].as_str().unwrap())
            .map(|(n, _)| n.to_string())
            .unwrap();
        got.push((clinic.to_string(), to));
        assert_eq!(d["status"], "succeeded", "{d}");
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("1".to_string(), "Alerts clinic 1".to_string()),
            ("1".to_string(), "Alerts every clinic".to_string()),
            ("2".to_string(), "Alerts clinic 2".to_string()),
            ("2".to_string(), "Alerts every clinic".to_string()),
        ]
    );
    let bodies: Vec<Value> = rx
        .received()
        .iter()
        .filter(|r| r.path == "/alerts")
        .map(|r| r.json())
        .collect();
    assert_eq!(bodies.len(), 4);
    assert!(
        bodies
            .iter()
            .all(|b| b["clinics"] == "1" || b["clinics"] == "2"),
        "{bodies:?}"
    );

    // `GET /alerts`: a token of every clinic reads both rotations, one limited to clinic 2
    // only its own webhook's; the dashboard asks the same function.
    let alerts_about = |v: &Value| -> Vec<String> {
        let mut about: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["webhook_id"].as_str().unwrap().to_string())
            .collect();
        about.sort();
        about
    };
    let (status, all) = server.get("/api/v1/alerts").await;
    assert_eq!(status, 200, "{all}");
    let mut both = subjects.clone();
    both.sort();
    assert_eq!(alerts_about(&all), both);
    let (status, token) = server
        .post(
            "/api/v1/tokens",
            json!({"name": "north viewer", "role": "viewer", "clinics": ["2"]}),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let limited = server
        .http
        .get(format!("{}/api/v1/alerts", server.base))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status().as_u16(), 200);
    let limited: Value = serde_json::from_str(&limited.text().await.unwrap()).unwrap();
    assert_eq!(alerts_about(&limited), [subjects[1].clone()], "{limited}");
    server.stop().await;
}
