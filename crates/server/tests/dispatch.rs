//! The dispatcher's latency and fairness, on SQLite and PostgreSQL: the real server, the real
//! dispatcher, real receivers on 127.0.0.1.
//!
//! - A lone event on an idle server is sent by the wake-up after its commit, never by the
//!   idle poll: the poll is set to a minute here, so a delivery that arrives within seconds
//!   can only have come from the wake-up.
//! - Endpoints that accept and never answer, at the highest `max_in_flight`, cannot take the
//!   node's capacity from a healthy webhook.

mod common;

use std::time::{Duration, Instant};

use carehook::dispatcher::DispatcherConfig;
use common::{Answer, Backend, Receiver, TestServer, hook};
use serde_json::json;

on_both!(
    a_lone_event_is_sent_by_the_wake_up_not_the_poll,
    two_hanging_endpoints_leave_room_for_a_healthy_one,
    ten_hanging_endpoints_leave_room_for_a_healthy_one,
);

/// These tests time deliveries in milliseconds: they run one at a time, so that they do not
/// measure each other's load (hundreds of hanging requests, bursts of events).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A poll so long that only a wake-up can deliver within a test's patience.
const LONG_POLL: Duration = Duration::from_secs(60);

/// How long a lone event may take here: far below the poll, far above any real latency.
const LONE_EVENT_PATIENCE: Duration = Duration::from_secs(5);

async fn long_poll_server(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, |s| {
        s.dispatcher = Some(DispatcherConfig {
            poll: LONG_POLL,
            ..DispatcherConfig::default()
        });
    })
    .await
}

async fn a_lone_event_is_sent_by_the_wake_up_not_the_poll(backend: Backend) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let Some(server) = long_poll_server(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    server.create_webhook(hook(&rx.url("/hook"))).await;
    let mut took = Vec::new();
    for n in 1..=5 {
        let pushed = Instant::now();
        let event = server.push("kc_appointment_book", json!({})).await;
        let got = rx.wait_for(n, LONE_EVENT_PATIENCE).await;
        took.push(got[n - 1].at.saturating_duration_since(pushed));
        // The attempt is recorded before the next event: the dispatcher is idle again, in
        // its long sleep, when the next one arrives.
        let delivery = event["deliveries"][0].as_str().unwrap().to_string();
        server
            .wait_delivery(&delivery, LONE_EVENT_PATIENCE, |d| {
                d["status"] == "succeeded"
            })
            .await;
    }
    let slowest = took.iter().max().unwrap();
    assert!(
        *slowest < LONE_EVENT_PATIENCE,
        "a lone event took {slowest:?} (all: {took:?})"
    );
    eprintln!("{backend:?}: lone events arrived after {took:?}");
    server.stop().await;
}

async fn two_hanging_endpoints_leave_room_for_a_healthy_one(backend: Backend) {
    hanging_endpoints_leave_room(backend, 2).await;
}

async fn ten_hanging_endpoints_leave_room_for_a_healthy_one(backend: Backend) {
    hanging_endpoints_leave_room(backend, 10).await;
}

/// The most a webhook may set (`max_in_flight`).
const MOST_IN_FLIGHT: u32 = 256;

/// `hanging` webhooks at the highest `max_in_flight` whose endpoint accepts and never answers
/// (within the test), each with a backlog of more than its cap, and one healthy webhook: the
/// healthy one's events arrive with a p99 under 100 ms.
async fn hanging_endpoints_leave_room(backend: Backend, hanging: usize) {
    let _alone = ONE_AT_A_TIME.lock().await;
    // A short shutdown grace: the hanging requests are cut off when the test ends.
    let Some(server) = TestServer::start_with(backend, |s| {
        s.dispatcher = Some(DispatcherConfig {
            shutdown_grace: Duration::from_millis(200),
            poll: Duration::from_millis(200),
            ..DispatcherConfig::default()
        });
    })
    .await
    else {
        return;
    };
    let dead = Receiver::start().await;
    dead.answer(|_, _| Answer::ok().delay(Duration::from_secs(120)));
    for i in 0..hanging {
        let mut spec = hook(&dead.url(&format!("/dead/{i}")));
        spec["name"] = json!(format!("hanging {i}"));
        spec["events"] = json!(["kc_patient_add"]);
        spec["body"] = json!("{\"n\": \"{{patient_name}}\"}");
        spec["max_in_flight"] = json!(MOST_IN_FLIGHT);
        spec["timeout_ms"] = json!(60_000);
        server.create_webhook(spec).await;
    }
    let healthy = Receiver::start().await;
    let mut spec = hook(&healthy.url("/healthy"));
    spec["name"] = json!("healthy");
    server.create_webhook(spec).await;

    // Each hanging webhook gets more deliveries than its cap; one event reaches all of them.
    let backlog = MOST_IN_FLIGHT as usize + 44;
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, base) = (server.http.clone(), server.base.clone());
        senders.spawn(async move {
            for _ in 0..backlog / 8 + 1 {
                let resp = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(common::TOKEN)
                    .header("content-type", "application/json")
                    .body(json!({"event": "kc_patient_add", "data": {}}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 202);
            }
        });
    }
    while let Some(r) = senders.join_next().await {
        r.unwrap();
    }
    // Wait until the hanging endpoints hold every slot the node will give them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (usize::MAX, Instant::now());
    loop {
        let n = dead.count();
        if n != last.0 {
            last = (n, Instant::now());
        } else if n > 0 && last.1.elapsed() > Duration::from_millis(500) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hanging endpoints kept getting requests"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let held = dead.count();
    let node_cap = DispatcherConfig::default().max_in_flight;
    assert!(
        held < node_cap,
        "{hanging} hanging endpoints hold {held} of the node's {node_cap} slots"
    );

    // The healthy webhook: events one after another, each timed from push to arrival.
    let mut took = Vec::new();
    for n in 1..=100 {
        let pushed = Instant::now();
        server
            .push("kc_appointment_book", json!({"patient_name": "Ada"}))
            .await;
        let got = healthy.wait_for(n, Duration::from_secs(10)).await;
        took.push(got[n - 1].at.saturating_duration_since(pushed));
    }
    took.sort();
    let p50 = took[took.len() / 2];
    let p99 = took[took.len() * 99 / 100 - 1];
    eprintln!(
        "{backend:?}, {hanging} hanging endpoints holding {held} requests: healthy webhook p50 {p50:?}, p99 {p99:?}"
    );
    assert!(
        p99 < Duration::from_millis(100),
        "with {hanging} hanging endpoints the healthy webhook's p99 was {p99:?}"
    );
    server.stop().await;
}
