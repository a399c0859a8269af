//! Presets: the guide's integrations, listed, and turned into webhooks.

use axum::Json;
use carehook_core::presets;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiPath, ApiResult, ErrorBody};
use super::{AppState, Caller};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
}

/// A preset: a webhook for one of the guide's integrations, with the values
/// an admin fills in (built from `carehook_core::presets`; described here).
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = Preset)]
#[allow(dead_code)]
struct PresetDoc {
    /// `slack_new_appointment`…
    id: String,
    name: String,
    integration: String,
    description: String,
    /// What the admin fills in: `key`, `label`, `help`, `example`…
    #[schema(value_type = Vec<Object>)]
    values: Value,
}

#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
struct PresetList {
    items: Vec<PresetDoc>,
}

/// A webhook made from a preset: its id, plus the URL and the values it asks
/// for; any other webhook field given overrides the preset's.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct FromPreset {
    #[schema(example = "slack_new_appointment")]
    preset: String,
    url: Option<String>,
    /// The preset's values, by key (text).
    #[schema(value_type = Option<Object>)]
    values: Option<Value>,
    /// Auth fields over the preset's.
    #[schema(value_type = Option<Object>)]
    auth: Option<Value>,
}

/// The presets: ready-made webhooks for the guide's integrations.
#[utoipa::path(get, path = "/presets", tag = "presets",
    responses((status = 200, body = PresetList), (status = 401, body = ErrorBody)))]
async fn list(_: Caller) -> Json<Value> {
    Json(json!({ "items": presets::presets() }))
}

/// One preset.
#[utoipa::path(get, path = "/presets/{id}", tag = "presets", params(("id" = String, Path, description = "Preset id")),
    responses((status = 200, body = PresetDoc), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_one(_: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    let p = presets::lookup(&id).ok_or_else(|| ApiError::not_found("preset"))?;
    Ok(Json(serde_json::to_value(p).map_err(ApiError::internal)?))
}
