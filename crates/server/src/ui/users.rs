//! Two pages about people: **Users** (owners: the accounts, with role, clinics, last login,
//! second factor and status; add one, change its role and clinics, disable or enable it, give
//! it a new password, turn its second factor off) and **Your account** (anyone logged in with
//! an account: change the password, set up or turn off a second factor). Both go through
//! `service::users`, as the API and the CLI do; a password carehook makes is shown on the
//! answer that made it, once, and never kept in the session.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use carehook_store::UserRow;

use super::session::{Admin, Posted};
use super::{Id, Page, UiError, UiState, html};
use crate::service::access::Role;
use crate::service::users::{self, Change, NewUser};
use crate::time::now_ms;

pub fn router() -> Router<UiState> {
    Router::new()
        .route("/users", get(users_page).post(create))
        .route("/users/{id}", get(user_page).post(update))
        .route("/users/{id}/disable", post(disable))
        .route("/users/{id}/enable", post(enable))
        .route("/users/{id}/reset-password", post(reset_password))
        .route("/users/{id}/reset-2fa", post(reset_second_factor))
        .route("/account", get(account_page))
        .route("/account/password", post(change_password))
        .route("/account/2fa", post(start_second_factor))
        .route("/account/2fa/confirm", post(confirm_second_factor))
        .route("/account/2fa/off", post(second_factor_off))
}

/// An account as the pages show it.
struct UserView {
    id: String,
    email: String,
    name: String,
    role: String,
    /// `every clinic`, or the clinic ids.
    clinics: String,
    /// The clinic ids as the form's field holds them.
    clinics_field: String,
    bodies: bool,
    last_login: String,
    second_factor: bool,
    disabled: bool,
}

fn user_view(u: &UserRow, now: i64) -> UserView {
    UserView {
        id: u.id.clone(),
        email: u.email.clone(),
        name: u.display_name.clone(),
        role: u.role.clone(),
        clinics: match u.clinics.as_deref() {
            None | Some([]) => "every clinic".into(),
            Some([one]) => format!("clinic {one}"),
            Some(many) => format!("clinics {}", many.join(", ")),
        },
        clinics_field: u
            .clinics
            .as_ref()
            .map_or_else(String::new, |c| c.join(", ")),
        bodies: u.bodies,
        last_login: u
            .last_login_at
            .map_or_else(|| "never".into(), |at| super::ago(now - at)),
        second_factor: u.totp_secret.is_some(),
        disabled: u.disabled_at.is_some(),
    }
}

/// Clinic ids typed into one field, comma- or space-separated; empty: every clinic.
fn clinics_of(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn role_of(text: &str) -> Result<Role, crate::service::Error> {
    Role::parse(text.trim()).ok_or_else(|| {
        crate::service::Error::invalid("role", "choose owner, admin, editor or viewer")
    })
}

/// What the add form held, to show it again after an error.
#[derive(Default)]
struct Draft {
    email: String,
    name: String,
    role: String,
    clinics: String,
}

#[derive(Template)]
#[template(path = "ui/users.html")]
struct UsersPage {
    page: Page,
    rows: Vec<UserView>,
    /// An account just made with a password carehook chose: (e-mail, password), shown once.
    made: Option<(String, String)>,
    draft: Draft,
    error: String,
}

fn no_store(mut resp: Response) -> Response {
    // A password shown once must not be kept by the browser's cache.
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

async fn users_view(
    state: &UiState,
    admin: &Admin,
    made: Option<(String, String)>,
    draft: Draft,
    error: String,
) -> Result<Response, UiError> {
    let now = now_ms();
    let rows = users::list(&*state.app.store)
        .await?
        .iter()
        .map(|u| user_view(u, now))
        .collect();
    Ok(no_store(html(&UsersPage {
        page: Page::new(state, admin, "Users", "users").await,
        rows,
        made,
        draft,
        error,
    })))
}

async fn users_page(State(state): State<UiState>, admin: Admin) -> Result<Response, UiError> {
    users_view(&state, &admin, None, Draft::default(), String::new()).await
}

async fn create(State(state): State<UiState>, posted: Posted) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let draft = Draft {
        email: form.text("email"),
        name: form.text("display_name"),
        role: form.text("role"),
        clinics: form.text("clinics"),
    };
    let given = form.text("password");
    let made = given.is_empty();
    let password = if made {
        users::random_password()
    } else {
        given
    };
    let outcome = match role_of(&draft.role) {
        Ok(role) => {
            users::create(
                &*state.app.store,
                &admin.actor(),
                NewUser {
                    email: draft.email.clone(),
                    display_name: draft.name.clone(),
                    password: password.clone(),
                    role,
                    clinics: Some(clinics_of(&draft.clinics)),
                    bodies: Some(form.get("bodies") == Some("on") || role != Role::Viewer),
                },
            )
            .await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(u) => {
            let reveal = if made {
                Some((u.email, password))
            } else {
                state
                    .sessions
                    .flash(
                        &admin.key,
                        "ok",
                        format!("{} can log in now with the password you chose.", u.email),
                    )
                    .await;
                None
            };
            users_view(&state, &admin, reveal, Draft::default(), String::new()).await
        }
        Err(e) => {
            let message = match e.field() {
                Some(f) => format!("{}: {}", field_label(f), e.message()),
                None => e.message(),
            };
            let mut resp = users_view(&state, &admin, None, draft, message).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

/// A service field's name as the forms label it.
fn field_label(field: &str) -> &str {
    match field {
        "email" => "E-mail address",
        "display_name" => "Name",
        "password" => "Password",
        "role" => "Role",
        "current_password" => "Current password",
        "code" => "Code",
        f if f.starts_with("clinics") => "Clinics",
        f => f,
    }
}

#[derive(Template)]
#[template(path = "ui/user.html")]
struct UserPage {
    page: Page,
    u: UserView,
    /// A new password carehook just made, shown once.
    password: Option<String>,
    /// Whether this is the caller's own account (its own role is not changed from here).
    own: bool,
    error: String,
}

async fn user_view_page(
    state: &UiState,
    admin: &Admin,
    id: &str,
    password: Option<String>,
    error: String,
) -> Result<Response, UiError> {
    let u = users::get(&*state.app.store, id).await?;
    let own = admin.user_id.as_deref() == Some(u.id.as_str());
    Ok(no_store(html(&UserPage {
        page: Page::new(state, admin, u.email.clone(), "users").await,
        u: user_view(&u, now_ms()),
        password,
        own,
        error,
    })))
}

async fn user_page(
    State(state): State<UiState>,
    admin: Admin,
    Id(id): Id<String>,
) -> Result<Response, UiError> {
    user_view_page(&state, &admin, &id, None, String::new()).await
}

async fn update(
    State(state): State<UiState>,
    Id(id): Id<String>,
    posted: Posted,
) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let change = match role_of(&form.text("role")) {
        Ok(role) => Ok(Change {
            display_name: Some(form.text("display_name")),
            role: Some(role),
            clinics: Some(Some(clinics_of(&form.text("clinics")))),
            bodies: Some(form.get("bodies") == Some("on") || role != Role::Viewer),
        }),
        Err(e) => Err(e),
    };
    let outcome = match change {
        Ok(c) => users::update(&*state.app.store, &admin.actor(), &id, c).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(u) => {
            state
                .sessions
                .flash(
                    &admin.key,
                    "ok",
                    format!("Saved: {} is now {}.", u.email, u.role),
                )
                .await;
            Ok(Redirect::to(&format!("/ui/users/{}", u.id)).into_response())
        }
        Err(crate::service::Error::NotFound(_)) => Err(UiError::NotFound),
        Err(e) => {
            let message = match e.field() {
                Some(f) => format!("{}: {}", field_label(f), e.message()),
                None => e.message(),
            };
            let mut resp = user_view_page(&state, &admin, &id, None, message).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

/// After a one-button action: a message, and back to the account's page.
async fn done(
    state: &UiState,
    admin: &Admin,
    id: &str,
    outcome: crate::service::Result<String>,
) -> Result<Response, UiError> {
    match outcome {
        Ok(text) => state.sessions.flash(&admin.key, "ok", text).await,
        Err(crate::service::Error::NotFound(_)) => return Err(UiError::NotFound),
        Err(e) => state.sessions.flash(&admin.key, "error", e.message()).await,
    }
    Ok(Redirect::to(&format!("/ui/users/{id}")).into_response())
}

async fn disable(
    State(state): State<UiState>,
    Id(id): Id<String>,
    posted: Posted,
) -> Result<Response, UiError> {
    let admin = posted.admin;
    let outcome = users::set_disabled_of(&*state.app.store, &admin.actor(), &id, true)
        .await
        .map(|u| format!("{} is disabled; its sessions ended.", u.email));
    done(&state, &admin, &id, outcome).await
}

async fn enable(
    State(state): State<UiState>,
    Id(id): Id<String>,
    posted: Posted,
) -> Result<Response, UiError> {
    let admin = posted.admin;
    let outcome = users::set_disabled_of(&*state.app.store, &admin.actor(), &id, false)
        .await
        .map(|u| format!("{} can log in again.", u.email));
    done(&state, &admin, &id, outcome).await
}

async fn reset_password(
    State(state): State<UiState>,
    Id(id): Id<String>,
    posted: Posted,
) -> Result<Response, UiError> {
    let admin = posted.admin;
    let password = users::random_password();
    match users::reset_password_of(&*state.app.store, &admin.actor(), &id, &password).await {
        Ok(_) => user_view_page(&state, &admin, &id, Some(password), String::new()).await,
        Err(crate::service::Error::NotFound(_)) => Err(UiError::NotFound),
        Err(e) => done(&state, &admin, &id, Err(e)).await,
    }
}

async fn reset_second_factor(
    State(state): State<UiState>,
    Id(id): Id<String>,
    posted: Posted,
) -> Result<Response, UiError> {
    let admin = posted.admin;
    let outcome = users::reset_second_factor(&*state.app.store, &admin.actor(), &id)
        .await
        .map(|u| {
            format!(
                "{}'s second factor is off; it logs in with its password until it sets one up again.",
                u.email
            )
        });
    done(&state, &admin, &id, outcome).await
}

// --- your account ---------------------------------------------------------------------------

/// A base32 key in groups of four, as a person types it into an app (apps ignore the spaces).
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Template)]
#[template(path = "ui/account.html")]
struct AccountPage {
    page: Page,
    /// `None`: the session was opened with an API token, which has no account.
    u: Option<UserView>,
    /// A second factor being set up.
    enrolling: Option<Enrolling>,
    /// Which form the error belongs to: `password`, `enrol` or `off`.
    error_in: &'static str,
    error: String,
}

/// A second factor being set up, as the page shows it.
struct Enrolling {
    /// Base32, in groups of four.
    key: String,
    uri: String,
    /// The URI as a QR code: an SVG `data:` URI for an `<img>` (the page's CSP allows
    /// `data:` images and nothing inline).
    qr: Option<String>,
    /// The secret sealed, for the confirming form.
    sealed: String,
}

impl Enrolling {
    fn new(secret: &str, uri: String, sealed: String) -> Enrolling {
        Enrolling {
            key: grouped(secret),
            qr: qr_data_uri(&uri),
            uri,
            sealed,
        }
    }
}

/// `text` as a QR code, an SVG in a `data:` URI; `None` if it does not fit in one.
fn qr_data_uri(text: &str) -> Option<String> {
    use base64::Engine as _;
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

async fn account_view(
    state: &UiState,
    admin: &Admin,
    enrolling: Option<Enrolling>,
    error_in: &'static str,
    error: String,
) -> Result<Response, UiError> {
    let u = match &admin.user_id {
        Some(id) => Some(user_view(
            &users::get(&*state.app.store, id).await?,
            now_ms(),
        )),
        None => None,
    };
    let mut resp = no_store(html(&AccountPage {
        page: Page::new(state, admin, "Your account", "account").await,
        u,
        enrolling,
        error_in,
        error: error.clone(),
    }));
    if !error.is_empty() {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

async fn account_page(State(state): State<UiState>, admin: Admin) -> Result<Response, UiError> {
    account_view(&state, &admin, None, "", String::new()).await
}

/// The account of the session, or the page saying a token has none.
fn own_id(admin: &Admin) -> Result<&str, UiError> {
    admin.user_id.as_deref().ok_or_else(|| {
        UiError::BadRequest(
            "This session was opened with an API token, which has no account to change.".into(),
        )
    })
}

fn error_text(e: &crate::service::Error) -> String {
    match e.field() {
        Some(f) => format!("{}: {}", field_label(f), e.message()),
        None => e.message(),
    }
}

async fn change_password(
    State(state): State<UiState>,
    posted: Posted,
) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let id = own_id(&admin)?.to_string();
    let new = form.text("new_password");
    if new != form.text("repeat_password") {
        return account_view(
            &state,
            &admin,
            None,
            "password",
            "The new password and its repetition differ.".into(),
        )
        .await;
    }
    let outcome = users::change_own_password(
        &state.app,
        &admin.actor(),
        &id,
        &admin.key,
        &form.text("current_password"),
        &new,
    )
    .await;
    match outcome {
        Ok(()) => {
            state
                .sessions
                .flash(
                    &admin.key,
                    "ok",
                    "Your password is changed; your other sessions ended.",
                )
                .await;
            Ok(Redirect::to("/ui/account").into_response())
        }
        Err(e) => account_view(&state, &admin, None, "password", error_text(&e)).await,
    }
}

async fn start_second_factor(
    State(state): State<UiState>,
    posted: Posted,
) -> Result<Response, UiError> {
    let admin = posted.admin;
    let u = users::get(&*state.app.store, own_id(&admin)?).await?;
    if u.totp_secret.is_some() {
        return Ok(Redirect::to("/ui/account").into_response());
    }
    let e = users::start_enrolment(&state.app, &u)?;
    account_view(
        &state,
        &admin,
        Some(Enrolling::new(&e.secret, e.uri, e.sealed)),
        "",
        String::new(),
    )
    .await
}

async fn confirm_second_factor(
    State(state): State<UiState>,
    posted: Posted,
) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let id = own_id(&admin)?.to_string();
    let sealed = form.text("pending");
    let outcome = users::confirm_enrolment(
        &state.app,
        &admin.actor(),
        &id,
        &admin.key,
        &sealed,
        &form.text("password"),
        &form.text("code"),
    )
    .await;
    match outcome {
        Ok(()) => {
            state
                .sessions
                .flash(
                    &admin.key,
                    "ok",
                    "Two-step login is on: from now on you log in with your password and a code from your app. Your other sessions ended.",
                )
                .await;
            Ok(Redirect::to("/ui/account").into_response())
        }
        Err(e) => {
            // Show the same secret again, so the app already set up still fits: only one
            // sealed for this account's setup and not expired. Anything else (another
            // account's stored secret, an old setup) is never opened to be shown: a new
            // setup starts instead.
            let u = users::get(&*state.app.store, &id).await?;
            if u.totp_secret.is_some() {
                return account_view(&state, &admin, None, "", error_text(&e)).await;
            }
            let again = match users::pending_enrolment(&state.app, &u, &sealed) {
                Some(p) => p,
                None => users::start_enrolment(&state.app, &u)?,
            };
            let again = Enrolling::new(&again.secret, again.uri, again.sealed);
            account_view(&state, &admin, Some(again), "enrol", error_text(&e)).await
        }
    }
}

async fn second_factor_off(
    State(state): State<UiState>,
    posted: Posted,
) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let id = own_id(&admin)?.to_string();
    let outcome = users::disable_own_second_factor(
        &state.app,
        &admin.actor(),
        &id,
        &admin.key,
        &form.text("password"),
        &form.text("code"),
    )
    .await;
    match outcome {
        Ok(()) => {
            state
                .sessions
                .flash(
                    &admin.key,
                    "ok",
                    "Two-step login is off; your other sessions ended.",
                )
                .await;
            Ok(Redirect::to("/ui/account").into_response())
        }
        Err(e) => account_view(&state, &admin, None, "off", error_text(&e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_shown_in_groups_of_four_and_reads_back() {
        let key = "V3TXNBEEC62N335KZRKH6APMJEKBLII5";
        let shown = grouped(key);
        assert_eq!(shown, "V3TX NBEE C62N 335K ZRKH 6APM JEKB LII5");
        assert_eq!(
            carehook_core::totp::from_base32(&shown),
            carehook_core::totp::from_base32(key)
        );
    }

    #[test]
    fn the_qr_code_is_an_svg_image() {
        use base64::Engine as _;
        let uri = carehook_core::totp::otpauth_uri("carehook", "ada@clinic.example", &[7; 20]);
        let qr = qr_data_uri(&uri).unwrap();
        let svg = qr.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = base64::engine::general_purpose::STANDARD
            .decode(svg)
            .unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
    }

    #[test]
    fn clinics_are_typed_with_commas_or_spaces() {
        assert_eq!(clinics_of(" 2, 3 4,,"), ["2", "3", "4"]);
        assert!(clinics_of("  ").is_empty());
    }
}
