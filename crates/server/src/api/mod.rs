//! The HTTP API (`/api/v1`), the health check, and who may call them.
//!
//! Each module owns its routes; they are merged here, under one body limit
//! and the bearer-token check ([`Caller`] as an extractor, so a handler's
//! signature says it needs one).

pub mod clinic;
mod deliveries;
pub mod error;
mod events;
mod presets;
mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use carehook_store::Store;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::intake::Intake;
use crate::registry::Registry;
use error::{ApiError, MAX_BODY_BYTES};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub intake: Intake,
    pub outbound: crate::outbound::Outbound,
    /// SHA-256 (hex) of the admin token.
    pub admin_token_hash: String,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/event-types", get(events::event_types))
        .merge(events::router())
        .merge(webhooks::router())
        .merge(deliveries::router())
        .merge(presets::router())
        .merge(clinic::router());
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/api/v1", api)
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; the API lives under /api/v1",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A cheap read proves the database answers.
    state
        .store
        .kv_get("schema")
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        json!({"status": "ok", "database": state.store.backend()}),
    ))
}

/// Hex SHA-256 of a token: what the store keeps instead of the token.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A caller that showed a valid API token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `admin`, or the API token's name.
    pub name: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("send an API token as `Authorization: Bearer <token>`")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let hash = hash_token(token);
        if bool::from(hash.as_bytes().ct_eq(state.admin_token_hash.as_bytes())) {
            return Ok(Caller {
                name: "admin".into(),
            });
        }
        match state.store.find_token(&hash).await {
            Ok(Some(t)) => Ok(Caller { name: t.name }),
            Ok(None) => Err(ApiError::unauthorized(
                "the API token is not valid (revoked, or mistyped)",
            )),
            Err(e) => Err(ApiError::internal(e)),
        }
    }
}
