//! Ordering keys end to end, on SQLite and PostgreSQL (and two nodes on one PostgreSQL): the
//! real server and dispatcher, a real receiver on 127.0.0.1.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Answer, Backend, Received, Receiver, TestServer, WAIT};
use serde_json::{Value, json};

on_both!(
    a_cancellation_never_overtakes_its_booking,
    a_failed_delivery_releases_its_key,
    a_bad_ordering_key_is_refused_naming_the_field,
);

/// A CRM-like webhook: bookings and cancellations, one queue per appointment.
fn crm(url: &str, schedule: &[&str]) -> Value {
    json!({
        "name": "CRM: appointments",
        "events": ["kc_appointment_book", "kc_appointment_update", "kc_appointment_status_change"],
        "url": url,
        "body": "{\"event\": \"{{event_name}}\", \"appointment\": \"{{appointment_id}}\", \"note\": \"{{appointment_description}}\"}",
        "ordering_key": "{{appointment_id}}",
        "retry": {"schedule": schedule, "jitter": 0.0},
    })
}

fn event_of(r: &Received) -> String {
    r.json()["event"].as_str().unwrap().to_string()
}

fn appointment_of(r: &Received) -> String {
    r.json()["appointment"].as_str().unwrap().to_string()
}

fn sequence_of(r: &Received) -> i64 {
    r.header("carehook-ordering-sequence")
        .expect("an ordered request carries its sequence")
        .parse()
        .unwrap()
}

fn delivery_id(pushed: &Value) -> String {
    pushed["deliveries"][0].as_str().unwrap().to_string()
}

async fn book(server: &TestServer, appointment: &str) -> String {
    delivery_id(
        &server
            .push(
                "kc_appointment_book",
                json!({"appointment_id": appointment, "appointment_status": "booked"}),
            )
            .await,
    )
}

async fn cancel(server: &TestServer, appointment: &str) -> String {
    delivery_id(
        &server
            .push(
                "kc_appointment_status_change",
                json!({"appointment_id": appointment, "appointment_status": "cancelled"}),
            )
            .await,
    )
}

async fn a_cancellation_never_overtakes_its_booking(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    // Appointment 1's booking fails three times, then goes through.
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f = failures.clone();
    rx.answer(move |r, _| {
        let body = r.json();
        if body["appointment"] == "1"
            && body["event"] == "kc_appointment_book"
            && f.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3
        {
            Answer::status(500).body("not yet")
        } else {
            Answer::ok()
        }
    });
    // 3 × 400 ms of retries hold appointment 1's queue for over a second.
    server
        .create_webhook(crm(&rx.url("/crm"), &["400ms", "400ms", "400ms", "400ms"]))
        .await;

    let booking = book(&server, "1").await;
    let cancellation = cancel(&server, "1").await;
    // The booking failed once: the cancellation waits for it, and says so.
    rx.wait_for(1, WAIT).await;
    let held = server
        .wait_delivery(&cancellation, WAIT, |d| !d["ordering"].is_null())
        .await;
    assert_eq!(held["status"], "pending", "{held:#}");
    assert_eq!(held["ordering"]["sequence"], 2, "{held:#}");
    assert_eq!(
        held["ordering"]["waiting_for"],
        booking.as_str(),
        "{held:#}"
    );
    assert_eq!(
        held["ordering"]["state"],
        format!("waiting for delivery {booking}"),
        "{held:#}"
    );
    assert!(held["attempts"].as_array().unwrap().is_empty(), "{held:#}");

    // Another appointment's deliveries flow meanwhile: booked, moved, cancelled.
    book(&server, "2").await;
    server
        .push(
            "kc_appointment_update",
            json!({"appointment_id": "2", "appointment_description": "moved"}),
        )
        .await;
    cancel(&server, "2").await;

    let deliveries = server.settled(WAIT).await;
    assert!(
        deliveries.iter().all(|d| d["status"] == "succeeded"),
        "{deliveries:#?}"
    );
    let got = rx.received();
    let of = |appointment: &str| -> Vec<&Received> {
        got.iter()
            .filter(|r| appointment_of(r) == appointment)
            .collect()
    };
    let one = of("1");
    let events: Vec<String> = one.iter().map(|r| event_of(r)).collect();
    assert_eq!(
        events,
        [
            "kc_appointment_book",
            "kc_appointment_book",
            "kc_appointment_book",
            "kc_appointment_book",
            "kc_appointment_status_change"
        ],
        "appointment 1: the booking, retried until it went through, then the cancellation"
    );
    assert_eq!(
        one.iter().map(|r| sequence_of(r)).collect::<Vec<_>>(),
        [1, 1, 1, 1, 2]
    );
    let two = of("2");
    assert_eq!(
        two.iter().map(|r| event_of(r)).collect::<Vec<_>>(),
        [
            "kc_appointment_book",
            "kc_appointment_update",
            "kc_appointment_status_change"
        ]
    );
    assert_eq!(
        two.iter().map(|r| sequence_of(r)).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Appointment 2's three arrived while appointment 1 was held back.
    let one_went_through = one[3].at;
    assert!(
        two.iter().all(|r| r.at < one_went_through),
        "appointment 2 waited for appointment 1"
    );
    // One key id per appointment, in every request of it.
    let key = |rs: &[&Received]| -> BTreeSet<String> {
        rs.iter()
            .map(|r| r.header("carehook-ordering-key").unwrap().to_string())
            .collect()
    };
    let (k1, k2) = (key(&one), key(&two));
    assert_eq!((k1.len(), k2.len()), (1, 1));
    assert_ne!(k1, k2);
    assert_eq!(k1.iter().next().unwrap().len(), 32);
    // Once through, nothing waits: the log shows the place and no wait.
    let (_, done) = server
        .get(&format!("/api/v1/deliveries/{cancellation}"))
        .await;
    assert_eq!(done["ordering"]["sequence"], 2, "{done:#}");
    assert!(done["ordering"]["waiting_for"].is_null(), "{done:#}");
    // The request as logged shows the headers too.
    let headers = done["attempts"][0]["request"]["headers"].to_string();
    assert!(headers.contains("carehook-ordering-sequence"), "{headers}");
    server.stop().await;
}

async fn a_failed_delivery_releases_its_key(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    // Every booking fails; the cancellation goes through.
    rx.answer(|r, _| {
        if event_of(r) == "kc_appointment_book" {
            Answer::status(503)
        } else {
            Answer::ok()
        }
    });
    let mut spec = crm(&rx.url("/crm"), &["100ms", "100ms"]);
    spec["retry"]["max_attempts"] = json!(3);
    server.create_webhook(spec).await;
    let booking = book(&server, "7").await;
    let cancellation = cancel(&server, "7").await;
    let deliveries = server.settled(WAIT).await;
    let status = |id: &str| {
        deliveries
            .iter()
            .find(|d| d["id"] == id)
            .map(|d| d["status"].clone())
            .unwrap()
    };
    assert_eq!(status(&booking), "failed");
    assert_eq!(status(&cancellation), "succeeded");
    let got = rx.received();
    assert_eq!(
        got.iter()
            .map(|r| (event_of(r), sequence_of(r)))
            .collect::<Vec<_>>(),
        [
            ("kc_appointment_book".to_string(), 1),
            ("kc_appointment_book".to_string(), 1),
            ("kc_appointment_book".to_string(), 1),
            ("kc_appointment_status_change".to_string(), 2),
        ],
        "the booking's three attempts, then (the key released) the cancellation"
    );
    server.stop().await;
}

async fn a_bad_ordering_key_is_refused_naming_the_field(backend: Backend) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let mut spec = crm("https://crm.example.com/hook", &["1s"]);
    spec["ordering_key"] = json!("{{apointment_id}}");
    let (status, body) = server.post("/api/v1/webhooks", spec).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "ordering_key", "{body}");
    // Shown as saved, and taken off with a merge patch's null.
    let made = server
        .create_webhook(crm("https://crm.example.com/hook", &["1s"]))
        .await;
    assert_eq!(made["ordering_key"], "{{appointment_id}}", "{made}");
    let id = made["id"].as_str().unwrap();
    let (status, patched) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"ordering_key": null})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert!(patched.get("ordering_key").is_none(), "{patched}");
    server.stop().await;
}

/// Two carehook nodes on one PostgreSQL: events of each appointment pushed through both, the
/// receiver slow and failing now and then. Each appointment's deliveries still arrive one at
/// a time, in event order, numbered 1, 2, 3… with no number twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_keep_each_keys_order() {
    let Some(db) = common::TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let a = TestServer::start_on(db.connect().await, None, common::test_settings()).await;
    let b = TestServer::start_on(db.connect().await, Some(db), common::test_settings()).await;
    let rx = Receiver::start().await;
    // Slow enough that a key's later deliveries are due while an earlier one is in flight;
    // every fifth request fails once (retried 50 ms later).
    rx.answer(|_, i| {
        if i % 5 == 0 {
            Answer::status(500).delay(Duration::from_millis(10))
        } else {
            Answer::ok().delay(Duration::from_millis(10))
        }
    });
    let mut spec = crm(&rx.url("/crm"), &["50ms", "50ms", "50ms", "50ms", "50ms"]);
    spec["max_in_flight"] = json!(16);
    let made = a.create_webhook(spec).await;
    b.learn_webhook(&made).await;
    const KEYS: usize = 6;
    const PER_KEY: usize = 8;
    // Each appointment's events in turn, alternating nodes; the appointments at once.
    let mut pushes = Vec::new();
    for k in 0..KEYS {
        let (a, b) = (&a, &b);
        pushes.push(async move {
            for n in 0..PER_KEY {
                let node = if (k + n) % 2 == 0 { a } else { b };
                node.push(
                    "kc_appointment_update",
                    json!({"appointment_id": (100 + k).to_string(), "appointment_description": n.to_string()}),
                )
                .await;
            }
        });
    }
    join_all(pushes).await;
    let deliveries = a.settled(WAIT).await;
    assert_eq!(deliveries.len(), KEYS * PER_KEY);
    assert!(
        deliveries.iter().all(|d| d["status"] == "succeeded"),
        "{deliveries:#?}"
    );
    let got = rx.received();
    let mut per_key: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in &got {
        per_key.entry(appointment_of(r)).or_default().push(r);
    }
    assert_eq!(per_key.len(), KEYS);
    for (key, rs) in per_key {
        // Arrival order: each event's attempts, then the next event's; never back.
        let notes: Vec<usize> = rs
            .iter()
            .map(|r| r.json()["note"].as_str().unwrap().parse().unwrap())
            .collect();
        let mut sorted = notes.clone();
        sorted.sort();
        assert_eq!(notes, sorted, "appointment {key}: arrived out of order");
        let mut firsts = notes.clone();
        firsts.dedup();
        assert_eq!(
            firsts,
            (0..PER_KEY).collect::<Vec<_>>(),
            "appointment {key}"
        );
        // Numbers follow the events, 1 to 8, the same on every attempt.
        for (r, note) in rs.iter().zip(&notes) {
            assert_eq!(sequence_of(r), *note as i64 + 1, "appointment {key}");
        }
        // One at a time: each request started after the one before it was answered.
        for w in rs.windows(2) {
            assert!(
                w[1].at >= w[0].at + Duration::from_millis(10),
                "appointment {key}: two requests overlapped"
            );
        }
    }
    a.stop().await;
    b.stop().await;
}

/// Runs the futures together, in this task.
async fn join_all<F: std::future::Future<Output = ()>>(fs: Vec<F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
