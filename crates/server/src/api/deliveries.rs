//! The delivery log: every delivery, its attempts, and manual retries.

use axum::Json;
use axum::extract::State;
use carehook_core::ids::DeliveryId;
use carehook_store::{AttemptRow, DeliveryFilter, DeliveryRow, DeliveryStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiPath, ApiQuery, ApiResult, ErrorBody};
use super::{AppState, Caller};
use crate::service::access;
use crate::service::deliveries;
use crate::time::{parse_time, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(retry))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    webhook_id: Option<Uuid>,
    /// pending, succeeded, failed or superseded
    #[param(value_type = Option<DeliveryStatusName>)]
    status: Option<String>,
    /// An event name (or alias)
    event: Option<String>,
    /// Created at or after (RFC 3339, or unix ms)
    #[param(
        pattern = r"^(-?[0-9]{1,15}|(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-3]):[0-5][0-9]))?$"
    )]
    since: Option<String>,
    /// Created before (RFC 3339, or unix ms)
    #[param(
        pattern = r"^(-?[0-9]{1,15}|(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-](0[0-9]|1[0-3]):[0-5][0-9]))?$"
    )]
    until: Option<String>,
    /// Page size, 1 to 1000 (default 50)
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page
    #[param(pattern = r"^(-?[0-9]{1,15}\.[0-9a-f]{32})?$")]
    cursor: Option<String>,
    /// A patient or appointment: an id (digits) matches `appointment_id`
    /// or `patient_id`; other text matches a patient name holding every
    /// word of it (case and accents forgiven; sealed snapshots too)
    #[param(max_length = 200)]
    search: Option<String>,
}

/// A delivery's status, as the API writes it. Only its schema is used (the fields are text).
#[allow(dead_code)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatusName {
    Pending,
    Succeeded,
    Failed,
    /// Withdrawn before it was sent (scheduled deliveries); not a failure.
    Superseded,
}

/// What a delivery is, in a list and alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryFields {
    pub id: Uuid,
    pub event_id: Uuid,
    pub webhook_id: Uuid,
    /// The event's name
    pub event: String,
    /// pending, succeeded, failed, or superseded (withdrawn before it was sent: a scheduled
    /// delivery whose appointment was cancelled or moved, or whose time had passed;
    /// `last_error` says why)
    #[schema(value_type = DeliveryStatusName)]
    pub status: String,
    /// When a pending delivery is due (RFC 3339); null once it ended.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The HTTP status of the last answer
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// Made by a test send
    pub test: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    #[serde(flatten)]
    pub fields: DeliveryFields,
    /// Attempts made so far.
    pub attempts: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryWithAttempts {
    #[serde(flatten)]
    pub fields: DeliveryFields,
    /// The attempts, first to last: the last 20 when there were more
    /// (each keeps at most 64 KiB of request and of response body, so the
    /// answer stays bounded however often a delivery was retried).
    pub attempts: Vec<Attempt>,
    /// Its place in its ordering key, for a webhook with an `ordering_key`;
    /// absent for an unordered delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering: Option<DeliveryOrdering>,
}

/// Where an ordered delivery stands in its key.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOrdering {
    /// The key's id (32 hex digits), as sent in `carehook-ordering-key`.
    pub key: String,
    /// Its number in the key (1 for the key's first delivery), as sent in
    /// `carehook-ordering-sequence`.
    pub sequence: i64,
    /// While it is held back: the earliest pending delivery of its key,
    /// which it waits for (in flight, or being retried).
    pub waiting_for: Option<Uuid>,
    /// `waiting for delivery …` while held back, for people.
    pub state: Option<String>,
}

/// `waiting for delivery …`: what the log says of a held-back delivery.
pub fn waiting_text(waiting_for: DeliveryId) -> String {
    format!("waiting for delivery {waiting_for}")
}

/// The most attempts `GET /deliveries/{id}` shows.
pub const MAX_SHOWN_ATTEMPTS: usize = 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: String,
    pub duration_ms: i64,
    /// succeeded, failed, retry or gave_up
    pub outcome: String,
    /// The request as sent, secrets masked: method, url, headers, body.
    pub request: serde_json::Value,
    /// The answer; null when there was none (an error).
    pub response: Option<AttemptResponse>,
    pub error: Option<String>,
    /// Size in bytes and SHA-256 (hex) of the request body sent, kept after the body goes.
    pub request_bytes: Option<i64>,
    pub request_sha256: Option<String>,
    /// The same of the response body received.
    pub response_bytes: Option<i64>,
    pub response_sha256: Option<String>,
    /// When the bodies went (RFC 3339); null while they are kept.
    pub purged_at: Option<String>,
    /// retention, erasure, or not_stored (the webhook keeps no bodies).
    pub purge_reason: Option<String>,
}

pub use crate::service::deliveries::AttemptResponse;

#[derive(Debug, Serialize, ToSchema)]
struct DeliveryPage {
    items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// The delivery log, newest first, filtered and paged.
#[utoipa::path(get, path = "/deliveries", tag = "deliveries", params(ListQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_id` names a webhook the token cannot see (another clinic's, for a token limited to clinics)", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    // A limited caller lists the deliveries of its clinics' webhooks; asking for another
    // clinic's webhook is a 404, as for a missing one.
    let webhook_ids = access::visible_webhooks(&state, &caller).await?;
    if let (Some(w), Some(mine)) = (q.webhook_id, &webhook_ids)
        && !mine.contains(&w.into())
    {
        return Err(ApiError::not_found("webhook"));
    }
    let q = ListQuery {
        since: nonempty(q.since),
        until: nonempty(q.until),
        cursor: nonempty(q.cursor),
        ..q
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<DeliveryStatus>().map_err(|_| {
            ApiError::invalid(
                "status",
                format!("status must be pending, succeeded, failed or superseded, not \"{s}\""),
            )
        })?),
    };
    let time = |field: &str, v: Option<String>| -> ApiResult<Option<i64>> {
        v.map(|t| {
            parse_time(&t).ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!("\"{t}\" is not an RFC 3339 time or unix milliseconds"),
                )
            })
        })
        .transpose()
    };
    let event_type = match q.event {
        Some(e) if !e.is_empty() => Some(
            carehook_core::catalog::canonical_name(&e)
                .ok_or_else(|| ApiError::invalid("event", format!("unknown event \"{e}\"")))?
                .to_string(),
        ),
        _ => None,
    };
    let page = deliveries::list(
        &state,
        DeliveryFilter {
            webhook_id: q.webhook_id.map(Into::into),
            webhook_ids,
            status,
            event_type,
            since: time("since", q.since)?,
            until: time("until", q.until)?,
            limit: check_limit(q.limit)?,
            cursor: q.cursor,
            search: q.search.filter(|s| !s.trim().is_empty()),
        },
    )
    .await?;
    Ok(Json(DeliveryPage {
        items: page.items.iter().map(delivery).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// An empty query value (`?cursor=`) is the same as none.
pub fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// A page size: absent is the default, above [`MAX_PAGE`] a 422 (silently
/// clamping would let a script believe it read everything).
pub fn check_limit(limit: Option<u32>) -> ApiResult<u32> {
    Ok(deliveries::check_limit(limit)?)
}

/// One delivery, with every attempt.
#[utoipa::path(get, path = "/deliveries/{id}", tag = "deliveries", params(("id" = Uuid, Path, description = "Delivery id")),
    responses((status = 200, body = DeliveryWithAttempts), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<DeliveryId>,
) -> ApiResult<Json<DeliveryWithAttempts>> {
    access::delivery(&state, &caller, id).await?;
    let (d, attempts) = deliveries::get(&state, &caller.actor(), id).await?;
    let ordering = deliveries::ordering(&state, id)
        .await?
        .map(|o| DeliveryOrdering {
            key: o.place.key,
            sequence: o.place.sequence,
            waiting_for: o.waiting_for.map(Into::into),
            state: o.waiting_for.map(waiting_text),
        });
    Ok(Json(DeliveryWithAttempts {
        fields: fields(&d),
        attempts: attempts
            .iter()
            .skip(attempts.len().saturating_sub(MAX_SHOWN_ATTEMPTS))
            .map(|a| {
                let mut a = attempt(a);
                if !caller.bodies {
                    mask_bodies(&mut a);
                }
                a
            })
            .collect(),
        ordering,
    }))
}

/// Sends a delivery again now, whatever its status.
#[utoipa::path(post, path = "/deliveries/{id}/retry", tag = "deliveries", params(("id" = Uuid, Path, description = "Delivery id")),
    responses((status = 200, body = Delivery), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Its event data is gone (retention or erasure), so it cannot be sent again", body = ErrorBody)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<DeliveryId>,
) -> ApiResult<Json<Delivery>> {
    access::delivery(&state, &caller, id).await?;
    let d = deliveries::retry(&state, &caller.actor(), id).await?;
    Ok(Json(delivery(&d)))
}

fn fields(d: &DeliveryRow) -> DeliveryFields {
    DeliveryFields {
        id: d.id.into(),
        event_id: d.event_id.into(),
        webhook_id: d.webhook_id.into(),
        event: d.event_type.clone(),
        status: d.status.to_string(),
        next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)),
        created_at: rfc3339(d.created_at),
        updated_at: rfc3339(d.updated_at),
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        test: d.is_test,
    }
}

pub fn delivery(d: &DeliveryRow) -> Delivery {
    Delivery {
        fields: fields(d),
        attempts: d.attempts,
    }
}

fn attempt(a: &AttemptRow) -> Attempt {
    Attempt {
        attempt: a.attempt_no,
        started_at: rfc3339(a.started_at),
        duration_ms: a.duration_ms,
        outcome: a.outcome.to_string(),
        request: a.request.clone(),
        response: a.response_status.map(|s| AttemptResponse {
            status: s,
            headers: a.response_headers.clone(),
            body: a.response_body.clone(),
        }),
        error: a.error.clone(),
        request_bytes: a.request_bytes,
        request_sha256: a.request_sha256.clone(),
        response_bytes: a.response_bytes,
        response_sha256: a.response_sha256.clone(),
        purged_at: a.purged_at.map(rfc3339),
        purge_reason: a.purge_reason.map(|r| r.to_string()),
    }
}

/// What a caller not allowed bodies sees of an attempt: the request's method, URL (with
/// its query, which may carry values, masked) and headers' names, the status and the
/// sizes and hashes; no body, no header value, no error text (it may quote the answer).
pub fn mask_bodies(a: &mut Attempt) {
    const HIDDEN: &str = "(hidden: this token does not see bodies)";
    if let Some(req) = a.request.as_object_mut() {
        if req.contains_key("body") {
            req.insert("body".into(), HIDDEN.into());
        }
        if let Some(url) = req.get("url").and_then(|u| u.as_str()) {
            let bare = url.split('?').next().unwrap_or("").to_string();
            req.insert("url".into(), bare.into());
        }
        if let Some(serde_json::Value::Object(h)) = req.get_mut("headers") {
            for v in h.values_mut() {
                *v = "***".into();
            }
        }
    }
    if let Some(r) = &mut a.response {
        r.body = r.body.as_ref().map(|_| HIDDEN.to_string());
        r.headers = None;
    }
    if a.error.is_some() {
        a.error = Some(HIDDEN.to_string());
    }
}
