//! API tokens: made, listed and revoked through the API (or offline by
//! `carehook tokens create --database-url`). A token is shown once, when it
//! is made; the store keeps its SHA-256. The admin token from the
//! environment is not one of these and cannot be revoked here.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use carehook_store::{Store, TokenRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};
use super::{AppState, Caller, hash_token};
use crate::time::{now_ms, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

/// A new random token: `chk_` and 43 characters of base64url (256 bits).
pub fn generate_token() -> anyhow::Result<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(format!(
        "chk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// Checks a token's name: 1 to 100 characters, no control characters.
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("a token's name is 1 to 100 characters, e.g. \"zapier\"".into());
    }
    if name.chars().any(char::is_control) {
        return Err("a token's name may not hold control characters".into());
    }
    Ok(name.to_string())
}

/// Makes a token and stores its hash; the one place tokens are made (the API
/// and the offline CLI both call it).
pub async fn create_token(store: &dyn Store, name: &str) -> anyhow::Result<(TokenRow, String)> {
    let token = generate_token()?;
    let id = Uuid::now_v7();
    let now = now_ms();
    store
        .insert_token(id, name, &hash_token(&token), now)
        .await?;
    Ok((
        TokenRow {
            id,
            name: name.to_string(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        },
        token,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// Who or what uses it: `zapier`, `billing-sync`.
    #[schema(example = "zapier", min_length = 1, max_length = 100)]
    name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    pub id: Uuid,
    pub name: String,
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
        id: t.id,
        name: t.name.clone(),
        created_at: rfc3339(t.created_at),
        last_used_at: t.last_used_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
    }
}

/// Makes an API token. The answer is the only time it is shown.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let name = check_name(&body.name).map_err(|m| ApiError::invalid("name", m))?;
    let (row, token) = create_token(&*state.store, &name)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(token = %row.id, name = %row.name, by = %caller.name, "API token made");
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
    let rows = state.store.list_tokens().await?;
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
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    if !state.store.revoke_token(id, now_ms()).await? {
        return Err(ApiError::not_found("active token"));
    }
    state.token_touches.lock().expect("touch lock").remove(&id);
    tracing::info!(token = %id, by = %caller.name, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
