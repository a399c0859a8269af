//! Partner links ([`PartnerLinkStore`]): read-only links that show one webhook's delivery log
//! to the team that runs its receiving service. The store keeps the SHA-256 of a link's
//! secret, never the secret (the server hashes it first, as it does API tokens).

use carehook_core::ids::WebhookId;
use uuid::Uuid;

use crate::dialect::Dialect;
use crate::error::Result;
use crate::sql::args;
use crate::sql_store::SqlStore;

/// A partner link, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerLinkRow {
    pub id: Uuid,
    /// Hex SHA-256 of the link's secret.
    pub secret_hash: String,
    pub webhook_id: WebhookId,
    pub label: Option<String>,
    /// Whether the page shows request and response bodies and patient names.
    pub show_bodies: bool,
    /// Who made it, as the audit trail names an actor.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// Who made it, as the server finds them again to check they still could: `admin`,
    /// `user:<id>` or `token:<id>`. `None` for a link made before this was kept.
    pub maker: Option<String>,
    /// The webhook's clinics when the link was made (empty: every clinic); `None` for a link
    /// made before this was kept.
    pub clinics_at_creation: Option<Vec<String>>,
}

#[async_trait::async_trait]
pub trait PartnerLinkStore: Send + Sync {
    /// A duplicate id or secret hash is `Conflict`.
    async fn insert_partner_link(&self, link: &PartnerLinkRow) -> Result<()>;
    /// The link with this secret hash, revoked or expired ones too (the server says why it no
    /// longer works).
    async fn partner_link_by_hash(&self, secret_hash: &str) -> Result<Option<PartnerLinkRow>>;
    /// A webhook's links, newest first, revoked and expired ones too.
    async fn list_partner_links(&self, webhook_id: WebhookId) -> Result<Vec<PartnerLinkRow>>;
    /// Revokes a link of this webhook at `now`. False if there is none, or it was revoked.
    async fn revoke_partner_link(&self, webhook_id: WebhookId, id: Uuid, now: i64) -> Result<bool>;
}

const COLS: &str = "id, secret_hash, webhook_id, label, show_bodies, created_by, created_at, \
    expires_at, revoked_at, maker, clinics_at_creation";

type LinkTuple = (
    String,
    String,
    String,
    Option<String>,
    bool,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn link(t: LinkTuple) -> Result<PartnerLinkRow> {
    Ok(PartnerLinkRow {
        id: crate::rows::uuid(&t.0)?,
        secret_hash: t.1,
        webhook_id: crate::rows::uuid(&t.2)?.into(),
        label: t.3,
        show_bodies: t.4,
        created_by: t.5,
        created_at: t.6,
        expires_at: t.7,
        revoked_at: t.8,
        maker: t.9,
        // Unreadable clinics read as none kept: the link no longer opens.
        clinics_at_creation: t
            .10
            .and_then(|c| serde_json::from_str::<Vec<String>>(&c).ok()),
    })
}

#[async_trait::async_trait]
impl<D: Dialect> PartnerLinkStore for SqlStore<D> {
    async fn insert_partner_link(&self, l: &PartnerLinkRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO partner_links ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        D::execute(
            &mut *self.writer().await?,
            &sql,
            args![
                l.id.to_string(),
                l.secret_hash.as_str(),
                l.webhook_id.to_string(),
                l.label.clone(),
                l.show_bodies,
                l.created_by.as_str(),
                l.created_at,
                l.expires_at,
                l.revoked_at,
                l.maker.clone(),
                l.clinics_at_creation
                    .as_ref()
                    .map(|c| serde_json::Value::from(c.clone()).to_string())
            ],
        )
        .await?;
        Ok(())
    }

    async fn partner_link_by_hash(&self, secret_hash: &str) -> Result<Option<PartnerLinkRow>> {
        let sql = format!("SELECT {COLS} FROM partner_links WHERE secret_hash = $1");
        let t: Option<LinkTuple> =
            D::fetch_optional(&mut *self.reader().await?, &sql, args![secret_hash]).await?;
        t.map(link).transpose()
    }

    async fn list_partner_links(&self, webhook_id: WebhookId) -> Result<Vec<PartnerLinkRow>> {
        let sql = format!(
            "SELECT {COLS} FROM partner_links WHERE webhook_id = $1 \
             ORDER BY created_at DESC, id DESC"
        );
        let ts: Vec<LinkTuple> = D::fetch_all(
            &mut *self.reader().await?,
            &sql,
            args![webhook_id.to_string()],
        )
        .await?;
        ts.into_iter().map(link).collect()
    }

    async fn revoke_partner_link(&self, webhook_id: WebhookId, id: Uuid, now: i64) -> Result<bool> {
        let n = D::execute(
            &mut *self.writer().await?,
            "UPDATE partner_links SET revoked_at = $3 \
             WHERE id = $1 AND webhook_id = $2 AND revoked_at IS NULL",
            args![id.to_string(), webhook_id.to_string(), now],
        )
        .await?;
        Ok(n == 1)
    }
}
