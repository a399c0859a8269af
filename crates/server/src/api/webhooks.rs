//! Webhooks: create, read, change, delete, rotate the signing secret, retry
//! the failed deliveries of a time range, and statistics.
//!
//! Every write compiles the webhook first (a bad template is a 422 naming
//! the field, line and column, and nothing is written), then stores it with
//! its secrets sealed, then puts the compiled form in the registry.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use carehook_core::signing::SigningSecret;
use carehook_core::webhook::{MASK, WebhookSpec};
use carehook_store::NewWebhook;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody, parse_json};
use super::{AppState, Caller};
use crate::registry::{Loaded, ROTATION_OVERLAP_MS, StoredSecret, StoredWebhook, seal_spec};
use crate::time::{now_ms, parse_time, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get_one, update, remove))
        .routes(routes!(rotate_secret))
        .routes(routes!(retry_failed))
        .routes(routes!(stats))
}

/// A webhook as the API shows it: its spec with every secret masked
/// (`"password":"********"`, and `has_password` etc. saying one is set),
/// plus what carehook keeps about it. `signing_secret` is shown in full
/// only in the answers to create and rotate-secret.
#[derive(Debug)]
pub struct WebhookView;

impl utoipa::PartialSchema for WebhookView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
        use utoipa::openapi::{RefOr, schema::AdditionalProperties};
        let RefOr::T(Schema::Object(spec)) = <WebhookSpec as utoipa::PartialSchema>::schema()
        else {
            unreachable!("WebhookSpec is an object schema")
        };
        let text = || ObjectBuilder::new().schema_type(Type::String);
        let mut view: Object = spec;
        // The view adds fields, and its `auth` adds `has_password` etc.
        view.additional_properties = None;
        let auth = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("The auth as saved, its secret masked as \"********\"; `has_password`, `has_token` or `has_value` says whether one is set."))
            .property("type", text())
            .required("type")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)));
        view.properties.insert("auth".into(), auth.build().into());
        let extra: [(&str, ObjectBuilder); 6] = [
            (
                "id",
                text().format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Uuid,
                ))),
            ),
            (
                "version",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("1 on create, +1 on every change")),
            ),
            ("created_at", text().description(Some("RFC 3339"))),
            ("updated_at", text().description(Some("RFC 3339"))),
            (
                "signing_secret",
                text().description(Some(
                    "`whsec_…` in the answer to create and rotate-secret; masked elsewhere",
                )),
            ),
            (
                "previous_secret_expires_at",
                text().description(Some(
                    "After rotate-secret: when the old secret stops signing (RFC 3339)",
                )),
            ),
        ];
        for (name, schema) in extra {
            view.properties.insert(name.into(), schema.build().into());
        }
        view.properties.insert(
            "disabled_reason".into(),
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .description(Some(
                    "Why carehook disabled it (410 Gone, failing for days)",
                ))
                .build()
                .into(),
        );
        view.properties.insert(
            "warnings".into(),
            utoipa::openapi::schema::ArrayBuilder::new()
                .items(utoipa::openapi::Ref::from_schema_name("Warning"))
                .description(Some(
                    "In the answers to create and update: saved, but worth a look",
                ))
                .build()
                .into(),
        );
        for r in [
            "id",
            "version",
            "created_at",
            "updated_at",
            "signing_secret",
        ] {
            view.required.push(r.into());
        }
        RefOr::T(Schema::Object(view))
    }
}

impl ToSchema for WebhookView {
    fn name() -> std::borrow::Cow<'static, str> {
        "Webhook".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema as _;
        schemas.push(("WebhookSpec".into(), WebhookSpec::schema()));
        <WebhookSpec as ToSchema>::schemas(schemas);
        schemas.push(("Warning".into(), carehook_core::webhook::Warning::schema()));
        <carehook_core::webhook::Warning as ToSchema>::schemas(schemas);
    }
}

/// A webhook as written, or one made from a preset.
#[derive(Debug, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // read as JSON by `presets::spec_from_body`; described here
enum NewWebhookBody {
    Spec(WebhookSpec),
    Preset(super::presets::FromPreset),
}

#[derive(Debug, ToSchema)]
#[allow(dead_code)] // built as JSON; described here
struct WebhookList {
    items: Vec<WebhookView>,
}

/// Fields the API shows but a client cannot set; a PATCH that carries them
/// back (GET, edit, PATCH) is not an error.
const READ_ONLY: &[&str] = &[
    "id",
    "version",
    "created_at",
    "updated_at",
    "disabled_reason",
    "signing_secret",
];

/// Creates a webhook. The answer carries its signing secret, once.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = NewWebhookBody,
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, description = "Invalid: the error names the field, and for a template its line and column", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    _: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = super::presets::spec_from_body(body)?;
    let (_, warnings) = spec.compile()?;
    let _gate = state.registry.write_gate().await;
    let vault = state.registry.vault();
    let secret = SigningSecret::generate();
    let stored = StoredWebhook {
        spec: seal_spec(spec.clone(), vault),
        signing_secrets: vec![StoredSecret {
            secret: vault.seal(&secret.to_whsec()),
            expires_at: None,
        }],
    };
    let row = state
        .store
        .create_webhook(NewWebhook {
            id: Uuid::now_v7(),
            name: spec.name.trim().to_string(),
            enabled: spec.enabled,
            events: spec.events.clone(),
            config: serde_json::to_value(&stored).map_err(ApiError::internal)?,
        })
        .await?;
    let loaded = state
        .registry
        .put(Loaded::from_row(row, vault).map_err(ApiError::internal)?);
    let mut view = loaded.view();
    view["signing_secret"] = secret.to_whsec().into();
    view["warnings"] = serde_json::to_value(warnings).unwrap_or_default();
    Ok((StatusCode::CREATED, Json(view)))
}

/// Every webhook, oldest first.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), ))]
pub(crate) async fn list(State(state): State<AppState>, _: Caller) -> ApiResult<Json<Value>> {
    // The store's order (oldest first) is the one people expect in a list.
    let rows = state.store.list_webhooks().await?;
    let snapshot = state.registry.snapshot();
    let items: Vec<Value> = rows
        .iter()
        .filter_map(|r| snapshot.get(&r.id))
        .map(|l| l.view())
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// One webhook.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Value>> {
    Ok(Json(loaded(&state, id).await?.view()))
}

/// The registry's copy, or a fresh read when another node changed it.
pub(crate) async fn loaded(state: &AppState, id: Uuid) -> ApiResult<std::sync::Arc<Loaded>> {
    let row = state
        .store
        .get_webhook(id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if let Some(l) = state.registry.get(id)
        && l.row.version == row.version
    {
        return Ok(l);
    }
    Ok(state
        .registry
        .put(Loaded::from_row(row, state.registry.vault()).map_err(ApiError::internal)?))
}

/// JSON merge patch (RFC 7396) onto the webhook as it is; secrets not sent,
/// or sent back masked, stay as they were.
/// Changes a webhook with a JSON merge patch (RFC 7396): the fields sent
/// replace the webhook's, `null` resets one to its default. A secret not
/// sent, or sent back masked, stays as it was.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body(content = Object, description = "The fields to change", content_type = "application/json"),
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(mut patch): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let Some(obj) = patch.as_object_mut() else {
        return Err(ApiError::bad_request(
            "a PATCH body is a JSON object with the fields to change",
        ));
    };
    for key in READ_ONLY {
        obj.remove(*key);
    }
    let _gate = state.registry.write_gate().await;
    let current = loaded(&state, id).await?;
    let old_spec = &current.compiled.spec;
    let mut merged = serde_json::to_value(old_spec).map_err(ApiError::internal)?;
    merge_patch(&mut merged, &patch);
    let mut spec: WebhookSpec = parse_json(merged.to_string().as_bytes())?;
    if spec.auth.kind() == old_spec.auth.kind()
        && let (Some(new), Some(old)) = (spec.auth.secret_mut(), old_spec.auth.secret())
        && (new == MASK || new.is_empty())
    {
        *new = old.to_string();
    }
    let (_, warnings) = spec.compile()?;
    let vault = state.registry.vault();
    let mut stored: StoredWebhook =
        serde_json::from_value(current.row.config.clone()).map_err(ApiError::internal)?;
    stored.spec = seal_spec(spec.clone(), vault);
    // Re-enabling clears the reason it was disabled.
    let reason = if spec.enabled {
        None
    } else {
        current.row.disabled_reason.clone()
    };
    let row = state
        .store
        .update_webhook(
            id,
            spec.name.trim().to_string(),
            spec.enabled,
            spec.events.clone(),
            serde_json::to_value(&stored).map_err(ApiError::internal)?,
            reason,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let loaded = state
        .registry
        .put(Loaded::from_row(row, vault).map_err(ApiError::internal)?);
    let mut view = loaded.view();
    view["warnings"] = serde_json::to_value(warnings).unwrap_or_default();
    Ok(Json(view))
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Deletes a webhook. Its delivery log stays; its pending deliveries end as failed.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let _gate = state.registry.write_gate().await;
    if !state.store.delete_webhook(id).await? {
        return Err(ApiError::not_found("webhook"));
    }
    state.registry.remove(id);
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret; the old one keeps signing for 24 hours so
/// receivers can switch without dropping a request.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook with its new `signing_secret` and `previous_secret_expires_at`", body = WebhookView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Value>> {
    let _gate = state.registry.write_gate().await;
    let current = loaded(&state, id).await?;
    let vault = state.registry.vault();
    let now = now_ms();
    let mut stored: StoredWebhook =
        serde_json::from_value(current.row.config.clone()).map_err(ApiError::internal)?;
    stored
        .signing_secrets
        .retain(|s| s.expires_at.is_none_or(|t| t > now));
    for s in &mut stored.signing_secrets {
        s.expires_at.get_or_insert(now + ROTATION_OVERLAP_MS);
    }
    let secret = SigningSecret::generate();
    stored.signing_secrets.insert(
        0,
        StoredSecret {
            secret: vault.seal(&secret.to_whsec()),
            expires_at: None,
        },
    );
    let row = state
        .store
        .update_webhook(
            id,
            current.row.name.clone(),
            current.row.enabled,
            current.row.events.clone(),
            serde_json::to_value(&stored).map_err(ApiError::internal)?,
            current.row.disabled_reason.clone(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let loaded = state
        .registry
        .put(Loaded::from_row(row, vault).map_err(ApiError::internal)?);
    let mut view = loaded.view();
    view["signing_secret"] = secret.to_whsec().into();
    view["previous_secret_expires_at"] = crate::time::rfc3339(now + ROTATION_OVERLAP_MS).into();
    Ok(Json(view))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryFailed {
    /// Deliveries created at or after this (RFC 3339, or unix ms). Default: the beginning.
    #[serde(default)]
    #[schema(example = "2026-11-26T00:00:00Z")]
    pub(crate) since: Option<String>,
    /// Deliveries created before this (RFC 3339, or unix ms). Default: now.
    #[serde(default)]
    pub(crate) until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Retried {
    /// The deliveries set to be sent again now, by id.
    pub(crate) retried: Vec<Uuid>,
    pub(crate) count: usize,
}

/// Sends every failed delivery of this webhook created in `[since, until)`
/// again, now. Succeeded and pending ones are left alone.
#[utoipa::path(post, path = "/webhooks/{id}/retry-failed", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = RetryFailed,
    responses((status = 200, body = Retried), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn retry_failed(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RetryFailed>,
) -> ApiResult<Json<Retried>> {
    let time = |field: &str, v: Option<String>, default: i64| -> ApiResult<i64> {
        match v {
            None => Ok(default),
            Some(t) => parse_time(&t).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("\"{t}\" is not an RFC 3339 time (2026-11-26T14:05:00Z) or unix milliseconds"),
                )
            }),
        }
    };
    let now = now_ms();
    let since = time("since", body.since.filter(|t| !t.is_empty()), 0)?;
    let until = time("until", body.until.filter(|t| !t.is_empty()), now + 1)?;
    if since >= until {
        return Err(ApiError::invalid("until", "until must be later than since"));
    }
    if state.store.get_webhook(id).await?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    let retried = state.store.retry_failed(id, since, until, now).await?;
    Ok(Json(Retried {
        count: retried.len(),
        retried,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct Stats {
    webhook_id: Uuid,
    /// The last hour, day and week (`1h`, `24h`, `7d`). Test sends are left out.
    windows: Vec<WindowStats>,
    /// The newest delivery that was tried.
    last: Option<LastDeliveryView>,
}

#[derive(Debug, Serialize, ToSchema)]
struct WindowStats {
    /// `1h`, `24h` or `7d`
    window: String,
    /// Deliveries created in the window, by status.
    deliveries: DeliveryCounts,
    /// Attempts made in the window, by outcome.
    attempts: AttemptCounts,
    /// Succeeded / (succeeded + failed) deliveries; null when none finished.
    success_rate: Option<f64>,
    /// Median attempt duration, in ms.
    p50_ms: Option<i64>,
    /// 95th percentile attempt duration, in ms.
    p95_ms: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct DeliveryCounts {
    pending: u64,
    succeeded: u64,
    failed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct AttemptCounts {
    succeeded: u64,
    failed: u64,
    retry: u64,
    gave_up: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct LastDeliveryView {
    delivery_id: Uuid,
    /// pending, succeeded or failed
    status: String,
    /// The HTTP status of its last answer, if there was one.
    http_status: Option<i64>,
    error: Option<String>,
    /// When it last changed (RFC 3339).
    at: String,
}

/// Counts by outcome, success rate and attempt durations (p50, p95) over
/// the last hour, day and week, and the last status and error.
#[utoipa::path(get, path = "/webhooks/{id}/stats", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn stats(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Stats>> {
    if state.store.get_webhook(id).await?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    let s = state.store.webhook_stats(id, now_ms()).await?;
    Ok(Json(Stats {
        webhook_id: id,
        windows: s
            .windows
            .into_iter()
            .map(|w| WindowStats {
                window: w.window.to_string(),
                deliveries: DeliveryCounts {
                    pending: w.pending,
                    succeeded: w.succeeded,
                    failed: w.failed,
                },
                attempts: AttemptCounts {
                    succeeded: w.attempts_succeeded,
                    failed: w.attempts_failed,
                    retry: w.attempts_retry,
                    gave_up: w.attempts_gave_up,
                },
                success_rate: w.success_rate,
                p50_ms: w.p50_ms,
                p95_ms: w.p95_ms,
            })
            .collect(),
        last: s.last.map(|l| LastDeliveryView {
            delivery_id: l.delivery_id,
            status: l.status.to_string(),
            http_status: l.http_status,
            error: l.error,
            at: rfc3339(l.at),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut t,
            &json!({"a": null, "b": {"c": 9}, "e": [2], "f": "x"}),
        );
        assert_eq!(t, json!({"b": {"c": 9, "d": 3}, "e": [2], "f": "x"}));
    }
}
