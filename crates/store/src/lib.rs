//! carehook's storage: what it keeps, behind traits by role, on SQLite or PostgreSQL.
//!
//! The server holds an `Arc<dyn Store>` from [`connect`] and never sees SQL. [`Store`] is every
//! role at once; a part of the server that needs one role names that trait:
//! [`WebhookStore`], [`QueueStore`] (events in, deliveries claimed and moved on),
//! [`LogStore`] (the delivery log read back), [`NodeStore`] (processes and their heartbeats),
//! [`TokenStore`], [`RecordStore`] (clinic records), [`SettingsStore`] and
//! [`OAuthTokenStore`] (OAuth 2.0 access tokens shared by the nodes), [`ReplayStore`]
//! (stored events sent again to a webhook; the latest events of some types) and
//! [`AccountStore`] (people, admin-UI sessions, failed logins) and [`PartnerLinkStore`]
//! (read-only links to one webhook's log).
//!
//! Layout: the store is written once, in `sql_store` (`SqlStore<D>`), over a small dialect seam
//! (`dialect`: run a statement, claim, write events and attempts, release, notify) that
//! `sqlite` and `postgres` implement. Shared SQL text lives in `sql`, `stats` and `records`;
//! rows become public types in `rows`; the per-row work of batch writes is decided in `batch`.
//! Each dialect has its own migrations (`migrations/sqlite`, `migrations/postgres`), embedded
//! in the binary and run by [`Store::migrate`] (which `connect` calls).
//!
//! Decisions a reader might otherwise undo:
//! - Times are `i64` unix milliseconds, chosen by the caller wherever the trait takes one (so
//!   tests control the clock). The few times the store stamps itself (`created_at`/`updated_at`
//!   of webhooks, `updated_at` of deliveries ended by a webhook delete) come from the system clock.
//! - Ids are UUID v7 stored as text (it sorts by time); JSON is stored as text in both dialects:
//!   the store never looks inside, and text gives back exactly what the server wrote. The
//!   traits and rows take and give typed ids (`WebhookId`, `DeliveryId`, `EventId`, `TokenId`
//!   from `carehook_core::ids`, re-exported here), so a webhook id cannot be passed where a
//!   delivery id belongs; an attempt's own id, which nothing looks up, stays a bare `Uuid`.
//! - Shared statements use `$N` placeholders, which SQLite reads as PostgreSQL does; their
//!   arguments are a list of `sql::Arg` each dialect binds, so the shared code names no sqlx
//!   bounds.
//! - Write paths take batches and run each in one transaction (group commit) of a few
//!   set-based statements that take whole columns at once (SQLite: a JSON array read with
//!   `json_each`; PostgreSQL: arrays and `UNNEST`), not one statement per row: on SQLite that
//!   was 3–5× faster, as every statement is a hop to sqlx's connection thread
//!   (`tests/throughput.rs` measures it). SQLite has one writer connection, so writers queue in
//!   the pool instead of failing with `SQLITE_BUSY`.
//! - A claim reads two index ranges (unleased due work, expired leases) so deliveries in flight
//!   cost a claim nothing; see the migrations.
//! - A lease belongs to a node ([`NodeId`]). A node that starts releases its earlier
//!   incarnation's leases (on SQLite, where one process owns the file, every lease), and a
//!   node whose heartbeat is stale has its leases released by any live one
//!   ([`NodeStore::release_dead_nodes`]): after a crash, work moves on in seconds, not when the
//!   lease ends.
//! - Deleting a webhook keeps its deliveries and attempts (the log outlives it); its pending
//!   deliveries end as `failed` with `last_error = "webhook deleted"`.
//! - Auto-disable reads a failure streak kept on the webhook row by `record_attempts`, not a scan
//!   of the delivery history; see [`WebhookStore::webhooks_failing_since`].
//! - Clinic records (ten kinds, integer ids) share one generic path: see `records` for the
//!   tables' one shape and for [`RecordStore::change_record`], which writes a record and the
//!   events it fires in one transaction.
//! - Ordering keys (`ordering`): a claim takes only the first pending delivery of a key, by a
//!   condition inside the claim statement itself (not a check in the server), so two nodes
//!   cannot both send a key's next delivery; a key's numbers come from a counter row bumped in
//!   the writing transaction. Unordered deliveries skip the condition at its first term.
//! - [`QueueStore::watch_deliveries`] wakes the dispatcher when new work may be due; on
//!   PostgreSQL it is fed by `NOTIFY carehook_deliveries`, so it works across nodes. A NOTIFY
//!   sent after a commit that fails is logged, and the write still answers success: it did
//!   commit, and other nodes poll anyway.
#![forbid(unsafe_code)]

use std::sync::Arc;

use carehook_core::clinic::{Kind, Record};

mod accounts;
mod batch;
mod dialect;
mod error;
mod oauth;
mod ordering;
mod partner;
mod payload;
mod postgres;
mod preload;
mod privacy;
mod records;
mod replay;
mod rows;
mod schedule;
mod sql;
mod sql_store;
mod sqlite;
mod stats;
mod types;

#[cfg(feature = "testing")]
pub mod testing;

pub use accounts::{AccountStore, LoginFailures, SessionRow, UserChange, UserRow};
pub use error::{Result, StoreError};
pub use oauth::{OAuthTokenRow, OAuthTokenSave, OAuthTokenStore};
pub use partner::{PartnerLinkRow, PartnerLinkStore};
pub use payload::{SEALED_PREFIX, Sealer};
pub use preload::preload_history;
pub use privacy::{PurgeCursor, PurgeStep};
pub use records::{Applied, Changed, Fired, Linked, RecordFilter, RecordLogic, Target};
pub use replay::{ReplayCandidate, ReplayQuery, ReplayStore};
pub use stats::{
    ATTEMPT_LOOKBACK_MS, FailedCount, LastDelivery, QueueDepth, STATS_SAMPLE, STATS_WINDOWS,
    StatsWindow, WebhookStats, percentile,
};
pub use types::*;

/// Webhooks: their definitions and whether they are failing.
#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// Version 1, `created_at = updated_at = now`. A duplicate id is `Conflict`.
    async fn create_webhook(&self, w: NewWebhook) -> Result<WebhookRow>;
    async fn get_webhook(&self, id: WebhookId) -> Result<Option<WebhookRow>>;
    /// Oldest first.
    async fn list_webhooks(&self) -> Result<Vec<WebhookRow>>;
    /// Replaces the webhook's fields, `version += 1`. A changed config or a re-enable resets its
    /// failure streak (old failures say nothing about the new setup). `None` if there is no such webhook.
    async fn update_webhook(
        &self,
        id: WebhookId,
        name: String,
        enabled: bool,
        events: Vec<String>,
        config: serde_json::Value,
        disabled_reason: Option<String>,
    ) -> Result<Option<WebhookRow>>;
    /// Sets `enabled` and `disabled_reason = reason`, `version += 1`; enabling resets the
    /// failure streak. False if there is no such webhook.
    async fn set_webhook_enabled(
        &self,
        id: WebhookId,
        enabled: bool,
        reason: Option<String>,
    ) -> Result<bool>;
    /// Deletes the webhook; its deliveries and attempts stay (the log), and its pending
    /// deliveries end as `failed` with `last_error = "webhook deleted"`. False if there was none.
    async fn delete_webhook(&self, id: WebhookId) -> Result<bool>;
    /// Enabled webhooks that have been failing for the whole window: no successful attempt
    /// since their current failure streak began, that streak began at or before `since`, and
    /// they failed again at or after `since`. Test sends do not count. (A webhook that failed
    /// once yesterday, or has had no traffic for a month, is not "failing for 5 days".)
    async fn webhooks_failing_since(&self, since: i64) -> Result<Vec<WebhookId>>;
    /// Changes whenever a webhook is created, changed or deleted; on PostgreSQL also when
    /// another node did so (`NOTIFY carehook_webhooks`), so every node reloads it at once.
    fn watch_webhooks(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// The delivery queue: events in, deliveries claimed under a lease, attempts recorded.
#[async_trait::async_trait]
pub trait QueueStore: Send + Sync {
    /// Writes the whole batch in one transaction: each event with its deliveries (`pending`,
    /// no attempts). An idempotency key seen before — in an earlier call or earlier in this
    /// batch — writes nothing and answers the first event with its deliveries. One answer per
    /// event, in order. When this returns, the batch is durable.
    async fn record_events(&self, batch: Vec<NewEvent>) -> Result<Vec<Recorded>>;
    /// Leases up to `limit` due deliveries (pending, `next_attempt_at <= now`, no lease or
    /// `lease_until < now`) to `owner` until `now + lease_ms`, oldest due first. Concurrent
    /// callers (tasks or nodes) never get the same delivery while its lease holds.
    /// Deliveries of the webhooks in `exclude` are left alone (the dispatcher
    /// leaves out webhooks already at their in-flight cap).
    async fn claim_due(
        &self,
        owner: &NodeId,
        now: i64,
        lease_ms: i64,
        limit: u32,
        exclude: &[WebhookId],
    ) -> Result<Vec<Claimed>>;
    /// Leases due deliveries (as `claim_due` means it) to `owner` until `now + lease_ms`, as
    /// `ask` says: for each webhook in `ask.wants` up to its number, and with `ask.others` up
    /// to `per_webhook` each of any other webhook not in `ask.exclude`, `limit` in all. Each
    /// webhook's part is read from an index of its own pending deliveries, so a webhook's
    /// backlog costs another webhook's claim nothing.
    async fn claim(
        &self,
        owner: &NodeId,
        now: i64,
        lease_ms: i64,
        ask: &ClaimAsk<'_>,
    ) -> Result<Vec<Claimed>>;
    /// In one transaction: inserts the attempts and moves each delivery on (`attempts`, status,
    /// `next_attempt_at`, lease cleared, `last_status`, `last_error`, `updated_at` = end of the
    /// attempt). A delivery already `succeeded` keeps that status (a late result from an
    /// expired lease cannot undo a success); its attempt is still logged.
    async fn record_attempts(&self, batch: Vec<AttemptRecord>) -> Result<()>;
    /// Clears leases (graceful shutdown) so other workers may take them at once.
    async fn release(&self, delivery_ids: &[DeliveryId]) -> Result<()>;
    /// The earliest time `claim_due` could return something: the earliest due time of an
    /// unleased pending delivery, or the earliest lease expiry. `None`: nothing pending.
    async fn next_due_at(&self) -> Result<Option<i64>>;
    /// The earliest due time after `now` of a pending delivery no worker holds (a scheduled
    /// delivery, a retry): an idle dispatcher sleeps until then, however long its poll.
    /// `None`: nothing is due later. One index range (`deliveries_due`).
    async fn next_due_after(&self, now: i64) -> Result<Option<i64>>;
    /// Changes whenever new deliveries may be due sooner than `next_due_at` said (recorded,
    /// retried, released). On PostgreSQL also when another node did so. Wait with `changed()`.
    fn watch_deliveries(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Changes (before the wake-up of [`QueueStore::watch_deliveries`]) whenever something may
    /// have become due later than now, so a dispatcher woken only by work due at once (a lone
    /// event) need not read `next_due_after` again. `None`: not known (PostgreSQL: other
    /// nodes' news), read after every wake-up.
    fn later_work_generation(&self) -> Option<u64> {
        None
    }
    /// How many deliveries are pending, due at `now` or later, or leased. Cheap: three counts
    /// over partial indexes.
    async fn queue_depth(&self, now: i64) -> Result<QueueDepth>;
    /// Any status → `pending`, due `now`, lease cleared. `None` if there is no such delivery.
    async fn retry_delivery(&self, id: DeliveryId, now: i64) -> Result<Option<DeliveryRow>>;
    /// How many of the webhook's `failed` deliveries created in `[since, until)`
    /// [`retry_failed`](Self::retry_failed) would send again, reading at most `cap` of them.
    async fn count_failed(
        &self,
        webhook_id: WebhookId,
        since: i64,
        until: i64,
        cap: u32,
    ) -> Result<FailedCount>;
    /// The webhook's `failed` deliveries created in `[since, until)` → `pending`, due `now`.
    async fn retry_failed(
        &self,
        webhook_id: WebhookId,
        since: i64,
        until: i64,
        now: i64,
    ) -> Result<Vec<DeliveryId>>;
}

/// The delivery log, read back: events, deliveries with their attempts, statistics.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync {
    /// The delivery and its attempts (in attempt order).
    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>>;
    /// Newest first, keyset-paged on `(created_at, id)`. A bad cursor is `Invalid`.
    async fn list_deliveries(&self, f: DeliveryFilter) -> Result<Page<DeliveryRow>>;
    async fn get_event(&self, id: EventId) -> Result<Option<EventRow>>;
    /// Newest first, keyset-paged on `(created_at, id)`; `limit` as in [`DeliveryFilter`].
    async fn list_events(&self, limit: u32, cursor: Option<String>) -> Result<Page<EventRow>>;
    /// An ordered delivery's place in its key, and what it waits for while held back (the
    /// earliest pending delivery of its key). `None` for an unordered delivery, or none at all.
    async fn delivery_ordering(&self, id: DeliveryId) -> Result<Option<DeliveryOrdering>>;
    /// A webhook's deliveries and attempts over the last hour, day and week.
    /// Zeros for a webhook with no traffic, or none at all.
    async fn webhook_stats(&self, webhook_id: WebhookId, now: i64) -> Result<WebhookStats>;
}

/// The processes that claim deliveries, and their heartbeats. Times are the callers' clocks,
/// so nodes' clocks should agree to well within the staleness they allow.
#[async_trait::async_trait]
pub trait NodeStore: Send + Sync {
    /// Registers `node` as started at `now` and releases the leases its earlier incarnation
    /// held (on SQLite, where one process owns the file: every lease). Call it before the
    /// node claims anything. Answers how many leases were released.
    async fn start_node(&self, node: &NodeId, now: i64) -> Result<u64>;
    /// `node` is alive at `now`; registers it again if it had been taken for dead.
    async fn heartbeat(&self, node: &NodeId, now: i64) -> Result<()>;
    /// Releases the leases of every node not heard from since `stale_before` (and of owners
    /// no longer registered), and forgets those nodes. Any live node may call it; answers how
    /// many leases were released.
    async fn release_dead_nodes(&self, stale_before: i64) -> Result<u64>;
}

/// API tokens (their hashes only).
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// An `owner` token for every clinic. A duplicate hash (or id) is `Conflict`.
    async fn insert_token(
        &self,
        id: TokenId,
        name: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<()> {
        self.insert_scoped_token(id, name, token_hash, &TokenAccess::owner(), now)
            .await
    }
    /// A token with a role, limited to clinics. A duplicate hash (or id) is `Conflict`.
    async fn insert_scoped_token(
        &self,
        id: TokenId,
        name: &str,
        token_hash: &str,
        access: &TokenAccess,
        now: i64,
    ) -> Result<()>;
    /// The token with this hash, if it exists and is not revoked.
    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRow>>;
    /// Sets `last_used_at`. A write: the server should call it sparingly (say once a minute per
    /// token), not on every request.
    async fn touch_token(&self, id: TokenId, now: i64) -> Result<()>;
    /// All tokens, revoked ones too, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRow>>;
    /// False if there is no such token or it was already revoked.
    async fn revoke_token(&self, id: TokenId, now: i64) -> Result<bool>;
}

/// Clinic records (see `records` for the order of a change).
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync {
    /// Creates, updates or deletes one clinic record and, in the same transaction, writes the
    /// events `logic` fires with their deliveries: all of it commits, or none of it. A missing
    /// record is `NotFound`; a reference to a missing record, or whatever `logic` refuses, is
    /// `Rejected` (naming the field); deleting a record others refer to is `Conflict`. Wakes
    /// the dispatcher (and, on PostgreSQL, other nodes) when a delivery was written.
    async fn change_record(
        &self,
        kind: Kind,
        target: Target,
        logic: &dyn RecordLogic,
        now: i64,
    ) -> Result<Changed>;
    async fn get_record(&self, kind: Kind, id: i64) -> Result<Option<Record>>;
    /// Lowest id first, paged by id. A filter the kind cannot take (patients by date) or a bad
    /// cursor is `Invalid`.
    async fn list_records(&self, kind: Kind, filter: RecordFilter) -> Result<Page<Record>>;
}

/// Patient data over time: retention purges and a patient's erasure (see `privacy`).
#[async_trait::async_trait]
pub trait PrivacyStore: Send + Sync {
    /// One bounded batch of a purge of attempt bodies: looks at up to `limit` unpurged
    /// attempts after `after`, oldest first, and clears the bodies of those whose delivery
    /// has ended and which started before their webhook's cutoff (`rules`). Keeps sizes and
    /// hashes. `dry_run`: counts, changes nothing. Call again with `next` until it is `None`.
    async fn purge_attempts(
        &self,
        rules: &Retention,
        now: i64,
        after: Option<PurgeCursor>,
        limit: u32,
        dry_run: bool,
    ) -> Result<PurgeStep>;
    /// The same for event snapshots: an event's goes once none of its deliveries is pending
    /// and each is past its webhook's cutoff.
    async fn purge_events(
        &self,
        rules: &Retention,
        now: i64,
        after: Option<PurgeCursor>,
        limit: u32,
        dry_run: bool,
    ) -> Result<PurgeStep>;
    /// In one transaction: clears the snapshots of the events whose `patient_id` is
    /// `patient_id` and the bodies of their attempts, cancels their pending deliveries
    /// (`failed`, with the reason), and makes tombstones of the patient's clinic records
    /// (when `patient_id` is a record id). Counts what changed; a second call changes nothing.
    async fn erase_patient(&self, patient_id: &str, now: i64) -> Result<ErasureCounts>;
}

/// The audit trail: append-only and hash-chained.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one record after the newest, chained to it.
    async fn append_audit(&self, entry: NewAudit) -> Result<AuditRow>;
    /// Newest first, paged by `seq`.
    async fn list_audit(&self, filter: AuditFilter) -> Result<Page<AuditRow>>;
    /// Walks the whole chain, in pages, and says where it breaks: an edited row (its hash),
    /// a deleted one (a gap, or a head that names a later row).
    async fn verify_audit(&self) -> Result<AuditVerdict>;
}

/// Small settings by key (the admin token's hash).
#[async_trait::async_trait]
pub trait SettingsStore: Send + Sync {
    async fn kv_get(&self, key: &str) -> Result<Option<String>>;
    async fn kv_set(&self, key: &str, value: &str) -> Result<()>;
}

/// Everything carehook keeps: every role at once. Object safe; use it as `Arc<dyn Store>`,
/// and pass `&dyn QueueStore` (and so on) where one role is enough.
#[async_trait::async_trait]
pub trait Store:
    WebhookStore
    + QueueStore
    + LogStore
    + NodeStore
    + TokenStore
    + RecordStore
    + SettingsStore
    + PrivacyStore
    + AuditStore
    + OAuthTokenStore
    + ReplayStore
    + AccountStore
    + PartnerLinkStore
    + std::fmt::Debug
{
    /// Which dialect this is ("sqlite" or "postgres"), for logs and tests.
    fn backend(&self) -> &'static str;

    /// How payloads (event snapshots, attempt bodies) are kept: `sealer` opens sealed ones,
    /// and seals new ones when `seal_new`. Without a sealer, payloads are written in plain
    /// text and a sealed one cannot be read. Call it before the store is used.
    fn set_sealer(&self, sealer: Option<Arc<dyn Sealer>>, seal_new: bool);

    /// Brings the schema up to date. `connect` already did; running it again is a no-op.
    async fn migrate(&self) -> Result<()>;
}

/// Opens the database named by `url` and runs the migrations.
///
/// - `sqlite://path/to/file.db` (relative to the working directory; created if missing),
///   `sqlite:///abs/path.db`, or `sqlite::memory:` (one private in-memory database).
/// - `postgres://…` or `postgresql://…`.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::connect(url).await?))
    } else {
        let scheme = url.split_once(':').map_or(url, |(s, _)| s);
        Err(StoreError::Invalid(format!(
            "unsupported database URL scheme {scheme:?}: use sqlite://FILE, sqlite::memory: or postgres://…"
        )))
    }
}

/// A consistent online copy of the SQLite database at `url` (a
/// `sqlite://FILE` URL) in the new file `dest`, taken while carehook runs.
/// PostgreSQL has its own tools (`pg_dump`); this refuses other URLs.
pub async fn sqlite_backup(url: &str, dest: &std::path::Path) -> Result<()> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") {
        return Err(StoreError::Invalid(
            "only a SQLite database file (sqlite://FILE) is backed up here; for PostgreSQL use pg_dump".into(),
        ));
    }
    sqlite::backup_to(url, dest).await
}

/// `PRAGMA integrity_check` of a SQLite database file: `ok` when sound.
pub async fn sqlite_integrity_check(url: &str) -> Result<String> {
    sqlite::integrity_check(url).await
}

/// Milliseconds since the Unix epoch, for the few stamps the store makes itself.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
