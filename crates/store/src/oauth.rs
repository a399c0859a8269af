//! OAuth 2.0 access tokens shared by every node ([`OAuthTokenStore`]): one row per webhook,
//! with a lease that says which node (or task) is asking the provider for the next token.
//! The store never sees a token in plain text: the server seals them before they come here.

use crate::dialect::Dialect;
use crate::error::Result;
use crate::sql::args;
use crate::sql_store::SqlStore;
use crate::types::WebhookId;

/// A webhook's token row. Tokens are sealed (the server's vault), never plain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthTokenRow {
    pub webhook_id: WebhookId,
    pub access_token: Option<String>,
    pub expires_at: Option<i64>,
    /// From here on a node asks for a new token (shortly before `expires_at`).
    pub refresh_at: Option<i64>,
    /// The provider's rotated refresh token, sealed; `None`: the webhook's own.
    pub refresh_token: Option<String>,
    /// Tokens saved so far: a 401 answered to an older one asks for no new one.
    pub generation: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// Why the last token request failed (secrets masked); cleared by a success.
    pub last_error: Option<String>,
    pub failed_at: Option<i64>,
    /// No token request before this, after a refusal the provider will repeat.
    pub blocked_until: Option<i64>,
    /// Token requests made (answered or failed) since the row was made.
    pub requests: i64,
    pub updated_at: i64,
}

/// A new token to keep, sealed.
#[derive(Debug, Clone)]
pub struct OAuthTokenSave {
    pub access_token: String,
    pub expires_at: i64,
    pub refresh_at: i64,
    /// A rotated refresh token, sealed; `None` keeps the one there is.
    pub refresh_token: Option<String>,
    pub now: i64,
}

/// Token rows, one per webhook with an OAuth 2.0 auth kind.
#[async_trait::async_trait]
pub trait OAuthTokenStore: Send + Sync {
    async fn oauth_token(&self, webhook: WebhookId) -> Result<Option<OAuthTokenRow>>;
    async fn oauth_tokens(&self) -> Result<Vec<OAuthTokenRow>>;
    /// Makes the row if missing, then leases it to `owner` until `now + lease_ms` unless a
    /// live lease is someone else's. `Some(row)` when `owner` holds it: then `owner` asks the
    /// provider, and ends with [`OAuthTokenStore::oauth_save`] or
    /// [`OAuthTokenStore::oauth_fail`]. Concurrent callers (tasks or nodes) never both get it.
    async fn oauth_lease(
        &self,
        webhook: WebhookId,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<OAuthTokenRow>>;
    /// Keeps a new token (and a rotated refresh token) and ends `owner`'s lease, in one
    /// statement: the new generation, or `None` when `owner` no longer holds the lease (the
    /// row was reset because the webhook's auth changed): the token belongs to old settings.
    async fn oauth_save(
        &self,
        webhook: WebhookId,
        owner: &str,
        save: OAuthTokenSave,
    ) -> Result<Option<i64>>;
    /// Records a failed token request and ends `owner`'s lease; `blocked_until` stops further
    /// requests until then. False when `owner` no longer held the lease.
    async fn oauth_fail(
        &self,
        webhook: WebhookId,
        owner: &str,
        error: &str,
        now: i64,
        blocked_until: Option<i64>,
    ) -> Result<bool>;
    /// Ends `owner`'s lease without a request (a token arrived meanwhile).
    async fn oauth_release(&self, webhook: WebhookId, owner: &str) -> Result<()>;
    /// Forgets the webhook's tokens (its auth changed, or it was deleted).
    async fn oauth_reset(&self, webhook: WebhookId) -> Result<()>;
}

const COLS: &str = "webhook_id, access_token, expires_at, refresh_at, refresh_token, generation, \
    lease_owner, lease_until, last_error, failed_at, blocked_until, requests, updated_at";

type Tuple = (
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);

fn row(t: Tuple) -> Result<OAuthTokenRow> {
    let (id, access_token, expires_at, refresh_at, refresh_token, generation) =
        (t.0, t.1, t.2, t.3, t.4, t.5);
    Ok(OAuthTokenRow {
        webhook_id: crate::rows::uuid(&id)?.into(),
        access_token,
        expires_at,
        refresh_at,
        refresh_token,
        generation,
        lease_owner: t.6,
        lease_until: t.7,
        last_error: t.8,
        failed_at: t.9,
        blocked_until: t.10,
        requests: t.11,
        updated_at: t.12,
    })
}

#[async_trait::async_trait]
impl<D: Dialect> OAuthTokenStore for SqlStore<D> {
    async fn oauth_token(&self, webhook: WebhookId) -> Result<Option<OAuthTokenRow>> {
        let sql = format!("SELECT {COLS} FROM oauth_tokens WHERE webhook_id = $1");
        let t: Option<Tuple> =
            D::fetch_optional(&mut *self.reader().await?, &sql, args![webhook.to_string()]).await?;
        t.map(row).transpose()
    }

    async fn oauth_tokens(&self) -> Result<Vec<OAuthTokenRow>> {
        let sql = format!("SELECT {COLS} FROM oauth_tokens ORDER BY webhook_id");
        let ts: Vec<Tuple> = D::fetch_all(&mut *self.reader().await?, &sql, args![]).await?;
        ts.into_iter().map(row).collect()
    }

    async fn oauth_lease(
        &self,
        webhook: WebhookId,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<OAuthTokenRow>> {
        let mut conn = self.writer().await?;
        D::execute(
            &mut *conn,
            "INSERT INTO oauth_tokens (webhook_id, generation, requests, updated_at) \
             VALUES ($1, 0, 0, $2) ON CONFLICT (webhook_id) DO NOTHING",
            args![webhook.to_string(), now],
        )
        .await?;
        // A row lock (PostgreSQL) or the one writer (SQLite): the second of two concurrent
        // callers sees the first one's live lease and gets nothing.
        let sql = format!(
            "UPDATE oauth_tokens SET lease_owner = $2, lease_until = $3 + $4 \
             WHERE webhook_id = $1 AND (lease_until IS NULL OR lease_until < $3) \
             RETURNING {COLS}"
        );
        let t: Option<Tuple> = D::fetch_optional(
            &mut *conn,
            &sql,
            args![webhook.to_string(), owner, now, lease_ms],
        )
        .await?;
        t.map(row).transpose()
    }

    async fn oauth_save(
        &self,
        webhook: WebhookId,
        owner: &str,
        save: OAuthTokenSave,
    ) -> Result<Option<i64>> {
        let g: Option<(i64,)> = D::fetch_optional(
            &mut *self.writer().await?,
            "UPDATE oauth_tokens SET access_token = $3, expires_at = $4, refresh_at = $5, \
             refresh_token = COALESCE($6, refresh_token), generation = generation + 1, \
             requests = requests + 1, lease_owner = NULL, lease_until = NULL, \
             last_error = NULL, failed_at = NULL, blocked_until = NULL, updated_at = $7 \
             WHERE webhook_id = $1 AND lease_owner = $2 RETURNING generation",
            args![
                webhook.to_string(),
                owner,
                save.access_token,
                save.expires_at,
                save.refresh_at,
                save.refresh_token,
                save.now
            ],
        )
        .await?;
        Ok(g.map(|(g,)| g))
    }

    async fn oauth_fail(
        &self,
        webhook: WebhookId,
        owner: &str,
        error: &str,
        now: i64,
        blocked_until: Option<i64>,
    ) -> Result<bool> {
        let n = D::execute(
            &mut *self.writer().await?,
            "UPDATE oauth_tokens SET last_error = $3, failed_at = $4, blocked_until = $5, \
             requests = requests + 1, lease_owner = NULL, lease_until = NULL, updated_at = $4 \
             WHERE webhook_id = $1 AND lease_owner = $2",
            args![webhook.to_string(), owner, error, now, blocked_until],
        )
        .await?;
        Ok(n == 1)
    }

    async fn oauth_release(&self, webhook: WebhookId, owner: &str) -> Result<()> {
        D::execute(
            &mut *self.writer().await?,
            "UPDATE oauth_tokens SET lease_owner = NULL, lease_until = NULL \
             WHERE webhook_id = $1 AND lease_owner = $2",
            args![webhook.to_string(), owner],
        )
        .await?;
        Ok(())
    }

    async fn oauth_reset(&self, webhook: WebhookId) -> Result<()> {
        D::execute(
            &mut *self.writer().await?,
            "DELETE FROM oauth_tokens WHERE webhook_id = $1",
            args![webhook.to_string()],
        )
        .await?;
        Ok(())
    }
}
