//! Patient data over time: retention purges, a patient's erasure, and the audit trail's hash
//! chain. The SQL here is shared by both dialects; `sql_store` runs it.
//!
//! - A purge walks the unpurged rows in `(time, id)` order from a cursor, a bounded batch at a
//!   time, and clears the payloads of the eligible ones (finished deliveries past their
//!   webhook's cutoff); rows it must keep are stepped over, not read again. Metadata (ids,
//!   status, times, sizes, SHA-256) stays, so the log and statistics still answer.
//! - An erasure finds a patient's events by `events.patient_id` (written at intake from
//!   `patient_id` in the event's data), never by reading payloads, which may be sealed.
//! - Each audit row's hash covers its fields and the previous row's hash; the latest
//!   `(seq, hash)` is also kept in `kv` (`audit_head`), so deleting the newest rows shows too.

use sha2::{Digest as _, Sha256};

use crate::sql::Arg;
use crate::types::Retention;

/// The hash before the first row.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The `kv` key of the chain's newest `seq:hash`.
pub(crate) const AUDIT_HEAD: &str = "audit_head";

/// What an erased record's `data` becomes.
pub(crate) const TOMBSTONE: &str = r#"{"erased":true}"#;

/// The reason a cancelled delivery gives.
pub(crate) const ERASED_REASON: &str = "cancelled: the patient's data was erased on request";

/// A purge cursor: the last `(time, id)` looked at.
pub type PurgeCursor = (i64, String);

/// One batch of a purge: how many rows it cleared (or would clear, dry run), and where the
/// next batch starts (`None`: the walk is over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeStep {
    pub purged: u64,
    pub next: Option<PurgeCursor>,
}

/// `CASE d.webhook_id WHEN … THEN … ELSE before END`: each delivery's cutoff, with its
/// arguments numbered from `first`.
fn cutoff_sql(rules: &Retention, first: usize, args: &mut Vec<Arg>) -> String {
    let mut n = first;
    let mut next = |a: Arg, args: &mut Vec<Arg>| {
        args.push(a);
        let p = format!("${n}");
        n += 1;
        p
    };
    if rules.per_webhook.is_empty() {
        return next(Arg::Int(rules.before), args);
    }
    let mut sql = String::from("CASE");
    for (id, cutoff) in &rules.per_webhook {
        let w = next(Arg::Text(id.to_string()), args);
        let c = next(Arg::Int(*cutoff), args);
        sql += &format!(" WHEN d.webhook_id = {w} THEN {c}");
    }
    let d = next(Arg::Int(rules.before), args);
    sql += &format!(" ELSE {d} END");
    sql
}

/// The latest cutoff of any webhook: nothing at or after it can go.
fn max_cutoff(rules: &Retention) -> i64 {
    rules
        .per_webhook
        .iter()
        .map(|(_, c)| *c)
        .fold(rules.before, i64::max)
}

/// A statement and its arguments.
pub(crate) struct Stmt {
    pub sql: String,
    pub args: Vec<Arg>,
}

fn cursor_args(after: &Option<PurgeCursor>) -> (Arg, Arg) {
    match after {
        Some((t, id)) => (Arg::Int(*t), Arg::Text(id.clone())),
        None => (Arg::Int(i64::MIN), Arg::Text(String::new())),
    }
}

/// Attempts after the cursor, oldest first: `(id, started_at, eligible)`.
pub(crate) fn scan_attempts(rules: &Retention, after: &Option<PurgeCursor>, limit: u32) -> Stmt {
    let (t, id) = cursor_args(after);
    let mut args = vec![
        Arg::Int(max_cutoff(rules)),
        t,
        id,
        Arg::Int(i64::from(limit)),
    ];
    let cutoff = cutoff_sql(rules, 5, &mut args);
    Stmt {
        sql: format!(
            "SELECT a.id, a.started_at, (d.status <> 'pending' AND a.started_at < {cutoff}) \
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE a.purged_at IS NULL AND a.started_at < $1 AND (a.started_at, a.id) > ($2, $3) \
             ORDER BY a.started_at, a.id LIMIT $4"
        ),
        args,
    }
}

/// Events after the cursor, oldest first: `(id, created_at, eligible)`. An event may go once
/// none of its deliveries is pending and each is past its webhook's cutoff (an event with no
/// deliveries: the installation's cutoff).
pub(crate) fn scan_events(rules: &Retention, after: &Option<PurgeCursor>, limit: u32) -> Stmt {
    let (t, id) = cursor_args(after);
    let mut args = vec![
        Arg::Int(max_cutoff(rules)),
        t,
        id,
        Arg::Int(i64::from(limit)),
        Arg::Int(rules.before),
    ];
    let cutoff = cutoff_sql(rules, 6, &mut args);
    Stmt {
        sql: format!(
            "SELECT e.id, e.created_at, (NOT EXISTS (SELECT 1 FROM deliveries d \
               WHERE d.event_id = e.id AND (d.status = 'pending' OR e.created_at >= {cutoff})) \
             AND (e.created_at < $5 OR EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id))) \
             FROM events e \
             WHERE e.purged_at IS NULL AND e.created_at < $1 AND (e.created_at, e.id) > ($2, $3) \
             ORDER BY e.created_at, e.id LIMIT $4"
        ),
        args,
    }
}

/// Clears attempts' bodies (`$1`: the ids, `$2`: now, `$3`: the reason).
pub(crate) fn clear_attempts(id_list: &str) -> String {
    format!(
        "UPDATE attempts SET request = '{{}}', response_headers = NULL, response_body = NULL, \
         purged_at = $2, purge_reason = $3 WHERE id IN {id_list} AND purged_at IS NULL"
    )
}

/// Clears events' snapshots (`$1`: the ids, `$2`: now, `$3`: the reason).
pub(crate) fn clear_events(id_list: &str) -> String {
    format!(
        "UPDATE events SET vars = '{{}}', purged_at = $2, purge_reason = $3 \
         WHERE id IN {id_list} AND purged_at IS NULL"
    )
}

/// Deletes the search terms (the log's blind index) of events `$1` whose snapshots a purge
/// clears.
pub(crate) fn forget_search_terms(id_list: &str) -> String {
    format!("DELETE FROM event_search_terms WHERE event_id IN {id_list}")
}

/// Where the walk goes next, from the rows a batch read.
pub(crate) fn next_cursor(rows: &[(String, i64, bool)], limit: u32) -> Option<PurgeCursor> {
    if rows.len() < limit as usize {
        return None;
    }
    rows.last().map(|(id, t, _)| (*t, id.clone()))
}

// Erasure, `$1` the patient id as events carry it, `$2` now.

/// An erased patient can no longer be found by name in the log.
pub(crate) const ERASE_SEARCH_TERMS: &str = "DELETE FROM event_search_terms \
    WHERE event_id IN (SELECT id FROM events WHERE patient_id = $1)";

pub(crate) const ERASE_EVENTS: &str = "UPDATE events SET vars = '{}', purged_at = $2, \
    purge_reason = 'erasure' WHERE patient_id = $1 \
    AND (purge_reason IS NULL OR purge_reason <> 'erasure')";

pub(crate) const ERASE_ATTEMPTS: &str = "UPDATE attempts SET request = '{}', \
    response_headers = NULL, response_body = NULL, purged_at = $2, purge_reason = 'erasure' \
    WHERE delivery_id IN (SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id \
      WHERE e.patient_id = $1) \
    AND (purge_reason IS NULL OR purge_reason <> 'erasure')";

/// `$3`: the reason.
pub(crate) const CANCEL_DELIVERIES: &str = "UPDATE deliveries SET status = 'failed', \
    last_error = $3, lease_until = NULL, lease_owner = NULL, updated_at = $2 \
    WHERE status = 'pending' AND event_id IN (SELECT id FROM events WHERE patient_id = $1)";

/// The clinic tables an erasure makes tombstones of, each with the rows of patient `$1`
/// (an integer); `$2` now, `$3` the tombstone.
pub(crate) const ERASE_RECORDS: [(&str, &str); 5] = [
    (
        "patients",
        "UPDATE patients SET data = $3, updated_at = $2 WHERE id = $1 AND data <> $3",
    ),
    (
        "appointments",
        "UPDATE appointments SET data = $3, updated_at = $2 WHERE patient_id = $1 AND data <> $3",
    ),
    (
        "encounters",
        "UPDATE encounters SET data = $3, updated_at = $2 WHERE patient_id = $1 AND data <> $3",
    ),
    (
        "medical_records",
        "UPDATE medical_records SET data = $3, updated_at = $2 WHERE data <> $3 AND \
         encounter_id IN (SELECT id FROM encounters WHERE patient_id = $1)",
    ),
    (
        "prescriptions",
        "UPDATE prescriptions SET data = $3, updated_at = $2 WHERE data <> $3 AND \
         encounter_id IN (SELECT id FROM encounters WHERE patient_id = $1)",
    ),
];

/// Of these deliveries (`$1`), how many belong to an erased event: an attempt that was in
/// flight while its patient was erased must not bring the data back.
pub(crate) fn count_erased(id_list: &str) -> String {
    format!(
        "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id \
         WHERE d.id IN {id_list} AND e.purge_reason = 'erasure'"
    )
}

/// Clears what a late attempt wrote for an erased event, and ends its delivery
/// (`$1` the delivery ids, `$2` the reason).
pub(crate) fn scrub_late(id_list: &str) -> [String; 2] {
    [
        format!(
            "UPDATE attempts SET request = '{{}}', response_headers = NULL, \
             response_body = NULL, purged_at = started_at, purge_reason = 'erasure' \
             WHERE purged_at IS NULL AND delivery_id IN (SELECT d.id FROM deliveries d \
             JOIN events e ON e.id = d.event_id WHERE d.id IN {id_list} \
             AND e.purge_reason = 'erasure')"
        ),
        format!(
            "UPDATE deliveries SET status = 'failed', last_error = $2, lease_until = NULL, \
             lease_owner = NULL WHERE id IN {id_list} AND status = 'pending' \
             AND event_id IN (SELECT id FROM events WHERE purge_reason = 'erasure')"
        ),
    ]
}

// The audit trail.

pub(crate) const AUDIT_COLS: &str =
    "seq, at, actor, client_addr, action, resource, outcome, details, prev_hash, hash";

pub(crate) type AuditTuple = (
    i64,
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    String,
);

pub(crate) const LAST_AUDIT: &str = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1";

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (seq, at, actor, client_addr, \
    action, resource, outcome, details, prev_hash, hash) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

pub(crate) fn audit_page_sql() -> String {
    format!("SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
}

/// The hash of a row: SHA-256 (hex) of a JSON array of the previous hash and the row's
/// fields as stored (`details` as its stored text), so no two rows hash alike by accident.
#[allow(clippy::too_many_arguments)]
pub(crate) fn chain_hash(
    prev: &str,
    seq: i64,
    at: i64,
    actor: &str,
    client_addr: Option<&str>,
    action: &str,
    resource: &str,
    outcome: &str,
    details: &str,
) -> String {
    let text = serde_json::json!([
        prev,
        seq,
        at,
        actor,
        client_addr,
        action,
        resource,
        outcome,
        details
    ])
    .to_string();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn tuple_hash(prev: &str, t: &AuditTuple) -> String {
    chain_hash(prev, t.0, t.1, &t.2, t.3.as_deref(), &t.4, &t.5, &t.6, &t.7)
}

/// Checks a run of rows against the chain so far (`prev`: the last good `(seq, hash)`);
/// problems are pushed, naming each row.
pub(crate) fn check_rows(
    rows: &[AuditTuple],
    prev: &mut (i64, String),
    problems: &mut Vec<(i64, String)>,
) {
    for t in rows {
        let expected_seq = prev.0 + 1;
        if t.0 != expected_seq {
            problems.push((
                expected_seq,
                format!(
                    "rows {expected_seq}..{} are missing (deleted): the chain jumps from row {} to row {}",
                    t.0 - 1,
                    prev.0,
                    t.0
                ),
            ));
        } else if t.8 != prev.1 {
            problems.push((
                t.0,
                format!(
                    "row {} does not follow row {}: its prev_hash differs",
                    t.0, prev.0
                ),
            ));
        }
        if tuple_hash(&t.8, t) != t.9 {
            problems.push((
                t.0,
                format!("row {} was edited: its contents do not match its hash", t.0),
            ));
        }
        *prev = (t.0, t.9.clone());
    }
}

/// `kv`'s head as `(seq, hash)`.
pub(crate) fn parse_head(text: &str) -> Option<(i64, String)> {
    let (seq, hash) = text.split_once(':')?;
    Some((seq.parse().ok()?, hash.to_string()))
}

/// Exact action, or every action under a prefix ending in `.`.
pub(crate) fn action_matches(filter: &str) -> (&'static str, String) {
    if filter.ends_with('.') {
        (
            "action LIKE",
            format!("{}%", filter.replace(['%', '_'], "")),
        )
    } else {
        ("action =", filter.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_an_edited_and_a_deleted_row() {
        let mut rows = Vec::new();
        let mut prev = GENESIS.to_string();
        for seq in 1..=4 {
            let mut t: AuditTuple = (
                seq,
                seq * 10,
                "api token a".into(),
                None,
                "webhook.update".into(),
                format!("webhook/{seq}"),
                "ok".into(),
                "{}".into(),
                prev.clone(),
                String::new(),
            );
            t.9 = tuple_hash(&prev, &t);
            prev = t.9.clone();
            rows.push(t);
        }
        let check = |rows: &[AuditTuple]| {
            let mut problems = Vec::new();
            check_rows(rows, &mut (0, GENESIS.to_string()), &mut problems);
            problems
        };
        assert!(check(&rows).is_empty());
        let mut edited = rows.clone();
        edited[1].6 = "denied".into();
        assert_eq!(check(&edited)[0].0, 2);
        let mut deleted = rows.clone();
        deleted.remove(2);
        let p = check(&deleted);
        assert_eq!(p[0].0, 3, "{p:?}");
        assert!(p[0].1.contains("missing"));
    }
}
