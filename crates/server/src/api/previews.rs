//! Trying a webhook out: a test send (sent now, answered with the request,
//! the response and the time it took, and logged as a test delivery), a
//! preview of a saved webhook's request, and a preview of an unsaved draft.
//!
//! All three render from the catalog's example values for the event,
//! overlaid by the caller's `data`, and build the request with
//! [`dispatcher::build_request`]; the test send goes through
//! [`dispatcher::attempt`], the very path a delivery takes (same client,
//! destination policy, signing and outcome rules), so "the test worked"
//! means the delivery will.

use axum::Json;
use axum::extract::State;
use carehook_core::catalog::{self, EventType};
use carehook_core::signing::SigningSecret;
use carehook_core::webhook::{CompiledWebhook, Warning, WebhookSpec};
use carehook_core::{Vars, webhook::ValidationError};
use carehook_store::{Claimed, NewDelivery, NewEvent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::deliveries::AttemptResponse;
use super::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody, OptionalJson};
use super::webhooks::loaded;
use super::{AppState, Caller};
use crate::dispatcher::{self, build_request};
use crate::intake::overlay_data;
use crate::time::now_ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_send))
        .routes(routes!(preview))
        .routes(routes!(preview_draft))
}

/// The event a test or preview renders when none is named for a `*` webhook.
const DEFAULT_EVENT: &str = "kc_appointment_book";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TryOut {
    /// The event to render (name or alias); default: the webhook's first
    /// event, or kc_appointment_book for `*`.
    #[serde(default)]
    #[schema(example = "kc_appointment_book")]
    pub(crate) event: Option<String>,
    /// Values written over the catalog's examples.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"patient_name": "Zoë O'Brien"}))]
    pub(crate) data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Draft {
    /// A webhook as it would be POSTed to /webhooks.
    pub(crate) webhook: WebhookSpec,
    #[serde(default)]
    #[schema(example = "kc_appointment_book")]
    pub(crate) event: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) data: serde_json::Map<String, serde_json::Value>,
}

/// A request as it is (or would be) sent, secrets masked.
#[derive(Debug, Serialize, ToSchema)]
struct RequestView {
    method: String,
    url: String,
    /// `[name, value]` pairs, in order.
    #[schema(value_type = Vec<Vec<String>>)]
    headers: Vec<(String, String)>,
    body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Preview {
    /// The event rendered.
    event: String,
    request: RequestView,
    /// Whether the webhook's conditions hold on these values (a delivery
    /// would be made for such an event).
    conditions_match: bool,
    /// From validation: saved (or savable), but worth a look.
    warnings: Vec<Warning>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TestResult {
    event: String,
    /// The delivery logged for this test (`test: true` in the log).
    delivery_id: Uuid,
    /// The request as sent, secrets masked; null if it could not be built.
    request: Option<serde_json::Value>,
    /// The answer; null when there was none (refused, timeout, connection error).
    response: Option<AttemptResponse>,
    /// What went wrong, if anything (a non-2xx answer too).
    error: Option<String>,
    duration_ms: i64,
    /// succeeded or failed
    outcome: String,
    conditions_match: bool,
}

/// Picks the event to render, and refuses one the webhook does not subscribe to.
fn choose_event(
    compiled: &CompiledWebhook,
    requested: Option<&str>,
) -> ApiResult<&'static EventType> {
    let spec = &compiled.spec;
    match requested {
        Some(name) => {
            let event = catalog::lookup(name).ok_or_else(|| {
                ApiError::invalid(
                    "event",
                    format!(
                        "unknown event \"{name}\"{}",
                        catalog::did_you_mean(catalog::closest_name(
                            name,
                            catalog::events().iter().map(|e| e.name)
                        ))
                    ),
                )
            })?;
            if !compiled.scope.includes(event.name) {
                return Err(ApiError::invalid(
                    "event",
                    format!(
                        "the webhook does not subscribe to {}; it takes {}",
                        event.name,
                        spec.events.join(", ")
                    ),
                ));
            }
            Ok(event)
        }
        None if compiled.scope.is_all() => {
            Ok(catalog::lookup(DEFAULT_EVENT).expect("the default event is in the catalog"))
        }
        None => compiled
            .scope
            .events()
            .first()
            .copied()
            .ok_or_else(|| ApiError::invalid("events", "the webhook has no events")),
    }
}

/// The catalog's example snapshot of `event`, with `data` written over it.
fn sample_vars(
    event: &EventType,
    event_id: Uuid,
    data: &serde_json::Map<String, serde_json::Value>,
) -> ApiResult<Vars> {
    let mut vars = event.example_vars();
    overlay_data(event, &mut vars, data)?;
    vars.insert("event_name".into(), event.name.to_string());
    vars.insert("event_id".into(), event_id.to_string());
    Ok(vars)
}

fn render_preview(
    compiled: &CompiledWebhook,
    secrets: &[&SigningSecret],
    event: &EventType,
    data: &serde_json::Map<String, serde_json::Value>,
    warnings: Vec<Warning>,
) -> ApiResult<Preview> {
    let vars = sample_vars(event, Uuid::now_v7(), data)?;
    let (_, masked) = build_request(
        compiled,
        secrets,
        &Uuid::now_v7().to_string(),
        now_ms(),
        &vars,
    )
    .map_err(|e| {
        let mut err =
            ApiError::invalid(e.field.clone(), format!("the request cannot be built: {e}"));
        err.details = Some(serde_json::json!({"variable": e.variable}));
        err
    })?;
    Ok(Preview {
        event: event.name.to_string(),
        request: RequestView {
            method: masked.method.as_str().to_string(),
            url: masked.url,
            headers: masked.headers,
            body: masked.body,
        },
        conditions_match: compiled.wants(event.name, &vars),
        warnings,
    })
}

/// Sends the webhook's request now, rendered from example values, and
/// answers with the request as sent, the response and the time it took.
/// The attempt is logged as a test delivery; a failed test is not retried
/// by itself, and a 410 does not disable the webhook. Sent even when the
/// webhook is disabled or its conditions do not hold.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body(content = Option<TryOut>, description = "Optional; an empty body tests the default event with the examples"),
    responses((status = 200, description = "Sent (or tried): `error` and `response` tell how it went", body = TestResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn test_send(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<TryOut>,
) -> ApiResult<Json<TestResult>> {
    let webhook = loaded(&state, id).await?;
    let event = choose_event(&webhook.compiled, body.event.as_deref())?;
    let event_id = Uuid::now_v7();
    let delivery_id = Uuid::now_v7();
    let vars = sample_vars(event, event_id, &body.data)?;
    let conditions_match = webhook.compiled.wants(event.name, &vars);
    let created_at = now_ms();
    let done = dispatcher::attempt(
        &state.outbound,
        &webhook,
        Claimed {
            delivery_id,
            event_id,
            webhook_id: id,
            event_type: event.name.to_string(),
            vars: vars.clone(),
            attempts: 0,
            created_at,
            is_test: true,
        },
    )
    .await;
    state.metrics.test_send();
    // Logged after the send, as an event with one test delivery and its
    // attempt. The delivery is never due, so no worker can claim it in the
    // moment between the two writes.
    state
        .store
        .record_events(vec![NewEvent {
            id: event_id,
            event_type: event.name.to_string(),
            vars,
            idempotency_key: None,
            created_at,
            deliveries: vec![NewDelivery {
                id: delivery_id,
                webhook_id: id,
                next_attempt_at: i64::MAX,
                is_test: true,
            }],
        }])
        .await?;
    let r = done.record;
    state.store.record_attempts(vec![r.clone()]).await?;
    Ok(Json(TestResult {
        event: event.name.to_string(),
        delivery_id,
        request: (!r.request.is_null()).then_some(r.request),
        response: r.response_status.map(|status| AttemptResponse {
            status,
            headers: r.response_headers,
            body: r.response_body,
        }),
        error: r.error,
        duration_ms: r.duration_ms,
        outcome: r.outcome.to_string(),
        conditions_match,
    }))
}

/// The request the webhook would send for an event with example values
/// (and the caller's `data`), signed as it would be; nothing is sent.
#[utoipa::path(post, path = "/webhooks/{id}/preview", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body(content = Option<TryOut>, description = "Optional; an empty body previews the default event with the examples"),
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn preview(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<Uuid>,
    OptionalJson(body): OptionalJson<TryOut>,
) -> ApiResult<Json<Preview>> {
    let webhook = loaded(&state, id).await?;
    let event = choose_event(&webhook.compiled, body.event.as_deref())?;
    let secrets = webhook.signing_secrets(now_ms());
    Ok(Json(render_preview(
        &webhook.compiled,
        &secrets,
        event,
        &body.data,
        Vec::new(),
    )?))
}

/// Validates an unsaved webhook and renders its request, or answers the
/// first error with its field (`webhook.body`), line and column. A draft has
/// no signing secret yet, so its signature headers are made with a
/// throwaway one: their shape is real, their value is not.
#[utoipa::path(post, path = "/webhooks/preview", tag = "webhooks", request_body = Draft,
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "The draft is invalid: the field, and for a template its line and column", body = ErrorBody)))]
pub(crate) async fn preview_draft(
    _: Caller,
    ApiJson(body): ApiJson<Draft>,
) -> ApiResult<Json<Preview>> {
    let (compiled, warnings) = body.webhook.compile().map_err(|e| {
        ApiError::from(ValidationError {
            field: format!("webhook.{}", e.field),
            ..e
        })
    })?;
    let event = choose_event(&compiled, body.event.as_deref())?;
    let throwaway = SigningSecret::generate();
    Ok(Json(render_preview(
        &compiled,
        &[&throwaway],
        event,
        &body.data,
        warnings,
    )?))
}
