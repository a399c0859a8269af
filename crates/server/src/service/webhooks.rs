//! Webhooks: create, change, enable, disable, delete, rotate the signing
//! secret, retry failed deliveries, and try one out (preview, test send).
//!
//! Every write compiles the webhook first (a bad template is an
//! [`Error::Invalid`] naming the field, line and column, and nothing is
//! written), then stores it with its secrets sealed, then puts the compiled
//! form in the registry, all under the registry's write gate.
//!
//! [`disable`] is the one way a webhook is turned off: by hand (API, UI),
//! by the dispatcher on a 410, by the auto-disable job. It records who and
//! why, which `GET /webhooks/{id}` shows as `disabled_by`/`disabled_reason`.
//!
//! A [broken](Loaded::broken) webhook (secrets this master key cannot
//! open) can be read, listed, enabled, disabled and deleted; a change that
//! would rewrite or use its secrets is refused, since the stored ones may
//! still open with the right key.

use std::sync::Arc;

use carehook_core::catalog::{self, EventType};
use carehook_core::ids::{DeliveryId, EventId, WebhookId};
use carehook_core::privacy;
use carehook_core::signing::SigningSecret;
use carehook_core::webhook::{CompiledWebhook, MASK, Warning, WebhookSpec};
use carehook_core::{Vars, presets};
use carehook_store::{Claimed, NewDelivery, NewEvent, NewWebhook, WebhookStats};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::deliveries::AttemptResponse;
use super::{Actor, Context, Error, Result, parse_json};
use crate::dispatcher::{self, build_request};
use crate::intake::overlay_data;
use crate::registry::{
    Disabled, Loaded, ROTATION_OVERLAP_MS, StoredSecret, StoredWebhook, seal_spec,
};
use crate::time::now_ms;

/// Fields the API shows but a client cannot set; a PATCH that carries them
/// back (GET, edit, PATCH) is not an error.
pub const READ_ONLY: &[&str] = &[
    "id",
    "version",
    "created_at",
    "updated_at",
    "disabled_reason",
    "disabled_by",
    "state",
    "broken_reason",
    "signing_secret",
    "data_sent",
    "oauth",
];

/// The registry's copy, or a fresh read when another node changed it.
pub async fn loaded(ctx: &Context, id: WebhookId) -> Result<Arc<Loaded>> {
    let row = ctx
        .store
        .get_webhook(id)
        .await?
        .ok_or(Error::NotFound("webhook"))?;
    if let Some(l) = ctx.registry.get(id)
        && l.row.version == row.version
    {
        return Ok(l);
    }
    put(ctx, row)
}

fn put(ctx: &Context, row: carehook_store::WebhookRow) -> Result<Arc<Loaded>> {
    Ok(ctx
        .registry
        .put(Loaded::from_row(row, ctx.registry.vault()).map_err(Error::internal)?))
}

/// Every webhook, oldest first, broken ones included.
pub async fn list(ctx: &Context) -> Result<Vec<Arc<Loaded>>> {
    // The store's order (oldest first) is the one people expect in a list.
    let rows = ctx.store.list_webhooks().await?;
    let snapshot = ctx.registry.snapshot();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match snapshot.get(&row.id) {
            Some(l) if l.row.version == row.version => out.push(l.clone()),
            // Made or changed by another node since the last refresh.
            _ => match put(ctx, row) {
                Ok(l) => out.push(l),
                Err(_) => continue,
            },
        }
    }
    Ok(out)
}

fn refuse_if_broken(w: &Loaded) -> Result<()> {
    match &w.broken {
        Some(why) => Err(Error::Conflict(format!(
            "webhook {} is broken: {why}",
            w.row.id
        ))),
        None => Ok(()),
    }
}

/// Turns the API's JSON for a new webhook (a spec, or `{"preset": …}`
/// with the preset's values) into a spec.
pub fn spec_from_json(mut body: Value) -> Result<WebhookSpec> {
    let Some(obj) = body.as_object_mut() else {
        return Err(Error::BadRequest("a webhook is a JSON object".into()));
    };
    let Some(preset_id) = obj.remove("preset") else {
        return parse_json(body.to_string().as_bytes());
    };
    let id = preset_id.as_str().ok_or_else(|| {
        Error::invalid(
            "preset",
            "preset is a preset id, like \"slack_new_appointment\"",
        )
    })?;
    let preset = presets::lookup(id).ok_or_else(|| {
        let ids: Vec<&str> = presets::presets().iter().map(|p| p.id).collect();
        Error::invalid(
            "preset",
            format!(
                "unknown preset \"{id}\"; the presets are: {}",
                ids.join(", ")
            ),
        )
    })?;
    let values = match obj.remove("values") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(Error::invalid(
                    format!("values.{k}"),
                    "a preset value is text",
                )),
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(Error::invalid(
                "values",
                "values is an object of text values",
            ));
        }
    };
    let url = match obj.remove("url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(Error::invalid("url", "url is text")),
    };
    let auth = obj.remove("auth");
    let request = presets::PresetRequest {
        url,
        values,
        auth: auth.clone(),
    };
    let mut spec = match presets::build(preset, &request) {
        Ok(spec) => spec,
        Err(Ok(missing)) => {
            let list: Vec<String> = missing
                .iter()
                .map(|m| format!("{} — {}", m.field, m.message))
                .collect();
            let mut details = serde_json::Map::new();
            details.insert("missing".into(), json!(missing));
            return Err(Error::Invalid {
                field: missing[0].field.clone(),
                message: format!("preset {} still needs: {}", preset.id, list.join("; ")),
                details,
            });
        }
        Err(Err(bad)) => return Err(Error::invalid(bad.field, bad.message)),
    };
    // Auth fields beyond the preset's (an API key's header name) and any
    // other field override the preset.
    if let Some(Value::Object(a)) = auth {
        for (k, v) in a {
            spec["auth"][k] = v;
        }
    }
    for (k, v) in std::mem::take(obj) {
        spec[k] = v;
    }
    parse_json(spec.to_string().as_bytes())
}

/// Creates a webhook. The answer (the API's view) carries its signing
/// secret, shown this once, and the compiler's warnings.
pub async fn create(ctx: &Context, actor: &Actor, spec: WebhookSpec) -> Result<Value> {
    let (compiled, mut warnings) = spec.compile()?;
    warnings.extend(check_data_policy(&compiled)?);
    check_destination(ctx, &spec.url, &mut warnings).await?;
    check_tls(&spec, &mut warnings)?;
    let _gate = ctx.registry.write_gate().await;
    let vault = ctx.registry.vault();
    let secret = SigningSecret::generate();
    let stored = StoredWebhook {
        spec: seal_spec(spec.clone(), vault),
        signing_secrets: vec![StoredSecret {
            secret: vault.seal(&secret.to_whsec()),
            expires_at: None,
        }],
    };
    let row = ctx
        .store
        .create_webhook(NewWebhook {
            id: WebhookId::new(),
            name: spec.name.trim().to_string(),
            enabled: spec.enabled,
            events: spec.events.clone(),
            config: serde_json::to_value(&stored).map_err(Error::internal)?,
        })
        .await?;
    tracing::info!(webhook = %row.id, by = %actor, "webhook created");
    let loaded = put(ctx, row)?;
    audit_change(
        ctx,
        actor,
        "webhook.create",
        loaded.row.id,
        None,
        Some(&loaded),
    )
    .await;
    let mut view = loaded.view();
    view["signing_secret"] = secret.to_whsec().into();
    view["warnings"] = serde_json::to_value(warnings).unwrap_or_default();
    Ok(view)
}

/// Holds a webhook to its data policy. A declared policy refuses every
/// placeholder of the URL, headers, query or body that sends more than it
/// allows, each named with its field, line and column (never a value). An
/// undeclared webhook (saved before policies existed, or by a v1 client
/// that does not know them) may send what it sends; if that is patient
/// data, the save answers a warning naming the variables.
fn check_data_policy(compiled: &CompiledWebhook) -> Result<Option<Warning>> {
    let refused = compiled.policy_violations();
    if !refused.is_empty() {
        let mut details = serde_json::Map::new();
        details.insert(
            "violations".into(),
            serde_json::to_value(&refused).map_err(Error::internal)?,
        );
        return Err(Error::Invalid {
            field: "data_policy".into(),
            message: privacy::violation_message(&refused),
            details,
        });
    }
    if compiled.spec.data_policy.is_some() {
        return Ok(None);
    }
    let uses = compiled.data_uses();
    let names = privacy::variable_names(&uses);
    Ok((!names.is_empty()).then(|| Warning {
        field: "data_policy".into(),
        message: format!(
            "no data policy is declared, and this webhook sends patient data ({}): declare data_policy {{\"identifying\", \"phi\", \"basis\"}} so that later changes are held to it",
            names.join(", ")
        ),
        position: None,
    }))
}

/// The destination policy at save (it is applied again at every
/// connection): a URL whose host is an IP literal the policy refuses is
/// refused; a host name that resolves only into refused ranges now is saved
/// with a warning, since DNS may change (or the name may be meant for
/// another network).
async fn check_destination(ctx: &Context, url: &str, warnings: &mut Vec<Warning>) -> Result<()> {
    // The host is never a template, so the URL parses as it stands.
    let Ok(url) = url::Url::parse(url) else {
        return Ok(());
    };
    let policy = ctx.outbound.policy();
    let literal = match url.host() {
        Some(url::Host::Ipv4(v4)) => std::net::IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => std::net::IpAddr::V6(v6),
        Some(url::Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(443);
            let lookup = tokio::net::lookup_host((name, port));
            let addrs: Vec<std::net::IpAddr> =
                match tokio::time::timeout(std::time::Duration::from_secs(2), lookup).await {
                    Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                    // Unknown or slow to resolve now: judged at delivery.
                    _ => return Ok(()),
                };
            let refused: Vec<_> = addrs
                .iter()
                .filter_map(|ip| policy.refusal(*ip).map(|why| (ip, why)))
                .collect();
            if !addrs.is_empty()
                && refused.len() == addrs.len()
                && let Some((ip, why)) = refused.first()
            {
                warnings.push(Warning {
                    field: "url".into(),
                    message: format!(
                        "{name} resolves to {ip} now, {why}: deliveries will fail unless CAREHOOK_ALLOWED_DESTINATIONS allows it"
                    ),
                    position: None,
                });
            }
            return Ok(());
        }
        None => return Ok(()),
    };
    match policy.refusal(literal) {
        None => Ok(()),
        Some(why) => Err(Error::invalid(
            "url",
            format!(
                "{literal} is {why}; carehook does not send there unless CAREHOOK_ALLOWED_DESTINATIONS allows it"
            ),
        )),
    }
}

/// A copy, disabled, named "Copy of …", with the same auth secret (read
/// from memory, never shown) and a signing secret of its own.
pub async fn clone(ctx: &Context, actor: &Actor, id: WebhookId) -> Result<Value> {
    let source = loaded(ctx, id).await?;
    refuse_if_broken(&source)?;
    let mut spec = source.compiled.spec.clone();
    spec.name = format!("Copy of {}", spec.name.trim());
    spec.name = spec.name.chars().take(200).collect();
    spec.enabled = false;
    create(ctx, actor, spec).await
}

/// Applies a JSON merge patch (RFC 7396) onto the webhook as it is: the
/// fields sent replace the webhook's, `null` resets one to its default. A
/// secret not sent, or sent back masked, stays as it was.
pub async fn update(
    ctx: &Context,
    actor: &Actor,
    id: WebhookId,
    mut patch: Value,
) -> Result<Value> {
    let Some(obj) = patch.as_object_mut() else {
        return Err(Error::BadRequest(
            "a PATCH body is a JSON object with the fields to change".into(),
        ));
    };
    for key in READ_ONLY {
        obj.remove(*key);
    }
    // What the view adds inside `auth` and `tls` (flags, the certificate's details).
    for section in ["auth", "tls"] {
        if let Some(Value::Object(inner)) = obj.get_mut(section) {
            inner.retain(|k, _| !k.starts_with("has_") && !k.starts_with("client_cert_"));
        }
    }
    // Only the switch, flipped: through `enable`/`disable`, the one path
    // that turns a webhook on or off (and works on a broken one).
    if obj.len() == 1
        && let Some(Value::Bool(on)) = obj.get("enabled")
        && loaded(ctx, id).await?.row.enabled != *on
    {
        let w = if *on {
            enable(ctx, actor, id).await?
        } else {
            disable(ctx, actor, id, None).await?
        };
        let warnings = w
            .compiled
            .spec
            .compile()
            .map(|(_, w)| w)
            .unwrap_or_default();
        let mut view = w.view();
        view["warnings"] = serde_json::to_value(warnings).unwrap_or_default();
        return Ok(view);
    }
    let _gate = ctx.registry.write_gate().await;
    let current = loaded(ctx, id).await?;
    refuse_if_broken(&current)?;
    let old_spec = &current.compiled.spec;
    let mut merged = serde_json::to_value(old_spec).map_err(Error::internal)?;
    merge_patch(&mut merged, &patch);
    let mut spec: WebhookSpec = parse_json(merged.to_string().as_bytes())?;
    keep_unsent_secrets(&mut spec, old_spec);
    if old_spec.data_policy.is_some() && spec.data_policy.is_none() {
        return Err(Error::invalid(
            "data_policy",
            "a declared data policy cannot be removed; change identifying, phi or basis instead",
        ));
    }
    let (compiled, mut warnings) = spec.compile()?;
    warnings.extend(check_data_policy(&compiled)?);
    if spec.url != old_spec.url {
        check_destination(ctx, &spec.url, &mut warnings).await?;
    }
    check_tls(&spec, &mut warnings)?;
    let auth_changed = spec.auth != old_spec.auth;
    let vault = ctx.registry.vault();
    let mut stored: StoredWebhook =
        serde_json::from_value(current.row.config.clone()).map_err(Error::internal)?;
    stored.spec = seal_spec(spec.clone(), vault);
    // Re-enabling clears who disabled it and why; turning it off with
    // other changes records who, as `disable` does.
    let disabled = match (spec.enabled, current.row.enabled) {
        (true, _) => None,
        (false, true) => Some(
            Disabled {
                by: Some(actor.to_string()),
                reason: None,
            }
            .encode(),
        ),
        (false, false) => current.row.disabled_reason.clone(),
    };
    let row = ctx
        .store
        .update_webhook(
            id,
            spec.name.trim().to_string(),
            spec.enabled,
            spec.events.clone(),
            serde_json::to_value(&stored).map_err(Error::internal)?,
            disabled,
        )
        .await?
        .ok_or(Error::NotFound("webhook"))?;
    if auth_changed {
        // New OAuth 2.0 settings start from no token (and a refusal no longer blocks).
        ctx.store.oauth_reset(id).await?;
        if let Some(tokens) = ctx.outbound.tokens() {
            tokens.forget(id);
        }
    }
    let loaded = put(ctx, row)?;
    audit_change(
        ctx,
        actor,
        "webhook.update",
        id,
        Some(&current),
        Some(&loaded),
    )
    .await;
    let mut view = view(ctx, &loaded).await;
    view["warnings"] = serde_json::to_value(warnings).unwrap_or_default();
    Ok(view)
}

/// An audit record of a webhook change, with its settings before and after (secrets masked).
async fn audit_change(
    ctx: &Context,
    actor: &Actor,
    action: &str,
    id: WebhookId,
    before: Option<&Loaded>,
    after: Option<&Loaded>,
) {
    let view = |l: Option<&Loaded>| l.map(|l| super::audit::webhook_details(&l.view()));
    let details = serde_json::json!({ "before": view(before), "after": view(after) });
    let resource = format!("webhook/{id}");
    super::audit::record(&*ctx.store, actor, action, &resource, "ok", details).await;
}

/// A secret the patch did not send, or sent back masked, keeps its saved
/// value: each auth secret while the auth kind stays, the TLS key always.
fn keep_unsent_secrets(spec: &mut WebhookSpec, old_spec: &WebhookSpec) {
    let same_kind = spec.auth.kind() == old_spec.auth.kind();
    let has_cert = spec
        .tls
        .as_ref()
        .is_some_and(|t| !t.client_cert.trim().is_empty());
    let old: std::collections::HashMap<String, String> = old_spec.secrets().into_iter().collect();
    for (field, new) in spec.secrets_mut() {
        if (new == MASK || new.is_empty())
            && (if field.starts_with("auth.") {
                same_kind
            } else {
                has_cert
            })
            && let Some(saved) = old.get(&field)
        {
            *new = saved.clone();
        }
    }
}

/// Checks the mutual TLS settings (certificates parse, the client
/// certificate is valid now and matches its key); warns when it expires
/// within 14 days.
fn check_tls(spec: &WebhookSpec, warnings: &mut Vec<Warning>) -> Result<()> {
    let Some(tls) = &spec.tls else {
        return Ok(());
    };
    let now = now_ms();
    if let Some(cert) = crate::client_tls::check(tls, now)?
        && cert.not_after - now <= crate::client_tls::EXPIRY_WARNING_MS
    {
        warnings.push(Warning {
            field: "tls.client_cert".into(),
            message: format!(
                "the client certificate expires on {}: ask the receiver's operator for a new one",
                crate::time::rfc3339(cert.not_after)
            ),
            position: None,
        });
    }
    Ok(())
}

/// The API's view of a webhook, with the state of its OAuth 2.0 token.
pub async fn view(ctx: &Context, w: &Loaded) -> Value {
    let row = if w.compiled.spec.auth.is_oauth2() {
        ctx.store.oauth_token(w.row.id).await.ok().flatten()
    } else {
        None
    };
    with_oauth(w, row.as_ref())
}

/// [`view`] of many webhooks, reading the token rows once.
pub async fn views(ctx: &Context, ws: &[Arc<Loaded>]) -> Vec<Value> {
    let rows = if ws.iter().any(|w| w.compiled.spec.auth.is_oauth2()) {
        ctx.store.oauth_tokens().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    ws.iter()
        .map(|w| with_oauth(w, rows.iter().find(|r| r.webhook_id == w.row.id)))
        .collect()
}

/// `oauth`: whether the last token request worked (`state`: `ok`, `failing`,
/// or `no_token` before the first one), when the token expires, the
/// provider's last refusal (secrets masked). Never a token.
fn with_oauth(w: &Loaded, row: Option<&carehook_store::OAuthTokenRow>) -> Value {
    let mut view = w.view();
    if !w.compiled.spec.auth.is_oauth2() {
        return view;
    }
    let ms = |t: Option<i64>| t.map(crate::time::rfc3339);
    let state = match row {
        Some(r) if r.last_error.is_some() => "failing",
        Some(r) if r.access_token.is_some() => "ok",
        _ => "no_token",
    };
    view["oauth"] = json!({
        "state": state,
        "token_expires_at": ms(row.and_then(|r| r.expires_at)),
        "last_error": row.and_then(|r| r.last_error.clone()),
        "failed_at": ms(row.and_then(|r| r.failed_at)),
        "blocked_until": ms(row.and_then(|r| r.blocked_until)),
        "refresh_token_rotated": row.is_some_and(|r| r.refresh_token.is_some()),
        "token_requests": row.map_or(0, |r| r.requests),
    });
    view
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Turns a webhook on; clears who disabled it and why.
pub async fn enable(ctx: &Context, actor: &Actor, id: WebhookId) -> Result<Arc<Loaded>> {
    let _gate = ctx.registry.write_gate().await;
    if !ctx.store.set_webhook_enabled(id, true, None).await? {
        return Err(Error::NotFound("webhook"));
    }
    tracing::info!(webhook = %id, by = %actor, "webhook enabled");
    let loaded = reload(ctx, id).await?;
    audit_change(ctx, actor, "webhook.enable", id, None, Some(&loaded)).await;
    Ok(loaded)
}

/// Turns a webhook off, recording who (`actor`) and why (`reason`, if one
/// is known): the one function every path that disables a webhook calls
/// (the API, the UI, the dispatcher on a 410, the auto-disable job). Its
/// pending deliveries end as failed when next claimed, saying why.
pub async fn disable(
    ctx: &Context,
    actor: &Actor,
    id: WebhookId,
    reason: Option<String>,
) -> Result<Arc<Loaded>> {
    let loaded = crate::registry::disable(&*ctx.store, &ctx.registry, actor, id, reason).await?;
    audit_change(ctx, actor, "webhook.disable", id, None, Some(&loaded)).await;
    Ok(loaded)
}

/// Reads one webhook into the registry; the caller holds the write gate.
async fn reload(ctx: &Context, id: WebhookId) -> Result<Arc<Loaded>> {
    let row = ctx
        .store
        .get_webhook(id)
        .await?
        .ok_or(Error::NotFound("webhook"))?;
    put(ctx, row)
}

/// Deletes a webhook. Its delivery log stays; its pending deliveries end as failed.
pub async fn delete(ctx: &Context, actor: &Actor, id: WebhookId) -> Result<()> {
    let _gate = ctx.registry.write_gate().await;
    let before = ctx.registry.get(id);
    if !ctx.store.delete_webhook(id).await? {
        return Err(Error::NotFound("webhook"));
    }
    ctx.store.oauth_reset(id).await?;
    ctx.registry.remove(id);
    tracing::info!(webhook = %id, by = %actor, "webhook deleted");
    audit_change(ctx, actor, "webhook.delete", id, before.as_deref(), None).await;
    Ok(())
}

/// A new signing secret; the old one keeps signing for 24 hours so
/// receivers can switch without dropping a request. The answer (the API's
/// view) carries the new secret and when the old one stops signing.
pub async fn rotate_secret(ctx: &Context, actor: &Actor, id: WebhookId) -> Result<Value> {
    let _gate = ctx.registry.write_gate().await;
    let current = loaded(ctx, id).await?;
    refuse_if_broken(&current)?;
    let vault = ctx.registry.vault();
    let now = now_ms();
    let mut stored: StoredWebhook =
        serde_json::from_value(current.row.config.clone()).map_err(Error::internal)?;
    stored
        .signing_secrets
        .retain(|s| s.expires_at.is_none_or(|t| t > now));
    for s in &mut stored.signing_secrets {
        s.expires_at.get_or_insert(now + ROTATION_OVERLAP_MS);
    }
    let secret = SigningSecret::generate();
    stored.signing_secrets.insert(
        0,
        StoredSecret {
            secret: vault.seal(&secret.to_whsec()),
            expires_at: None,
        },
    );
    let row = ctx
        .store
        .update_webhook(
            id,
            current.row.name.clone(),
            current.row.enabled,
            current.row.events.clone(),
            serde_json::to_value(&stored).map_err(Error::internal)?,
            current.row.disabled_reason.clone(),
        )
        .await?
        .ok_or(Error::NotFound("webhook"))?;
    tracing::info!(webhook = %id, by = %actor, "signing secret rotated");
    let loaded = put(ctx, row)?;
    audit_change(ctx, actor, "webhook.rotate_secret", id, None, None).await;
    let alert = crate::alerts::Alert::SecretRotated {
        webhook: id,
        name: loaded.row.name.clone(),
        reason: format!(
            "the signing secret was rotated by {actor}; the previous one keeps signing until {}",
            crate::time::rfc3339(now + ROTATION_OVERLAP_MS)
        ),
    };
    crate::alerts::emit_logged(&ctx.intake, &ctx.registry, &alert).await;
    let mut view = loaded.view();
    view["signing_secret"] = secret.to_whsec().into();
    view["previous_secret_expires_at"] = crate::time::rfc3339(now + ROTATION_OVERLAP_MS).into();
    Ok(view)
}

/// Sends every failed delivery of the webhook created in `[since, until)`
/// (unix ms) again, now; answers their ids.
pub async fn retry_failed(
    ctx: &Context,
    actor: &Actor,
    id: WebhookId,
    since: i64,
    until: i64,
) -> Result<Vec<DeliveryId>> {
    if since >= until {
        return Err(Error::invalid("until", "until must be later than since"));
    }
    if ctx.store.get_webhook(id).await?.is_none() {
        return Err(Error::NotFound("webhook"));
    }
    let retried = ctx.store.retry_failed(id, since, until, now_ms()).await?;
    tracing::info!(webhook = %id, by = %actor, count = retried.len(), "failed deliveries retried");
    let details = serde_json::json!({ "since": since, "until": until, "count": retried.len() });
    let resource = format!("webhook/{id}");
    super::audit::record(
        &*ctx.store,
        actor,
        "webhook.retry_failed",
        &resource,
        "ok",
        details,
    )
    .await;
    Ok(retried)
}

/// Counts, success rate and durations over the last hour, day and week.
pub async fn stats(ctx: &Context, id: WebhookId) -> Result<WebhookStats> {
    if ctx.store.get_webhook(id).await?.is_none() {
        return Err(Error::NotFound("webhook"));
    }
    Ok(ctx.store.webhook_stats(id, now_ms()).await?)
}

// --- trying a webhook out ------------------------------------------------------------------
//
// A test send (sent now, answered with the request, the response and the
// time it took, and logged as a test delivery), a preview of a saved
// webhook's request, and a preview of an unsaved draft. All three render
// from the catalog's example values for the event, overlaid by the
// caller's `data`, and build the request with `dispatcher::build_request`;
// the test send goes through `dispatcher::attempt`, the very path a
// delivery takes, so "the test worked" means the delivery will.

/// The event a test or preview renders when none is named for a `*` webhook.
const DEFAULT_EVENT: &str = "kc_appointment_book";

/// Which event to try, and the values to overlay on its examples.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TryOut {
    /// The event to render; default: the first the webhook subscribes to.
    #[serde(default)]
    #[schema(example = "kc_appointment_book")]
    pub event: Option<String>,
    /// Values over the catalog's examples (the demo clinic).
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"patient_name": "Zoë O'Brien"}))]
    pub data: serde_json::Map<String, Value>,
}

/// An unsaved webhook to preview.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    pub webhook: WebhookSpec,
    #[serde(default)]
    #[schema(example = "kc_appointment_book")]
    pub event: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestView {
    method: String,
    url: String,
    /// `[name, value]` pairs, in order; secrets masked.
    #[schema(value_type = Vec<Vec<String>>)]
    headers: Vec<(String, String)>,
    body: String,
}

/// The request a webhook would send, secrets masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    event: String,
    request: RequestView,
    /// Whether the webhook's conditions hold for these values.
    conditions_match: bool,
    warnings: Vec<Warning>,
}

/// How a test send went.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    event: String,
    /// The test delivery, in the delivery log.
    delivery_id: Uuid,
    /// The request as sent, secrets masked; null when it could not be built.
    request: Option<Value>,
    response: Option<AttemptResponse>,
    error: Option<String>,
    duration_ms: i64,
    /// `succeeded`, `retry` or `gave_up`: what a real delivery would do.
    outcome: String,
    conditions_match: bool,
}

fn choose_event(compiled: &CompiledWebhook, requested: Option<&str>) -> Result<&'static EventType> {
    let spec = &compiled.spec;
    match requested {
        Some(name) => {
            let event = catalog::lookup(name).ok_or_else(|| {
                Error::invalid(
                    "event",
                    format!(
                        "unknown event \"{name}\"{}",
                        catalog::did_you_mean(catalog::closest_name(
                            name,
                            catalog::events().iter().map(|e| e.name)
                        ))
                    ),
                )
            })?;
            if !compiled.scope.includes(event.name) {
                return Err(Error::invalid(
                    "event",
                    format!(
                        "the webhook does not subscribe to {}; it takes {}",
                        event.name,
                        spec.events.join(", ")
                    ),
                ));
            }
            Ok(event)
        }
        None if compiled.scope.is_all() => {
            Ok(catalog::lookup(DEFAULT_EVENT).expect("the default event is in the catalog"))
        }
        None => compiled
            .scope
            .events()
            .first()
            .copied()
            .ok_or_else(|| Error::invalid("events", "the webhook has no events")),
    }
}

fn sample_vars(
    event: &EventType,
    event_id: EventId,
    data: &serde_json::Map<String, Value>,
) -> Result<Vars> {
    let mut vars = event.example_vars();
    overlay_data(event, &mut vars, data)?;
    vars.insert("event_name".into(), event.name.to_string());
    vars.insert("event_id".into(), event_id.to_string());
    Ok(vars)
}

fn render_preview(
    compiled: &CompiledWebhook,
    secrets: &[&SigningSecret],
    event: &EventType,
    data: &serde_json::Map<String, Value>,
    warnings: Vec<Warning>,
) -> Result<Preview> {
    let vars = sample_vars(event, EventId::new(), data)?;
    let (_, masked) = build_request(
        compiled,
        secrets,
        &DeliveryId::new().to_string(),
        now_ms(),
        &vars,
    )
    .map_err(|e| {
        let mut details = serde_json::Map::new();
        details.insert("variable".into(), e.variable.clone().into());
        Error::Invalid {
            field: e.field.clone(),
            message: format!("the request cannot be built: {e}"),
            details,
        }
    })?;
    Ok(Preview {
        event: event.name.to_string(),
        request: RequestView {
            method: masked.method.as_str().to_string(),
            url: masked.url,
            headers: masked.headers,
            body: masked.body,
        },
        conditions_match: compiled.wants(event.name, &vars),
        warnings,
    })
}

/// Sends the saved webhook's request for `t.event` now, and logs it as a
/// test delivery.
pub async fn test_send(
    ctx: &Context,
    actor: &Actor,
    id: WebhookId,
    t: TryOut,
) -> Result<TestResult> {
    let webhook = loaded(ctx, id).await?;
    refuse_if_broken(&webhook)?;
    let event = choose_event(&webhook.compiled, t.event.as_deref())?;
    let event_id = EventId::new();
    let delivery_id = DeliveryId::new();
    let vars = sample_vars(event, event_id, &t.data)?;
    let conditions_match = webhook.compiled.wants(event.name, &vars);
    let created_at = now_ms();
    tracing::debug!(webhook = %id, by = %actor, "test send");
    let done = dispatcher::attempt(
        &ctx.outbound,
        &webhook,
        Claimed {
            delivery_id,
            event_id,
            webhook_id: id,
            event_type: event.name.to_string(),
            vars: vars.clone(),
            attempts: 0,
            created_at,
            is_test: true,
            ordering: None,
        },
    )
    .await;
    ctx.metrics.test_send();
    // Logged after the send, as an event with one test delivery and its
    // attempt. The delivery is never due, so no worker can claim it in the
    // moment between the two writes.
    ctx.store
        .record_events(vec![NewEvent {
            id: event_id,
            event_type: event.name.to_string(),
            vars,
            idempotency_key: None,
            created_at,
            deliveries: vec![NewDelivery {
                id: delivery_id,
                webhook_id: id,
                next_attempt_at: i64::MAX,
                is_test: true,
                ordering_key: None,
                scheduled: None,
            }],
            reschedule: Vec::new(),
        }])
        .await?;
    let r = done.record;
    ctx.store.record_attempts(vec![r.clone()]).await?;
    let details = serde_json::json!({
        "event": event.name, "delivery_id": delivery_id, "outcome": r.outcome.as_str(),
    });
    let resource = format!("webhook/{id}");
    super::audit::record(
        &*ctx.store,
        actor,
        "webhook.test_send",
        &resource,
        "ok",
        details,
    )
    .await;
    Ok(TestResult {
        event: event.name.to_string(),
        delivery_id: delivery_id.into(),
        request: (!r.request.is_null()).then_some(r.request),
        response: r.response_status.map(|status| AttemptResponse {
            status,
            headers: r.response_headers,
            body: r.response_body,
        }),
        error: r.error,
        duration_ms: r.duration_ms,
        outcome: r.outcome.to_string(),
        conditions_match,
    })
}

/// The request the saved webhook would send for `t.event`, secrets masked.
pub async fn preview(ctx: &Context, id: WebhookId, t: TryOut) -> Result<Preview> {
    let webhook = loaded(ctx, id).await?;
    let event = choose_event(&webhook.compiled, t.event.as_deref())?;
    let secrets = webhook.signing_secrets(now_ms());
    render_preview(&webhook.compiled, &secrets, event, &t.data, Vec::new())
}

/// The request an unsaved webhook would send, signed with a throwaway
/// secret; or its first error, its field named as on create and update
/// (`body`, not `webhook.body`).
pub fn preview_draft(d: Draft) -> Result<Preview> {
    let (compiled, warnings) = d.webhook.compile().map_err(Error::from)?;
    let event = choose_event(&compiled, d.event.as_deref())?;
    let throwaway = SigningSecret::generate();
    render_preview(&compiled, &[&throwaway], event, &d.data, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut t,
            &json!({"a": null, "b": {"c": 9}, "e": [2], "f": "x"}),
        );
        assert_eq!(t, json!({"b": {"c": 9, "d": 3}, "e": [2], "f": "x"}));
    }
}
