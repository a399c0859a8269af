//! OAuth 2.0 access tokens for webhooks whose auth is `oauth2_client_credentials` or
//! `oauth2_refresh_token`.
//!
//! A token is asked for once per expiry for the whole cluster: the token row in the store
//! (`OAuthTokenStore`) is shared by every node, and only the holder of its lease asks the
//! provider; the others wait for the new token, or keep sending with the current one while it
//! is still valid. Each node keeps the token in memory too, so a delivery costs no database
//! read until the token nears its expiry ([`refresh_at`]).
//!
//! A rotated refresh token is sealed and saved together with the access token, in the same
//! statement, before the access token is handed out. A 401 from the destination asks for a new
//! token once ([`Tokens::renew`]), unless another delivery already did (the row's
//! `generation` moved on).
//!
//! Token requests go through the same [`Outbound`] as deliveries: the destination policy, the
//! egress proxy and the webhook's timeout apply. A failure is said as the provider said it
//! (`error`, `error_description`), with every secret masked. A refusal that asking again
//! cannot fix (a revoked refresh token: `invalid_grant`; a wrong client secret) stops token
//! requests for [`BLOCK_AFTER_REFUSAL`] or until the webhook's auth is changed, so a revoked
//! token is one clear failure, not a request per delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use carehook_core::ids::WebhookId;
use carehook_core::webhook::{Auth, ClientAuth, MASK};
use carehook_store::{OAuthTokenRow, OAuthTokenSave, Store};
use serde::Deserialize;
use tokio::time::Instant;

use super::{Outbound, Outgoing, SendError};
use crate::registry::Loaded;
use crate::time::now_ms;
use crate::vault::Vault;

/// No token request for this long after a refusal the provider will repeat.
pub const BLOCK_AFTER_REFUSAL: Duration = Duration::from_secs(15 * 60);
/// No token request for this long after a failure that may pass (a 5xx, a timeout).
pub const BLOCK_AFTER_FAILURE: Duration = Duration::from_secs(2);
/// Assumed lifetime of a token answered without `expires_in` (Salesforce's client
/// credentials flow): the 401 path renews it earlier if the session ends sooner.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// How often a node waiting for another's token request looks at the row.
const WAIT_STEP: Duration = Duration::from_millis(50);
/// Longest error text kept from a provider.
const MAX_ERROR: usize = 300;

/// When to ask for the next token: shortly before this one expires (a tenth of its lifetime,
/// at most a minute), so no delivery goes out with a token about to lapse.
pub fn refresh_at(issued_at: i64, lifetime_ms: i64) -> i64 {
    let margin = (lifetime_ms / 10).min(60_000);
    issued_at + lifetime_ms - margin
}

/// An access token to send.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    /// The row's generation it came with; a 401 names it to [`Tokens::renew`].
    pub generation: i64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({MASK}, generation {})", self.generation)
    }
}

struct Cached {
    /// The webhook's version it was had for: a changed webhook reads the row again.
    version: i64,
    token: Token,
    refresh_at: i64,
}

/// The token cache of this node, in front of the shared rows.
pub struct Tokens {
    store: Arc<dyn Store>,
    vault: Vault,
    /// Token requests go out through this (no tokens of its own).
    http: Outbound,
    /// This node; a lease owner is this and a random suffix, one per request.
    node: String,
    cache: Mutex<HashMap<WebhookId, Cached>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("node", &self.node).finish()
    }
}

/// A failed token request, as the delivery log says it (after "token request failed: ").
#[derive(Debug, Clone)]
pub struct TokenFailure {
    pub message: String,
    /// Asking again will be refused the same way until the settings change.
    pub lasting: bool,
}

impl Tokens {
    pub fn new(store: Arc<dyn Store>, vault: Vault, http: Outbound, node: &str) -> Self {
        Tokens {
            store,
            vault,
            http,
            node: node.to_string(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, w: &Loaded, now: i64) -> Option<Token> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&w.row.id)
            .filter(|c| c.version == w.row.version && now < c.refresh_at)
            .map(|c| c.token.clone())
    }

    fn remember(&self, w: &Loaded, token: &Token, refresh_at: i64) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            w.row.id,
            Cached {
                version: w.row.version,
                token: token.clone(),
                refresh_at,
            },
        );
    }

    /// Forgets what this node holds for a webhook (its auth changed or it was deleted).
    pub fn forget(&self, id: WebhookId) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// A token for the webhook: this node's, the cluster's, or a new one.
    pub async fn get(&self, w: &Loaded, timeout: Duration) -> Result<Token, String> {
        if let Some(t) = self.cached(w, now_ms()) {
            return Ok(t);
        }
        self.obtain(w, None, timeout).await
    }

    /// A token newer than `stale` (which the destination answered 401 to): another
    /// delivery's, or one asked for now.
    pub async fn renew(&self, w: &Loaded, stale: i64, timeout: Duration) -> Result<Token, String> {
        self.obtain(w, Some(stale), timeout).await
    }

    fn open(&self, row: &OAuthTokenRow) -> Option<Token> {
        let sealed = row.access_token.as_deref()?;
        let value = self.vault.open_secret(sealed).ok()?;
        (!value.is_empty()).then_some(Token {
            value,
            generation: row.generation,
        })
    }

    async fn obtain(
        &self,
        w: &Loaded,
        stale: Option<i64>,
        timeout: Duration,
    ) -> Result<Token, String> {
        let id = w.row.id;
        let started = now_ms();
        let deadline = Instant::now() + timeout;
        let fresh = |row: &OAuthTokenRow, now: i64| {
            stale.is_none_or(|g| row.generation > g) && row.refresh_at.is_some_and(|t| now < t)
        };
        let still_valid = |row: &OAuthTokenRow, now: i64| {
            stale.is_none_or(|g| row.generation > g) && row.expires_at.is_some_and(|t| now < t)
        };
        loop {
            let now = now_ms();
            let row = self
                .store
                .oauth_token(id)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(row) = &row {
                if fresh(row, now)
                    && let Some(t) = self.open(row)
                {
                    self.remember(w, &t, row.refresh_at.unwrap_or(now));
                    return Ok(t);
                }
                if let Some(until) = row.blocked_until.filter(|&u| u > now) {
                    let why = row.last_error.clone().unwrap_or_default();
                    return Err(format!(
                        "{why} (carehook asks again after {}, or when the webhook's auth is saved again)",
                        crate::time::rfc3339(until)
                    ));
                }
                // Another node or task failed while this one waited: say its failure.
                if row.failed_at.is_some_and(|t| t >= started)
                    && let Some(why) = &row.last_error
                {
                    return Err(why.clone());
                }
            }
            let owner = format!("{}/{}", self.node, uuid::Uuid::now_v7());
            let lease_ms = timeout.as_millis() as i64 + 5_000;
            let leased = self
                .store
                .oauth_lease(id, &owner, now, lease_ms)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(row) = leased {
                // Leased: unless a token arrived, or a request failed, in between, this
                // node asks for one.
                let failed_meanwhile = row.failed_at.is_some_and(|t| t >= started)
                    || row.blocked_until.is_some_and(|u| u > now);
                if failed_meanwhile || fresh(&row, now) {
                    let _ = self.store.oauth_release(id, &owner).await;
                    if let Some(t) = self.open(&row).filter(|_| fresh(&row, now)) {
                        self.remember(w, &t, row.refresh_at.unwrap_or(now));
                        return Ok(t);
                    }
                    // Look again (bounded by the deadline below).
                } else {
                    return self.request(w, &row, &owner, timeout).await;
                }
            }
            // Someone else is asking: the current token serves while it is valid.
            if let Some(row) = &row
                && still_valid(row, now)
                && let Some(t) = self.open(row)
            {
                return Ok(t);
            }
            if Instant::now() + WAIT_STEP > deadline {
                return Err(format!(
                    "no token within {} ms: another node's token request has not finished",
                    timeout.as_millis()
                ));
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    }

    /// Asks the provider, holding the lease as `owner`, and saves the answer.
    async fn request(
        &self,
        w: &Loaded,
        row: &OAuthTokenRow,
        owner: &str,
        timeout: Duration,
    ) -> Result<Token, String> {
        let id = w.row.id;
        let auth = &w.compiled.spec.auth;
        let current_refresh = match &row.refresh_token {
            Some(sealed) => self
                .vault
                .open_secret(sealed)
                .map_err(|e| format!("{e:#}"))?,
            None => match auth {
                Auth::OAuth2RefreshToken { refresh_token, .. } => refresh_token.clone(),
                _ => String::new(),
            },
        };
        let issued_at = now_ms();
        let result = ask(&self.http, auth, &current_refresh, timeout).await;
        let now = now_ms();
        match result {
            Ok(answer) => {
                let lifetime = answer.lifetime.as_millis() as i64;
                let rotated = answer
                    .refresh_token
                    .as_deref()
                    .filter(|r| !r.is_empty() && *r != current_refresh)
                    .map(|r| self.vault.seal(r));
                let refresh_at = refresh_at(issued_at, lifetime);
                let save = OAuthTokenSave {
                    access_token: self.vault.seal(&answer.access_token),
                    expires_at: issued_at + lifetime,
                    refresh_at,
                    refresh_token: rotated,
                    now,
                };
                // The rotated refresh token is saved before the access token is used; a write
                // that fails is tried again, as the provider may already have revoked the old one.
                let mut saved = None;
                let mut last = String::new();
                for wait in [0u64, 100, 400] {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    match self.store.oauth_save(id, owner, save.clone()).await {
                        Ok(g) => {
                            saved = Some(g);
                            break;
                        }
                        Err(e) => last = e.to_string(),
                    }
                }
                match saved {
                    Some(Some(generation)) => {
                        let t = Token {
                            value: answer.access_token,
                            generation,
                        };
                        tracing::debug!(webhook = %id, generation, "OAuth 2.0 access token renewed");
                        self.remember(w, &t, refresh_at);
                        Ok(t)
                    }
                    Some(None) => Err(
                        "the webhook's OAuth 2.0 settings changed while the token was asked for; the next attempt uses the new ones"
                            .into(),
                    ),
                    None => Err(format!("the new token could not be saved: {last}")),
                }
            }
            Err(f) => {
                let block = if f.lasting {
                    BLOCK_AFTER_REFUSAL
                } else {
                    BLOCK_AFTER_FAILURE
                };
                let until = now + block.as_millis() as i64;
                tracing::warn!(webhook = %id, error = %f.message, "OAuth 2.0 token request failed");
                let _ = self
                    .store
                    .oauth_fail(id, owner, &f.message, now, Some(until))
                    .await;
                self.forget(id);
                Err(f.message)
            }
        }
    }
}

/// A provider's good answer.
struct Granted {
    access_token: String,
    lifetime: Duration,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_description: Option<String>,
}

/// The token request's form body and headers (RFC 6749 §4.4, §6; client authentication §2.3.1).
fn token_request(auth: &Auth, refresh_token: &str) -> Option<(String, Vec<(String, String)>)> {
    let (client_id, client_secret, client_auth) = match auth {
        Auth::OAuth2ClientCredentials {
            client_id,
            client_secret,
            client_auth,
            ..
        }
        | Auth::OAuth2RefreshToken {
            client_id,
            client_secret,
            client_auth,
            ..
        } => (client_id, client_secret, *client_auth),
        _ => return None,
    };
    let mut form = form_urlencoded::Serializer::new(String::new());
    match auth {
        Auth::OAuth2ClientCredentials {
            scope, audience, ..
        } => {
            form.append_pair("grant_type", "client_credentials");
            if !scope.trim().is_empty() {
                form.append_pair("scope", scope.trim());
            }
            if !audience.trim().is_empty() {
                form.append_pair("audience", audience.trim());
            }
        }
        Auth::OAuth2RefreshToken { scope, .. } => {
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", refresh_token);
            if !scope.trim().is_empty() {
                form.append_pair("scope", scope.trim());
            }
        }
        _ => return None,
    }
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept".to_string(), "application/json".to_string()),
    ];
    match client_auth {
        ClientAuth::Basic => {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let raw = format!("{}:{}", enc(client_id), enc(client_secret));
            headers.push((
                "authorization".to_string(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ),
            ));
        }
        ClientAuth::Body => {
            form.append_pair("client_id", client_id);
            if !client_secret.is_empty() {
                form.append_pair("client_secret", client_secret);
            }
        }
    }
    Some((form.finish(), headers))
}

/// `text` with every secret in `secrets` replaced by the mask, cut to [`MAX_ERROR`].
fn mask(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, MASK);
    }
    if out.chars().count() > MAX_ERROR {
        out = out.chars().take(MAX_ERROR).collect::<String>() + "…";
    }
    out
}

/// One token request to the provider.
async fn ask(
    http: &Outbound,
    auth: &Auth,
    refresh_token: &str,
    timeout: Duration,
) -> Result<Granted, TokenFailure> {
    let token_url = match auth {
        Auth::OAuth2ClientCredentials { token_url, .. }
        | Auth::OAuth2RefreshToken { token_url, .. } => token_url.trim(),
        _ => {
            return Err(TokenFailure {
                message: "the webhook's auth is not OAuth 2.0".into(),
                lasting: true,
            });
        }
    };
    let client_secret = auth.secret().unwrap_or("");
    let secrets = [client_secret, refresh_token];
    let Some((body, headers)) = token_request(auth, refresh_token) else {
        return Err(TokenFailure {
            message: "the webhook's auth is not OAuth 2.0".into(),
            lasting: true,
        });
    };
    let answer = http
        .send(Outgoing {
            method: "POST",
            url: token_url,
            headers: &headers,
            body,
            timeout,
        })
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            let lasting = matches!(e, SendError::Refused(_) | SendError::Invalid(_));
            return Err(TokenFailure {
                message: mask(&format!("{token_url}: {e}"), &secrets),
                lasting,
            });
        }
    };
    if !(200..300).contains(&answer.status) {
        let said = match serde_json::from_str::<ErrorAnswer>(&answer.body) {
            Ok(ErrorAnswer {
                error: Some(error),
                error_description,
            }) => match error_description.filter(|d| !d.is_empty()) {
                Some(d) => format!("{error}: {d}"),
                None => error,
            },
            _ => answer.body.trim().to_string(),
        };
        let code = serde_json::from_str::<ErrorAnswer>(&answer.body)
            .ok()
            .and_then(|e| e.error)
            .unwrap_or_default();
        // Refusals asking again cannot fix (RFC 6749 §5.2); a 5xx or 429 may pass.
        let lasting = matches!(
            code.as_str(),
            "invalid_grant"
                | "invalid_client"
                | "unauthorized_client"
                | "unsupported_grant_type"
                | "invalid_scope"
                | "invalid_request"
        ) || matches!(answer.status, 400 | 401 | 403);
        let hint = if code == "invalid_grant" && auth.kind() == "oauth2_refresh_token" {
            " — the refresh token was revoked or expired: authorize again and enter the new refresh token"
        } else {
            ""
        };
        return Err(TokenFailure {
            message: mask(
                &format!(
                    "the token URL answered HTTP {}: {said}{hint}",
                    answer.status
                ),
                &secrets,
            ),
            lasting,
        });
    }
    let parsed: TokenAnswer = serde_json::from_str(&answer.body).map_err(|e| TokenFailure {
        message: format!("the token URL's answer is not the JSON of an OAuth 2.0 token: {e}"),
        lasting: false,
    })?;
    let Some(access_token) = parsed.access_token.filter(|t| !t.is_empty()) else {
        return Err(TokenFailure {
            message: "the token URL's answer has no access_token".into(),
            lasting: false,
        });
    };
    let seconds = match parsed.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let lifetime = seconds
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.clamp(1.0, 366.0 * 24.0 * 3600.0)))
        .unwrap_or(DEFAULT_LIFETIME);
    Ok(Granted {
        access_token,
        lifetime,
        refresh_token: parsed.refresh_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_a_tenth_of_their_life_early_at_most_a_minute() {
        assert_eq!(refresh_at(0, 2_000), 1_800);
        assert_eq!(refresh_at(1_000, 3_600_000), 1_000 + 3_600_000 - 60_000);
    }

    #[test]
    fn the_request_follows_rfc_6749() {
        let auth: Auth = serde_json::from_value(serde_json::json!({
            "type": "oauth2_refresh_token", "token_url": "https://idp/t", "client_id": "id:1",
            "client_secret": "s&c", "refresh_token": "rt-1", "scope": "a b"
        }))
        .unwrap();
        let (body, headers) = token_request(&auth, "rt-2").unwrap();
        let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "rt-2");
        assert_eq!(form["scope"], "a b");
        assert!(!form.contains_key("client_secret"));
        let basic = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(basic.trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "id%3A1:s%26c");

        let auth: Auth = serde_json::from_value(serde_json::json!({
            "type": "oauth2_client_credentials", "token_url": "https://idp/t", "client_id": "c",
            "client_secret": "s", "audience": "https://api", "client_auth": "body"
        }))
        .unwrap();
        let (body, headers) = token_request(&auth, "").unwrap();
        let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["audience"], "https://api");
        assert_eq!(
            (form["client_id"].as_str(), form["client_secret"].as_str()),
            ("c", "s")
        );
        assert!(headers.iter().all(|(k, _)| k != "authorization"));
    }

    #[test]
    fn errors_never_show_a_secret() {
        let m = mask(
            "invalid_client: bad secret sec-123456 for rt-abcdef",
            &["sec-123456", "rt-abcdef"],
        );
        assert!(!m.contains("sec-123456") && !m.contains("rt-abcdef"), "{m}");
        assert!(mask(&"x".repeat(1000), &[]).chars().count() <= MAX_ERROR + 1);
    }
}
