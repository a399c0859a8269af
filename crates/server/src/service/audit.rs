//! The audit trail: who did what to which resource, when, from where, and how it went, in the
//! store's append-only, hash-chained `audit_log`. Never a PHI value: resources are ids, details
//! are counts and webhook settings with their secrets masked.
//!
//! The client address comes from the request being served ([`CLIENT`], set by
//! [`client_scope`] around every API and UI request), so service functions need no extra
//! parameter for it.

use carehook_store::{AuditFilter, AuditRow, AuditVerdict, NewAudit, Page, Store};
use serde_json::{Value, json};

use super::{Actor, Context, Error, Result};
use crate::time::now_ms;

tokio::task_local! {
    /// The address of the client whose request is being served.
    pub static CLIENT: Option<String>;
}

/// Runs `f` with `client` as the request's address, for [`record`].
pub async fn client_scope<F: std::future::Future>(client: Option<String>, f: F) -> F::Output {
    CLIENT.scope(client, f).await
}

fn client() -> Option<String> {
    CLIENT.try_with(Clone::clone).ok().flatten()
}

/// How an actor is written in the trail.
pub fn actor_text(actor: &Actor) -> String {
    actor.to_string()
}

/// Appends a record. A read of patient data calls [`must_record`] instead, which fails the
/// read when it cannot be audited.
pub async fn record(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    resource: &str,
    outcome: &str,
    details: Value,
) {
    if let Err(e) = must_record(store, actor, action, resource, outcome, details).await {
        tracing::error!(error = %e.message(), action, resource, "could not write the audit trail");
    }
}

/// Appends a record, or fails (a read of a body or snapshot is refused when it cannot be
/// audited).
pub async fn must_record(
    store: &dyn Store,
    actor: &Actor,
    action: &str,
    resource: &str,
    outcome: &str,
    details: Value,
) -> Result<AuditRow> {
    Ok(store
        .append_audit(NewAudit {
            at: now_ms(),
            actor: actor_text(actor),
            client_addr: client(),
            action: action.into(),
            resource: resource.into(),
            outcome: outcome.into(),
            details,
        })
        .await?)
}

/// The outcome word for a result.
pub fn outcome_of<T>(r: &Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(Error::NotFound(_)) => "not_found",
        Err(Error::Unauthorized(_) | Error::Forbidden(_)) => "denied",
        Err(Error::Invalid { .. } | Error::BadRequest(_)) => "invalid",
        Err(Error::Conflict(_)) => "conflict",
        Err(Error::Internal) => "failed",
    }
}

/// A webhook's view for the trail: its secrets already masked by the view, and header and
/// query values masked too (they may hold a literal key).
pub fn webhook_details(view: &Value) -> Value {
    let mut v = view.clone();
    for part in ["headers", "query"] {
        if let Some(map) = v.get_mut(part).and_then(Value::as_object_mut) {
            for value in map.values_mut() {
                *value = json!("********");
            }
        }
    }
    v
}

pub async fn list(ctx: &Context, filter: AuditFilter) -> Result<Page<AuditRow>> {
    Ok(ctx.store.list_audit(filter).await?)
}

pub async fn verify(store: &dyn Store) -> Result<AuditVerdict> {
    Ok(store.verify_audit().await?)
}
