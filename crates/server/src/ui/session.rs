//! Who is using the admin UI: sessions opened by logging in (with an e-mail address and
//! password, or with an API token), the cookie that names one, and the CSRF token every form
//! post carries.
//!
//! Decisions a reader might otherwise undo:
//! - Sessions are rows of the database (`ui_sessions`), keyed by the SHA-256 of the cookie's
//!   random id: they survive a restart and work on every node behind one address, and a
//!   stolen table opens none. Flash messages and a secret to reveal once live on the row too
//!   (the secret sealed with the master key), so the page after a redirect finds them on
//!   whichever node serves it.
//! - A session remembers whom it belongs to (an account, or the hash of the token it was
//!   opened with) and reads that again on every request: disabling an account or revoking a
//!   token ends its sessions, and a changed role applies at once.
//! - The cookie is `HttpOnly; SameSite=Strict`, and every form post must also carry the
//!   session's CSRF token (compared in constant time); the login form, which has no session
//!   yet, uses a double-submit cookie.
//! - Expiry: 12 hours after login, or 1 hour without a request.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use carehook_core::ids::WebhookId;
use carehook_store::{SessionRow, Store};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::form::FormData;
use super::{UiError, UiState};
use crate::api::policy::Rule;
use crate::service::access::{self, Role};
use crate::service::tokens::{Principal, hash_token};
use crate::time::now_ms;
use crate::vault::Vault;

pub const SESSION_COOKIE: &str = "carehook_session";
pub const LOGIN_COOKIE: &str = "carehook_login";
/// A session ends this long after login…
pub const MAX_AGE_MS: i64 = 12 * 60 * 60 * 1000;
/// …or after this long without a request.
pub const IDLE_MS: i64 = 60 * 60 * 1000;

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// `ok` or `error`; also the CSS class.
    pub kind: String,
    pub text: String,
}

/// A signing secret to show once, sealed on the session's row.
#[derive(Debug, Serialize, Deserialize)]
struct Reveal {
    webhook: WebhookId,
    secret: String,
}

/// The sessions, in the database.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    vault: Vault,
    /// Held across each read-change-write of a session's flashes and reveal, so requests at
    /// once on this node do not overwrite each other's (two nodes may still, rarely).
    extras_gate: Arc<tokio::sync::Mutex<()>>,
}

/// A random token, URL-safe.
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Whom a new session belongs to.
#[derive(Debug, Clone)]
pub enum Owner {
    User(String),
    /// The hash of the API token logged in with.
    Token(String),
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, vault: Vault) -> Sessions {
        Sessions {
            store,
            vault,
            extras_gate: Arc::default(),
        }
    }

    /// Opens a session; returns the cookie's value.
    pub async fn open(&self, owner: Owner) -> Result<String, UiError> {
        let id = random_token();
        let now = now_ms();
        // Now and then, sweep the expired ones (a session is also refused when expired).
        if now % 16 == 0 {
            let _ = self
                .store
                .delete_expired_sessions(now - MAX_AGE_MS, now - IDLE_MS)
                .await;
        }
        let (user_id, token_hash) = match owner {
            Owner::User(u) => (Some(u), None),
            Owner::Token(t) => (None, Some(t)),
        };
        self.store
            .insert_session(&SessionRow {
                key: hash_token(&id),
                user_id,
                token_hash,
                csrf: random_token(),
                created_at: now,
                last_seen: now,
                flashes: "[]".into(),
                reveal: None,
            })
            .await
            .map_err(UiError::internal)?;
        Ok(id)
    }

    pub async fn close(&self, key: &str) {
        if let Err(e) = self.store.delete_session(key).await {
            tracing::warn!(error = %e, "could not end a UI session");
        }
    }

    async fn touch(&self, key: &str) -> Result<Option<SessionRow>, UiError> {
        let now = now_ms();
        self.store
            .touch_session(key, now, now - MAX_AGE_MS, now - IDLE_MS)
            .await
            .map_err(UiError::internal)
    }

    async fn extras(&self, key: &str) -> Option<(Vec<Flash>, Option<String>)> {
        match self.store.session_extras(key).await {
            Ok(Some((flashes, reveal))) => {
                Some((serde_json::from_str(&flashes).unwrap_or_default(), reveal))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not read a UI session");
                None
            }
        }
    }

    async fn save(&self, key: &str, flashes: &[Flash], reveal: Option<&str>) {
        let flashes = serde_json::to_string(flashes).unwrap_or_else(|_| "[]".into());
        if let Err(e) = self.store.set_session_extras(key, &flashes, reveal).await {
            tracing::warn!(error = %e, "could not write a UI session");
        }
    }

    pub async fn flash(&self, key: &str, kind: &'static str, text: impl Into<String>) {
        let _gate = self.extras_gate.lock().await;
        if let Some((mut flashes, reveal)) = self.extras(key).await {
            // A page never shows more than a few; a session that piles them up loses the oldest.
            if flashes.len() >= 20 {
                flashes.remove(0);
            }
            flashes.push(Flash {
                kind: kind.to_string(),
                text: text.into(),
            });
            self.save(key, &flashes, reveal.as_deref()).await;
        }
    }

    pub async fn take_flashes(&self, key: &str) -> Vec<Flash> {
        let _gate = self.extras_gate.lock().await;
        match self.extras(key).await {
            Some((flashes, reveal)) if !flashes.is_empty() => {
                self.save(key, &[], reveal.as_deref()).await;
                flashes
            }
            _ => Vec::new(),
        }
    }

    /// Keeps a new signing secret for the next page of that webhook, once.
    pub async fn reveal_once(&self, key: &str, webhook: WebhookId, secret: String) {
        let _gate = self.extras_gate.lock().await;
        if let Some((flashes, _)) = self.extras(key).await {
            let sealed = self
                .vault
                .seal(&serde_json::to_string(&Reveal { webhook, secret }).unwrap_or_default());
            self.save(key, &flashes, Some(&sealed)).await;
        }
    }

    pub async fn take_reveal(&self, key: &str, webhook: WebhookId) -> Option<String> {
        let _gate = self.extras_gate.lock().await;
        let (flashes, sealed) = self.extras(key).await?;
        let reveal: Reveal = serde_json::from_str(&self.vault.open_secret(&sealed?).ok()?).ok()?;
        if reveal.webhook != webhook {
            return None;
        }
        self.save(key, &flashes, None).await;
        Some(reveal.secret)
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a cookie the browser keeps from script and other sites.
/// `Secure` when the request came over HTTPS (a TLS proxy in front).
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: i64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie values are URL-safe base64")
}

pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

pub fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A logged-in admin: a live session whose token is still valid.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The session's key in [`Sessions`].
    pub key: String,
    /// `admin`, or the API token's name.
    pub caller: Principal,
    pub csrf: String,
    /// The account the session belongs to; `None` for one opened with an API token.
    pub user_id: Option<String>,
    /// The hash of the API token the session was opened with; `None` for an account's.
    pub token_hash: Option<String>,
}

/// Without a session: to the login page, coming back here afterwards.
#[derive(Debug)]
pub struct ToLogin(String);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        let next: String = form_urlencoded::byte_serialize(self.0.as_bytes()).collect();
        Redirect::to(&format!("/ui/login?next={next}")).into_response()
    }
}

impl Admin {
    /// Who the session acts for, as a partner link keeps its maker (`user:<id>`, `token:<id>`
    /// or `admin`): `None` if the token is no longer good.
    pub async fn maker(&self, state: &UiState) -> Result<Option<String>, UiError> {
        if let Some(id) = &self.user_id {
            return Ok(Some(format!("user:{id}")));
        }
        match &self.token_hash {
            Some(hash) => Ok(crate::service::tokens::maker_of(&state.app, hash).await?),
            None => Ok(None),
        }
    }

    /// The admin as the service layer records who acted.
    pub fn actor(&self) -> crate::service::Actor {
        crate::service::Actor::Ui(self.caller.name.clone())
    }
}

impl FromRequestParts<UiState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Self, Response> {
        // Only a page is worth coming back to after logging in.
        // (Nested under /ui, the router sees the path without it.)
        let back = if parts.method == axum::http::Method::GET {
            parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map_or(&parts.uri, |o| &o.0)
                .path_and_query()
                .map_or("/ui".to_string(), |p| p.to_string())
        } else {
            "/ui".to_string()
        };
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ToLogin(back).into_response());
        };
        let key = hash_token(id);
        let session = match state.sessions.touch(&key).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(ToLogin(back).into_response()),
            Err(e) => return Err(e.into_response()),
        };
        // The account's (or token's) role and clinics as they are now, not as at login.
        let caller = match holder(state, &session).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                state.sessions.close(&key).await;
                return Err(ToLogin(back).into_response());
            }
            Err(e) => return Err(e.into_response()),
        };
        let csrf = session.csrf;
        let user_id = session.user_id;
        let token_hash = session.token_hash;
        let post =
            parts.method != axum::http::Method::GET && parts.method != axum::http::Method::HEAD;
        if let Err(e) = allowed(state, &caller, parts.uri.path(), post).await {
            return Err(e.into_response());
        }
        Ok(Admin {
            key,
            caller,
            csrf,
            user_id,
            token_hash,
        })
    }
}

/// Who a session acts as now: its account, unless disabled or gone; or its token, unless
/// revoked.
async fn holder(state: &UiState, s: &SessionRow) -> Result<Option<Principal>, UiError> {
    if let Some(user) = &s.user_id {
        let u = state
            .app
            .store
            .get_user(user)
            .await
            .map_err(UiError::internal)?;
        return Ok(u
            .filter(|u| u.disabled_at.is_none())
            .map(|u| crate::service::users::principal(&u)));
    }
    match &s.token_hash {
        Some(hash) => Ok(crate::service::tokens::holder(&state.app, hash).await?),
        None => Ok(None),
    }
}

/// Which roles may open a page (GET) or send a form (POST) of the admin UI: the UI's part
/// of the policy (the API's is `api/policy.rs`). Tokens, users and the audit trail as in the API;
/// the "try it" page writes clinic records, which belong to owners and admins.
pub fn ui_rule(path: &str, post: bool) -> Rule {
    const READERS: &[Role] = &[Role::Owner, Role::Admin, Role::Editor, Role::Viewer];
    const EDITORS: &[Role] = &[Role::Owner, Role::Admin, Role::Editor];
    match path.trim_start_matches('/').split('/').next().unwrap_or("") {
        "tokens" | "users" => Rule::Install(&[Role::Owner]),
        // Everyone's own password and second factor (a viewer too).
        "account" => Rule::Scoped(READERS),
        "audit" | "try" => Rule::Install(&[Role::Owner, Role::Admin]),
        "logout" => Rule::Scoped(READERS),
        _ if post => Rule::Scoped(EDITORS),
        _ => Rule::Scoped(READERS),
    }
}

/// Refuses what the caller's role may not do here (403), and another clinic's webhook or
/// delivery named in the path (404, as a missing one) — for every handler at once.
async fn allowed(state: &UiState, who: &Principal, path: &str, post: bool) -> Result<(), UiError> {
    if who.role == Role::Ingest {
        return Err(UiError::Denied(
            "An ingest token only pushes events; it cannot use the admin UI.".into(),
        ));
    }
    if !ui_rule(path, post).allows(who.role, who.is_limited()) {
        return Err(UiError::Denied(format!(
            "Your role ({}{}) may not do this.",
            who.role,
            if who.is_limited() {
                ", limited to some clinics"
            } else {
                ""
            }
        )));
    }
    if !who.is_limited() {
        return Ok(());
    }
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next()) {
        (Some("webhooks"), Some(id)) => {
            if let Ok(id) = id.parse::<WebhookId>() {
                access::webhook(&state.app, who, id).await?;
            }
        }
        (Some("deliveries"), Some(id)) => {
            if let Ok(id) = id.parse::<carehook_core::ids::DeliveryId>() {
                access::delivery(&state.app, who, id).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A form post from a logged-in admin, with its CSRF token checked: the
/// extractor every state-changing UI handler takes.
#[derive(Debug)]
pub struct Posted {
    pub admin: Admin,
    pub form: FormData,
}

impl FromRequest<UiState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &UiState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, super::MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                UiError::BadRequest("the form is larger than carehook accepts".into())
                    .into_response()
            })?;
        let form = FormData::parse(&bytes);
        if !same(form.get("csrf").unwrap_or(""), &admin.csrf) {
            return Err(UiError::Forbidden.into_response());
        }
        Ok(Posted { admin, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; carehook_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "carehook"), None);
    }

    /// Requests at once on one session (a form post and the page it leads to, two tabs) each
    /// leave their message: none is lost between another's read and write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flashes_said_at_once_are_all_kept() {
        let store = carehook_store::connect("sqlite::memory:").await.unwrap();
        let sessions = Sessions::new(store, Vault::from_key(&[7; 32]));
        let id = sessions
            .open(Owner::Token("a-token-hash".into()))
            .await
            .unwrap();
        let key = crate::service::tokens::hash_token(&id);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (sessions, key) = (sessions.clone(), key.clone());
                tokio::spawn(async move { sessions.flash(&key, "ok", format!("saved {i}")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let mut said: Vec<String> = sessions
            .take_flashes(&key)
            .await
            .into_iter()
            .map(|f| f.text)
            .collect();
        said.sort();
        let mut expected: Vec<String> = (0..16).map(|i| format!("saved {i}")).collect();
        expected.sort();
        assert_eq!(said, expected);
        assert!(sessions.take_flashes(&key).await.is_empty(), "taken once");
    }

    #[test]
    fn an_empty_csrf_token_never_matches() {
        assert!(!same("", ""));
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
    }
}
