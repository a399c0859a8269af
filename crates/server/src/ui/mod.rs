//! The admin UI under `/ui`: server-rendered HTML from templates compiled
//! into the binary (askama, which HTML-escapes every value unless told
//! otherwise, and nothing here tells it otherwise), one stylesheet and one
//! small script embedded too. No page loads anything from another origin,
//! and the Content-Security-Policy header says so to the browser.
//!
//! Every change or try goes through [`crate::service`], as the API's do:
//! the same validation, sealing, registry update and error text.
//!
//! - [`session`]: login with an API token (checked by
//!   [`crate::service::tokens::authenticate`]), the session cookie, CSRF.
//! - [`form`]: the webhook editor's fields to and from the API's JSON.
//! - pages: [`dashboard`], [`webhooks`], [`deliveries`], [`catalog`], and [`users`] (the
//!   owners' Users page and everyone's "Your account").
//! - [`partner`]: the public, read-only page a partner link opens (`/partner/…`).

mod audit;
mod catalog;
mod dashboard;
mod deliveries;
pub mod form;
mod partner;
pub use partner::FAILURES_PER_MINUTE as PARTNER_FAILURES_PER_MINUTE;
mod replay;
pub mod session;
mod tools;
mod users;
mod webhooks;

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::api::AppState;
use session::{Admin, Flash, LOGIN_COOKIE, SESSION_COOKIE, Sessions};

/// Largest form the UI accepts (a webhook with a long body template).
pub const MAX_FORM_BYTES: usize = 512 * 1024;

/// What every UI handler can reach: the API's state and the sessions.
#[derive(Debug, Clone)]
pub struct UiState {
    pub app: AppState,
    pub sessions: Arc<Sessions>,
}

pub fn router(app: AppState) -> Router {
    let sessions = Arc::new(Sessions::new(
        app.store.clone(),
        app.registry.vault().clone(),
    ));
    let state = UiState { app, sessions };
    let partner = partner::router(state.clone());
    let ui = Router::new()
        .route("/", get(dashboard::page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/{name}", get(asset))
        .route("/events", get(catalog::page))
        .route("/audit", get(audit::page))
        .merge(webhooks::router())
        .merge(deliveries::router())
        .merge(tools::router())
        .merge(users::router())
        .merge(replay::router());
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .nest("/ui", ui)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
        .merge(partner)
}

/// Every UI answer: only this server's own resources, never framed, not
/// cached (pages show patient data and secrets shown once).
async fn security_headers(req: axum::extract::Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/ui/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, mime) = match name.as_str() {
        "ui.css" => (
            include_str!("../../assets/ui.css"),
            "text/css; charset=utf-8",
        ),
        "ui.js" => (
            include_str!("../../assets/ui.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return UiError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// An id in a page's path (`/ui/webhooks/{id}`): one that does not parse is a page that does
/// not exist, shown as the not-found page, not as the path extractor's plain-text rejection.
#[derive(Debug)]
pub struct Id<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Id<T>
where
    S: Send + Sync,
    T: std::str::FromStr + Send,
{
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(text) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| UiError::NotFound)?;
        text.parse().map(Id).map_err(|_| UiError::NotFound)
    }
}

/// What the layout needs on every page.
#[derive(Debug)]
pub struct Page {
    pub title: String,
    /// Which nav entry is current.
    pub nav: &'static str,
    pub csrf: String,
    pub caller: String,
    /// The caller's role, for "who am I".
    pub role: &'static str,
    /// Whether the caller may change anything (a viewer may not: no edit buttons).
    pub can_edit: bool,
    /// Whether the caller may see owners' pages (users, API tokens).
    pub owner: bool,
    pub flashes: Vec<Flash>,
}

impl Page {
    pub async fn new(
        state: &UiState,
        admin: &Admin,
        title: impl Into<String>,
        nav: &'static str,
    ) -> Page {
        Page {
            title: title.into(),
            nav,
            csrf: admin.csrf.clone(),
            caller: admin.caller.name.clone(),
            role: admin.caller.role.as_str(),
            can_edit: admin.caller.role != crate::service::access::Role::Viewer,
            // Users and tokens belong to the whole install: an owner limited to clinics
            // is refused them, so gets no link either.
            owner: admin.caller.role == crate::service::access::Role::Owner
                && !admin.caller.is_limited(),
            flashes: state.sessions.take_flashes(&admin.key).await,
        }
    }
}

/// Renders a template into an HTML answer.
pub fn html(t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => UiError::internal(e).into_response(),
    }
}

/// What can go wrong on a page, as a page.
#[derive(Debug)]
pub enum UiError {
    NotFound,
    /// A form post without the session's CSRF token.
    Forbidden,
    /// The session's role or clinics do not allow this.
    Denied(String),
    BadRequest(String),
    Internal,
}

impl UiError {
    pub fn internal(e: impl std::fmt::Display) -> UiError {
        tracing::error!(error = %e, "internal error in the admin UI");
        UiError::Internal
    }
}

impl From<crate::service::Error> for UiError {
    fn from(e: crate::service::Error) -> Self {
        use crate::service::Error;
        match e {
            Error::NotFound(_) => UiError::NotFound,
            Error::Forbidden(m) => UiError::Denied(m),
            // Logged where it happened.
            Error::Internal => UiError::Internal,
            e => UiError::BadRequest(e.message()),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            UiError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here; it may have been deleted.",
            ),
            UiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was not sent from a carehook page of your session (its CSRF token is missing or stale). Go back, reload the page and try again.",
            ),
            UiError::Denied(m) => (StatusCode::FORBIDDEN, "Not allowed", m.as_str()),
            UiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "That did not work", m.as_str()),
            UiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "carehook hit an internal error; its log says more.",
            ),
        };
        let body = ErrorPage { title, message }
            .render()
            .unwrap_or_else(|_| title.to_string());
        (status, Html(body)).into_response()
    }
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: String,
    /// Filled in when the code of a second factor is asked for.
    email: String,
    ask_code: bool,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only a path of this UI is a place to go back to (no open redirect), and
/// only one a `Location` header can carry: visible ASCII, no backslash (a
/// control character would make the redirect itself fail). Anything else
/// goes to `/ui`.
fn safe_next(next: Option<&str>) -> String {
    let of_this_ui = |n: &str| {
        n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?") || n.starts_with("/ui#")
    };
    match next {
        Some(n)
            if of_this_ui(n)
                && n.len() <= 2048
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_string()
        }
        _ => "/ui".to_string(),
    }
}

async fn login_page(headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    let csrf = session::random_token();
    let page = LoginPage {
        csrf: csrf.clone(),
        next: safe_next(q.next.as_deref()),
        error: String::new(),
        email: String::new(),
        ask_code: false,
    };
    let mut resp = html(&page);
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            LOGIN_COOKIE,
            &csrf,
            "/ui/login",
            3600,
            session::is_https(&headers),
        ),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    /// The TOTP code, for an account with a second factor.
    #[serde(default)]
    code: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// The client's address (the connection's peer), for counting failed logins per address.
struct ClientAddr(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string()),
        ))
    }
}

/// A login answer that opens `owner`'s session and goes on to `next`.
async fn logged_in(
    state: &UiState,
    owner: session::Owner,
    who: crate::service::Actor,
    next: &str,
    https: bool,
) -> Response {
    crate::service::audit::record(
        &*state.app.store,
        &who,
        "login",
        "ui",
        "ok",
        serde_json::json!({}),
    )
    .await;
    let id = match state.sessions.open(owner).await {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let mut resp = Redirect::to(&safe_next(Some(next))).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, &id, "/", session::MAX_AGE_MS / 1000, https),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(LOGIN_COOKIE, "", "/ui/login", 0, https),
    );
    resp
}

/// The login page again, with an error and the status to answer.
async fn login_refused(
    state: &UiState,
    f: LoginForm,
    status: StatusCode,
    error: String,
    ask_code: bool,
) -> Response {
    // Who tried is not written down: a wrong address or token must not land in the log.
    let who = crate::service::Actor::System("unknown (failed UI login)");
    crate::service::audit::record(
        &*state.app.store,
        &who,
        "login.failed",
        "ui",
        "denied",
        serde_json::json!({}),
    )
    .await;
    let page = LoginPage {
        csrf: f.csrf,
        next: safe_next(Some(&f.next)),
        error,
        email: if ask_code { f.email } else { String::new() },
        ask_code,
    };
    let mut resp = html(&page);
    *resp.status_mut() = status;
    resp
}

async fn login(
    State(state): State<UiState>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
    Form(f): Form<LoginForm>,
) -> Response {
    // Double submit: the form's token must match the cookie set with it.
    let cookie = session::cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if !session::same(&f.csrf, cookie) {
        return UiError::Forbidden.into_response();
    }
    let https = session::is_https(&headers);
    let token = f.token.trim().to_string();
    if !token.is_empty() {
        return match crate::service::tokens::authenticate(&state.app, &token).await {
            Ok(caller) if caller.role == crate::service::access::Role::Ingest => {
                login_refused(
                    &state,
                    f,
                    StatusCode::FORBIDDEN,
                    "An ingest token only pushes events; it cannot log in here.".into(),
                    false,
                )
                .await
            }
            Ok(caller) => {
                let owner = session::Owner::Token(crate::service::tokens::hash_token(&token));
                let who = crate::service::Actor::Ui(caller.name.clone());
                logged_in(&state, owner, who, &f.next, https).await
            }
            Err(why) => {
                let message = why.message();
                login_refused(&state, f, StatusCode::UNAUTHORIZED, message, false).await
            }
        };
    }
    if f.email.trim().is_empty() || f.password.is_empty() {
        return login_refused(
            &state,
            f,
            StatusCode::UNAUTHORIZED,
            "Enter your e-mail address and password (or an API token).".into(),
            false,
        )
        .await;
    }
    let code = Some(f.code.as_str()).filter(|c| !c.trim().is_empty());
    let verdict =
        crate::service::users::login(&state.app, &f.email, &f.password, code, &addr).await;
    use crate::service::users::LoginRefused;
    match verdict {
        Ok(Ok(user)) => {
            let who = crate::service::Actor::Ui(user.email.clone());
            logged_in(&state, session::Owner::User(user.id), who, &f.next, https).await
        }
        Ok(Err(LoginRefused::Wrong)) => {
            login_refused(
                &state,
                f,
                StatusCode::UNAUTHORIZED,
                "That e-mail address and password do not match an active account.".into(),
                false,
            )
            .await
        }
        Ok(Err(LoginRefused::NeedsCode)) => {
            let error = if code.is_some() {
                "That code is not right; enter the current one from your authenticator app."
            } else {
                "Enter the code from your authenticator app."
            };
            login_refused(&state, f, StatusCode::UNAUTHORIZED, error.into(), true).await
        }
        Ok(Err(LoginRefused::Locked(secs))) => {
            let mut resp = login_refused(
                &state,
                f,
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed logins. Try again in {secs} seconds."),
                false,
            )
            .await;
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

async fn logout(
    State(state): State<UiState>,
    headers: HeaderMap,
    posted: session::Posted,
) -> Response {
    state.sessions.close(&posted.admin.key).await;
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, "", "/", 0, session::is_https(&headers)),
    );
    resp
}

/// The clinic's time zone (its first clinic's `timezone`), for showing
/// times as the clinic reads them; UTC when there is none.
pub async fn clinic_zone(state: &UiState) -> chrono_tz::Tz {
    let first = state
        .app
        .store
        .list_records(
            carehook_core::clinic::Kind::Clinic,
            carehook_store::RecordFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await;
    match first {
        Ok(page) => page
            .items
            .first()
            .and_then(|c| c.text("timezone").parse().ok())
            .unwrap_or(chrono_tz::UTC),
        Err(e) => {
            tracing::warn!(error = %e, "reading the clinic's time zone");
            chrono_tz::UTC
        }
    }
}

/// A moment as the log shows it: in the clinic's time zone, how long ago,
/// and in UTC (the tooltip).
#[derive(Debug)]
pub struct When {
    pub local: String,
    pub ago: String,
    pub utc: String,
    pub iso: String,
}

impl When {
    pub fn new(ms: i64, now: i64, zone: chrono_tz::Tz) -> When {
        let at = crate::time::from_ms(ms);
        When {
            local: at
                .with_timezone(&zone)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string(),
            ago: ago(now - ms),
            utc: show_time(ms),
            iso: crate::time::rfc3339(ms),
        }
    }
}

/// `just now`, `5 min ago`, `3 h ago`, `2 days ago`; `in 5 min` ahead.
pub fn ago(ms: i64) -> String {
    let (ahead, s) = (ms < 0, ms.unsigned_abs() / 1000);
    let text = match s {
        0..=44 => return "just now".into(),
        45..=5399 => format!("{} min", (s + 30) / 60),
        5400..=129_599 => format!("{} h", (s + 1800) / 3600),
        _ => format!("{} days", (s + 43_200) / 86_400),
    };
    if ahead {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Unix milliseconds as the UI shows a time: `2026-11-27 14:05 UTC`.
pub fn show_time(ms: i64) -> String {
    crate::time::from_ms(ms)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// Why a webhook is off, as a page says it: the reason, and who or what
/// turned it off; empty when it is on.
pub fn disabled_note(w: &crate::registry::Loaded) -> String {
    let Some(d) = w.disabled() else {
        return String::new();
    };
    match (d.reason, d.by) {
        (Some(r), Some(by)) => format!("{r} (by {by})"),
        (Some(r), None) => r,
        (None, Some(by)) => format!("by {by}"),
        (None, None) => String::new(),
    }
}

/// The host a URL template points at, for lists.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    host.rsplit_once('@').map_or(host, |(_, h)| h).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ui_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/ui/webhooks?x=1")), "/ui/webhooks?x=1");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui");
        assert_eq!(safe_next(Some("//evil.example/ui")), "/ui");
        assert_eq!(safe_next(None), "/ui");
        assert_eq!(safe_next(Some("/uievil")), "/ui");
        for bad in [
            "/ui\r\nSet-Cookie: x=1",
            "/ui/\u{0}",
            "/ui/\t",
            "/ui/ x",
            "/ui/é",
            "/ui/\u{7f}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui", "{bad:?}");
        }
    }

    #[test]
    fn the_host_is_shown_without_credentials() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T/B/X"),
            "hooks.slack.com"
        );
        assert_eq!(
            host_of("https://u:p@api.example.com:8443/x?y"),
            "api.example.com:8443"
        );
        assert_eq!(host_of("http://127.0.0.1:9/{{clinic_id}}"), "127.0.0.1:9");
    }
}
