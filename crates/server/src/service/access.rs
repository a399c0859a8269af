//! Who may do what: the five roles, a caller's clinics, and the checks that keep a caller to
//! what its clinics own. Which role may call which API operation is the policy table in
//! `api/policy.rs`; this module holds what that table and the handlers share.
//!
//! Decisions a reader might otherwise undo:
//! - Another clinic's webhook or delivery is [`Error::NotFound`], exactly as a missing one:
//!   a 403 would confirm that it exists.
//! - A webhook of every clinic (no `clinics`) may carry any clinic's data, so only a caller of
//!   every clinic sees it ([`carehook_core::clinics::covers`]).
//! - The admin token from the environment (or the first start) is an `owner` of every clinic,
//!   and so is every token made before roles existed (migration 0011).

use std::sync::Arc;

use carehook_core::clinics;
use carehook_core::ids::{DeliveryId, WebhookId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Context, Error, Result};
use crate::registry::Loaded;

/// What a caller may do. Each role may do what the roles after it may (in this order), except
/// `ingest`, which may only push events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, users and tokens included.
    Owner,
    /// Webhooks, retries, clinic records, patient data; not tokens.
    Admin,
    /// Webhooks (of their clinics): create, change, test, retry.
    Editor,
    /// Reads webhooks and the delivery log; bodies only if the token allows.
    Viewer,
    /// Only `POST /api/v1/events`: the token a clinic system or a KiviCare site holds.
    Ingest,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Editor,
        Role::Viewer,
        Role::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Ingest => "ingest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone who showed a valid token (or, in the admin UI, whose session holds one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `admin`, or the API token's name.
    pub name: String,
    pub role: Role,
    /// The clinics it is limited to; `None`: every clinic.
    pub clinics: Option<Vec<String>>,
    /// Whether it sees request and response bodies and event data in the log.
    pub bodies: bool,
}

impl Principal {
    /// The admin token: an owner of every clinic.
    pub fn admin() -> Principal {
        Principal {
            name: "admin".into(),
            role: Role::Owner,
            clinics: None,
            bodies: true,
        }
    }

    /// From a stored token. A role this version does not know is read as `viewer`
    /// without bodies: a newer carehook's role never grants more here.
    pub fn of_token(t: &carehook_store::TokenRow) -> Principal {
        match Role::parse(&t.role) {
            Some(role) => Principal {
                name: t.name.clone(),
                role,
                clinics: t.clinics.clone(),
                bodies: t.bodies,
            },
            None => Principal {
                name: t.name.clone(),
                role: Role::Viewer,
                clinics: Some(Vec::new()),
                bodies: false,
            },
        }
    }

    /// Whether it is limited to some clinics.
    pub fn is_limited(&self) -> bool {
        self.clinics.is_some()
    }

    /// Whether it may see something that belongs to `clinics` (empty: every clinic).
    pub fn sees(&self, clinics: &[String]) -> bool {
        clinics::covers(self.clinics.as_deref(), clinics)
    }

    /// Whether it may see this webhook.
    pub fn sees_webhook(&self, w: &Loaded) -> bool {
        self.sees(&w.compiled.spec.clinics)
    }

    /// Whether it may name this clinic (push its events, give it to a webhook).
    pub fn has_clinic(&self, clinic: &str) -> bool {
        self.clinics
            .as_ref()
            .is_none_or(|c| c.iter().any(|k| k == clinic))
    }
}

/// The webhook, if the caller may see it; another clinic's is `NotFound`, as a missing one.
pub async fn webhook(ctx: &Context, who: &Principal, id: WebhookId) -> Result<Arc<Loaded>> {
    let w = super::webhooks::loaded(ctx, id).await?;
    if who.sees_webhook(&w) {
        Ok(w)
    } else {
        Err(Error::NotFound("webhook"))
    }
}

/// Refuses a delivery the caller may not see (its webhook is another clinic's, or gone and
/// the caller is limited to clinics) as `NotFound`.
pub async fn delivery(ctx: &Context, who: &Principal, id: DeliveryId) -> Result<()> {
    if !who.is_limited() {
        return Ok(());
    }
    let (d, _) = ctx
        .store
        .get_delivery(id)
        .await?
        .ok_or(Error::NotFound("delivery"))?;
    match webhook(ctx, who, d.webhook_id).await {
        Ok(_) => Ok(()),
        Err(Error::NotFound(_)) => Err(Error::NotFound("delivery")),
        Err(e) => Err(e),
    }
}

/// The webhooks whose deliveries a limited caller may list; `None` for a caller of every
/// clinic (no filter).
pub async fn visible_webhooks(ctx: &Context, who: &Principal) -> Result<Option<Vec<WebhookId>>> {
    if !who.is_limited() {
        return Ok(None);
    }
    let all = super::webhooks::list(ctx).await?;
    Ok(Some(
        all.iter()
            .filter(|w| who.sees_webhook(w))
            .map(|w| w.row.id)
            .collect(),
    ))
}

/// A webhook spec a limited caller may save: it names clinics, all of them the caller's.
/// (Left empty, it would serve every clinic.)
pub fn check_spec_clinics(who: &Principal, spec_clinics: &[String]) -> Result<()> {
    let Some(mine) = &who.clinics else {
        return Ok(());
    };
    if spec_clinics.is_empty() {
        return Err(Error::invalid(
            "clinics",
            format!(
                "name the clinics this webhook serves; this token may use clinics {}",
                mine.join(", ")
            ),
        ));
    }
    if let Some((i, c)) = spec_clinics
        .iter()
        .enumerate()
        .find(|(_, c)| !mine.contains(c))
    {
        return Err(Error::invalid(
            format!("clinics[{i}]"),
            format!(
                "this token may not use clinic {c}; it may use clinics {}",
                mine.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Clinic ids as a webhook's JSON gives them (`["2"]`, `[2]`); anything else reads as none.
pub fn clinics_of_json(v: &serde_json::Value) -> Vec<String> {
    carehook_core::clinics::deserialize(v.clone()).unwrap_or_default()
}

/// A limited caller pushes only events of its clinics (`clinic_id` in the data).
pub fn check_push_clinic(who: &Principal, clinic: Option<&serde_json::Value>) -> Result<()> {
    let Some(mine) = &who.clinics else {
        return Ok(());
    };
    let clinic = match clinic {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if mine.contains(&clinic) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "this token pushes events of clinics {} only; data.clinic_id must name one",
            mine.join(", ")
        )))
    }
}

/// How many alerts a limited caller's filter reads at most, newest first, to find its own.
const ALERTS_READ_FOR_LIMITED: u32 = 1_000;

/// The latest operational alerts (`carehook_*` events) the caller may see, newest first, at
/// most `limit`: all of them for a caller of every clinic; for one limited to clinics, those
/// about a webhook it sees (found among the latest [`ALERTS_READ_FOR_LIMITED`]).
pub async fn alerts(
    ctx: &Context,
    who: &Principal,
    limit: u32,
) -> Result<Vec<carehook_store::EventRow>> {
    let Some(visible) = visible_webhooks(ctx, who).await? else {
        return crate::alerts::latest(&*ctx.store, limit).await;
    };
    let visible: std::collections::HashSet<String> =
        visible.iter().map(ToString::to_string).collect();
    let mut rows = crate::alerts::latest(&*ctx.store, ALERTS_READ_FOR_LIMITED.max(limit)).await?;
    rows.retain(|e| {
        e.vars
            .get("webhook_id")
            .is_some_and(|id| visible.contains(id.as_str()))
    });
    rows.truncate(limit as usize);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(clinics: &[&str]) -> Principal {
        Principal {
            name: "t".into(),
            role: Role::Editor,
            clinics: Some(clinics.iter().map(|c| c.to_string()).collect()),
            bodies: true,
        }
    }

    #[test]
    fn roles_read_back_as_written_and_unknown_ones_grant_nothing() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
        let row = carehook_store::TokenRow {
            id: carehook_core::ids::TokenId::new(),
            name: "x".into(),
            role: "superuser".into(),
            clinics: None,
            bodies: true,
            created_at: 0,
            last_used_at: None,
            revoked_at: None,
        };
        let p = Principal::of_token(&row);
        assert_eq!(p.role, Role::Viewer);
        assert!(!p.bodies && !p.sees(&["1".into()]));
    }

    #[test]
    fn a_limited_caller_saves_only_webhooks_of_its_clinics() {
        let two = limited(&["2"]);
        assert!(check_spec_clinics(&two, &["2".into()]).is_ok());
        assert!(check_spec_clinics(&two, &[]).is_err(), "every clinic");
        assert!(check_spec_clinics(&two, &["2".into(), "1".into()]).is_err());
        assert!(check_spec_clinics(&Principal::admin(), &[]).is_ok());
        assert!(two.has_clinic("2") && !two.has_clinic("1"));
        assert!(Principal::admin().has_clinic("1"));
    }
}
