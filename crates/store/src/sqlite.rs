//! The store on SQLite: one file, WAL, `synchronous = FULL` (an acknowledged event is on disk).
//! The dispatcher's bookkeeping (a claim's leases, attempt results) commits with
//! `synchronous = NORMAL`: durable against a crash of carehook, and a power cut can only undo
//! the last of it, so a delivery is sent again (at-least-once, as after any crash). It saves
//! two of the three fsyncs a lone event cost. The next `FULL` commit syncs the WAL, and with
//! it every frame written before.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly one connection
//! (callers queue in the pool instead of racing for the lock and failing with `SQLITE_BUSY`),
//! and reads use their own small pool (WAL readers never block the writer). Write transactions
//! start with `BEGIN IMMEDIATE` so that another process (the CLI) waits on `busy_timeout`
//! instead of failing half way. An in-memory database lives in one connection, so there both
//! pools are that one connection.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use sqlx::Transaction;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::batch;
use crate::dialect::{Channel, Claim, Dialect, run_shared_sql};
use crate::error::{Result, StoreError};
use crate::ordering::first_of_its_key;
use crate::payload::{StoredAttempt, StoredEvent};
use crate::rows::{self, Leased, assemble_claims, to_json};
use crate::sql_store::SqlStore;
use crate::types::*;

const READERS: u32 = 4;

/// The SQLite dialect (one process, nobody else to notify). It remembers the writer
/// connection's `synchronous` level: set, and read, only by whoever holds that one connection.
#[derive(Debug, Default)]
pub(crate) struct Sqlite {
    /// The writer connection is at `synchronous = NORMAL` (the last transaction was
    /// bookkeeping): a write outside a transaction sets `FULL` first.
    light: AtomicBool,
}

/// Each write transaction names its `synchronous` level (one `sqlite3_exec` with the `BEGIN`,
/// so no extra round trip to the connection's thread).
const BEGIN_FULL: &str = "PRAGMA synchronous = FULL; BEGIN IMMEDIATE";
const BEGIN_NORMAL: &str = "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE";

/// Opens (creating if missing) and migrates. See [`crate::connect`] for the URL forms.
pub(crate) async fn connect(url: &str) -> Result<SqlStore<Sqlite>> {
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
    // No ping before each use (the pools' default): a connection is a thread of this process,
    // and the ping was a round trip to it per transaction.
    let write = SqlitePoolOptions::new()
        .test_before_acquire(false)
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
            .test_before_acquire(false)
            .max_connections(READERS)
            .connect_with(options)
            .await?
    };
    SqlStore::open(
        Sqlite::default(),
        write,
        read,
        watch::Sender::new(0),
        watch::Sender::new(0),
    )
    .await
}

/// Writes a consistent copy of a live SQLite database to `dest` with
/// `VACUUM INTO`: one read transaction, so the copy is a snapshot of one
/// moment even while carehook keeps writing, and the WAL is folded in.
pub(crate) async fn backup_to(url: &str, dest: &std::path::Path) -> Result<()> {
    use sqlx::ConnectOptions as _;
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("bad SQLite URL {url:?}: {e}")))?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let mut conn = options.connect().await?;
    let dest = dest
        .to_str()
        .ok_or_else(|| StoreError::Invalid("the backup path is not UTF-8".into()))?;
    sqlx::query("VACUUM INTO $1")
        .bind(dest)
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// `PRAGMA integrity_check` of the SQLite database at `url`: `ok`, or what
/// is wrong.
pub(crate) async fn integrity_check(url: &str) -> Result<String> {
    use sqlx::ConnectOptions as _;
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Invalid(format!("bad SQLite URL {url:?}: {e}")))?
        .create_if_missing(false)
        .read_only(true);
    let mut conn = options.connect().await?;
    let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(r,)| r)
        .collect::<Vec<_>>()
        .join("; "))
}

/// A JSON array of ids, for `IN (SELECT value FROM json_each($n))`: one statement for any
/// number of ids, and one cached prepared statement.
fn id_array<'a>(ids: impl IntoIterator<Item = &'a WebhookId>) -> String {
    to_json(&ids.into_iter().map(|i| i.to_string()).collect::<Vec<_>>())
}

impl Sqlite {
    /// Ids as one JSON array, read with `json_each`.
    fn id_list(ids: Vec<String>) -> String {
        to_json(&ids)
    }
}

const GET_STREAK: &str =
    "SELECT last_success_at, failing_since, last_failure_at FROM webhooks WHERE id = $1";

const SET_STREAK: &str = "UPDATE webhooks SET \
    last_success_at = $2, failing_since = $3, last_failure_at = $4 WHERE id = $1";

// A claim's `LIMIT` is `CAST($n AS INTEGER)`, not a bare `$n`: SQLite (3.4x) plans with the
// value bound to a bare `LIMIT $n` and so marks the statement to be prepared again whenever
// that parameter is bound, which is every run: parsing and planning these statements was a
// third of the writer thread's time at 10 events/s.

/// Leases up to `$4` due deliveries of webhook `$3`, oldest due first (of an ordering key,
/// only its first pending one).
const CLAIM_WEBHOOK: &str = concat!(
    "UPDATE deliveries SET lease_until = $2, lease_owner = $5 WHERE id IN ( \
    SELECT id FROM deliveries WHERE webhook_id = $3 AND status = 'pending' \
    AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) ",
    first_of_its_key!("deliveries"),
    "ORDER BY next_attempt_at LIMIT CAST($4 AS INTEGER)) \
    RETURNING id, event_id, webhook_id, attempts, created_at, is_test, next_attempt_at, \
    ordering_key, ordering_seq"
);

/// Leases up to `$3` due deliveries of webhooks not in `$4`, at most `$6` of each. Each branch
/// reads one partial index in order and stops at `$3`, so the outer sort sees at most 2 × `$3`
/// rows however large the backlog.
const CLAIM_OTHERS: &str = concat!(
    "UPDATE deliveries SET lease_until = $2, lease_owner = $5 WHERE id IN ( \
    SELECT id FROM ( \
      SELECT id, next_attempt_at, \
        row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at) AS rn FROM ( \
        SELECT * FROM (SELECT id, webhook_id, next_attempt_at FROM deliveries \
          WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at <= $1 \
          AND webhook_id NOT IN (SELECT value FROM json_each($4)) ",
    first_of_its_key!("deliveries"),
    "ORDER BY next_attempt_at LIMIT CAST($3 AS INTEGER)) \
        UNION ALL \
        SELECT * FROM (SELECT id, webhook_id, next_attempt_at FROM deliveries \
          WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until < $1 \
          AND next_attempt_at <= $1 \
          AND webhook_id NOT IN (SELECT value FROM json_each($4)) ",
    first_of_its_key!("deliveries"),
    "ORDER BY lease_until LIMIT CAST($3 AS INTEGER)))) \
    WHERE rn <= $6 ORDER BY next_attempt_at LIMIT CAST($3 AS INTEGER)) \
    RETURNING id, event_id, webhook_id, attempts, created_at, is_test, next_attempt_at, \
    ordering_key, ordering_seq"
);

run_shared_sql!(Sqlite, sqlx::Sqlite, "sqlite");

#[async_trait::async_trait]
impl Dialect for Sqlite {
    const NAME: &'static str = "sqlite";
    // One writer: the write transaction already excludes every other change.
    const LOCKS_ROWS: bool = false;
    const ONE_PROCESS: bool = true;
    const LOCK_AUDIT: Option<&'static str> = None;
    const ID_LIST: &'static str = "(SELECT value FROM json_each($1))";

    /// `BEGIN IMMEDIATE`: another process (the CLI) waits on `busy_timeout` instead of
    /// failing half way.
    async fn begin(&self, pool: &SqlitePool) -> Result<Transaction<'static, sqlx::Sqlite>> {
        let tx = pool.begin_with(BEGIN_FULL).await?;
        self.light.store(false, Ordering::Relaxed);
        Ok(tx)
    }

    /// `synchronous = NORMAL`: see the module's note.
    async fn begin_bookkeeping(
        &self,
        pool: &SqlitePool,
    ) -> Result<Transaction<'static, sqlx::Sqlite>> {
        match pool.begin_with(BEGIN_NORMAL).await {
            Ok(tx) => {
                self.light.store(true, Ordering::Relaxed);
                Ok(tx)
            }
            Err(e) => {
                // The pragma may have run before `BEGIN` failed: assume it did.
                self.light.store(true, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    async fn ready_autocommit(&self, conn: &mut PoolConnection<sqlx::Sqlite>) -> Result<()> {
        if self.light.load(Ordering::Relaxed) {
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut **conn)
                .await?;
            self.light.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn claim(&self, pool: &SqlitePool, c: &Claim<'_>) -> Result<Vec<Claimed>> {
        let mut tx = self.begin_bookkeeping(pool).await?;
        let mut leased: Vec<Leased> = Vec::new();
        // A named webhook's part reads its own pending deliveries in due order (migration
        // 0006), however long any other webhook's backlog.
        for (webhook, want) in c.wants {
            let rows: Vec<Leased> = sqlx::query_as(CLAIM_WEBHOOK)
                .bind(c.now)
                .bind(c.lease_until)
                .bind(webhook.to_string())
                .bind(i64::from(*want))
                .bind(c.owner.as_str())
                .fetch_all(&mut *tx)
                .await?;
            leased.extend(rows);
        }
        if c.limit > 0 {
            let rows: Vec<Leased> = sqlx::query_as(CLAIM_OTHERS)
                .bind(c.now)
                .bind(c.lease_until)
                .bind(i64::from(c.limit))
                .bind(id_array(c.exclude))
                .bind(c.owner.as_str())
                .bind(i64::from(c.per_webhook))
                .fetch_all(&mut *tx)
                .await?;
            leased.extend(rows);
        }
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
        assemble_claims(leased, events, c.seal)
    }

    async fn insert_events(
        conn: &mut SqliteConnection,
        batch: &[NewEvent],
        candidates: &[usize],
        stored: &[StoredEvent],
    ) -> Result<HashSet<String>> {
        let events: Vec<serde_json::Value> = candidates
            .iter()
            .zip(stored)
            .map(|(&i, st)| {
                let ev = &batch[i];
                json!([
                    ev.id.to_string(),
                    ev.event_type,
                    st.vars,
                    ev.idempotency_key,
                    ev.created_at,
                    st.patient_id,
                    st.bytes,
                    st.sha256
                ])
            })
            .collect();
        // `WHERE TRUE` keeps SQLite from reading `ON CONFLICT` as a join constraint.
        let inserted: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO events (id, event_type, vars, idempotency_key, created_at, \
         patient_id, vars_bytes, vars_sha256) \
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, \
         value->>7 FROM json_each($1) \
         WHERE TRUE ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(to_json(&events))
        .fetch_all(&mut *conn)
        .await?;
        Ok(inserted.into_iter().map(|(id,)| id).collect())
    }

    async fn insert_deliveries(
        conn: &mut SqliteConnection,
        deliveries: &[(&NewDelivery, &NewEvent)],
        seqs: &[Option<i64>],
    ) -> Result<()> {
        let deliveries: Vec<serde_json::Value> = deliveries
            .iter()
            .zip(seqs)
            .map(|((d, ev), seq)| {
                json!([
                    d.id.to_string(),
                    ev.id.to_string(),
                    d.webhook_id.to_string(),
                    d.next_attempt_at,
                    ev.created_at,
                    d.is_test,
                    d.ordering_key,
                    seq
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, \
             next_attempt_at, created_at, updated_at, is_test, ordering_key, ordering_seq) \
             SELECT value->>0, value->>1, value->>2, 'pending', 0, value->>3, value->>4, \
             value->>4, value->>5, value->>6, value->>7 FROM json_each($1)",
        )
        .bind(to_json(&deliveries))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn bump_ordering_keys(
        conn: &mut SqliteConnection,
        groups: &[(String, String, i64)],
    ) -> Result<Vec<(String, String, i64)>> {
        let rows: Vec<serde_json::Value> =
            groups.iter().map(|(w, k, n)| json!([w, k, n])).collect();
        // `WHERE TRUE` keeps SQLite from reading `ON CONFLICT` as a join constraint.
        Ok(sqlx::query_as(
            "INSERT INTO ordering_keys (webhook_id, ordering_key, last_seq) \
             SELECT value->>0, value->>1, value->>2 FROM json_each($1) WHERE TRUE \
             ON CONFLICT (webhook_id, ordering_key) \
             DO UPDATE SET last_seq = ordering_keys.last_seq + excluded.last_seq \
             RETURNING webhook_id, ordering_key, last_seq",
        )
        .bind(to_json(&rows))
        .fetch_all(&mut *conn)
        .await?)
    }

    async fn write_attempts(
        conn: &mut SqliteConnection,
        batch: &[AttemptRecord],
        stored: &[StoredAttempt],
    ) -> Result<()> {
        let changes: Vec<serde_json::Value> = batch::latest_per_delivery(batch)
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
            .zip(stored)
            .map(|(a, st)| {
                json!([
                    Uuid::now_v7().to_string(),
                    a.delivery_id.to_string(),
                    a.attempt_no,
                    a.started_at,
                    a.duration_ms,
                    st.request,
                    a.response_status,
                    st.response_headers,
                    st.response_body,
                    a.error,
                    a.outcome.as_str(),
                    st.request_bytes,
                    st.request_sha256,
                    st.response_bytes,
                    st.response_sha256,
                    st.purged_at,
                    st.purge_reason
                ])
            })
            .collect();
        let moved: Vec<(String, String, bool)> = sqlx::query_as(
            "UPDATE deliveries SET attempts = max(deliveries.attempts, a.attempt_no), \
             status = a.status, next_attempt_at = coalesce(a.next_at, deliveries.next_attempt_at), \
             lease_until = NULL, lease_owner = NULL, last_status = a.last_status, \
             last_error = a.last_error, \
             updated_at = a.ended \
             FROM (SELECT value->>0 AS id, value->>1 AS attempt_no, value->>2 AS status, \
                   value->>3 AS next_at, value->>4 AS last_status, value->>5 AS last_error, \
                   value->>6 AS ended FROM json_each($1)) AS a \
             WHERE deliveries.id = a.id AND deliveries.status <> 'succeeded' \
             RETURNING deliveries.id, deliveries.webhook_id, deliveries.is_test",
        )
        .bind(to_json(&changes))
        .fetch_all(&mut *conn)
        .await?;
        // The log keeps every attempt of an existing delivery, even a late one.
        sqlx::query(
            "INSERT INTO attempts (id, delivery_id, attempt_no, started_at, duration_ms, \
             request, response_status, response_headers, response_body, error, outcome, \
             request_bytes, request_sha256, response_bytes, response_sha256, purged_at, \
             purge_reason) \
             SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, \
             value->>6, value->>7, value->>8, value->>9, value->>10, value->>11, value->>12, \
             value->>13, value->>14, value->>15, value->>16 FROM json_each($1) \
             WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = value->>1)",
        )
        .bind(to_json(&attempts))
        .execute(&mut *conn)
        .await?;

        for (webhook_id, mut seen) in batch::streak_inputs(batch, moved) {
            let old: Option<(Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(GET_STREAK)
                .bind(&webhook_id)
                .fetch_optional(&mut *conn)
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
            sqlx::query(SET_STREAK)
                .bind(&webhook_id)
                .bind(s.last_success_at)
                .bind(s.failing_since)
                .bind(s.last_failure_at)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn notify(&self, _pool: &SqlitePool, _channel: Channel) -> Result<()> {
        Ok(())
    }
}
