//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! Every delivery carries three headers: `webhook-id` (the delivery id, the same
//! on every retry so a receiver can deduplicate), `webhook-timestamp` (unix
//! seconds of this attempt) and `webhook-signature`, a space-separated list of
//! `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. During a key rotation
//! both the new and the old secret sign, so a receiver holding either verifies.
//!
//! [`verify`] is here too: the server uses it in its self-tests, and it is the
//! reference a receiver written against carehook can be checked with.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Header names, lowercase as the specification writes them.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Prefix of a secret's text form, as every Standard Webhooks library expects.
pub const SECRET_PREFIX: &str = "whsec_";

/// Shortest key accepted. HMAC-SHA256 takes any length, but a short key is
/// guessable; the specification asks for 24 to 64 bytes, we tolerate 16 so
/// secrets made by other tools still import.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest key accepted (specification's upper bound). Longer keys would be
/// hashed down by HMAC anyway, so they add nothing but surprise.
pub const MAX_SECRET_LEN: usize = 64;
/// Length of a key made by [`SigningSecret::generate`] (the specification's
/// recommendation; 192 bits).
pub const GENERATED_SECRET_LEN: usize = 24;

/// Default accepted clock difference for [`verify`], as in the specification's
/// reference libraries.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

const SIGNATURE_VERSION: &str = "v1";

type HmacSha256 = Hmac<Sha256>;

/// Why a secret was refused or a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("signing secret is not valid base64 (expected `whsec_<base64>`)")]
    SecretNotBase64,
    #[error("signing secret is {len} bytes; it must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes")]
    SecretLength { len: usize },
    #[error("webhook-timestamp {0:?} is not a unix timestamp in seconds")]
    InvalidTimestamp(String),
    #[error(
        "webhook-timestamp is {skew_secs} s away from now, beyond the {tolerance_secs} s tolerance"
    )]
    TimestampOutOfTolerance { skew_secs: i64, tolerance_secs: i64 },
    #[error("no v1 signature in webhook-signature matches")]
    NoMatchingSignature,
}

/// A webhook's signing key (raw bytes, 16..=64 of them).
///
/// `Debug` prints `***`: a secret must never reach a log line by accident.
/// The text form (`whsec_…`) is only produced on purpose, by [`Self::to_whsec`].
#[derive(Clone)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl SigningSecret {
    /// A new random secret of [`GENERATED_SECRET_LEN`] bytes from the OS.
    ///
    /// # Panics
    /// If the operating system's random source fails. There is no safe
    /// fallback for key material, and on the systems we run on it does not fail.
    pub fn generate() -> SigningSecret {
        let mut key = vec![0u8; GENERATED_SECRET_LEN];
        getrandom::fill(&mut key).expect("the OS random source failed");
        SigningSecret { key }
    }

    /// Reads `whsec_<base64>`; a bare base64 key is accepted too, since some
    /// tools export secrets without the prefix. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<SigningSecret, SigningError> {
        let text = text.trim();
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = BASE64
            .decode(encoded)
            .map_err(|_| SigningError::SecretNotBase64)?;
        Self::from_bytes(key)
    }

    /// A secret from raw key bytes (e.g. after decrypting it from the store).
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<SigningSecret, SigningError> {
        let key = key.into();
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&key.len()) {
            return Err(SigningError::SecretLength { len: key.len() });
        }
        Ok(SigningSecret { key })
    }

    /// The text form, `whsec_<base64>`, that a receiver configures.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }

    /// The raw key bytes, for encryption at rest.
    pub fn as_bytes(&self) -> &[u8] {
        &self.key
    }

    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

/// One signature: `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`.
pub fn sign(secret: &SigningSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = secret.mac(msg_id, &timestamp.to_string(), body);
    format!("{SIGNATURE_VERSION},{}", BASE64.encode(mac))
}

/// The `webhook-signature` value: one signature per secret, space-separated
/// (during a rotation, the new secret first, then the old one).
pub fn signature_header(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three header values a signed request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`
    pub id: String,
    /// `webhook-timestamp`
    pub timestamp: String,
    /// `webhook-signature`
    pub signature: String,
}

impl SignedHeaders {
    /// `(name, value)` pairs, ready to add to a request.
    pub fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            (HEADER_ID, &self.id),
            (HEADER_TIMESTAMP, &self.timestamp),
            (HEADER_SIGNATURE, &self.signature),
        ]
    }
}

/// Signs `body` for delivery `msg_id` at `timestamp` (unix seconds of this
/// attempt) with every secret given.
pub fn signed_headers(
    secrets: &[&SigningSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> SignedHeaders {
    SignedHeaders {
        id: msg_id.to_owned(),
        timestamp: timestamp.to_string(),
        signature: signature_header(secrets, msg_id, timestamp, body),
    }
}

/// Checks a signed request as a receiver would.
///
/// Accepts when any `v1,` entry of the space-separated `signature_header`
/// matches (compared in constant time); entries of other versions, or that are
/// not valid base64, are skipped, as the specification asks. The timestamp
/// must be within `tolerance_secs` of `now_unix` either way, which bounds replays.
pub fn verify(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SigningError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SigningError::InvalidTimestamp(timestamp.to_owned()))?;
    let skew_secs = now_unix.saturating_sub(ts);
    if skew_secs.unsigned_abs() > tolerance_secs.unsigned_abs() {
        return Err(SigningError::TimestampOutOfTolerance {
            skew_secs,
            tolerance_secs,
        });
    }

    // Signed over the timestamp as parsed (like the reference libraries), so
    // the signed text is always the canonical number the sender formatted.
    let expected = secret.mac(msg_id, &ts.to_string(), body);
    let matched = signature_header
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == SIGNATURE_VERSION)
        .filter_map(|(_, sig)| BASE64.decode(sig).ok())
        .any(|sig| bool::from(sig.as_slice().ct_eq(&expected)));
    if matched {
        Ok(())
    } else {
        Err(SigningError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's published example.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_secret() -> SigningSecret {
        SigningSecret::parse(SPEC_SECRET).unwrap()
    }

    #[test]
    fn the_specification_example_signs_to_the_published_signature() {
        assert_eq!(sign(&spec_secret(), SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIG);
    }

    #[test]
    fn the_specification_example_verifies() {
        let ts = SPEC_TS.to_string();
        verify(
            &spec_secret(),
            SPEC_ID,
            &ts,
            SPEC_SIG,
            SPEC_BODY,
            SPEC_TS,
            300,
        )
        .unwrap();
    }

    #[test]
    fn a_secret_round_trips_through_whsec_and_bare_base64() {
        let secret = spec_secret();
        assert_eq!(secret.to_whsec(), SPEC_SECRET);
        let bare = SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(bare.as_bytes(), secret.as_bytes());
        let generated = SigningSecret::generate();
        assert_eq!(generated.as_bytes().len(), GENERATED_SECRET_LEN);
        let again = SigningSecret::parse(&generated.to_whsec()).unwrap();
        assert_eq!(again.as_bytes(), generated.as_bytes());
    }

    #[test]
    fn generated_secrets_differ() {
        assert_ne!(
            SigningSecret::generate().as_bytes(),
            SigningSecret::generate().as_bytes()
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = spec_secret();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "SigningSecret(***)");
        assert!(!shown.contains("MfKQ"));
    }

    #[test]
    fn wrong_length_secrets_are_refused() {
        let short = format!("whsec_{}", BASE64.encode([7u8; 15]));
        let long = format!("whsec_{}", BASE64.encode([7u8; 65]));
        assert_eq!(
            SigningSecret::parse(&short).unwrap_err(),
            SigningError::SecretLength { len: 15 }
        );
        assert_eq!(
            SigningSecret::parse(&long).unwrap_err(),
            SigningError::SecretLength { len: 65 }
        );
        assert!(
            SigningSecret::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("16 to 64 bytes")
        );
        assert!(SigningSecret::from_bytes([7u8; 16]).is_ok());
        assert!(SigningSecret::from_bytes([7u8; 64]).is_ok());
        assert_eq!(
            SigningSecret::parse("").unwrap_err(),
            SigningError::SecretLength { len: 0 }
        );
    }

    #[test]
    fn a_secret_that_is_not_base64_is_refused() {
        assert_eq!(
            SigningSecret::parse("whsec_not base64!").unwrap_err(),
            SigningError::SecretNotBase64
        );
    }

    #[test]
    fn during_rotation_either_secret_verifies() {
        let new = SigningSecret::generate();
        let old = spec_secret();
        let headers = signed_headers(&[&new, &old], SPEC_ID, SPEC_TS, SPEC_BODY);
        assert_eq!(headers.signature.split(' ').count(), 2);
        assert!(headers.signature.ends_with(SPEC_SIG));
        for secret in [&new, &old] {
            verify(
                secret,
                &headers.id,
                &headers.timestamp,
                &headers.signature,
                SPEC_BODY,
                SPEC_TS,
                300,
            )
            .unwrap();
        }
        let stranger = SigningSecret::generate();
        assert_eq!(
            verify(
                &stranger,
                &headers.id,
                &headers.timestamp,
                &headers.signature,
                SPEC_BODY,
                SPEC_TS,
                300
            ),
            Err(SigningError::NoMatchingSignature)
        );
    }

    #[test]
    fn signed_headers_name_the_three_headers() {
        let h = signed_headers(&[&spec_secret()], SPEC_ID, SPEC_TS, SPEC_BODY);
        assert_eq!(
            h.pairs(),
            [
                ("webhook-id", SPEC_ID),
                ("webhook-timestamp", "1614265330"),
                ("webhook-signature", SPEC_SIG),
            ]
        );
    }

    #[test]
    fn tampering_with_body_id_or_timestamp_fails() {
        let s = spec_secret();
        let ts = SPEC_TS.to_string();
        let later = (SPEC_TS + 1).to_string();
        let fails = |id: &str, ts: &str, body: &[u8]| {
            verify(&s, id, ts, SPEC_SIG, body, SPEC_TS, 300)
                == Err(SigningError::NoMatchingSignature)
        };
        assert!(fails(SPEC_ID, &ts, br#"{"test": 2432232315}"#));
        assert!(fails("msg_other", &ts, SPEC_BODY));
        assert!(fails(SPEC_ID, &later, SPEC_BODY));
    }

    #[test]
    fn a_timestamp_outside_the_tolerance_is_refused_both_ways() {
        let s = spec_secret();
        let ts = SPEC_TS.to_string();
        let check = |now| verify(&s, SPEC_ID, &ts, SPEC_SIG, SPEC_BODY, now, 300);
        check(SPEC_TS + 300).unwrap();
        check(SPEC_TS - 300).unwrap();
        assert!(matches!(
            check(SPEC_TS + 301),
            Err(SigningError::TimestampOutOfTolerance { skew_secs: 301, .. })
        ));
        assert!(matches!(
            check(SPEC_TS - 301),
            Err(SigningError::TimestampOutOfTolerance {
                skew_secs: -301,
                ..
            })
        ));
        assert!(matches!(
            verify(&s, SPEC_ID, "soon", SPEC_SIG, SPEC_BODY, SPEC_TS, 300),
            Err(SigningError::InvalidTimestamp(_))
        ));
    }

    #[test]
    fn unknown_versions_and_junk_entries_are_skipped() {
        let s = spec_secret();
        let ts = SPEC_TS.to_string();
        let sig = SPEC_SIG.trim_start_matches("v1,");
        let header = format!("v2,{sig} v1a,xyz garbage v1,!!! v1,{sig}");
        verify(&s, SPEC_ID, &ts, &header, SPEC_BODY, SPEC_TS, 300).unwrap();
        // The right signature under another version does not count.
        assert_eq!(
            verify(
                &s,
                SPEC_ID,
                &ts,
                &format!("v2,{sig}"),
                SPEC_BODY,
                SPEC_TS,
                300
            ),
            Err(SigningError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&s, SPEC_ID, &ts, "", SPEC_BODY, SPEC_TS, 300),
            Err(SigningError::NoMatchingSignature)
        );
    }
}
