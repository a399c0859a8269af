//! Leases belong to nodes (issue #10, bug 2): a claim records its owner, a node that starts
//! releases its earlier incarnation's leases (SQLite: every lease), and a node whose heartbeat
//! is stale has its leases released by any live node. Each test runs on SQLite and PostgreSQL.

use std::collections::HashSet;

use carehook_store::testing::{Backend, TestDatabase};
use carehook_store::*;
use serde_json::json;

const T: i64 = 1_700_000_000_000;
/// Far longer than any test: a delivery claimed again was released, not expired.
const LEASE: i64 = 150_000;

on_both_backends!(
    a_restarted_node_gets_its_earlier_leases_back_at_once,
    a_stale_nodes_leases_go_to_the_live_ones,
);

fn node(name: &str) -> NodeId {
    NodeId::parse(name).unwrap()
}

/// `n` deliveries due at `T`, to one new webhook.
async fn pending(store: &dyn Store, n: usize) -> HashSet<DeliveryId> {
    let w = store
        .create_webhook(NewWebhook {
            id: WebhookId::new(),
            name: "w".into(),
            enabled: true,
            events: vec!["kc_appointment_book".into()],
            config: json!({"url": "https://example.com/hook"}),
        })
        .await
        .unwrap()
        .id;
    let batch = (0..n)
        .map(|_| NewEvent {
            id: EventId::new(),
            event_type: "kc_appointment_book".into(),
            vars: Default::default(),
            idempotency_key: None,
            created_at: T,
            deliveries: vec![NewDelivery {
                id: DeliveryId::new(),
                webhook_id: w,
                next_attempt_at: T,
                is_test: false,
                ordering_key: None,
                scheduled: None,
            }],
            reschedule: Vec::new(),
        })
        .collect();
    let recorded = store.record_events(batch).await.unwrap();
    recorded
        .iter()
        .flat_map(|r| r.delivery_ids().to_vec())
        .collect()
}

async fn claim(store: &dyn Store, by: &NodeId, now: i64, limit: u32) -> HashSet<DeliveryId> {
    store
        .claim_due(by, now, LEASE, limit, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.delivery_id)
        .collect()
}

async fn a_restarted_node_gets_its_earlier_leases_back_at_once(db: &TestDatabase) {
    let store = db.connect().await;
    let (a, b) = (node("node-a"), node("node-b"));
    assert_eq!(store.start_node(&a, T).await.unwrap(), 0);
    let all = pending(&*store, 3).await;
    let held_by_a = claim(&*store, &a, T, 3).await;
    assert_eq!(held_by_a, all);
    assert!(claim(&*store, &b, T + 1, 10).await.is_empty(), "leased");

    let mut wake = store.watch_deliveries();
    wake.borrow_and_update();
    if db.backend() == Backend::Postgres {
        // Another node starting leaves A's leases alone: A may be alive.
        assert_eq!(store.start_node(&b, T + 2).await.unwrap(), 0);
        assert!(claim(&*store, &b, T + 3, 10).await.is_empty());
    }
    // A starts again (it crashed): what its earlier incarnation held is free at once, long
    // before the lease would end. On SQLite one process owns the file, so any start frees all.
    assert_eq!(store.start_node(&a, T + 4).await.unwrap(), 3);
    assert!(
        wake.has_changed().unwrap(),
        "the release wakes the dispatcher"
    );
    assert_eq!(claim(&*store, &b, T + 5, 10).await, all);
    // B holds them now; A starting yet again takes nothing from B on PostgreSQL.
    if db.backend() == Backend::Postgres {
        assert_eq!(store.start_node(&a, T + 6).await.unwrap(), 0);
        assert!(claim(&*store, &a, T + 7, 10).await.is_empty());
    }
}

async fn a_stale_nodes_leases_go_to_the_live_ones(db: &TestDatabase) {
    let store = db.connect().await;
    let (a, b) = (node("node-a"), node("node-b"));
    store.start_node(&a, T).await.unwrap();
    store.start_node(&b, T).await.unwrap();
    let all = pending(&*store, 3).await;
    let held_by_a = claim(&*store, &a, T, 2).await;
    let held_by_b = claim(&*store, &b, T, 10).await;
    assert_eq!(held_by_a.len(), 2);
    assert_eq!(held_by_b.len(), 1);

    // Both alive at the cut-off: nothing moves.
    store.heartbeat(&a, T + 1_000).await.unwrap();
    store.heartbeat(&b, T + 1_000).await.unwrap();
    assert_eq!(store.release_dead_nodes(T + 1_000).await.unwrap(), 0);

    // B keeps beating, A goes quiet: past the cut-off, A's leases (only those) are released.
    store.heartbeat(&b, T + 12_000).await.unwrap();
    let mut wake = store.watch_deliveries();
    wake.borrow_and_update();
    assert_eq!(store.release_dead_nodes(T + 2_000).await.unwrap(), 2);
    assert!(
        wake.has_changed().unwrap(),
        "the release wakes the dispatcher"
    );
    assert_eq!(claim(&*store, &b, T + 12_001, 10).await, held_by_a);
    assert_eq!(
        held_by_a.union(&held_by_b).copied().collect::<HashSet<_>>(),
        all
    );
    // A was forgotten, and B's leases (old and new) stay B's.
    assert_eq!(store.release_dead_nodes(T + 2_000).await.unwrap(), 0);

    // A lease whose owner is not registered at all (taken for dead, then it claimed before
    // its next heartbeat) is released as well; one with a live owner is not.
    let c = node("node-c");
    let more = pending(&*store, 1).await;
    assert_eq!(claim(&*store, &c, T + 13_000, 10).await, more);
    assert_eq!(store.release_dead_nodes(T + 2_000).await.unwrap(), 1);
    // A heartbeat registers C again; its new lease is then safe.
    store.heartbeat(&c, T + 13_000).await.unwrap();
    assert_eq!(claim(&*store, &c, T + 13_001, 10).await, more);
    assert_eq!(store.release_dead_nodes(T + 2_000).await.unwrap(), 0);
}
