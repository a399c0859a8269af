//! The latest operational events (`carehook_*`): what carehook said about its own webhooks.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiQuery, ApiResult, ErrorBody};
use super::{AppState, Caller};
use crate::time::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_alerts))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlertsQuery {
    /// How many, 1 to 100 (default 20).
    limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Alerts {
    /// Newest first.
    items: Vec<AlertView>,
}

#[derive(Debug, Serialize, ToSchema)]
struct AlertView {
    /// The event's id (`GET /api/v1/events/{id}`).
    id: Uuid,
    /// `carehook_webhook_disabled`, `carehook_delivery_failed`, `carehook_webhook_failing` or
    /// `carehook_secret_rotated`.
    event: String,
    /// RFC 3339.
    at: String,
    webhook_id: Option<String>,
    webhook_name: Option<String>,
    reason: Option<String>,
    delivery_id: Option<String>,
    /// The name of the event the failed delivery carried.
    delivery_event: Option<String>,
    status_code: Option<String>,
}

/// The latest operational events carehook emitted (a webhook disabled, a delivery given up, a
/// webhook starting to fail, a secret rotated). They carry no patient data. A token limited to
/// clinics sees those about its clinics' webhooks only.
#[utoipa::path(get, path = "/alerts", tag = "events", params(AlertsQuery),
    responses((status = 200, body = Alerts), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> ApiResult<Json<Alerts>> {
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let rows = crate::service::access::alerts(&state, &caller, limit).await?;
    let items = rows
        .into_iter()
        .map(|e| {
            let get = |k: &str| e.vars.get(k).filter(|v| !v.is_empty()).cloned();
            AlertView {
                id: e.id.into(),
                at: rfc3339(e.created_at),
                webhook_id: get("webhook_id"),
                webhook_name: get("webhook_name"),
                reason: get("reason"),
                delivery_id: get("delivery_id"),
                delivery_event: get("delivery_event"),
                status_code: get("status_code"),
                event: e.event_type,
            }
        })
        .collect();
    Ok(Json(Alerts { items }))
}
