//! Partner links through the API: made (the link shown once), listed (never the secret) and
//! revoked. The rules are in `service::partner`; the page a link opens is `ui::partner`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use carehook_core::ids::WebhookId;
use carehook_store::PartnerLinkRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiPath, ApiResult, ErrorBody, LaterJson};
use super::{AppState, Caller};
use crate::service::access;
use crate::service::partner::{self, NewLink};
use crate::time::{now_ms, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPartnerLink {
    /// How long the link works, 1 to 90 days; default 7.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 90, example = 7)]
    expires_in_days: Option<i64>,
    /// Whom it is for, as the list shows it: `Pharmacy IT team`.
    #[serde(default)]
    #[schema(max_length = 100)]
    label: Option<String>,
    /// Show request and response bodies and patient names; default false (masked). Only a
    /// caller allowed bodies may set it.
    #[serde(default)]
    show_bodies: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PartnerLink {
    id: Uuid,
    webhook_id: Uuid,
    label: Option<String>,
    show_bodies: bool,
    /// Who made it.
    created_by: String,
    created_at: String,
    expires_at: String,
    revoked_at: Option<String>,
    /// `active`, `expired`, `revoked`, or `ended` (its webhook moved to other clinics, or its
    /// maker may no longer share it).
    state: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedPartnerLink {
    #[serde(flatten)]
    link: PartnerLink,
    /// The link to give the partner, shown only in this answer: no login needed to open it.
    url: String,
    /// The same link's path on this server (`/partner/…`).
    path: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct PartnerLinkList {
    /// Newest first.
    items: Vec<PartnerLink>,
}

fn view(l: &PartnerLinkRow, now: i64, ended: bool) -> PartnerLink {
    PartnerLink {
        id: l.id,
        webhook_id: l.webhook_id.into(),
        label: l.label.clone(),
        show_bodies: l.show_bodies,
        created_by: l.created_by.clone(),
        created_at: rfc3339(l.created_at),
        expires_at: rfc3339(l.expires_at),
        revoked_at: l.revoked_at.map(rfc3339),
        state: if l.revoked_at.is_some() {
            "revoked"
        } else if l.expires_at <= now {
            "expired"
        } else if ended {
            "ended"
        } else {
            "active"
        }
        .into(),
    }
}

/// Makes a read-only link that shows this webhook's delivery log (bodies masked unless
/// `show_bodies`) to the team that runs the receiving service, without a login. The answer
/// is the only time the link is shown.
#[utoipa::path(post, path = "/webhooks/{id}/partner-links", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = NewPartnerLink,
    responses((status = 201, body = CreatedPartnerLink), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<WebhookId>,
    body: LaterJson,
) -> ApiResult<(StatusCode, Json<CreatedPartnerLink>)> {
    access::webhook(&state, &caller, id).await?;
    let body: NewPartnerLink = body.parse_or_default()?;
    let new = NewLink {
        expires_in_days: body.expires_in_days,
        label: body.label,
        show_bodies: body.show_bodies,
    };
    // The token that asks: the link works only while it could still make it.
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or_default();
    let maker =
        crate::service::tokens::maker_of(&state, &crate::service::tokens::hash_token(token))
            .await?
            .ok_or_else(|| {
                super::error::ApiError::unauthorized(
                    "the API token is not valid (revoked, or mistyped)",
                )
            })?;
    let (row, secret) = partner::create(&state, &caller, &caller.actor(), &maker, id, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedPartnerLink {
            link: view(&row, now_ms(), false),
            url: partner::link_url(&headers, &secret),
            path: format!("{}{secret}", partner::PATH_PREFIX),
        }),
    ))
}

/// The webhook's partner links, revoked and expired ones too (never the links themselves).
#[utoipa::path(get, path = "/webhooks/{id}/partner-links", tag = "webhooks", params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = PartnerLinkList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<WebhookId>,
) -> ApiResult<Json<PartnerLinkList>> {
    let rows = partner::list(&state, &caller, id).await?;
    let now = now_ms();
    let mut items = Vec::with_capacity(rows.len());
    for l in &rows {
        items.push(view(l, now, partner::ended(&state, l, now).await?));
    }
    Ok(Json(PartnerLinkList { items }))
}

/// Revokes a partner link: its page stops working at once.
#[utoipa::path(delete, path = "/webhooks/{id}/partner-links/{link_id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"), ("link_id" = Uuid, Path, description = "Partner link id")),
    responses((status = 204, description = "Revoked"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "No such webhook or active link", body = ErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, link)): ApiPath<(WebhookId, Uuid)>,
) -> ApiResult<StatusCode> {
    partner::revoke(&state, &caller, &caller.actor(), id, link).await?;
    Ok(StatusCode::NO_CONTENT)
}
