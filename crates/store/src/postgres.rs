//! The store on PostgreSQL, for several carehook nodes sharing one database.
//!
//! Batch writes send whole columns as arrays (`UNNEST($1::text[], …)`), so a batch of any size
//! is a handful of round trips inside one transaction rather than one per row. Claims use
//! `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other's rows. New work is announced
//! with `NOTIFY carehook_deliveries` in the writing transaction; every store LISTENs and turns
//! that into [`Store::watch_deliveries`] changes, so a node wakes for work another node recorded.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres};
use tokio::sync::watch;
use uuid::Uuid;

use crate::batch;
use crate::error::Result;
use crate::records::{self, Changed, RecordFilter, RecordLogic, RecordTuple, Target};
use crate::rows::{self, to_json};
use crate::rows::{assemble_claims, earliest};
use crate::sql::{self, Arg};
use crate::stats::{self, QueueDepth, WebhookStats};
use crate::types::*;
use crate::{Store, now_ms};
use carehook_core::clinic::{Kind, Record};

/// The channel `record_events`, retries and releases notify.
pub const NOTIFY_CHANNEL: &str = "carehook_deliveries";
/// Announces webhook changes, so every node reloads its compiled webhooks at once.
pub const WEBHOOKS_CHANNEL: &str = "carehook_webhooks";

const POOL_SIZE: u32 = 10;

#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    wake: watch::Sender<u64>,
    webhooks: watch::Sender<u64>,
    _listener: AbortOnDrop,
}

/// The LISTEN task lives exactly as long as the store.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    // Embedded by hand: `sqlx::migrate!` needs sqlx's `macros` feature, which we keep off.
    // The migrator takes an advisory lock, so nodes starting together migrate once.
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "init".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0001_init.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "clinic".into(),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0002_clinic.sql").into_sql_str(),
            false,
        ),
    ])
}

fn bump(n: &mut u64) {
    *n = n.wrapping_add(1);
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let mut listener = PgListener::connect(url).await?;
        listener
            .listen_all([NOTIFY_CHANNEL, WEBHOOKS_CHANNEL])
            .await?;
        let wake = watch::Sender::new(0);
        let webhooks = watch::Sender::new(0);
        let (tx, webhooks_tx) = (wake.clone(), webhooks.clone());
        let task = tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(n) if n.channel() == WEBHOOKS_CHANNEL => webhooks_tx.send_modify(bump),
                    Ok(_) => tx.send_modify(bump),
                    Err(e) => {
                        // The listener reconnects on the next recv; wake anyway, as
                        // notifications may have been missed while it was down.
                        tracing::warn!(error = %e, "LISTEN {NOTIFY_CHANNEL} interrupted");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        tx.send_modify(bump);
                        webhooks_tx.send_modify(bump);
                    }
                }
            }
        });
        let store = PgStore {
            pool,
            wake,
            webhooks,
            _listener: AbortOnDrop(task),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The pool, for callers that need raw access (tests, one-off tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Tells this node and, through NOTIFY, every other one that webhooks changed.
    async fn announce_webhooks(&self) -> Result<()> {
        self.webhooks.send_modify(bump);
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(WEBHOOKS_CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Wakes this node at once and, through NOTIFY, every other one.
    async fn announce(&self) -> Result<()> {
        self.wake.send_modify(bump);
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn bind_all<'q, O>(
    mut q: sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>,
    args: Vec<Arg>,
) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s),
            Arg::Int(i) => q.bind(i),
            Arg::NullText => q.bind(None::<String>),
            Arg::NullInt => q.bind(None::<i64>),
        };
    }
    q
}

fn ids_text<'a>(ids: impl IntoIterator<Item = &'a Uuid>) -> Vec<String> {
    ids.into_iter().map(|i| i.to_string()).collect()
}

/// Writes events and their deliveries inside the caller's transaction (`record_events`, and
/// clinic record changes), with the NOTIFY that other nodes get on commit: one answer per
/// event, and whether any delivery was written (the caller wakes this node after commit).
async fn write_events(
    conn: &mut sqlx::PgConnection,
    batch: &[NewEvent],
) -> Result<(Vec<Recorded>, bool)> {
    let plan = batch::plan_events(batch);
    let candidates = &plan.candidates;
    // A key committed earlier (or by a concurrent transaction, which this waits for) makes
    // the row conflict and be skipped; the `RETURNING` tells which were written.
    let inserted: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO events (id, event_type, vars, idempotency_key, created_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(
        candidates
            .iter()
            .map(|&i| batch[i].id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        candidates
            .iter()
            .map(|&i| batch[i].event_type.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        candidates
            .iter()
            .map(|&i| to_json(&batch[i].vars))
            .collect::<Vec<_>>(),
    )
    .bind(
        candidates
            .iter()
            .map(|&i| batch[i].idempotency_key.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        candidates
            .iter()
            .map(|&i| batch[i].created_at)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let inserted: HashSet<String> = inserted.into_iter().map(|(id,)| id).collect();

    // Keys that were already taken: find their first event and its deliveries.
    let taken = plan.taken_keys(batch, &inserted);
    let mut earlier = HashMap::new();
    if !taken.is_empty() {
        let firsts: Vec<(String, String)> = sqlx::query_as(
            "SELECT idempotency_key, id FROM events WHERE idempotency_key = ANY($1)",
        )
        .bind(&taken)
        .fetch_all(&mut *conn)
        .await?;
        let event_ids: Vec<&str> = firsts.iter().map(|(_, id)| id.as_str()).collect();
        let dels: Vec<(String, String)> = sqlx::query_as(
            "SELECT event_id, id FROM deliveries WHERE event_id = ANY($1) ORDER BY id",
        )
        .bind(&event_ids)
        .fetch_all(&mut *conn)
        .await?;
        earlier = batch::earlier_events(firsts, dels)?;
    }

    let deliveries = plan.deliveries(batch, &inserted);
    if !deliveries.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, \
             next_attempt_at, created_at, updated_at, is_test) \
             SELECT d.id, d.event_id, d.webhook_id, 'pending', 0, d.next_at, d.created, \
             d.created, d.is_test \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
             $6::bool[]) AS d(id, event_id, webhook_id, next_at, created, is_test)",
        )
        .bind(
            deliveries
                .iter()
                .map(|(d, _)| d.id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(_, e)| e.id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(d, _)| d.webhook_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(d, _)| d.next_attempt_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(_, e)| e.created_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(d, _)| d.is_test)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
        // Delivered to listeners on commit, never for a rolled-back batch.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut *conn)
            .await?;
    }
    Ok((
        plan.answers(batch, &inserted, &earlier)?,
        !deliveries.is_empty(),
    ))
}

// `FOR UPDATE` keeps two changes of one record (or two payments of one bill) in turn.
crate::records::record_txn!(sqlx::PgConnection, true);

#[async_trait::async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<()> {
        migrator().run(&self.pool).await?;
        Ok(())
    }

    async fn create_webhook(&self, w: NewWebhook) -> Result<WebhookRow> {
        let t: rows::WebhookTuple = sqlx::query_as(sql::INSERT_WEBHOOK)
            .bind(w.id.to_string())
            .bind(w.name)
            .bind(w.enabled)
            .bind(to_json(&w.events))
            .bind(to_json(&w.config))
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await?;
        self.announce_webhooks().await?;
        rows::webhook(t)
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<WebhookRow>> {
        let t: Option<rows::WebhookTuple> = sqlx::query_as(sql::GET_WEBHOOK)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        t.map(rows::webhook).transpose()
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookRow>> {
        let ts: Vec<rows::WebhookTuple> = sqlx::query_as(sql::LIST_WEBHOOKS)
            .fetch_all(&self.pool)
            .await?;
        ts.into_iter().map(rows::webhook).collect()
    }

    async fn update_webhook(
        &self,
        id: Uuid,
        name: String,
        enabled: bool,
        events: Vec<String>,
        config: serde_json::Value,
        disabled_reason: Option<String>,
    ) -> Result<Option<WebhookRow>> {
        let t: Option<rows::WebhookTuple> = sqlx::query_as(sql::UPDATE_WEBHOOK)
            .bind(id.to_string())
            .bind(name)
            .bind(enabled)
            .bind(to_json(&events))
            .bind(to_json(&config))
            .bind(disabled_reason)
            .bind(now_ms())
            .fetch_optional(&self.pool)
            .await?;
        if t.is_some() {
            self.announce_webhooks().await?;
        }
        t.map(rows::webhook).transpose()
    }

    async fn set_webhook_enabled(
        &self,
        id: Uuid,
        enabled: bool,
        reason: Option<String>,
    ) -> Result<bool> {
        let done = sqlx::query(sql::SET_WEBHOOK_ENABLED)
            .bind(id.to_string())
            .bind(enabled)
            .bind(reason)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 1 {
            self.announce_webhooks().await?;
        }
        Ok(done.rows_affected() == 1)
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query(sql::DELETE_WEBHOOK)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(sql::FAIL_DELIVERIES_OF_DELETED_WEBHOOK)
            .bind(id.to_string())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.announce_webhooks().await?;
        Ok(true)
    }

    async fn record_events(&self, batch: Vec<NewEvent>) -> Result<Vec<Recorded>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let (answers, any_deliveries) = write_events(&mut tx, &batch).await?;
        tx.commit().await?;
        if any_deliveries {
            self.wake.send_modify(bump);
        }
        Ok(answers)
    }

    async fn claim_due(
        &self,
        now: i64,
        lease_ms: i64,
        limit: u32,
        exclude: &[Uuid],
    ) -> Result<Vec<Claimed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One statement: lock (skipping rows other claimers hold), lease, and join the events.
        // Each branch reads one partial index in order; see the migrations.
        #[allow(clippy::type_complexity)]
        let rows: Vec<(String, String, String, i64, i64, bool, i64, String, String)> =
            sqlx::query_as(
                "WITH fresh AS ( \
                   SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at <= $1 \
                   AND webhook_id <> ALL($4::text[]) \
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
                 expired AS ( \
                   SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until < $1 \
                   AND next_attempt_at <= $1 AND webhook_id <> ALL($4::text[]) \
                   ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED), \
                 picked AS ( \
                   SELECT id FROM (SELECT * FROM fresh UNION ALL SELECT * FROM expired) u \
                   ORDER BY next_attempt_at LIMIT $3), \
                 claimed AS ( \
                   UPDATE deliveries d SET lease_until = $2 FROM picked WHERE d.id = picked.id \
                   RETURNING d.id, d.event_id, d.webhook_id, d.attempts, d.created_at, \
                   d.is_test, d.next_attempt_at) \
                 SELECT c.id, c.event_id, c.webhook_id, c.attempts, c.created_at, c.is_test, \
                 c.next_attempt_at, e.event_type, e.vars \
                 FROM claimed c JOIN events e ON e.id = c.event_id",
            )
            .bind(now)
            .bind(now.saturating_add(lease_ms))
            .bind(i64::from(limit))
            .bind(exclude.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .fetch_all(&self.pool)
            .await?;
        let mut events = Vec::new();
        let mut leased = Vec::with_capacity(rows.len());
        for (id, event_id, webhook_id, attempts, created_at, is_test, next_at, ty, vars) in rows {
            events.push((event_id.clone(), ty, vars));
            leased.push((
                id, event_id, webhook_id, attempts, created_at, is_test, next_at,
            ));
        }
        assemble_claims(leased, events)
    }

    async fn record_attempts(&self, batch: Vec<AttemptRecord>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let latest = batch::latest_per_delivery(&batch);

        let mut tx = self.pool.begin().await?;
        let moved: Vec<(String, String, bool)> = sqlx::query_as(
            "UPDATE deliveries d SET attempts = GREATEST(d.attempts, a.attempt_no), \
             status = a.status, next_attempt_at = COALESCE(a.next_at, d.next_attempt_at), \
             lease_until = NULL, last_status = a.last_status, last_error = a.last_error, \
             updated_at = a.ended \
             FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], $5::int8[], \
             $6::text[], $7::int8[]) AS a(id, attempt_no, status, next_at, last_status, \
             last_error, ended) \
             WHERE d.id = a.id AND d.status <> 'succeeded' \
             RETURNING d.id, d.webhook_id, d.is_test",
        )
        .bind(
            latest
                .iter()
                .map(|a| a.delivery_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(latest.iter().map(|a| a.attempt_no).collect::<Vec<_>>())
        .bind(
            latest
                .iter()
                .map(|a| rows::status_text(a.next))
                .collect::<Vec<_>>(),
        )
        .bind(
            latest
                .iter()
                .map(|a| batch::retry_at(a.next))
                .collect::<Vec<_>>(),
        )
        .bind(latest.iter().map(|a| a.response_status).collect::<Vec<_>>())
        .bind(latest.iter().map(|a| a.error.clone()).collect::<Vec<_>>())
        .bind(
            latest
                .iter()
                .map(|a| a.started_at.saturating_add(a.duration_ms))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;

        // The log keeps every attempt of an existing delivery, even a late one.
        sqlx::query(
            "INSERT INTO attempts (id, delivery_id, attempt_no, started_at, duration_ms, \
             request, response_status, response_headers, response_body, error, outcome) \
             SELECT a.* FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], \
             $6::text[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[]) \
             AS a(id, delivery_id, attempt_no, started_at, duration_ms, request, \
             response_status, response_headers, response_body, error, outcome) \
             WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id)",
        )
        .bind(
            batch
                .iter()
                .map(|_| Uuid::now_v7().to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|a| a.delivery_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|a| a.attempt_no).collect::<Vec<_>>())
        .bind(batch.iter().map(|a| a.started_at).collect::<Vec<_>>())
        .bind(batch.iter().map(|a| a.duration_ms).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|a| to_json(&a.request))
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|a| a.response_status).collect::<Vec<_>>())
        .bind(
            batch
                .iter()
                .map(|a| a.response_headers.as_ref().map(to_json))
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|a| a.response_body.clone())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|a| a.error.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;

        // Failure streaks of the webhooks concerned (test sends do not count).
        let webhook_of: HashMap<String, String> = moved
            .into_iter()
            .filter(|(_, _, is_test)| !is_test)
            .map(|(d, w, _)| (d, w))
            .collect();
        let mut per_webhook = batch::streak_inputs(&batch, &webhook_of);
        if !per_webhook.is_empty() {
            // Locked in id order, so concurrent batches cannot deadlock on webhooks.
            let olds: Vec<(String, Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT id, last_success_at, failing_since, last_failure_at FROM webhooks \
                 WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            )
            .bind(per_webhook.keys().cloned().collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            let mut news = Vec::with_capacity(olds.len());
            for (id, last_success_at, failing_since, last_failure_at) in olds {
                let Some(seen) = per_webhook.get_mut(id.as_str()) else {
                    continue;
                };
                let s = rows::Streak {
                    last_success_at,
                    failing_since,
                    last_failure_at,
                }
                .observe(seen);
                news.push((id, s));
            }
            sqlx::query(
                "UPDATE webhooks w SET last_success_at = s.ls, failing_since = s.fs, \
                 last_failure_at = s.lf \
                 FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[]) AS s(id, ls, fs, lf) \
                 WHERE w.id = s.id",
            )
            .bind(news.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>())
            .bind(
                news.iter()
                    .map(|(_, s)| s.last_success_at)
                    .collect::<Vec<_>>(),
            )
            .bind(
                news.iter()
                    .map(|(_, s)| s.failing_since)
                    .collect::<Vec<_>>(),
            )
            .bind(
                news.iter()
                    .map(|(_, s)| s.last_failure_at)
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release(&self, delivery_ids: &[Uuid]) -> Result<()> {
        if delivery_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE deliveries SET lease_until = NULL \
             WHERE id = ANY($1) AND lease_until IS NOT NULL",
        )
        .bind(ids_text(delivery_ids))
        .execute(&self.pool)
        .await?;
        self.announce().await
    }

    async fn next_due_at(&self) -> Result<Option<i64>> {
        let (due, lease): (Option<i64>, Option<i64>) =
            sqlx::query_as(sql::NEXT_DUE).fetch_one(&self.pool).await?;
        Ok(earliest(due, lease))
    }

    fn watch_webhooks(&self) -> watch::Receiver<u64> {
        self.webhooks.subscribe()
    }

    fn watch_deliveries(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn get_delivery(&self, id: Uuid) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>> {
        let mut conn = self.pool.acquire().await?;
        let t: Option<rows::DeliveryTuple> = sqlx::query_as(sql::GET_DELIVERY)
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(t) = t else { return Ok(None) };
        let attempts: Vec<rows::AttemptTuple> = sqlx::query_as(sql::GET_ATTEMPTS)
            .bind(id.to_string())
            .fetch_all(&mut *conn)
            .await?;
        Ok(Some((
            rows::delivery(t)?,
            attempts
                .into_iter()
                .map(rows::attempt)
                .collect::<Result<_>>()?,
        )))
    }

    async fn list_deliveries(&self, f: DeliveryFilter) -> Result<Page<DeliveryRow>> {
        let built = sql::list_deliveries(&f)?;
        let ts: Vec<rows::DeliveryTuple> =
            bind_all(sqlx::query_as(AssertSqlSafe(built.sql)), built.args)
                .fetch_all(&self.pool)
                .await?;
        let items = ts
            .into_iter()
            .map(rows::delivery)
            .collect::<Result<Vec<_>>>()?;
        Ok(sql::into_page(items, built.limit, |d| (d.created_at, d.id)))
    }

    async fn retry_delivery(&self, id: Uuid, now: i64) -> Result<Option<DeliveryRow>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::RETRY_DELIVERY)
            .bind(id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let t: Option<rows::DeliveryTuple> = sqlx::query_as(sql::GET_DELIVERY)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        if t.is_some() {
            self.announce().await?;
        }
        t.map(rows::delivery).transpose()
    }

    async fn retry_failed(
        &self,
        webhook_id: Uuid,
        since: i64,
        until: i64,
        now: i64,
    ) -> Result<Vec<Uuid>> {
        let ids: Vec<(String,)> = sqlx::query_as(sql::RETRY_FAILED)
            .bind(webhook_id.to_string())
            .bind(since)
            .bind(until)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        if !ids.is_empty() {
            self.announce().await?;
        }
        let mut ids = ids
            .iter()
            .map(|(i,)| rows::uuid(i))
            .collect::<Result<Vec<_>>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn webhooks_failing_since(&self, since: i64) -> Result<Vec<Uuid>> {
        let ids: Vec<(String,)> = sqlx::query_as(sql::WEBHOOKS_FAILING_SINCE)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        ids.iter().map(|(i,)| rows::uuid(i)).collect()
    }

    async fn webhook_stats(&self, webhook_id: Uuid, now: i64) -> Result<WebhookStats> {
        let id = webhook_id.to_string();
        let (h1, h24, d7, lookback) = stats::bounds(now);
        let deliveries: Vec<stats::CountTuple> = sqlx::query_as(stats::DELIVERY_COUNTS)
            .bind(&id)
            .bind(h1)
            .bind(h24)
            .bind(d7)
            .fetch_all(&self.pool)
            .await?;
        let attempts: Vec<stats::CountTuple> = sqlx::query_as(stats::ATTEMPT_COUNTS)
            .bind(&id)
            .bind(h1)
            .bind(h24)
            .bind(d7)
            .bind(lookback)
            .fetch_all(&self.pool)
            .await?;
        let durations: Vec<(i64, i64)> = sqlx::query_as(stats::ATTEMPT_DURATIONS)
            .bind(&id)
            .bind(d7)
            .bind(lookback)
            .bind(stats::STATS_SAMPLE)
            .fetch_all(&self.pool)
            .await?;
        let last: Option<stats::LastTuple> = sqlx::query_as(stats::LAST_DELIVERY)
            .bind(&id)
            .fetch_optional(&self.pool)
            .await?;
        stats::assemble(now, deliveries, attempts, durations, last)
    }

    async fn queue_depth(&self, now: i64) -> Result<QueueDepth> {
        let (due, scheduled, in_flight): (i64, i64, i64) = sqlx::query_as(stats::QUEUE_DEPTH)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(QueueDepth {
            due: due.max(0) as u64,
            scheduled: scheduled.max(0) as u64,
            in_flight: in_flight.max(0) as u64,
        })
    }

    async fn get_event(&self, id: Uuid) -> Result<Option<EventRow>> {
        let t: Option<rows::EventTuple> = sqlx::query_as(sql::GET_EVENT)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        t.map(rows::event).transpose()
    }

    async fn list_events(&self, limit: u32, cursor: Option<String>) -> Result<Page<EventRow>> {
        let built = sql::list_events(limit, cursor.as_deref())?;
        let ts: Vec<rows::EventTuple> =
            bind_all(sqlx::query_as(AssertSqlSafe(built.sql)), built.args)
                .fetch_all(&self.pool)
                .await?;
        let items = ts
            .into_iter()
            .map(rows::event)
            .collect::<Result<Vec<_>>>()?;
        Ok(sql::into_page(items, built.limit, |e| (e.created_at, e.id)))
    }

    async fn insert_token(&self, id: Uuid, name: &str, token_hash: &str, now: i64) -> Result<()> {
        sqlx::query(sql::INSERT_TOKEN)
            .bind(id.to_string())
            .bind(name)
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        let t: Option<rows::TokenTuple> = sqlx::query_as(sql::FIND_TOKEN)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        t.map(rows::token).transpose()
    }

    async fn touch_token(&self, id: Uuid, now: i64) -> Result<()> {
        sqlx::query(sql::TOUCH_TOKEN)
            .bind(id.to_string())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let ts: Vec<rows::TokenTuple> = sqlx::query_as(sql::LIST_TOKENS)
            .fetch_all(&self.pool)
            .await?;
        ts.into_iter().map(rows::token).collect()
    }

    async fn revoke_token(&self, id: Uuid, now: i64) -> Result<bool> {
        let done = sqlx::query(sql::REVOKE_TOKEN)
            .bind(id.to_string())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>> {
        let v: Option<(String,)> = sqlx::query_as(sql::KV_GET)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.map(|(v,)| v))
    }

    async fn kv_set(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(sql::KV_SET)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn change_record(
        &self,
        kind: Kind,
        target: Target,
        logic: &dyn RecordLogic,
        now: i64,
    ) -> Result<Changed> {
        let mut tx = self.pool.begin().await?;
        let mut txn = RecordTxn {
            conn: &mut tx,
            delivered: false,
        };
        let changed = records::change(&mut txn, kind, target, logic, now).await?;
        let delivered = txn.delivered;
        tx.commit().await?;
        if delivered {
            self.wake.send_modify(bump);
        }
        Ok(changed)
    }

    async fn get_record(&self, kind: Kind, id: i64) -> Result<Option<Record>> {
        let t: Option<RecordTuple> =
            sqlx::query_as(AssertSqlSafe(records::select_sql(kind, false)))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        t.map(|t| records::record(kind, t)).transpose()
    }

    async fn list_records(&self, kind: Kind, filter: RecordFilter) -> Result<Page<Record>> {
        let built = records::list_sql(kind, &filter)?;
        let ts: Vec<RecordTuple> = bind_all(sqlx::query_as(AssertSqlSafe(built.sql)), built.args)
            .fetch_all(&self.pool)
            .await?;
        let items = ts
            .into_iter()
            .map(|t| records::record(kind, t))
            .collect::<Result<Vec<_>>>()?;
        Ok(records::into_page(items, built.limit))
    }
}
