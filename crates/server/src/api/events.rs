//! Events: the catalog (`/event-types`), and events pushed by a clinic system
//! (`POST /events`) or read back from the log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use carehook_core::catalog;
use carehook_core::ids::EventId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::deliveries::{check_limit, nonempty};
use super::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use super::{AppState, Caller};
use crate::service::events;
use crate::time::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(event_types))
        .routes(routes!(push_event, list_events))
        .routes(routes!(get_event))
}

/// The catalog's answer (built from `carehook_core::catalog`; described here).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
struct EventTypes {
    event_types: Vec<EventTypeDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EventType)]
#[allow(dead_code)]
struct EventTypeDoc {
    /// `kc_appointment_book`…
    name: String,
    description: String,
    /// The variable groups the event's snapshot carries.
    groups: Vec<GroupDoc>,
    /// Variables beyond the groups (`appointment_previous_status`…).
    extra: Vec<VariableDoc>,
    /// Other names accepted for the event (KiviCare add-on names).
    aliases: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = VariableGroup)]
#[allow(dead_code)]
struct GroupDoc {
    name: String,
    variables: Vec<VariableDoc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Variable)]
#[allow(dead_code)]
struct VariableDoc {
    name: String,
    /// text, number, date, time, date_time, email, phone, enum…
    #[serde(rename = "type")]
    ty: String,
    description: String,
    example: String,
    /// Whether it identifies a patient or is about their health or care:
    /// decides which webhooks may send it (their `data_policy`).
    sensitivity: carehook_core::catalog::Sensitivity,
    /// The allowed words of an enum variable.
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
}

/// The events carehook knows, with every variable's type, description and example.
#[utoipa::path(get, path = "/event-types", tag = "events",
    responses((status = 200, body = EventTypes), (status = 401, body = ErrorBody)))]
pub async fn event_types(_: Caller) -> Json<serde_json::Value> {
    Json(json!({ "event_types": catalog::events() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushEvent {
    /// An event name or alias (`GET /api/v1/event-types`).
    #[schema(example = "kc_appointment_book")]
    pub event: String,
    /// The event's variables; those left out are empty.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"patient_name": "Ada Lovelace"}))]
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Sending the same key again answers with the first event (1 to 255 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Pushed {
    id: Uuid,
    /// The event's canonical name.
    event: String,
    /// One delivery per matching enabled webhook.
    deliveries: Vec<Uuid>,
    /// The idempotency key was seen before: this is the first event.
    duplicate: bool,
    /// Variables a webhook that got this event reads but the event did not
    /// carry (or carried empty): those webhooks send them blank. Empty when
    /// nothing is missing.
    missing_variables: Vec<MissingVariable>,
}

#[derive(Debug, Serialize, ToSchema)]
struct MissingVariable {
    /// The variable, e.g. `doctor_name`.
    variable: String,
    /// The webhooks (by name) that read it.
    webhooks: Vec<String>,
}

/// Records an event from a clinic system; one delivery per enabled webhook
/// that subscribes to it and whose conditions hold. 202 once it is on disk;
/// 200 for a repeated idempotency key.
#[utoipa::path(post, path = "/events", tag = "events", request_body = PushEvent,
    responses((status = 202, body = Pushed), (status = 200, description = "A repeated idempotency key: the first event", body = Pushed),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn push_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PushEvent>,
) -> ApiResult<(StatusCode, Json<Pushed>)> {
    crate::service::access::check_push_clinic(&caller, body.data.get("clinic_id"))?;
    let events::Pushed {
        name,
        recorded,
        missing,
    } = events::push(
        &state,
        &caller.actor(),
        events::Push {
            event: body.event,
            data: body.data,
            idempotency_key: body.idempotency_key,
        },
    )
    .await?;
    let status = if recorded.is_duplicate() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        Json(Pushed {
            id: recorded.event_id().into(),
            event: name.to_string(),
            deliveries: recorded.delivery_ids().iter().map(|&d| d.into()).collect(),
            duplicate: recorded.is_duplicate(),
            missing_variables: missing
                .into_iter()
                .map(|m| MissingVariable {
                    variable: m.variable,
                    webhooks: m.webhooks,
                })
                .collect(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1 to 1000 (default 50)
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page
    #[param(pattern = r"^(-?[0-9]{1,15}\.[0-9a-f]{32})?$")]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Event {
    id: Uuid,
    event: String,
    /// The snapshot: every variable of the event, as text.
    #[schema(value_type = Object)]
    data: carehook_core::Vars,
    idempotency_key: Option<String>,
    created_at: String,
    /// When the snapshot went (RFC 3339; `data` is then empty); null while it is kept.
    purged_at: Option<String>,
    /// retention or erasure
    purge_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EventPage {
    items: Vec<Event>,
    next_cursor: Option<String>,
}

/// Recorded events, newest first.
#[utoipa::path(get, path = "/events", tag = "events", params(ListQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<EventPage>> {
    let page = events::list(
        &state,
        &caller.actor(),
        check_limit(q.limit)?,
        nonempty(q.cursor),
    )
    .await?;
    Ok(Json(EventPage {
        items: page.items.into_iter().map(event).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One event with its snapshot.
#[utoipa::path(get, path = "/events/{id}", tag = "events", params(("id" = Uuid, Path, description = "Event id")),
    responses((status = 200, body = Event), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<EventId>,
) -> ApiResult<Json<Event>> {
    let e = events::get(&state, &caller.actor(), id).await?;
    Ok(Json(event(e)))
}

fn event(e: carehook_store::EventRow) -> Event {
    Event {
        id: e.id.into(),
        event: e.event_type,
        data: e.vars,
        idempotency_key: e.idempotency_key,
        created_at: rfc3339(e.created_at),
        purged_at: e.purged_at.map(rfc3339),
        purge_reason: e.purge_reason.map(|r| r.to_string()),
    }
}
