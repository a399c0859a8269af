//! People (the accounts that log in to the admin UI), managed by owners through the API: list,
//! add, change role, clinics and display name, disable and enable, a new password, and the
//! second factor reset after a lost phone. And `GET /whoami`: who the calling token is.
//!
//! An answer never carries a password hash or a TOTP secret, only whether a second factor is
//! on; a password appears once, in the answer that made it. The rules (the last owner kept,
//! the audit trail) are the service's (`service::users`), shared with the UI and the CLI.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use carehook_store::UserRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiJson, ApiPath, ApiResult, ErrorBody, OptionalJson};
use super::{AppState, Caller};
use crate::service::access::Role;
use crate::service::users::{self, Change, NewUser};
use crate::time::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(reset_password))
        .routes(routes!(reset_second_factor))
        .routes(routes!(who_am_i))
}

/// An account, as answers show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    #[schema(example = "01936b8e-6f7a-7c3e-9a51-3f1c2d4e5a6b")]
    pub id: String,
    #[schema(example = "ada@clinic.example")]
    pub email: String,
    #[schema(example = "Ada Lovelace")]
    pub display_name: String,
    pub role: Role,
    /// The clinics it is limited to; null: every clinic.
    pub clinics: Option<Vec<String>>,
    /// Whether it sees bodies and event data in the delivery log.
    pub bodies: bool,
    /// Whether it logs in with a TOTP code after its password.
    pub second_factor: bool,
    /// Set while the account is disabled.
    pub disabled_at: Option<String>,
    /// The last login to the admin UI; null: never.
    pub last_login_at: Option<String>,
    pub created_at: String,
}

pub fn view(u: &UserRow) -> User {
    User {
        id: u.id.clone(),
        email: u.email.clone(),
        display_name: u.display_name.clone(),
        role: Role::parse(&u.role).unwrap_or(Role::Viewer),
        clinics: u.clinics.clone(),
        bodies: u.bodies,
        second_factor: u.totp_secret.is_some(),
        disabled_at: u.disabled_at.map(rfc3339),
        last_login_at: u.last_login_at.map(rfc3339),
        created_at: rfc3339(u.created_at),
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct UserList {
    items: Vec<User>,
}

/// A person's role: a role of API tokens but `ingest` (its schema in the document).
#[allow(dead_code)]
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
enum PersonRole {
    Owner,
    Admin,
    Editor,
    Viewer,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    /// The address it logs in with (kept lower-case; one account per address).
    #[schema(example = "ada@clinic.example")]
    email: String,
    /// The name shown in the UI, 1 to 100 characters.
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 100,
        pattern = r"\S"
    )]
    display_name: String,
    /// owner, admin, editor or viewer (ingest is for API tokens); default viewer.
    #[serde(default)]
    #[schema(value_type = Option<PersonRole>)]
    role: Option<String>,
    /// The clinics it is limited to; left out, null or empty: every clinic.
    #[serde(default, deserialize_with = "super::tokens::clinic_list")]
    #[schema(value_type = Option<Vec<super::tokens::ClinicId>>, example = json!(["2"]))]
    clinics: Option<Vec<String>>,
    /// Whether it sees bodies in the delivery log; default: yes, except for a viewer.
    #[serde(default)]
    bodies: Option<bool>,
    /// 10 to 1024 characters; left out, a random one is made and answered once.
    #[serde(default)]
    password: Option<String>,
}

/// Debug without the password.
impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccount")
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("clinics", &self.clinics)
            .field("bodies", &self.bodies)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// An account just made, or given a new password.
#[derive(Serialize, ToSchema)]
struct UserWithPassword {
    #[serde(flatten)]
    user: User,
    /// The password carehook made, shown only in this answer; absent when the request gave
    /// one.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

/// Debug without the password.
impl std::fmt::Debug for UserWithPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserWithPassword")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

fn parse_role(role: Option<&str>) -> Result<Option<Role>, crate::service::Error> {
    role.map(|r| {
        Role::parse(r).ok_or_else(|| {
            crate::service::Error::invalid(
                "role",
                format!("role must be owner, admin, editor or viewer, not \"{r}\""),
            )
        })
    })
    .transpose()
}

/// Every account, disabled ones too.
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody)))]
async fn list(State(state): State<AppState>, _: Caller) -> ApiResult<Json<UserList>> {
    let rows = users::list(&*state.store).await?;
    Ok(Json(UserList {
        items: rows.iter().map(view).collect(),
    }))
}

/// Makes an account for the admin UI. Without a `password`, carehook makes one and answers
/// it, only this once.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewAccount,
    responses((status = 201, body = UserWithPassword), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "An account with this e-mail address exists", body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewAccount>,
) -> ApiResult<(StatusCode, Json<UserWithPassword>)> {
    let role = parse_role(body.role.as_deref())?.unwrap_or(Role::Viewer);
    let made = body.password.is_none();
    let password = body.password.unwrap_or_else(users::random_password);
    let row = users::create(
        &*state.store,
        &caller.actor(),
        NewUser {
            email: body.email,
            display_name: body.display_name,
            password: password.clone(),
            role,
            clinics: body.clinics,
            bodies: body.bodies,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(UserWithPassword {
            user: view(&row),
            password: made.then_some(password),
        }),
    ))
}

/// One account.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(view(&users::get(&*state.store, &id).await?)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AccountChange {
    /// 1 to 100 characters, not only spaces.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    display_name: Option<String>,
    /// owner, admin, editor or viewer.
    #[serde(default)]
    #[schema(value_type = Option<PersonRole>)]
    role: Option<String>,
    /// The clinics it is limited to; null or empty: every clinic; left out: unchanged.
    #[serde(default, deserialize_with = "some_clinic_list")]
    #[schema(value_type = Option<Vec<super::tokens::ClinicId>>, example = json!(["2"]))]
    clinics: Option<Option<Vec<String>>>,
    #[serde(default)]
    bodies: Option<bool>,
}

/// Present (even as null) is `Some`: null and empty mean every clinic.
fn some_clinic_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Vec<String>>>, D::Error> {
    super::tokens::clinic_list(d).map(Some)
}

/// Changes an account's display name, role, clinics or bodies (what is left out stays). Its
/// sessions act with the new role at their next request. The last active owner cannot be
/// made something else (409).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("id" = String, Path, description = "Account id")), request_body = AccountChange,
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "It is the last active owner", body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AccountChange>,
) -> ApiResult<Json<User>> {
    let change = Change {
        display_name: body.display_name,
        role: parse_role(body.role.as_deref())?,
        clinics: body.clinics,
        bodies: body.bodies,
    };
    let row = users::update(&*state.store, &caller.actor(), &id, change).await?;
    Ok(Json(view(&row)))
}

/// Disables an account: its sessions end at once and it cannot log in. The last active owner
/// cannot be disabled (409).
#[utoipa::path(post, path = "/users/{id}/disable", tag = "users", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "It is the last active owner", body = ErrorBody)))]
async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    let row = users::set_disabled_of(&*state.store, &caller.actor(), &id, true).await?;
    Ok(Json(view(&row)))
}

/// Enables a disabled account again.
#[utoipa::path(post, path = "/users/{id}/enable", tag = "users", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    let row = users::set_disabled_of(&*state.store, &caller.actor(), &id, false).await?;
    Ok(Json(view(&row)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    /// 10 to 1024 characters; left out (or no body), a random one is made and answered once.
    #[serde(default)]
    password: Option<String>,
}

/// Gives an account a new password; its sessions end. Without one in the body, carehook
/// makes one and answers it, only this once.
#[utoipa::path(post, path = "/users/{id}/reset-password", tag = "users", params(("id" = String, Path, description = "Account id")), request_body(content = Option<NewPassword>, description = "Optional; without a password one is made"),
    responses((status = 200, body = UserWithPassword), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<NewPassword>,
) -> ApiResult<Json<UserWithPassword>> {
    let made = body.password.is_none();
    let password = body.password.unwrap_or_else(users::random_password);
    let row = users::reset_password_of(&*state.store, &caller.actor(), &id, &password).await?;
    Ok(Json(UserWithPassword {
        user: view(&row),
        password: made.then_some(password),
    }))
}

/// Turns an account's second factor off (a lost phone); its sessions end. It logs in with its
/// password alone until it sets one up again on its "Your account" page.
#[utoipa::path(post, path = "/users/{id}/reset-2fa", tag = "users", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_second_factor(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    let row = users::reset_second_factor(&*state.store, &caller.actor(), &id).await?;
    Ok(Json(view(&row)))
}

/// Who the calling token is: its name, role and clinics.
#[derive(Debug, Serialize, ToSchema)]
struct WhoAmI {
    /// `admin` for the admin token, else the API token's name.
    #[schema(example = "zapier")]
    name: String,
    role: Role,
    /// The clinics it is limited to; null: every clinic.
    clinics: Option<Vec<String>>,
    /// Whether it sees bodies and event data in the delivery log.
    bodies: bool,
}

/// Who the calling token is: its name, role and clinics (any valid token may ask).
#[utoipa::path(get, path = "/whoami", tag = "tokens",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn who_am_i(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: caller.name,
        role: caller.role,
        clinics: caller.clinics,
        bodies: caller.bodies,
    })
}
