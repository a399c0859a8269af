//! Everything the UI changes or tries goes through here, and from here
//! through the API's own handlers (called as plain functions), so a webhook
//! saved, previewed or test-sent in the browser takes exactly the path it
//! takes through `/api/v1`: the same validation, sealing, registry update
//! and error text.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use carehook_core::webhook::WebhookSpec;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::error::{ApiError, ApiJson, ApiPath, ApiResult, OptionalJson};
use crate::api::previews::{self, Draft, TryOut};
use crate::api::webhooks::RetryFailed;
use crate::api::{AppState, Caller, deliveries, webhooks};
use crate::registry::Loaded;

/// The webhook as stored now (secrets in memory only), or not found; read
/// again when another node changed it, as the API does.
pub async fn loaded(app: &AppState, id: Uuid) -> ApiResult<Arc<Loaded>> {
    webhooks::loaded(app, id).await
}

/// Creates a webhook from the API's JSON (a spec, or `{"preset": …}`).
/// Answers the API's view, with the signing secret (shown once).
pub async fn create(app: &AppState, who: &Caller, body: Value) -> ApiResult<Value> {
    let (_, Json(view)) = webhooks::create(State(app.clone()), who.clone(), ApiJson(body)).await?;
    Ok(view)
}

/// Applies a JSON merge patch, as `PATCH /webhooks/{id}`.
pub async fn update(app: &AppState, who: &Caller, id: Uuid, patch: Value) -> ApiResult<Value> {
    let Json(view) =
        webhooks::update(State(app.clone()), who.clone(), ApiPath(id), ApiJson(patch)).await?;
    Ok(view)
}

pub async fn set_enabled(app: &AppState, who: &Caller, id: Uuid, on: bool) -> ApiResult<Value> {
    update(app, who, id, json!({ "enabled": on })).await
}

pub async fn delete(app: &AppState, who: &Caller, id: Uuid) -> ApiResult<()> {
    webhooks::remove(State(app.clone()), who.clone(), ApiPath(id)).await?;
    Ok(())
}

pub async fn rotate_secret(app: &AppState, who: &Caller, id: Uuid) -> ApiResult<Value> {
    let Json(view) = webhooks::rotate_secret(State(app.clone()), who.clone(), ApiPath(id)).await?;
    Ok(view)
}

/// A copy, disabled, named "Copy of …", with the same auth secret (read
/// from memory, never shown) and a signing secret of its own.
pub async fn clone(app: &AppState, who: &Caller, id: Uuid) -> ApiResult<Value> {
    let source = loaded(app, id).await?;
    let mut spec = source.compiled.spec.clone();
    spec.name = format!("Copy of {}", spec.name.trim());
    spec.name = spec.name.chars().take(200).collect();
    spec.enabled = false;
    create(
        app,
        who,
        serde_json::to_value(&spec).map_err(ApiError::internal)?,
    )
    .await
}

pub async fn retry_delivery(app: &AppState, who: &Caller, id: Uuid) -> ApiResult<Value> {
    let Json(d) = deliveries::retry(State(app.clone()), who.clone(), ApiPath(id)).await?;
    serde_json::to_value(d).map_err(ApiError::internal)
}

/// Sends every failed delivery of a webhook created in `[since, until)`
/// (unix ms) again now; answers how many.
pub async fn retry_failed(
    app: &AppState,
    who: &Caller,
    webhook: Uuid,
    since: i64,
    until: i64,
) -> ApiResult<usize> {
    let Json(retried) = webhooks::retry_failed(
        State(app.clone()),
        who.clone(),
        ApiPath(webhook),
        ApiJson(RetryFailed {
            since: Some(since.to_string()),
            until: Some(until.to_string()),
        }),
    )
    .await?;
    Ok(retried.count)
}

/// The request a webhook (saved or not) would send for `event`, rendered
/// from the catalog's example values (the demo clinic), secrets masked, as
/// `POST /webhooks/preview` answers it: `{"event", "request": {method, url,
/// headers, body}, "conditions_match", "warnings"}`, or the first error.
pub async fn preview(who: &Caller, spec: WebhookSpec, event: Option<&str>) -> ApiResult<Value> {
    let Json(p) = previews::preview_draft(
        who.clone(),
        ApiJson(Draft {
            webhook: spec,
            event: event.map(str::to_string),
            data: Default::default(),
        }),
    )
    .await?;
    serde_json::to_value(p).map_err(ApiError::internal)
}

/// Sends the saved webhook's request now, as `POST /webhooks/{id}/test`:
/// `{"event", "delivery_id", "request", "response": {status, headers,
/// body} | null, "error", "duration_ms", "outcome"}`.
pub async fn test_send(
    app: &AppState,
    who: &Caller,
    id: Uuid,
    event: Option<&str>,
) -> ApiResult<Value> {
    let Json(t) = previews::test_send(
        State(app.clone()),
        who.clone(),
        ApiPath(id),
        OptionalJson(TryOut {
            event: event.map(str::to_string),
            data: Default::default(),
        }),
    )
    .await?;
    serde_json::to_value(t).map_err(ApiError::internal)
}
