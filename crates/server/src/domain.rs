//! The domain's vocabulary, below every module that acts on it: who acts ([`Actor`]) and what
//! can go wrong ([`Error`]), whatever the transport. The service layer re-exports both; the
//! background jobs (intake, dispatcher) use them without depending on the service layer.

use carehook_core::webhook::ValidationError;
use carehook_store::StoreError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Who (or what) acts: kept where a change records its author (today, a
/// webhook's `disabled_by`), and the hook for authorisation and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A caller of the HTTP API, by token name (`admin` for the admin token).
    Api(String),
    /// Someone logged in to the admin UI, by the name of the token they used.
    Ui(String),
    /// carehook itself: the dispatcher, the auto-disable job, the demo.
    System(&'static str),
    /// Someone who opened a partner link (by the link's id): no account, no token.
    Partner(String),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Api(name) if name == "admin" => f.write_str("api: the admin token"),
            Actor::Api(name) => write!(f, "api token {name}"),
            Actor::Ui(name) if name == "admin" => f.write_str("admin UI: the admin token"),
            // A person's account is named by its e-mail address; a token by its name.
            Actor::Ui(name) if name.contains('@') => write!(f, "admin UI: {name}"),
            Actor::Ui(name) => write!(f, "admin UI: token {name}"),
            Actor::System(what) => f.write_str(what),
            Actor::Partner(link) => write!(f, "partner link {link}"),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the domain, whatever the transport.
#[derive(Debug)]
pub enum Error {
    /// A field's value is wrong. `details` carries what helps fix it: a
    /// template's `line`/`column`/`variable`, a preset's `missing` fields.
    Invalid {
        field: String,
        message: String,
        details: Map<String, Value>,
    },
    /// The input is not even the right shape (not an object, not JSON).
    BadRequest(String),
    /// No such thing; names what was looked for ("webhook", "delivery").
    NotFound(&'static str),
    /// The change clashes with what is stored.
    Conflict(String),
    /// The token is missing, mistyped or revoked.
    Unauthorized(String),
    /// The caller's role may not do this (see `api/policy.rs`).
    Forbidden(String),
    /// carehook's own failure, already logged; the caller learns only that.
    Internal,
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
            details: Map::new(),
        }
    }

    /// An internal failure: logged here, once, and never shown to a client.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Error::Internal
    }

    /// The message a person reads (the UI shows it beside a form).
    pub fn message(&self) -> String {
        match self {
            Error::Invalid { message, .. } => message.clone(),
            Error::BadRequest(m)
            | Error::Conflict(m)
            | Error::Unauthorized(m)
            | Error::Forbidden(m) => m.clone(),
            Error::NotFound(what) => format!("no {what} with that id"),
            Error::Internal => "carehook hit an internal error; see its log".into(),
        }
    }

    /// The field at fault, for an invalid input.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        let mut details = Map::new();
        if let Some(l) = e.line {
            details.insert("line".into(), l.into());
        }
        if let Some(c) = e.column {
            details.insert("column".into(), c.into());
        }
        if let Some(v) = &e.variable {
            details.insert("variable".into(), v.clone().into());
        }
        Error::Invalid {
            field: e.field.clone(),
            message: e.to_string(),
            details,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(msg) => Error::BadRequest(msg),
            StoreError::Rejected(f) => Error::invalid(f.field, f.message),
            StoreError::Conflict(msg) => Error::Conflict(msg),
            other => Error::internal(other),
        }
    }
}

/// Parses JSON into `T` with the path of the field at fault: a syntax error
/// (trailing data after the value included) is [`Error::BadRequest`], a
/// wrong, unknown or missing field [`Error::Invalid`] naming it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // Every body is an object. serde would also read a struct from an array
    // of its fields in order (`[null, null]`), which no client means.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return if serde_json::from_slice::<Value>(bytes).is_ok() {
            Err(Error::invalid("", "the body must be a JSON object"))
        } else {
            Err(Error::BadRequest("the body is not valid JSON".into()))
        };
    }
    let syntax =
        |e: serde_json::Error| Error::BadRequest(format!("the body is not valid JSON: {e}"));
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let parent = if path == "." { String::new() } else { path };
        let mut msg = inner.to_string();
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        if inner.is_syntax() || inner.is_eof() {
            // serde_json reports some wrong types as syntax (a number where
            // an enum's name belongs): if the body is valid JSON, it is the
            // field's value that is wrong.
            if parent.is_empty() || serde_json::from_slice::<Value>(bytes).is_err() {
                return syntax(inner);
            }
            return Error::invalid(parent, format!("has the wrong type or value ({msg})"));
        }
        // serde reports a missing field at its parent's path; the client
        // needs the field itself.
        let field = match missing_field(&msg) {
            Some(name) if parent.is_empty() => name.to_string(),
            Some(name) => format!("{parent}.{name}"),
            None => parent,
        };
        Error::invalid(field, msg)
    })?;
    // `{…} trailing` is not one JSON value: refuse it rather than read the start.
    de.end().map_err(syntax)?;
    Ok(parsed)
}

/// `name` in serde's "missing field `name`".
fn missing_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")?.split('`').next()
}

/// "outer: inner: innermost", without repeating identical messages.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
