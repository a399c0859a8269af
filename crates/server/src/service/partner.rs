//! Partner links: an owner or admin shares ONE webhook's delivery log, read-only, with the
//! team that runs its receiving service (what a hosted "app portal" does), through a link
//! that expires (7 days unless asked, 90 at most) and can be revoked. The public page is
//! `ui::partner`; this module holds the rules.
//!
//! Decisions a reader might otherwise undo:
//! - The store keeps the SHA-256 of the link's secret, never the secret: the link is shown
//!   once, when made, and a copy of the table opens nothing. A link is looked up by that hash
//!   (an index), then the hash is compared again in constant time: the lookup's timing could
//!   only tell an attacker about a hash, which says nothing about a secret. Secrets carry 256
//!   random bits, and failed lookups are also rate-limited per client address (`ui::partner`).
//! - Bodies (and patient names) show only on a link made with `show_bodies`, which only a
//!   creator allowed bodies may set: a link never shows more than its maker could see.
//! - Another clinic's webhook is a 404 here too, and only owners and admins may share (an
//!   editor may change a webhook but not hand its log to someone outside carehook).
//! - A link keeps what it was made under (migration 0018): its maker (`admin`, `user:<id>`,
//!   `token:<id>`) and its webhook's clinics. Each opening checks both again: the webhook's
//!   clinics must still be within those, and the maker must still be able to make the link
//!   (not disabled or revoked, owner or admin, seeing the webhook); otherwise it is 410.
//!   Bodies show only while the maker may still see them. Links made before have neither
//!   and do not open (fail closed).
//! - Every opening of a link is audited (`partner.open`), as a read of bodies is; a refused
//!   one once per link until a quiet minute ([`RefusalLog`]), not once per request.

use carehook_core::ids::WebhookId;
use carehook_store::PartnerLinkRow;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::access::{Principal, Role};
use super::{Actor, Context, Error, Result};
use crate::time::now_ms;

pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a link works unless asked otherwise.
pub const DEFAULT_DAYS: i64 = 7;
/// The longest a link may work.
pub const MAX_DAYS: i64 = 90;
/// What a link's secret starts with (so one found in a chat is recognised).
pub const SECRET_PREFIX: &str = "chp_";
/// Where a link's page lives: `/partner/{secret}`.
pub const PATH_PREFIX: &str = "/partner/";

/// What a new link is asked to be.
#[derive(Debug, Clone, Default)]
pub struct NewLink {
    /// 1 to [`MAX_DAYS`]; `None`: [`DEFAULT_DAYS`].
    pub expires_in_days: Option<i64>,
    pub label: Option<String>,
    /// `None`: no (bodies masked).
    pub show_bodies: Option<bool>,
}

/// Hex SHA-256 of a link's secret: what the store keeps.
pub fn hash_secret(secret: &str) -> String {
    super::tokens::hash_token(secret)
}

/// Whether `text` has the shape of a link secret (`chp_` and 43 base64url characters);
/// anything else is refused before the database is asked.
pub fn looks_like_secret(text: &str) -> bool {
    text.strip_prefix(SECRET_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn generate_secret() -> Result<String> {
    use base64::Engine as _;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    ))
}

/// The link's address as the client that made it reaches this server: its `Host`, and
/// `https` when a proxy in front says so (`X-Forwarded-Proto`); a path alone without a host.
pub fn link_url(headers: &axum::http::HeaderMap, secret: &str) -> String {
    let path = format!("{PATH_PREFIX}{secret}");
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    match host {
        Some(h) => format!("{}://{h}{path}", if https { "https" } else { "http" }),
        None => path,
    }
}

/// Only owners and admins share a log outside carehook.
fn may_share(who: &Principal) -> Result<()> {
    match who.role {
        Role::Owner | Role::Admin => Ok(()),
        _ => Err(Error::Forbidden(
            "only an owner or an admin may share a webhook's log with a partner".into(),
        )),
    }
}

/// A link's label, trimmed: up to 100 characters, no control characters; empty is none.
fn check_label(label: Option<String>) -> Result<Option<String>> {
    let Some(label) = label else {
        return Ok(None);
    };
    let label = label.trim();
    if label.is_empty() {
        return Ok(None);
    }
    if label.chars().count() > 100 {
        return Err(Error::invalid(
            "label",
            "a label is at most 100 characters, e.g. \"Pharmacy IT team\"",
        ));
    }
    if label.chars().any(char::is_control) {
        return Err(Error::invalid(
            "label",
            "a label may not hold control characters",
        ));
    }
    Ok(Some(label.to_string()))
}

fn check_days(days: Option<i64>) -> Result<i64> {
    match days {
        None => Ok(DEFAULT_DAYS),
        Some(d) if (1..=MAX_DAYS).contains(&d) => Ok(d),
        Some(d) => Err(Error::invalid(
            "expires_in_days",
            format!("a link works for 1 to {MAX_DAYS} days, not {d}"),
        )),
    }
}

/// Makes a link to webhook `id`'s log; answers it with its secret, shown this once.
/// `maker`: who makes it, as [`maker_now`] finds them again (`admin`, `user:<id>`,
/// `token:<id>`); the link works only while they still could make it.
pub async fn create(
    ctx: &Context,
    who: &Principal,
    actor: &Actor,
    maker: &str,
    id: WebhookId,
    new: NewLink,
) -> Result<(PartnerLinkRow, String)> {
    let webhook = super::access::webhook(ctx, who, id).await?;
    may_share(who)?;
    let days = check_days(new.expires_in_days)?;
    let label = check_label(new.label)?;
    let show_bodies = new.show_bodies.unwrap_or(false);
    if show_bodies && !who.bodies {
        return Err(Error::invalid(
            "show_bodies",
            "you may not see bodies in the log, so a link of yours cannot show them",
        ));
    }
    let secret = generate_secret()?;
    let now = now_ms();
    let row = PartnerLinkRow {
        id: Uuid::now_v7(),
        secret_hash: hash_secret(&secret),
        webhook_id: id,
        label,
        show_bodies,
        created_by: actor.to_string(),
        created_at: now,
        expires_at: now + days * DAY_MS,
        revoked_at: None,
        maker: Some(maker.to_string()),
        clinics_at_creation: Some(webhook.compiled.spec.clinics.clone()),
    };
    ctx.store.insert_partner_link(&row).await?;
    tracing::info!(webhook = %id, link = %row.id, by = %actor, "partner link made");
    let details = serde_json::json!({ "after": {
        "id": row.id, "label": row.label, "show_bodies": row.show_bodies,
        "expires_at": crate::time::rfc3339(row.expires_at),
    } });
    super::audit::record(
        &*ctx.store,
        actor,
        "partner.create",
        &format!("webhook/{id}"),
        "ok",
        details,
    )
    .await;
    Ok((row, secret))
}

/// A webhook's links (never their secrets), newest first.
pub async fn list(ctx: &Context, who: &Principal, id: WebhookId) -> Result<Vec<PartnerLinkRow>> {
    super::access::webhook(ctx, who, id).await?;
    may_share(who)?;
    Ok(ctx.store.list_partner_links(id).await?)
}

/// Revokes a link of webhook `id`: its page stops working at once.
pub async fn revoke(
    ctx: &Context,
    who: &Principal,
    actor: &Actor,
    id: WebhookId,
    link: Uuid,
) -> Result<()> {
    super::access::webhook(ctx, who, id).await?;
    may_share(who)?;
    let done = ctx
        .store
        .revoke_partner_link(id, link, now_ms())
        .await
        .map_err(Error::from)
        .and_then(|ok| {
            if ok {
                Ok(())
            } else {
                Err(Error::NotFound("active partner link"))
            }
        });
    super::audit::record(
        &*ctx.store,
        actor,
        "partner.revoke",
        &format!("webhook/{id}"),
        super::audit::outcome_of(&done),
        serde_json::json!({ "id": link }),
    )
    .await;
    done?;
    tracing::info!(webhook = %id, link = %link, by = %actor, "partner link revoked");
    Ok(())
}

/// What a presented secret opens.
#[derive(Debug)]
pub enum Opened {
    /// A link that works.
    Valid(PartnerLinkRow),
    /// A link that existed and no longer works (expired, revoked, its webhook deleted or
    /// moved to other clinics, its maker no longer allowed to make it).
    Gone,
    /// No link has this secret.
    Unknown,
}

/// Who a partner link's maker (`admin`, `token:<id>`, `user:<id>`) is now: `None` if they
/// are gone, revoked or disabled (or the maker is not one of these).
pub async fn maker_now(ctx: &Context, maker: &str) -> Result<Option<Principal>> {
    if maker == "admin" {
        return Ok(Some(Principal::admin()));
    }
    if let Some(id) = maker.strip_prefix("token:") {
        let tokens = ctx.store.list_tokens().await?;
        return Ok(tokens
            .iter()
            .find(|t| t.id.to_string() == id && t.revoked_at.is_none())
            .map(Principal::of_token));
    }
    if let Some(id) = maker.strip_prefix("user:") {
        return Ok(ctx
            .store
            .get_user(id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .map(|u| super::users::principal(&u)));
    }
    Ok(None)
}

/// Why a link that exists no longer works at `now`, if it does not.
async fn why_gone(
    ctx: &Context,
    link: &mut PartnerLinkRow,
    now: i64,
) -> Result<Option<&'static str>> {
    if link.revoked_at.is_some() {
        return Ok(Some("revoked"));
    }
    if link.expires_at <= now {
        return Ok(Some("expired"));
    }
    let webhook = match super::webhooks::loaded(ctx, link.webhook_id).await {
        Ok(w) => w,
        Err(Error::NotFound(_)) => return Ok(Some("webhook deleted")),
        Err(e) => return Err(e),
    };
    // The webhook's clinics now must be within those it had when the link was made (empty:
    // every clinic): a webhook moved to another clinic is not shown to the first one's
    // partner. A link made before these were kept does not open.
    let Some(at_creation) = &link.clinics_at_creation else {
        return Ok(Some("made before its clinics were kept"));
    };
    let now_clinics = &webhook.compiled.spec.clinics;
    let allowed = (!at_creation.is_empty()).then_some(at_creation.as_slice());
    if !carehook_core::clinics::covers(allowed, now_clinics) {
        return Ok(Some("webhook moved to other clinics"));
    }
    // Its maker must still be able to make it: there, owner or admin, seeing the webhook.
    let maker = match &link.maker {
        Some(m) => maker_now(ctx, m).await?,
        None => None,
    };
    let Some(maker) = maker else {
        return Ok(Some("maker gone"));
    };
    if may_share(&maker).is_err() || !maker.sees_webhook(&webhook) {
        return Ok(Some("maker may no longer share it"));
    }
    // Bodies only while the maker still may see them.
    link.show_bodies = link.show_bodies && maker.bodies;
    Ok(None)
}

/// Whether a link neither revoked nor expired no longer works all the same (its webhook
/// moved to other clinics or was deleted, its maker may no longer make it): listed as
/// `ended`. Revoking it keeps it from working again if its maker's rights come back.
pub async fn ended(ctx: &Context, link: &PartnerLinkRow, now: i64) -> Result<bool> {
    if link.revoked_at.is_some() || link.expires_at <= now {
        return Ok(false);
    }
    Ok(why_gone(ctx, &mut link.clone(), now).await?.is_some())
}

/// The link `secret` opens at `now`. Nothing is audited here: the page audits what it shows
/// ([`audit_open`]), and a link no longer valid is audited as refused (at most once a
/// minute per link: see [`RefusalLog`]).
pub async fn open(ctx: &Context, secret: &str, now: i64) -> Result<Opened> {
    if !looks_like_secret(secret) {
        return Ok(Opened::Unknown);
    }
    let hash = hash_secret(secret);
    let Some(mut link) = ctx.store.partner_link_by_hash(&hash).await? else {
        return Ok(Opened::Unknown);
    };
    if !bool::from(link.secret_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Ok(Opened::Unknown);
    }
    if let Some(why) = why_gone(ctx, &mut link, now).await? {
        if refusals().first_this_minute(link.id, now) {
            super::audit::record(
                &*ctx.store,
                &Actor::Partner(link.id.to_string()),
                "partner.open",
                &format!("webhook/{}", link.webhook_id),
                "denied",
                serde_json::json!({ "link": link.id, "why": why }),
            )
            .await;
        }
        return Ok(Opened::Gone);
    }
    Ok(Opened::Valid(link))
}

/// The links whose refusal was audited this minute or the last: a link no longer valid is
/// audited once, then not again until a whole minute has passed without it being noted (two
/// generations, swapped when the minute turns; bounded: past [`RefusalLog::CAP`] links a
/// minute, the rest go unaudited until the next minute).
#[derive(Debug, Default)]
pub struct RefusalLog {
    inner: std::sync::Mutex<RefusalGenerations>,
}

#[derive(Debug, Default)]
struct RefusalGenerations {
    minute: i64,
    current: std::collections::HashSet<Uuid>,
    previous: std::collections::HashSet<Uuid>,
}

impl RefusalLog {
    pub const CAP: usize = 10_000;

    /// Whether the link's refusal at `now` is to be audited (and notes it).
    pub fn first_this_minute(&self, link: Uuid, now: i64) -> bool {
        let minute = now.div_euclid(60_000);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.minute != minute {
            let current = std::mem::take(&mut g.current);
            g.previous = if minute == g.minute + 1 {
                current
            } else {
                Default::default()
            };
            g.minute = minute;
        }
        if g.current.contains(&link) || g.previous.contains(&link) || g.current.len() >= Self::CAP {
            return false;
        }
        g.current.insert(link)
    }
}

fn refusals() -> &'static RefusalLog {
    static LOG: std::sync::OnceLock<RefusalLog> = std::sync::OnceLock::new();
    LOG.get_or_init(RefusalLog::default)
}

/// Records that a link showed `page` (`log`, or `delivery/{id}`); with bodies, a page that
/// cannot be audited is not shown.
pub async fn audit_open(ctx: &Context, link: &PartnerLinkRow, page: &str) -> Result<()> {
    let actor = Actor::Partner(link.id.to_string());
    let resource = format!("webhook/{}", link.webhook_id);
    let details = serde_json::json!({ "link": link.id, "page": page, "bodies": link.show_bodies });
    if link.show_bodies {
        super::audit::must_record(
            &*ctx.store,
            &actor,
            "partner.open",
            &resource,
            "ok",
            details,
        )
        .await?;
    } else {
        super::audit::record(
            &*ctx.store,
            &actor,
            "partner.open",
            &resource,
            "ok",
            details,
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_secrets_reach_the_database() {
        let s = generate_secret().unwrap();
        assert!(looks_like_secret(&s), "{s}");
        assert!(!looks_like_secret(&s[..s.len() - 1]));
        assert!(!looks_like_secret(&format!("{s}x")));
        assert!(!looks_like_secret(
            "chp_../../../../etc/passwd-aaaaaaaaaaaaaaaaaaaa"
        ));
        assert!(!looks_like_secret(""));
        assert_ne!(hash_secret(&s), s);
    }

    #[test]
    fn a_link_works_for_one_to_ninety_days() {
        assert_eq!(check_days(None).unwrap(), 7);
        assert_eq!(check_days(Some(90)).unwrap(), 90);
        assert!(check_days(Some(0)).is_err());
        assert!(check_days(Some(91)).is_err());
        assert_eq!(check_label(Some("  ".into())).unwrap(), None);
        assert!(check_label(Some("a\nb".into())).is_err());
    }

    #[test]
    fn a_refusal_is_noted_once_until_a_quiet_minute() {
        let log = RefusalLog::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let t = 10 * 60_000 + 59_000;
        assert!(log.first_this_minute(a, t));
        assert!(!log.first_this_minute(a, t + 500));
        assert!(!log.first_this_minute(a, t + 2_000), "the minute turned");
        assert!(log.first_this_minute(b, t + 2_000));
        assert!(log.first_this_minute(a, t + 125_000), "a quiet minute");
    }
}
