//! Claims that name webhooks (`QueueStore::claim`): each named webhook gets at most what it
//! asked for, oldest due first, however long another webhook's backlog; the part for other
//! webhooks takes at most `per_webhook` of each and leaves the named and excluded ones alone.
//! Each test runs on SQLite and PostgreSQL.

use std::collections::HashMap;

use carehook_store::testing::TestDatabase;
use carehook_store::*;
use serde_json::json;

const T: i64 = 1_700_000_000_000;
const LEASE: i64 = 150_000;

on_both_backends!(
    named_webhooks_get_what_they_asked_for_oldest_first,
    other_webhooks_get_a_few_each_and_the_named_are_left_out,
    expired_leases_are_claimed_by_name_and_live_ones_are_not,
);

fn node() -> NodeId {
    NodeId::parse("claim-node").unwrap()
}

async fn webhook(store: &dyn Store, name: &str) -> WebhookId {
    store
        .create_webhook(NewWebhook {
            id: WebhookId::new(),
            name: name.into(),
            enabled: true,
            events: vec!["kc_appointment_book".into()],
            config: json!({"url": "https://example.com/hook", "method": "POST", "body": "{}"}),
        })
        .await
        .unwrap()
        .id
}

/// `n` events one millisecond apart from `at`, each with one delivery per webhook; the
/// deliveries of each webhook, oldest first.
async fn backlog(
    store: &dyn Store,
    webhooks: &[WebhookId],
    n: i64,
    at: i64,
) -> HashMap<WebhookId, Vec<DeliveryId>> {
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent {
            id: EventId::new(),
            event_type: "kc_appointment_book".into(),
            vars: Default::default(),
            idempotency_key: None,
            created_at: at + i,
            deliveries: webhooks
                .iter()
                .map(|&w| NewDelivery {
                    id: DeliveryId::new(),
                    webhook_id: w,
                    next_attempt_at: at + i,
                    is_test: false,
                    ordering_key: None,
                    scheduled: None,
                })
                .collect(),
            reschedule: Vec::new(),
        })
        .collect();
    let mut out: HashMap<WebhookId, Vec<DeliveryId>> = HashMap::new();
    for r in store.record_events(events).await.unwrap() {
        for (w, d) in webhooks.iter().zip(r.delivery_ids()) {
            out.entry(*w).or_default().push(*d);
        }
    }
    out
}

fn ids_of(claimed: &[Claimed], webhook: WebhookId) -> Vec<DeliveryId> {
    claimed
        .iter()
        .filter(|c| c.webhook_id == webhook)
        .map(|c| c.delivery_id)
        .collect()
}

async fn named_webhooks_get_what_they_asked_for_oldest_first(db: &TestDatabase) {
    let store = db.connect().await;
    let (a, b, c) = (
        webhook(&*store, "a").await,
        webhook(&*store, "b").await,
        webhook(&*store, "c").await,
    );
    let due = backlog(&*store, &[a, b, c], 50, T - 1_000).await;
    let ask = ClaimAsk {
        wants: &[(a, 3), (b, 7)],
        others: None,
        exclude: &[],
    };
    let claimed = store.claim(&node(), T, LEASE, &ask).await.unwrap();
    assert_eq!(ids_of(&claimed, a), due[&a][..3]);
    assert_eq!(ids_of(&claimed, b), due[&b][..7]);
    // Not named, no part for others: c is left alone.
    assert!(ids_of(&claimed, c).is_empty());
    // The next claim continues where this one stopped.
    let claimed = store.claim(&node(), T, LEASE, &ask).await.unwrap();
    assert_eq!(ids_of(&claimed, a), due[&a][3..6]);
    assert_eq!(ids_of(&claimed, b), due[&b][7..14]);
    // Asking for nothing claims nothing.
    let none = ClaimAsk::default();
    assert!(
        store
            .claim(&node(), T, LEASE, &none)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn other_webhooks_get_a_few_each_and_the_named_are_left_out(db: &TestDatabase) {
    let store = db.connect().await;
    let (busy, x, y, broken) = (
        webhook(&*store, "busy").await,
        webhook(&*store, "x").await,
        webhook(&*store, "y").await,
        webhook(&*store, "broken").await,
    );
    // The busy webhook's backlog is older than everyone else's work.
    let busy_due = backlog(&*store, &[busy], 300, T - 10_000).await;
    let due = backlog(&*store, &[x, y, broken], 20, T - 1_000).await;
    let ask = ClaimAsk {
        wants: &[(busy, 2)],
        others: Some(Others {
            limit: 100,
            per_webhook: 4,
        }),
        exclude: &[broken],
    };
    let claimed = store.claim(&node(), T, LEASE, &ask).await.unwrap();
    // The named webhook gets its two; its backlog does not crowd out the others.
    assert_eq!(ids_of(&claimed, busy), busy_due[&busy][..2]);
    assert_eq!(ids_of(&claimed, x), due[&x][..4]);
    assert_eq!(ids_of(&claimed, y), due[&y][..4]);
    assert!(ids_of(&claimed, broken).is_empty());
    assert_eq!(claimed.len(), 10);
    // claim_due (one part, no per-webhook cap) still takes the oldest first.
    let oldest = store.claim_due(&node(), T, LEASE, 5, &[]).await.unwrap();
    assert_eq!(ids_of(&oldest, busy), busy_due[&busy][2..7]);
}

async fn expired_leases_are_claimed_by_name_and_live_ones_are_not(db: &TestDatabase) {
    let store = db.connect().await;
    let a = webhook(&*store, "a").await;
    let due = backlog(&*store, &[a], 4, T - 1_000).await;
    let ask = ClaimAsk {
        wants: &[(a, 2)],
        others: None,
        exclude: &[],
    };
    let first = store.claim(&node(), T, LEASE, &ask).await.unwrap();
    assert_eq!(ids_of(&first, a), due[&a][..2]);
    // While the lease holds, asking again gets the next two, never the leased ones.
    let second = store.claim(&node(), T + 1, LEASE, &ask).await.unwrap();
    assert_eq!(ids_of(&second, a), due[&a][2..4]);
    assert!(
        store
            .claim(&node(), T + 2, LEASE, &ask)
            .await
            .unwrap()
            .is_empty()
    );
    // Once the first lease is over, its deliveries are due again, oldest first.
    let after = store
        .claim(&node(), T + LEASE + 1, LEASE, &ask)
        .await
        .unwrap();
    assert_eq!(ids_of(&after, a), due[&a][..2]);
}
