//! What the delivery log's search matches when event snapshots are sealed: a
//! blind index. At intake the store keeps a keyed hash (the vault's search
//! key, never the sealing key) of each *term* of an event — every word of the
//! patient's first, last and full name, and the appointment id — and a search
//! hashes the words it was given the same way. Nobody reading the database
//! learns a name from the index without the key, and a search needs no
//! snapshot opened.
//!
//! Words are compared folded, so the search forgives what people type: case,
//! accents (`José` = `jose`), apostrophes and dots (`O'Brien` = `obrien`), and
//! hyphens split words (`Smith-Jones` is `smith` and `jones`). A query matches
//! an event holding every one of its words, in any order; parts of a word do
//! not match (a hash has no parts).

use crate::Vars;

/// Most words kept from one name, or read from one query: the cost of an
/// intake and of a search stays small whatever is typed.
pub const MAX_WORDS: usize = 8;

/// The kind of a term, hashed with it so a name can never match an id.
pub const NAME: &str = "name";
pub const APPOINTMENT: &str = "appointment";

/// The letters a canonical decomposition leaves alone, spelled out in ASCII.
fn spelled(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'ø' => "o",
        'ł' => "l",
        'đ' | 'ð' => "d",
        'þ' => "th",
        'ı' => "i",
        _ => return None,
    })
}

/// A text's words, folded: lowercase, accents off, only letters and digits
/// kept inside a word; at most [`MAX_WORDS`], without repeats.
pub fn words(text: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization as _;
    use unicode_normalization::char::is_combining_mark;
    let mut out: Vec<String> = Vec::new();
    for raw in text.split(|c: char| c.is_whitespace() || c == '-' || c == '‐' || c == ',') {
        let mut word = String::new();
        for c in raw.nfkd().flat_map(char::to_lowercase) {
            if is_combining_mark(c) {
                continue;
            }
            if let Some(s) = spelled(c) {
                word.push_str(s);
            } else if c.is_alphanumeric() {
                word.push(c);
            }
        }
        if !word.is_empty() && !out.contains(&word) {
            out.push(word);
            if out.len() == MAX_WORDS {
                break;
            }
        }
    }
    out
}

/// The terms an event is found by: `(kind, value)` pairs to hash.
pub fn event_terms(vars: &Vars) -> Vec<(&'static str, String)> {
    let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or("");
    let mut names: Vec<String> = Vec::new();
    for field in ["patient_name", "patient_first_name", "patient_last_name"] {
        for w in words(get(field)) {
            if !names.contains(&w) {
                names.push(w);
            }
        }
    }
    let mut terms: Vec<(&'static str, String)> = names.into_iter().map(|w| (NAME, w)).collect();
    let appointment = get("appointment_id").trim();
    if !appointment.is_empty() && appointment.len() <= 40 {
        terms.push((APPOINTMENT, appointment.to_string()));
    }
    terms
}

/// The terms a name search looks for (all of them must be an event's).
pub fn name_query_terms(query: &str) -> Vec<(&'static str, String)> {
    words(query).into_iter().map(|w| (NAME, w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_forgive_case_accents_apostrophes_and_hyphens() {
        assert_eq!(words("  Maria   O'Brien "), ["maria", "obrien"]);
        assert_eq!(words("JOSÉ Muñoz-Ærø"), ["jose", "munoz", "aero"]);
        assert_eq!(words("Strauß"), ["strauss"]);
        assert_eq!(words("Ann ann ANN"), ["ann"]);
        assert_eq!(words("' - ."), Vec::<String>::new());
        assert_eq!(words("李 小龍"), ["李", "小龍"]);
        assert_eq!(words("a b c d e f g h i j k").len(), MAX_WORDS);
    }

    #[test]
    fn an_event_is_found_by_each_name_word_and_its_appointment() {
        let vars: Vars = [
            ("patient_name", "Maria O'Brien"),
            ("patient_first_name", "Maria"),
            ("patient_last_name", "O'Brien"),
            ("appointment_id", "318"),
            ("doctor_name", "Ada Smith"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            event_terms(&vars),
            [
                (NAME, "maria".to_string()),
                (NAME, "obrien".to_string()),
                (APPOINTMENT, "318".to_string())
            ]
        );
        for q in ["maria", "O'BRIEN", "obrien maria", "Maria O’Brien"] {
            let terms = name_query_terms(q);
            assert!(
                terms.iter().all(|t| event_terms(&vars).contains(t)),
                "{q}: {terms:?}"
            );
        }
        assert!(event_terms(&Vars::new()).is_empty());
    }
}
