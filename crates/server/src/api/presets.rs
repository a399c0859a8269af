//! Presets: the guide's integrations, listed, and turned into webhooks.

use axum::Json;
use carehook_core::presets::{self, PresetRequest};
use carehook_core::webhook::WebhookSpec;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiPath, ApiResult, ErrorBody, parse_json};
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

/// A webhook body: a full spec, or `{"preset": id, "url"?, "values"?,
/// "auth"?, …}` where any other spec field overrides the preset's.
pub fn spec_from_body(mut body: Value) -> ApiResult<WebhookSpec> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request("a webhook is a JSON object"));
    };
    let Some(preset_id) = obj.remove("preset") else {
        return parse_json(body.to_string().as_bytes());
    };
    let id = preset_id.as_str().ok_or_else(|| {
        ApiError::invalid(
            "preset",
            "preset is a preset id, like \"slack_new_appointment\"",
        )
    })?;
    let preset = presets::lookup(id).ok_or_else(|| {
        let ids: Vec<&str> = presets::presets().iter().map(|p| p.id).collect();
        ApiError::invalid(
            "preset",
            format!(
                "unknown preset \"{id}\"; the presets are: {}",
                ids.join(", ")
            ),
        )
    })?;
    let values = match obj.remove("values") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(ApiError::invalid(
                    format!("values.{k}"),
                    "a preset value is text",
                )),
            })
            .collect::<ApiResult<_>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "values",
                "values is an object of text values",
            ));
        }
    };
    let url = match obj.remove("url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::invalid("url", "url is text")),
    };
    let auth = obj.remove("auth");
    let request = PresetRequest {
        url,
        values,
        auth: auth.clone(),
    };
    let mut spec = match presets::build(preset, &request) {
        Ok(spec) => spec,
        Err(Ok(missing)) => {
            let list: Vec<String> = missing
                .iter()
                .map(|m| format!("{} — {}", m.field, m.message))
                .collect();
            let mut e = ApiError::invalid(
                missing[0].field.clone(),
                format!("preset {} still needs: {}", preset.id, list.join("; ")),
            );
            e.details = Some(json!({ "missing": missing }));
            return Err(e);
        }
        Err(Err(bad)) => return Err(ApiError::invalid(bad.field, bad.message)),
    };
    // Auth fields beyond the preset's (an API key's header name) and any
    // other field override the preset.
    if let Some(Value::Object(a)) = auth {
        for (k, v) in a {
            spec["auth"][k] = v;
        }
    }
    for (k, v) in std::mem::take(obj) {
        spec[k] = v;
    }
    parse_json(spec.to_string().as_bytes())
}
