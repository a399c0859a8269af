//! Issue 14 (idle cost): what a lone event costs beyond its work. On SQLite the store tells
//! the dispatcher whether a wake-up brought anything due later than now, so a wake-up by an
//! event due at once needs no read of the next due time; on PostgreSQL it cannot tell (other
//! nodes), and says so.

use carehook_store::testing::{Backend, TestDatabase};
use carehook_store::*;
use serde_json::json;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn new_webhook() -> NewWebhook {
    NewWebhook {
        id: WebhookId::new(),
        name: "w".into(),
        enabled: true,
        events: vec!["kc_appointment_book".into()],
        config: json!({"url": "https://example.com/hook"}),
    }
}

fn event(webhook: WebhookId, due: i64) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: "kc_appointment_book".into(),
        vars: Default::default(),
        idempotency_key: None,
        created_at: now_ms(),
        deliveries: vec![NewDelivery {
            id: DeliveryId::new(),
            webhook_id: webhook,
            next_attempt_at: due,
            is_test: false,
            ordering_key: None,
            scheduled: None,
        }],
        reschedule: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_work_due_later_changes_the_later_work_generation() {
    let Some(db) = TestDatabase::new(Backend::Sqlite).await else {
        return;
    };
    let store = db.connect().await;
    let w = store.create_webhook(new_webhook()).await.unwrap().id;
    let mut wake = store.watch_deliveries();
    wake.borrow_and_update();
    let before = store.later_work_generation().expect("known on SQLite");

    // Due at once: the dispatcher is woken, and the next later due time is unchanged.
    let now = now_ms();
    let recorded = store.record_events(vec![event(w, now)]).await.unwrap();
    assert!(wake.has_changed().unwrap(), "the dispatcher is woken");
    wake.borrow_and_update();
    assert_eq!(store.later_work_generation(), Some(before));
    assert_eq!(store.next_due_after(now_ms()).await.unwrap(), None);

    // Due in an hour: woken, and told to read the next due time again, which is that hour.
    let later = now_ms() + 3_600_000;
    store.record_events(vec![event(w, later)]).await.unwrap();
    assert!(wake.has_changed().unwrap());
    wake.borrow_and_update();
    let after = store.later_work_generation().unwrap();
    assert_ne!(after, before);
    assert_eq!(store.next_due_after(now_ms()).await.unwrap(), Some(later));

    // A lease handed back: what else it brings is not known, so read again. The claim before
    // it (a bookkeeping transaction) and the webhook written after it (outside a transaction)
    // both stay readable from a fresh connection.
    let node = NodeId::parse("idle-cost").unwrap();
    store.start_node(&node, now_ms()).await.unwrap();
    let claimed = store
        .claim_due(&node, now_ms(), 60_000, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery_id, recorded[0].delivery_ids()[0]);
    store.release(&[claimed[0].delivery_id]).await.unwrap();
    assert_ne!(store.later_work_generation(), Some(after));
    let other = store.create_webhook(new_webhook()).await.unwrap().id;
    let fresh = db.connect().await;
    assert!(fresh.get_webhook(other).await.unwrap().is_some());
    let again = fresh
        .claim_due(&node, now_ms(), 60_000, 10, &[])
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the released delivery is claimable again");
    drop((store, fresh));
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_does_not_know_what_other_nodes_bring() {
    let Some(db) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    let store = db.connect().await;
    assert_eq!(store.later_work_generation(), None);
    drop(store);
    db.cleanup().await;
}
