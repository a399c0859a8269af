//! Ordering keys in the store: each key's deliveries are numbered 1, 2, 3… as they are
//! written, and a claim takes only the first pending delivery of a key, whichever way it asks
//! (by name, or for other webhooks' work), until that delivery ends. Both dialects.

use carehook_store::testing::TestDatabase;
use carehook_store::*;
use serde_json::json;

const T: i64 = 1_700_000_000_000;
const LEASE: i64 = 150_000;

on_both_backends!(
    a_keys_later_deliveries_wait_until_its_first_ends,
    numbers_continue_across_batches_and_keys_of_webhooks_are_apart,
);

fn node() -> NodeId {
    NodeId::parse("ordering-node").unwrap()
}

async fn webhook(store: &dyn Store) -> WebhookId {
    store
        .create_webhook(NewWebhook {
            id: WebhookId::new(),
            name: "crm".into(),
            enabled: true,
            events: vec!["kc_appointment_book".into()],
            config: json!({"url": "https://example.com/hook", "method": "POST", "body": "{}"}),
        })
        .await
        .unwrap()
        .id
}

/// One event per key (`None`: unordered) for webhook `w`, a millisecond apart from `at`, in
/// one batch; their deliveries in order.
async fn events(
    store: &dyn Store,
    w: WebhookId,
    keys: &[Option<&str>],
    at: i64,
) -> Vec<DeliveryId> {
    let batch: Vec<NewEvent> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| NewEvent {
            id: EventId::new(),
            event_type: "kc_appointment_book".into(),
            vars: Default::default(),
            idempotency_key: None,
            created_at: at + i as i64,
            deliveries: vec![NewDelivery {
                id: DeliveryId::new(),
                webhook_id: w,
                next_attempt_at: at + i as i64,
                is_test: false,
                ordering_key: key.map(str::to_string),
                scheduled: None,
            }],
            reschedule: Vec::new(),
        })
        .collect();
    store
        .record_events(batch)
        .await
        .unwrap()
        .iter()
        .map(|r| r.delivery_ids()[0])
        .collect()
}

fn ended(delivery_id: DeliveryId, next: DeliveryNext) -> AttemptRecord {
    AttemptRecord {
        delivery_id,
        attempt_no: 1,
        started_at: T,
        duration_ms: 5,
        request: json!({}),
        response_status: Some(503),
        response_headers: None,
        response_body: None,
        error: None,
        outcome: match next {
            DeliveryNext::Succeeded => AttemptOutcome::Succeeded,
            DeliveryNext::RetryAt(_) => AttemptOutcome::Retry,
            DeliveryNext::Failed => AttemptOutcome::Failed,
        },
        next,
        store_bodies: true,
    }
}

/// What a claim by name and one for any webhook's work lease, as (delivery, key, number).
async fn claim(
    store: &dyn Store,
    w: WebhookId,
    now: i64,
) -> Vec<(DeliveryId, Option<(String, i64)>)> {
    let mut got = Vec::new();
    for ask in [
        ClaimAsk {
            wants: &[(w, 100)],
            others: None,
            exclude: &[],
        },
        ClaimAsk {
            wants: &[],
            others: Some(Others {
                limit: 100,
                per_webhook: 100,
            }),
            exclude: &[],
        },
    ] {
        for c in store.claim(&node(), now, LEASE, &ask).await.unwrap() {
            got.push((c.delivery_id, c.ordering.map(|o| (o.key, o.sequence))));
        }
    }
    got
}

async fn a_keys_later_deliveries_wait_until_its_first_ends(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store).await;
    let d = events(
        &*store,
        w,
        &[
            Some("a"),
            Some("b"),
            Some("a"),
            None,
            Some("a"),
            None,
            Some("b"),
        ],
        T - 1_000,
    )
    .await;
    let (a1, b1, a2, u1, a3, u2, b2) = (d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    // The first of each key, and every unordered one.
    let got = claim(&*store, w, T).await;
    assert_eq!(
        got,
        [
            (a1, Some(("a".into(), 1))),
            (b1, Some(("b".into(), 1))),
            (u1, None),
            (u2, None),
        ]
    );
    // In flight, they hold their keys: nothing more, by name or otherwise.
    assert!(claim(&*store, w, T).await.is_empty());
    // Even once their leases expire, only they are claimed again.
    let later = T + LEASE + 1;
    let again: Vec<DeliveryId> = claim(&*store, w, later)
        .await
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(again, [a1, b1, u1, u2]);
    // a1 waits for a retry: a2 and a3 still wait, and the log says for what.
    let now = later + 1;
    store
        .record_attempts(vec![ended(a1, DeliveryNext::RetryAt(now + 60_000))])
        .await
        .unwrap();
    assert!(claim(&*store, w, now).await.is_empty());
    let held = store.delivery_ordering(a3).await.unwrap().unwrap();
    assert_eq!(
        held.place,
        OrderingPlace {
            key: "a".into(),
            sequence: 3
        }
    );
    assert_eq!(held.waiting_for, Some(a1));
    // b1 succeeds: b2 goes (and only b's).
    store
        .record_attempts(vec![ended(b1, DeliveryNext::Succeeded)])
        .await
        .unwrap();
    assert_eq!(claim(&*store, w, now).await, [(b2, Some(("b".into(), 2)))]);
    // a1 ends failed: its key is released, a2 goes, a3 now waits for a2.
    store
        .record_attempts(vec![ended(a1, DeliveryNext::Failed)])
        .await
        .unwrap();
    assert_eq!(claim(&*store, w, now).await, [(a2, Some(("a".into(), 2)))]);
    let held = store.delivery_ordering(a3).await.unwrap().unwrap();
    assert_eq!(held.waiting_for, Some(a2));
    // An ended delivery keeps its place and waits for nothing; an unordered one has none.
    let done = store.delivery_ordering(b1).await.unwrap().unwrap();
    assert_eq!((done.place.sequence, done.waiting_for), (1, None));
    assert_eq!(store.delivery_ordering(u1).await.unwrap(), None);
}

async fn numbers_continue_across_batches_and_keys_of_webhooks_are_apart(db: &TestDatabase) {
    let store = db.connect().await;
    let (v, w) = (webhook(&*store).await, webhook(&*store).await);
    let first = events(&*store, v, &[Some("k"), Some("k")], T - 3_000).await;
    let second = events(&*store, v, &[Some("k")], T - 2_000).await;
    // Webhook w's key "k" is its own queue, numbered from 1.
    let other = events(&*store, w, &[Some("k")], T - 1_000).await;
    let place = |d: DeliveryId| {
        let store = store.clone();
        async move {
            store
                .delivery_ordering(d)
                .await
                .unwrap()
                .unwrap()
                .place
                .sequence
        }
    };
    assert_eq!(place(first[0]).await, 1);
    assert_eq!(place(first[1]).await, 2);
    assert_eq!(place(second[0]).await, 3);
    assert_eq!(place(other[0]).await, 1);
    // Both keys are "k", yet each webhook's is its own: w's first by name, v's first as other
    // work, and nothing else of v's.
    let got = claim(&*store, w, T).await;
    assert_eq!(
        got,
        [
            (other[0], Some(("k".into(), 1))),
            (first[0], Some(("k".into(), 1)))
        ]
    );
    // Deleting a webhook forgets its counters along with it.
    assert!(store.delete_webhook(w).await.unwrap());
}
