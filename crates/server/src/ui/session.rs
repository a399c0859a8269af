//! Who is using the admin UI: sessions made by logging in with an API token,
//! the cookie that names one, and the CSRF token every form post carries.
//!
//! Decisions a reader might otherwise undo:
//! - Sessions live in this process's memory, keyed by the SHA-256 of the
//!   cookie's random id. A restart logs everyone out (they log in again with
//!   their token), which is a fair price for not adding a table and a
//!   cleanup job for something this small. With several carehook nodes
//!   behind one address, route `/ui` with sticky sessions.
//! - The session remembers the hash of the token it was opened with and
//!   checks it on every request, so revoking a token ends its UI sessions.
//! - The cookie is `HttpOnly; SameSite=Strict`, and every form post must
//!   also carry the session's CSRF token (compared in constant time); the
//!   login form, which has no session yet, uses a double-submit cookie.
//! - Expiry: 12 hours after login, or 1 hour without a request.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use carehook_core::ids::WebhookId;
use subtle::ConstantTimeEq;

use super::form::FormData;
use super::{UiError, UiState};
use crate::service::tokens::{Principal, hash_token};
use crate::time::now_ms;

pub const SESSION_COOKIE: &str = "carehook_session";
pub const LOGIN_COOKIE: &str = "carehook_login";
/// A session ends this long after login…
pub const MAX_AGE_MS: i64 = 12 * 60 * 60 * 1000;
/// …or after this long without a request.
pub const IDLE_MS: i64 = 60 * 60 * 1000;
/// More sessions than this at once is abuse, not admins; the oldest go.
const MAX_SESSIONS: usize = 10_000;

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone)]
pub struct Flash {
    /// `ok` or `error`; also the CSS class.
    pub kind: &'static str,
    pub text: String,
}

#[derive(Debug)]
struct Session {
    caller: String,
    token_hash: String,
    csrf: String,
    created_at: i64,
    last_seen: i64,
    flashes: Vec<Flash>,
    /// A signing secret to show once: (webhook, secret).
    reveal: Option<(WebhookId, String)>,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

/// A random token, URL-safe.
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

impl Sessions {
    /// Opens a session for `caller`; returns the cookie value.
    pub fn open(&self, caller: &Principal, token_hash: String) -> String {
        let id = random_token();
        let now = now_ms();
        let mut map = self.by_hash.lock().expect("sessions lock");
        map.retain(|_, s| alive(s, now));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created_at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            hash_token(&id),
            Session {
                caller: caller.name.clone(),
                token_hash,
                csrf: random_token(),
                created_at: now,
                last_seen: now,
                flashes: Vec::new(),
                reveal: None,
            },
        );
        id
    }

    pub fn close(&self, key: &str) {
        self.by_hash.lock().expect("sessions lock").remove(key);
    }

    fn touch(&self, key: &str) -> Option<(String, String, String)> {
        let now = now_ms();
        let mut map = self.by_hash.lock().expect("sessions lock");
        let s = map.get_mut(key)?;
        if !alive(s, now) {
            map.remove(key);
            return None;
        }
        s.last_seen = now;
        Some((s.caller.clone(), s.token_hash.clone(), s.csrf.clone()))
    }

    pub fn flash(&self, key: &str, kind: &'static str, text: impl Into<String>) {
        if let Some(s) = self.by_hash.lock().expect("sessions lock").get_mut(key) {
            s.flashes.push(Flash {
                kind,
                text: text.into(),
            });
        }
    }

    pub fn take_flashes(&self, key: &str) -> Vec<Flash> {
        self.by_hash
            .lock()
            .expect("sessions lock")
            .get_mut(key)
            .map(|s| std::mem::take(&mut s.flashes))
            .unwrap_or_default()
    }

    /// Keeps a new signing secret for the next page of that webhook, once.
    pub fn reveal_once(&self, key: &str, webhook: WebhookId, secret: String) {
        if let Some(s) = self.by_hash.lock().expect("sessions lock").get_mut(key) {
            s.reveal = Some((webhook, secret));
        }
    }

    pub fn take_reveal(&self, key: &str, webhook: WebhookId) -> Option<String> {
        let mut map = self.by_hash.lock().expect("sessions lock");
        let s = map.get_mut(key)?;
        match s.reveal.take() {
            Some((id, secret)) if id == webhook => Some(secret),
            other => {
                s.reveal = other;
                None
            }
        }
    }
}

fn alive(s: &Session, now: i64) -> bool {
    now - s.created_at < MAX_AGE_MS && now - s.last_seen < IDLE_MS
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
        let Some((caller, token_hash, csrf)) = state.sessions.touch(&key) else {
            return Err(ToLogin(back).into_response());
        };
        match crate::service::tokens::still_valid(&state.app, &token_hash).await {
            Ok(true) => {}
            Ok(false) => {
                state.sessions.close(&key);
                return Err(ToLogin(back).into_response());
            }
            Err(e) => return Err(UiError::from(e).into_response()),
        }
        Ok(Admin {
            key,
            caller: Principal { name: caller },
            csrf,
        })
    }
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

    #[test]
    fn sessions_expire_and_flashes_show_once() {
        let sessions = Sessions::default();
        let id = sessions.open(
            &Principal {
                name: "admin".into(),
            },
            "h".into(),
        );
        let key = hash_token(&id);
        assert!(sessions.touch(&key).is_some());
        sessions.flash(&key, "ok", "saved");
        assert_eq!(sessions.take_flashes(&key).len(), 1);
        assert!(sessions.take_flashes(&key).is_empty());
        let w = WebhookId::new();
        sessions.reveal_once(&key, w, "whsec_x".into());
        assert_eq!(sessions.take_reveal(&key, WebhookId::new()), None);
        assert_eq!(sessions.take_reveal(&key, w).as_deref(), Some("whsec_x"));
        assert_eq!(sessions.take_reveal(&key, w), None);
        sessions
            .by_hash
            .lock()
            .unwrap()
            .get_mut(&key)
            .unwrap()
            .last_seen -= IDLE_MS;
        assert!(sessions.touch(&key).is_none(), "idle too long");
        assert!(sessions.touch(&key).is_none(), "and gone");
    }

    #[test]
    fn an_empty_csrf_token_never_matches() {
        assert!(!same("", ""));
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
    }
}
