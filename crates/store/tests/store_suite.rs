//! The store suite: every test is written once against `dyn Store` and runs on SQLite (a temp
//! file) and PostgreSQL (a fresh database; skipped when unreachable unless
//! `CAREHOOK_REQUIRE_POSTGRES=1`). Test `x` runs as `x::sqlite` and `x::postgres`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use carehook_store::testing::{Backend, TestDatabase};
use carehook_store::*;
use serde_json::json;
use uuid::Uuid;

/// Some fixed "now" (2023-11-14), so tests control the clock.
const T: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;

/// The node the suite's claims are made by.
fn node() -> NodeId {
    NodeId::parse("suite-node").unwrap()
}

on_both_backends!(
    partner_links_are_found_by_hash_listed_by_webhook_and_revoked_once,
    webhook_crud_bumps_the_version,
    deleting_a_webhook_fails_its_pending_deliveries_and_keeps_the_log,
    recorded_events_have_pending_deliveries,
    an_idempotency_key_seen_before_returns_the_first_event,
    claim_due_respects_due_time_and_leases,
    claim_due_leaves_excluded_webhooks_alone,
    concurrent_claims_never_hand_out_a_delivery_twice,
    record_attempts_moves_deliveries_on,
    a_late_attempt_cannot_undo_a_success,
    list_deliveries_filters_and_pages_each_row_once,
    list_events_pages_newest_first,
    retry_delivery_and_retry_failed_make_deliveries_due_now,
    webhooks_failing_since_needs_a_streak_covering_the_window,
    release_clears_leases_and_new_work_wakes_watchers,
    tokens_are_found_by_hash_until_revoked,
    kv_sets_and_overwrites,
    a_new_connection_sees_what_record_events_returned,
    migrating_again_changes_nothing,
    two_stores_on_one_database_write_at_once,
    webhook_stats_count_windows_and_leave_tests_out,
    queue_depth_counts_due_scheduled_and_leased,
    a_second_factors_time_step_is_taken_once,
);

// --- helpers -----------------------------------------------------------------------------------

fn new_webhook(name: &str) -> NewWebhook {
    NewWebhook {
        id: WebhookId::new(),
        name: name.into(),
        enabled: true,
        events: vec!["kc_appointment_book".into()],
        config: json!({"url": "https://example.com/hook", "method": "POST", "body": "{\"a\":\"{{patient_name}}\"}"}),
    }
}

async fn webhook(store: &dyn Store, name: &str) -> WebhookId {
    store.create_webhook(new_webhook(name)).await.unwrap().id
}

fn vars(pairs: &[(&str, &str)]) -> carehook_core::Vars {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An event of `event_type` at `at` with one delivery per webhook, due at `at`.
fn event_of(event_type: &str, webhooks: &[WebhookId], at: i64, key: Option<&str>) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: event_type.into(),
        vars: vars(&[
            ("patient_name", "Zoë O\"Brien 🏥"),
            ("appointment_id", "42"),
        ]),
        idempotency_key: key.map(str::to_owned),
        created_at: at,
        deliveries: webhooks
            .iter()
            .map(|&w| NewDelivery {
                id: DeliveryId::new(),
                webhook_id: w,
                next_attempt_at: at,
                is_test: false,
                ordering_key: None,
                scheduled: None,
            })
            .collect(),
        reschedule: Vec::new(),
    }
}

fn event(webhooks: &[WebhookId], at: i64) -> NewEvent {
    event_of("kc_appointment_book", webhooks, at, None)
}

async fn record_one(store: &dyn Store, ev: NewEvent) -> Vec<DeliveryId> {
    let r = store.record_events(vec![ev]).await.unwrap();
    r[0].delivery_ids().to_vec()
}

fn attempt(
    delivery_id: DeliveryId,
    attempt_no: i64,
    at: i64,
    outcome: AttemptOutcome,
    next: DeliveryNext,
) -> AttemptRecord {
    let ok = outcome == AttemptOutcome::Succeeded;
    AttemptRecord {
        delivery_id,
        attempt_no,
        started_at: at,
        duration_ms: 120,
        request: json!({"method": "POST", "url": "https://example.com/hook", "headers": [["content-type", "application/json"]], "body": "{\"a\":\"Zoë 🏥\"}"}),
        response_status: Some(if ok { 200 } else { 503 }),
        response_headers: Some(json!({"retry-after": "5"})),
        response_body: Some(if ok {
            "ok".into()
        } else {
            "unavailable".into()
        }),
        error: if ok { None } else { Some("HTTP 503".into()) },
        outcome,
        next,
        store_bodies: true,
    }
}

async fn delivery(store: &dyn Store, id: DeliveryId) -> DeliveryRow {
    store
        .get_delivery(id)
        .await
        .unwrap()
        .expect("delivery exists")
        .0
}

// --- webhooks ----------------------------------------------------------------------------------

async fn webhook_crud_bumps_the_version(db: &TestDatabase) {
    let store = db.connect().await;
    let new = new_webhook("Slack: new appointment 🏥");
    let created = store.create_webhook(new.clone()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.name, "Slack: new appointment 🏥");
    assert!(created.enabled);
    assert_eq!(created.events, vec!["kc_appointment_book"]);
    assert_eq!(created.config, new.config);
    assert_eq!(created.version, 1);
    assert_eq!(created.disabled_reason, None);
    assert_eq!(
        store.get_webhook(new.id).await.unwrap(),
        Some(created.clone())
    );

    let second = webhook(&*store, "second").await;
    let listed: Vec<WebhookId> = store
        .list_webhooks()
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, vec![new.id, second]);

    let config = json!({"url": "https://example.com/other", "nested": {"emoji": "✅"}});
    let updated = store
        .update_webhook(
            new.id,
            "renamed".into(),
            true,
            vec!["*".into()],
            config.clone(),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((updated.version, updated.name.as_str()), (2, "renamed"));
    assert_eq!(updated.events, vec!["*"]);
    assert_eq!(updated.config, config);
    assert_eq!(updated.created_at, created.created_at);

    assert!(
        store
            .set_webhook_enabled(new.id, false, Some("410 Gone".into()))
            .await
            .unwrap()
    );
    let disabled = store.get_webhook(new.id).await.unwrap().unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.version, 3);
    assert_eq!(disabled.disabled_reason.as_deref(), Some("410 Gone"));
    assert!(store.set_webhook_enabled(new.id, true, None).await.unwrap());
    let enabled = store.get_webhook(new.id).await.unwrap().unwrap();
    assert!(enabled.enabled && enabled.disabled_reason.is_none() && enabled.version == 4);

    let missing = WebhookId::new();
    assert!(
        store
            .update_webhook(missing, "x".into(), true, vec![], json!({}), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .set_webhook_enabled(missing, false, None)
            .await
            .unwrap()
    );
    assert!(matches!(
        store.create_webhook(new.clone()).await,
        Err(StoreError::Conflict(_))
    ));

    assert!(store.delete_webhook(new.id).await.unwrap());
    assert!(!store.delete_webhook(new.id).await.unwrap());
    assert_eq!(store.get_webhook(new.id).await.unwrap(), None);
    assert_eq!(store.list_webhooks().await.unwrap().len(), 1);
}

async fn deleting_a_webhook_fails_its_pending_deliveries_and_keeps_the_log(db: &TestDatabase) {
    let store = db.connect().await;
    let (a, b) = (webhook(&*store, "a").await, webhook(&*store, "b").await);
    let ids = record_one(&*store, event(&[a, b], T)).await;
    let done = record_one(&*store, event(&[a], T + 1)).await[0];
    store
        .record_attempts(vec![attempt(
            done,
            1,
            T + 2,
            AttemptOutcome::Succeeded,
            DeliveryNext::Succeeded,
        )])
        .await
        .unwrap();

    assert!(store.delete_webhook(a).await.unwrap());
    let of_a = delivery(&*store, ids[0]).await;
    assert_eq!(of_a.status, DeliveryStatus::Failed);
    assert_eq!(of_a.last_error.as_deref(), Some("webhook deleted"));
    let (kept, attempts) = store.get_delivery(done).await.unwrap().unwrap();
    assert_eq!(kept.status, DeliveryStatus::Succeeded);
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        delivery(&*store, ids[1]).await.status,
        DeliveryStatus::Pending
    );
    let claimed: Vec<DeliveryId> = store
        .claim_due(&node(), T + 10, LEASE, 10, &[])
        .await
        .unwrap()
        .iter()
        .map(|c| c.delivery_id)
        .collect();
    assert_eq!(claimed, vec![ids[1]]);
}

// --- events ------------------------------------------------------------------------------------

async fn recorded_events_have_pending_deliveries(db: &TestDatabase) {
    let store = db.connect().await;
    assert_eq!(store.next_due_at().await.unwrap(), None);
    assert!(store.record_events(vec![]).await.unwrap().is_empty());
    let (a, b) = (webhook(&*store, "a").await, webhook(&*store, "b").await);
    let first = event(&[a, b], T);
    let mut second = event_of("kc_patient_add", &[b], T + 5_000, None);
    second.deliveries[0].is_test = true;
    let no_deliveries = event(&[], T + 1);
    let recorded = store
        .record_events(vec![first.clone(), second.clone(), no_deliveries.clone()])
        .await
        .unwrap();
    assert_eq!(
        recorded,
        vec![
            Recorded::Created {
                event_id: first.id,
                delivery_ids: first.deliveries.iter().map(|d| d.id).collect()
            },
            Recorded::Created {
                event_id: second.id,
                delivery_ids: vec![second.deliveries[0].id]
            },
            Recorded::Created {
                event_id: no_deliveries.id,
                delivery_ids: vec![]
            },
        ]
    );

    let ev = store.get_event(first.id).await.unwrap().unwrap();
    assert_eq!(ev.event_type, "kc_appointment_book");
    assert_eq!(
        ev.vars, first.vars,
        "UTF-8, quotes and emoji come back untouched"
    );
    assert_eq!((ev.created_at, ev.idempotency_key), (T, None));
    assert_eq!(store.get_event(EventId::new()).await.unwrap(), None);

    let (d, attempts) = store
        .get_delivery(first.deliveries[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d,
        DeliveryRow {
            id: first.deliveries[1].id,
            event_id: first.id,
            webhook_id: b,
            event_type: "kc_appointment_book".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: T,
            created_at: T,
            updated_at: T,
            last_status: None,
            last_error: None,
            is_test: false,
        }
    );
    assert!(attempts.is_empty());
    assert!(delivery(&*store, second.deliveries[0].id).await.is_test);
    assert_eq!(store.get_delivery(DeliveryId::new()).await.unwrap(), None);
    assert_eq!(store.next_due_at().await.unwrap(), Some(T));
}

async fn an_idempotency_key_seen_before_returns_the_first_event(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store, "w").await;
    let first = event_of("kc_bill_add", &[w], T, Some("bill-1"));
    let r1 = store.record_events(vec![first.clone()]).await.unwrap();
    let first_deliveries = vec![first.deliveries[0].id];
    assert_eq!(
        r1,
        vec![Recorded::Created {
            event_id: first.id,
            delivery_ids: first_deliveries.clone()
        }]
    );

    // Across batches, and twice within one batch (beside an unrelated event and a new key).
    let again = event_of("kc_bill_add", &[w], T + 1, Some("bill-1"));
    let other = event(&[w], T + 2);
    let new_a = event_of("kc_bill_add", &[w], T + 3, Some("bill-2"));
    let new_b = event_of("kc_bill_add", &[w], T + 4, Some("bill-2"));
    let r2 = store
        .record_events(vec![
            again.clone(),
            other.clone(),
            new_a.clone(),
            new_b.clone(),
            again.clone(),
        ])
        .await
        .unwrap();
    let dup_first = Recorded::Duplicate {
        event_id: first.id,
        delivery_ids: first_deliveries.clone(),
    };
    assert_eq!(
        r2,
        vec![
            dup_first.clone(),
            Recorded::Created {
                event_id: other.id,
                delivery_ids: vec![other.deliveries[0].id]
            },
            Recorded::Created {
                event_id: new_a.id,
                delivery_ids: vec![new_a.deliveries[0].id]
            },
            Recorded::Duplicate {
                event_id: new_a.id,
                delivery_ids: vec![new_a.deliveries[0].id]
            },
            dup_first,
        ]
    );
    assert_eq!(
        store.get_event(again.id).await.unwrap(),
        None,
        "a duplicate writes nothing"
    );
    assert_eq!(store.get_event(new_b.id).await.unwrap(), None);
    assert_eq!(
        store.get_delivery(again.deliveries[0].id).await.unwrap(),
        None
    );
    let page = store.list_events(100, None).await.unwrap();
    assert_eq!(page.items.len(), 3);
    let deliveries = store
        .list_deliveries(DeliveryFilter::default())
        .await
        .unwrap();
    assert_eq!(deliveries.items.len(), 3);
}

// --- claiming ----------------------------------------------------------------------------------

async fn claim_due_leaves_excluded_webhooks_alone(db: &TestDatabase) {
    let store = db.connect().await;
    let busy = webhook(&*store, "busy").await;
    let idle = webhook(&*store, "idle").await;
    // The busy webhook's deliveries are older, so they come first unless excluded.
    let busy_ids = record_one(&*store, event(&[busy], T - 5_000)).await;
    let idle_ids = record_one(&*store, event(&[idle], T)).await;
    let claimed = store
        .claim_due(&node(), T, LEASE, 10, &[busy])
        .await
        .unwrap();
    let ids: Vec<DeliveryId> = claimed.iter().map(|c| c.delivery_id).collect();
    assert_eq!(ids, idle_ids);
    // Not leased by that claim: available once no longer excluded.
    let claimed = store.claim_due(&node(), T, LEASE, 10, &[]).await.unwrap();
    let ids: Vec<DeliveryId> = claimed.iter().map(|c| c.delivery_id).collect();
    assert_eq!(ids, busy_ids);
}

async fn claim_due_respects_due_time_and_leases(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store, "w").await;
    let later = record_one(&*store, event(&[w], T + 60_000)).await[0];
    let ev = event(&[w], T);
    let now_ids = record_one(&*store, ev.clone()).await;
    let older = record_one(&*store, event(&[w], T - 1_000)).await[0];

    assert!(
        store
            .claim_due(&node(), T - 2_000, LEASE, 10, &[])
            .await
            .unwrap()
            .is_empty(),
        "nothing due yet"
    );
    assert!(
        store
            .claim_due(&node(), T, LEASE, 0, &[])
            .await
            .unwrap()
            .is_empty()
    );

    let claimed = store.claim_due(&node(), T, LEASE, 10, &[]).await.unwrap();
    let ids: Vec<DeliveryId> = claimed.iter().map(|c| c.delivery_id).collect();
    assert_eq!(
        ids,
        vec![older, now_ids[0]],
        "due ones only, oldest due first"
    );
    let c = &claimed[1];
    assert_eq!(
        (
            c.event_id,
            c.webhook_id,
            c.attempts,
            c.created_at,
            c.is_test
        ),
        (ev.id, w, 0, T, false)
    );
    assert_eq!(c.event_type, "kc_appointment_book");
    assert_eq!(c.vars, ev.vars);

    // Leased: nobody else gets them while the lease holds, even once "later" is due too.
    assert!(
        store
            .claim_due(&node(), T + 1, LEASE, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(T + LEASE + 1));
    let at_60s: Vec<DeliveryId> = store
        .claim_due(&node(), T + 60_000, LEASE, 10, &[])
        .await
        .unwrap()
        .iter()
        .map(|c| c.delivery_id)
        .collect();
    // The lease (until T+30s) expired before T+60s: claimed again, with "later" behind them.
    assert_eq!(at_60s, vec![older, now_ids[0], later]);
    assert!(
        store
            .claim_due(&node(), T + 60_000, LEASE, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );

    // A limit is a limit.
    let w2 = webhook(&*store, "w2").await;
    for i in 0..5 {
        record_one(&*store, event(&[w2], T + 100_000 + i)).await;
    }
    assert_eq!(
        store
            .claim_due(&node(), T + 200_000, LEASE, 2, &[])
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn concurrent_claims_never_hand_out_a_delivery_twice(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store, "w").await;
    let batch: Vec<NewEvent> = (0..100).map(|i| event(&[w], T + i)).collect();
    store.record_events(batch).await.unwrap();

    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim_due(&node(), T + 1_000, LEASE, 7, &[])
                        .await
                        .unwrap();
                    if got.is_empty() {
                        break;
                    }
                    mine.extend(got.into_iter().map(|c| c.delivery_id));
                    tokio::task::yield_now().await;
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<DeliveryId> = all.iter().copied().collect();
    assert_eq!(all.len(), 100, "every delivery claimed exactly once");
    assert_eq!(unique.len(), 100);
}

// --- attempts ----------------------------------------------------------------------------------

async fn record_attempts_moves_deliveries_on(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store, "w").await;
    let ids = record_one(&*store, event(&[w, w, w], T)).await;
    let (retry, ok, fail) = (ids[0], ids[1], ids[2]);
    assert_eq!(
        store
            .claim_due(&node(), T, LEASE, 10, &[])
            .await
            .unwrap()
            .len(),
        3
    );
    store.record_attempts(vec![]).await.unwrap();
    store
        .record_attempts(vec![
            attempt(
                retry,
                1,
                T + 10,
                AttemptOutcome::Retry,
                DeliveryNext::RetryAt(T + 5_000),
            ),
            attempt(
                ok,
                1,
                T + 11,
                AttemptOutcome::Succeeded,
                DeliveryNext::Succeeded,
            ),
            attempt(
                fail,
                1,
                T + 12,
                AttemptOutcome::Failed,
                DeliveryNext::Failed,
            ),
        ])
        .await
        .unwrap();

    let d = delivery(&*store, retry).await;
    assert_eq!(
        (d.status, d.attempts, d.next_attempt_at),
        (DeliveryStatus::Pending, 1, T + 5_000)
    );
    assert_eq!(
        (d.last_status, d.last_error.as_deref(), d.updated_at),
        (Some(503), Some("HTTP 503"), T + 130)
    );
    let d = delivery(&*store, ok).await;
    assert_eq!(
        (d.status, d.attempts, d.last_status, d.last_error),
        (DeliveryStatus::Succeeded, 1, Some(200), None)
    );
    let d = delivery(&*store, fail).await;
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 1));

    // The retry's lease is gone and it is due at its new time, not before.
    assert!(
        store
            .claim_due(&node(), T + 4_999, LEASE, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due_at().await.unwrap(), Some(T + 5_000));
    let again = store
        .claim_due(&node(), T + 5_000, LEASE, 10, &[])
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].delivery_id, again[0].attempts), (retry, 1));
    store
        .record_attempts(vec![attempt(
            retry,
            2,
            T + 5_001,
            AttemptOutcome::Succeeded,
            DeliveryNext::Succeeded,
        )])
        .await
        .unwrap();

    let (d, attempts) = store.get_delivery(retry).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Succeeded, 2));
    assert_eq!(attempts.len(), 2);
    let a = &attempts[0];
    assert_eq!(
        (a.delivery_id, a.attempt_no, a.started_at, a.duration_ms),
        (retry, 1, T + 10, 120)
    );
    assert_eq!(a.outcome, AttemptOutcome::Retry);
    assert_eq!(
        a.request,
        attempt(retry, 1, 0, AttemptOutcome::Retry, DeliveryNext::Failed).request
    );
    assert_eq!(a.response_status, Some(503));
    assert_eq!(a.response_headers, Some(json!({"retry-after": "5"})));
    assert_eq!(
        (a.response_body.as_deref(), a.error.as_deref()),
        (Some("unavailable"), Some("HTTP 503"))
    );
    assert_eq!(
        (attempts[1].attempt_no, attempts[1].outcome),
        (2, AttemptOutcome::Succeeded)
    );
    assert_eq!(store.next_due_at().await.unwrap(), None);

    // An attempt for a delivery that does not exist is dropped, not an error for the batch.
    store
        .record_attempts(vec![attempt(
            DeliveryId::new(),
            1,
            T,
            AttemptOutcome::Failed,
            DeliveryNext::Failed,
        )])
        .await
        .unwrap();
}

async fn a_late_attempt_cannot_undo_a_success(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store, "w").await;
    let id = record_one(&*store, event(&[w], T)).await[0];
    store.claim_due(&node(), T, LEASE, 10, &[]).await.unwrap();
    // The lease expired, another worker took it and succeeded; then the first one reports.
    store
        .claim_due(&node(), T + LEASE + 1, LEASE, 10, &[])
        .await
        .unwrap();
    store
        .record_attempts(vec![attempt(
            id,
            1,
            T + LEASE + 2,
            AttemptOutcome::Succeeded,
            DeliveryNext::Succeeded,
        )])
        .await
        .unwrap();
    store
        .record_attempts(vec![attempt(
            id,
            1,
            T + 5,
            AttemptOutcome::Retry,
            DeliveryNext::RetryAt(T + 99_999),
        )])
        .await
        .unwrap();
    let (d, attempts) = store.get_delivery(id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Succeeded);
    assert_eq!(attempts.len(), 2, "both attempts are in the log");
}

// --- the log -----------------------------------------------------------------------------------

async fn list_deliveries_filters_and_pages_each_row_once(db: &TestDatabase) {
    let store = db.connect().await;
    let (a, b) = (webhook(&*store, "a").await, webhook(&*store, "b").await);
    // 25 deliveries: 15 for a, 10 for b; two share each timestamp so ties page correctly.
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.push(event(&[a, b], T + i / 2));
    }
    for i in 0..5 {
        batch.push(event_of("kc_patient_add", &[a], T + 100 + i, None));
    }
    let recorded = store.record_events(batch).await.unwrap();
    let all: HashSet<DeliveryId> = recorded
        .iter()
        .flat_map(|r| r.delivery_ids().to_vec())
        .collect();
    assert_eq!(all.len(), 25);

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_deliveries(DeliveryFilter {
                limit: 10,
                cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 10);
        seen.extend(page.items.iter().map(|d| (d.created_at, d.id)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 10, "paging must end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    assert_eq!(
        seen.iter().map(|(_, id)| *id).collect::<HashSet<_>>(),
        all,
        "each row exactly once"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(seen, sorted, "newest first");

    let of = |f: DeliveryFilter| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_deliveries(DeliveryFilter { limit: 100, ..f })
                .await
                .unwrap()
                .items
        }
    };
    let of_b = of(DeliveryFilter {
        webhook_id: Some(b),
        ..Default::default()
    })
    .await;
    assert_eq!(of_b.len(), 10);
    assert!(of_b.iter().all(|d| d.webhook_id == b));
    let of_set = of(DeliveryFilter {
        webhook_ids: Some(vec![b]),
        ..Default::default()
    })
    .await;
    assert_eq!(of_set, of_b, "a set of one webhook is that webhook");
    let of_none = of(DeliveryFilter {
        webhook_ids: Some(vec![]),
        ..Default::default()
    })
    .await;
    assert!(
        of_none.is_empty(),
        "an empty set of webhooks has no deliveries"
    );
    let patients = of(DeliveryFilter {
        event_type: Some("kc_patient_add".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(patients.len(), 5);
    assert!(patients.iter().all(|d| d.event_type == "kc_patient_add"));
    let window = of(DeliveryFilter {
        since: Some(T + 1),
        until: Some(T + 3),
        ..Default::default()
    })
    .await;
    assert_eq!(
        window.len(),
        8,
        "created_at in [T+1, T+3): 4 events × 2 webhooks"
    );
    assert!(
        window
            .iter()
            .all(|d| (T + 1..T + 3).contains(&d.created_at))
    );

    let one = patients[0].id;
    store
        .claim_due(&node(), T + 1_000, LEASE, 100, &[])
        .await
        .unwrap();
    store
        .record_attempts(vec![attempt(
            one,
            1,
            T + 1_000,
            AttemptOutcome::Failed,
            DeliveryNext::Failed,
        )])
        .await
        .unwrap();
    let failed = of(DeliveryFilter {
        status: Some(DeliveryStatus::Failed),
        ..Default::default()
    })
    .await;
    assert_eq!(failed.iter().map(|d| d.id).collect::<Vec<_>>(), vec![one]);
    let combined = of(DeliveryFilter {
        webhook_id: Some(a),
        status: Some(DeliveryStatus::Pending),
        event_type: Some("kc_patient_add".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(combined.len(), 4);

    for bad in ["nonsense", "12.zz"] {
        let r = store
            .list_deliveries(DeliveryFilter {
                cursor: Some(bad.into()),
                ..Default::default()
            })
            .await;
        assert!(r.is_err_and(|e| e.is_bad_cursor()), "{bad}");
    }
}

async fn list_events_pages_newest_first(db: &TestDatabase) {
    let store = db.connect().await;
    let batch: Vec<NewEvent> = (0..7).map(|i| event(&[], T + i)).collect();
    let ids: Vec<EventId> = batch.iter().rev().map(|e| e.id).collect();
    store.record_events(batch).await.unwrap();
    let p1 = store.list_events(3, None).await.unwrap();
    let p2 = store.list_events(3, p1.next_cursor.clone()).await.unwrap();
    let p3 = store.list_events(3, p2.next_cursor.clone()).await.unwrap();
    assert_eq!(p3.next_cursor, None);
    let got: Vec<EventId> = [p1.items, p2.items, p3.items]
        .concat()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(got, ids);
}

async fn retry_delivery_and_retry_failed_make_deliveries_due_now(db: &TestDatabase) {
    let store = db.connect().await;
    let (a, b) = (webhook(&*store, "a").await, webhook(&*store, "b").await);
    let mut failed_a = Vec::new();
    let mut batch = Vec::new();
    for i in 0..4 {
        batch.push(event(&[a, b], T + i * 1_000));
    }
    let recorded = store.record_events(batch).await.unwrap();
    store
        .claim_due(&node(), T + 10_000, LEASE, 100, &[])
        .await
        .unwrap();
    let mut attempts = Vec::new();
    for r in &recorded {
        for &d in r.delivery_ids() {
            attempts.push(attempt(
                d,
                1,
                T + 10_000,
                AttemptOutcome::Failed,
                DeliveryNext::Failed,
            ));
        }
        failed_a.push(r.delivery_ids()[0]);
    }
    store.record_attempts(attempts).await.unwrap();
    assert_eq!(store.next_due_at().await.unwrap(), None);

    // One delivery, whatever its status.
    let now = T + 20_000;
    let d = store
        .retry_delivery(failed_a[0], now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.status, d.next_attempt_at, d.attempts),
        (DeliveryStatus::Pending, now, 1)
    );
    assert_eq!(
        store.retry_delivery(DeliveryId::new(), now).await.unwrap(),
        None
    );
    let claimed = store.claim_due(&node(), now, LEASE, 10, &[]).await.unwrap();
    assert_eq!(
        (claimed[0].delivery_id, claimed[0].attempts),
        (failed_a[0], 1)
    );

    // A failed delivery whose event was erased is counted apart: a retry skips it.
    let mut erased = event(&[a], T + 2_500);
    erased.vars.insert("patient_id".into(), "p-7".into());
    let erased = record_one(&*store, erased).await[0];
    store.erase_patient("p-7", T + 15_000).await.unwrap();
    assert_eq!(
        delivery(&*store, erased).await.status,
        DeliveryStatus::Failed
    );
    let count = store
        .count_failed(a, T + 1_000, T + 3_000, 1_000)
        .await
        .unwrap();
    assert_eq!(
        (count.retryable, count.purged, count.more),
        (2, 1, false),
        "what a bulk retry of [T+1s, T+3s) would send, and skip"
    );
    assert!(
        store
            .count_failed(a, T + 1_000, T + 3_000, 3)
            .await
            .unwrap()
            .more
    );
    let none = store
        .count_failed(b, T + 5_000, T + 9_000, 1_000)
        .await
        .unwrap();
    assert_eq!((none.retryable, none.purged, none.more), (0, 0, false));

    // All failed ones of webhook a created in [T+1s, T+3s): the 2nd and 3rd events.
    let mut expected = vec![failed_a[1], failed_a[2]];
    expected.sort();
    let retried = store
        .retry_failed(a, T + 1_000, T + 3_000, now)
        .await
        .unwrap();
    assert_eq!(retried, expected);
    assert!(
        store
            .retry_failed(a, T + 1_000, T + 3_000, now)
            .await
            .unwrap()
            .is_empty(),
        "no longer failed"
    );
    for id in &expected {
        let d = delivery(&*store, *id).await;
        assert_eq!(
            (d.status, d.next_attempt_at),
            (DeliveryStatus::Pending, now)
        );
    }
    assert_eq!(
        delivery(&*store, failed_a[3]).await.status,
        DeliveryStatus::Failed
    );
    assert_eq!(
        delivery(&*store, recorded[1].delivery_ids()[1])
            .await
            .status,
        DeliveryStatus::Failed,
        "webhook b untouched"
    );
}

async fn webhooks_failing_since_needs_a_streak_covering_the_window(db: &TestDatabase) {
    const DAY: i64 = 86_400_000;
    let store = db.connect().await;
    let dead = webhook(&*store, "dead for a week").await;
    let recovered = webhook(&*store, "failed, then recovered").await;
    let new_failure = webhook(&*store, "failed once yesterday").await;
    let quiet = webhook(&*store, "failed long ago, no traffic since").await;
    let disabled = webhook(&*store, "dead but already disabled").await;
    let only_tests = webhook(&*store, "only test sends failing").await;

    let now = T + 30 * DAY;
    let since = now - 5 * DAY;
    // (webhook, started_at, succeeded, is_test)
    let plan = [
        (dead, now - 7 * DAY, false, false),
        (dead, now - 3 * DAY, false, false),
        (dead, now - DAY, false, false),
        (recovered, now - 7 * DAY, false, false),
        (recovered, now - 2 * DAY, true, false),
        (recovered, now - DAY, false, false),
        (new_failure, now - 9 * DAY, true, false),
        (new_failure, now - DAY, false, false),
        (quiet, now - 20 * DAY, false, false),
        (disabled, now - 7 * DAY, false, false),
        (disabled, now - DAY, false, false),
        (only_tests, now - 7 * DAY, false, true),
        (only_tests, now - DAY, false, true),
    ];
    let mut events = Vec::new();
    for (w, at, _, is_test) in plan {
        let mut e = event(&[w], at);
        e.deliveries[0].is_test = is_test;
        events.push(e);
    }
    let recorded = store.record_events(events).await.unwrap();
    // Record in two batches, newest first, to exercise out-of-order arrival.
    let mut attempts: Vec<AttemptRecord> = plan
        .iter()
        .zip(&recorded)
        .map(|((_, at, ok, _), r)| {
            let (outcome, next) = if *ok {
                (AttemptOutcome::Succeeded, DeliveryNext::Succeeded)
            } else {
                (AttemptOutcome::Failed, DeliveryNext::Failed)
            };
            attempt(r.delivery_ids()[0], 1, *at, outcome, next)
        })
        .collect();
    attempts.reverse();
    let older = attempts.split_off(6);
    store.record_attempts(attempts).await.unwrap();
    store.record_attempts(older).await.unwrap();
    assert!(
        store
            .set_webhook_enabled(disabled, false, Some("manual".into()))
            .await
            .unwrap()
    );

    assert_eq!(
        store.webhooks_failing_since(since).await.unwrap(),
        vec![dead]
    );
    // Re-enabling starts afresh; so does a changed config.
    assert!(
        store
            .set_webhook_enabled(disabled, true, None)
            .await
            .unwrap()
    );
    assert_eq!(
        store.webhooks_failing_since(since).await.unwrap(),
        vec![dead]
    );
    let w = store.get_webhook(dead).await.unwrap().unwrap();
    store
        .update_webhook(
            dead,
            w.name.clone(),
            true,
            w.events.clone(),
            w.config.clone(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store.webhooks_failing_since(since).await.unwrap(),
        vec![dead],
        "same config: still failing"
    );
    store
        .update_webhook(
            dead,
            w.name,
            true,
            w.events,
            json!({"url": "https://fixed.example.com"}),
            None,
        )
        .await
        .unwrap();
    assert!(
        store
            .webhooks_failing_since(since)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn release_clears_leases_and_new_work_wakes_watchers(db: &TestDatabase) {
    let store = db.connect().await;
    let mut watch = store.watch_deliveries();
    watch.borrow_and_update();
    let w = webhook(&*store, "w").await;
    let ids = record_one(&*store, event(&[w, w], T)).await;
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("record_events wakes watchers")
        .unwrap();

    assert_eq!(
        store
            .claim_due(&node(), T, LEASE, 10, &[])
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .claim_due(&node(), T, LEASE, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );
    watch.borrow_and_update();
    store.release(&[ids[0]]).await.unwrap();
    store.release(&[]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("release wakes watchers")
        .unwrap();
    let again: Vec<DeliveryId> = store
        .claim_due(&node(), T, LEASE, 10, &[])
        .await
        .unwrap()
        .iter()
        .map(|c| c.delivery_id)
        .collect();
    assert_eq!(again, vec![ids[0]]);

    if db.backend() == Backend::Postgres {
        // Another node's store hears about work this one recorded.
        let other = db.connect().await;
        let mut other_watch = other.watch_deliveries();
        other_watch.borrow_and_update();
        record_one(&*store, event(&[w], T)).await;
        tokio::time::timeout(Duration::from_secs(5), other_watch.changed())
            .await
            .expect("NOTIFY reaches the other store")
            .unwrap();
    }
}

// --- tokens and kv -----------------------------------------------------------------------------

async fn tokens_are_found_by_hash_until_revoked(db: &TestDatabase) {
    let store = db.connect().await;
    let (id, other) = (TokenId::new(), TokenId::new());
    store.insert_token(id, "admin", "hash-1", T).await.unwrap();
    store
        .insert_token(other, "ci", "hash-2", T + 1)
        .await
        .unwrap();
    assert!(matches!(
        store.insert_token(TokenId::new(), "dup", "hash-1", T).await,
        Err(StoreError::Conflict(_))
    ));

    let found = store.find_token("hash-1").await.unwrap().unwrap();
    assert_eq!(
        found,
        TokenRow {
            id,
            name: "admin".into(),
            role: "owner".into(),
            clinics: None,
            bodies: true,
            created_at: T,
            last_used_at: None,
            revoked_at: None
        }
    );
    assert_eq!(store.find_token("nope").await.unwrap(), None);
    // A role and clinics are kept as given.
    let limited = TokenId::new();
    let clinics = vec!["2".to_string(), "7".to_string()];
    let access = TokenAccess {
        role: "viewer".into(),
        clinics: Some(clinics.clone()),
        bodies: false,
    };
    store
        .insert_scoped_token(limited, "desk", "hash-3", &access, T + 2)
        .await
        .unwrap();
    let found = store.find_token("hash-3").await.unwrap().unwrap();
    assert_eq!(
        (found.role.as_str(), found.clinics, found.bodies),
        ("viewer", Some(clinics), false)
    );
    store.touch_token(id, T + 50).await.unwrap();
    assert_eq!(
        store
            .find_token("hash-1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(T + 50)
    );

    assert!(store.revoke_token(id, T + 100).await.unwrap());
    assert!(
        !store.revoke_token(id, T + 200).await.unwrap(),
        "already revoked"
    );
    assert!(!store.revoke_token(TokenId::new(), T).await.unwrap());
    assert_eq!(store.find_token("hash-1").await.unwrap(), None);
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![id, other, limited]
    );
    assert_eq!(listed[0].revoked_at, Some(T + 100));
}

async fn kv_sets_and_overwrites(db: &TestDatabase) {
    let store = db.connect().await;
    assert_eq!(store.kv_get("admin_token_hash").await.unwrap(), None);
    store.kv_set("admin_token_hash", "abc").await.unwrap();
    store.kv_set("other", "✅").await.unwrap();
    store.kv_set("admin_token_hash", "def").await.unwrap();
    assert_eq!(
        store.kv_get("admin_token_hash").await.unwrap().as_deref(),
        Some("def")
    );
    assert_eq!(store.kv_get("other").await.unwrap().as_deref(), Some("✅"));
}

// --- durability and schema ---------------------------------------------------------------------

async fn a_new_connection_sees_what_record_events_returned(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store, "w").await;
    let ev = event(&[w], T);
    store.record_events(vec![ev.clone()]).await.unwrap();
    // A second store opened on the same database, the first one closed.
    drop(store);
    let reopened = db.connect().await;
    let got = reopened
        .get_event(ev.id)
        .await
        .unwrap()
        .expect("event survives reconnect");
    assert_eq!(got.vars, ev.vars);
    let claimed = reopened
        .claim_due(&node(), T, LEASE, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery_id, ev.deliveries[0].id);
}

async fn migrating_again_changes_nothing(db: &TestDatabase) {
    let store = db.connect().await;
    store.kv_set("k", "v").await.unwrap();
    store.migrate().await.unwrap();
    let second = db.connect().await; // connect migrates too
    assert_eq!(second.kv_get("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(
        second.backend(),
        if db.backend() == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        }
    );
}

async fn two_stores_on_one_database_write_at_once(db: &TestDatabase) {
    // Two processes on one SQLite file (the server and the CLI), or two nodes on PostgreSQL:
    // their writes wait for each other (busy_timeout, BEGIN IMMEDIATE) instead of failing.
    let (one, two) = (db.connect().await, db.connect().await);
    let w = webhook(&*one, "w").await;
    let writers: Vec<_> = [one, two]
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                for i in 0..20 {
                    let batch = (0..20).map(|j| event(&[w], T + i * 20 + j)).collect();
                    store.record_events(batch).await.unwrap();
                    store
                        .claim_due(&node(), T + 1_000, LEASE, 10, &[])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in writers {
        t.await.unwrap();
    }
    let store = db.connect().await;
    let page = store
        .list_deliveries(DeliveryFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 800);
}

// --- connect ---------------------------------------------------------------------------------

#[tokio::test]
async fn connect_refuses_an_unknown_scheme_clearly() {
    let err = carehook_store::connect("mysql://localhost/db")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(err.to_string().contains("mysql"), "{err}");
}

#[tokio::test]
async fn an_in_memory_sqlite_store_works_for_quick_tests() {
    let store = carehook_store::connect("sqlite::memory:").await.unwrap();
    let w = webhook(&*store, "w").await;
    record_one(&*store, event(&[w], T)).await;
    let listed = store
        .list_deliveries(DeliveryFilter::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        store
            .claim_due(&node(), T, LEASE, 10, &[])
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_missing_sqlite_file_is_created() {
    let dir = tempfile_dir();
    let path = dir.join("carehook.db");
    let store = carehook_store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.kv_set("k", "v").await.unwrap();
    assert!(path.exists());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("carehook-store-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// --- statistics and queue depth ------------------------------------------------------------------

async fn webhook_stats_count_windows_and_leave_tests_out(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store, "stats").await;
    let other = webhook(&*store, "other").await;
    let hour = 3_600_000;
    let now = T + 30 * 24 * hour;
    // Two days ago: a success. Ten minutes ago: a failure after a retry. Five minutes ago: pending.
    let old = record_one(&*store, event(&[w, other], now - 48 * hour)).await;
    let recent = record_one(&*store, event(&[w], now - 10 * 60_000)).await;
    record_one(&*store, event(&[w], now - 5 * 60_000)).await;
    let mut a = attempt(
        old[0],
        1,
        now - 48 * hour,
        AttemptOutcome::Succeeded,
        DeliveryNext::Succeeded,
    );
    a.duration_ms = 300;
    let b = attempt(
        old[1],
        1,
        now - 48 * hour,
        AttemptOutcome::Failed,
        DeliveryNext::Failed,
    );
    let mut c = attempt(
        recent[0],
        1,
        now - 10 * 60_000,
        AttemptOutcome::Retry,
        DeliveryNext::RetryAt(now - 9 * 60_000),
    );
    c.duration_ms = 100;
    let mut d = attempt(
        recent[0],
        2,
        now - 9 * 60_000,
        AttemptOutcome::Failed,
        DeliveryNext::Failed,
    );
    d.duration_ms = 200;
    store.record_attempts(vec![a, b, c, d]).await.unwrap();
    // A test send counts nowhere.
    let mut test = event(&[w], now - 60_000);
    test.deliveries[0].is_test = true;
    let t = record_one(&*store, test).await;
    store
        .record_attempts(vec![attempt(
            t[0],
            1,
            now - 60_000,
            AttemptOutcome::Succeeded,
            DeliveryNext::Succeeded,
        )])
        .await
        .unwrap();

    let s = store.webhook_stats(w, now).await.unwrap();
    let labels: Vec<&str> = s.windows.iter().map(|w| w.window).collect();
    assert_eq!(labels, ["1h", "24h", "7d"]);
    let (h1, d1, d7) = (&s.windows[0], &s.windows[1], &s.windows[2]);
    assert_eq!((h1.pending, h1.succeeded, h1.failed), (1, 0, 1));
    assert_eq!((d1.pending, d1.succeeded, d1.failed), (1, 0, 1));
    assert_eq!((d7.pending, d7.succeeded, d7.failed), (1, 1, 1));
    assert_eq!(
        (h1.attempts_retry, h1.attempts_failed, h1.attempts_succeeded),
        (1, 1, 0)
    );
    assert_eq!(
        (d7.attempts_retry, d7.attempts_failed, d7.attempts_succeeded),
        (1, 1, 1)
    );
    assert_eq!(h1.success_rate, Some(0.0));
    assert_eq!(d7.success_rate, Some(0.5));
    assert_eq!((h1.p50_ms, h1.p95_ms), (Some(100), Some(200)));
    assert_eq!((d7.p50_ms, d7.p95_ms), (Some(200), Some(300)));
    let last = s.last.expect("a tried delivery");
    assert_eq!(last.delivery_id, recent[0]);
    assert_eq!(last.status, DeliveryStatus::Failed);
    assert_eq!(last.http_status, Some(503));

    let none = store.webhook_stats(WebhookId::new(), now).await.unwrap();
    assert!(none.last.is_none());
    assert!(
        none.windows
            .iter()
            .all(|w| w.success_rate.is_none() && w.p50_ms.is_none())
    );
}

async fn queue_depth_counts_due_scheduled_and_leased(db: &TestDatabase) {
    let store = db.connect().await;
    let w = webhook(&*store, "q").await;
    assert_eq!(store.queue_depth(T).await.unwrap(), QueueDepth::default());
    record_one(&*store, event(&[w], T - 1000)).await;
    record_one(&*store, event(&[w], T - 500)).await;
    record_one(&*store, event(&[w], T + 60_000)).await;
    let done = record_one(&*store, event(&[w], T - 2000)).await;
    store
        .record_attempts(vec![attempt(
            done[0],
            1,
            T - 2000,
            AttemptOutcome::Succeeded,
            DeliveryNext::Succeeded,
        )])
        .await
        .unwrap();
    let q = store.queue_depth(T).await.unwrap();
    assert_eq!((q.due, q.scheduled, q.in_flight), (2, 1, 0));
    let claimed = store.claim_due(&node(), T, LEASE, 1, &[]).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let q = store.queue_depth(T).await.unwrap();
    assert_eq!((q.due, q.scheduled, q.in_flight), (1, 1, 1));
}

async fn partner_links_are_found_by_hash_listed_by_webhook_and_revoked_once(db: &TestDatabase) {
    let store = db.connect().await;
    let (w, other) = (
        webhook(&*store, "shared").await,
        webhook(&*store, "other").await,
    );
    let link = |hash: &str, webhook_id: WebhookId, at: i64| PartnerLinkRow {
        id: Uuid::now_v7(),
        secret_hash: hash.into(),
        webhook_id,
        label: Some("Pharmacy IT 🏥".into()),
        show_bodies: false,
        created_by: "api token admin".into(),
        created_at: at,
        expires_at: at + 1000,
        revoked_at: None,

        maker: Some("user:7".into()),
        clinics_at_creation: Some(vec!["2".into(), "3".into()]),
    };
    let (a, b, c) = (
        link("h-a", w, T),
        link("h-b", w, T + 1),
        link("h-c", other, T),
    );
    for l in [&a, &b, &c] {
        store.insert_partner_link(l).await.unwrap();
    }
    assert!(matches!(
        store.insert_partner_link(&link("h-a", w, T)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.partner_link_by_hash("h-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.partner_link_by_hash("nope").await.unwrap(), None);
    let listed = store.list_partner_links(w).await.unwrap();
    assert_eq!(
        listed,
        vec![b.clone(), a.clone()],
        "newest first, this webhook's only"
    );
    // Revoked once, and only through its own webhook.
    assert!(!store.revoke_partner_link(other, a.id, T + 5).await.unwrap());
    assert!(store.revoke_partner_link(w, a.id, T + 5).await.unwrap());
    assert!(!store.revoke_partner_link(w, a.id, T + 6).await.unwrap());
    let revoked = store.partner_link_by_hash("h-a").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(T + 5));
    assert_eq!(
        store
            .partner_link_by_hash("h-c")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

/// A code's time step is taken once: the same or an older step again is refused (a code seen
/// by someone else cannot be replayed), a newer one is taken; another account is apart.
async fn a_second_factors_time_step_is_taken_once(db: &TestDatabase) {
    let store = db.connect().await;
    let user = |id: &str, email: &str| UserRow {
        id: id.into(),
        email: email.into(),
        display_name: email.into(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        totp_secret: Some("sealed".into()),
        role: "owner".into(),
        clinics: None,
        bodies: true,
        disabled_at: None,
        created_at: T,
        updated_at: T,
        last_login_at: None,
    };
    store
        .insert_user(&user("u-1", "ada@clinic.example"))
        .await
        .unwrap();
    store
        .insert_user(&user("u-2", "bo@clinic.example"))
        .await
        .unwrap();
    let step = 59_000_000_i64;
    assert!(
        store.accept_totp_step("u-1", step).await.unwrap(),
        "first use"
    );
    assert!(
        !store.accept_totp_step("u-1", step).await.unwrap(),
        "the same step again"
    );
    assert!(
        !store.accept_totp_step("u-1", step - 1).await.unwrap(),
        "an older step"
    );
    assert!(
        store.accept_totp_step("u-2", step).await.unwrap(),
        "another account's own"
    );
    assert!(
        store.accept_totp_step("u-1", step + 1).await.unwrap(),
        "the next step"
    );
    assert!(
        !store.accept_totp_step("nobody", step + 5).await.unwrap(),
        "no such account"
    );
}
