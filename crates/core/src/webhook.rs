//! A webhook as a clinic admin writes it ([`WebhookSpec`]), its validation,
//! and the compiled form the dispatcher renders requests from
//! ([`CompiledWebhook`]).
//!
//! Compiling happens once per saved version of a webhook: every template is
//! parsed and checked against the subscribed events, so a bad template is a
//! 422 at save time and never a failed delivery at 3 a.m.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Vars;
use crate::catalog::{CatalogError, Scope};
use crate::conditions::{self, Condition};
use crate::privacy::{self, DataPolicy, DataUse, Pseudonymizer};
use crate::retry::RetryPolicy;
use crate::template::{Context, Position, RenderError, Template, TemplateError, compile};

/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
/// Bounds on a webhook's timeout.
pub const MIN_TIMEOUT_MS: u64 = 100;
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// Default number of requests in flight to one webhook at once.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 8;
/// Most requests in flight to one webhook at once.
pub const MAX_MAX_IN_FLIGHT: u32 = 256;
/// Bounds on a webhook's rate limit, in requests per second. The lower bound
/// keeps the wait for the next token under 1000 s: a rate like `1e-300` would
/// otherwise ask the dispatcher for a wait no `Duration` can hold.
pub const MIN_RATE: f64 = 0.001;
pub const MAX_RATE: f64 = 10_000.0;
/// What a masked secret looks like in answers and logs.
pub const MASK: &str = "********";
/// The most extra headers, and query parameters, a webhook may set.
pub const MAX_HEADERS: usize = 64;
/// The longest header name a webhook may set.
pub const MAX_HEADER_NAME: usize = 128;
/// The most of a request's body the log (and a preview) keeps: like an
/// answer's, the first 64 KiB.
pub const MAX_LOGGED_BODY: usize = 64 * 1024;

/// `body` as the log keeps it: whole up to [`MAX_LOGGED_BODY`], else its
/// start and a note of the full size.
pub fn logged_body(body: &str) -> String {
    if body.len() <= MAX_LOGGED_BODY {
        return body.to_string();
    }
    let mut end = MAX_LOGGED_BODY;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated: {} bytes in all]", &body[..end], body.len())
}

/// The HTTP methods a webhook may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    #[default]
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// How the body is written, and the `Content-Type` sent with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    #[default]
    Json,
    Form,
    Text,
}

impl ContentType {
    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Json => "application/json",
            ContentType::Form => "application/x-www-form-urlencoded",
            ContentType::Text => "text/plain; charset=utf-8",
        }
    }

    fn template_context(self) -> Context {
        match self {
            ContentType::Json => Context::JsonBody,
            ContentType::Form => Context::FormBody,
            ContentType::Text => Context::Text,
        }
    }
}

/// A rate limit in requests per second, within [`MIN_RATE`]..=[`MAX_RATE`].
/// Only [`Rate::new`] makes one, so every pacing figure derived from it
/// (the interval between requests, the burst) is a small, finite number.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(f64);

impl Rate {
    /// `None` for anything outside the bounds (NaN and infinities included).
    pub fn new(per_second: f64) -> Option<Rate> {
        (MIN_RATE..=MAX_RATE)
            .contains(&per_second)
            .then_some(Rate(per_second))
    }

    pub fn per_second(self) -> f64 {
        self.0
    }

    /// Time between two requests at this rate: 100 µs to 1000 s.
    pub fn interval(self) -> Duration {
        Duration::from_nanos((1e9 / self.0).round() as u64)
    }

    /// Requests that may go at once after an idle spell: a second's worth,
    /// at least one (1 to 10 000).
    pub fn burst(self) -> u32 {
        (self.0.floor() as u32).max(1)
    }
}

/// What the dispatcher needs from a webhook to schedule and send its
/// deliveries, checked when the webhook is compiled: every figure is within
/// bounds, so no arithmetic on them can overflow or panic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryLimits {
    /// Requests in flight at once: 1 to [`MAX_MAX_IN_FLIGHT`].
    pub max_in_flight: u32,
    pub rate: Option<Rate>,
    /// Per-attempt timeout: [`MIN_TIMEOUT_MS`] to [`MAX_TIMEOUT_MS`].
    pub timeout: Duration,
    /// Older deliveries are dropped unsent; at most [`crate::retry::MAX_MAX_AGE`].
    pub max_age: Option<Duration>,
}

impl DeliveryLimits {
    /// `max_age` in milliseconds, for comparing with stored timestamps.
    pub fn max_age_ms(&self) -> Option<i64> {
        self.max_age
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    #[default]
    Header,
    Query,
}

/// How carehook authenticates to the destination. Secret fields hold the
/// plain value only in memory; the server encrypts them at rest and masks
/// them in every answer.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        #[serde(default)]
        password: String,
    },
    Bearer {
        #[serde(default)]
        token: String,
    },
    ApiKey {
        name: String,
        #[serde(default)]
        value: String,
        #[serde(default)]
        location: KeyLocation,
    },
    /// OAuth 2.0 client credentials grant (RFC 6749 §4.4): carehook asks
    /// `token_url` for an access token and sends it as a bearer token,
    /// asking again shortly before it expires.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        token_url: String,
        client_id: String,
        #[serde(default)]
        client_secret: String,
        /// Space-separated scopes; empty sends none.
        #[serde(default)]
        scope: String,
        /// The `audience` parameter some identity providers want; empty sends none.
        #[serde(default)]
        audience: String,
        #[serde(default)]
        client_auth: ClientAuth,
    },
    /// OAuth 2.0 refresh token grant (RFC 6749 §6): carehook trades the
    /// refresh token for access tokens; when the provider answers a new
    /// refresh token (rotation), carehook keeps that one from then on.
    #[serde(rename = "oauth2_refresh_token")]
    OAuth2RefreshToken {
        token_url: String,
        client_id: String,
        #[serde(default)]
        client_secret: String,
        #[serde(default)]
        refresh_token: String,
        #[serde(default)]
        scope: String,
        #[serde(default)]
        client_auth: ClientAuth,
    },
}

/// How an OAuth 2.0 client proves itself to the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP basic auth with the client id and secret (`client_secret_basic`).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Body,
}

/// Mutual TLS for a webhook's destination: a client certificate with its
/// key, and certificate authorities to trust besides the system's (a
/// private PKI). All PEM; the key is a secret (sealed at rest, masked).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// The client certificate (and any intermediates), PEM.
    #[serde(default)]
    pub client_cert: String,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key: String,
    /// Extra trusted CA certificates for the destination, PEM.
    #[serde(default)]
    pub ca_certs: String,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientTls {{ client_cert: {} bytes, client_key: {MASK}, ca_certs: {} bytes }}",
            self.client_cert.len(),
            self.ca_certs.len()
        )
    }
}

impl ClientTls {
    pub fn is_empty(&self) -> bool {
        self.client_cert.trim().is_empty()
            && self.client_key.trim().is_empty()
            && self.ca_certs.trim().is_empty()
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => write!(f, "None"),
            Auth::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: {MASK} }}")
            }
            Auth::Bearer { .. } => write!(f, "Bearer {{ token: {MASK} }}"),
            Auth::ApiKey { name, location, .. } => {
                write!(
                    f,
                    "ApiKey {{ name: {name:?}, value: {MASK}, location: {location:?} }}"
                )
            }
            Auth::OAuth2ClientCredentials {
                token_url,
                client_id,
                ..
            } => write!(
                f,
                "OAuth2ClientCredentials {{ token_url: {token_url:?}, client_id: {client_id:?}, client_secret: {MASK} }}"
            ),
            Auth::OAuth2RefreshToken {
                token_url,
                client_id,
                ..
            } => write!(
                f,
                "OAuth2RefreshToken {{ token_url: {token_url:?}, client_id: {client_id:?}, client_secret: {MASK}, refresh_token: {MASK} }}"
            ),
        }
    }
}

impl Auth {
    /// The main secret this auth holds, if any (an OAuth 2.0 client's secret).
    pub fn secret(&self) -> Option<&str> {
        match self {
            Auth::None => None,
            Auth::Basic { password, .. } => Some(password),
            Auth::Bearer { token } => Some(token),
            Auth::ApiKey { value, .. } => Some(value),
            Auth::OAuth2ClientCredentials { client_secret, .. }
            | Auth::OAuth2RefreshToken { client_secret, .. } => Some(client_secret),
        }
    }

    /// The main secret, for the server to encrypt, decrypt or mask in place.
    pub fn secret_mut(&mut self) -> Option<&mut String> {
        match self {
            Auth::None => None,
            Auth::Basic { password, .. } => Some(password),
            Auth::Bearer { token } => Some(token),
            Auth::ApiKey { value, .. } => Some(value),
            Auth::OAuth2ClientCredentials { client_secret, .. }
            | Auth::OAuth2RefreshToken { client_secret, .. } => Some(client_secret),
        }
    }

    /// Every secret this auth holds, by its field name under `auth.`.
    pub fn secrets_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        match self {
            Auth::None => vec![],
            Auth::Basic { password, .. } => vec![("password", password)],
            Auth::Bearer { token } => vec![("token", token)],
            Auth::ApiKey { value, .. } => vec![("value", value)],
            Auth::OAuth2ClientCredentials { client_secret, .. } => {
                vec![("client_secret", client_secret)]
            }
            Auth::OAuth2RefreshToken {
                client_secret,
                refresh_token,
                ..
            } => vec![
                ("client_secret", client_secret),
                ("refresh_token", refresh_token),
            ],
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Basic { .. } => "basic",
            Auth::Bearer { .. } => "bearer",
            Auth::ApiKey { .. } => "api_key",
            Auth::OAuth2ClientCredentials { .. } => "oauth2_client_credentials",
            Auth::OAuth2RefreshToken { .. } => "oauth2_refresh_token",
        }
    }

    /// Whether carehook fetches the access token itself (an OAuth 2.0 kind).
    pub fn is_oauth2(&self) -> bool {
        matches!(
            self,
            Auth::OAuth2ClientCredentials { .. } | Auth::OAuth2RefreshToken { .. }
        )
    }
}

impl WebhookSpec {
    /// Every secret the spec holds, named by its field (`auth.password`,
    /// `auth.refresh_token`, `tls.client_key`): what the server seals at
    /// rest, opens in memory and masks in answers.
    pub fn secrets_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut out: Vec<(String, &mut String)> = self
            .auth
            .secrets_mut()
            .into_iter()
            .map(|(name, s)| (format!("auth.{name}"), s))
            .collect();
        if let Some(tls) = &mut self.tls {
            out.push(("tls.client_key".to_string(), &mut tls.client_key));
        }
        out
    }

    /// The secrets, read only; see [`WebhookSpec::secrets_mut`].
    pub fn secrets(&self) -> Vec<(String, String)> {
        self.clone()
            .secrets_mut()
            .into_iter()
            .map(|(k, v)| (k, v.clone()))
            .collect()
    }
}

fn yes() -> bool {
    true
}

/// A webhook as written by an admin or an integrator (the API's JSON).
/// Unknown fields are refused: a typo must not pass silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 200, example = "Slack: new appointment")
    )]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Event names or aliases, or `["*"]` for every event.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, example = json!(["kc_appointment_book"])))]
    pub events: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[cfg_attr(
        feature = "openapi",
        schema(example = "https://hooks.slack.com/services/T000/B000/XXXX")
    )]
    pub url: String,
    #[serde(default)]
    pub method: Method,
    #[serde(default)]
    pub content_type: ContentType,
    #[serde(default)]
    pub auth: Auth,
    /// Extra headers; values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra query parameters; values are templates.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The body template.
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Requests per second to this endpoint; none means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// Requests in flight to this endpoint at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Standard Webhooks signature headers on every request.
    #[serde(default = "yes")]
    pub signing: bool,
    /// Count a 3xx answer as success (redirects are still not followed).
    /// For services that redirect after doing the work, like Google Apps Script.
    #[serde(default, skip_serializing_if = "is_false")]
    pub accept_redirects: bool,
    /// What the destination may receive: identifying data, phi, and why.
    /// Left out, the webhook is *undeclared*: it may send what it sends
    /// now, and each save says so (see docs/patient-data.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_policy: Option<DataPolicy>,
    /// What the delivery log keeps of this webhook's payloads (see docs/patient-data.md).
    #[serde(default, skip_serializing_if = "Payloads::is_default")]
    pub payloads: Payloads,
    /// Mutual TLS and extra trusted CAs for the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    /// A template naming what the receiver keeps state about (`{{patient_id}}`,
    /// `{{appointment_id}}`): deliveries with the same rendered key are sent one
    /// at a time, in event order; one being retried holds back only the later
    /// ones of its key. A key that renders blank leaves that delivery unordered.
    /// See [`crate::ordering`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, example = "{{patient_id}}")
    )]
    pub ordering_key: Option<String>,
    /// Send each delivery at an offset from a date-and-time variable of its event (a
    /// reminder 24 h before `appointment_start`) instead of at once; see docs/reminders.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::schedule::Schedule>,
    /// The clinics whose events this webhook receives (their `clinic_id`, as text or a
    /// number); left out or empty: every clinic. An event of another clinic, or of none,
    /// never makes a delivery for it.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::clinics::deserialize"
    )]
    #[cfg_attr(feature = "openapi", schema(example = json!(["2"])))]
    pub clinics: Vec<String>,
}

/// What the delivery log keeps of a webhook's payloads: request and response bodies, and the
/// snapshots of the events it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Payloads {
    /// Days to keep them after the delivery; none: the installation's default
    /// (`CAREHOOK_RETENTION_DAYS`, 30 days). Pending deliveries keep theirs until they end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650, example = 7))]
    pub retention_days: Option<u32>,
    /// Keep request and response bodies in the log; when false only their size and SHA-256
    /// are kept, and event snapshots go as soon as their deliveries end.
    #[serde(default = "yes")]
    pub store_bodies: bool,
}

impl Default for Payloads {
    fn default() -> Self {
        Payloads {
            retention_days: None,
            store_bodies: true,
        }
    }
}

impl Payloads {
    /// Longest retention a webhook may ask for: ten years.
    pub const MAX_RETENTION_DAYS: u32 = 3650;

    fn is_default(&self) -> bool {
        *self == Payloads::default()
    }

    fn check(&self) -> Result<(), ValidationError> {
        match self.retention_days {
            Some(d) if d == 0 || d > Self::MAX_RETENTION_DAYS => Err(ValidationError::new(
                "payloads.retention_days",
                format!(
                    "retention_days must be 1 to {} (days); leave it out for the installation's default",
                    Self::MAX_RETENTION_DAYS
                ),
            )),
            _ => Ok(()),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_max_in_flight() -> u32 {
    DEFAULT_MAX_IN_FLIGHT
}

/// What is wrong with a webhook, said about one field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationError {
    /// `url`, `body`, `headers.X-Clinic`, `events[1]`, `conditions[0].value`…
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
            line: None,
            column: None,
            variable: None,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => {
                write!(f, "{}, line {l}, column {c}: {}", self.field, self.message)
            }
            _ => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for ValidationError {}

impl From<TemplateError> for ValidationError {
    fn from(e: TemplateError) -> Self {
        ValidationError {
            field: e.field,
            message: e.message,
            line: Some(e.position.line),
            column: Some(e.position.column),
            variable: e.variable,
        }
    }
}

/// A warning from validation: saved, but worth the admin's attention.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Warning {
    pub field: String,
    pub message: String,
    /// `line` and `column`, when the warning points into a template. Left out
    /// of the schema: a flattened optional object has no JSON Schema form that
    /// validators accept (the answer carries the two numbers or neither).
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub position: Option<Position>,
}

/// A request ready to send, and its copy for the log with secrets masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A webhook whose templates are compiled; renders requests from snapshots.
#[derive(Debug, Clone)]
pub struct CompiledWebhook {
    pub spec: WebhookSpec,
    pub scope: Scope,
    /// The spec's scheduling figures, validated.
    pub limits: DeliveryLimits,
    url: Template,
    headers: Vec<(String, Template)>,
    query: Vec<(String, Template)>,
    body: Template,
    /// The installation's `pseudonym` key; without it a pseudonym renders as
    /// a marker (offline previews).
    pseudonyms: Option<Arc<Pseudonymizer>>,
    /// The `ordering_key` template; `None`: deliveries are unordered.
    ordering: Option<Template>,
}

/// Header names carehook sets itself, which a webhook may not override.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    crate::ordering::KEY_HEADER,
    crate::ordering::SEQUENCE_HEADER,
];

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl WebhookSpec {
    /// Checks every field and compiles every template. The first error wins;
    /// warnings are collected.
    pub fn compile(&self) -> Result<(CompiledWebhook, Vec<Warning>), ValidationError> {
        let mut warnings = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            return Err(ValidationError::new(
                "name",
                "give the webhook a name, e.g. \"Slack: new appointment\"",
            ));
        }
        if name.chars().count() > 200 {
            return Err(ValidationError::new(
                "name",
                "the name is longer than 200 characters",
            ));
        }
        if self.description.len() > 2000 {
            return Err(ValidationError::new(
                "description",
                "the description is longer than 2000 characters",
            ));
        }
        self.payloads.check()?;
        crate::clinics::check(&self.clinics)
            .map_err(|(i, message)| ValidationError::new(format!("clinics[{i}]"), message))?;
        let scope = Scope::new(&self.events).map_err(|e| {
            let field = match &e {
                CatalogError::UnknownEvent { name, .. } => {
                    let i = self.events.iter().position(|n| n == name).unwrap_or(0);
                    format!("events[{i}]")
                }
                _ => "events".to_string(),
            };
            ValidationError::new(field, e.to_string())
        })?;

        let mut collect = |compiled: crate::template::Compiled| {
            warnings.extend(compiled.warnings.into_iter().map(|w| Warning {
                field: w.field,
                message: w.message,
                position: Some(w.position),
            }));
            compiled.template
        };
        let url = collect(compile(&self.url, Context::Url, "url", &scope)?);

        for (field, n) in [("headers", self.headers.len()), ("query", self.query.len())] {
            if n > MAX_HEADERS {
                return Err(ValidationError::new(
                    field,
                    format!("a webhook may set at most {MAX_HEADERS} {field}; this one sets {n}"),
                ));
            }
        }
        let mut headers = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if name.len() > MAX_HEADER_NAME {
                return Err(ValidationError::new(
                    "headers",
                    format!("a header name may be at most {MAX_HEADER_NAME} bytes"),
                ));
            }
            if !is_token(name) {
                return Err(ValidationError::new(
                    field,
                    "a header name may only hold letters, digits and !#$%&'*+-.^_`|~",
                ));
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                return Err(ValidationError::new(
                    field,
                    format!("carehook sets {name} itself"),
                ));
            }
            if lower == "authorization" && !matches!(self.auth, Auth::None) {
                return Err(ValidationError::new(
                    field,
                    "the auth setting already sends Authorization; remove this header or set auth to none",
                ));
            }
            headers.push((
                name.clone(),
                collect(compile(value, Context::Header, &field, &scope)?),
            ));
        }

        let mut query = Vec::with_capacity(self.query.len());
        for (name, value) in &self.query {
            let field = format!("query.{name}");
            if name.is_empty() {
                return Err(ValidationError::new(
                    "query",
                    "a query parameter needs a name",
                ));
            }
            query.push((
                name.clone(),
                collect(compile(value, Context::Text, &field, &scope)?),
            ));
        }

        if self.method == Method::Get && !self.body.trim().is_empty() {
            return Err(ValidationError::new(
                "body",
                "a GET request carries no body: choose POST, PUT or PATCH, or move the values into query",
            ));
        }
        let body = collect(compile(
            &self.body,
            self.content_type.template_context(),
            "body",
            &scope,
        )?);
        let ordering = match &self.ordering_key {
            Some(text) => crate::ordering::compile_key(text, &scope)?.map(&mut collect),
            None => None,
        };

        match &self.auth {
            Auth::None => {}
            Auth::Basic { username, .. } if username.is_empty() => {
                return Err(ValidationError::new(
                    "auth.username",
                    "basic auth needs a username",
                ));
            }
            Auth::Basic { username, .. }
                if username.contains(':') || username.chars().any(char::is_control) =>
            {
                return Err(ValidationError::new(
                    "auth.username",
                    "a basic auth username cannot contain ':' or control characters",
                ));
            }
            Auth::ApiKey { name, location, .. } => {
                if name.is_empty() {
                    return Err(ValidationError::new(
                        "auth.name",
                        "an API key needs the name of its header or query parameter, e.g. hapikey",
                    ));
                }
                if *location == KeyLocation::Header && !is_token(name) {
                    return Err(ValidationError::new(
                        "auth.name",
                        "a header name may only hold letters, digits and !#$%&'*+-.^_`|~",
                    ));
                }
            }
            _ => {}
        }
        for (field, secret) in self.secrets() {
            if field != "tls.client_key" && secret.chars().any(|c| c.is_control()) {
                return Err(ValidationError::new(
                    field,
                    "the secret contains a control character",
                ));
            }
        }
        validate_oauth2(&self.auth, &mut warnings)?;
        if let Some(tls) = &self.tls {
            validate_tls_shape(tls)?;
        }

        if let Some(policy) = &self.data_policy {
            policy
                .validate()
                .map_err(|m| ValidationError::new("data_policy.basis", m))?;
        }

        if let Some(schedule) = &self.schedule {
            schedule
                .validate(&scope)
                .map_err(|e| ValidationError::new(e.field, e.message))?;
            // A reminder waiting for its time would hold back every later delivery of its key.
            if self.ordering_key.is_some() {
                return Err(ValidationError::new(
                    "ordering_key",
                    "a scheduled webhook sends each delivery at its own time, so it cannot also keep an ordering key: remove one of the two",
                ));
            }
        }

        let condition_warnings = conditions::validate(&self.conditions, &scope)
            .map_err(|e| ValidationError::new(e.field, e.message))?;
        warnings.extend(condition_warnings.into_iter().map(|w| Warning {
            field: w.field,
            message: w.message,
            position: None,
        }));

        if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(ValidationError::new(
                "timeout_ms",
                format!("the timeout must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS} ms"),
            ));
        }
        self.retry.validate().map_err(|e| {
            ValidationError::new(e.field().unwrap_or("retry").to_string(), e.message())
        })?;
        let rate = match self.rate_limit {
            None => None,
            Some(r) => Some(Rate::new(r).ok_or_else(|| {
                ValidationError::new(
                    "rate_limit",
                    format!(
                        "the rate limit must be between {MIN_RATE} and {MAX_RATE} requests per second (leave it out for no limit)"
                    ),
                )
            })?),
        };
        if !(1..=MAX_MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(ValidationError::new(
                "max_in_flight",
                format!("must be between 1 and {MAX_MAX_IN_FLIGHT} requests at once"),
            ));
        }
        let limits = DeliveryLimits {
            max_in_flight: self.max_in_flight,
            rate,
            timeout: Duration::from_millis(self.timeout_ms),
            max_age: self.retry.max_age,
        };

        let compiled = CompiledWebhook {
            spec: self.clone(),
            scope,
            limits,
            url,
            headers,
            query,
            body,
            pseudonyms: None,
            ordering,
        };
        Ok((compiled, warnings))
    }
}

/// The OAuth 2.0 settings' shape: a token URL that is an http(s) URL, a
/// client id, and (for the refresh token grant) a refresh token. Whether the
/// provider accepts them is learnt at the first token request.
fn validate_oauth2(auth: &Auth, warnings: &mut Vec<Warning>) -> Result<(), ValidationError> {
    let (token_url, client_id, scope) = match auth {
        Auth::OAuth2ClientCredentials {
            token_url,
            client_id,
            scope,
            audience,
            ..
        } => {
            if audience.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    "auth.audience",
                    "the audience contains a control character",
                ));
            }
            (token_url, client_id, scope)
        }
        Auth::OAuth2RefreshToken {
            token_url,
            client_id,
            refresh_token,
            scope,
            ..
        } => {
            if refresh_token.trim().is_empty() {
                return Err(ValidationError::new(
                    "auth.refresh_token",
                    "the refresh token grant needs a refresh token (from the provider's consent step)",
                ));
            }
            (token_url, client_id, scope)
        }
        _ => return Ok(()),
    };
    match url::Url::parse(token_url.trim()) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
            if u.scheme() == "http" {
                warnings.push(Warning {
                    field: "auth.token_url".into(),
                    message: "the token URL is not https: the client secret and tokens travel unencrypted".into(),
                    position: None,
                });
            }
        }
        _ => {
            return Err(ValidationError::new(
                "auth.token_url",
                "the token URL must be an https:// URL, e.g. https://login.example.com/oauth2/token",
            ));
        }
    }
    if client_id.trim().is_empty() {
        return Err(ValidationError::new(
            "auth.client_id",
            "OAuth 2.0 needs the client id (also called consumer key or app id)",
        ));
    }
    if client_id.chars().any(char::is_control) || scope.chars().any(char::is_control) {
        let field = if scope.chars().any(char::is_control) {
            "auth.scope"
        } else {
            "auth.client_id"
        };
        return Err(ValidationError::new(field, "contains a control character"));
    }
    Ok(())
}

/// What core can check of a TLS block without parsing certificates: a key
/// goes with a certificate. The server checks the PEM itself (parse,
/// expiry, key match) before saving.
fn validate_tls_shape(tls: &ClientTls) -> Result<(), ValidationError> {
    let cert = !tls.client_cert.trim().is_empty();
    let key = !tls.client_key.trim().is_empty();
    if cert && !key {
        return Err(ValidationError::new(
            "tls.client_key",
            "a client certificate needs its private key (PEM)",
        ));
    }
    if key && !cert {
        return Err(ValidationError::new(
            "tls.client_cert",
            "a private key needs its client certificate (PEM)",
        ));
    }
    Ok(())
}

impl CompiledWebhook {
    /// Whether this webhook wants an event: subscribed to it, and every
    /// condition holds on its snapshot.
    pub fn wants(&self, event_name: &str, vars: &Vars) -> bool {
        self.scope.includes(event_name)
            && crate::clinics::admits(&self.spec.clinics, vars)
            && conditions::matches(&self.spec.conditions, vars)
    }

    /// Whether it takes an operational event (`carehook_*`) about something of the clinics
    /// `about` (empty: every clinic): an alert about a webhook goes to the alert webhooks of
    /// that webhook's clinics and of every clinic ([`crate::clinics::admits_about`]).
    pub fn wants_about(&self, event_name: &str, vars: &Vars, about: &[String]) -> bool {
        self.scope.includes(event_name)
            && crate::clinics::admits_about(&self.spec.clinics, about)
            && conditions::matches(&self.spec.conditions, vars)
    }

    /// The id of the ordering key this snapshot's delivery goes under
    /// ([`crate::ordering::key_id`]); `None` when the webhook sets no
    /// `ordering_key`, or the key renders blank (or not at all) for it.
    pub fn ordering_key(&self, vars: &Vars) -> Option<String> {
        let rendered = self
            .ordering
            .as_ref()?
            .render_with(vars, self.pseudonyms.as_deref())
            .ok()?;
        crate::ordering::key_id(&rendered)
    }

    /// Gives `pseudonym` filters the installation's key.
    pub fn set_pseudonymizer(&mut self, key: Arc<Pseudonymizer>) {
        self.pseudonyms = Some(key);
    }

    /// Every template that leaves carehook: URL, headers, query, body.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        std::iter::once(&self.url)
            .chain(self.headers.iter().map(|(_, t)| t))
            .chain(self.query.iter().map(|(_, t)| t))
            .chain(std::iter::once(&self.body))
    }

    /// Every placeholder that sends patient data, and what it sends.
    pub fn data_uses(&self) -> Vec<DataUse> {
        privacy::data_uses(self.templates())
    }

    /// The uses the declared data policy does not allow; none for an
    /// undeclared webhook.
    pub fn policy_violations(&self) -> Vec<DataUse> {
        match &self.spec.data_policy {
            Some(policy) => privacy::violations(policy, &self.data_uses()),
            None => Vec::new(),
        }
    }

    /// The variables the request reads with no `default` to fall back on
    /// (URL, query, headers, body): an event that lacks one sends a blank.
    pub fn variables_needed(&self) -> std::collections::BTreeSet<&str> {
        self.templates()
            .flat_map(Template::placeholders)
            .filter(|p| {
                !p.filters
                    .iter()
                    .any(|f| matches!(f, crate::template::Filter::Default(_)))
            })
            .map(|p| &*p.var)
            .collect()
    }

    /// Renders the request for one snapshot, auth applied. Returns the
    /// request to send and a copy with every secret masked, for the log.
    pub fn render(&self, vars: &Vars) -> Result<(RenderedRequest, RenderedRequest), RenderError> {
        let key = self.pseudonyms.as_deref();
        let mut url = self.url.render_with(vars, key)?;
        let mut masked_url = None;
        let mut extra: Vec<(String, String)> = Vec::with_capacity(self.query.len() + 1);
        for (name, t) in &self.query {
            extra.push((name.clone(), t.render_with(vars, key)?));
        }
        let key_in_query = match &self.spec.auth {
            Auth::ApiKey {
                name,
                value,
                location: KeyLocation::Query,
            } => Some((name.as_str(), value.as_str())),
            _ => None,
        };
        if !extra.is_empty() || key_in_query.is_some() {
            let append = |url: &mut String, pairs: &mut dyn Iterator<Item = (&str, &str)>| {
                let fragment = url.find('#').map(|i| url.split_off(i));
                let mut ser = form_urlencoded::Serializer::new(String::new());
                for (k, v) in pairs {
                    ser.append_pair(k, v);
                }
                let encoded = ser.finish();
                if !encoded.is_empty() {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&encoded);
                }
                if let Some(f) = fragment {
                    url.push_str(&f);
                }
            };
            let mut masked = url.clone();
            let plain = extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            append(&mut url, &mut plain.clone().chain(key_in_query));
            if let Some((name, _)) = key_in_query {
                append(&mut masked, &mut plain.chain(std::iter::once((name, MASK))));
                masked_url = Some(masked);
            }
        }

        if url.len() > crate::template::MAX_RENDERED_URL {
            // Never the URL itself in the message: its path and query carry
            // the event's values.
            return Err(RenderError {
                field: "url".into(),
                variable: String::new(),
                message: format!(
                    "the rendered URL would be {} bytes, over the {} bytes carehook sends; the request was not sent",
                    url.len(),
                    crate::template::MAX_RENDERED_URL
                ),
            });
        }

        let mut headers = Vec::with_capacity(self.headers.len() + 2);
        headers.push((
            "content-type".to_string(),
            self.spec.content_type.mime().to_string(),
        ));
        for (name, t) in &self.headers {
            let value = t.render_with(vars, key)?;
            if name.eq_ignore_ascii_case("content-type") {
                headers[0].1 = value;
            } else {
                headers.push((name.clone(), value));
            }
        }
        let mut masked_headers = headers.clone();
        let secret_header = match &self.spec.auth {
            Auth::Basic { username, password } => {
                use base64::Engine as _;
                let raw = format!("{username}:{password}");
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                Some((
                    "authorization".to_string(),
                    format!("Basic {encoded}"),
                    format!("Basic {MASK}"),
                ))
            }
            Auth::Bearer { token } => Some((
                "authorization".to_string(),
                format!("Bearer {token}"),
                format!("Bearer {MASK}"),
            )),
            Auth::ApiKey {
                name,
                value,
                location: KeyLocation::Header,
            } => Some((name.clone(), value.clone(), MASK.to_string())),
            _ => None,
        };
        if let Some((name, value, masked)) = secret_header {
            headers.push((name.clone(), value));
            masked_headers.push((name, masked));
        }

        let body = self.body.render_with(vars, key)?;
        let masked = RenderedRequest {
            method: self.spec.method,
            url: masked_url.unwrap_or_else(|| url.clone()),
            headers: masked_headers,
            body: logged_body(&body),
        };
        Ok((
            RenderedRequest {
                method: self.spec.method,
                url,
                headers,
                body,
            },
            masked,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> WebhookSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_follow_the_design() {
        let s = spec(json!({"name": "n", "events": ["kc_patient_add"], "url": "https://x.org/"}));
        assert!(s.enabled && s.signing);
        assert_eq!(s.method, Method::Post);
        assert_eq!(s.content_type, ContentType::Json);
        assert_eq!(s.auth, Auth::None);
        assert_eq!(s.timeout_ms, 15_000);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_value::<WebhookSpec>(
            json!({"name": "n", "events": ["*"], "url": "https://x.org/", "metod": "GET"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("metod"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let base = json!({"name": "n", "events": ["kc_patient_add"], "url": "https://x.org/"});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            spec(b).compile().unwrap_err()
        };
        assert_eq!(
            with("events", json!(["kc_patient_add", "kc_pateint_add"])).field,
            "events[1]"
        );
        assert_eq!(with("name", json!(" ")).field, "name");
        let e = with("body", json!("{\"a\": {{patient_nam}}}"));
        assert_eq!(
            (e.field.as_str(), e.line, e.column),
            ("body", Some(1), Some(7))
        );
        assert_eq!(
            with("headers", json!({"Bad Name": "x"})).field,
            "headers.Bad Name"
        );
        assert_eq!(
            with("headers", json!({"Webhook-Id": "x"})).field,
            "headers.Webhook-Id"
        );
        assert_eq!(with("timeout_ms", json!(5)).field, "timeout_ms");
        assert_eq!(
            with(
                "conditions",
                json!([{"variable": "nope", "op": "eq", "value": "x"}])
            )
            .field,
            "conditions[0].variable"
        );
        let mut get = base.clone();
        get["method"] = json!("GET");
        get["body"] = json!("{}");
        assert_eq!(spec(get).compile().unwrap_err().field, "body");
    }

    #[test]
    fn scheduling_figures_out_of_bounds_are_refused_naming_the_field() {
        let base = json!({"name": "n", "events": ["kc_patient_add"], "url": "https://x.org/"});
        let compile = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            let (head, tail) = k.split_once('.').unwrap_or((k, ""));
            if tail.is_empty() {
                b[head] = v;
            } else {
                b[head] = json!({ tail: v });
            }
            spec(b).compile().map(|(c, _)| c.limits)
        };
        // The field, named once: the message says what is wrong, the field says where.
        let field = |k: &str, v: serde_json::Value| {
            let e = compile(k, v).unwrap_err();
            assert_eq!(e.to_string().matches(e.field.as_str()).count(), 1, "{e}");
            e.field
        };
        // The rate that stopped every delivery on a node, and its cousins.
        for bad in [
            json!(1e-300),
            json!(5e-324),
            json!(0.000_999),
            json!(0),
            json!(-1),
            json!(10_000.5),
            json!(1e308),
        ] {
            assert_eq!(field("rate_limit", bad.clone()), "rate_limit", "{bad}");
        }
        for (k, v) in [
            ("max_in_flight", json!(0)),
            ("max_in_flight", json!(257)),
            ("max_in_flight", json!(u32::MAX)),
            ("timeout_ms", json!(99)),
            ("timeout_ms", json!(60_001)),
            ("timeout_ms", json!(u64::MAX)),
            ("retry.max_age", json!("366d")),
            ("retry.max_age", json!(u64::MAX)),
            ("retry.max_age", json!("0s")),
            ("retry.jitter", json!(0.6)),
            ("retry.jitter", json!(-0.1)),
        ] {
            assert_eq!(field(k, v.clone()), k, "{k} = {v}");
        }
        assert_eq!(field("retry.schedule", json!(["8d"])), "retry.schedule[0]");
        assert_eq!(field("retry.max_attempts", json!(51)), "retry.max_attempts");

        // The bounds themselves are accepted, and give bounded figures.
        let slow = compile("rate_limit", json!(0.001)).unwrap();
        let rate = slow.rate.unwrap();
        assert_eq!(rate.interval(), Duration::from_secs(1000));
        assert_eq!(rate.burst(), 1);
        let fast = compile("rate_limit", json!(10_000)).unwrap().rate.unwrap();
        assert_eq!(fast.interval(), Duration::from_micros(100));
        assert_eq!(fast.burst(), 10_000);
        assert_eq!(slow.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(slow.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        let old = compile("retry.max_age", json!("365d")).unwrap();
        assert_eq!(old.max_age_ms(), Some(365 * 24 * 3600 * 1000));
        assert_eq!(
            compile("max_in_flight", json!(256)).unwrap().max_in_flight,
            256
        );
        assert_eq!(
            compile("retry.max_age", serde_json::Value::Null)
                .unwrap()
                .max_age_ms(),
            None
        );
    }

    #[test]
    fn rates_outside_the_bounds_make_no_rate() {
        for bad in [
            0.0,
            -1.0,
            1e-300,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            1e308,
        ] {
            assert_eq!(Rate::new(bad), None, "{bad}");
        }
        assert_eq!(
            Rate::new(2.5).unwrap().interval(),
            Duration::from_millis(400)
        );
        assert_eq!(Rate::new(2.5).unwrap().burst(), 2);
    }

    #[test]
    fn rendering_applies_auth_and_masks_it_for_the_log() {
        let s = spec(json!({
            "name": "HubSpot", "events": ["kc_patient_add"],
            "url": "https://api.hubapi.com/contacts/v1/contact",
            "auth": {"type": "api_key", "name": "hapikey", "value": "s3cr&t", "location": "query"},
            "query": {"source": "{{clinic_name}}"},
            "headers": {"X-Clinic": "{{clinic_id}}"},
            "body": "{\"email\": \"{{patient_email}}\"}"
        }));
        let (c, _) = s.compile().unwrap();
        let vars = crate::catalog::lookup("kc_patient_add")
            .unwrap()
            .example_vars();
        let (req, masked) = c.render(&vars).unwrap();
        let u = url::Url::parse(&req.url).unwrap();
        let q: BTreeMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(q["hapikey"], "s3cr&t");
        assert_eq!(q["source"], vars["clinic_name"]);
        assert!(!masked.url.contains("s3cr"));
        assert!(masked.url.contains("hapikey=********"));
        assert!(
            req.headers
                .contains(&("X-Clinic".to_string(), vars["clinic_id"].clone()))
        );
        assert_eq!(
            req.headers[0],
            ("content-type".to_string(), "application/json".to_string())
        );

        let bearer = spec(
            json!({"name": "n", "events": ["kc_patient_add"], "url": "https://x.org/",
            "auth": {"type": "bearer", "token": "tok"}}),
        );
        let (req, masked) = bearer.compile().unwrap().0.render(&vars).unwrap();
        assert!(
            req.headers
                .contains(&("authorization".to_string(), "Bearer tok".to_string()))
        );
        assert!(
            masked
                .headers
                .contains(&("authorization".to_string(), "Bearer ********".to_string()))
        );

        let basic = spec(
            json!({"name": "n", "events": ["kc_patient_add"], "url": "https://x.org/",
            "auth": {"type": "basic", "username": "AC1", "password": "pw"}}),
        );
        let (req, _) = basic.compile().unwrap().0.render(&vars).unwrap();
        assert!(
            req.headers
                .contains(&("authorization".to_string(), "Basic QUMxOnB3".to_string()))
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let a = Auth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{a:?}").contains("hunter2"));
    }
}
