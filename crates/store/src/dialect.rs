//! The seam between the one store ([`crate::sql_store::SqlStore`]) and a database dialect.
//!
//! Everything the dialects share is written once, against this trait: its three primitives run
//! a statement whose text both dialects accept, and its other methods are what really differs
//! (claiming, the batch inserts of events, deliveries and attempts, notifying other nodes). A dialect is a value, so it can hold what only it needs (PostgreSQL's LISTEN task).

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Pool, Transaction};

use crate::error::Result;
use crate::payload::{StoredAttempt, StoredEvent};
use crate::sql::Arg;
use std::collections::HashSet;

use crate::types::{AttemptRecord, Claimed, NewDelivery, NewEvent, NodeId, WebhookId};

/// A connection of dialect `D`: inside a transaction, or taken from a pool.
pub(crate) type Conn<D> = <<D as RunSql>::Db as Database>::Connection;

/// A row both dialects decode the same way: a tuple of text, integers, booleans and options.
/// Written against both row types, so the shared code needs no sqlx bounds of its own.
pub(crate) trait Tuple:
    for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Tuple for T where
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

/// A claim's terms: lease due deliveries to `owner` until `lease_until`.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    /// Opens the events' snapshots.
    pub seal: &'a crate::payload::Seal,
    pub owner: &'a NodeId,
    pub now: i64,
    pub lease_until: i64,
    pub limit: u32,
    /// At most this many of any one webhook.
    pub per_webhook: u32,
    pub exclude: &'a [WebhookId],
    /// Named webhooks, each with at most so many; claimed apart from `limit`.
    pub wants: &'a [(WebhookId, u32)],
}

/// What a notification is about; each is one channel on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// New work may be due.
    Deliveries,
    /// A webhook was created, changed or deleted.
    Webhooks,
}

/// Runs a statement whose text both dialects accept (see `sql`: `$N` placeholders read the
/// same in both). Implemented by [`run_shared_sql!`], the same text for each dialect's types.
#[async_trait::async_trait]
pub(crate) trait RunSql: Sized {
    type Db: Database;

    /// Runs the dialect's migrations (see [`embedded_migrations!`]).
    async fn migrate(pool: &Pool<Self::Db>) -> Result<()>;

    async fn fetch_all<T: Tuple>(
        conn: &mut Conn<Self>,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Vec<T>>;
    async fn fetch_optional<T: Tuple>(
        conn: &mut Conn<Self>,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<T>>;
    /// Rows affected.
    async fn execute(conn: &mut Conn<Self>, sql: &str, args: Vec<Arg>) -> Result<u64>;
}

#[async_trait::async_trait]
pub(crate) trait Dialect: RunSql + std::fmt::Debug + Send + Sync + 'static {
    /// "sqlite" or "postgres".
    const NAME: &'static str;
    /// Whether `SELECT … FOR UPDATE` locks rows (PostgreSQL); SQLite's one writer already
    /// excludes every other change.
    const LOCKS_ROWS: bool;
    /// Whether one process owns the database, so that a process that starts may release
    /// every lease (SQLite) rather than only those of its own earlier incarnation.
    const ONE_PROCESS: bool;

    /// A statement that makes audit appends take turns inside a transaction (PostgreSQL: a
    /// table lock); `None` where the one writer already does (SQLite).
    const LOCK_AUDIT: Option<&'static str>;

    /// SQL for "the ids in `$1`" (an [`Arg::Ids`]), as in `id IN (…)`.
    const ID_LIST: &'static str;

    /// A write transaction.
    async fn begin(&self, pool: &Pool<Self::Db>) -> Result<Transaction<'static, Self::Db>>;

    /// A write transaction of the dispatcher's bookkeeping (a claim's leases, attempt
    /// results): losing its commit to a power cut only means a delivery is sent again, so a
    /// dialect may commit it without waiting for the disk (SQLite: `synchronous = NORMAL`).
    /// Everything else, an event's intake first, waits for the disk as before.
    async fn begin_bookkeeping(
        &self,
        pool: &Pool<Self::Db>,
    ) -> Result<Transaction<'static, Self::Db>> {
        self.begin(pool).await
    }

    /// Readies the writer connection for a write outside a transaction (see
    /// [`Dialect::begin_bookkeeping`]: a write that waits for the disk).
    async fn ready_autocommit(&self, _conn: &mut PoolConnection<Self::Db>) -> Result<()> {
        Ok(())
    }

    /// Leases due deliveries; see [`crate::QueueStore::claim`]. With `limit` 0 only `wants`.
    async fn claim(&self, pool: &Pool<Self::Db>, c: &Claim<'_>) -> Result<Vec<Claimed>>;
    /// Inserts `batch[i]` for each `i` in `candidates`, skipping an idempotency key taken
    /// earlier; answers the ids written. (The rest of writing events is shared:
    /// `sql_store::write_events`.)
    /// `stored[k]` is `batch[candidates[k]]` as written (`payload::stored_event`).
    async fn insert_events(
        conn: &mut Conn<Self>,
        batch: &[NewEvent],
        candidates: &[usize],
        stored: &[StoredEvent],
    ) -> Result<HashSet<String>>;
    /// Inserts these deliveries (`pending`, due as given); tells other nodes on commit.
    /// `seqs[i]`: the number of `deliveries[i]` in its ordering key (`ordering::number`).
    async fn insert_deliveries(
        conn: &mut Conn<Self>,
        deliveries: &[(&NewDelivery, &NewEvent)],
        seqs: &[Option<i64>],
    ) -> Result<()>;
    /// Adds `n` to the last number of each `(webhook, key, n)` (a new key starts at 0) and
    /// answers `(webhook, key, last)` for each; see `ordering`. Locks each key's row to the
    /// end of the caller's transaction.
    async fn bump_ordering_keys(
        conn: &mut Conn<Self>,
        groups: &[(String, String, i64)],
    ) -> Result<Vec<(String, String, i64)>>;
    /// The attempts, the deliveries they move on, and the webhooks' failure streaks, inside
    /// the caller's transaction; see [`crate::QueueStore::record_attempts`].
    /// `stored[i]` is `batch[i]`'s payloads as written (`payload::stored_attempt`).
    async fn write_attempts(
        conn: &mut Conn<Self>,
        batch: &[AttemptRecord],
        stored: &[StoredAttempt],
    ) -> Result<()>;
    /// Tells other nodes (not this one). Runs after the change committed.
    async fn notify(&self, pool: &Pool<Self::Db>, channel: Channel) -> Result<()>;
}

/// `run_shared_sql!(dialect, sqlx database, migrations folder)`: its [`RunSql`], written once
/// for both dialects' types without naming sqlx's bounds. A list of ids ([`Arg::Ids`]) is
/// bound as the dialect's `id_list` makes it.
macro_rules! run_shared_sql {
    ($dialect:ty, $db:ty, $migrations:literal) => {
        #[async_trait::async_trait]
        impl $crate::dialect::RunSql for $dialect {
        type Db = $db;

        async fn migrate(pool: &sqlx::Pool<$db>) -> $crate::error::Result<()> {
            $crate::dialect::embedded_migrations!($migrations).run(pool).await?;
            Ok(())
        }

        async fn fetch_all<T: $crate::dialect::Tuple>(
            conn: &mut $crate::dialect::Conn<Self>,
            sql: &str,
            args: Vec<$crate::sql::Arg>,
        ) -> $crate::error::Result<Vec<T>> {
            Ok(run_shared_sql!(@bind sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())), args)
                .fetch_all(conn)
                .await?)
        }

        async fn fetch_optional<T: $crate::dialect::Tuple>(
            conn: &mut $crate::dialect::Conn<Self>,
            sql: &str,
            args: Vec<$crate::sql::Arg>,
        ) -> $crate::error::Result<Option<T>> {
            Ok(run_shared_sql!(@bind sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned())), args)
                .fetch_optional(conn)
                .await?)
        }

        async fn execute(
            conn: &mut $crate::dialect::Conn<Self>,
            sql: &str,
            args: Vec<$crate::sql::Arg>,
        ) -> $crate::error::Result<u64> {
            let done = run_shared_sql!(@bind sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), args)
                .execute(conn)
                .await?;
            Ok(done.rows_affected())
        }
        }
    };
    (@bind $q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                $crate::sql::Arg::Text(s) => q.bind(s),
                $crate::sql::Arg::Int(i) => q.bind(i),
                $crate::sql::Arg::Bool(b) => q.bind(b),
                $crate::sql::Arg::NullText => q.bind(None::<String>),
                $crate::sql::Arg::NullInt => q.bind(None::<i64>),
                $crate::sql::Arg::Ids(ids) => q.bind(Self::id_list(ids)),
            };
        }
        q
    }};
}
pub(crate) use run_shared_sql;

/// The migrations of dialect `$dir` (`migrations/$dir/…`), embedded in the binary. By hand:
/// `sqlx::migrate!` needs sqlx's `macros` feature, which we keep off. Both dialects have the
/// same files; each is listed once, here.
macro_rules! embedded_migrations {
    ($dir:literal) => {
        $crate::dialect::migrator(&[
            (
                1,
                "init",
                include_str!(concat!("../migrations/", $dir, "/0001_init.sql")),
            ),
            (
                2,
                "clinic",
                include_str!(concat!("../migrations/", $dir, "/0002_clinic.sql")),
            ),
            (
                3,
                "nodes",
                include_str!(concat!("../migrations/", $dir, "/0003_nodes.sql")),
            ),
            (
                5,
                "patient_data",
                include_str!(concat!("../migrations/", $dir, "/0005_patient_data.sql")),
            ),
            (
                6,
                "claim_by_webhook",
                include_str!(concat!(
                    "../migrations/",
                    $dir,
                    "/0006_claim_by_webhook.sql"
                )),
            ),
            (
                7,
                "oauth_tokens",
                include_str!(concat!("../migrations/", $dir, "/0007_oauth_tokens.sql")),
            ),
            (
                8,
                "ordering_keys",
                include_str!(concat!("../migrations/", $dir, "/0008_ordering_keys.sql")),
            ),
            (
                9,
                "scheduled",
                include_str!(concat!("../migrations/", $dir, "/0009_scheduled.sql")),
            ),
            (
                10,
                "events_by_type",
                include_str!(concat!("../migrations/", $dir, "/0010_events_by_type.sql")),
            ),
            (
                11,
                "roles",
                include_str!(concat!("../migrations/", $dir, "/0011_roles.sql")),
            ),
            (
                12,
                "accounts",
                include_str!(concat!("../migrations/", $dir, "/0012_accounts.sql")),
            ),
            (
                13,
                "event_search_terms",
                include_str!(concat!(
                    "../migrations/",
                    $dir,
                    "/0013_event_search_terms.sql"
                )),
            ),
            (
                14,
                "ordering_key_lookup",
                include_str!(concat!(
                    "../migrations/",
                    $dir,
                    "/0014_ordering_key_lookup.sql"
                )),
            ),
            (
                16,
                "user_last_login",
                include_str!(concat!("../migrations/", $dir, "/0016_user_last_login.sql")),
            ),
            (
                17,
                "partner_links",
                include_str!(concat!("../migrations/", $dir, "/0017_partner_links.sql")),
            ),
            (
                18,
                "partner_link_maker",
                include_str!(concat!(
                    "../migrations/",
                    $dir,
                    "/0018_partner_link_maker.sql"
                )),
            ),
        ])
    };
}
pub(crate) use embedded_migrations;

/// Each file with its own version (its number), so numbers taken by work on other branches may
/// leave gaps: sqlx applies whatever has not been applied, in version order.
pub(crate) fn migrator(files: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, name, sql)| {
                Migration::new(
                    version,
                    name.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
