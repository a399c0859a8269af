//! Time-based one-time passwords (RFC 6238, over HOTP, RFC 4226): the second factor of an
//! admin-UI account. An authenticator app is given the secret once (as an `otpauth://` URI,
//! base32); at login the code typed is checked against the current 30-second step and the one
//! before and after (clock drift), in constant time.
//!
//! Written here rather than taken from a crate: it is forty lines over `hmac`, and the RFC's
//! own test vectors (below) pin it down.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The step, in seconds (RFC 6238's default, and every authenticator's).
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;

/// The hash HOTP runs over; authenticator apps use SHA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// HOTP (RFC 4226): the `digits`-digit code for counter `counter`.
pub fn hotp(alg: Algorithm, key: &[u8], counter: u64, digits: u32) -> u32 {
    let msg = counter.to_be_bytes();
    let h = match alg {
        Algorithm::Sha1 => hmac::<Hmac<sha1::Sha1>>(key, &msg),
        Algorithm::Sha256 => hmac::<Hmac<sha2::Sha256>>(key, &msg),
        Algorithm::Sha512 => hmac::<Hmac<sha2::Sha512>>(key, &msg),
    };
    // Dynamic truncation: the low 4 bits of the last byte pick 4 bytes.
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(h[offset] & 0x7f) << 24)
        | (u32::from(h[offset + 1]) << 16)
        | (u32::from(h[offset + 2]) << 8)
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits)
}

/// TOTP (RFC 6238): the code at `unix_secs`, as text with leading zeros.
pub fn code_at(alg: Algorithm, key: &[u8], unix_secs: u64, digits: u32) -> String {
    let n = hotp(alg, key, unix_secs / STEP_SECS, digits);
    format!("{n:0width$}", width = digits as usize)
}

/// Whether `code` (spaces allowed) is the SHA-1 six-digit code of `key` at `unix_secs`, or of
/// the step before or after.
pub fn verify(key: &[u8], code: &str, unix_secs: u64) -> bool {
    verify_step(key, code, unix_secs).is_some()
}

/// The time step (`unix_secs / 30`) whose code `code` is, of the step before, at or after
/// `unix_secs` (see [`verify`]); `None` if none. A server that keeps the last step it took
/// refuses a code used again.
pub fn verify_step(key: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut found = None;
    for t in [
        unix_secs.saturating_sub(STEP_SECS),
        unix_secs,
        unix_secs + STEP_SECS,
    ] {
        let expected = code_at(Algorithm::Sha1, key, t, DIGITS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(t / STEP_SECS);
        }
    }
    found
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Base32 (RFC 4648) without padding: how authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(BASE32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Reads base32 (any case, spaces and padding ignored); `None` for another character.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = BASE32
            .iter()
            .position(|&b| b as char == c.to_ascii_uppercase())? as u32;
        buffer = ((buffer << 5) | v) & 0xffff;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// The `otpauth://` URI an authenticator app reads (as a QR code, or pasted).
pub fn otpauth_uri(issuer: &str, account: &str, key: &[u8]) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        base32(key),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: every time and algorithm of its table, eight digits.
    #[test]
    fn the_rfc_6238_test_vectors_hold() {
        let sha1 = b"12345678901234567890";
        let sha256 = b"12345678901234567890123456789012";
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234";
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            assert_eq!(code_at(Algorithm::Sha1, sha1, t, 8), c1, "SHA-1 at {t}");
            assert_eq!(
                code_at(Algorithm::Sha256, sha256, t, 8),
                c256,
                "SHA-256 at {t}"
            );
            assert_eq!(
                code_at(Algorithm::Sha512, sha512, t, 8),
                c512,
                "SHA-512 at {t}"
            );
        }
    }

    /// RFC 4226, appendix D: HOTP values for counters 0 to 9.
    #[test]
    fn the_rfc_4226_test_vectors_hold() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(Algorithm::Sha1, b"12345678901234567890", counter as u64, 6),
                code
            );
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_not_further() {
        let key = b"12345678901234567890";
        let now = 1_111_111_111;
        let code = code_at(Algorithm::Sha1, key, now, 6);
        assert!(verify(key, &code, now));
        assert!(verify(key, &format!("{} {}", &code[..3], &code[3..]), now));
        assert!(verify(key, &code, now + STEP_SECS));
        assert!(verify(key, &code, now - STEP_SECS));
        assert!(!verify(key, &code, now + 3 * STEP_SECS));
        assert!(!verify(key, "12345", now));
        assert!(!verify(key, "abcdef", now));
    }

    #[test]
    fn base32_reads_back_what_it_writes() {
        // RFC 4648, section 10.
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(from_base32("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(from_base32("mzxw 6ytb oi").unwrap(), b"foobar");
        assert_eq!(from_base32("M1"), None);
        let key: Vec<u8> = (0..20).collect();
        assert_eq!(from_base32(&base32(&key)).unwrap(), key);
        let uri = otpauth_uri("carehook", "ada@clinic.example", &key);
        assert!(uri.starts_with("otpauth://totp/carehook:ada%40clinic%2Eexample?secret="));
    }
}
