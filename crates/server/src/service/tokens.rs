//! Tokens: who a bearer token belongs to (the admin token from the
//! environment, or an API token the store keeps the SHA-256 of), and API
//! tokens made, listed and revoked. The API's extractor and the admin UI's
//! login both ask [`authenticate`], so they accept exactly the same tokens.

use base64::Engine as _;
use carehook_core::ids::TokenId;
use carehook_store::{Store, TokenAccess, TokenRow};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Actor, Context, Error, Result};
use crate::time::now_ms;

/// How often a token's `last_used_at` is written at most.
const TOUCH_EVERY_MS: i64 = 60_000;

pub use super::access::{Principal, Role};

/// Hex SHA-256 of a token: what the store keeps instead of the token.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who `token` belongs to; records the use of an API token (at most once a
/// minute, off the caller's path).
pub async fn authenticate(ctx: &Context, token: &str) -> Result<Principal> {
    let hash = hash_token(token);
    if is_admin(ctx, &hash) {
        return Ok(Principal::admin());
    }
    match ctx.store.find_token(&hash).await? {
        Some(t) => {
            touch(ctx, t.id);
            Ok(Principal::of_token(&t))
        }
        None => Err(Error::Unauthorized(
            "the API token is not valid (revoked, or mistyped)".into(),
        )),
    }
}

/// Who the token with this hash is now, if it is still good: a UI session
/// asks on every request, so revoking a token ends its sessions (and a
/// session acts with the token's role and clinics).
pub async fn holder(ctx: &Context, token_hash: &str) -> Result<Option<Principal>> {
    if is_admin(ctx, token_hash) {
        return Ok(Some(Principal::admin()));
    }
    Ok(ctx
        .store
        .find_token(token_hash)
        .await?
        .map(|t| Principal::of_token(&t)))
}

/// The token with this hash as a partner link keeps its maker: `admin` or `token:<id>`;
/// `None` if it is not (or no longer) good.
pub async fn maker_of(ctx: &Context, token_hash: &str) -> Result<Option<String>> {
    if is_admin(ctx, token_hash) {
        return Ok(Some("admin".into()));
    }
    Ok(ctx
        .store
        .find_token(token_hash)
        .await?
        .map(|t| format!("token:{}", t.id)))
}

fn is_admin(ctx: &Context, hash: &str) -> bool {
    !hash.is_empty() && bool::from(hash.as_bytes().ct_eq(ctx.admin_token_hash.as_bytes()))
}

/// Records that a token was used, at most once a minute per token and off
/// the request's path (a lost touch only makes `last_used_at` a minute old).
fn touch(ctx: &Context, id: TokenId) {
    let now = now_ms();
    {
        let mut touches = ctx.token_touches.lock().expect("touch lock");
        match touches.get(&id) {
            Some(at) if now - at < TOUCH_EVERY_MS => return,
            _ => {
                touches.insert(id, now);
            }
        }
    }
    let store = ctx.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.touch_token(id, now).await {
            tracing::warn!(token = %id, error = %e, "could not record a token's use");
        }
    });
}

pub fn generate_token() -> anyhow::Result<String> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(format!(
        "chk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// A token's name, trimmed: 1 to 100 characters, no control characters.
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

/// What a new token may do, as asked: a role (default `owner`), the
/// clinics it is limited to (`None` or empty: every clinic), and whether it
/// sees bodies in the log (default: yes, except for a viewer).
pub fn check_access(
    role: Option<&str>,
    clinics: Option<Vec<String>>,
    bodies: Option<bool>,
) -> Result<TokenAccess> {
    let role = match role {
        None => Role::Owner,
        Some(r) => Role::parse(r).ok_or_else(|| {
            Error::invalid(
                "role",
                format!("role must be owner, admin, editor, viewer or ingest, not \"{r}\""),
            )
        })?,
    };
    let clinics = match clinics {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) => Some(
            carehook_core::clinics::check(&c)
                .map_err(|(i, m)| Error::invalid(format!("clinics[{i}]"), m))?,
        ),
    };
    Ok(TokenAccess {
        role: role.as_str().to_string(),
        clinics,
        bodies: bodies.unwrap_or(role != Role::Viewer),
    })
}

/// Makes an API token in `store` (also used offline by `carehook tokens
/// create --database-url`); answers its row and the token, shown once.
pub async fn create_token(
    store: &dyn Store,
    name: &str,
    access: &TokenAccess,
) -> anyhow::Result<(TokenRow, String)> {
    let token = generate_token()?;
    let id = TokenId::new();
    let now = now_ms();
    store
        .insert_scoped_token(id, name, &hash_token(&token), access, now)
        .await?;
    Ok((
        TokenRow {
            id,
            name: name.to_string(),
            role: access.role.clone(),
            clinics: access.clinics.clone(),
            bodies: access.bodies,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        },
        token,
    ))
}

/// A new API token named `name`, with what it may do.
pub async fn create(
    ctx: &Context,
    actor: &Actor,
    name: &str,
    access: &TokenAccess,
) -> Result<(TokenRow, String)> {
    let name = check_name(name).map_err(|m| Error::invalid("name", m))?;
    let (row, token) = create_token(&*ctx.store, &name, access)
        .await
        .map_err(Error::internal)?;
    tracing::info!(token = %row.id, name = %row.name, role = %row.role, by = %actor, "API token made");
    let details = serde_json::json!({ "after": {
        "id": row.id, "name": row.name, "role": row.role, "clinics": row.clinics, "bodies": row.bodies
    } });
    let resource = format!("token/{}", row.id);
    super::audit::record(&*ctx.store, actor, "token.create", &resource, "ok", details).await;
    Ok((row, token))
}

pub async fn list(ctx: &Context) -> Result<Vec<TokenRow>> {
    Ok(ctx.store.list_tokens().await?)
}

/// Revokes an API token; its UI sessions end on their next request.
pub async fn revoke(ctx: &Context, actor: &Actor, id: TokenId) -> Result<()> {
    if !ctx.store.revoke_token(id, now_ms()).await? {
        return Err(Error::NotFound("active token"));
    }
    ctx.token_touches.lock().expect("touch lock").remove(&id);
    tracing::info!(token = %id, by = %actor, "API token revoked");
    let details =
        serde_json::json!({ "before": { "revoked": false }, "after": { "revoked": true } });
    let resource = format!("token/{id}");
    super::audit::record(&*ctx.store, actor, "token.revoke", &resource, "ok", details).await;
    Ok(())
}
