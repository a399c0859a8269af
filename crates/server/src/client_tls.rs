//! A webhook's mutual TLS settings ([`ClientTls`]): checked before they are
//! saved (the certificate parses, is valid now, and matches its key; the
//! CAs parse), and turned into a client that presents the certificate and
//! trusts the extra CAs besides the system's.

use carehook_core::webhook::{ClientTls, ValidationError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_cert::der::Decode;

/// A webhook is flagged this long before its client certificate expires.
pub const EXPIRY_WARNING_MS: i64 = 14 * 24 * 3600 * 1000;

/// What the API and UI show about a client certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    pub subject: String,
    /// Unix milliseconds.
    pub not_after: i64,
}

/// The cache key of a webhook's client: a hash of its TLS settings.
pub fn fingerprint(tls: &ClientTls) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [&tls.client_cert, &tls.client_key, &tls.ca_certs] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

fn certs(pem: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, ValidationError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|e| {
        ValidationError::new(
            field,
            format!("not a PEM certificate (-----BEGIN CERTIFICATE-----): {e}"),
        )
    })?;
    if certs.is_empty() {
        return Err(ValidationError::new(
            field,
            "no certificate found: paste the PEM text, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----",
        ));
    }
    Ok(certs)
}

fn info(der: &CertificateDer<'_>, field: &str) -> Result<(CertInfo, i64), ValidationError> {
    let cert = x509_cert::Certificate::from_der(der.as_ref())
        .map_err(|e| ValidationError::new(field, format!("the certificate cannot be read: {e}")))?;
    let validity = &cert.tbs_certificate.validity;
    let ms = |t: x509_cert::time::Time| t.to_unix_duration().as_millis() as i64;
    Ok((
        CertInfo {
            subject: cert.tbs_certificate.subject.to_string(),
            not_after: ms(validity.not_after),
        },
        ms(validity.not_before),
    ))
}

/// Checks a webhook's TLS settings at save time; answers the client
/// certificate's subject and expiry, if one is given.
pub fn check(tls: &ClientTls, now_ms: i64) -> Result<Option<CertInfo>, ValidationError> {
    if !tls.ca_certs.trim().is_empty() {
        for der in certs(&tls.ca_certs, "tls.ca_certs")? {
            info(&der, "tls.ca_certs")?;
        }
    }
    if tls.client_cert.trim().is_empty() {
        return Ok(None);
    }
    let chain = certs(&tls.client_cert, "tls.client_cert")?;
    let (cert, not_before) = info(&chain[0], "tls.client_cert")?;
    let date = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    if cert.not_after <= now_ms {
        return Err(ValidationError::new(
            "tls.client_cert",
            format!(
                "the client certificate ({}) expired on {}: ask the receiver's operator for a new one",
                cert.subject,
                date(cert.not_after)
            ),
        ));
    }
    if not_before > now_ms {
        return Err(ValidationError::new(
            "tls.client_cert",
            format!(
                "the client certificate is not valid before {}",
                date(not_before)
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(tls.client_key.as_bytes()).map_err(|_| {
        ValidationError::new(
            "tls.client_key",
            "not a PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY); an encrypted key must be decrypted first",
        )
    })?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => ValidationError::new(
            "tls.client_key",
            format!(
                "this key does not belong to the client certificate ({}): use the key the certificate was made for",
                cert.subject
            ),
        ),
        other => ValidationError::new(
            "tls.client_key",
            format!("the key cannot be used: {other}"),
        ),
    })?;
    Ok(Some(cert))
}

/// The client certificate's details, for a webhook already saved (its
/// settings were checked then); `None` when it has none or it cannot be read.
pub fn cert_info(tls: &ClientTls) -> Option<CertInfo> {
    let chain = certs(&tls.client_cert, "tls.client_cert").ok()?;
    info(&chain[0], "tls.client_cert").ok().map(|(i, _)| i)
}

/// A client builder that presents the client certificate and trusts the
/// extra CAs (besides the system's).
pub fn apply(
    mut builder: reqwest::ClientBuilder,
    tls: &ClientTls,
) -> Result<reqwest::ClientBuilder, String> {
    if !tls.client_cert.trim().is_empty() {
        let pem = format!("{}\n{}\n", tls.client_cert.trim(), tls.client_key.trim());
        let identity = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|e| {
            format!(
                "the client certificate or key: {}",
                crate::domain::error_chain(&e)
            )
        })?;
        builder = builder.identity(identity);
    }
    if !tls.ca_certs.trim().is_empty() {
        let cas = reqwest::Certificate::from_pem_bundle(tls.ca_certs.as_bytes())
            .map_err(|e| format!("the CA certificates: {}", crate::domain::error_chain(&e)))?;
        builder = builder.tls_certs_merge(cas);
    }
    Ok(builder)
}
