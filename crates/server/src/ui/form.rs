//! The webhook editor's fields, both ways: from a stored spec to what the
//! form shows, and from a posted form to the JSON the API takes. The save,
//! the live preview and the re-shown form after an error all go through
//! [`Editor`], so what the admin sees is what is saved.

use std::collections::BTreeMap;

use carehook_core::conditions::Condition;
use carehook_core::retry::format_duration;
use carehook_core::webhook::{Auth, KeyLocation, WebhookSpec};
use serde_json::{Map, Value, json};

/// A posted `application/x-www-form-urlencoded` body, in order, with
/// repeated names kept (header rows, event checkboxes).
#[derive(Debug, Clone, Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(bytes: &[u8]) -> FormData {
        FormData(form_urlencoded::parse(bytes).into_owned().collect())
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> FormData {
        FormData(pairs)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value, or empty text.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").to_string()
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A checkbox: present means checked.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// One problem, placed beside the input it is about.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FieldError {
    /// The API's name for the field (`body`, `headers.X-Clinic`…).
    pub field: String,
    /// The id suffix of the error slot in the form (`error-body`).
    pub anchor: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        FieldError {
            anchor: anchor(&field).to_string(),
            field,
            message: message.into(),
        }
    }
}

/// Which error slot of the editor shows an error about `field`.
pub fn anchor(field: &str) -> &'static str {
    let field = field.strip_prefix("webhook.").unwrap_or(field);
    let head = field.split(['.', '[']).next().unwrap_or("");
    match head {
        "name" => "name",
        "description" => "description",
        "clinics" => "clinics",
        "events" => "events",
        "url" => "url",
        "method" => "method",
        "content_type" => "content_type",
        "auth" => "auth",
        "headers" => "headers",
        "query" => "query",
        "body" => "body",
        "conditions" => "conditions",
        "timeout_ms" => "timeout_ms",
        "retry" => "retry",
        "rate_limit" => "rate_limit",
        "max_in_flight" => "max_in_flight",
        "values" => "values",
        "data_policy" => "data_policy",
        "tls" => "tls",
        "ordering_key" => "ordering_key",
        "schedule" => "schedule",
        _ => "form",
    }
}

/// The editor's inputs, as text, exactly as shown.
#[derive(Debug, Clone, Default)]
pub struct Editor {
    pub name: String,
    pub description: String,
    /// The clinics it serves, comma-separated; empty: every clinic.
    pub clinics: String,
    pub enabled: bool,
    pub any_event: bool,
    pub events: Vec<String>,
    pub url: String,
    pub method: String,
    pub content_type: String,
    pub auth_type: String,
    pub auth_username: String,
    pub auth_key_name: String,
    pub auth_key_location: String,
    /// The secret typed in this post; never filled from the store.
    pub auth_secret: String,
    /// A secret is saved; an empty secret input keeps it.
    pub has_secret: bool,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: String,
    /// (variable, op, value): a list is written comma-separated.
    pub conditions: Vec<(String, String, String)>,
    pub timeout_ms: String,
    pub retry_schedule: String,
    pub retry_max_attempts: String,
    pub retry_max_age: String,
    pub rate_limit: String,
    pub max_in_flight: String,
    pub signing: bool,
    pub accept_redirects: bool,
    /// The webhook has a data policy; an undeclared one (saved before
    /// policies, or by an API client) stays so until a box or a basis is given.
    pub data_declared: bool,
    pub data_identifying: bool,
    pub data_phi: bool,
    pub data_basis: String,
    /// OAuth 2.0 (both grants): the provider's token URL and the client.
    pub oauth: OAuthInputs,
    /// Mutual TLS: certificates as PEM text; the key typed in this post only.
    pub tls: TlsInputs,
    /// The ordering key template; empty: deliveries are unordered.
    pub ordering_key: String,
    /// A scheduled webhook (reminder): the date-and-time variable counted from (empty: send
    /// at once), the offset (`-24h`), and what to do when that time has passed.
    pub schedule_at: String,
    pub schedule_offset: String,
    pub schedule_if_past: String,
}

/// The OAuth 2.0 inputs; the secrets are only what was typed in this post.
#[derive(Debug, Clone, Default)]
pub struct OAuthInputs {
    pub token_url: String,
    pub client_id: String,
    pub scope: String,
    pub audience: String,
    pub client_auth: String,
    pub client_secret: String,
    pub refresh_token: String,
}

/// The mutual TLS inputs.
#[derive(Debug, Clone, Default)]
pub struct TlsInputs {
    pub client_cert: String,
    pub client_key: String,
    pub ca_certs: String,
    /// A key is saved; an empty key input keeps it.
    pub has_key: bool,
    /// "expires 2027-01-01T00:00:00Z", and whether that is within 14 days.
    pub expiry: String,
    pub expires_soon: bool,
}

impl TlsInputs {
    fn from_spec(tls: Option<&carehook_core::webhook::ClientTls>) -> TlsInputs {
        let Some(tls) = tls else {
            return TlsInputs::default();
        };
        let cert = crate::client_tls::cert_info(tls);
        let now = crate::time::now_ms();
        TlsInputs {
            client_cert: tls.client_cert.clone(),
            client_key: String::new(),
            ca_certs: tls.ca_certs.clone(),
            has_key: !tls.client_key.is_empty(),
            expiry: cert
                .as_ref()
                .map(|c| {
                    format!(
                        "{} — expires {}",
                        c.subject,
                        crate::time::rfc3339(c.not_after)
                    )
                })
                .unwrap_or_default(),
            expires_soon: cert
                .is_some_and(|c| c.not_after - now <= crate::client_tls::EXPIRY_WARNING_MS),
        }
    }

    fn to_json(&self) -> Value {
        let text = |s: &str| s.replace("\r\n", "\n").trim().to_string();
        if text(&self.client_cert).is_empty() && text(&self.ca_certs).is_empty() {
            return Value::Null;
        }
        json!({
            "client_cert": text(&self.client_cert),
            "client_key": text(&self.client_key),
            "ca_certs": text(&self.ca_certs),
        })
    }
}

fn rows(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Editor {
    /// A blank webhook: one event, JSON, the defaults, and a data policy
    /// that lets no patient data out until the admin says otherwise.
    pub fn blank() -> Editor {
        let spec: WebhookSpec = serde_json::from_value(json!({
            "name": "", "events": ["kc_appointment_book"], "url": "",
            "body": "{\n  \"clinic\": \"{{clinic_name}}\",\n  \"date\": \"{{appointment_date}}\"\n}",
            "data_policy": {"identifying": false, "phi": false}
        }))
        .expect("the blank webhook is a valid spec");
        Editor::from_spec(&spec, false)
    }

    pub fn from_spec(spec: &WebhookSpec, has_secret: bool) -> Editor {
        let any_event = spec.events.iter().any(|e| e == "*");
        let (username, key_name, location) = match &spec.auth {
            Auth::Basic { username, .. } => (username.clone(), String::new(), "header"),
            Auth::ApiKey { name, location, .. } => (
                String::new(),
                name.clone(),
                match location {
                    KeyLocation::Header => "header",
                    KeyLocation::Query => "query",
                },
            ),
            _ => (String::new(), String::new(), "header"),
        };
        let oauth = match &spec.auth {
            Auth::OAuth2ClientCredentials {
                token_url,
                client_id,
                scope,
                audience,
                client_auth,
                ..
            } => OAuthInputs {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                scope: scope.clone(),
                audience: audience.clone(),
                client_auth: value_text(&serde_json::to_value(client_auth).unwrap_or_default()),
                ..OAuthInputs::default()
            },
            Auth::OAuth2RefreshToken {
                token_url,
                client_id,
                scope,
                client_auth,
                ..
            } => OAuthInputs {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                scope: scope.clone(),
                client_auth: value_text(&serde_json::to_value(client_auth).unwrap_or_default()),
                ..OAuthInputs::default()
            },
            _ => OAuthInputs::default(),
        };
        let retry = serde_json::to_value(&spec.retry).unwrap_or_default();
        Editor {
            name: spec.name.clone(),
            description: spec.description.clone(),
            clinics: spec.clinics.join(", "),
            enabled: spec.enabled,
            any_event,
            events: spec
                .events
                .iter()
                .filter(|e| *e != "*")
                .map(|e| {
                    carehook_core::catalog::canonical_name(e)
                        .unwrap_or(e)
                        .to_string()
                })
                .collect(),
            url: spec.url.clone(),
            method: spec.method.as_str().to_string(),
            content_type: value_text(&serde_json::to_value(spec.content_type).unwrap_or_default()),
            auth_type: spec.auth.kind().to_string(),
            auth_username: username,
            auth_key_name: key_name,
            auth_key_location: location.to_string(),
            auth_secret: String::new(),
            has_secret,
            headers: rows(&spec.headers),
            query: rows(&spec.query),
            body: spec.body.clone(),
            conditions: spec
                .conditions
                .iter()
                .map(|c: &Condition| {
                    (
                        c.variable.clone(),
                        c.op.as_str().to_string(),
                        c.value.as_ref().map(value_text).unwrap_or_default(),
                    )
                })
                .collect(),
            timeout_ms: spec.timeout_ms.to_string(),
            retry_schedule: spec
                .retry
                .schedule
                .iter()
                .map(|d| format_duration(*d))
                .collect::<Vec<_>>()
                .join(", "),
            retry_max_attempts: spec
                .retry
                .max_attempts
                .map(|n| n.to_string())
                .unwrap_or_default(),
            retry_max_age: retry["max_age"].as_str().unwrap_or("").to_string(),
            rate_limit: spec.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
            max_in_flight: spec.max_in_flight.to_string(),
            signing: spec.signing,
            accept_redirects: spec.accept_redirects,
            data_declared: spec.data_policy.is_some(),
            data_identifying: spec.data_policy.as_ref().is_some_and(|p| p.identifying),
            data_phi: spec.data_policy.as_ref().is_some_and(|p| p.phi),
            data_basis: spec
                .data_policy
                .as_ref()
                .map(|p| p.basis.clone())
                .unwrap_or_default(),
            oauth,
            tls: TlsInputs::from_spec(spec.tls.as_ref()),
            ordering_key: spec.ordering_key.clone().unwrap_or_default(),
            schedule_at: spec
                .schedule
                .as_ref()
                .map(|s| s.at.clone())
                .unwrap_or_default(),
            schedule_offset: spec
                .schedule
                .as_ref()
                .map(|s| s.offset.clone())
                .unwrap_or_default(),
            schedule_if_past: spec
                .schedule
                .as_ref()
                .map(|s| s.if_past.as_str().to_string())
                .unwrap_or_else(|| "skip".into()),
        }
    }

    /// The variables a schedule may count from: every date-and-time variable of the catalog
    /// (the save checks that each subscribed event carries the one chosen).
    pub fn schedule_choices(&self) -> Vec<&'static str> {
        let mut names = carehook_core::catalog::variable_names();
        names.retain(|n| {
            carehook_core::catalog::variable(n)
                .is_some_and(|v| v.ty == carehook_core::catalog::VarType::DateTime)
        });
        names
    }

    pub fn from_form(f: &FormData, has_secret: bool) -> Editor {
        let pairs = |names: &str, values: &str| -> Vec<(String, String)> {
            f.all(names)
                .into_iter()
                .zip(f.all(values))
                .filter(|(k, v)| !(k.trim().is_empty() && v.trim().is_empty()))
                .collect()
        };
        let ops = f.all("cond_op");
        let values = f.all("cond_value");
        let conditions = f
            .all("cond_variable")
            .into_iter()
            .enumerate()
            .map(|(i, var)| {
                (
                    var,
                    ops.get(i).cloned().unwrap_or_default(),
                    values.get(i).cloned().unwrap_or_default(),
                )
            })
            .filter(|(var, _, value)| !(var.trim().is_empty() && value.trim().is_empty()))
            .collect();
        let auth_type = f.text("auth_type");
        let secret_input = match auth_type.as_str() {
            "basic" => "auth_password",
            "bearer" => "auth_token",
            "api_key" => "auth_key_value",
            _ => "",
        };
        Editor {
            name: f.text("name"),
            description: f.text("description"),
            clinics: f.text("clinics"),
            enabled: f.checked("enabled"),
            any_event: f.checked("any_event"),
            events: f.all("events"),
            url: f.text("url"),
            method: f.text("method"),
            content_type: f.text("content_type"),
            auth_username: f.text("auth_username"),
            auth_key_name: f.text("auth_key_name"),
            auth_key_location: f.text("auth_key_location"),
            auth_secret: f.text(secret_input),
            auth_type,
            has_secret,
            headers: pairs("header_name", "header_value"),
            query: pairs("query_name", "query_value"),
            // Browsers send CR LF line ends; templates keep what was meant.
            body: f.text("body").replace("\r\n", "\n"),
            conditions,
            timeout_ms: f.text("timeout_ms"),
            retry_schedule: f.text("retry_schedule"),
            retry_max_attempts: f.text("retry_max_attempts"),
            retry_max_age: f.text("retry_max_age"),
            rate_limit: f.text("rate_limit"),
            max_in_flight: f.text("max_in_flight"),
            signing: f.checked("signing"),
            accept_redirects: f.checked("accept_redirects"),
            data_declared: f.checked("data_declared"),
            data_identifying: f.checked("data_identifying"),
            data_phi: f.checked("data_phi"),
            data_basis: f.text("data_basis"),
            oauth: OAuthInputs {
                token_url: f.text("oauth_token_url"),
                client_id: f.text("oauth_client_id"),
                scope: f.text("oauth_scope"),
                audience: f.text("oauth_audience"),
                client_auth: f.text("oauth_client_auth"),
                client_secret: f.text("oauth_client_secret"),
                refresh_token: f.text("oauth_refresh_token"),
            },
            tls: TlsInputs {
                client_cert: f.text("tls_client_cert"),
                client_key: f.text("tls_client_key"),
                ca_certs: f.text("tls_ca_certs"),
                has_key: f.checked("tls_has_key"),
                expiry: String::new(),
                expires_soon: false,
            },
            ordering_key: f.text("ordering_key"),
            schedule_at: f.text("schedule_at"),
            schedule_offset: f.text("schedule_offset"),
            schedule_if_past: f.text("schedule_if_past"),
        }
    }

    /// The webhook as the API's JSON. Empty optional inputs are `null`
    /// (so a PATCH clears them); an empty secret is `""`, which the API
    /// reads as "leave the saved one unchanged".
    pub fn to_json(&self) -> Result<Value, FieldError> {
        let number = |field: &str, text: &str| -> Result<Value, FieldError> {
            let t = text.trim();
            if t.is_empty() {
                return Ok(Value::Null);
            }
            t.parse::<u64>()
                .map(Value::from)
                .map_err(|_| FieldError::new(field, format!("\"{t}\" is not a whole number")))
        };
        let events: Vec<String> = if self.any_event {
            vec!["*".into()]
        } else {
            self.events.clone()
        };
        if events.is_empty() {
            return Err(FieldError::new(
                "events",
                "choose at least one event, or \"any event\"",
            ));
        }
        let auth = match self.auth_type.as_str() {
            "" | "none" => json!({"type": "none"}),
            "basic" => {
                json!({"type": "basic", "username": self.auth_username.trim(), "password": self.auth_secret})
            }
            "bearer" => json!({"type": "bearer", "token": self.auth_secret}),
            "api_key" => json!({"type": "api_key", "name": self.auth_key_name.trim(),
                "value": self.auth_secret, "location": if self.auth_key_location == "query" { "query" } else { "header" }}),
            kind @ ("oauth2_client_credentials" | "oauth2_refresh_token") => {
                let o = &self.oauth;
                let mut a = json!({"type": kind, "token_url": o.token_url.trim(),
                    "client_id": o.client_id.trim(), "client_secret": o.client_secret,
                    "scope": o.scope.trim(),
                    "client_auth": if o.client_auth == "body" { "body" } else { "basic" }});
                if kind == "oauth2_refresh_token" {
                    a["refresh_token"] = o.refresh_token.trim().into();
                } else {
                    a["audience"] = o.audience.trim().into();
                }
                a
            }
            other => {
                return Err(FieldError::new(
                    "auth",
                    format!("unknown auth type \"{other}\""),
                ));
            }
        };
        let table = |field: &str, rows: &[(String, String)]| -> Result<Value, FieldError> {
            let mut map = Map::new();
            for (k, v) in rows {
                let k = k.trim();
                if k.is_empty() {
                    return Err(FieldError::new(
                        field,
                        format!("the row with value \"{v}\" needs a name"),
                    ));
                }
                if map.insert(k.to_string(), Value::from(v.clone())).is_some() {
                    return Err(FieldError::new(
                        format!("{field}.{k}"),
                        format!("\"{k}\" is there twice"),
                    ));
                }
            }
            Ok(Value::Object(map))
        };
        let mut conditions = Vec::new();
        for (i, (var, op, value)) in self.conditions.iter().enumerate() {
            let mut c = json!({"variable": var.trim(), "op": op});
            match op.as_str() {
                "exists" => {}
                "in" | "not_in" => {
                    c["value"] = value
                        .split(',')
                        .map(|s| Value::from(s.trim()))
                        .filter(|v| v.as_str() != Some(""))
                        .collect();
                }
                _ => c["value"] = Value::from(value.clone()),
            }
            if var.trim().is_empty() {
                return Err(FieldError::new(
                    format!("conditions[{i}].variable"),
                    "choose the variable this condition looks at",
                ));
            }
            conditions.push(c);
        }
        let schedule: Vec<Value> = self
            .retry_schedule
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Value::from)
            .collect();
        let mut retry = json!({
            "schedule": schedule,
            "max_attempts": number("retry.max_attempts", &self.retry_max_attempts)?,
        });
        // Empty: the default maximum age (the API's merge patch cannot
        // express "none" anyway).
        if !self.retry_max_age.trim().is_empty() {
            retry["max_age"] = self.retry_max_age.trim().into();
        }
        let rate_limit = match self.rate_limit.trim() {
            "" => Value::Null,
            t => t
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| FieldError::new("rate_limit", format!("\"{t}\" is not a number")))?,
        };
        let clinics: Vec<&str> = self
            .clinics
            .split([',', ' '])
            .filter(|c| !c.is_empty())
            .collect();
        let mut spec = json!({
            "name": self.name,
            "description": self.description,
            "clinics": if clinics.is_empty() { Value::Null } else { json!(clinics) },
            "enabled": self.enabled,
            "events": events,
            "url": self.url.trim(),
            "method": if self.method.is_empty() { "POST" } else { &self.method },
            "content_type": if self.content_type.is_empty() { "json" } else { &self.content_type },
            "auth": auth,
            "headers": table("headers", &self.headers)?,
            "query": table("query", &self.query)?,
            "body": self.body,
            "conditions": conditions,
            "retry": retry,
            "rate_limit": rate_limit,
            "signing": self.signing,
            "accept_redirects": self.accept_redirects,
            "tls": self.tls.to_json(),
            // Empty: none (null also takes it off in a merge patch).
            "ordering_key": match self.ordering_key.trim() {
                "" => Value::Null,
                t => Value::from(t),
            },
            "schedule": self.schedule_json(),
        });
        if self.data_declared
            || self.data_identifying
            || self.data_phi
            || !self.data_basis.trim().is_empty()
        {
            spec["data_policy"] = json!({
                "identifying": self.data_identifying,
                "phi": self.data_phi,
                "basis": self.data_basis.trim(),
            });
        }
        for (field, text) in [
            ("timeout_ms", &self.timeout_ms),
            ("max_in_flight", &self.max_in_flight),
        ] {
            let n = number(field, text)?;
            if !n.is_null() {
                spec[field] = n;
            }
        }
        Ok(spec)
    }

    /// The schedule as the API takes it; `null` (send at once) when no variable is chosen.
    fn schedule_json(&self) -> Value {
        let at = self.schedule_at.trim();
        if at.is_empty() {
            return Value::Null;
        }
        json!({
            "at": at,
            "offset": self.schedule_offset.trim(),
            "if_past": if self.schedule_if_past == "send" { "send" } else { "skip" },
        })
    }

    /// The spec, for a preview: the typed secret, or a stand-in for the
    /// saved one (a preview shows every secret masked anyway).
    pub fn to_spec(&self) -> Result<WebhookSpec, FieldError> {
        let mut v = self.to_json()?;
        if let Some(obj) = v.as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
        if let Some(retry) = v["retry"].as_object_mut() {
            retry.retain(|_, v| !v.is_null());
        }
        let mut spec: WebhookSpec = crate::service::parse_json(v.to_string().as_bytes())
            .map_err(|e| FieldError::new(e.field().unwrap_or_default(), e.message()))?;
        if self.has_secret {
            for (_, secret) in spec.auth.secrets_mut() {
                if secret.is_empty() {
                    *secret = carehook_core::webhook::MASK.to_string();
                }
            }
        }
        if let Some(tls) = &mut spec.tls
            && tls.client_key.is_empty()
            && self.tls.has_key
        {
            tls.client_key = carehook_core::webhook::MASK.to_string();
        }
        Ok(spec)
    }

    /// A JSON merge patch (RFC 7396) that makes `old` into this: keys of
    /// `auth`, `headers` and `query` that are gone become `null`.
    pub fn to_patch(&self, old: &WebhookSpec) -> Result<Value, FieldError> {
        let mut patch = self.to_json()?;
        let old = serde_json::to_value(old).unwrap_or_default();
        for key in ["auth", "headers", "query"] {
            if let (Some(before), Some(now)) = (old[key].as_object(), patch[key].as_object_mut()) {
                for k in before.keys() {
                    now.entry(k.clone()).or_insert(Value::Null);
                }
            }
        }
        Ok(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> WebhookSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_spec_survives_the_round_trip_through_the_form() {
        let s = spec(json!({
            "name": "Teams", "events": ["kc_appointment_book", "kc_patient_save"],
            "url": "https://x.example/{{clinic_id}}", "method": "PUT", "content_type": "form",
            "auth": {"type": "api_key", "name": "hapikey", "value": "s", "location": "query"},
            "headers": {"X-A": "{{clinic_name}}"}, "query": {"src": "carehook"},
            "body": "a={{patient_name}}",
            "conditions": [{"variable": "appointment_status", "op": "in", "value": ["booked", "pending"]}],
            "timeout_ms": 5000, "retry": {"schedule": ["5s", "1m"], "max_attempts": 4, "max_age": "1d"},
            "rate_limit": 2.5, "signing": false, "ordering_key": "{{patient_id}}"
        }));
        let editor = Editor::from_spec(&s, true);
        assert_eq!(editor.ordering_key, "{{patient_id}}");
        assert_eq!(editor.events, ["kc_appointment_book", "kc_patient_add"]);
        let mut back = editor.to_spec().unwrap();
        assert_eq!(back.auth.secret(), Some(carehook_core::webhook::MASK));
        *back.auth.secret_mut().unwrap() = "s".into();
        let mut expected = s.clone();
        expected.events = back.events.clone();
        assert_eq!(back, expected);
    }

    #[test]
    fn posted_rows_become_maps_and_lists() {
        let f = FormData::parse(
            b"name=n&events=kc_patient_add&url=https%3A%2F%2Fx.example%2F&auth_type=bearer&auth_token=t\
              &header_name=X-A&header_value=1&header_name=&header_value=\
              &cond_variable=patient_city&cond_op=eq&cond_value=London\
              &retry_schedule=5s%2C+1m&timeout_ms=1000&max_in_flight=8&signing=on&body=%7B%7D",
        );
        let e = Editor::from_form(&f, false);
        let v = e.to_json().unwrap();
        assert_eq!(v["headers"], json!({"X-A": "1"}));
        assert_eq!(v["auth"], json!({"type": "bearer", "token": "t"}));
        assert_eq!(
            v["conditions"],
            json!([{"variable": "patient_city", "op": "eq", "value": "London"}])
        );
        assert_eq!(v["retry"]["schedule"], json!(["5s", "1m"]));
        assert_eq!(v["enabled"], json!(false));
        e.to_spec().unwrap().compile().unwrap();
    }

    #[test]
    fn a_patch_removes_what_the_form_dropped() {
        let old = spec(
            json!({"name": "n", "events": ["*"], "url": "https://x.example/",
            "auth": {"type": "api_key", "name": "k", "value": "v"}, "headers": {"X-Old": "1"}}),
        );
        let mut e = Editor::from_spec(&old, true);
        e.headers.clear();
        e.auth_type = "bearer".into();
        let patch = e.to_patch(&old).unwrap();
        assert_eq!(patch["headers"], json!({"X-Old": null}));
        assert_eq!(patch["auth"]["name"], Value::Null);
        assert_eq!(patch["auth"]["type"], "bearer");
        // An ordering key emptied in the form is taken off.
        let keyed = spec(
            json!({"name": "n", "events": ["*"], "url": "https://x.example/", "ordering_key": "{{patient_id}}"}),
        );
        let mut e = Editor::from_spec(&keyed, false);
        e.ordering_key = " ".into();
        assert_eq!(e.to_patch(&keyed).unwrap()["ordering_key"], Value::Null);
    }

    #[test]
    fn errors_land_beside_their_field() {
        assert_eq!(anchor("body"), "body");
        assert_eq!(anchor("headers.X-Clinic"), "headers");
        assert_eq!(anchor("events[1]"), "events");
        assert_eq!(anchor("conditions[0].value"), "conditions");
        assert_eq!(anchor("retry.schedule[2]"), "retry");
        assert_eq!(anchor("webhook.body"), "body");
        assert_eq!(anchor("values.account_sid"), "values");
        assert_eq!(anchor("ordering_key"), "ordering_key");
        assert_eq!(anchor(""), "form");
    }
}
