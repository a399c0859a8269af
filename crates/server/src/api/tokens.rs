//! API tokens: made, listed and revoked through the API (or offline by
//! `carehook tokens create --database-url`). A token is shown once, when it
//! is made; the store keeps its SHA-256. The admin token from the
//! environment is not one of these and cannot be revoked here.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use carehook_core::ids::TokenId;
use carehook_store::TokenRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiJson, ApiPath, ApiResult, ErrorBody};
use super::{AppState, Caller};
use crate::service::tokens::{self, Role};
use crate::time::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

/// A new random token: `chk_` and 43 characters of base64url (256 bits).

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// Who or what uses it: `zapier`, `billing-sync`.
    #[schema(
        example = "zapier",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    name: String,
    /// What it may do (see docs/access.md); default `owner`.
    #[serde(default)]
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
    /// The clinics (their `clinic_id`) it is limited to; left out or empty: every clinic.
    #[serde(default, deserialize_with = "clinic_list")]
    #[schema(value_type = Option<Vec<ClinicId>>, example = json!(["2"]))]
    clinics: Option<Vec<String>>,
    /// Whether it sees request and response bodies and event data in the
    /// delivery log; default: yes, except for a `viewer`.
    #[serde(default)]
    bodies: Option<bool>,
}

/// A clinic, by its `clinic_id` (its schema in the document; a JSON number is taken too).
#[allow(dead_code)]
#[derive(Debug, ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "2")]
pub struct ClinicId(String);

/// Clinic ids as text or numbers; `null` is the same as none (every clinic).
pub(super) fn clinic_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => carehook_core::clinics::deserialize(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// The clinics it is limited to; null: every clinic.
    pub clinics: Option<Vec<String>>,
    /// Whether it sees bodies and event data in the delivery log.
    pub bodies: bool,
    pub created_at: String,
    /// Updated at most once a minute.
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedToken {
    #[serde(flatten)]
    info: Token,
    /// The token itself, shown only in this answer: `Authorization: Bearer <token>`.
    token: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct TokenList {
    items: Vec<Token>,
}

fn view(t: &TokenRow) -> Token {
    Token {
        id: t.id.into(),
        name: t.name.clone(),
        role: Role::parse(&t.role).unwrap_or(Role::Viewer),
        clinics: t.clinics.clone(),
        bodies: t.bodies,
        created_at: rfc3339(t.created_at),
        last_used_at: t.last_used_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
    }
}

/// Makes an API token with a role, optionally limited to clinics. The
/// answer is the only time the token is shown.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let access = tokens::check_access(body.role.as_deref(), body.clinics, body.bodies)?;
    let (row, token) = tokens::create(&state, &caller.actor(), &body.name, &access).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: view(&row),
            token,
        }),
    ))
}

/// Every API token, revoked ones too (never the tokens themselves).
#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody)))]
async fn list(State(state): State<AppState>, _: Caller) -> ApiResult<Json<TokenList>> {
    let rows = tokens::list(&state).await?;
    Ok(Json(TokenList {
        items: rows.iter().map(view).collect(),
    }))
}

/// Revokes a token: it stops working at once.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens", params(("id" = Uuid, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, description = "No such token, or already revoked", body = ErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<TokenId>,
) -> ApiResult<StatusCode> {
    tokens::revoke(&state, &caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
