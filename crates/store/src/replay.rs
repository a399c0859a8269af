//! Replay: stored events sent again to one webhook, and the latest events of some types.
//!
//! The server decides what a replay sends (the webhook's events and conditions, retention); the
//! store reads the candidates a page at a time and writes the deliveries in one transaction that
//! checks again, under the webhook's lock, that none of the events already has a pending (or,
//! `only_missing`, a succeeded) delivery to the webhook: two identical replays at once create
//! each delivery once.

use crate::error::Result;
use crate::types::{DeliveryId, EventId, EventRow, PurgeReason, WebhookId};

/// One page of a replay's candidates: the events of `event_types` created in
/// `[since, until)` after `after` (`(created_at, id)`), oldest first, at most `limit`.
#[derive(Debug, Clone)]
pub struct ReplayQuery {
    pub webhook_id: WebhookId,
    /// Canonical event names; an empty list reads nothing.
    pub event_types: Vec<String>,
    pub since: i64,
    pub until: i64,
    pub after: Option<(i64, EventId)>,
    pub limit: u32,
}

/// An event a replay may send, and what the webhook already has of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayCandidate {
    pub event_id: EventId,
    pub event_type: String,
    pub created_at: i64,
    /// The snapshot; `None` when it is gone (`purge_reason`) or cannot be opened.
    pub vars: Option<carehook_core::Vars>,
    pub purge_reason: Option<PurgeReason>,
    /// The webhook has a succeeded delivery of it.
    pub succeeded: bool,
    /// The webhook has a pending (waiting, retrying or in flight) delivery of it.
    pub pending: bool,
}

/// Replays and the dashboard's latest alerts.
#[async_trait::async_trait]
pub trait ReplayStore: Send + Sync {
    /// See [`ReplayQuery`].
    async fn replay_candidates(&self, q: &ReplayQuery) -> Result<Vec<ReplayCandidate>>;
    /// In one transaction (the webhook's row locked on PostgreSQL; SQLite has one writer): a
    /// pending delivery, due `now` and created `now`, of each `(delivery id, event id)` to
    /// `webhook_id`, unless the event already has a pending delivery to it or, `only_missing`,
    /// a succeeded one. Each item's ordering key (its id, as at intake) numbers the delivery
    /// after the key's others, in the order given. Answers the deliveries created; wakes the
    /// dispatchers.
    async fn insert_replay(
        &self,
        webhook_id: WebhookId,
        items: &[(DeliveryId, EventId, Option<String>)],
        only_missing: bool,
        now: i64,
    ) -> Result<Vec<DeliveryId>>;
    /// The newest `limit` events of these types, newest first.
    async fn latest_events(&self, event_types: &[String], limit: u32) -> Result<Vec<EventRow>>;
}

/// `$1` the event types (as the dialect's id list), `$2` the webhook, `$3..$4` the range,
/// `$5, $6` the cursor, `$7` the limit.
pub(crate) fn candidates_sql(id_list: &str) -> String {
    format!(
        "SELECT e.id, e.event_type, e.vars, e.created_at, e.purge_reason, \
         EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.webhook_id = $2 \
                 AND d.status = 'succeeded'), \
         EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.webhook_id = $2 \
                 AND d.status = 'pending') \
         FROM events e \
         WHERE e.event_type IN {id_list} AND e.created_at >= $3 AND e.created_at < $4 \
         AND (e.created_at > $5 OR (e.created_at = $5 AND e.id > $6)) \
         ORDER BY e.created_at, e.id LIMIT $7"
    )
}

pub(crate) type CandidateTuple = (String, String, String, i64, Option<String>, bool, bool);

/// `$1` delivery id, `$2` event id, `$3` webhook, `$4` now, `$5` whether a succeeded delivery
/// also counts as "already there".
pub(crate) const INSERT_REPLAY: &str = "INSERT INTO deliveries (id, event_id, webhook_id, status, \
     attempts, next_attempt_at, created_at, updated_at, is_test) \
     SELECT $1, $2, $3, 'pending', 0, $4, $4, $4, FALSE \
     WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = $2 AND d.webhook_id = $3 \
       AND (d.status = 'pending' OR ($5 AND d.status = 'succeeded')))";

/// `$1` the key, `$2` its number, `$3` the delivery: a replayed delivery joins its ordering key.
pub(crate) const SET_ORDERING: &str =
    "UPDATE deliveries SET ordering_key = $1, ordering_seq = $2 WHERE id = $3";

/// Takes the webhook's row lock (PostgreSQL) for the transaction.
pub(crate) const LOCK_WEBHOOK: &str = "SELECT id FROM webhooks WHERE id = $1 FOR UPDATE";

/// `$1` the event types, `$2` the limit.
pub(crate) fn latest_sql(id_list: &str) -> String {
    format!(
        "SELECT {} FROM events e WHERE e.event_type IN {id_list} \
         ORDER BY e.created_at DESC, e.id DESC LIMIT $2",
        crate::sql::EVENT_COLS
    )
}
