//! Scheduled webhooks (reminders), issue 16 item 2, on SQLite and PostgreSQL: the real server,
//! the real dispatcher, real receivers on 127.0.0.1.
//!
//! A reminder counts from `appointment_start`; the tests push appointments whose start is 24 h
//! and a few seconds ahead (to the millisecond), with the preset's offset `-24h`, so the
//! reminder is due a few seconds after the push. The dispatcher's idle poll is a minute here:
//! a reminder sent on time can only have been sent by the dispatcher waking for its due time.
//!
//! Silence is never inferred from a sleep: where nothing may arrive, a later reminder on the
//! same receiver is the marker that the dispatcher has passed the earlier due time, and the
//! state asserted is the stored one.

mod common;

use std::time::{Duration, Instant};

use carehook::dispatcher::DispatcherConfig;
use chrono::{SecondsFormat, Utc};
use common::{Backend, Receiver, TestServer, test_settings};
use serde_json::{Value, json};

on_both!(
    a_reminder_is_sent_at_its_time_even_with_a_long_idle_poll,
    a_reminder_survives_a_restart_and_is_still_sent_on_time,
    cancelling_or_deleting_the_appointment_withdraws_the_reminder,
    moving_the_appointment_re_times_the_reminder,
    a_time_already_past_is_sent_at_once_or_skipped_as_the_webhook_says,
    a_booking_through_the_clinic_api_is_scheduled_in_the_clinic_time_zone,
    the_schedule_is_checked_at_save_naming_the_field,
);

/// These tests time deliveries to the second: one at a time, so they do not load each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An idle poll so long that only waking for the due time sends a reminder on time.
const LONG_POLL: Duration = Duration::from_secs(60);

/// How far a reminder may arrive from its due time (the bound for the test).
const ON_TIME: Duration = Duration::from_secs(1);

const DAY_MS: i64 = 86_400_000;

fn long_poll(s: &mut carehook::app::Settings) {
    s.dispatcher = Some(DispatcherConfig {
        poll: LONG_POLL,
        ..DispatcherConfig::default()
    });
}

async fn server(backend: Backend) -> Option<TestServer> {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    TestServer::start_with(backend, long_poll).await
}

/// The wall clock and the monotonic clock read together, so a wall-clock due time becomes
/// the instant the receiver's arrival is compared with.
struct Clock {
    wall_ms: i64,
    at: Instant,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            wall_ms: Utc::now().timestamp_millis(),
            at: Instant::now(),
        }
    }

    fn instant(&self, wall_ms: i64) -> Instant {
        self.at + Duration::from_millis((wall_ms - self.wall_ms).max(0) as u64)
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A reminder webhook like the presets': 24 h before `appointment_start`, body naming the
/// appointment, on `events`.
fn reminder(url: &str, events: &[&str], if_past: &str) -> Value {
    json!({
        "name": "Reminder 24 h before",
        "events": events,
        "url": url,
        "body": "{\"appointment\": \"{{appointment_id}}\", \"start\": \"{{appointment_start}}\", \"event\": \"{{event_name}}\"}",
        "conditions": [{"variable": "appointment_status", "op": "ne", "value": "cancelled"}],
        "schedule": {"at": "appointment_start", "offset": "-24h", "if_past": if_past},
    })
}

/// Pushes `event` for appointment `id` starting at `start_ms`, with `status`; answers the
/// event's deliveries.
async fn push(
    server: &TestServer,
    event: &str,
    id: i64,
    start_ms: i64,
    status: &str,
) -> Vec<String> {
    let answer = server
        .push(
            event,
            json!({"appointment_id": id, "appointment_start": rfc3339(start_ms),
                   "appointment_status": status, "patient_name": "Zoë O'Brien"}),
        )
        .await;
    answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

async fn delivery(server: &TestServer, id: &str) -> Value {
    let (status, d) = server.get(&format!("/api/v1/deliveries/{id}")).await;
    assert_eq!(status, 200, "{d}");
    d
}

/// The stored due time of a pending delivery, in unix ms.
fn due_ms(d: &Value) -> i64 {
    let at = d["next_attempt_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no due time: {d:#}"));
    chrono::DateTime::parse_from_rfc3339(at)
        .unwrap()
        .timestamp_millis()
}

fn assert_on_time(arrived: Instant, due: Instant, what: &str) {
    let off = if arrived >= due {
        arrived - due
    } else {
        due - arrived
    };
    assert!(
        off <= ON_TIME,
        "{what} arrived {}{off:?} its due time",
        if arrived >= due { "after " } else { "before " }
    );
}

async fn a_reminder_is_sent_at_its_time_even_with_a_long_idle_poll(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(server) = server(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    server
        .create_webhook(reminder(
            &rx.url("/remind"),
            &["kc_appointment_book"],
            "skip",
        ))
        .await;
    let clock = Clock::now();
    let due = clock.wall_ms + 3_000;
    let ids = push(&server, "kc_appointment_book", 501, due + DAY_MS, "booked").await;
    assert_eq!(ids.len(), 1);
    // Stored at once, pending, due at its time to the millisecond.
    let d = delivery(&server, &ids[0]).await;
    assert_eq!(d["status"], "pending", "{d:#}");
    assert_eq!(due_ms(&d), due, "{d:#}");

    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_on_time(got[0].at, clock.instant(due), "the reminder");
    assert_eq!(got[0].json()["appointment"], "501");
    server
        .wait_delivery(&ids[0], common::WAIT, |d| d["status"] == "succeeded")
        .await;
    server.stop().await;
}

async fn a_reminder_survives_a_restart_and_is_still_sent_on_time(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(mut server) = server(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    server
        .create_webhook(reminder(
            &rx.url("/remind"),
            &["kc_appointment_book"],
            "skip",
        ))
        .await;
    let clock = Clock::now();
    let due = clock.wall_ms + 4_000;
    let ids = push(&server, "kc_appointment_book", 502, due + DAY_MS, "booked").await;

    // Stop carehook and start it again on the same database before the reminder is due.
    let db = server.db.take();
    let store = server.store.clone();
    server.stop().await;
    assert_eq!(rx.count(), 0, "nothing is sent before its time");
    let mut settings = test_settings();
    long_poll(&mut settings);
    let server = TestServer::start_on(store, db, settings).await;
    assert!(
        Utc::now().timestamp_millis() < due - 500,
        "the restart took too long for this test to mean anything"
    );

    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_on_time(
        got[0].at,
        clock.instant(due),
        "the reminder after a restart",
    );
    assert_eq!(got[0].json()["appointment"], "502");
    server
        .wait_delivery(&ids[0], common::WAIT, |d| d["status"] == "succeeded")
        .await;
    server.stop().await;
}

async fn cancelling_or_deleting_the_appointment_withdraws_the_reminder(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(server) = server(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    server
        .create_webhook(reminder(
            &rx.url("/remind"),
            &["kc_appointment_book", "kc_appointment_update"],
            "skip",
        ))
        .await;
    let clock = Clock::now();
    let due = clock.wall_ms + 3_000;
    let cancelled = push(&server, "kc_appointment_book", 601, due + DAY_MS, "booked").await;
    let deleted = push(&server, "kc_appointment_book", 602, due + DAY_MS, "booked").await;
    // The marker: another appointment's reminder, due after the other two.
    let marker = push(
        &server,
        "kc_appointment_book",
        603,
        due + 1_000 + DAY_MS,
        "booked",
    )
    .await;

    // Cancelled by a status change the webhook does not subscribe to, and deleted.
    let change = push(
        &server,
        "kc_appointment_status_change",
        601,
        due + DAY_MS,
        "cancelled",
    )
    .await;
    assert!(
        change.is_empty(),
        "the webhook does not take status changes"
    );
    let delete = push(
        &server,
        "kc_appointment_delete",
        602,
        due + DAY_MS,
        "booked",
    )
    .await;
    assert!(delete.is_empty());
    for (id, why) in [(&cancelled[0], "cancelled"), (&deleted[0], "deleted")] {
        let d = delivery(&server, id).await;
        assert_eq!(d["status"], "superseded", "{d:#}");
        assert!(
            d["last_error"].as_str().unwrap().contains(why),
            "the reason says the appointment was {why}: {d:#}"
        );
        assert!(d["next_attempt_at"].is_null(), "{d:#}");
    }

    // The marker arrives after the withdrawn reminders' time: the dispatcher passed it.
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_on_time(got[0].at, clock.instant(due + 1_000), "the marker reminder");
    server
        .wait_delivery(&marker[0], common::WAIT, |d| d["status"] == "succeeded")
        .await;
    assert!(Utc::now().timestamp_millis() > due);
    let log = server.settled(common::WAIT).await;
    let received: Vec<Value> = rx.received().iter().map(|r| r.json()).collect();
    assert_eq!(received.len(), 1, "only the marker was sent: {received:?}");
    assert_eq!(received[0]["appointment"], "603");
    for id in [&cancelled[0], &deleted[0]] {
        let d = log.iter().find(|d| d["id"] == id.as_str()).unwrap();
        assert_eq!(d["status"], "superseded", "{d:#}");
        assert_eq!(d["attempts"], 0, "never sent: {d:#}");
    }
    // Superseded is no failure in the webhook's numbers.
    let webhook = log[0]["webhook_id"].as_str().unwrap();
    let (_, stats) = server
        .get(&format!("/api/v1/webhooks/{webhook}/stats"))
        .await;
    let day = &stats["windows"][1];
    assert_eq!(day["deliveries"]["superseded"], 2, "{stats:#}");
    assert_eq!(day["deliveries"]["failed"], 0, "{stats:#}");
    assert_eq!(day["success_rate"], 1.0, "{stats:#}");
    // And the log filters by it.
    let (_, page) = server.get("/api/v1/deliveries?status=superseded").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page:#}");
    server.stop().await;
}

async fn moving_the_appointment_re_times_the_reminder(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(server) = server(backend).await else {
        return;
    };
    // Subscribed to bookings only: the move re-times the waiting delivery itself.
    let rx_book = Receiver::start().await;
    server
        .create_webhook(reminder(
            &rx_book.url("/book-only"),
            &["kc_appointment_book"],
            "skip",
        ))
        .await;
    // Subscribed to updates too: the update's own reminder takes the old one's place.
    let rx_both = Receiver::start().await;
    server
        .create_webhook(reminder(
            &rx_both.url("/book-and-update"),
            &["kc_appointment_book", "kc_appointment_update"],
            "skip",
        ))
        .await;
    let clock = Clock::now();
    let first_due = clock.wall_ms + 60_000;
    let booked = push(
        &server,
        "kc_appointment_book",
        701,
        first_due + DAY_MS,
        "booked",
    )
    .await;
    assert_eq!(booked.len(), 2);

    // Moved earlier: due in 3 s instead of a minute.
    let new_due = clock.wall_ms + 3_000;
    let updated = push(
        &server,
        "kc_appointment_update",
        701,
        new_due + DAY_MS,
        "booked",
    )
    .await;
    assert_eq!(updated.len(), 1, "only the second webhook takes updates");

    let ds = [
        delivery(&server, &booked[0]).await,
        delivery(&server, &booked[1]).await,
    ];
    let (book_only, both) = if ds[0]["webhook_id"] == ds[1]["webhook_id"] {
        unreachable!()
    } else {
        let (_, hooks) = server.get("/api/v1/webhooks").await;
        let first = hooks["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["url"].as_str().unwrap().ends_with("/book-only"))
            .unwrap()["id"]
            .clone();
        if ds[0]["webhook_id"] == first {
            (ds[0].clone(), ds[1].clone())
        } else {
            (ds[1].clone(), ds[0].clone())
        }
    };
    assert_eq!(book_only["status"], "pending", "{book_only:#}");
    assert_eq!(due_ms(&book_only), new_due, "re-timed: {book_only:#}");
    assert_eq!(both["status"], "superseded", "{both:#}");
    assert!(
        both["last_error"].as_str().unwrap().contains("replaced"),
        "{both:#}"
    );
    let replacement = delivery(&server, &updated[0]).await;
    assert_eq!(due_ms(&replacement), new_due, "{replacement:#}");

    let a = rx_book.wait_for(1, Duration::from_secs(10)).await;
    assert_on_time(a[0].at, clock.instant(new_due), "the re-timed reminder");
    assert_eq!(a[0].json()["event"], "kc_appointment_book");
    let b = rx_both.wait_for(1, Duration::from_secs(10)).await;
    assert_on_time(b[0].at, clock.instant(new_due), "the replacing reminder");
    assert_eq!(b[0].json()["event"], "kc_appointment_update");
    assert_eq!(b[0].json()["start"], rfc3339(new_due + DAY_MS));
    let log = server.settled(common::WAIT).await;
    assert_eq!(
        log.iter().filter(|d| d["status"] == "succeeded").count(),
        2,
        "{log:#?}"
    );
    assert_eq!(rx_book.count() + rx_both.count(), 2);
    server.stop().await;
}

async fn a_time_already_past_is_sent_at_once_or_skipped_as_the_webhook_says(backend: Backend) {
    let Some(server) = server(backend).await else {
        return;
    };
    let rx_send = Receiver::start().await;
    let rx_skip = Receiver::start().await;
    server
        .create_webhook(reminder(
            &rx_send.url("/send"),
            &["kc_appointment_book"],
            "send",
        ))
        .await;
    server
        .create_webhook(reminder(
            &rx_skip.url("/skip"),
            &["kc_appointment_book"],
            "skip",
        ))
        .await;
    // Booked for an hour from now: 24 h before has passed.
    let start = Utc::now().timestamp_millis() + 3_600_000;
    let pushed = Instant::now();
    let ids = push(&server, "kc_appointment_book", 801, start, "booked").await;
    assert_eq!(ids.len(), 2);
    let got = rx_send.wait_for(1, Duration::from_secs(5)).await;
    assert!(got[0].at - pushed < Duration::from_secs(2), "sent at once");
    let log = server.settled(common::WAIT).await;
    let skipped: Vec<&Value> = log.iter().filter(|d| d["status"] == "superseded").collect();
    assert_eq!(skipped.len(), 1, "{log:#?}");
    assert!(
        skipped[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("had passed"),
        "{:#}",
        skipped[0]
    );
    assert_eq!(skipped[0]["attempts"], 0);
    assert_eq!(log.iter().filter(|d| d["status"] == "succeeded").count(), 1);
    assert_eq!(rx_skip.count(), 0, "the skipped reminder was never sent");
    server.stop().await;
}

async fn a_booking_through_the_clinic_api_is_scheduled_in_the_clinic_time_zone(backend: Backend) {
    let Some(server) = server(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    server
        .create_webhook(reminder(
            &rx.url("/remind"),
            &["kc_appointment_book", "kc_appointment_update"],
            "skip",
        ))
        .await;
    let id = |v: Value| v["id"].as_i64().unwrap();
    let clinic = id(server
        .post(
            "/api/v1/clinics",
            json!({"name": "Riverside", "email": "hello@riverside.example.com",
                   "contact_number": "+447700900000", "currency": "gbp",
                   "timezone": "Asia/Kolkata", "date_format": "%d/%m/%Y"}),
        )
        .await
        .1);
    let doctor = id(server
        .post(
            "/api/v1/doctors",
            json!({"clinic_id": clinic, "first_name": "Aisha", "last_name": "Patel",
                   "email": "aisha@riverside.example.com"}),
        )
        .await
        .1);
    let patient = id(server
        .post(
            "/api/v1/patients",
            json!({"clinic_id": clinic, "first_name": "Maria", "last_name": "O'Brien",
                   "email": "maria@example.com"}),
        )
        .await
        .1);
    let (status, appointment) = server
        .post(
            "/api/v1/appointments",
            json!({"clinic_id": clinic, "doctor_id": doctor, "patient_id": patient,
                   "date": "2099-03-10", "start_time": "09:30", "end_time": "09:45"}),
        )
        .await;
    assert_eq!(status, 201, "{appointment}");
    let appointment = id(appointment);
    let (_, page) = server.get("/api/v1/deliveries").await;
    let d = &page["items"][0];
    assert_eq!(d["status"], "pending", "{page:#}");
    // 09:30 in Kolkata (+05:30) is 04:00 UTC; a day before, whatever the date format.
    assert_eq!(d["next_attempt_at"], "2099-03-09T04:00:00.000Z", "{d:#}");
    let first = d["id"].as_str().unwrap().to_string();

    // Cancelled through the clinic API: withdrawn.
    let (status, answer) = server
        .call(
            "PATCH",
            &format!("/api/v1/appointments/{appointment}"),
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let withdrawn = delivery(&server, &first).await;
    assert_eq!(withdrawn["status"], "superseded", "{withdrawn:#}");
    assert!(
        withdrawn["last_error"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{withdrawn:#}"
    );
    let (_, page) = server.get("/api/v1/deliveries?status=pending").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "{page:#}");
    assert_eq!(rx.count(), 0);
    server.stop().await;
}

async fn the_schedule_is_checked_at_save_naming_the_field(backend: Backend) {
    let Some(server) = server(backend).await else {
        return;
    };
    let url = "http://127.0.0.1:9/x";
    let refused = |spec: Value| {
        let server = &server;
        async move {
            let (status, body) = server.post("/api/v1/webhooks", spec).await;
            assert_eq!(status, 422, "{body}");
            (
                body["error"]["field"].as_str().unwrap_or("").to_string(),
                body["error"]["message"].as_str().unwrap_or("").to_string(),
            )
        }
    };
    let mut spec = reminder(url, &["kc_appointment_book"], "skip");
    spec["schedule"]["at"] = json!("appointment_date");
    let (field, message) = refused(spec).await;
    assert_eq!(field, "schedule.at");
    assert!(message.contains("not a date and time"), "{message}");

    let mut spec = reminder(url, &["kc_appointment_book", "kc_patient_add"], "skip");
    spec["conditions"] = json!([]);
    let (field, message) = refused(spec).await;
    assert_eq!(field, "schedule.at");
    assert!(message.contains("kc_patient_add"), "{message}");

    let mut spec = reminder(url, &["kc_appointment_book"], "skip");
    spec["schedule"]["offset"] = json!("a day before");
    let (field, _) = refused(spec).await;
    assert_eq!(field, "schedule.offset");

    let mut spec = reminder(url, &["kc_appointment_book"], "skip");
    spec["schedule"]["if_past"] = json!("maybe");
    let (status, body) = server.post("/api/v1/webhooks", spec).await;
    assert!(status == 422 || status == 400, "{body}");

    // A valid one saves and reads back.
    let created = server
        .create_webhook(reminder(url, &["kc_appointment_book"], "send"))
        .await;
    assert_eq!(
        created["schedule"],
        json!({"at": "appointment_start", "offset": "-24h", "if_past": "send"})
    );
    server.stop().await;
}
