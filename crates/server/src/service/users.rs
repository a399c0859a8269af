//! People: named accounts that log in to the admin UI with an e-mail address, a password
//! (argon2id) and, when they set one up, a TOTP code; each with a role and clinics as an API
//! token has. Made by `carehook users add` (and, on first start, one owner account), listed,
//! disabled, given a new password.
//!
//! Owners manage accounts through the API and the admin UI's users page (list, add, change
//! role and clinics, disable, new password, second factor off); each person manages their own
//! password and second factor on the "Your account" page. Every change is in the audit trail,
//! never with a password, a hash or a TOTP secret.
//!
//! Decisions a reader might otherwise undo:
//! - Failed logins are counted per account and per client address, in the database (so every
//!   node counts them): after [`LoginLimits::lock_after`] failures in a row, that account and
//!   that address are refused for [`LoginLimits::cooldown`], the right password included. An
//!   unknown address gets the same answer, after the same work, as a wrong password.
//! - The last active owner account cannot be demoted or disabled (a 409): nobody would be
//!   left to manage people from the UI. (Checked by reading the accounts first; two owners
//!   demoting each other in the same instant could both pass. The admin token and
//!   `carehook users` on the database remain the way back in.)
//! - A new password or a second factor turned on or off ends the account's other sessions:
//!   whoever else held one (a stolen cookie) is out.
//! - Hashing is argon2id with its recommended parameters (19 MiB, 2 passes), on a blocking
//!   thread: about 20–50 ms, which the limits above keep from becoming a way to load the server.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use carehook_store::{Store, UserChange, UserRow};
use serde_json::json;

use super::access::{Principal, Role};
use super::{Actor, Context, Error, Result};
use crate::time::now_ms;

/// The fewest characters of a password.
pub const MIN_PASSWORD: usize = 10;
/// The most: a longer one is not a password, and costs hashing time.
pub const MAX_PASSWORD: usize = 1024;

/// How failed logins are slowed down.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures in a row (of one account, or from one address) that lock it.
    pub lock_after: u32,
    /// How long a lock lasts; a streak older than this starts over.
    pub cooldown: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            lock_after: 5,
            cooldown: Duration::from_secs(15 * 60),
        }
    }
}

/// An e-mail address, lower-cased and checked loosely (`a@b`): the account's name.
pub fn check_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email)
    } else {
        Err(Error::invalid(
            "email",
            "an e-mail address like ada@clinic.example",
        ))
    }
}

pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(Error::invalid(
            "password",
            format!("a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

fn argon() -> argon2::Argon2<'static> {
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::default(),
    )
}

/// The argon2id PHC string of `password`, with a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&raw).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(argon()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?
        .to_string())
}

/// Whether `password` is the one `phc` was made of.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon().verify_password(password.as_bytes(), &h).is_ok())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::internal)
}

/// A new account.
#[derive(Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub password: String,
    pub role: Role,
    /// `None` or empty: every clinic.
    pub clinics: Option<Vec<String>>,
    pub bodies: Option<bool>,
}

/// Debug without the password.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("password", &"***")
            .field("role", &self.role)
            .field("clinics", &self.clinics)
            .field("bodies", &self.bodies)
            .finish()
    }
}

/// Makes an account in `store` (the CLI's offline `users add` too).
pub async fn add(store: &dyn Store, u: NewUser) -> Result<UserRow> {
    let email = check_email(&u.email)?;
    let display_name = u.display_name.trim().to_string();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        return Err(Error::invalid(
            "display_name",
            "a display name is 1 to 100 characters",
        ));
    }
    check_password(&u.password)?;
    if u.role == Role::Ingest {
        return Err(Error::invalid(
            "role",
            "an ingest role is for API tokens; a person is an owner, admin, editor or viewer",
        ));
    }
    let access = super::tokens::check_access(Some(u.role.as_str()), u.clinics, u.bodies)?;
    let password = u.password;
    let password_hash = blocking(move || hash_password(&password))
        .await?
        .map_err(Error::internal)?;
    let now = now_ms();
    let row = UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        email,
        display_name,
        password_hash,
        totp_secret: None,
        role: access.role,
        clinics: access.clinics,
        bodies: access.bodies,
        disabled_at: None,
        created_at: now,
        updated_at: now,
        last_login_at: None,
    };
    store.insert_user(&row).await?;
    Ok(row)
}

/// A random password for a new account, shown once: 20 characters of base64url.
pub fn random_password() -> String {
    let mut raw = [0u8; 15];
    getrandom::fill(&mut raw).expect("the OS has randomness");
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
}

/// On first start (no account yet): an owner account, `email`, with a random password;
/// answers the password, to print once.
pub async fn first_owner(store: &dyn Store, email: &str) -> Result<Option<String>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let password = random_password();
    add(
        store,
        NewUser {
            email: email.to_string(),
            display_name: "Owner".into(),
            password: password.clone(),
            role: Role::Owner,
            clinics: None,
            bodies: None,
        },
    )
    .await?;
    Ok(Some(password))
}

/// How the CLI's offline commands are written in the audit trail.
pub const CLI: Actor = Actor::System("carehook users (command line)");

async fn by_email(store: &dyn Store, email: &str) -> Result<UserRow> {
    store
        .user_by_email(&check_email(email)?)
        .await?
        .ok_or(Error::NotFound("account"))
}

/// A new password, by e-mail address (`carehook users reset-password`); its sessions end.
pub async fn reset_password(store: &dyn Store, email: &str, password: &str) -> Result<UserRow> {
    let u = by_email(store, email).await?;
    reset_password_of(store, &CLI, &u.id, password).await
}

/// Disables (or enables again), by e-mail address (`carehook users disable`).
pub async fn set_disabled(store: &dyn Store, email: &str, disabled: bool) -> Result<UserRow> {
    let u = by_email(store, email).await?;
    set_disabled_of(store, &CLI, &u.id, disabled).await
}

/// The account with this id.
pub async fn get(store: &dyn Store, id: &str) -> Result<UserRow> {
    store.get_user(id).await?.ok_or(Error::NotFound("account"))
}

pub async fn list(store: &dyn Store) -> Result<Vec<UserRow>> {
    Ok(store.list_users().await?)
}

fn resource(u: &UserRow) -> String {
    format!("user/{}", u.id)
}

/// What the trail keeps of an account: who and what it may do, never a secret.
fn audit_view(u: &UserRow) -> serde_json::Value {
    json!({
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role,
        "clinics": u.clinics,
        "bodies": u.bodies,
        "disabled": u.disabled_at.is_some(),
        "second_factor": u.totp_secret.is_some(),
    })
}

fn is_active_owner(u: &UserRow) -> bool {
    u.role == Role::Owner.as_str() && u.disabled_at.is_none()
}

/// Refuses a change that would leave no active owner account: `after` is the account as the
/// change would leave it.
async fn keep_an_owner(store: &dyn Store, before: &UserRow, after: &UserRow) -> Result<()> {
    if !is_active_owner(before) || is_active_owner(after) {
        return Ok(());
    }
    let others = store
        .list_users()
        .await?
        .iter()
        .filter(|u| u.id != before.id && is_active_owner(u))
        .count();
    if others == 0 {
        return Err(Error::Conflict(format!(
            "{} is the last active owner; make another account an owner first",
            before.email
        )));
    }
    Ok(())
}

/// Makes an account; recorded in the audit trail (the password is not).
pub async fn create(store: &dyn Store, actor: &Actor, u: NewUser) -> Result<UserRow> {
    let row = add(store, u).await?;
    tracing::info!(user = %row.id, role = %row.role, by = %actor, "account made");
    let details = json!({ "after": audit_view(&row) });
    super::audit::record(store, actor, "user.create", &resource(&row), "ok", details).await;
    Ok(row)
}

/// What an owner changes of an account; `None`: left as it is.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    /// `Some(None)` or `Some(Some(empty))`: every clinic.
    pub clinics: Option<Option<Vec<String>>>,
    pub bodies: Option<bool>,
}

/// Changes an account's display name, role, clinics or bodies; a changed role or clinics
/// applies to its sessions at their next request.
pub async fn update(store: &dyn Store, actor: &Actor, id: &str, c: Change) -> Result<UserRow> {
    let before = get(store, id).await?;
    let display_name = match c.display_name {
        Some(n) => {
            let n = n.trim().to_string();
            if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
                return Err(Error::invalid(
                    "display_name",
                    "a display name is 1 to 100 characters",
                ));
            }
            n
        }
        None => before.display_name.clone(),
    };
    let role = match c.role {
        Some(Role::Ingest) => {
            return Err(Error::invalid(
                "role",
                "an ingest role is for API tokens; a person is an owner, admin, editor or viewer",
            ));
        }
        Some(r) => r,
        None => Role::parse(&before.role).unwrap_or(Role::Viewer),
    };
    let clinics = match c.clinics {
        Some(c) => c.filter(|c| !c.is_empty()),
        None => before.clinics.clone(),
    };
    let access = super::tokens::check_access(
        Some(role.as_str()),
        clinics,
        Some(c.bodies.unwrap_or(before.bodies)),
    )?;
    let change = UserChange {
        display_name,
        role: access.role,
        clinics: access.clinics,
        bodies: access.bodies,
    };
    let mut after = before.clone();
    after.display_name = change.display_name.clone();
    after.role = change.role.clone();
    after.clinics = change.clinics.clone();
    after.bodies = change.bodies;
    if after == before {
        // Nothing to change, nothing to record.
        return Ok(before);
    }
    keep_an_owner(store, &before, &after).await?;
    let now = now_ms();
    if !store.update_user(id, &change, now).await? {
        return Err(Error::NotFound("account"));
    }
    after.updated_at = now;
    tracing::info!(user = %id, role = %after.role, by = %actor, "account changed");
    let details = json!({ "before": audit_view(&before), "after": audit_view(&after) });
    super::audit::record(
        store,
        actor,
        "user.update",
        &resource(&after),
        "ok",
        details,
    )
    .await;
    Ok(after)
}

/// Disables (or enables again) an account; a disabled one's sessions end at once.
pub async fn set_disabled_of(
    store: &dyn Store,
    actor: &Actor,
    id: &str,
    disabled: bool,
) -> Result<UserRow> {
    let before = get(store, id).await?;
    if before.disabled_at.is_some() == disabled {
        // Already so: nothing to change, nothing to record.
        return Ok(before);
    }
    let now = now_ms();
    let mut after = before.clone();
    after.disabled_at = if disabled {
        before.disabled_at.or(Some(now))
    } else {
        None
    };
    keep_an_owner(store, &before, &after).await?;
    store.set_user_disabled(id, after.disabled_at, now).await?;
    if disabled {
        store.delete_user_sessions(id).await?;
    }
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    tracing::info!(user = %id, by = %actor, action, "account status changed");
    let details = json!({
        "before": { "disabled": before.disabled_at.is_some() },
        "after": { "disabled": disabled },
    });
    super::audit::record(store, actor, action, &resource(&before), "ok", details).await;
    Ok(after)
}

async fn hash(password: &str) -> Result<String> {
    check_password(password)?;
    let password = password.to_string();
    blocking(move || hash_password(&password))
        .await?
        .map_err(Error::internal)
}

/// Gives an account a new password (an owner's reset); all its sessions end.
pub async fn reset_password_of(
    store: &dyn Store,
    actor: &Actor,
    id: &str,
    password: &str,
) -> Result<UserRow> {
    let u = get(store, id).await?;
    let hash = hash(password).await?;
    store.set_user_password(&u.id, &hash, now_ms()).await?;
    let ended = store.delete_user_sessions(&u.id).await?;
    tracing::info!(user = %u.id, by = %actor, "account given a new password");
    let details = json!({ "sessions_ended": ended });
    super::audit::record(
        store,
        actor,
        "user.reset_password",
        &resource(&u),
        "ok",
        details,
    )
    .await;
    Ok(u)
}

/// Turns an account's second factor off (an owner's reset, for a lost phone); its sessions
/// end, and it logs in with its password alone until it sets one up again.
pub async fn reset_second_factor(store: &dyn Store, actor: &Actor, id: &str) -> Result<UserRow> {
    let mut u = get(store, id).await?;
    let had = u.totp_secret.is_some();
    store.set_user_totp(&u.id, None, now_ms()).await?;
    let ended = store.delete_user_sessions(&u.id).await?;
    u.totp_secret = None;
    tracing::info!(user = %u.id, by = %actor, "account's second factor reset");
    let details = json!({
        "before": { "second_factor": had },
        "after": { "second_factor": false },
        "sessions_ended": ended,
    });
    super::audit::record(store, actor, "user.reset_2fa", &resource(&u), "ok", details).await;
    Ok(u)
}

// --- one's own account ----------------------------------------------------------------------

/// Checks the password of a logged-in person before a change to their own account; a wrong
/// one counts as a failed login of the account (a stolen session cannot guess it freely).
async fn confirm_own_password(ctx: &Context, u: &UserRow, password: &str) -> Result<()> {
    let key = format!("account:{}", u.email);
    let now = now_ms();
    if let Some(f) = ctx.store.login_failures(&key).await?
        && f.locked_until.is_some_and(|until| until > now)
    {
        return Err(Error::Forbidden(
            "too many wrong passwords; try again later".into(),
        ));
    }
    let phc = u.password_hash.clone();
    let password = password.chars().take(MAX_PASSWORD).collect::<String>();
    if blocking(move || verify_password(&phc, &password)).await? {
        return Ok(());
    }
    let limits = ctx.login_limits;
    let cooldown = limits.cooldown.as_millis() as i64;
    ctx.store
        .record_login_failure(
            &key,
            now,
            now - cooldown,
            i64::from(limits.lock_after),
            now + cooldown,
        )
        .await?;
    Err(Error::invalid(
        "current_password",
        "that is not your current password",
    ))
}

/// A logged-in person changes their own password; their other sessions end (`session`, the
/// one they did it from, stays).
pub async fn change_own_password(
    ctx: &Context,
    actor: &Actor,
    user_id: &str,
    session: &str,
    current: &str,
    new: &str,
) -> Result<()> {
    let u = get(&*ctx.store, user_id).await?;
    confirm_own_password(ctx, &u, current).await?;
    let hash = hash(new).await?;
    ctx.store.set_user_password(&u.id, &hash, now_ms()).await?;
    let ended = ctx.store.delete_other_user_sessions(&u.id, session).await?;
    let details = json!({ "sessions_ended": ended });
    super::audit::record(
        &*ctx.store,
        actor,
        "user.change_password",
        &resource(&u),
        "ok",
        details,
    )
    .await;
    Ok(())
}

/// A second factor being set up: shown to its person, not yet in force.
#[derive(Clone)]
pub struct Enrolment {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    /// The `otpauth://` URI an authenticator app reads.
    pub uri: String,
    /// The secret sealed with the master key, bound to its purpose, its account and an
    /// expiry ([`ENROL_MS`]): the confirming form carries it back, so the enrolment needs no
    /// server state (and works on any node). Anything else sealed with the same key (another
    /// account's stored secret, a webhook's) is refused, never shown.
    pub sealed: String,
}

/// Debug without the secret (the URI carries it too).
impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("secret", &"***")
            .field("uri", &"***")
            .field("sealed", &"***")
            .finish()
    }
}

/// How long a second factor being set up may be confirmed.
pub const ENROL_MS: i64 = 15 * 60 * 1000;
const ENROL_PURPOSE: &str = "totp-enrol";

/// Starts setting up a second factor: a new random key, shown once.
pub fn start_enrolment(ctx: &Context, u: &UserRow) -> Result<Enrolment> {
    let mut key = [0u8; 20];
    getrandom::fill(&mut key).map_err(Error::internal)?;
    let secret = carehook_core::totp::base32(&key);
    let bound = json!({
        "purpose": ENROL_PURPOSE,
        "user": u.id,
        "exp": now_ms() + ENROL_MS,
        "secret": secret,
    });
    Ok(Enrolment {
        uri: carehook_core::totp::otpauth_uri("carehook", &u.email, &key),
        sealed: ctx.registry.vault().seal(&bound.to_string()),
        secret,
    })
}

/// The second factor being set up that `sealed` carries, if it was sealed by
/// [`start_enrolment`] for this account and has not expired; `None` for anything else.
pub fn pending_enrolment(ctx: &Context, u: &UserRow, sealed: &str) -> Option<Enrolment> {
    let plain = ctx.registry.vault().open_secret(sealed).ok()?;
    let v: serde_json::Value = serde_json::from_str(&plain).ok()?;
    if v["purpose"] != ENROL_PURPOSE
        || v["user"].as_str() != Some(u.id.as_str())
        || v["exp"].as_i64().is_none_or(|exp| exp <= now_ms())
    {
        return None;
    }
    let secret = v["secret"].as_str()?.to_string();
    let key = carehook_core::totp::from_base32(&secret).filter(|k| k.len() >= 10)?;
    Some(Enrolment {
        uri: carehook_core::totp::otpauth_uri("carehook", &u.email, &key),
        sealed: sealed.to_string(),
        secret,
    })
}

fn now_secs() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

/// Puts a second factor in force once its person gave their password (a wrong one counts
/// toward the account's lock) and typed a current code of it; their other sessions end.
pub async fn confirm_enrolment(
    ctx: &Context,
    actor: &Actor,
    user_id: &str,
    session: &str,
    sealed: &str,
    password: &str,
    code: &str,
) -> Result<()> {
    let u = get(&*ctx.store, user_id).await?;
    if u.totp_secret.is_some() {
        return Err(Error::Conflict(
            "a second factor is already on; turn it off first to set up another".into(),
        ));
    }
    let secret = pending_enrolment(ctx, &u, sealed)
        .ok_or_else(|| {
            Error::invalid(
                "pending",
                "this setup is not yours or has expired; scan the new code and try again",
            )
        })?
        .secret;
    confirm_own_password(ctx, &u, password).await?;
    let key = carehook_core::totp::from_base32(&secret).unwrap_or_default();
    if !carehook_core::totp::verify(&key, code, now_secs()) {
        return Err(Error::invalid(
            "code",
            "that code is not right; enter the current six digits from your authenticator app",
        ));
    }
    let sealed = ctx.registry.vault().seal(&secret);
    ctx.store
        .set_user_totp(&u.id, Some(&sealed), now_ms())
        .await?;
    let ended = ctx.store.delete_other_user_sessions(&u.id, session).await?;
    let details = json!({
        "before": { "second_factor": false },
        "after": { "second_factor": true },
        "sessions_ended": ended,
    });
    super::audit::record(
        &*ctx.store,
        actor,
        "user.enable_2fa",
        &resource(&u),
        "ok",
        details,
    )
    .await;
    Ok(())
}

/// Turns one's own second factor off, with the password and a current code; the other
/// sessions end.
pub async fn disable_own_second_factor(
    ctx: &Context,
    actor: &Actor,
    user_id: &str,
    session: &str,
    password: &str,
    code: &str,
) -> Result<()> {
    let u = get(&*ctx.store, user_id).await?;
    let Some(sealed) = &u.totp_secret else {
        return Err(Error::Conflict("no second factor is on".into()));
    };
    confirm_own_password(ctx, &u, password).await?;
    let key = ctx
        .registry
        .vault()
        .open_secret(sealed)
        .map_err(Error::internal)?;
    let key = carehook_core::totp::from_base32(&key).unwrap_or_default();
    if !carehook_core::totp::verify(&key, code, now_secs()) {
        return Err(Error::invalid(
            "code",
            "that code is not right; enter the current six digits from your authenticator app",
        ));
    }
    ctx.store.set_user_totp(&u.id, None, now_ms()).await?;
    let ended = ctx.store.delete_other_user_sessions(&u.id, session).await?;
    let details = json!({
        "before": { "second_factor": true },
        "after": { "second_factor": false },
        "sessions_ended": ended,
    });
    super::audit::record(
        &*ctx.store,
        actor,
        "user.disable_2fa",
        &resource(&u),
        "ok",
        details,
    )
    .await;
    Ok(())
}

/// The account as a caller: its role and clinics.
pub fn principal(u: &UserRow) -> Principal {
    let as_token = carehook_store::TokenRow {
        id: carehook_core::ids::TokenId::new(),
        name: u.email.clone(),
        role: u.role.clone(),
        clinics: u.clinics.clone(),
        bodies: u.bodies,
        created_at: u.created_at,
        last_used_at: None,
        revoked_at: None,
    };
    Principal::of_token(&as_token)
}

/// Why a login failed, as the login page says it.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong address or password (which of them is not said).
    Wrong,
    /// The password was right; the account has a second factor and no (or a wrong) code.
    NeedsCode,
    /// Too many failures: try again after this many seconds.
    Locked(u64),
}

/// Checks a login and counts failures; answers the account. `addr`: the client's address.
pub async fn login(
    ctx: &Context,
    email: &str,
    password: &str,
    code: Option<&str>,
    addr: &str,
) -> Result<std::result::Result<UserRow, LoginRefused>> {
    let limits = ctx.login_limits;
    let email = email.trim().to_lowercase();
    let keys = [format!("account:{email}"), format!("addr:{addr}")];
    let now = now_ms();
    for key in &keys {
        if let Some(f) = ctx.store.login_failures(key).await?
            && let Some(until) = f.locked_until
            && until > now
        {
            return Ok(Err(LoginRefused::Locked(
                ((until - now) as u64).div_ceil(1000),
            )));
        }
    }
    let user = if email.len() <= 254 {
        ctx.store.user_by_email(&email).await?
    } else {
        None
    };
    // The same work for an unknown address: verify against a hash of nothing.
    let phc = user
        .as_ref()
        .filter(|u| u.disabled_at.is_none())
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| {
            DUMMY_HASH
                .get_or_init(|| hash_password("").unwrap_or_default())
                .clone()
        });
    let password = password.chars().take(MAX_PASSWORD).collect::<String>();
    let right = blocking(move || verify_password(&phc, &password)).await?;
    let user = user.filter(|u| right && u.disabled_at.is_none());
    let verdict = match user {
        None => Err(LoginRefused::Wrong),
        Some(u) => match &u.totp_secret {
            None => Ok(u),
            Some(sealed) => {
                let key = ctx
                    .registry
                    .vault()
                    .open_secret(sealed)
                    .map_err(Error::internal)?;
                let key = carehook_core::totp::from_base32(&key).unwrap_or_default();
                let secs = (now / 1000) as u64;
                // A code is taken once: its step must be newer than the last one taken
                // (checked and noted in one statement, so two logins racing with one code
                // cannot both pass).
                let step = code.and_then(|c| carehook_core::totp::verify_step(&key, c, secs));
                let fresh = match step {
                    Some(step) => ctx.store.accept_totp_step(&u.id, step as i64).await?,
                    None => false,
                };
                if fresh {
                    Ok(u)
                } else {
                    Err(LoginRefused::NeedsCode)
                }
            }
        },
    };
    match &verdict {
        Ok(u) => {
            ctx.store.set_user_last_login(&u.id, now).await?;
            for key in &keys {
                ctx.store.clear_login_failures(key).await?;
            }
        }
        // A missing code is the second step of a login, not a guess (the password was
        // right); a wrong code counts.
        Err(LoginRefused::NeedsCode) if code.is_none_or(str::is_empty) => {}
        Err(_) => {
            let cooldown = limits.cooldown.as_millis() as i64;
            for key in &keys {
                ctx.store
                    .record_login_failure(
                        key,
                        now,
                        now - cooldown,
                        i64::from(limits.lock_after),
                        now + cooldown,
                    )
                    .await?;
            }
        }
    }
    Ok(verdict)
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_masks_passwords_and_secrets() {
        let u = NewUser {
            email: "ada@clinic.example".into(),
            display_name: "Ada".into(),
            password: "hunter2-hunter2".into(),
            role: Role::Viewer,
            clinics: None,
            bodies: None,
        };
        let shown = format!("{u:?}");
        assert!(shown.contains("ada@clinic.example") && !shown.contains("hunter2"));
        let e = Enrolment {
            secret: "V3TXNBEEC62N335KZRKH6APMJEKBLII5".into(),
            uri: "otpauth://totp/x?secret=V3TXNBEEC62N335KZRKH6APMJEKBLII5".into(),
            sealed: "sealed-blob".into(),
        };
        let shown = format!("{e:?}");
        assert!(
            !shown.contains("V3TX") && !shown.contains("sealed-blob"),
            "{shown}"
        );
    }

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterz"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(h, hash_password("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn addresses_and_passwords_are_checked() {
        assert_eq!(
            check_email(" Ada@Clinic.Example ").unwrap(),
            "ada@clinic.example"
        );
        for bad in ["", "ada", "@x", "a@", "a b@c", "a@b@c"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
    }
}
