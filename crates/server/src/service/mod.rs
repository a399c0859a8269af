//! The service layer: every rule about webhooks, events, clinic records,
//! tokens and deliveries, between the transports (the HTTP API in `api/`,
//! the admin UI in `ui/`, the demo) and the store.
//!
//! A transport parses its input, names who acts ([`Actor`]) and calls one
//! function here; it gets back typed data or one [`Error`], which it turns
//! into its own answer (only `api/` knows status codes). Authorisation,
//! auditing and operational events hook in here, once, rather than in
//! every transport.
//!
//! - [`webhooks`]: create, change, disable (the one place), delete, rotate,
//!   preview and test-send webhooks.
//! - [`events`]: events pushed by a clinic system.
//! - [`clinic`]: clinic record changes, with their cross-record rules,
//!   billing and the events they fire.
//! - [`tokens`]: who a token belongs to; API tokens made and revoked.
//! - [`deliveries`]: the delivery log and manual retries.
//! - [`replay`]: a webhook's stored events sent to it again.
//! - [`access`]: roles, a caller's clinics, and what they may see.
//! - [`partner`]: read-only links that share one webhook's log with a partner.
//! - [`privacy`]: retention purges and a patient's erasure; [`audit`]: the audit trail.

pub mod access;
pub mod audit;
pub mod clinic;
pub mod deliveries;
pub mod events;
pub mod partner;
pub mod privacy;
pub mod replay;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use carehook_core::ids::TokenId;
use carehook_store::Store;

pub use crate::domain::{Actor, Error, Result, parse_json};

use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// What every service function can reach: one per running server.
#[derive(Debug)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub intake: Intake,
    pub outbound: crate::outbound::Outbound,
    /// SHA-256 (hex) of the admin token.
    pub admin_token_hash: String,
    pub metrics: Arc<Metrics>,
    /// When each API token's `last_used_at` was last written: a token is
    /// touched at most once a minute, not on every request.
    pub token_touches: Mutex<HashMap<TokenId, i64>>,
    /// False when `--metrics-listen` serves metrics elsewhere.
    pub metrics_on_api: bool,
    /// Background tasks' liveness, for `/healthz`.
    pub tasks: Arc<crate::supervise::TaskBoard>,
    /// The installation's payload retention in days (`None`: no purge by age); a replay
    /// skips events older than it.
    pub retention_default_days: Option<u32>,
    /// How failed logins to the admin UI are slowed down.
    pub login_limits: users::LoginLimits,
}
