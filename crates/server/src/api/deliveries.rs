//! The delivery log: every delivery, its attempts, and manual retries.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use carehook_store::{AttemptRow, DeliveryFilter, DeliveryRow, DeliveryStatus};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use super::{AppState, Caller};
use crate::time::{now_ms, parse_time, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/{id}", get(get_one))
        .route("/deliveries/{id}/retry", post(retry))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    webhook_id: Option<Uuid>,
    status: Option<String>,
    event: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<DeliveryStatus>().map_err(|_| {
            ApiError::invalid(
                "status",
                format!("status must be pending, succeeded or failed, not \"{s}\""),
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
    let page = state
        .store
        .list_deliveries(DeliveryFilter {
            webhook_id: q.webhook_id,
            status,
            event_type,
            since: time("since", q.since)?,
            until: time("until", q.until)?,
            limit: q.limit.unwrap_or(0),
            cursor: q.cursor,
        })
        .await?;
    let items: Vec<_> = page.items.iter().map(delivery_json).collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

async fn get_one(
    State(state): State<AppState>,
    _: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<serde_json::Value>> {
    let (d, attempts) = state
        .store
        .get_delivery(id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let mut v = delivery_json(&d);
    v["attempts"] = attempts.iter().map(attempt_json).collect();
    Ok(Json(v))
}

async fn retry(
    State(state): State<AppState>,
    _: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<serde_json::Value>> {
    let d = state
        .store
        .retry_delivery(id, now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(Json(delivery_json(&d)))
}

pub fn delivery_json(d: &DeliveryRow) -> serde_json::Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "webhook_id": d.webhook_id,
        "event": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)),
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "test": d.is_test,
    })
}

fn attempt_json(a: &AttemptRow) -> serde_json::Value {
    json!({
        "attempt": a.attempt_no,
        "started_at": rfc3339(a.started_at),
        "duration_ms": a.duration_ms,
        "outcome": a.outcome,
        "request": a.request,
        "response": a.response_status.map(|s| json!({
            "status": s,
            "headers": a.response_headers,
            "body": a.response_body,
        })),
        "error": a.error,
    })
}
