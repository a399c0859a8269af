//! The store on SQLite: one file, WAL, `synchronous = FULL` (an acknowledged event is on disk).
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly one connection
//! (callers queue in the pool instead of racing for the lock and failing with `SQLITE_BUSY`),
//! and reads use their own small pool (WAL readers never block the writer). Write transactions
//! start with `BEGIN IMMEDIATE` so that another process (the CLI) waits on `busy_timeout`
//! instead of failing half way. An in-memory database lives in one connection, so there both
//! pools are that one connection.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use serde_json::json;
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::batch;
use crate::error::{Result, StoreError};
use crate::records::{self, Changed, RecordFilter, RecordLogic, RecordTuple, Target};
use crate::rows::{self, assemble_claims, earliest, to_json};
use crate::sql::{self, Arg};
use crate::stats::{self, QueueDepth, WebhookStats};
use crate::types::*;
use crate::{Store, now_ms};
use carehook_core::clinic::{Kind, Record};

const READERS: u32 = 4;

#[derive(Debug)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    wake: watch::Sender<u64>,
    webhooks: watch::Sender<u64>,
}

fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    // Embedded by hand: `sqlx::migrate!` needs sqlx's `macros` feature, which we keep off.
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "init".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0001_init.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "clinic".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0002_clinic.sql").into_sql_str(),
            false,
        ),
    ])
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates. See [`crate::connect`] for the URL forms.
    pub async fn connect(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite URL {url:?}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // The writer stays open for the life of the store: it keeps an in-memory database
        // alive, and with it open the WAL files are never torn down under the readers.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(options)
                .await?
        };
        let store = SqliteStore {
            write,
            read,
            wake: watch::Sender::new(0),
            webhooks: watch::Sender::new(0),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The pool that writes, for the few callers that need raw access (tests, one-off tools).
    pub fn write_pool(&self) -> &SqlitePool {
        &self.write
    }

    fn wake(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn webhooks_changed(&self) {
        self.webhooks.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// A JSON array of ids, for `IN (SELECT value FROM json_each($n))`: one statement for any
/// number of ids, and one cached prepared statement.
fn id_array<'a>(ids: impl IntoIterator<Item = &'a Uuid>) -> String {
    to_json(&ids.into_iter().map(|i| i.to_string()).collect::<Vec<_>>())
}

fn bind_all<'q, O>(
    mut q: sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
    args: Vec<Arg>,
) -> sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
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

/// Writes events and their deliveries inside the caller's transaction (`record_events`, and
/// clinic record changes): one answer per event, and whether any delivery was written (the
/// caller wakes the dispatcher after commit).
async fn write_events(
    conn: &mut sqlx::SqliteConnection,
    batch: &[NewEvent],
) -> Result<(Vec<Recorded>, bool)> {
    let plan = batch::plan_events(batch);
    let events: Vec<serde_json::Value> = plan
        .candidates
        .iter()
        .map(|&i| {
            let ev = &batch[i];
            json!([
                ev.id.to_string(),
                ev.event_type,
                to_json(&ev.vars),
                ev.idempotency_key,
                ev.created_at
            ])
        })
        .collect();
    // `WHERE TRUE` keeps SQLite from reading `ON CONFLICT` as a join constraint.
    let inserted: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO events (id, event_type, vars, idempotency_key, created_at) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4 FROM json_each($1) \
         WHERE TRUE ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(to_json(&events))
    .fetch_all(&mut *conn)
    .await?;
    let inserted: HashSet<String> = inserted.into_iter().map(|(id,)| id).collect();

    let taken = plan.taken_keys(batch, &inserted);
    let mut earlier = HashMap::new();
    if !taken.is_empty() {
        let firsts: Vec<(String, String)> = sqlx::query_as(
            "SELECT idempotency_key, id FROM events \
             WHERE idempotency_key IN (SELECT value FROM json_each($1))",
        )
        .bind(to_json(&taken))
        .fetch_all(&mut *conn)
        .await?;
        let ids: Vec<&str> = firsts.iter().map(|(_, id)| id.as_str()).collect();
        let dels: Vec<(String, String)> = sqlx::query_as(
            "SELECT event_id, id FROM deliveries \
             WHERE event_id IN (SELECT value FROM json_each($1)) ORDER BY id",
        )
        .bind(to_json(&ids))
        .fetch_all(&mut *conn)
        .await?;
        earlier = batch::earlier_events(firsts, dels)?;
    }

    let deliveries: Vec<serde_json::Value> = plan
        .deliveries(batch, &inserted)
        .into_iter()
        .map(|(d, ev)| {
            json!([
                d.id.to_string(),
                ev.id.to_string(),
                d.webhook_id.to_string(),
                d.next_attempt_at,
                ev.created_at,
                d.is_test
            ])
        })
        .collect();
    if !deliveries.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, \
             next_attempt_at, created_at, updated_at, is_test) \
             SELECT value->>0, value->>1, value->>2, 'pending', 0, value->>3, value->>4, \
             value->>4, value->>5 FROM json_each($1)",
        )
        .bind(to_json(&deliveries))
        .execute(&mut *conn)
        .await?;
    }
    Ok((
        plan.answers(batch, &inserted, &earlier)?,
        !deliveries.is_empty(),
    ))
}

// SQLite has one writer: the write transaction already excludes every other change, so no
// row is locked.
crate::records::record_txn!(sqlx::SqliteConnection, false);

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        migrator().run(&self.write).await?;
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
            .fetch_one(&self.write)
            .await?;
        self.webhooks_changed();
        rows::webhook(t)
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<WebhookRow>> {
        let t: Option<rows::WebhookTuple> = sqlx::query_as(sql::GET_WEBHOOK)
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        t.map(rows::webhook).transpose()
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookRow>> {
        let ts: Vec<rows::WebhookTuple> = sqlx::query_as(sql::LIST_WEBHOOKS)
            .fetch_all(&self.read)
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
            .fetch_optional(&self.write)
            .await?;
        self.webhooks_changed();
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
            .execute(&self.write)
            .await?;
        self.webhooks_changed();
        Ok(done.rows_affected() == 1)
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool> {
        let mut tx = self.begin().await?;
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
        self.webhooks_changed();
        Ok(true)
    }

    async fn record_events(&self, batch: Vec<NewEvent>) -> Result<Vec<Recorded>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let (answers, any_deliveries) = write_events(&mut tx, &batch).await?;
        tx.commit().await?;
        if any_deliveries {
            self.wake();
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
        let mut tx = self.begin().await?;
        // Each branch reads one partial index in order and stops at `limit`, so the outer sort
        // sees at most 2 × limit rows however large the backlog.
        let leased: Vec<(String, String, String, i64, i64, bool, i64)> = sqlx::query_as(
            "UPDATE deliveries SET lease_until = $2 WHERE id IN ( \
               SELECT id FROM ( \
                 SELECT * FROM (SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at <= $1 \
                   AND webhook_id NOT IN (SELECT value FROM json_each($4)) \
                   ORDER BY next_attempt_at LIMIT $3) \
                 UNION ALL \
                 SELECT * FROM (SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until < $1 \
                   AND next_attempt_at <= $1 \
                   AND webhook_id NOT IN (SELECT value FROM json_each($4)) \
                   ORDER BY lease_until LIMIT $3) \
               ) ORDER BY next_attempt_at LIMIT $3) \
             RETURNING id, event_id, webhook_id, attempts, created_at, is_test, next_attempt_at",
        )
        .bind(now)
        .bind(now.saturating_add(lease_ms))
        .bind(i64::from(limit))
        .bind(to_json(
            &exclude.iter().map(Uuid::to_string).collect::<Vec<_>>(),
        ))
        .fetch_all(&mut *tx)
        .await?;
        if leased.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut event_ids: Vec<&str> = leased.iter().map(|r| r.1.as_str()).collect();
        event_ids.sort_unstable();
        event_ids.dedup();
        let events: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT id, event_type, vars FROM events WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(to_json(&event_ids))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        assemble_claims(leased, events)
    }

    async fn record_attempts(&self, batch: Vec<AttemptRecord>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let changes: Vec<serde_json::Value> = batch::latest_per_delivery(&batch)
            .into_iter()
            .map(|a| {
                json!([
                    a.delivery_id.to_string(),
                    a.attempt_no,
                    rows::status_text(a.next),
                    batch::retry_at(a.next),
                    a.response_status,
                    a.error,
                    a.started_at.saturating_add(a.duration_ms)
                ])
            })
            .collect();
        let attempts: Vec<serde_json::Value> = batch
            .iter()
            .map(|a| {
                json!([
                    Uuid::now_v7().to_string(),
                    a.delivery_id.to_string(),
                    a.attempt_no,
                    a.started_at,
                    a.duration_ms,
                    to_json(&a.request),
                    a.response_status,
                    a.response_headers.as_ref().map(to_json),
                    a.response_body,
                    a.error,
                    a.outcome.as_str()
                ])
            })
            .collect();
        let mut tx = self.begin().await?;
        let moved: Vec<(String, String, bool)> = sqlx::query_as(
            "UPDATE deliveries SET attempts = max(deliveries.attempts, a.attempt_no), \
             status = a.status, next_attempt_at = coalesce(a.next_at, deliveries.next_attempt_at), \
             lease_until = NULL, last_status = a.last_status, last_error = a.last_error, \
             updated_at = a.ended \
             FROM (SELECT value->>0 AS id, value->>1 AS attempt_no, value->>2 AS status, \
                   value->>3 AS next_at, value->>4 AS last_status, value->>5 AS last_error, \
                   value->>6 AS ended FROM json_each($1)) AS a \
             WHERE deliveries.id = a.id AND deliveries.status <> 'succeeded' \
             RETURNING deliveries.id, deliveries.webhook_id, deliveries.is_test",
        )
        .bind(to_json(&changes))
        .fetch_all(&mut *tx)
        .await?;
        // The log keeps every attempt of an existing delivery, even a late one.
        sqlx::query(
            "INSERT INTO attempts (id, delivery_id, attempt_no, started_at, duration_ms, \
             request, response_status, response_headers, response_body, error, outcome) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, \
             value->>6, value->>7, value->>8, value->>9, value->>10 FROM json_each($1) \
             WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = value->>1)",
        )
        .bind(to_json(&attempts))
        .execute(&mut *tx)
        .await?;

        let webhook_of: HashMap<String, String> = moved
            .into_iter()
            .filter(|m| !m.2)
            .map(|(d, w, _)| (d, w))
            .collect();
        for (webhook_id, mut seen) in batch::streak_inputs(&batch, &webhook_of) {
            let old: Option<(Option<i64>, Option<i64>, Option<i64>)> =
                sqlx::query_as(sql::GET_STREAK)
                    .bind(&webhook_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((last_success_at, failing_since, last_failure_at)) = old else {
                continue; // deleted meanwhile
            };
            let s = rows::Streak {
                last_success_at,
                failing_since,
                last_failure_at,
            }
            .observe(&mut seen);
            sqlx::query(sql::SET_STREAK)
                .bind(&webhook_id)
                .bind(s.last_success_at)
                .bind(s.failing_since)
                .bind(s.last_failure_at)
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
             WHERE id IN (SELECT value FROM json_each($1)) AND lease_until IS NOT NULL",
        )
        .bind(id_array(delivery_ids))
        .execute(&self.write)
        .await?;
        self.wake();
        Ok(())
    }

    async fn next_due_at(&self) -> Result<Option<i64>> {
        let (due, lease): (Option<i64>, Option<i64>) =
            sqlx::query_as(sql::NEXT_DUE).fetch_one(&self.read).await?;
        Ok(earliest(due, lease))
    }

    fn watch_webhooks(&self) -> watch::Receiver<u64> {
        self.webhooks.subscribe()
    }

    fn watch_deliveries(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    async fn get_delivery(&self, id: Uuid) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>> {
        let mut conn = self.read.acquire().await?;
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
                .fetch_all(&self.read)
                .await?;
        let items = ts
            .into_iter()
            .map(rows::delivery)
            .collect::<Result<Vec<_>>>()?;
        Ok(sql::into_page(items, built.limit, |d| (d.created_at, d.id)))
    }

    async fn retry_delivery(&self, id: Uuid, now: i64) -> Result<Option<DeliveryRow>> {
        let mut tx = self.begin().await?;
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
            self.wake();
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
            .fetch_all(&self.write)
            .await?;
        if !ids.is_empty() {
            self.wake();
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
            .fetch_all(&self.read)
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
            .fetch_all(&self.read)
            .await?;
        let attempts: Vec<stats::CountTuple> = sqlx::query_as(stats::ATTEMPT_COUNTS)
            .bind(&id)
            .bind(h1)
            .bind(h24)
            .bind(d7)
            .bind(lookback)
            .fetch_all(&self.read)
            .await?;
        let durations: Vec<(i64, i64)> = sqlx::query_as(stats::ATTEMPT_DURATIONS)
            .bind(&id)
            .bind(d7)
            .bind(lookback)
            .bind(stats::STATS_SAMPLE)
            .fetch_all(&self.read)
            .await?;
        let last: Option<stats::LastTuple> = sqlx::query_as(stats::LAST_DELIVERY)
            .bind(&id)
            .fetch_optional(&self.read)
            .await?;
        stats::assemble(now, deliveries, attempts, durations, last)
    }

    async fn queue_depth(&self, now: i64) -> Result<QueueDepth> {
        let (due, scheduled, in_flight): (i64, i64, i64) = sqlx::query_as(stats::QUEUE_DEPTH)
            .bind(now)
            .fetch_one(&self.read)
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
            .fetch_optional(&self.read)
            .await?;
        t.map(rows::event).transpose()
    }

    async fn list_events(&self, limit: u32, cursor: Option<String>) -> Result<Page<EventRow>> {
        let built = sql::list_events(limit, cursor.as_deref())?;
        let ts: Vec<rows::EventTuple> =
            bind_all(sqlx::query_as(AssertSqlSafe(built.sql)), built.args)
                .fetch_all(&self.read)
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
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        let t: Option<rows::TokenTuple> = sqlx::query_as(sql::FIND_TOKEN)
            .bind(token_hash)
            .fetch_optional(&self.read)
            .await?;
        t.map(rows::token).transpose()
    }

    async fn touch_token(&self, id: Uuid, now: i64) -> Result<()> {
        sqlx::query(sql::TOUCH_TOKEN)
            .bind(id.to_string())
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let ts: Vec<rows::TokenTuple> = sqlx::query_as(sql::LIST_TOKENS)
            .fetch_all(&self.read)
            .await?;
        ts.into_iter().map(rows::token).collect()
    }

    async fn revoke_token(&self, id: Uuid, now: i64) -> Result<bool> {
        let done = sqlx::query(sql::REVOKE_TOKEN)
            .bind(id.to_string())
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn kv_get(&self, key: &str) -> Result<Option<String>> {
        let v: Option<(String,)> = sqlx::query_as(sql::KV_GET)
            .bind(key)
            .fetch_optional(&self.read)
            .await?;
        Ok(v.map(|(v,)| v))
    }

    async fn kv_set(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(sql::KV_SET)
            .bind(key)
            .bind(value)
            .execute(&self.write)
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
        let mut tx = self.begin().await?;
        let mut txn = RecordTxn {
            conn: &mut tx,
            delivered: false,
        };
        let changed = records::change(&mut txn, kind, target, logic, now).await?;
        let delivered = txn.delivered;
        tx.commit().await?;
        if delivered {
            self.wake();
        }
        Ok(changed)
    }

    async fn get_record(&self, kind: Kind, id: i64) -> Result<Option<Record>> {
        let t: Option<RecordTuple> =
            sqlx::query_as(AssertSqlSafe(records::select_sql(kind, false)))
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        t.map(|t| records::record(kind, t)).transpose()
    }

    async fn list_records(&self, kind: Kind, filter: RecordFilter) -> Result<Page<Record>> {
        let built = records::list_sql(kind, &filter)?;
        let ts: Vec<RecordTuple> = bind_all(sqlx::query_as(AssertSqlSafe(built.sql)), built.args)
            .fetch_all(&self.read)
            .await?;
        let items = ts
            .into_iter()
            .map(|t| records::record(kind, t))
            .collect::<Result<Vec<_>>>()?;
        Ok(records::into_page(items, built.limit))
    }
}
