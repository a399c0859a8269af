//! People: named accounts that log in to the admin UI with an e-mail address, a password
//! (argon2id) and, when they set one up, a TOTP code; each with a role and clinics as an API
//! token has. Made by `carehook users add` (and, on first start, one owner account), listed,
//! disabled, given a new password.
//!
//! Decisions a reader might otherwise undo:
//! - Failed logins are counted per account and per client address, in the database (so every
//!   node counts them): after [`LoginLimits::lock_after`] failures in a row, that account and
//!   that address are refused for [`LoginLimits::cooldown`], the right password included. An
//!   unknown address gets the same answer, after the same work, as a wrong password.
//! - Hashing is argon2id with its recommended parameters (19 MiB, 2 passes), on a blocking
//!   thread: about 20–50 ms, which the limits above keep from becoming a way to load the server.

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use carehook_store::{Store, UserRow};

use super::access::{Principal, Role};
use super::{Context, Error, Result};
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
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub password: String,
    pub role: Role,
    /// `None` or empty: every clinic.
    pub clinics: Option<Vec<String>>,
    pub bodies: Option<bool>,
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

/// A new password; the account's sessions end.
pub async fn reset_password(store: &dyn Store, email: &str, password: &str) -> Result<UserRow> {
    let u = store
        .user_by_email(&check_email(email)?)
        .await?
        .ok_or(Error::NotFound("account"))?;
    check_password(password)?;
    let password = password.to_string();
    let hash = blocking(move || hash_password(&password))
        .await?
        .map_err(Error::internal)?;
    store.set_user_password(&u.id, &hash, now_ms()).await?;
    store.delete_user_sessions(&u.id).await?;
    Ok(u)
}

/// Disables (or enables again) an account; a disabled one's sessions end.
pub async fn set_disabled(store: &dyn Store, email: &str, disabled: bool) -> Result<UserRow> {
    let u = store
        .user_by_email(&check_email(email)?)
        .await?
        .ok_or(Error::NotFound("account"))?;
    let now = now_ms();
    store
        .set_user_disabled(&u.id, disabled.then_some(now), now)
        .await?;
    if disabled {
        store.delete_user_sessions(&u.id).await?;
    }
    Ok(u)
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
                if code.is_some_and(|c| carehook_core::totp::verify(&key, c, secs)) {
                    Ok(u)
                } else {
                    Err(LoginRefused::NeedsCode)
                }
            }
        },
    };
    match &verdict {
        Ok(_) => {
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
