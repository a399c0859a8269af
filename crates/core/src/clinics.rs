//! Which clinics something belongs to: a webhook (whose events it receives) or a caller (what
//! it may see). One install may serve a group of clinics; a clinic is named by its
//! `clinic_id`, the value every event carries, kept as text (clinic records have integer ids,
//! a pushed event may name its clinic either way).
//!
//! An empty list means every clinic: a single-clinic install never has to name its clinic.

use serde::{Deserialize, Deserializer};

use crate::Vars;

/// More clinics than this on one webhook or token is a mistake, not a group.
pub const MAX_CLINICS: usize = 100;
/// A clinic id is at most this many characters.
pub const MAX_CLINIC_ID: usize = 64;

/// `ids` checked: each 1 to 64 letters, digits, `-` or `_`; no duplicates; at
/// most [`MAX_CLINICS`]. The error says which entry is wrong (its index).
pub fn check(ids: &[String]) -> Result<Vec<String>, (usize, String)> {
    if ids.len() > MAX_CLINICS {
        return Err((
            MAX_CLINICS,
            format!("at most {MAX_CLINICS} clinics; leave the list empty for every clinic"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        if id.is_empty()
            || id.chars().count() > MAX_CLINIC_ID
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                i,
                format!(
                    "a clinic is named by its clinic_id: 1 to {MAX_CLINIC_ID} letters, digits, - or _ (e.g. \"2\")"
                ),
            ));
        }
        if out.contains(id) {
            return Err((i, format!("clinic {id} is listed twice")));
        }
        out.push(id.clone());
    }
    Ok(out)
}

/// Whether an event with these variables belongs to one of `clinics` (empty: every clinic).
/// An event that names no clinic belongs to none of a non-empty list: a webhook of one clinic
/// never receives an event it cannot place.
pub fn admits(clinics: &[String], vars: &Vars) -> bool {
    clinics.is_empty()
        || vars
            .get("clinic_id")
            .is_some_and(|c| clinics.iter().any(|k| k == c.trim()))
}

/// Whether a webhook of `clinics` (empty: every clinic) hears about something that belongs
/// to `about` (an operational alert about a webhook of those clinics). A webhook of every
/// clinic hears about everything; a webhook of some clinics hears about what serves one of
/// them — a shared webhook concerns each clinic it serves — and never about what serves every
/// clinic or none it knows of (it could be any clinic's).
pub fn admits_about(clinics: &[String], about: &[String]) -> bool {
    clinics.is_empty() || about.iter().any(|c| clinics.contains(c))
}

/// Whether a caller limited to `allowed` (`None`: every clinic) may see something that
/// belongs to `clinics` (empty: every clinic). Something of every clinic is only for callers
/// of every clinic: it may carry any clinic's data.
pub fn covers(allowed: Option<&[String]>, clinics: &[String]) -> bool {
    match allowed {
        None => true,
        Some(allowed) => !clinics.is_empty() && clinics.iter().all(|c| allowed.contains(c)),
    }
}

/// Reads clinic ids given as text or as integers (`["2"]` or `[2]`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    let ids = Vec::<Id>::deserialize(d)?;
    Ok(ids
        .into_iter()
        .map(|id| match id {
            Id::Text(s) => s,
            Id::Number(n) => n.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(clinic: Option<&str>) -> Vars {
        clinic
            .map(|c| [("clinic_id".to_string(), c.to_string())].into())
            .unwrap_or_default()
    }

    #[test]
    fn an_empty_list_admits_every_clinic_and_a_list_only_its_own() {
        assert!(admits(&[], &vars(Some("1"))));
        assert!(admits(&[], &vars(None)));
        let two = vec!["2".to_string()];
        assert!(admits(&two, &vars(Some("2"))));
        assert!(!admits(&two, &vars(Some("1"))));
        assert!(!admits(&two, &vars(Some("22"))));
        assert!(!admits(&two, &vars(None)), "an event without a clinic");
    }

    #[test]
    fn an_alert_reaches_the_webhooks_of_its_clinics_and_of_every_clinic() {
        let (one, two) = (vec!["1".to_string()], vec!["2".to_string()]);
        let both = vec!["1".to_string(), "2".to_string()];
        assert!(admits_about(&[], &two), "an alert webhook of every clinic");
        assert!(admits_about(&two, &two));
        assert!(!admits_about(&one, &two), "never another clinic's");
        assert!(admits_about(&one, &both) && admits_about(&two, &both));
        assert!(
            !admits_about(&two, &[]),
            "a webhook of every clinic is no one clinic's"
        );
    }

    #[test]
    fn a_limited_caller_covers_only_things_of_its_clinics() {
        let (one, two) = (vec!["1".to_string()], vec!["2".to_string()]);
        let both = vec!["1".to_string(), "2".to_string()];
        assert!(covers(None, &[]));
        assert!(covers(None, &one));
        assert!(covers(Some(&two), &two));
        assert!(covers(Some(&both), &two));
        assert!(!covers(Some(&two), &one));
        assert!(
            !covers(Some(&two), &both),
            "a webhook that also serves clinic 1"
        );
        assert!(!covers(Some(&two), &[]), "a webhook of every clinic");
    }

    #[test]
    fn clinic_ids_are_checked_and_read_as_text_or_numbers() {
        assert_eq!(
            check(&["2".into(), "north-1".into()]).unwrap(),
            vec!["2", "north-1"]
        );
        assert_eq!(check(&["".into()]).unwrap_err().0, 0);
        assert_eq!(check(&[" 2".into()]).unwrap_err().0, 0);
        assert_eq!(check(&["1".into(), "a b".into()]).unwrap_err().0, 1);
        assert_eq!(check(&["1".into(), "1".into()]).unwrap_err().0, 1);
        assert!(check(&vec!["1".to_string(); MAX_CLINICS + 1]).is_err());
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "deserialize")]
            c: Vec<String>,
        }
        let w: W = serde_json::from_str(r#"{"c":[2,"3"]}"#).unwrap();
        assert_eq!(w.c, vec!["2", "3"]);
        assert!(serde_json::from_str::<W>(r#"{"c":[true]}"#).is_err());
    }
}
