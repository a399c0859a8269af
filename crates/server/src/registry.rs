//! The webhooks in memory: each stored webhook, its secrets decrypted and its
//! templates compiled once per version. Event intake matches against it and
//! the dispatcher renders from it; neither touches the database for config.
//!
//! The store is the truth. This node's API updates the registry on every
//! write; changes made by another node (PostgreSQL) arrive with the periodic
//! refresh, which only recompiles webhooks whose version changed.
//!
//! A webhook whose secrets this master key cannot open stays here, marked
//! [`Loaded::broken`]: it is listed and matched as usual (its deliveries
//! are made and wait), but never sent until it loads whole again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use carehook_core::ids::WebhookId;
use carehook_core::signing::SigningSecret;
use carehook_core::webhook::{CompiledWebhook, MASK, WebhookSpec};
use carehook_store::{Store, WebhookRow};
use serde::{Deserialize, Serialize};

use crate::domain::Actor;
use crate::vault::Vault;

/// How long a rotated-out signing secret keeps signing.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

/// What the store keeps as a webhook's `config`: the spec with its auth
/// secret sealed, and the signing secrets, sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredWebhook {
    pub spec: WebhookSpec,
    /// Newest first. An older one signs until `expires_at`.
    pub signing_secrets: Vec<StoredSecret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSecret {
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Who or what disabled a webhook, and why: kept in the store's
/// `disabled_reason` column as a small JSON object (`{"by", "reason"}`),
/// so recording the author needed no schema change. A plain-text value
/// (written before this) reads as a reason with no author.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    pub by: Option<String>,
    pub reason: Option<String>,
}

impl Disabled {
    /// The column's value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("two optional strings serialize")
    }

    pub fn decode(column: Option<&str>) -> Option<Disabled> {
        let text = column?;
        Some(
            serde_json::from_str::<Disabled>(text)
                .ok()
                .filter(|_| text.starts_with('{'))
                .unwrap_or_else(|| Disabled {
                    by: None,
                    reason: Some(text.to_string()),
                }),
        )
    }
}

/// A webhook ready for use.
#[derive(Debug)]
pub struct Loaded {
    pub row: WebhookRow,
    /// The spec with its auth secret in plain text (memory only). For a
    /// broken webhook, the secrets are empty: good for matching events,
    /// never for sending.
    pub compiled: CompiledWebhook,
    /// Every signing secret with its expiry, newest first, decrypted.
    pub signing: Vec<(SigningSecret, Option<i64>)>,
    /// Why this webhook cannot be sent (its secrets do not open with this
    /// master key); `None` when it is whole.
    pub broken: Option<String>,
}

/// Why a webhook with secrets this key cannot open is broken, as the API,
/// the UI and the log say it.
pub const BROKEN_REASON: &str = "its stored secrets cannot be decrypted with this master key \
     (CAREHOOK_MASTER_KEY or the key file): start carehook with the key they were saved with; \
     its deliveries wait until then";

impl Loaded {
    /// Loads a stored webhook. Secrets this key cannot open make it
    /// [`broken`](Loaded::broken) (logged once, here, naming the webhook),
    /// not an error: a webhook must not vanish because of the key.
    pub fn from_row(row: WebhookRow, vault: &Vault) -> anyhow::Result<Loaded> {
        let stored: StoredWebhook = serde_json::from_value(row.config.clone())
            .with_context(|| format!("webhook {} has a config this version cannot read", row.id))?;
        let mut spec = stored.spec;
        let mut undecryptable = None;
        for (_, secret) in spec.secrets_mut() {
            *secret = vault.open_secret(secret).unwrap_or_else(|e| {
                undecryptable = Some(e);
                String::new()
            });
        }
        let mut signing = Vec::with_capacity(stored.signing_secrets.len());
        for s in &stored.signing_secrets {
            match vault.open_secret(&s.secret) {
                Ok(plain) => signing.push((SigningSecret::parse(&plain)?, s.expires_at)),
                Err(e) => undecryptable = Some(e),
            }
        }
        spec.enabled = row.enabled;
        let (mut compiled, _) = spec
            .compile()
            .map_err(|e| anyhow::anyhow!("webhook {} no longer compiles: {e}", row.id))?;
        compiled.set_pseudonymizer(vault.pseudonymizer());
        let broken = undecryptable.map(|e| {
            // The error names no secret: only that one did not open.
            tracing::error!(
                webhook = %row.id,
                name = %row.name,
                error = %format!("{e:#}"),
                "webhook {} ({}) is broken: {BROKEN_REASON}",
                row.id,
                row.name
            );
            signing.clear();
            BROKEN_REASON.to_string()
        });
        Ok(Loaded {
            row,
            compiled,
            signing,
            broken,
        })
    }

    /// The patient data its requests carry, whatever its policy says:
    /// `{"identifying", "phi", "variables"}`, variables named once each.
    pub fn data_sent(&self) -> serde_json::Value {
        use carehook_core::privacy::{DataPolicy, variable_names};
        let uses = self.compiled.data_uses();
        let needed = DataPolicy::needed(&uses);
        serde_json::json!({
            "identifying": needed.identifying,
            "phi": needed.phi,
            "variables": variable_names(&uses),
        })
    }

    /// Who disabled it and why, when it is disabled.
    pub fn disabled(&self) -> Option<Disabled> {
        if self.row.enabled {
            return None;
        }
        Disabled::decode(self.row.disabled_reason.as_deref())
    }

    /// `enabled`, `disabled` or `broken` (which wins: it is the one to fix).
    pub fn state(&self) -> &'static str {
        match (&self.broken, self.row.enabled) {
            (Some(_), _) => "broken",
            (None, true) => "enabled",
            (None, false) => "disabled",
        }
    }

    /// The secrets that sign at `now`: the current one and any rotated out
    /// less than 24 h ago.
    pub fn signing_secrets(&self, now: i64) -> Vec<&SigningSecret> {
        self.signing
            .iter()
            .filter(|(_, expires)| expires.is_none_or(|t| t > now))
            .map(|(s, _)| s)
            .collect()
    }

    /// The webhook as the API shows it: every secret masked.
    pub fn view(&self) -> serde_json::Value {
        let mut spec = self.compiled.spec.clone();
        // Each secret masked, with a flag saying whether one is set
        // (`auth.has_password`, `auth.has_refresh_token`, `tls.has_client_key`…).
        let mut flags = Vec::new();
        for (field, secret) in spec.secrets_mut() {
            flags.push((field, !secret.is_empty()));
            if !secret.is_empty() {
                *secret = MASK.to_string();
            }
        }
        let mut v = serde_json::to_value(&spec).unwrap_or_default();
        for (field, set) in flags {
            let (section, name) = field.split_once('.').unwrap_or(("auth", field.as_str()));
            if let Some(obj) = v.get_mut(section).and_then(|a| a.as_object_mut()) {
                obj.insert(format!("has_{name}"), set.into());
            }
        }
        if let Some(tls) = &self.compiled.spec.tls
            && let Some(cert) = crate::client_tls::cert_info(tls)
            && let Some(obj) = v.get_mut("tls").and_then(|a| a.as_object_mut())
        {
            let now = crate::time::now_ms();
            obj.insert("client_cert_subject".into(), cert.subject.into());
            obj.insert(
                "client_cert_expires_at".into(),
                crate::time::rfc3339(cert.not_after).into(),
            );
            obj.insert(
                "client_cert_expires_soon".into(),
                (cert.not_after - now <= crate::client_tls::EXPIRY_WARNING_MS).into(),
            );
        }
        let obj = v.as_object_mut().expect("a spec serializes as an object");
        obj.insert("id".into(), self.row.id.to_string().into());
        obj.insert("enabled".into(), self.row.enabled.into());
        obj.insert("version".into(), self.row.version.into());
        let disabled = self.disabled().unwrap_or_default();
        obj.insert("disabled_reason".into(), disabled.reason.into());
        obj.insert("disabled_by".into(), disabled.by.into());
        obj.insert("state".into(), self.state().into());
        obj.insert("broken_reason".into(), self.broken.clone().into());
        obj.insert(
            "created_at".into(),
            crate::time::rfc3339(self.row.created_at).into(),
        );
        obj.insert(
            "updated_at".into(),
            crate::time::rfc3339(self.row.updated_at).into(),
        );
        obj.insert("signing_secret".into(), MASK.into());
        obj.insert("data_sent".into(), self.data_sent());
        v
    }
}

/// Seals a spec's secrets (auth, TLS key) for storage.
pub fn seal_spec(mut spec: WebhookSpec, vault: &Vault) -> WebhookSpec {
    for (_, secret) in spec.secrets_mut() {
        *secret = vault.seal(secret);
    }
    spec
}

#[derive(Debug)]
pub struct Registry {
    vault: Vault,
    webhooks: RwLock<Arc<HashMap<WebhookId, Arc<Loaded>>>>,
    /// Held by a refresh from read to swap, and by an API write from the
    /// store write to `put`: without it a refresh that read the store just
    /// before a write could swap in a map that lacks the new webhook.
    gate: tokio::sync::Mutex<()>,
}

impl Registry {
    pub fn new(vault: Vault) -> Self {
        Registry {
            vault,
            webhooks: RwLock::new(Arc::new(HashMap::new())),
            gate: tokio::sync::Mutex::new(()),
        }
    }

    /// Hold this across a webhook's store write and its `put`/`remove`.
    pub async fn write_gate(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.gate.lock().await
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Every webhook, as of now; cheap (an `Arc` clone).
    pub fn snapshot(&self) -> Arc<HashMap<WebhookId, Arc<Loaded>>> {
        self.webhooks.read().expect("registry lock").clone()
    }

    /// The webhooks that cannot be sent now; the dispatcher leaves their
    /// deliveries in the queue.
    pub fn broken_ids(&self) -> Vec<WebhookId> {
        self.snapshot()
            .values()
            .filter(|w| w.broken.is_some())
            .map(|w| w.row.id)
            .collect()
    }

    pub fn get(&self, id: WebhookId) -> Option<Arc<Loaded>> {
        self.snapshot().get(&id).cloned()
    }

    pub fn put(&self, loaded: Loaded) -> Arc<Loaded> {
        let loaded = Arc::new(loaded);
        let mut guard = self.webhooks.write().expect("registry lock");
        let mut map = (**guard).clone();
        map.insert(loaded.row.id, loaded.clone());
        *guard = Arc::new(map);
        loaded
    }

    pub fn remove(&self, id: WebhookId) {
        let mut guard = self.webhooks.write().expect("registry lock");
        let mut map = (**guard).clone();
        map.remove(&id);
        *guard = Arc::new(map);
    }

    /// Reads one webhook from the store into the registry, if it exists.
    pub async fn load_one(
        &self,
        store: &dyn Store,
        id: WebhookId,
    ) -> anyhow::Result<Option<Arc<Loaded>>> {
        let _gate = self.gate.lock().await;
        match store.get_webhook(id).await? {
            Some(row) => Ok(Some(self.put(Loaded::from_row(row, &self.vault)?))),
            None => Ok(None),
        }
    }

    /// Re-reads every webhook; recompiles only the ones whose version moved.
    pub async fn refresh(&self, store: &dyn Store) -> anyhow::Result<()> {
        let _gate = self.gate.lock().await;
        let rows = store.list_webhooks().await?;
        let current = self.snapshot();
        let mut map = HashMap::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            match current.get(&id) {
                Some(l) if l.row.version == row.version => {
                    map.insert(id, l.clone());
                }
                _ => match Loaded::from_row(row, &self.vault) {
                    Ok(l) => {
                        map.insert(id, Arc::new(l));
                    }
                    Err(e) => {
                        tracing::error!(webhook = %id, error = %format!("{e:#}"), "cannot load webhook")
                    }
                },
            }
        }
        *self.webhooks.write().expect("registry lock") = Arc::new(map);
        Ok(())
    }
}

/// Turns a webhook off, recording who (`actor`) and why (`reason`, if one is known): the one
/// function every path that disables a webhook ends in (the API and the UI through
/// `service::webhooks::disable`, the dispatcher on a 410, the auto-disable job). It lives
/// here, below the service layer, so the background jobs reach it without depending on it.
pub async fn disable(
    store: &dyn Store,
    registry: &Registry,
    actor: &Actor,
    id: WebhookId,
    reason: Option<String>,
) -> crate::domain::Result<Arc<Loaded>> {
    let _gate = registry.write_gate().await;
    let record = Disabled {
        by: Some(actor.to_string()),
        reason: reason.clone(),
    };
    if !store
        .set_webhook_enabled(id, false, Some(record.encode()))
        .await?
    {
        return Err(crate::domain::Error::NotFound("webhook"));
    }
    match &reason {
        Some(r) => tracing::warn!(webhook = %id, by = %actor, "webhook disabled: {r}"),
        None => tracing::info!(webhook = %id, by = %actor, "webhook disabled"),
    }
    let row = store
        .get_webhook(id)
        .await?
        .ok_or(crate::domain::Error::NotFound("webhook"))?;
    Ok(registry
        .put(Loaded::from_row(row, registry.vault()).map_err(crate::domain::Error::internal)?))
}
