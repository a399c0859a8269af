//! Events: the catalog (`/event-types`), and events pushed by a clinic system
//! (`POST /events`) or read back from the log.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use carehook_core::catalog;
use carehook_store::NewEvent;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::error::{ApiError, ApiJson, ApiResult};
use super::{AppState, Caller};
use crate::intake::{match_deliveries, snapshot_from_data};
use crate::time::{now_ms, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", post(push_event).get(list_events))
        .route("/events/{id}", get(get_event))
}

pub async fn event_types(_: Caller) -> Json<serde_json::Value> {
    Json(json!({ "event_types": catalog::events() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushEvent {
    pub event: String,
    #[serde(default)]
    pub data: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

async fn push_event(
    State(state): State<AppState>,
    _: Caller,
    ApiJson(body): ApiJson<PushEvent>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let event = catalog::lookup(&body.event).ok_or_else(|| {
        let names = catalog::events().iter().map(|e| e.name);
        ApiError::invalid(
            "event",
            format!(
                "unknown event \"{}\"{}; GET /api/v1/event-types lists them",
                body.event,
                catalog::did_you_mean(catalog::closest_name(&body.event, names))
            ),
        )
    })?;
    if let Some(key) = &body.idempotency_key
        && (key.is_empty() || key.len() > 255)
    {
        return Err(ApiError::invalid(
            "idempotency_key",
            "an idempotency key must be 1 to 255 characters",
        ));
    }
    let id = Uuid::now_v7();
    let vars = snapshot_from_data(event, id, &body.data)?;
    let now = now_ms();
    let deliveries = match_deliveries(&state.registry, event, &vars, now);
    let recorded = state
        .intake
        .record(NewEvent {
            id,
            event_type: event.name.to_string(),
            vars,
            idempotency_key: body.idempotency_key,
            created_at: now,
            deliveries,
        })
        .await?;
    let status = if recorded.is_duplicate() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(json!({
            "id": recorded.event_id(),
            "event": event.name,
            "deliveries": recorded.delivery_ids(),
            "duplicate": recorded.is_duplicate(),
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_events(
    State(state): State<AppState>,
    _: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let page = state
        .store
        .list_events(q.limit.unwrap_or(0), q.cursor)
        .await?;
    let items: Vec<_> = page.items.iter().map(event_json).collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

async fn get_event(
    State(state): State<AppState>,
    _: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<serde_json::Value>> {
    let event = state
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    Ok(Json(event_json(&event)))
}

fn event_json(e: &carehook_store::EventRow) -> serde_json::Value {
    json!({
        "id": e.id,
        "event": e.event_type,
        "data": e.vars,
        "idempotency_key": e.idempotency_key,
        "created_at": rfc3339(e.created_at),
    })
}
