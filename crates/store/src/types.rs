//! What goes in and comes out of the store. Rows are plain data the server serializes or maps;
//! inputs carry ids and times chosen by the caller, so a caller (and a test) controls the clock.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

use crate::error::StoreError;
pub use carehook_core::ids::{DeliveryId, EventId, Millis, TokenId, WebhookId};

/// A webhook as stored. `config` is the server's whole webhook spec, opaque to the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookRow {
    pub id: WebhookId,
    pub name: String,
    pub enabled: bool,
    pub events: Vec<String>,
    pub config: serde_json::Value,
    /// 1 on create, +1 on every change (`update_webhook`, `set_webhook_enabled`).
    pub version: i64,
    pub disabled_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: WebhookId,
    pub name: String,
    pub enabled: bool,
    pub events: Vec<String>,
    pub config: serde_json::Value,
}

/// An event and the deliveries the server decided it gets (one per matching enabled webhook).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub event_type: String,
    pub vars: carehook_core::Vars,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub deliveries: Vec<NewDelivery>,
    /// What this event does to scheduled webhooks' deliveries still pending for its
    /// appointment; applied before its own deliveries are written, in batch order.
    pub reschedule: Vec<Reschedule>,
}

#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    /// Its due time: now, or a scheduled webhook's time.
    pub next_attempt_at: i64,
    pub is_test: bool,
    /// Its ordering key's id (`carehook_core::ordering::key_id`); `None`: unordered. The
    /// store numbers a key's deliveries 1, 2, 3… as it writes them.
    pub ordering_key: Option<String>,
    /// Set for a scheduled webhook's delivery.
    pub scheduled: Option<Scheduled>,
}

/// A scheduled webhook's delivery (see `carehook_core::schedule`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scheduled {
    /// The event's appointment, by which a later event finds the delivery.
    pub appointment_id: Option<String>,
    /// Written already withdrawn (`superseded`, with this reason), never sent: its time had
    /// passed and the webhook skips late deliveries.
    pub withdrawn: Option<String>,
}

/// What an event does to one scheduled webhook's deliveries still pending for an appointment
/// (leased ones, being sent right now, are left alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reschedule {
    pub webhook_id: WebhookId,
    pub appointment_id: String,
    pub change: ScheduleChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleChange {
    /// They end `superseded`, with this reason, never sent.
    Withdraw(String),
    /// Their due time moves here.
    Retime(i64),
}

/// What `record_events` did with one `NewEvent`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Recorded {
    Created {
        event_id: EventId,
        delivery_ids: Vec<DeliveryId>,
    },
    /// The idempotency key was seen before (earlier, or earlier in the same batch): the first
    /// event's id and deliveries; nothing was written for this one.
    Duplicate {
        event_id: EventId,
        delivery_ids: Vec<DeliveryId>,
    },
}

impl Recorded {
    pub fn event_id(&self) -> EventId {
        match self {
            Recorded::Created { event_id, .. } | Recorded::Duplicate { event_id, .. } => *event_id,
        }
    }

    pub fn delivery_ids(&self) -> &[DeliveryId] {
        match self {
            Recorded::Created { delivery_ids, .. } | Recorded::Duplicate { delivery_ids, .. } => {
                delivery_ids
            }
        }
    }

    pub fn is_duplicate(&self) -> bool {
        matches!(self, Recorded::Duplicate { .. })
    }
}

/// A delivery leased to one worker, with what it needs to render the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claimed {
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub webhook_id: WebhookId,
    pub event_type: String,
    pub vars: carehook_core::Vars,
    /// Attempts made so far; the next one is `attempts + 1`.
    pub attempts: i64,
    /// When the delivery was created (the event's time), for a maximum age.
    pub created_at: i64,
    pub is_test: bool,
    /// Its place in its ordering key; `None`: unordered.
    pub ordering: Option<OrderingPlace>,
}

/// Where an ordered delivery stands in its key: the key's id and its number, 1 for the key's
/// first delivery. No other delivery of the key is claimed while this one is pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderingPlace {
    pub key: String,
    pub sequence: i64,
}

/// An ordered delivery in the log: its place, and while it is held back, the earliest
/// pending delivery of its key, which it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryOrdering {
    pub place: OrderingPlace,
    pub waiting_for: Option<DeliveryId>,
}

/// What one claim asks for: so many deliveries of named webhooks (each one's free slots and
/// prefetch), and optionally some of any other webhook's.
#[derive(Debug, Clone, Default)]
pub struct ClaimAsk<'a> {
    /// At most this many of each webhook's due deliveries, oldest due first.
    pub wants: &'a [(WebhookId, u32)],
    /// Deliveries of webhooks not in `wants` nor `exclude`; `None`: none.
    pub others: Option<Others>,
    /// Webhooks `others` leaves out (their secrets do not open, say).
    pub exclude: &'a [WebhookId],
}

/// The part of a claim for webhooks not named: `limit` in all, `per_webhook` each, oldest
/// due first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Others {
    pub limit: u32,
    pub per_webhook: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Failed,
    Retry,
    /// Dropped without trying to the end (too old, webhook gone): logged as such.
    GaveUp,
}

/// What happens to the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryNext {
    Succeeded,
    RetryAt(i64),
    Failed,
}

/// One attempt as the dispatcher made it, and what it means for the delivery.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: DeliveryId,
    pub attempt_no: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    /// Method, url, headers, body as sent, secrets already masked by the server.
    pub request: serde_json::Value,
    pub response_status: Option<i64>,
    pub response_headers: Option<serde_json::Value>,
    /// The server truncates it (64 KiB) before it gets here.
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    pub next: DeliveryNext,
    /// False for a webhook that stores no bodies: only the size and SHA-256 of the request
    /// and response bodies are kept.
    pub store_bodies: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
    /// Withdrawn before it was sent (a scheduled delivery whose appointment was cancelled or
    /// moved, or whose time had passed); `last_error` says why. Not a failure.
    Superseded,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub webhook_id: WebhookId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub is_test: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    pub id: Uuid,
    pub delivery_id: DeliveryId,
    pub attempt_no: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub request: serde_json::Value,
    pub response_status: Option<i64>,
    pub response_headers: Option<serde_json::Value>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    /// The request body's size and SHA-256 (hex), kept after the body is gone.
    pub request_bytes: Option<i64>,
    pub request_sha256: Option<String>,
    pub response_bytes: Option<i64>,
    pub response_sha256: Option<String>,
    /// When the bodies went, and why ([`PurgeReason`]); `request` is then `{}` and the
    /// response headers and body are `None`.
    pub purged_at: Option<i64>,
    pub purge_reason: Option<PurgeReason>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub id: EventId,
    pub event_type: String,
    /// Empty once the snapshot is purged or erased (see `purged_at`).
    pub vars: carehook_core::Vars,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    /// The snapshot's size and SHA-256 (hex) as written, kept after it is gone.
    pub vars_bytes: Option<i64>,
    pub vars_sha256: Option<String>,
    pub purged_at: Option<i64>,
    pub purge_reason: Option<PurgeReason>,
}

/// Why a payload is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeReason {
    /// Its retention period ended.
    Retention,
    /// Its patient's data was erased on request.
    Erasure,
    /// Its webhook stores no bodies: it was never written.
    NotStored,
}

/// What a purge removes: payloads older than a cutoff, which may differ by webhook.
/// Deliveries still pending keep theirs whatever the cutoff.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Payloads from before this time go (unix ms), for webhooks without an override and for
    /// deliveries of deleted webhooks.
    pub before: i64,
    /// A webhook's own cutoff, in place of `before`.
    pub per_webhook: Vec<(WebhookId, i64)>,
}

/// What a purge removed (or, dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    /// Event snapshots.
    pub events: u64,
    /// Attempts whose request and response bodies went.
    pub attempts: u64,
}

/// What an erasure changed, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureCounts {
    /// Event snapshots erased.
    pub events: u64,
    /// Attempts whose bodies were erased.
    pub attempts: u64,
    /// Pending deliveries cancelled.
    pub deliveries_cancelled: u64,
    /// Clinic records made tombstones: `patients`, `appointments`, `encounters`,
    /// `medical_records`, `prescriptions`.
    pub records: std::collections::BTreeMap<String, u64>,
}

/// One audit record to append. Never a PHI value in any field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewAudit {
    pub at: i64,
    /// Who: "api token NAME (ID)", "ui session of token …", "system: …".
    pub actor: String,
    pub client_addr: Option<String>,
    /// What, as `thing.verb`: `webhook.update`, `delivery.read`, `login.failed`…
    pub action: String,
    /// On what: `webhook/ID`, `delivery/ID`, `patient/ID`.
    pub resource: String,
    /// `ok`, `denied`, `failed`, `not_found`…
    pub outcome: String,
    /// More, as a JSON object (before/after with secrets masked, counts).
    pub details: serde_json::Value,
}

/// An audit record as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub client_addr: Option<String>,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for `list_audit`, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action (`delivery.read`) or a prefix ending in `.` (`webhook.`).
    pub action: Option<String>,
    /// Exact resource (`delivery/ID`).
    pub resource: Option<String>,
    /// Exact actor.
    pub actor: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// As in [`DeliveryFilter`].
    pub limit: u32,
    /// `next_cursor` of the previous page (a `seq`).
    pub cursor: Option<String>,
}

/// What `verify_audit` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerdict {
    /// Rows checked.
    pub rows: u64,
    /// Every break found, first first: the row's `seq` and what is wrong with it.
    pub problems: Vec<(i64, String)>,
}

/// What a new token may do (see [`TokenRow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAccess {
    pub role: String,
    pub clinics: Option<Vec<String>>,
    pub bodies: bool,
}

impl TokenAccess {
    /// Everything, in every clinic: what tokens made before roles existed are.
    pub fn owner() -> Self {
        TokenAccess {
            role: "owner".into(),
            clinics: None,
            bodies: true,
        }
    }
}

/// An API token. The hash is not here: nothing outside the lookup needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRow {
    pub id: TokenId,
    pub name: String,
    /// What the token may do: `owner`, `admin`, `editor`, `viewer` or `ingest` (the server
    /// reads it; tokens made before roles existed are `owner`).
    pub role: String,
    /// The clinics the token is limited to; `None`: every clinic.
    pub clinics: Option<Vec<String>>,
    /// Whether it sees bodies and event data in the delivery log.
    pub bodies: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Filters for `list_deliveries`; all optional, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub webhook_id: Option<WebhookId>,
    /// Only deliveries of these webhooks (a caller limited to some clinics sees the
    /// deliveries of their webhooks only); `None`: any webhook.
    pub webhook_ids: Option<Vec<WebhookId>>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
    /// `created_at >= since`
    pub since: Option<i64>,
    /// `created_at < until`
    pub until: Option<i64>,
    /// Clamped to `1..=MAX_PAGE`; 0 means the default (50).
    pub limit: u32,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// A patient or appointment: digits match `appointment_id` or
    /// `patient_id` exactly; other text matches an event whose patient name
    /// holds every word of it (through the blind index `event_search_terms`,
    /// sealed snapshots too; see `carehook_core::search`), or, in a plain
    /// snapshot, a case-insensitive part of `patient_name`.
    pub search: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when there may be more rows: pass it back as `cursor`.
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 1000;

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(StoreError::Invalid(format!(
                        concat!("unknown ", stringify!($ty), " {:?}"), other
                    ))),
                }
            }
        }
    };
}

text_enum!(DeliveryStatus {
    Pending => "pending",
    Succeeded => "succeeded",
    Failed => "failed",
    Superseded => "superseded",
});
text_enum!(PurgeReason {
    Retention => "retention",
    Erasure => "erasure",
    NotStored => "not_stored",
});
text_enum!(AttemptOutcome {
    Succeeded => "succeeded",
    Failed => "failed",
    Retry => "retry",
    GaveUp => "gave_up",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_outcome_text_round_trips_and_matches_serde() {
        for s in [
            DeliveryStatus::Pending,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Failed,
            DeliveryStatus::Superseded,
        ] {
            assert_eq!(s.as_str().parse::<DeliveryStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for o in [
            AttemptOutcome::Succeeded,
            AttemptOutcome::Failed,
            AttemptOutcome::Retry,
            AttemptOutcome::GaveUp,
        ] {
            assert_eq!(o.as_str().parse::<AttemptOutcome>().unwrap(), o);
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert!("done".parse::<DeliveryStatus>().is_err());
    }
}

/// A running carehook process that claims deliveries. Its leases carry its id, and its
/// heartbeat in the store tells other nodes it is alive; see [`crate::NodeStore`].
///
/// A fixed id (say the host's name) lets a restarted process release its earlier
/// incarnation's leases at once; a random one (the default) is never shared by two live
/// processes by mistake, and a dead one's leases are released once its heartbeat is stale.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// 1 to 64 letters, digits, `.`, `_`, `-` or `:`.
    pub fn parse(s: &str) -> Result<NodeId, StoreError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
        if ok {
            Ok(NodeId(s.to_owned()))
        } else {
            Err(StoreError::Invalid(format!(
                "bad node id {s:?}: use 1 to 64 letters, digits, '.', '_', '-' or ':'"
            )))
        }
    }

    /// A fresh id no other process has.
    pub fn random() -> NodeId {
        NodeId(format!("node-{}", Uuid::now_v7().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
