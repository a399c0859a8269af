//! The OpenAPI 3 document: the base (title, auth, tags) here; every path and
//! schema comes from the handlers' `#[utoipa::path]` and the types'
//! `ToSchema`, collected as routes are added (see [`super::documented_routes`]).

use std::sync::Arc;

use axum::{Extension, Json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, OpenApiBuilder};

pub fn base() -> OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        info(
            title = "carehook",
            description = "A webhook server for clinics. Every call under /api/v1 needs `Authorization: Bearer <token>` (the admin token, or one made with `carehook tokens create`). Errors are `{\"error\":{\"code\",\"message\",\"field\"?}}`.",
        ),
        security(("bearer" = [])),
        components(schemas(super::error::ErrorBody)),
        tags(
            (name = "webhooks", description = "Webhooks: what to send where, on which events"),
            (name = "deliveries", description = "The delivery log, and retries"),
            (name = "events", description = "Events in, and the event catalog"),
            (name = "tokens", description = "API tokens"),
            (name = "presets", description = "Ready-made webhooks for the guide's integrations"),
            (name = "patient data", description = "A patient's erasure, purges, and the audit trail"),
            (name = "meta", description = "Health, metrics and this document"),
        )
    )]
    struct Base;
    let mut doc = <Base as utoipa::OpenApi>::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token"))
                .build(),
        ),
    );
    doc
}

/// The finished document as JSON, ready to serve.
pub fn finish(doc: OpenApi) -> serde_json::Value {
    let doc = OpenApiBuilder::from(doc).build();
    let mut doc = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    super::clinic_doc::add_to(&mut doc);
    doc
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3 document", body = Object)))]
pub async fn openapi_json(
    Extension(doc): Extension<Arc<serde_json::Value>>,
) -> Json<serde_json::Value> {
    Json((*doc).clone())
}
