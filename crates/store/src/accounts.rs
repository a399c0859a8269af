//! People and their admin-UI sessions ([`AccountStore`]): named accounts with a role, the
//! sessions of the admin UI (kept here so they survive a restart and work on every node), and
//! the failed-login streaks that slow down password guessing. The store never sees a
//! password, a session id or a TOTP secret: the server hashes or seals them first.

use crate::dialect::Dialect;
use crate::error::{Result, StoreError};
use crate::sql::args;
use crate::sql_store::SqlStore;

/// An account. `password_hash` is an argon2id PHC string; `totp_secret` is sealed. Its
/// `Debug` leaves both out, so a logged row carries neither.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    /// Lower-case.
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    pub role: String,
    pub clinics: Option<Vec<String>>,
    pub bodies: bool,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The last successful login to the admin UI; `None`: never.
    pub last_login_at: Option<i64>,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("password_hash", &"***")
            .field("totp_secret", &self.totp_secret.as_ref().map(|_| "***"))
            .field("role", &self.role)
            .field("clinics", &self.clinics)
            .field("bodies", &self.bodies)
            .field("disabled_at", &self.disabled_at)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

/// What an owner may change of an account (all of it at once: read, change, write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub display_name: String,
    pub role: String,
    pub clinics: Option<Vec<String>>,
    pub bodies: bool,
}

/// An admin-UI session. `key` is the SHA-256 of the cookie's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub key: String,
    /// A user's session…
    pub user_id: Option<String>,
    /// …or one opened with an API token (its hash).
    pub token_hash: Option<String>,
    pub csrf: String,
    pub created_at: i64,
    pub last_seen: i64,
    /// JSON list of messages for the next page.
    pub flashes: String,
    /// Sealed, by the server.
    pub reveal: Option<String>,
}

/// A failed-login streak: of an account or of a client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub failures: i64,
    pub last_at: i64,
    pub locked_until: Option<i64>,
}

#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    /// A taken e-mail address (or id) is `Conflict`.
    async fn insert_user(&self, u: &UserRow) -> Result<()>;
    async fn get_user(&self, id: &str) -> Result<Option<UserRow>>;
    /// By lower-case e-mail address.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>>;
    /// Oldest first.
    async fn list_users(&self) -> Result<Vec<UserRow>>;
    async fn count_users(&self) -> Result<i64>;
    /// False if there is no such user.
    async fn set_user_password(&self, id: &str, password_hash: &str, now: i64) -> Result<bool>;
    /// `None` enables the account again. False if there is no such user.
    async fn set_user_disabled(&self, id: &str, disabled_at: Option<i64>, now: i64)
    -> Result<bool>;
    /// `None` removes the second factor. False if there is no such user.
    async fn set_user_totp(&self, id: &str, totp_secret: Option<&str>, now: i64) -> Result<bool>;
    /// Sets the display name, role, clinics and bodies. False if there is no such user.
    async fn update_user(&self, id: &str, change: &UserChange, now: i64) -> Result<bool>;
    /// Records a successful login.
    async fn set_user_last_login(&self, id: &str, at: i64) -> Result<()>;
    /// Takes TOTP time step `step` as this user's latest, in one statement: false if a step as
    /// new or newer was already taken (a code used again), or there is no such user.
    async fn accept_totp_step(&self, id: &str, step: i64) -> Result<bool>;

    async fn insert_session(&self, s: &SessionRow) -> Result<()>;
    /// The session, with `last_seen` set to `now`, if it was created after `created_after`
    /// and seen after `seen_after`; an expired one is deleted and `None`.
    async fn touch_session(
        &self,
        key: &str,
        now: i64,
        created_after: i64,
        seen_after: i64,
    ) -> Result<Option<SessionRow>>;
    async fn delete_session(&self, key: &str) -> Result<()>;
    /// Ends every session of a user (disabled, new password). Answers how many.
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64>;
    /// Ends every session of a user but the one keyed `keep` (the password or second factor
    /// changed from that session). Answers how many.
    async fn delete_other_user_sessions(&self, user_id: &str, keep: &str) -> Result<u64>;
    /// Replaces the session's flashes and reveal. False if the session is gone.
    async fn set_session_extras(
        &self,
        key: &str,
        flashes: &str,
        reveal: Option<&str>,
    ) -> Result<bool>;
    /// The session's flashes and reveal, without touching it.
    async fn session_extras(&self, key: &str) -> Result<Option<(String, Option<String>)>>;
    /// Deletes sessions created before `created_before` or not seen since `seen_before`.
    async fn delete_expired_sessions(&self, created_before: i64, seen_before: i64) -> Result<u64>;

    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>>;
    /// Counts one more failure at `now` (a streak older than `reset_before` starts again at
    /// one) and sets `locked_until` when the count reaches `lock_after`. The new streak.
    async fn record_login_failure(
        &self,
        key: &str,
        now: i64,
        reset_before: i64,
        lock_after: i64,
        locked_until: i64,
    ) -> Result<LoginFailures>;
    async fn clear_login_failures(&self, key: &str) -> Result<()>;
}

const USER_COLS: &str = "id, email, display_name, password_hash, totp_secret, role, clinics, \
    bodies, disabled_at, created_at, updated_at, last_login_at";

type UserTuple = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    bool,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
);

fn user(t: UserTuple) -> Result<UserRow> {
    Ok(UserRow {
        id: t.0,
        email: t.1,
        display_name: t.2,
        password_hash: t.3,
        totp_secret: t.4,
        role: t.5,
        clinics: t
            .6
            .map(|c| crate::rows::json("users.clinics", &c))
            .transpose()?,
        bodies: t.7,
        disabled_at: t.8,
        created_at: t.9,
        updated_at: t.10,
        last_login_at: t.11,
    })
}

const SESSION_COLS: &str = "key, user_id, token_hash, csrf, created_at, last_seen, flashes, reveal";

type SessionTuple = (
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    String,
    Option<String>,
);

fn session(t: SessionTuple) -> SessionRow {
    SessionRow {
        key: t.0,
        user_id: t.1,
        token_hash: t.2,
        csrf: t.3,
        created_at: t.4,
        last_seen: t.5,
        flashes: t.6,
        reveal: t.7,
    }
}

#[async_trait::async_trait]
impl<D: Dialect> AccountStore for SqlStore<D> {
    async fn insert_user(&self, u: &UserRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO users ({USER_COLS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let clinics = u.clinics.as_ref().map(crate::rows::to_json);
        D::execute(
            &mut *self.writer().await?,
            &sql,
            args![
                u.id.as_str(),
                u.email.as_str(),
                u.display_name.as_str(),
                u.password_hash.as_str(),
                u.totp_secret.clone(),
                u.role.as_str(),
                clinics,
                u.bodies,
                u.disabled_at,
                u.created_at,
                u.updated_at,
                u.last_login_at
            ],
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("an account with the e-mail {} exists", u.email))
            }
            e => e,
        })?;
        Ok(())
    }

    async fn get_user(&self, id: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        let t: Option<UserTuple> =
            D::fetch_optional(&mut *self.reader().await?, &sql, args![id]).await?;
        t.map(user).transpose()
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
        let t: Option<UserTuple> =
            D::fetch_optional(&mut *self.reader().await?, &sql, args![email]).await?;
        t.map(user).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY created_at, id");
        let ts: Vec<UserTuple> = D::fetch_all(&mut *self.reader().await?, &sql, args![]).await?;
        ts.into_iter().map(user).collect()
    }

    async fn count_users(&self) -> Result<i64> {
        let n: Option<(i64,)> = D::fetch_optional(
            &mut *self.reader().await?,
            "SELECT count(*) FROM users",
            args![],
        )
        .await?;
        Ok(n.map_or(0, |(n,)| n))
    }

    async fn set_user_password(&self, id: &str, password_hash: &str, now: i64) -> Result<bool> {
        let n = D::execute(
            &mut *self.writer().await?,
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
            args![id, password_hash, now],
        )
        .await?;
        Ok(n == 1)
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled_at: Option<i64>,
        now: i64,
    ) -> Result<bool> {
        let n = D::execute(
            &mut *self.writer().await?,
            "UPDATE users SET disabled_at = $2, updated_at = $3 WHERE id = $1",
            args![id, disabled_at, now],
        )
        .await?;
        Ok(n == 1)
    }

    async fn set_user_totp(&self, id: &str, totp_secret: Option<&str>, now: i64) -> Result<bool> {
        let n = D::execute(
            &mut *self.writer().await?,
            "UPDATE users SET totp_secret = $2, updated_at = $3 WHERE id = $1",
            args![id, totp_secret.map(str::to_string), now],
        )
        .await?;
        Ok(n == 1)
    }

    async fn update_user(&self, id: &str, change: &UserChange, now: i64) -> Result<bool> {
        let clinics = change.clinics.as_ref().map(crate::rows::to_json);
        let n = D::execute(
            &mut *self.writer().await?,
            "UPDATE users SET display_name = $2, role = $3, clinics = $4, bodies = $5, \
             updated_at = $6 WHERE id = $1",
            args![
                id,
                change.display_name.as_str(),
                change.role.as_str(),
                clinics,
                change.bodies,
                now
            ],
        )
        .await?;
        Ok(n == 1)
    }

    async fn set_user_last_login(&self, id: &str, at: i64) -> Result<()> {
        D::execute(
            &mut *self.writer().await?,
            "UPDATE users SET last_login_at = $2 WHERE id = $1",
            args![id, at],
        )
        .await?;
        Ok(())
    }

    async fn accept_totp_step(&self, id: &str, step: i64) -> Result<bool> {
        let n = D::execute(
            &mut *self.writer().await?,
            "UPDATE users SET totp_last_step = $2 \
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            args![id, step],
        )
        .await?;
        Ok(n == 1)
    }

    async fn insert_session(&self, s: &SessionRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO ui_sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        D::execute(
            &mut *self.writer().await?,
            &sql,
            args![
                s.key.as_str(),
                s.user_id.clone(),
                s.token_hash.clone(),
                s.csrf.as_str(),
                s.created_at,
                s.last_seen,
                s.flashes.as_str(),
                s.reveal.clone()
            ],
        )
        .await?;
        Ok(())
    }

    async fn touch_session(
        &self,
        key: &str,
        now: i64,
        created_after: i64,
        seen_after: i64,
    ) -> Result<Option<SessionRow>> {
        let mut conn = self.writer().await?;
        let sql = format!(
            "UPDATE ui_sessions SET last_seen = $2 \
             WHERE key = $1 AND created_at > $3 AND last_seen > $4 RETURNING {SESSION_COLS}"
        );
        let t: Option<SessionTuple> =
            D::fetch_optional(&mut *conn, &sql, args![key, now, created_after, seen_after]).await?;
        if t.is_none() {
            D::execute(
                &mut *conn,
                "DELETE FROM ui_sessions WHERE key = $1",
                args![key],
            )
            .await?;
        }
        Ok(t.map(session))
    }

    async fn delete_session(&self, key: &str) -> Result<()> {
        D::execute(
            &mut *self.writer().await?,
            "DELETE FROM ui_sessions WHERE key = $1",
            args![key],
        )
        .await?;
        Ok(())
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        D::execute(
            &mut *self.writer().await?,
            "DELETE FROM ui_sessions WHERE user_id = $1",
            args![user_id],
        )
        .await
    }

    async fn delete_other_user_sessions(&self, user_id: &str, keep: &str) -> Result<u64> {
        D::execute(
            &mut *self.writer().await?,
            "DELETE FROM ui_sessions WHERE user_id = $1 AND key <> $2",
            args![user_id, keep],
        )
        .await
    }

    async fn set_session_extras(
        &self,
        key: &str,
        flashes: &str,
        reveal: Option<&str>,
    ) -> Result<bool> {
        let n = D::execute(
            &mut *self.writer().await?,
            "UPDATE ui_sessions SET flashes = $2, reveal = $3 WHERE key = $1",
            args![key, flashes, reveal.map(str::to_string)],
        )
        .await?;
        Ok(n == 1)
    }

    async fn session_extras(&self, key: &str) -> Result<Option<(String, Option<String>)>> {
        D::fetch_optional(
            &mut *self.reader().await?,
            "SELECT flashes, reveal FROM ui_sessions WHERE key = $1",
            args![key],
        )
        .await
    }

    async fn delete_expired_sessions(&self, created_before: i64, seen_before: i64) -> Result<u64> {
        D::execute(
            &mut *self.writer().await?,
            "DELETE FROM ui_sessions WHERE created_at < $1 OR last_seen < $2",
            args![created_before, seen_before],
        )
        .await
    }

    async fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>> {
        let t: Option<(i64, i64, Option<i64>)> = D::fetch_optional(
            &mut *self.reader().await?,
            "SELECT failures, last_at, locked_until FROM login_failures WHERE key = $1",
            args![key],
        )
        .await?;
        Ok(t.map(|(failures, last_at, locked_until)| LoginFailures {
            failures,
            last_at,
            locked_until,
        }))
    }

    async fn record_login_failure(
        &self,
        key: &str,
        now: i64,
        reset_before: i64,
        lock_after: i64,
        locked_until: i64,
    ) -> Result<LoginFailures> {
        // One statement: concurrent failures (other nodes too) each count.
        let t: Option<(i64, i64, Option<i64>)> = D::fetch_optional(
            &mut *self.writer().await?,
            "INSERT INTO login_failures (key, failures, last_at, locked_until) \
             VALUES ($1, 1, $2, CASE WHEN 1 >= $4 THEN $5 END) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN login_failures.last_at < $3 THEN 1 \
                               ELSE login_failures.failures + 1 END, \
               last_at = $2, \
               locked_until = CASE \
                 WHEN (CASE WHEN login_failures.last_at < $3 THEN 1 \
                            ELSE login_failures.failures + 1 END) >= $4 THEN $5 \
                 ELSE login_failures.locked_until END \
             RETURNING failures, last_at, locked_until",
            args![key, now, reset_before, lock_after, locked_until],
        )
        .await?;
        let (failures, last_at, locked_until) =
            t.ok_or_else(|| StoreError::Corrupt("a login failure was not recorded".into()))?;
        Ok(LoginFailures {
            failures,
            last_at,
            locked_until,
        })
    }

    async fn clear_login_failures(&self, key: &str) -> Result<()> {
        D::execute(
            &mut *self.writer().await?,
            "DELETE FROM login_failures WHERE key = $1",
            args![key],
        )
        .await?;
        Ok(())
    }
}
