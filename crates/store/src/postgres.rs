//! The store on PostgreSQL, for several carehook nodes sharing one database.
//!
//! Batch writes send whole columns as arrays (`UNNEST($1::text[], …)`), so a batch of any size
//! is a handful of round trips inside one transaction rather than one per row. Claims use
//! `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other's rows. New work is announced
//! with `NOTIFY carehook_deliveries` in the writing transaction; every store LISTENs and turns
//! that into [`crate::QueueStore::watch_deliveries`] changes, so a node wakes for work another node recorded.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tokio::sync::watch;
use uuid::Uuid;

use crate::batch;
use crate::dialect::{Channel, Claim, Dialect, run_shared_sql};
use crate::error::Result;
use crate::ordering::first_of_its_key_pg;
use crate::payload::{StoredAttempt, StoredEvent};
use crate::rows::{self, assemble_claims};
use crate::sql_store::SqlStore;
use crate::types::*;

/// The channel `record_events`, retries and releases notify.
const NOTIFY_CHANNEL: &str = "carehook_deliveries";
/// Announces webhook changes, so every node reloads its compiled webhooks at once.
const WEBHOOKS_CHANNEL: &str = "carehook_webhooks";

const POOL_SIZE: u32 = 10;

/// The PostgreSQL dialect: holds the LISTEN task, which lives exactly as long as the store.
#[derive(Debug)]
pub(crate) struct Pg {
    _listener: AbortOnDrop,
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn bump(n: &mut u64) {
    *n = n.wrapping_add(1);
}

pub(crate) async fn connect(url: &str) -> Result<SqlStore<Pg>> {
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
    let dialect = Pg {
        _listener: AbortOnDrop(task),
    };
    // The migrator takes an advisory lock, so nodes starting together migrate once.
    SqlStore::open(dialect, pool.clone(), pool, wake, webhooks).await
}

impl Pg {
    /// Ids as a `text[]`.
    fn id_list(ids: Vec<String>) -> Vec<String> {
        ids
    }
}

fn ids_text<'a>(ids: impl IntoIterator<Item = &'a WebhookId>) -> Vec<String> {
    ids.into_iter().map(|i| i.to_string()).collect()
}

/// A claimed delivery with its event: (id, event_id, webhook_id, attempts, created_at, is_test,
/// next_attempt_at, ordering_key, ordering_seq, event_type, vars).
type ClaimRow = (
    String,
    String,
    String,
    i64,
    i64,
    bool,
    i64,
    Option<String>,
    Option<i64>,
    String,
    String,
);

/// Leases, for each webhook `$3[i]`, up to `$4[i]` of its due deliveries, oldest due first,
/// from its own pending deliveries (migration 0006); of an ordering key, only its first
/// pending one.
const CLAIM_WEBHOOKS: &str = concat!(
    "WITH picked AS ( \
      SELECT p.id FROM UNNEST($3::text[], $4::int8[]) AS w(webhook_id, want) \
      CROSS JOIN LATERAL ( \
        SELECT d.id FROM deliveries d WHERE d.webhook_id = w.webhook_id \
        AND d.status = 'pending' AND d.next_attempt_at <= $1 \
        AND (d.lease_until IS NULL OR d.lease_until < $1) ",
    first_of_its_key_pg!("d"),
    "ORDER BY d.next_attempt_at LIMIT w.want FOR UPDATE SKIP LOCKED) p), \
    claimed AS ( \
      UPDATE deliveries d SET lease_until = $2, lease_owner = $5 FROM picked \
      WHERE d.id = picked.id \
      RETURNING d.id, d.event_id, d.webhook_id, d.attempts, d.created_at, d.is_test, \
      d.next_attempt_at, d.ordering_key, d.ordering_seq) \
    SELECT c.id, c.event_id, c.webhook_id, c.attempts, c.created_at, c.is_test, \
    c.next_attempt_at, c.ordering_key, c.ordering_seq, e.event_type, e.vars \
    FROM claimed c JOIN events e ON e.id = c.event_id"
);

/// Leases up to `$3` due deliveries of webhooks not in `$4`, at most `$6` of each. Each branch
/// reads one partial index in order; see the migrations.
const CLAIM_OTHERS: &str = concat!(
    "WITH fresh AS ( \
      SELECT id, webhook_id, next_attempt_at FROM deliveries \
      WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at <= $1 \
      AND webhook_id <> ALL($4::text[]) ",
    first_of_its_key_pg!("deliveries"),
    "ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
    expired AS ( \
      SELECT id, webhook_id, next_attempt_at FROM deliveries \
      WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_until < $1 \
      AND next_attempt_at <= $1 AND webhook_id <> ALL($4::text[]) ",
    first_of_its_key_pg!("deliveries"),
    "ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED), \
    picked AS ( \
      SELECT id FROM ( \
        SELECT id, next_attempt_at, \
          row_number() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at) AS rn \
        FROM (SELECT * FROM fresh UNION ALL SELECT * FROM expired) u) r \
      WHERE rn <= $6 ORDER BY next_attempt_at LIMIT $3), \
    claimed AS ( \
      UPDATE deliveries d SET lease_until = $2, lease_owner = $5 FROM picked \
      WHERE d.id = picked.id \
      RETURNING d.id, d.event_id, d.webhook_id, d.attempts, d.created_at, d.is_test, \
      d.next_attempt_at, d.ordering_key, d.ordering_seq) \
    SELECT c.id, c.event_id, c.webhook_id, c.attempts, c.created_at, c.is_test, \
    c.next_attempt_at, c.ordering_key, c.ordering_seq, e.event_type, e.vars \
    FROM claimed c JOIN events e ON e.id = c.event_id"
);

run_shared_sql!(Pg, Postgres, "postgres");

#[async_trait::async_trait]
impl Dialect for Pg {
    async fn begin(&self, pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
        Ok(pool.begin().await?)
    }

    /// One statement: lock (skipping rows other claimers hold), lease, and join the events.
    async fn claim(&self, pool: &PgPool, c: &Claim<'_>) -> Result<Vec<Claimed>> {
        // Each part is one statement (atomic on its own); SKIP LOCKED keeps nodes apart.
        let mut rows: Vec<ClaimRow> = Vec::new();
        if !c.wants.is_empty() {
            let (ids, wants): (Vec<String>, Vec<i64>) = c
                .wants
                .iter()
                .map(|(id, n)| (id.to_string(), i64::from(*n)))
                .unzip();
            rows.extend(
                sqlx::query_as::<_, ClaimRow>(CLAIM_WEBHOOKS)
                    .bind(c.now)
                    .bind(c.lease_until)
                    .bind(ids)
                    .bind(wants)
                    .bind(c.owner.as_str())
                    .fetch_all(pool)
                    .await?,
            );
        }
        if c.limit > 0 {
            rows.extend(
                sqlx::query_as::<_, ClaimRow>(CLAIM_OTHERS)
                    .bind(c.now)
                    .bind(c.lease_until)
                    .bind(i64::from(c.limit))
                    .bind(ids_text(c.exclude))
                    .bind(c.owner.as_str())
                    .bind(i64::from(c.per_webhook))
                    .fetch_all(pool)
                    .await?,
            );
        }
        let mut events = Vec::new();
        let mut leased = Vec::with_capacity(rows.len());
        for (
            id,
            event_id,
            webhook_id,
            attempts,
            created_at,
            is_test,
            next_at,
            key,
            seq,
            ty,
            vars,
        ) in rows
        {
            events.push((event_id.clone(), ty, vars));
            leased.push((
                id, event_id, webhook_id, attempts, created_at, is_test, next_at, key, seq,
            ));
        }
        assemble_claims(leased, events, c.seal)
    }

    /// With the NOTIFY that other nodes get on commit (never for a rolled-back batch).
    async fn insert_deliveries(
        conn: &mut PgConnection,
        deliveries: &[(&NewDelivery, &NewEvent)],
        seqs: &[Option<i64>],
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, \
         next_attempt_at, created_at, updated_at, is_test, ordering_key, ordering_seq) \
         SELECT d.id, d.event_id, d.webhook_id, 'pending', 0, d.next_at, d.created, \
         d.created, d.is_test, d.ordering_key, d.ordering_seq \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
         $6::bool[], $7::text[], $8::int8[]) \
         AS d(id, event_id, webhook_id, next_at, created, is_test, ordering_key, ordering_seq)",
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
        .bind(
            deliveries
                .iter()
                .map(|(d, _)| d.ordering_key.clone())
                .collect::<Vec<_>>(),
        )
        .bind(seqs)
        .execute(&mut *conn)
        .await?;
        // Delivered to listeners on commit, never for a rolled-back batch.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn bump_ordering_keys(
        conn: &mut PgConnection,
        groups: &[(String, String, i64)],
    ) -> Result<Vec<(String, String, i64)>> {
        // `groups` is sorted, and rows are locked in the order given: no deadlock between
        // batches (see `ordering`).
        Ok(sqlx::query_as(
            "INSERT INTO ordering_keys (webhook_id, ordering_key, last_seq) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) \
             ON CONFLICT (webhook_id, ordering_key) \
             DO UPDATE SET last_seq = ordering_keys.last_seq + EXCLUDED.last_seq \
             RETURNING webhook_id, ordering_key, last_seq",
        )
        .bind(groups.iter().map(|g| g.0.clone()).collect::<Vec<_>>())
        .bind(groups.iter().map(|g| g.1.clone()).collect::<Vec<_>>())
        .bind(groups.iter().map(|g| g.2).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?)
    }

    async fn insert_events(
        conn: &mut PgConnection,
        batch: &[NewEvent],
        candidates: &[usize],
        stored: &[StoredEvent],
    ) -> Result<HashSet<String>> {
        // A key committed earlier (or by a concurrent transaction, which this waits for) makes
        // the row conflict and be skipped; the `RETURNING` tells which were written.
        let inserted: Vec<(String,)> = sqlx::query_as(
            "INSERT INTO events (id, event_type, vars, idempotency_key, created_at, \
         patient_id, vars_bytes, vars_sha256) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
         $6::text[], $7::int8[], $8::text[]) \
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
        .bind(stored.iter().map(|s| s.vars.clone()).collect::<Vec<_>>())
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
        .bind(
            stored
                .iter()
                .map(|s| s.patient_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(stored.iter().map(|s| s.bytes).collect::<Vec<_>>())
        .bind(stored.iter().map(|s| s.sha256.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        Ok(inserted.into_iter().map(|(id,)| id).collect())
    }

    async fn write_attempts(
        conn: &mut PgConnection,
        batch: &[AttemptRecord],
        stored: &[StoredAttempt],
    ) -> Result<()> {
        let latest = batch::latest_per_delivery(batch);

        let moved: Vec<(String, String, bool)> = sqlx::query_as(
            "UPDATE deliveries d SET attempts = GREATEST(d.attempts, a.attempt_no), \
             status = a.status, next_attempt_at = COALESCE(a.next_at, d.next_attempt_at), \
             lease_until = NULL, lease_owner = NULL, last_status = a.last_status, \
             last_error = a.last_error, \
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
        .fetch_all(&mut *conn)
        .await?;

        // The log keeps every attempt of an existing delivery, even a late one.
        sqlx::query(
            "INSERT INTO attempts (id, delivery_id, attempt_no, started_at, duration_ms, \
             request, response_status, response_headers, response_body, error, outcome, \
             request_bytes, request_sha256, response_bytes, response_sha256, purged_at, \
             purge_reason) \
             SELECT a.* FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], \
             $6::text[], $7::int8[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::int8[], $13::text[], $14::int8[], $15::text[], $16::int8[], $17::text[]) \
             AS a(id, delivery_id, attempt_no, started_at, duration_ms, request, \
             response_status, response_headers, response_body, error, outcome, request_bytes, \
             request_sha256, response_bytes, response_sha256, purged_at, purge_reason) \
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
        .bind(stored.iter().map(|s| s.request.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|a| a.response_status).collect::<Vec<_>>())
        .bind(
            stored
                .iter()
                .map(|s| s.response_headers.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            stored
                .iter()
                .map(|s| s.response_body.clone())
                .collect::<Vec<_>>(),
        )
        .bind(batch.iter().map(|a| a.error.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>())
        .bind(stored.iter().map(|s| s.request_bytes).collect::<Vec<_>>())
        .bind(
            stored
                .iter()
                .map(|s| s.request_sha256.clone())
                .collect::<Vec<_>>(),
        )
        .bind(stored.iter().map(|s| s.response_bytes).collect::<Vec<_>>())
        .bind(
            stored
                .iter()
                .map(|s| s.response_sha256.clone())
                .collect::<Vec<_>>(),
        )
        .bind(stored.iter().map(|s| s.purged_at).collect::<Vec<_>>())
        .bind(stored.iter().map(|s| s.purge_reason).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;

        // Failure streaks of the webhooks concerned (test sends do not count).
        let mut per_webhook = batch::streak_inputs(batch, moved);
        if !per_webhook.is_empty() {
            // Locked in id order, so concurrent batches cannot deadlock on webhooks.
            let olds: Vec<(String, Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT id, last_success_at, failing_since, last_failure_at FROM webhooks \
                 WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            )
            .bind(per_webhook.keys().cloned().collect::<Vec<_>>())
            .fetch_all(&mut *conn)
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
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn notify(&self, pool: &PgPool, channel: Channel) -> Result<()> {
        let name = match channel {
            Channel::Deliveries => NOTIFY_CHANNEL,
            Channel::Webhooks => WEBHOOKS_CHANNEL,
        };
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(name)
            .execute(pool)
            .await?;
        Ok(())
    }

    // What this dialect is: the seam's constants.
    const NAME: &'static str = "postgres";
    // `FOR UPDATE` keeps two changes of one record (or two payments of one bill) in turn.
    const LOCKS_ROWS: bool = true;
    const ONE_PROCESS: bool = false;
    const LOCK_AUDIT: Option<&'static str> = Some("LOCK TABLE audit_log IN EXCLUSIVE MODE");
    const ID_LIST: &'static str = "(SELECT unnest($1::text[]))";
}
