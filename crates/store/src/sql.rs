//! SQL text both dialects run as is. SQLite reads `$N` as "the N-th argument" just as
//! PostgreSQL does, and both have `RETURNING`, `ON CONFLICT` and row values, so only the
//! statements that really differ (claiming, batch writes, releasing a list of leases) live in
//! `sqlite.rs`/`postgres.rs`. Arguments travel as [`Arg`]s, which each dialect binds.

use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::rows::{decode_cursor, page_limit};
use crate::types::DeliveryFilter;

pub(crate) const INSERT_WEBHOOK: &str = "INSERT INTO webhooks \
    (id, name, enabled, events, config, version, disabled_reason, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, 1, NULL, $6, $6) \
    RETURNING id, name, enabled, events, config, version, disabled_reason, created_at, updated_at";

pub(crate) const GET_WEBHOOK: &str = "SELECT id, name, enabled, events, config, version, \
    disabled_reason, created_at, updated_at FROM webhooks WHERE id = $1";

pub(crate) const LIST_WEBHOOKS: &str = "SELECT id, name, enabled, events, config, version, \
    disabled_reason, created_at, updated_at FROM webhooks ORDER BY created_at, id";

/// In `SET`, column names read the old row: the streak resets on a new config or a re-enable.
pub(crate) const UPDATE_WEBHOOK: &str = "UPDATE webhooks SET \
    failing_since = CASE WHEN config <> $5 OR (enabled = FALSE AND $3 = TRUE) \
        THEN NULL ELSE failing_since END, \
    last_failure_at = CASE WHEN config <> $5 OR (enabled = FALSE AND $3 = TRUE) \
        THEN NULL ELSE last_failure_at END, \
    name = $2, enabled = $3, events = $4, config = $5, disabled_reason = $6, \
    version = version + 1, updated_at = $7 \
    WHERE id = $1 \
    RETURNING id, name, enabled, events, config, version, disabled_reason, created_at, updated_at";

pub(crate) const SET_WEBHOOK_ENABLED: &str = "UPDATE webhooks SET \
    failing_since = CASE WHEN $2 = TRUE THEN NULL ELSE failing_since END, \
    last_failure_at = CASE WHEN $2 = TRUE THEN NULL ELSE last_failure_at END, \
    enabled = $2, disabled_reason = $3, version = version + 1, updated_at = $4 \
    WHERE id = $1";

pub(crate) const DELETE_WEBHOOK: &str = "DELETE FROM webhooks WHERE id = $1";

pub(crate) const FAIL_DELIVERIES_OF_DELETED_WEBHOOK: &str = "UPDATE deliveries SET \
    status = 'failed', last_error = 'webhook deleted', lease_until = NULL, lease_owner = NULL, \
    updated_at = $2 \
    WHERE webhook_id = $1 AND status = 'pending'";

pub(crate) const WEBHOOKS_FAILING_SINCE: &str = "SELECT id FROM webhooks \
    WHERE enabled = TRUE AND failing_since IS NOT NULL AND failing_since <= $1 \
    AND last_failure_at >= $1 ORDER BY id";

pub(crate) const EVENT_COLS: &str = "id, event_type, vars, idempotency_key, created_at, \
    vars_bytes, vars_sha256, purged_at, purge_reason";

pub(crate) const GET_EVENT: &str = "SELECT id, event_type, vars, idempotency_key, created_at, \
    vars_bytes, vars_sha256, purged_at, purge_reason FROM events WHERE id = $1";

pub(crate) const DELIVERY_COLS: &str = "d.id, d.event_id, d.webhook_id, e.event_type, \
    d.status, d.attempts, d.next_attempt_at, d.created_at, d.updated_at, d.last_status, \
    d.last_error, d.is_test";

pub(crate) const GET_DELIVERY: &str = "SELECT d.id, d.event_id, d.webhook_id, e.event_type, \
    d.status, d.attempts, d.next_attempt_at, d.created_at, d.updated_at, d.last_status, \
    d.last_error, d.is_test FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = $1";

pub(crate) const GET_ATTEMPTS: &str = "SELECT id, delivery_id, attempt_no, started_at, \
    duration_ms, request, response_status, response_headers, response_body, error, outcome, \
    coalesce(CAST(request_bytes AS TEXT), '') || ' ' || coalesce(request_sha256, '') || ' ' || \
    coalesce(CAST(response_bytes AS TEXT), '') || ' ' || coalesce(response_sha256, ''), \
    purged_at, purge_reason \
    FROM attempts WHERE delivery_id = $1 ORDER BY attempt_no, started_at, id";

pub(crate) const RETRY_DELIVERY: &str = "UPDATE deliveries SET status = 'pending', \
    next_attempt_at = $2, lease_until = NULL, lease_owner = NULL, updated_at = $2 WHERE id = $1 \
    AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = deliveries.event_id AND e.purged_at IS NOT NULL)";

pub(crate) const RETRY_FAILED: &str = "UPDATE deliveries SET status = 'pending', \
    next_attempt_at = $4, lease_until = NULL, lease_owner = NULL, updated_at = $4 \
    WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2 AND created_at < $3 \
    AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = deliveries.event_id AND e.purged_at IS NOT NULL) \
    RETURNING id";

/// What [`RETRY_FAILED`] would do, counted first: `(failed, of them with a purged event)`,
/// over at most `$4` failed deliveries, so the count a person confirms is the count sent.
pub(crate) const COUNT_FAILED: &str = "SELECT count(*), \
    COALESCE(sum(CASE WHEN gone THEN 1 ELSE 0 END), 0) FROM (SELECT EXISTS (SELECT 1 FROM events e \
    WHERE e.id = deliveries.event_id AND e.purged_at IS NOT NULL) AS gone FROM deliveries \
    WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2 AND created_at < $3 \
    LIMIT $4) AS f";

/// Two index ranges, one per partial index; see the migrations.
pub(crate) const NEXT_DUE: &str = "SELECT \
    (SELECT min(next_attempt_at) FROM deliveries \
        WHERE status = 'pending' AND lease_until IS NULL), \
    (SELECT min(lease_until) FROM deliveries \
        WHERE status = 'pending' AND lease_until IS NOT NULL)";

/// `$1` now: the next due time after it, read from the `deliveries_due` partial index.
pub(crate) const NEXT_DUE_AFTER: &str = "SELECT min(next_attempt_at) FROM deliveries \
    WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at > $1";

pub(crate) const INSERT_TOKEN: &str = "INSERT INTO api_tokens \
    (id, name, token_hash, created_at, role, clinics, bodies) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) const FIND_TOKEN: &str = "SELECT id, name, created_at, last_used_at, revoked_at, \
    role, clinics, bodies FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL";

pub(crate) const TOUCH_TOKEN: &str = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1";

pub(crate) const LIST_TOKENS: &str = "SELECT id, name, created_at, last_used_at, revoked_at, \
    role, clinics, bodies FROM api_tokens ORDER BY created_at, id";

pub(crate) const REVOKE_TOKEN: &str =
    "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

pub(crate) const KV_GET: &str = "SELECT value FROM kv WHERE key = $1";

pub(crate) const KV_SET: &str = "INSERT INTO kv (key, value) VALUES ($1, $2) \
    ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// A node says it is alive; the first time, it is registered.
pub(crate) const HEARTBEAT: &str = "INSERT INTO nodes (id, started_at, heartbeat_at) \
    VALUES ($1, $2, $2) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// A node (re)starts: a new incarnation under the same id.
pub(crate) const START_NODE: &str = "INSERT INTO nodes (id, started_at, heartbeat_at) \
    VALUES ($1, $2, $2) ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, \
    heartbeat_at = excluded.heartbeat_at";

/// The leases a node's earlier incarnation held (it has claimed nothing yet itself).
pub(crate) const RELEASE_OWN_LEASES: &str = "UPDATE deliveries \
    SET lease_until = NULL, lease_owner = NULL \
    WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_owner = $1";

/// Every lease: where one process owns the database, none can be live at its start.
pub(crate) const RELEASE_ALL_LEASES: &str = "UPDATE deliveries \
    SET lease_until = NULL, lease_owner = NULL \
    WHERE status = 'pending' AND lease_until IS NOT NULL";

/// Leases whose owner has not said it is alive since `$1` (or is not registered at all:
/// its row was removed as dead, then it came back). Leases without an owner (claimed before
/// nodes existed) are left to expire. Reads the partial index of leased deliveries.
pub(crate) const RELEASE_DEAD_LEASES: &str = "UPDATE deliveries \
    SET lease_until = NULL, lease_owner = NULL \
    WHERE status = 'pending' AND lease_until IS NOT NULL AND lease_owner IS NOT NULL \
    AND lease_owner NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $1)";

pub(crate) const FORGET_DEAD_NODES: &str = "DELETE FROM nodes WHERE heartbeat_at < $1";

/// A bind value: shared SQL takes its arguments as a list each dialect binds.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Bool(bool),
    NullText,
    NullInt,
    /// A list of ids, for `Dialect::RELEASE`; each dialect binds it its own way.
    Ids(Vec<String>),
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_owned())
    }
}

impl From<i64> for Arg {
    fn from(i: i64) -> Arg {
        Arg::Int(i)
    }
}

impl From<bool> for Arg {
    fn from(b: bool) -> Arg {
        Arg::Bool(b)
    }
}

impl From<Option<String>> for Arg {
    fn from(s: Option<String>) -> Arg {
        s.map_or(Arg::NullText, Arg::Text)
    }
}

impl From<Option<i64>> for Arg {
    fn from(i: Option<i64>) -> Arg {
        i.map_or(Arg::NullInt, Arg::Int)
    }
}

/// `args![a, b]`: the arguments `$1`, `$2` of a shared statement.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$($crate::sql::Arg::from($a)),*]
    };
}
pub(crate) use args;

/// A query built at run time. The SQL holds only placeholders, never caller text.
#[derive(Debug)]
pub(crate) struct Built {
    pub sql: String,
    pub args: Vec<Arg>,
    /// The page size; the query fetches one more row to tell whether there is a next page.
    pub limit: usize,
}

pub(crate) struct Builder {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Builder {
    pub(crate) fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        format!("${}", self.args.len())
    }
}

/// SQL for "the ids in `p`" (an [`Arg::Ids`]), as `Dialect::ID_LIST` says it for `$1`.
fn id_list(dialect: &str, p: &str) -> String {
    if dialect == "postgres" {
        format!("(SELECT unnest({p}::text[]))")
    } else {
        format!("(SELECT value FROM json_each({p}))")
    }
}

/// One variable of an event's snapshot (`e.vars`, JSON text) as SQL text.
fn event_var(dialect: &str, name: &'static str) -> String {
    debug_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    // A sealed snapshot is not JSON: it matches nothing (and must not make
    // the cast or json_extract fail).
    if dialect == "postgres" {
        format!("(CASE WHEN left(e.vars, 1) = '{{' THEN e.vars::jsonb ->> '{name}' END)")
    } else {
        format!("(CASE WHEN json_valid(e.vars) THEN json_extract(e.vars, '$.{name}') END)")
    }
}

/// `sealer` hashes the search's terms for the blind index (`event_search_terms`); without
/// one, only plain snapshots are searched.
pub(crate) fn list_deliveries(
    f: &DeliveryFilter,
    dialect: &str,
    sealer: Option<&dyn crate::Sealer>,
) -> Result<Built> {
    let mut b = Builder {
        sql: format!(
            "SELECT {DELIVERY_COLS} FROM deliveries d JOIN events e ON e.id = d.event_id WHERE TRUE"
        ),
        args: Vec::new(),
    };
    if let Some(w) = f.webhook_id {
        let p = b.arg(Arg::Text(w.to_string()));
        b.sql += &format!(" AND d.webhook_id = {p}");
    }
    if let Some(ws) = &f.webhook_ids {
        let p = b.arg(Arg::Ids(ws.iter().map(ToString::to_string).collect()));
        let list = id_list(dialect, &p);
        b.sql += &format!(" AND d.webhook_id IN {list}");
    }
    if let Some(s) = f.status {
        let p = b.arg(Arg::Text(s.as_str().to_owned()));
        b.sql += &format!(" AND d.status = {p}");
    }
    if let Some(t) = &f.event_type {
        let p = b.arg(Arg::Text(t.clone()));
        b.sql += &format!(" AND e.event_type = {p}");
    }
    if let Some(since) = f.since {
        let p = b.arg(Arg::Int(since));
        b.sql += &format!(" AND d.created_at >= {p}");
    }
    if let Some(until) = f.until {
        let p = b.arg(Arg::Int(until));
        b.sql += &format!(" AND d.created_at < {p}");
    }
    if let Some(term) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if term.len() > 200 {
            return Err(StoreError::Rejected(
                carehook_core::clinic::FieldError::new("search", "at most 200 characters"),
            ));
        }
        if term.bytes().all(|c| c.is_ascii_digit()) {
            let p = b.arg(Arg::Text(term.to_owned()));
            // A sealed snapshot's appointment id is found through the index.
            let indexed = match sealer {
                Some(s) => {
                    let h = b.arg(Arg::Text(
                        s.search_term(carehook_core::search::APPOINTMENT, term),
                    ));
                    format!(
                        " OR e.id IN (SELECT event_id FROM event_search_terms WHERE term = {h})"
                    )
                }
                None => String::new(),
            };
            b.sql += &format!(
                " AND ({} = {p} OR e.patient_id = {p}{indexed})",
                event_var(dialect, "appointment_id"),
            );
        } else {
            let escaped: String = term
                .to_lowercase()
                .chars()
                .flat_map(|c| match c {
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            let p = b.arg(Arg::Text(format!("%{escaped}%")));
            // Every word of the search among the event's hashed name words (sealed or not),
            // or, for a plain snapshot, a part of the name.
            let words = carehook_core::search::name_query_terms(term);
            let indexed = match sealer {
                Some(s) if !words.is_empty() => {
                    let hashes: Vec<String> = words
                        .iter()
                        .map(|(kind, w)| b.arg(Arg::Text(s.search_term(kind, w))))
                        .collect();
                    let n = b.arg(Arg::Int(hashes.len() as i64));
                    format!(
                        " OR e.id IN (SELECT event_id FROM event_search_terms WHERE term IN ({}) \
                         GROUP BY event_id HAVING count(*) = {n})",
                        hashes.join(", ")
                    )
                }
                _ => String::new(),
            };
            b.sql += &format!(
                " AND (lower({}) LIKE {p} ESCAPE '\\'{indexed})",
                event_var(dialect, "patient_name")
            );
        }
    }
    keyset(&mut b, "d", f.cursor.as_deref())?;
    let limit = page_limit(f.limit);
    let p = b.arg(Arg::Int(i64::from(limit) + 1));
    b.sql += &format!(" ORDER BY d.created_at DESC, d.id DESC LIMIT {p}");
    Ok(Built {
        sql: b.sql,
        args: b.args,
        limit: limit as usize,
    })
}

pub(crate) fn list_events(limit: u32, cursor: Option<&str>) -> Result<Built> {
    let mut b = Builder {
        sql: format!("SELECT {EVENT_COLS} FROM events e WHERE TRUE"),
        args: Vec::new(),
    };
    keyset(&mut b, "e", cursor)?;
    let limit = page_limit(limit);
    let p = b.arg(Arg::Int(i64::from(limit) + 1));
    b.sql += &format!(" ORDER BY e.created_at DESC, e.id DESC LIMIT {p}");
    Ok(Built {
        sql: b.sql,
        args: b.args,
        limit: limit as usize,
    })
}

fn keyset(b: &mut Builder, table: &str, cursor: Option<&str>) -> Result<()> {
    if let Some(c) = cursor {
        let (at, id): (i64, Uuid) = decode_cursor(c)?;
        let pa = b.arg(Arg::Int(at));
        let pi = b.arg(Arg::Text(id.to_string()));
        b.sql += &format!(" AND ({table}.created_at, {table}.id) < ({pa}, {pi})");
    }
    Ok(())
}

/// Cuts the extra row off a page and makes the cursor from the last row kept.
pub(crate) fn into_page<T>(
    mut items: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> (i64, Uuid),
) -> crate::Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more {
        items.last().map(|t| {
            let (at, id) = key(t);
            crate::rows::encode_cursor(at, id)
        })
    } else {
        None
    };
    crate::Page { items, next_cursor }
}
