//! Trying a webhook out over HTTP: a test send, a preview of a saved
//! webhook's request, and a preview of an unsaved draft. What they do is
//! [`crate::service::webhooks`]'s (`test_send`, `preview`, `preview_draft`).

use axum::Json;
use axum::extract::State;
use carehook_core::ids::WebhookId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiJson, ApiPath, ApiResult, ErrorBody, LaterJson};
use super::{AppState, Caller};
use crate::service::access;
use crate::service::webhooks::{self, Draft, Preview, TestResult, TryOut};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(test_send))
        .routes(routes!(preview))
        .routes(routes!(preview_draft))
}

/// Sends the webhook's request now, rendered from example values, and
/// answers with the request as sent, the response and the time it took.
/// The attempt is logged as a test delivery; a failed test is not retried
/// by itself, and a 410 does not disable the webhook. Sent even when the
/// webhook is disabled or its conditions do not hold.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body(content = Option<TryOut>, description = "Optional; an empty body tests the default event with the examples"),
    responses((status = 200, description = "Sent (or tried): `error` and `response` tell how it went", body = TestResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "The webhook is broken (its stored configuration cannot be read); see its `broken` reason", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn test_send(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
    body: LaterJson,
) -> ApiResult<Json<TestResult>> {
    access::webhook(&state, &caller, id).await?;
    let body: TryOut = body.parse_or_default()?;
    Ok(Json(
        webhooks::test_send(&state, &caller.actor(), id, body).await?,
    ))
}

/// The request the webhook would send for an event with example values
/// (and the caller's `data`), signed as it would be; nothing is sent.
#[utoipa::path(post, path = "/webhooks/{id}/preview", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body(content = Option<TryOut>, description = "Optional; an empty body previews the default event with the examples"),
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
    body: LaterJson,
) -> ApiResult<Json<Preview>> {
    access::webhook(&state, &caller, id).await?;
    let body: TryOut = body.parse_or_default()?;
    Ok(Json(webhooks::preview(&state, id, body).await?))
}

/// Validates an unsaved webhook and renders its request, or answers the
/// first error with its field (`body`, as on create), line and column. A draft has
/// no signing secret yet, so its signature headers are made with a
/// throwaway one: their shape is real, their value is not.
#[utoipa::path(post, path = "/webhooks/preview", tag = "webhooks", request_body = Draft,
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "The draft is invalid: the field, and for a template its line and column", body = ErrorBody)))]
async fn preview_draft(_: Caller, ApiJson(body): ApiJson<Draft>) -> ApiResult<Json<Preview>> {
    Ok(Json(webhooks::preview_draft(body)?))
}
