//! The policy table: which roles may call each API operation (by its OpenAPI `operationId`),
//! and whether a token limited to clinics may call it. [`enforce`] applies it to every
//! request before its handler runs; `docs/access.md` prints it, and `tests/api/policy.rs`
//! calls every operation of the served document with a token of each role and checks the
//! answer against it.
//!
//! **Adding a route? Add one line to [`POLICY`]** (the clinic-record routes, generated per
//! record kind, share [`CLINIC_RECORDS`]). An operation without a line is refused (403) for
//! every token and the policy test fails: nothing becomes callable by accident.
//!
//! What a rule does not decide is which webhooks and deliveries a limited caller sees: the
//! handlers of [`Rule::Scoped`] operations ask `service::access`, and another clinic's
//! webhook or delivery is a 404, as a missing one.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{AppState, Caller};
use crate::service::access::Role::{self, Admin, Editor, Ingest, Owner, Viewer};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No token needed.
    Public,
    /// A token of one of these roles, of every clinic: it reads or changes what belongs to
    /// the whole install, so a token limited to clinics is refused.
    Install(&'static [Role]),
    /// A token of one of these roles, limited to clinics or not; a limited one sees and
    /// touches only its clinics' webhooks and deliveries (or pushes only their events).
    Scoped(&'static [Role]),
}

impl Rule {
    /// Whether `role` (limited to clinics or not) passes this rule.
    pub fn allows(self, role: Role, limited: bool) -> bool {
        match self {
            Rule::Public => true,
            Rule::Install(roles) => !limited && roles.contains(&role),
            Rule::Scoped(roles) => roles.contains(&role),
        }
    }
}

const OWNERS: &[Role] = &[Owner];
const ADMINS: &[Role] = &[Owner, Admin];
const EDITORS: &[Role] = &[Owner, Admin, Editor];
const READERS: &[Role] = &[Owner, Admin, Editor, Viewer];
const PUSHERS: &[Role] = &[Owner, Admin, Ingest];

/// Every clinic-record operation (`createPatient`, `listAppointments`, …): records belong to
/// the whole install; owners and admins keep them.
pub const CLINIC_RECORDS: Rule = Rule::Install(ADMINS);

/// The policy: one line per operation.
pub const POLICY: &[(&str, Rule)] = &[
    // Meta: no token.
    ("getHealth", Rule::Public),
    ("getMetrics", Rule::Public),
    ("getOpenApiDocument", Rule::Public),
    ("getApiReference", Rule::Public),
    // The catalogs hold no clinic's data.
    ("listEventTypes", Rule::Scoped(READERS)),
    ("listPresets", Rule::Scoped(READERS)),
    ("getPreset", Rule::Scoped(READERS)),
    // Events in: an ingest token limited to clinics pushes only their events.
    ("pushEvent", Rule::Scoped(PUSHERS)),
    ("listEvents", Rule::Install(ADMINS)),
    ("getEvent", Rule::Install(ADMINS)),
    // Webhooks.
    ("listWebhooks", Rule::Scoped(READERS)),
    ("getWebhook", Rule::Scoped(READERS)),
    ("getWebhookStats", Rule::Scoped(READERS)),
    ("createWebhook", Rule::Scoped(EDITORS)),
    ("updateWebhook", Rule::Scoped(EDITORS)),
    ("deleteWebhook", Rule::Scoped(EDITORS)),
    ("previewWebhookDraft", Rule::Scoped(EDITORS)),
    ("previewWebhook", Rule::Scoped(EDITORS)),
    ("testWebhook", Rule::Scoped(EDITORS)),
    ("rotateWebhookSecret", Rule::Scoped(EDITORS)),
    ("retryFailedDeliveries", Rule::Scoped(EDITORS)),
    ("replayWebhookEvents", Rule::Scoped(EDITORS)),
    // Partner links hand a webhook's log to someone outside carehook: owners and admins (of
    // the webhook's clinics) only.
    ("createPartnerLink", Rule::Scoped(ADMINS)),
    ("listPartnerLinks", Rule::Scoped(ADMINS)),
    ("revokePartnerLink", Rule::Scoped(ADMINS)),
    // The delivery log.
    ("listDeliveries", Rule::Scoped(READERS)),
    ("getDelivery", Rule::Scoped(READERS)),
    ("retryDelivery", Rule::Scoped(EDITORS)),
    // Operational alerts: a limited caller sees those about its clinics' webhooks.
    ("listAlerts", Rule::Scoped(READERS)),
    // Tokens: the keys to everything.
    ("listTokens", Rule::Install(OWNERS)),
    ("createToken", Rule::Install(OWNERS)),
    ("revokeToken", Rule::Install(OWNERS)),
    // Any valid token may ask who it is.
    (
        "whoAmI",
        Rule::Scoped(&[Owner, Admin, Editor, Viewer, Ingest]),
    ),
    // People: the accounts of the admin UI, kept by owners (as tokens are).
    ("listUsers", Rule::Install(OWNERS)),
    ("createUser", Rule::Install(OWNERS)),
    ("getUser", Rule::Install(OWNERS)),
    ("updateUser", Rule::Install(OWNERS)),
    ("disableUser", Rule::Install(OWNERS)),
    ("enableUser", Rule::Install(OWNERS)),
    ("resetUserPassword", Rule::Install(OWNERS)),
    ("resetUserSecondFactor", Rule::Install(OWNERS)),
    // Patient data and the audit trail.
    ("listAuditRecords", Rule::Install(ADMINS)),
    ("erasePatient", Rule::Install(ADMINS)),
    ("purgePayloads", Rule::Install(ADMINS)),
];

/// The operation ids of the clinic-record routes, from the same table that generates them.
fn clinic_operations() -> &'static [String] {
    static OPS: OnceLock<Vec<String>> = OnceLock::new();
    OPS.get_or_init(|| {
        let mut doc = serde_json::json!({"paths": {}, "components": {"schemas": {}}, "tags": []});
        super::clinic_doc::add_to(&mut doc);
        let mut ops = Vec::new();
        for item in doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
        {
            for op in item.as_object().into_iter().flat_map(|o| o.values()) {
                if let Some(id) = op["operationId"].as_str() {
                    ops.push(id.to_string());
                }
            }
        }
        ops
    })
}

/// The rule of an operation; `None`: it has none, and is refused to every token.
pub fn rule(operation: &str) -> Option<Rule> {
    POLICY
        .iter()
        .find(|(op, _)| *op == operation)
        .map(|(_, r)| *r)
        .or_else(|| {
            clinic_operations()
                .iter()
                .any(|op| op == operation)
                .then_some(CLINIC_RECORDS)
        })
}

/// Which operation a request is: its method and matched route, from the served document.
#[derive(Debug, Default)]
pub struct Operations(HashMap<(String, String), String>);

impl Operations {
    pub fn of(doc: &serde_json::Value) -> Operations {
        let mut map = HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if let Some(id) = op["operationId"].as_str() {
                    map.insert((method.to_uppercase(), path.clone()), id.to_string());
                }
            }
        }
        Operations(map)
    }

    fn knows_path(&self, path: &str) -> bool {
        self.0.keys().any(|(_, p)| p == path)
    }

    fn find(&self, method: &Method, path: &str) -> Option<&str> {
        // HEAD is answered by the GET route.
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        self.0
            .get(&(method.to_string(), path.to_string()))
            .map(String::as_str)
    }
}

/// Applies the policy to a request routed to an operation: authenticates the token once
/// (the handler's [`Caller`] reads it back), and refuses a role or a clinic limit the
/// operation's rule does not allow, before the handler runs.
pub async fn enforce(
    State((state, ops)): State<(AppState, Arc<Operations>)>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(path) = req.extensions().get::<MatchedPath>().map(|p| p.as_str()) else {
        return next.run(req).await;
    };
    let Some(operation) = ops.find(req.method(), path) else {
        // A method the path does not take: the router answers 405 (with `Allow`).
        if ops.knows_path(path) {
            return next.run(req).await;
        }
        tracing::error!(method = %req.method(), path, "a route that is not in the OpenAPI document is refused");
        return ApiError::forbidden("this route has no entry in carehook's policy table")
            .into_response();
    };
    let Some(rule) = rule(operation) else {
        tracing::error!(operation, "an operation without a policy entry is refused");
        return ApiError::forbidden(format!(
            "operation {operation} has no entry in carehook's policy table"
        ))
        .into_response();
    };
    if rule == Rule::Public {
        return next.run(req).await;
    }
    let caller = match Caller::from_headers(req.headers(), &state).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !rule.allows(caller.role, caller.is_limited()) {
        let why = match rule {
            Rule::Install(roles) if roles.contains(&caller.role) => format!(
                "{operation} covers every clinic; a token limited to clinics may not call it"
            ),
            _ => format!(
                "a token with the role {} may not call {operation}",
                caller.role
            ),
        };
        return ApiError::forbidden(why).into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_line_names_a_different_operation() {
        let mut seen = std::collections::HashSet::new();
        for (op, _) in POLICY {
            assert!(seen.insert(*op), "{op} has two lines");
        }
        assert!(!clinic_operations().is_empty());
        assert_eq!(rule("createPatient"), Some(CLINIC_RECORDS));
        assert_eq!(rule("noSuchOperation"), None);
    }

    #[test]
    fn install_rules_refuse_limited_callers_and_scoped_ones_do_not() {
        assert!(Rule::Install(ADMINS).allows(Admin, false));
        assert!(!Rule::Install(ADMINS).allows(Admin, true));
        assert!(Rule::Scoped(EDITORS).allows(Editor, true));
        assert!(!Rule::Scoped(EDITORS).allows(Viewer, false));
        assert!(Rule::Public.allows(Ingest, true));
    }
}
