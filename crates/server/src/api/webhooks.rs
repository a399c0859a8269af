//! Webhooks: create, read, change, delete, and rotate the signing secret.
//!
//! Every write compiles the webhook first (a bad template is a 422 naming
//! the field, line and column, and nothing is written), then stores it with
//! its secrets sealed, then puts the compiled form in the registry.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use carehook_core::signing::SigningSecret;
use carehook_core::webhook::{MASK, WebhookSpec};
use carehook_store::NewWebhook;
use serde_json::{Value, json};
use uuid::Uuid;

use super::error::{ApiError, ApiJson, ApiResult, parse_json};
use super::{AppState, Caller};
use crate::registry::{Loaded, ROTATION_OVERLAP_MS, StoredSecret, StoredWebhook, seal_spec};
use crate::time::now_ms;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create).get(list))
        .route("/webhooks/{id}", get(get_one).patch(update).delete(remove))
        .route("/webhooks/{id}/rotate-secret", post(rotate_secret))
}

/// Fields the API shows but a client cannot set; a PATCH that carries them
/// back (GET, edit, PATCH) is not an error.
const READ_ONLY: &[&str] = &[
    "id",
    "version",
    "created_at",
    "updated_at",
    "disabled_reason",
    "signing_secret",
];

async fn create(
    State(state): State<AppState>,
    _: Caller,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = super::presets::spec_from_body(body)?;
    let (_, warnings) = spec.compile()?;
    let _gate = state.registry.write_gate().await;
    let vault = state.registry.vault();
    let secret = SigningSecret::generate();
    let stored = StoredWebhook {
        spec: seal_spec(spec.clone(), vault),
        signing_secrets: vec![StoredSecret {
            secret: vault.seal(&secret.to_whsec()),
            expires_at: None,
        }],
    };
    let row = state
        .store
        .create_webhook(NewWebhook {
            id: Uuid::now_v7(),
            name: spec.name.trim().to_string(),
            enabled: spec.enabled,
            events: spec.events.clone(),
            config: serde_json::to_value(&stored).map_err(ApiError::internal)?,
        })
        .await?;
    let loaded = state
        .registry
        .put(Loaded::from_row(row, vault).map_err(ApiError::internal)?);
    let mut view = loaded.view();
    view["signing_secret"] = secret.to_whsec().into();
    view["warnings"] = serde_json::to_value(warnings).unwrap_or_default();
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list(State(state): State<AppState>, _: Caller) -> ApiResult<Json<Value>> {
    // The store's order (oldest first) is the one people expect in a list.
    let rows = state.store.list_webhooks().await?;
    let snapshot = state.registry.snapshot();
    let items: Vec<Value> = rows
        .iter()
        .filter_map(|r| snapshot.get(&r.id))
        .map(|l| l.view())
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn get_one(
    State(state): State<AppState>,
    _: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    Ok(Json(loaded(&state, id).await?.view()))
}

/// The registry's copy, or a fresh read when another node changed it.
async fn loaded(state: &AppState, id: Uuid) -> ApiResult<std::sync::Arc<Loaded>> {
    let row = state
        .store
        .get_webhook(id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if let Some(l) = state.registry.get(id)
        && l.row.version == row.version
    {
        return Ok(l);
    }
    Ok(state
        .registry
        .put(Loaded::from_row(row, state.registry.vault()).map_err(ApiError::internal)?))
}

/// JSON merge patch (RFC 7396) onto the webhook as it is; secrets not sent,
/// or sent back masked, stay as they were.
async fn update(
    State(state): State<AppState>,
    _: Caller,
    Path(id): Path<Uuid>,
    ApiJson(mut patch): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let Some(obj) = patch.as_object_mut() else {
        return Err(ApiError::bad_request(
            "a PATCH body is a JSON object with the fields to change",
        ));
    };
    for key in READ_ONLY {
        obj.remove(*key);
    }
    let _gate = state.registry.write_gate().await;
    let current = loaded(&state, id).await?;
    let old_spec = &current.compiled.spec;
    let mut merged = serde_json::to_value(old_spec).map_err(ApiError::internal)?;
    merge_patch(&mut merged, &patch);
    let mut spec: WebhookSpec = parse_json(merged.to_string().as_bytes())?;
    if spec.auth.kind() == old_spec.auth.kind()
        && let (Some(new), Some(old)) = (spec.auth.secret_mut(), old_spec.auth.secret())
        && (new == MASK || new.is_empty())
    {
        *new = old.to_string();
    }
    let (_, warnings) = spec.compile()?;
    let vault = state.registry.vault();
    let mut stored: StoredWebhook =
        serde_json::from_value(current.row.config.clone()).map_err(ApiError::internal)?;
    stored.spec = seal_spec(spec.clone(), vault);
    // Re-enabling clears the reason it was disabled.
    let reason = if spec.enabled {
        None
    } else {
        current.row.disabled_reason.clone()
    };
    let row = state
        .store
        .update_webhook(
            id,
            spec.name.trim().to_string(),
            spec.enabled,
            spec.events.clone(),
            serde_json::to_value(&stored).map_err(ApiError::internal)?,
            reason,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let loaded = state
        .registry
        .put(Loaded::from_row(row, vault).map_err(ApiError::internal)?);
    let mut view = loaded.view();
    view["warnings"] = serde_json::to_value(warnings).unwrap_or_default();
    Ok(Json(view))
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn remove(
    State(state): State<AppState>,
    _: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let _gate = state.registry.write_gate().await;
    if !state.store.delete_webhook(id).await? {
        return Err(ApiError::not_found("webhook"));
    }
    state.registry.remove(id);
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret; the old one keeps signing for 24 hours so
/// receivers can switch without dropping a request.
async fn rotate_secret(
    State(state): State<AppState>,
    _: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Value>> {
    let _gate = state.registry.write_gate().await;
    let current = loaded(&state, id).await?;
    let vault = state.registry.vault();
    let now = now_ms();
    let mut stored: StoredWebhook =
        serde_json::from_value(current.row.config.clone()).map_err(ApiError::internal)?;
    stored
        .signing_secrets
        .retain(|s| s.expires_at.is_none_or(|t| t > now));
    for s in &mut stored.signing_secrets {
        s.expires_at.get_or_insert(now + ROTATION_OVERLAP_MS);
    }
    let secret = SigningSecret::generate();
    stored.signing_secrets.insert(
        0,
        StoredSecret {
            secret: vault.seal(&secret.to_whsec()),
            expires_at: None,
        },
    );
    let row = state
        .store
        .update_webhook(
            id,
            current.row.name.clone(),
            current.row.enabled,
            current.row.events.clone(),
            serde_json::to_value(&stored).map_err(ApiError::internal)?,
            current.row.disabled_reason.clone(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let loaded = state
        .registry
        .put(Loaded::from_row(row, vault).map_err(ApiError::internal)?);
    let mut view = loaded.view();
    view["signing_secret"] = secret.to_whsec().into();
    view["previous_secret_expires_at"] = crate::time::rfc3339(now + ROTATION_OVERLAP_MS).into();
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut t,
            &json!({"a": null, "b": {"c": 9}, "e": [2], "f": "x"}),
        );
        assert_eq!(t, json!({"b": {"c": 9, "d": 3}, "e": [2], "f": "x"}));
    }
}
