//! Payloads at rest: event snapshots and attempt bodies, sealed (encrypted) when the server
//! gave the store a [`Sealer`], with their size and SHA-256 kept beside them so that the log
//! still says what was sent after the payload itself is gone (retention, erasure, or a webhook
//! that stores no bodies).
//!
//! The store never learns the key: the server's vault implements [`Sealer`]. A sealed value
//! starts with [`SEALED_PREFIX`]; anything else is read as plain text, so a database written
//! with sealing off (or before it existed) still reads, and turning sealing on or off needs no
//! migration.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::error::{Result, StoreError};
use crate::types::{AttemptRecord, NewEvent};

/// How every sealed value starts (the vault's format and its version).
pub const SEALED_PREFIX: &str = "enc:";

/// Authenticated encryption of payloads, implemented by the server with its master key.
pub trait Sealer: Send + Sync + std::fmt::Debug {
    /// Encrypts; the answer starts with [`SEALED_PREFIX`].
    fn seal(&self, plain: &str) -> String;
    /// Decrypts what `seal` made; an error says why (wrong key, damaged value), never the value.
    fn open(&self, sealed: &str) -> std::result::Result<String, String>;
    /// A keyed hash of one search term (`kind` as in [`carehook_core::search`]), for the
    /// log's blind index: the same term always gives the same hash with this key, and the hash
    /// says nothing of the term without it.
    fn search_term(&self, kind: &str, value: &str) -> String;
}

/// The sealer and whether new payloads are sealed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seal {
    pub sealer: Option<Arc<dyn Sealer>>,
    pub seal_new: bool,
}

/// What a purged or erased JSON payload is replaced with.
pub(crate) const GONE_JSON: &str = "{}";

impl Seal {
    /// The stored form of `plain`: sealed when sealing is on, or when plain text would be
    /// mistaken for a sealed value.
    pub(crate) fn seal(&self, plain: String) -> String {
        match &self.sealer {
            Some(s) if self.seal_new || plain.starts_with(SEALED_PREFIX) => s.seal(&plain),
            _ => plain,
        }
    }

    /// The plain text of a stored value; `what` names the column for an error.
    pub(crate) fn open(&self, what: &str, stored: String) -> Result<String> {
        if !stored.starts_with(SEALED_PREFIX) {
            return Ok(stored);
        }
        let Some(sealer) = &self.sealer else {
            return Err(StoreError::Corrupt(format!(
                "{what} is sealed, and this store was opened without the master key"
            )));
        };
        sealer
            .open(&stored)
            .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
    }

    pub(crate) fn open_opt(&self, what: &str, stored: Option<String>) -> Result<Option<String>> {
        stored.map(|s| self.open(what, s)).transpose()
    }
}

/// JSON text of a value (a `Value` or a string map always serializes).
fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("JSON values always serialize")
}

/// Size in bytes and SHA-256 (lowercase hex) of a payload.
pub(crate) fn digest(text: &str) -> (i64, String) {
    let hash = Sha256::digest(text.as_bytes());
    let hex = hash.iter().map(|b| format!("{b:02x}")).collect::<String>();
    (i64::try_from(text.len()).unwrap_or(i64::MAX), hex)
}

/// An event as written: its snapshot (sealed or not), the snapshot's size and hash, and its
/// patient (`patient_id` in its data).
#[derive(Debug)]
pub(crate) struct StoredEvent {
    pub vars: String,
    pub bytes: i64,
    pub sha256: String,
    pub patient_id: Option<String>,
    /// The event's search terms, hashed (none without a sealer: its snapshot is plain).
    pub terms: Vec<String>,
}

pub(crate) fn stored_event(seal: &Seal, ev: &NewEvent) -> StoredEvent {
    let plain = to_json(&ev.vars);
    let (bytes, sha256) = digest(&plain);
    StoredEvent {
        vars: seal.seal(plain),
        bytes,
        sha256,
        patient_id: ev
            .vars
            .get("patient_id")
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty()),
        terms: match &seal.sealer {
            Some(s) => carehook_core::search::event_terms(&ev.vars)
                .into_iter()
                .map(|(kind, value)| s.search_term(kind, &value))
                .collect(),
            None => Vec::new(),
        },
    }
}

/// An attempt as written: its payloads (sealed or not, or none when its webhook stores no
/// bodies), and the size and hash of the request body and the response body.
#[derive(Debug)]
pub(crate) struct StoredAttempt {
    pub request: String,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub request_bytes: Option<i64>,
    pub request_sha256: Option<String>,
    pub response_bytes: Option<i64>,
    pub response_sha256: Option<String>,
    /// Set (to the attempt's start) when the bodies were not stored.
    pub purged_at: Option<i64>,
    pub purge_reason: Option<&'static str>,
}

pub(crate) fn stored_attempt(seal: &Seal, a: &AttemptRecord) -> StoredAttempt {
    let request_body = a.request.get("body").and_then(serde_json::Value::as_str);
    let (request_bytes, request_sha256) = request_body.map(digest).unzip();
    let (response_bytes, response_sha256) = a.response_body.as_deref().map(digest).unzip();
    let (request, response_headers, response_body, purged_at, purge_reason) = if a.store_bodies {
        (
            seal.seal(to_json(&a.request)),
            a.response_headers.as_ref().map(|h| seal.seal(to_json(h))),
            a.response_body.clone().map(|b| seal.seal(b)),
            None,
            None,
        )
    } else {
        (
            GONE_JSON.to_string(),
            None,
            None,
            Some(a.started_at),
            Some("not_stored"),
        )
    };
    StoredAttempt {
        request,
        response_headers,
        response_body,
        request_bytes,
        request_sha256,
        response_bytes,
        response_sha256,
        purged_at,
        purge_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_size_and_sha256_hex() {
        let (n, h) = digest("abc");
        assert_eq!(n, 3);
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[derive(Debug)]
    struct Rot;
    impl Sealer for Rot {
        fn seal(&self, plain: &str) -> String {
            format!("{SEALED_PREFIX}{}", plain.chars().rev().collect::<String>())
        }
        fn open(&self, sealed: &str) -> std::result::Result<String, String> {
            Ok(sealed[SEALED_PREFIX.len()..].chars().rev().collect())
        }
        fn search_term(&self, kind: &str, value: &str) -> String {
            format!("{kind}:{value}")
        }
    }

    #[test]
    fn plain_text_that_looks_sealed_is_sealed_even_when_sealing_is_off() {
        let seal = Seal {
            sealer: Some(Arc::new(Rot)),
            seal_new: false,
        };
        assert_eq!(seal.seal("{}".into()), "{}");
        let tricky = seal.seal("enc:not really".into());
        assert_ne!(tricky, "enc:not really");
        assert_eq!(seal.open("x", tricky).unwrap(), "enc:not really");
        let none = Seal::default();
        assert!(none.open("events.vars", "enc:zzz".into()).is_err());
    }
}
