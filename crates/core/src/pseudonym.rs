//! The `pseudonym` filter's keyed hash. Its own module, below both the
//! templates that render it and the data policy that counts it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `pseudonym` filter's keyed hash: HMAC-SHA256 under a key of this
/// installation, so the same value always gives the same pseudonym here,
/// another installation gives another, and no one without the key can go
/// back from a pseudonym to the value, not even by trying every patient id.
#[derive(Clone)]
pub struct Pseudonymizer {
    key: [u8; 32],
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(***)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Pseudonymizer {
    /// The installation's pseudonym key, derived from its master key with a
    /// label of its own (so it is never the key that seals secrets).
    pub fn from_master_key(master_key: &[u8; 32]) -> Pseudonymizer {
        Pseudonymizer::for_purpose(master_key, b"carehook pseudonym key v1")
    }

    /// A keyed hash of its own for another purpose (the log's search index:
    /// `b"carehook search index key v1"`), derived from the master key with
    /// that label, so no two purposes share a key.
    pub fn for_purpose(master_key: &[u8; 32], purpose: &[u8]) -> Pseudonymizer {
        let mut mac = HmacSha256::new_from_slice(master_key).expect("HMAC takes any key length");
        mac.update(purpose);
        Pseudonymizer {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// 32 hex digits (128 bits) of HMAC-SHA256(key, label, value); empty
    /// for an empty value, so a missing id does not become one shared
    /// pseudonym. The label's length is hashed first, so no label and
    /// value pair can pass for another.
    pub fn pseudonym(&self, label: &str, value: &str) -> String {
        if value.is_empty() {
            return String::new();
        }
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(&(label.len() as u64).to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_labelled_and_opaque() {
        let a = Pseudonymizer::from_master_key(&[1; 32]);
        let b = Pseudonymizer::from_master_key(&[2; 32]);
        let p = a.pseudonym("", "42");
        assert_eq!(p.len(), 32);
        assert!(p.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(p, a.pseudonym("", "42"), "stable");
        assert_ne!(p, a.pseudonym("", "43"));
        assert_ne!(p, b.pseudonym("", "42"), "another installation");
        assert_ne!(p, a.pseudonym("ga", "42"), "another label");
        assert_ne!(a.pseudonym("a", "b42"), a.pseudonym("ab", "42"));
        assert!(!p.contains("42"));
        assert_eq!(a.pseudonym("", ""), "");
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.key)));
    }
}
