//! Issue #10, bug 5: on PostgreSQL, a NOTIFY failing after a commit made the write answer an
//! error although it had committed. Each write below commits, then notifies; with `pg_notify`
//! made to fail, every one must answer success and its change must be there.
//!
//! The fault is made in the database, not by a hook in the store: a `public.pg_notify` that
//! raises, found before the built-in one because the database's `search_path` puts `public`
//! before `pg_catalog`.

use carehook_store::testing::{Backend, TestDatabase};
use carehook_store::*;
use serde_json::json;
use sqlx::Connection;

const T: i64 = 1_700_000_000_000;

fn new_webhook() -> NewWebhook {
    NewWebhook {
        id: WebhookId::new(),
        name: "w".into(),
        enabled: true,
        events: vec!["kc_appointment_book".into()],
        config: json!({"url": "https://example.com/hook"}),
    }
}

fn event(webhook: WebhookId) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: "kc_appointment_book".into(),
        vars: Default::default(),
        idempotency_key: None,
        created_at: T,
        deliveries: vec![NewDelivery {
            id: DeliveryId::new(),
            webhook_id: webhook,
            next_attempt_at: T,
            is_test: false,
            ordering_key: None,
            scheduled: None,
        }],
        reschedule: Vec::new(),
    }
}

/// Makes every later connection to `db` find a `pg_notify` that fails.
async fn break_notify(db: &TestDatabase) {
    let name = db
        .url()
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
    for sql in [
        "CREATE FUNCTION public.pg_notify(channel text, payload text) RETURNS void \
         LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'pg_notify refused by the test'; END $$"
            .to_owned(),
        format!("ALTER DATABASE {name} SET search_path = public, pg_catalog"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_notify_after_commit_does_not_fail_the_write() {
    let Some(db) = TestDatabase::new(Backend::Postgres).await else {
        return;
    };
    // Work to act on, written while NOTIFY still works.
    let healthy = db.connect().await;
    let w = healthy.create_webhook(new_webhook()).await.unwrap().id;
    let recorded = healthy
        .record_events(vec![event(w), event(w)])
        .await
        .unwrap();
    let (d1, d2) = (recorded[0].delivery_ids()[0], recorded[1].delivery_ids()[0]);
    drop(healthy);

    break_notify(&db).await;
    let store = db.connect().await;
    // The fault is real: recording events notifies inside its transaction, so it fails and
    // writes nothing (an error for a write that did not commit is right).
    assert!(store.record_events(vec![event(w)]).await.is_err());
    let page = store.list_events(100, None).await.unwrap();
    assert_eq!(page.items.len(), 2, "the failed batch left nothing behind");

    // Each of these commits, then notifies: each answers success, and its change is there.
    let mut watch = store.watch_webhooks();
    watch.borrow_and_update();
    let created = store.create_webhook(new_webhook()).await.unwrap();
    assert!(store.get_webhook(created.id).await.unwrap().is_some());
    assert!(watch.has_changed().unwrap(), "this node still hears of it");
    let updated = store
        .update_webhook(created.id, "renamed".into(), true, vec![], json!({}), None)
        .await
        .unwrap()
        .expect("updated");
    assert_eq!(updated.name, "renamed");
    assert!(
        store
            .set_webhook_enabled(created.id, false, Some("test".into()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .get_webhook(created.id)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(store.delete_webhook(created.id).await.unwrap());
    assert!(store.get_webhook(created.id).await.unwrap().is_none());

    let node = NodeId::parse("post-commit").unwrap();
    store.start_node(&node, T).await.unwrap();
    assert_eq!(
        store
            .claim_due(&node, T, 60_000, 10, &[])
            .await
            .unwrap()
            .len(),
        2
    );
    store.release(&[d1]).await.unwrap();
    assert_eq!(
        store.start_node(&node, T + 1).await.unwrap(),
        1,
        "d2 was still leased"
    );
    let retried = store
        .retry_delivery(d1, T + 2)
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(retried.next_attempt_at, T + 2);
    store
        .record_attempts(vec![AttemptRecord {
            delivery_id: d2,
            attempt_no: 1,
            started_at: T + 3,
            duration_ms: 1,
            request: json!({}),
            response_status: Some(500),
            response_headers: None,
            response_body: None,
            error: Some("HTTP 500".into()),
            outcome: AttemptOutcome::GaveUp,
            next: DeliveryNext::Failed,
            store_bodies: true,
        }])
        .await
        .unwrap();
    assert_eq!(
        store.retry_failed(w, T - 1, T + 1, T + 4).await.unwrap(),
        vec![d2]
    );
    let claimed = store
        .claim_due(&node, T + 5, 60_000, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(store.release_dead_nodes(T + 10_000).await.unwrap(), 2);

    drop(store);
    db.cleanup().await;
}
