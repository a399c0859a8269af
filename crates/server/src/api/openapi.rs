//! The OpenAPI 3 document: the base (title, auth, tags) here; every path and
//! schema comes from the handlers' `#[utoipa::path]` and the types'
//! `ToSchema`, collected as routes are added (see [`super::documented_routes`]).

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, OpenApiBuilder};

pub fn base() -> OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        info(
            title = "carehook",
            description = "A webhook server for clinics. Every call under /api/v1 needs `Authorization: Bearer <token>` (the admin token, or one made with `carehook tokens create`). A token has a role (owner, admin, editor, viewer, ingest) and may be limited to clinics: each operation's `x-carehook-policy` says which roles may call it, and whether a token limited to clinics may (`scoped`: it sees only its clinics' webhooks and deliveries; another clinic's is a 404) or not (`install`). Errors are `{\"error\":{\"code\",\"message\",\"field\"?}}`.",
        ),
        security(("bearer" = [])),
        components(schemas(super::error::ErrorBody)),
        tags(
            (name = "webhooks", description = "Webhooks: what to send where, on which events"),
            (name = "deliveries", description = "The delivery log, and retries"),
            (name = "events", description = "Events in, and the event catalog"),
            (name = "tokens", description = "API tokens, and who the calling one is"),
            (name = "users", description = "People: the accounts that log in to the admin UI"),
            (name = "presets", description = "Ready-made webhooks for the guide's integrations"),
            (name = "patient data", description = "A patient's erasure, purges, and the audit trail"),
            (name = "meta", description = "Health, metrics and this document"),
        )
    )]
    struct Base;
    let mut doc = <Base as utoipa::OpenApi>::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token"))
                .build(),
        ),
    );
    doc
}

/// The finished document as JSON, ready to serve: the clinic paths added,
/// every operation named, every response described.
pub fn finish(doc: OpenApi) -> serde_json::Value {
    let doc = OpenApiBuilder::from(doc).build();
    let mut doc = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    super::clinic_doc::add_to(&mut doc);
    name_operations(&mut doc);
    add_policy(&mut doc);
    add_input_errors(&mut doc);
    describe_responses(&mut doc);
    doc
}

/// The answers the shared extractors ([`super::error`]) give to bad input,
/// on every operation that takes that input, so no handler's annotation can
/// forget one (a schema fuzzer found a 415 and a 422 left out by hand):
/// a JSON body (`ApiJson`, `OptionalJson`, `LaterJson`) may be malformed
/// (400), too large (413), not JSON (415) or invalid (422); query parameters
/// (`ApiQuery`) a 422 naming the parameter; a typed id in the path
/// (`ApiPath`) a 400.
fn add_input_errors(doc: &mut serde_json::Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method) else {
                continue;
            };
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let takes = |place: &str| params.iter().any(|p| p["in"] == place);
            let typed_path_id = params.iter().any(|p| {
                p["in"] == "path"
                    && (p["schema"]["type"] != "string" || p["schema"]["format"] == "uuid")
            });
            let mut add: Vec<&str> = Vec::new();
            if op.get("requestBody").is_some() {
                add.extend(["400", "413", "415", "422"]);
            }
            if takes("query") {
                add.push("422");
            }
            if typed_path_id {
                add.push("400");
            }
            let Some(responses) = op["responses"].as_object_mut() else {
                continue;
            };
            for status in add {
                responses.entry(status).or_insert_with(|| {
                    serde_json::json!({
                        "description": status_meaning(status),
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                    })
                });
            }
        }
    }
}

/// Each operation's rule from the policy table ([`super::policy`]), as
/// `x-carehook-policy` (`roles`, and `clinics`: `public`, `install` — a token
/// limited to clinics is refused — or `scoped` — it sees only its clinics'),
/// and the 403 a refused role gets. An operation without a rule gets neither
/// (and is refused to every token).
fn add_policy(doc: &mut serde_json::Value) {
    use super::policy::{Rule, rule};
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method) else {
                continue;
            };
            let Some(r) = op["operationId"].as_str().and_then(rule) else {
                continue;
            };
            let (roles, clinics) = match r {
                Rule::Public => (&[][..], "public"),
                Rule::Install(roles) => (roles, "install"),
                Rule::Scoped(roles) => (roles, "scoped"),
            };
            let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            op["x-carehook-policy"] = serde_json::json!({ "roles": roles, "clinics": clinics });
            if r != Rule::Public
                && let Some(responses) = op["responses"].as_object_mut()
            {
                responses.entry("403").or_insert_with(|| {
                    serde_json::json!({
                        "description": "The token's role (or its clinic limit) may not call this",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                    })
                });
            }
        }
    }
}

/// The `operationId` of each route whose name is not plain CRUD; client
/// generators turn these into method names (`client.list_webhooks()`).
const OPERATION_IDS: &[(&str, &str, &str)] = &[
    ("get", "/healthz", "getHealth"),
    ("get", "/metrics", "getMetrics"),
    ("get", "/api/v1/openapi.json", "getOpenApiDocument"),
    ("get", "/api/docs", "getApiReference"),
    ("get", "/api/v1/event-types", "listEventTypes"),
    ("post", "/api/v1/events", "pushEvent"),
    ("get", "/api/v1/events", "listEvents"),
    ("get", "/api/v1/events/{id}", "getEvent"),
    ("get", "/api/v1/webhooks", "listWebhooks"),
    ("post", "/api/v1/webhooks", "createWebhook"),
    ("get", "/api/v1/webhooks/{id}", "getWebhook"),
    ("patch", "/api/v1/webhooks/{id}", "updateWebhook"),
    ("delete", "/api/v1/webhooks/{id}", "deleteWebhook"),
    ("post", "/api/v1/webhooks/preview", "previewWebhookDraft"),
    ("post", "/api/v1/webhooks/{id}/preview", "previewWebhook"),
    ("post", "/api/v1/webhooks/{id}/test", "testWebhook"),
    (
        "post",
        "/api/v1/webhooks/{id}/rotate-secret",
        "rotateWebhookSecret",
    ),
    (
        "post",
        "/api/v1/webhooks/{id}/retry-failed",
        "retryFailedDeliveries",
    ),
    ("get", "/api/v1/webhooks/{id}/stats", "getWebhookStats"),
    ("get", "/api/v1/deliveries", "listDeliveries"),
    ("get", "/api/v1/deliveries/{id}", "getDelivery"),
    ("post", "/api/v1/deliveries/{id}/retry", "retryDelivery"),
    ("get", "/api/v1/tokens", "listTokens"),
    ("post", "/api/v1/tokens", "createToken"),
    ("delete", "/api/v1/tokens/{id}", "revokeToken"),
    ("get", "/api/v1/whoami", "whoAmI"),
    ("get", "/api/v1/users", "listUsers"),
    ("post", "/api/v1/users", "createUser"),
    ("get", "/api/v1/users/{id}", "getUser"),
    ("patch", "/api/v1/users/{id}", "updateUser"),
    ("post", "/api/v1/users/{id}/disable", "disableUser"),
    ("post", "/api/v1/users/{id}/enable", "enableUser"),
    (
        "post",
        "/api/v1/users/{id}/reset-password",
        "resetUserPassword",
    ),
    (
        "post",
        "/api/v1/users/{id}/reset-2fa",
        "resetUserSecondFactor",
    ),
    ("get", "/api/v1/presets", "listPresets"),
    ("get", "/api/v1/presets/{id}", "getPreset"),
    ("get", "/api/v1/audit", "listAuditRecords"),
    ("post", "/api/v1/patients/{id}/erase", "erasePatient"),
    ("post", "/api/v1/purge", "purgePayloads"),
    (
        "post",
        "/api/v1/webhooks/{id}/replay",
        "replayWebhookEvents",
    ),
    ("get", "/api/v1/alerts", "listAlerts"),
    (
        "post",
        "/api/v1/webhooks/{id}/partner-links",
        "createPartnerLink",
    ),
    (
        "get",
        "/api/v1/webhooks/{id}/partner-links",
        "listPartnerLinks",
    ),
    (
        "delete",
        "/api/v1/webhooks/{id}/partner-links/{link_id}",
        "revokePartnerLink",
    ),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Gives every operation a unique `operationId`: from [`OPERATION_IDS`],
/// else the clinic table's own, else one made of the method and path
/// (`postApiV1SomethingId`) so a route added later is still named and
/// unique — `tests/api/openapi.rs` asks for a table entry all the same.
fn name_operations(doc: &mut serde_json::Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    let mut taken = std::collections::BTreeSet::new();
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method) else {
                continue;
            };
            let named = OPERATION_IDS
                .iter()
                .find(|(m, p, _)| *m == method && *p == path.as_str())
                .map(|(_, _, id)| id.to_string());
            let id = match named {
                Some(id) => id,
                None => match op["operationId"].as_str() {
                    Some(id) if id.contains(char::is_uppercase) => id.to_string(),
                    _ => derived_id(method, path),
                },
            };
            let mut unique = id.clone();
            let mut n = 2;
            while !taken.insert(unique.clone()) {
                unique = format!("{id}{n}");
                n += 1;
            }
            op["operationId"] = unique.into();
        }
    }
}

fn derived_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut c = word.chars();
        if let Some(first) = c.next() {
            id.push(first.to_ascii_uppercase());
            id.push_str(c.as_str());
        }
    }
    id
}

/// OpenAPI requires a description on every response; a route that gave
/// none gets the usual meaning of its status code.
fn describe_responses(doc: &mut serde_json::Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            let Some(responses) = item
                .get_mut(method)
                .and_then(|op| op["responses"].as_object_mut())
            else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                let Some(response) = response.as_object_mut() else {
                    continue;
                };
                let missing = response
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_none_or(str::is_empty);
                if missing {
                    response.insert("description".into(), status_meaning(status).into());
                }
            }
        }
    }
}

fn status_meaning(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "Done; no content",
        "400" => "Bad request: malformed JSON, id or parameter; `field` names it",
        "401" => "No valid API token",
        "403" => "The token may not do this",
        "404" => "No such resource",
        "409" => "Conflicts with the current state",
        "413" => "The body is too large",
        "415" => "The body is not JSON (`Content-Type: application/json`)",
        "422" => "Invalid input: `field` names what to fix",
        "429" => "Too many requests",
        "500" => "Internal error",
        "503" => "Not ready or degraded",
        _ => "See the body",
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3 document", body = Object)))]
pub async fn openapi_json(
    Extension(doc): Extension<Arc<serde_json::Value>>,
) -> Json<serde_json::Value> {
    Json((*doc).clone())
}
