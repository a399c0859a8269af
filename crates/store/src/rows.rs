//! Turning database rows into the public row types, shared by both dialects.
//!
//! Queries decode into plain tuples (which sqlx decodes the same way on SQLite and PostgreSQL),
//! and these functions do the parsing (UUIDs, JSON, enums) once for both.

use uuid::Uuid;

use crate::error::{Result, StoreError};
use crate::payload::Seal;
use crate::types::*;

pub(crate) type WebhookTuple = (
    String,
    String,
    bool,
    String,
    String,
    i64,
    Option<String>,
    i64,
    i64,
);
pub(crate) type EventTuple = (
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);
pub(crate) type DeliveryTuple = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    bool,
);
pub(crate) type AttemptTuple = (
    String,
    String,
    i64,
    i64,
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    // Sizes and hashes, as `sql::ATTEMPT_DIGESTS` joins them (sqlx decodes at most 16 columns).
    String,
    Option<i64>,
    Option<String>,
);
pub(crate) type TokenTuple = (
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<String>,
    bool,
);

pub(crate) fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("bad uuid {s:?}: {e}")))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("bad JSON in {what}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    // Serializing a `Value`, a string map or a string list cannot fail.
    serde_json::to_string(v).expect("JSON values always serialize")
}

pub(crate) fn webhook(t: WebhookTuple) -> Result<WebhookRow> {
    let (id, name, enabled, events, config, version, disabled_reason, created_at, updated_at) = t;
    Ok(WebhookRow {
        id: uuid(&id)?.into(),
        name,
        enabled,
        events: json("webhooks.events", &events)?,
        config: json("webhooks.config", &config)?,
        version,
        disabled_reason,
        created_at,
        updated_at,
    })
}

pub(crate) fn event(seal: &Seal, t: EventTuple) -> Result<EventRow> {
    let (
        id,
        event_type,
        vars,
        idempotency_key,
        created_at,
        vars_bytes,
        vars_sha256,
        purged_at,
        purge_reason,
    ) = t;
    Ok(EventRow {
        id: uuid(&id)?.into(),
        event_type,
        vars: json("events.vars", &seal.open("events.vars", vars)?)?,
        idempotency_key,
        created_at,
        vars_bytes,
        vars_sha256,
        purged_at,
        purge_reason: reason(purge_reason)?,
    })
}

fn reason(text: Option<String>) -> Result<Option<PurgeReason>> {
    text.map(|r| {
        r.parse()
            .map_err(|e: StoreError| StoreError::Corrupt(e.to_string()))
    })
    .transpose()
}

/// `request_bytes request_sha256 response_bytes response_sha256`, blank where NULL.
fn digests(text: &str) -> (Option<i64>, Option<String>, Option<i64>, Option<String>) {
    let mut parts = text.split(' ').map(|p| (!p.is_empty()).then_some(p));
    let mut next = || parts.next().flatten();
    let req_bytes = next().and_then(|n| n.parse().ok());
    let req_sha = next().map(str::to_string);
    let resp_bytes = next().and_then(|n| n.parse().ok());
    let resp_sha = next().map(str::to_string);
    (req_bytes, req_sha, resp_bytes, resp_sha)
}

pub(crate) fn delivery(t: DeliveryTuple) -> Result<DeliveryRow> {
    let (
        id,
        event_id,
        webhook_id,
        event_type,
        status,
        attempts,
        next_attempt_at,
        created_at,
        updated_at,
        last_status,
        last_error,
        is_test,
    ) = t;
    Ok(DeliveryRow {
        id: uuid(&id)?.into(),
        event_id: uuid(&event_id)?.into(),
        webhook_id: uuid(&webhook_id)?.into(),
        event_type,
        status: status
            .parse()
            .map_err(|e: StoreError| StoreError::Corrupt(e.to_string()))?,
        attempts,
        next_attempt_at,
        created_at,
        updated_at,
        last_status,
        last_error,
        is_test,
    })
}

pub(crate) fn attempt(seal: &Seal, t: AttemptTuple) -> Result<AttemptRow> {
    let (
        id,
        delivery_id,
        attempt_no,
        started_at,
        duration_ms,
        request,
        response_status,
        response_headers,
        response_body,
        error,
        outcome,
        digest_text,
        purged_at,
        purge_reason,
    ) = t;
    let (request_bytes, request_sha256, response_bytes, response_sha256) = digests(&digest_text);
    Ok(AttemptRow {
        id: uuid(&id)?,
        delivery_id: uuid(&delivery_id)?.into(),
        attempt_no,
        started_at,
        duration_ms,
        request: json("attempts.request", &seal.open("attempts.request", request)?)?,
        response_status,
        response_headers: seal
            .open_opt("attempts.response_headers", response_headers)?
            .map(|h| json("attempts.response_headers", &h))
            .transpose()?,
        response_body: seal.open_opt("attempts.response_body", response_body)?,
        error,
        outcome: outcome
            .parse()
            .map_err(|e: StoreError| StoreError::Corrupt(e.to_string()))?,
        request_bytes,
        request_sha256,
        response_bytes,
        response_sha256,
        purged_at,
        purge_reason: reason(purge_reason)?,
    })
}

pub(crate) fn token(t: TokenTuple) -> Result<TokenRow> {
    let (id, name, created_at, last_used_at, revoked_at, role, clinics, bodies) = t;
    Ok(TokenRow {
        id: uuid(&id)?.into(),
        name,
        role,
        clinics: clinics
            .map(|c| json("api_tokens.clinics", &c))
            .transpose()?,
        bodies,
        created_at,
        last_used_at,
        revoked_at,
    })
}

pub(crate) fn status_text(next: DeliveryNext) -> &'static str {
    match next {
        DeliveryNext::Succeeded => "succeeded",
        DeliveryNext::RetryAt(_) => "pending",
        DeliveryNext::Failed => "failed",
    }
}

/// Keyset cursor over `(created_at, id)`. Opaque to clients; today `"<ms>.<uuid>"`.
pub(crate) fn encode_cursor(created_at: i64, id: Uuid) -> String {
    format!("{created_at}.{}", id.simple())
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<(i64, Uuid)> {
    let bad = || StoreError::bad_cursor(cursor);
    let (at, id) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((
        at.parse().map_err(|_| bad())?,
        Uuid::parse_str(id).map_err(|_| bad())?,
    ))
}

pub(crate) fn page_limit(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// A webhook's failure streak, the input to auto-disable, folded forward by each batch of
/// attempts. Invariant (with attempts in order): `failing_since` is the first failure after
/// `last_success_at`, or `None` when the last attempt succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Streak {
    pub last_success_at: Option<i64>,
    pub failing_since: Option<i64>,
    pub last_failure_at: Option<i64>,
}

impl Streak {
    /// Folds in attempts `(started_at, succeeded)`. Attempts from different workers can
    /// arrive out of order; an old failure never starts a streak before a newer success, and
    /// an old success never ends a streak of newer failures.
    pub(crate) fn observe(mut self, attempts: &mut [(i64, bool)]) -> Streak {
        attempts.sort_unstable();
        for &(at, ok) in attempts.iter() {
            if ok {
                self.last_success_at = Some(self.last_success_at.map_or(at, |s| s.max(at)));
                if self.failing_since.is_some_and(|f| f <= at) {
                    // Failures newer than this success (seen earlier) keep a streak, from the
                    // newest one we know of.
                    self.failing_since = self.last_failure_at.filter(|&f| f > at);
                }
            } else {
                self.last_failure_at = Some(self.last_failure_at.map_or(at, |f| f.max(at)));
                if self.last_success_at.is_none_or(|s| at > s) {
                    self.failing_since = Some(self.failing_since.map_or(at, |f| f.min(at)));
                }
            }
        }
        self
    }
}

/// The earlier of the next due time and the next lease expiry (a lease is over once
/// `lease_until < now`, so one millisecond after it).
pub(crate) fn earliest(due: Option<i64>, lease_until: Option<i64>) -> Option<i64> {
    let lease = lease_until.map(|l| l.saturating_add(1));
    match (due, lease) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Joins leased deliveries with their events' data, oldest due first.
/// Rows: (id, event_id, webhook_id, attempts, created_at, is_test, next_attempt_at).
/// A leased delivery as a claim returns it: (id, event_id, webhook_id, attempts, created_at,
/// is_test, next_attempt_at, ordering_key, ordering_seq).
pub(crate) type Leased = (
    String,
    String,
    String,
    i64,
    i64,
    bool,
    i64,
    Option<String>,
    Option<i64>,
);

pub(crate) fn assemble_claims(
    mut leased: Vec<Leased>,
    events: Vec<(String, String, String)>,
    seal: &Seal,
) -> Result<Vec<Claimed>> {
    let events: std::collections::HashMap<String, (String, String)> = events
        .into_iter()
        .map(|(id, ty, vars)| (id, (ty, vars)))
        .collect();
    leased.sort_by(|a, b| (a.6, a.4, &a.0).cmp(&(b.6, b.4, &b.0)));
    leased
        .into_iter()
        .map(
            |(id, event_id, webhook_id, attempts, created_at, is_test, _, key, seq)| {
                let (event_type, vars) = events.get(&event_id).ok_or_else(|| {
                    StoreError::Corrupt(format!("delivery {id} has no event {event_id}"))
                })?;
                Ok(Claimed {
                    delivery_id: uuid(&id)?.into(),
                    event_id: uuid(&event_id)?.into(),
                    webhook_id: uuid(&webhook_id)?.into(),
                    event_type: event_type.clone(),
                    vars: json("events.vars", &seal.open("events.vars", vars.clone())?)?,
                    attempts,
                    created_at,
                    is_test,
                    ordering: key
                        .zip(seq)
                        .map(|(key, sequence)| OrderingPlace { key, sequence }),
                })
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(-5, id)).unwrap(), (-5, id));
        for bad in ["", "12", "x.y", "12.notauuid"] {
            assert!(
                decode_cursor(bad).is_err_and(|e| e.is_bad_cursor()),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_streak_starts_at_the_first_failure_after_the_last_success() {
        let s = Streak::default().observe(&mut [(10, false), (5, true), (20, false)]);
        assert_eq!(s.last_success_at, Some(5));
        assert_eq!(s.failing_since, Some(10));
        assert_eq!(s.last_failure_at, Some(20));
        let s = s.observe(&mut [(30, true)]);
        assert_eq!(s.failing_since, None);
    }

    #[test]
    fn out_of_order_attempts_neither_start_nor_end_a_streak_wrongly() {
        // An old failure after a newer success: no streak.
        let s = Streak::default()
            .observe(&mut [(50, true)])
            .observe(&mut [(40, false)]);
        assert_eq!(s.failing_since, None);
        // An old success after newer failures: the streak stays.
        let s = Streak::default()
            .observe(&mut [(60, false)])
            .observe(&mut [(50, true)]);
        assert_eq!(s.failing_since, Some(60));
        // An earlier failure (still after the last success) moves the start back.
        let s = s.observe(&mut [(55, false)]);
        assert_eq!(s.failing_since, Some(55));
        // A success between known failures: the streak restarts at the newest failure known.
        let s = s.observe(&mut [(58, true)]);
        assert_eq!(s.failing_since, Some(60));
    }
}
