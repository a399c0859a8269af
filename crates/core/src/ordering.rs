//! Ordering keys: a webhook's `ordering_key` template puts each delivery in a
//! queue of its own key (a patient, an appointment), and the deliveries of one
//! key are sent one at a time in event order.
//!
//! This module is the pure half: the template's checks, and what a key
//! becomes once rendered. The store numbers each key's deliveries (1, 2, 3…)
//! as they are written and claims only the first pending delivery of a key;
//! the dispatcher sends the number in [`SEQUENCE_HEADER`] so a receiver can
//! tell a gap (a delivery that ended `failed`) from a repeat.
//!
//! A rendered key is kept and sent as a digest ([`key_id`]): fixed length,
//! so the index over it stays small whatever the template renders, and a key
//! made of patient data is not stored a second time beside the snapshot that
//! retention and erasure clear. A digest of a short key (a number) can be
//! guessed back, so this is not encryption; it only keeps the value out of
//! places that outlive the snapshot.

use sha2::{Digest, Sha256};

use crate::catalog::Scope;
use crate::template::{Compiled, Context, ErrorKind, Position, TemplateError, compile};

/// The header with the key's id, the same for every delivery of that key.
pub const KEY_HEADER: &str = "carehook-ordering-key";
/// The header with the delivery's place in its key: 1, 2, 3…
pub const SEQUENCE_HEADER: &str = "carehook-ordering-sequence";
/// The longest `ordering_key` template.
pub const MAX_TEMPLATE: usize = 200;

/// Compiles an `ordering_key` template: text that renders the key from an
/// event's variables (`{{patient_id}}`, `{{clinic_id}}-{{appointment_id}}`).
/// `Ok(None)` for a blank one: no ordering.
pub fn compile_key(text: &str, scope: &Scope) -> Result<Option<Compiled>, TemplateError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_TEMPLATE {
        return Err(TemplateError::new(
            "ordering_key",
            Position { line: 1, column: 1 },
            ErrorKind::TooLarge,
            format!(
                "the ordering key template is longer than {MAX_TEMPLATE} bytes; a variable or two is enough, e.g. {{{{patient_id}}}}"
            ),
        ));
    }
    compile(text, Context::Text, "ordering_key", scope).map(Some)
}

/// The id a rendered key is stored and sent as: 32 hex digits of its
/// SHA-256. `None` for a key that renders blank (an event without the
/// variable): that delivery is not ordered.
pub fn key_id(rendered: &str) -> Option<String> {
    let rendered = rendered.trim();
    if rendered.is_empty() {
        return None;
    }
    let digest = Sha256::digest(rendered.as_bytes());
    Some(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_is_fixed_length_and_the_same_for_the_same_key() {
        let a = key_id("42").unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(key_id(" 42 "), Some(a.clone()));
        assert_ne!(key_id("43"), Some(a));
        assert_eq!(key_id("  "), None);
        assert_eq!(key_id(""), None);
        assert_eq!(key_id(&"x".repeat(100_000)).unwrap().len(), 32);
    }

    #[test]
    fn the_template_is_checked_against_the_events() {
        let scope = Scope::new(&["kc_appointment_book".to_string()]).unwrap();
        assert!(compile_key("", &scope).unwrap().is_none());
        assert!(compile_key("{{appointment_id}}", &scope).unwrap().is_some());
        let e = compile_key("{{apointment_id}}", &scope).unwrap_err();
        assert_eq!(e.field, "ordering_key");
        let e = compile_key(&"x".repeat(MAX_TEMPLATE + 1), &scope).unwrap_err();
        assert_eq!(e.field, "ordering_key");
    }
}
