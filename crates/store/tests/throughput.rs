//! A rough end-to-end throughput check of the store's hot path (record → claim → record
//! attempts) on SQLite, in batches as the server's dispatcher uses it. Ignored by default:
//! `cargo test -p carehook-store --release --test throughput -- --ignored --nocapture`.

use std::time::Instant;

use carehook_store::testing::{Backend, TestDatabase};
use carehook_store::*;
use serde_json::json;

const N: usize = 20_000;
const BATCH: usize = 500;

fn node() -> NodeId {
    NodeId::parse("throughput").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; run with --release"]
async fn deliveries_per_second() {
    for backend in Backend::ALL {
        let Some(db) = TestDatabase::new(backend).await else {
            continue;
        };
        let store = db.connect().await;
        let w = store
            .create_webhook(NewWebhook {
                id: WebhookId::new(),
                name: "w".into(),
                enabled: true,
                events: vec!["*".into()],
                config: json!({}),
            })
            .await
            .unwrap()
            .id;
        let vars: carehook_core::Vars = (0..40)
            .map(|i| {
                (
                    format!("var_{i}"),
                    format!("value number {i} for the template"),
                )
            })
            .collect();
        let t0 = Instant::now();
        for chunk in 0..N / BATCH {
            let batch = (0..BATCH)
                .map(|i| NewEvent {
                    id: EventId::new(),
                    event_type: "kc_appointment_book".into(),
                    vars: vars.clone(),
                    idempotency_key: Some(format!("k-{chunk}-{i}")),
                    created_at: 1,
                    deliveries: vec![NewDelivery {
                        id: DeliveryId::new(),
                        webhook_id: w,
                        next_attempt_at: 1,
                        is_test: false,
                        ordering_key: None,
                        scheduled: None,
                    }],
                    reschedule: Vec::new(),
                })
                .collect();
            store.record_events(batch).await.unwrap();
        }
        let recorded = t0.elapsed();
        let t1 = Instant::now();
        let mut done = 0;
        loop {
            let claimed = store
                .claim_due(&node(), 2, 30_000, BATCH as u32, &[])
                .await
                .unwrap();
            if claimed.is_empty() {
                break;
            }
            done += claimed.len();
            let attempts = claimed
                .iter()
                .map(|c| AttemptRecord {
                    delivery_id: c.delivery_id,
                    attempt_no: c.attempts + 1,
                    started_at: 3,
                    duration_ms: 10,
                    request: json!({"method": "POST", "url": "https://example.com", "body": "{}"}),
                    response_status: Some(200),
                    response_headers: Some(json!({"content-type": "text/plain"})),
                    response_body: Some("ok".into()),
                    error: None,
                    outcome: AttemptOutcome::Succeeded,
                    next: DeliveryNext::Succeeded,
                    store_bodies: true,
                })
                .collect();
            store.record_attempts(attempts).await.unwrap();
        }
        let delivered = t1.elapsed();
        assert_eq!(done, N);
        println!(
            "{backend:?}: record_events {:.0}/s, claim+record_attempts {:.0}/s, end to end {:.0}/s",
            N as f64 / recorded.as_secs_f64(),
            N as f64 / delivered.as_secs_f64(),
            N as f64 / (recorded + delivered).as_secs_f64(),
        );
        drop(store);
        db.cleanup().await;
    }
}
