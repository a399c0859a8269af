//! The HTTP API (`/api/v1`), the health check, and who may call them.
//!
//! Each module owns its routes, each documented with `#[utoipa::path]`;
//! they are merged here into the router and the OpenAPI document at once,
//! under one body limit and the policy table ([`policy`]: which roles may
//! call each operation, checked before the handler runs; [`Caller`] as an
//! extractor, so a handler's signature says it needs a token).

mod alerts;
pub mod clinic;
mod clinic_doc;
pub(crate) mod deliveries;
pub mod error;
mod events;
pub mod guard;
mod openapi;
mod partner;
pub mod policy;
pub(crate) mod presets;
pub(crate) mod previews;
pub(crate) mod privacy;
mod reference;
pub mod tokens;
pub mod users;
pub(crate) mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::{Json, Router};
use error::{ApiError, MAX_BODY_BYTES};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler can reach: the service layer's context.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Shared>);

pub use crate::service::Context as Shared;

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Every route with its OpenAPI description: a route is added with
/// `routes!(handler)`, which needs the handler's `#[utoipa::path]`, so the
/// document cannot miss one (`tests/api/openapi.rs` also checks).
pub fn documented_routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .merge(events::router())
        .merge(webhooks::router())
        .merge(previews::router())
        .merge(deliveries::router())
        .merge(tokens::router())
        .merge(users::router())
        .merge(presets::router())
        .merge(privacy::router())
        .merge(alerts::router())
        .merge(partner::router())
        // Clinic routes are generated per record kind; their paths in the
        // document are generated from the same table (`clinic_doc`).
        .merge(OpenApiRouter::from(clinic::router()));
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(reference::api_reference))
        .nest("/api/v1", api)
}

/// The OpenAPI document, as served at `/api/v1/openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    openapi::finish(documented_routes().into_openapi())
}

/// Sent with every answer of the API and the health check: how a client (the
/// CLI) tells carehook from whatever else answers at an address it was given,
/// before it sends a token there.
pub const VERSION_HEADER: &str = "carehook-version";

pub fn router(state: AppState) -> Router {
    let (app, doc) = documented_routes().split_for_parts();
    let doc = Arc::new(openapi::finish(doc));
    let operations = Arc::new(policy::Operations::of(&doc));
    app.route_layer(axum::middleware::from_fn_with_state(
        (state.clone(), operations),
        policy::enforce,
    ))
    .fallback(|| async {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; the API lives under /api/v1",
        )
    })
    .layer(axum::Extension(doc))
    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    .layer(axum::middleware::map_response(
        |mut answer: axum::response::Response| async move {
            answer.headers_mut().insert(
                VERSION_HEADER,
                axum::http::HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
            );
            answer
        },
    ))
    .with_state(state)
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`, or `degraded` (with a 503) while a background task is
    /// restarting after a panic or has failed.
    status: String,
    /// `sqlite` or `postgres`
    database: String,
    /// Each background task: `running`, `restarting`, `stopped` or `failed`.
    tasks: BTreeMap<String, crate::supervise::TaskState>,
    /// Panics since the start, for each task that had any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    panics: BTreeMap<String, u32>,
}

/// Health check: the process answers, its database does, and every
/// background task runs. No token needed.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, body = Health), (status = 503, body = Health),
        (status = 500, body = error::ErrorBody)))]
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<(axum::http::StatusCode, Json<Health>), ApiError> {
    // A cheap read proves the database answers.
    state
        .store
        .kv_get("schema")
        .await
        .map_err(ApiError::internal)?;
    let healthy = state.tasks.healthy();
    let code = if healthy {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((
        code,
        Json(Health {
            status: if healthy { "ok" } else { "degraded" }.into(),
            database: state.store.backend().into(),
            tasks: state.tasks.states(),
            panics: state.tasks.panics(),
        }),
    ))
}

/// Prometheus metrics in the text format. No token needed (like `/healthz`):
/// it carries counts and webhook ids, never payloads. Serve it on its own
/// address with `carehook serve --metrics-listen` to keep it off the API port.
#[utoipa::path(get, path = "/metrics", tag = "meta", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if !state.metrics_on_api {
        return ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "metrics are served on the --metrics-listen address, not here",
        )
        .into_response();
    }
    metrics_text(&state).await.into_response()
}

/// The metrics page, with the queue depth read now.
pub async fn metrics_text(state: &Shared) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let queue = match state.store.queue_depth(crate::time::now_ms()).await {
        Ok(q) => Some(q),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: could not read the queue depth");
            None
        }
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(queue),
    )
}

pub use crate::service::tokens::hash_token;

/// A caller that showed a valid API token: its name (`admin` for the admin
/// token), role and clinics.
pub use crate::service::tokens::Principal as Caller;

impl Caller {
    /// The caller as the service layer records an actor.
    pub fn actor(&self) -> crate::service::Actor {
        crate::service::Actor::Api(self.name.clone())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The policy layer already authenticated the token.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        Caller::from_headers(&parts.headers, state).await
    }
}

impl Caller {
    /// Who the request's bearer token belongs to.
    pub async fn from_headers(
        headers: &axum::http::HeaderMap,
        state: &AppState,
    ) -> Result<Caller, ApiError> {
        let header = headers
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
        Ok(crate::service::tokens::authenticate(state, token).await?)
    }
}
