//! Filters change one value before it is escaped for its context:
//! `{{ appointment_date | date: "%d/%m/%Y" }}`, `{{ patient_email | default: "n/a" }}`.
//!
//! A filter never fails at send time: a value it cannot read (a date filter on
//! text that is not a date) passes through unchanged, because a notification
//! with a raw value serves the clinic better than no notification.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

/// The filters a placeholder may apply, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Reformat a date, time or date-time with a strftime pattern.
    Date(Box<str>),
    /// Use this text when the value is empty or missing.
    Default(Box<str>),
    Upper,
    Lower,
    Trim,
    /// Keep at most this many characters.
    Truncate(usize),
    /// A date or date-time as seconds since 1970-01-01 UTC.
    Unix,
    /// A keyed, one-way pseudonym of the value (see
    /// [`crate::pseudonym::Pseudonymizer`]); the argument, if any, is a label
    /// that gives one destination pseudonyms unlinkable to another's.
    Pseudonym(Box<str>),
}

/// What `pseudonym` writes when rendered without the installation's key
/// (an offline preview): a marker, never the value.
pub const PSEUDONYM_WITHOUT_KEY: &str = "[pseudonym]";

/// The filter names, for error messages and the UI.
pub const FILTER_NAMES: &[&str] = &[
    "date",
    "default",
    "upper",
    "lower",
    "trim",
    "truncate",
    "unix",
    "pseudonym",
];

impl Filter {
    /// Builds a filter from its name and arguments, or says what is wrong.
    pub fn from_parts(name: &str, args: Vec<String>) -> Result<Filter, String> {
        let given = args.len();
        let want = |n: usize| -> Result<(), String> {
            if given == n {
                Ok(())
            } else if n == 0 {
                Err(format!("filter `{name}` takes no argument"))
            } else {
                Err(format!(
                    "filter `{name}` takes {n} argument, e.g. `| {name}: {}`",
                    example_arg(name)
                ))
            }
        };
        let mut args = args;
        match name {
            "date" => {
                want(1)?;
                let pattern = args.pop().unwrap_or_default();
                if pattern.is_empty()
                    || StrftimeItems::new(&pattern).any(|i| matches!(i, Item::Error))
                {
                    return Err(format!(
                        "filter `date` has an invalid pattern \"{pattern}\": use strftime codes like \"%d/%m/%Y\" or \"%H:%M\""
                    ));
                }
                Ok(Filter::Date(pattern.into()))
            }
            "default" => {
                want(1)?;
                Ok(Filter::Default(args.pop().unwrap_or_default().into()))
            }
            "upper" => want(0).map(|_| Filter::Upper),
            "lower" => want(0).map(|_| Filter::Lower),
            "trim" => want(0).map(|_| Filter::Trim),
            "unix" => want(0).map(|_| Filter::Unix),
            "pseudonym" => {
                if given > 1 {
                    return Err(
                        "filter `pseudonym` takes at most 1 argument, a label, e.g. `| pseudonym: \"analytics\"`"
                            .into(),
                    );
                }
                Ok(Filter::Pseudonym(args.pop().unwrap_or_default().into()))
            }
            "truncate" => {
                want(1)?;
                let n = args[0].parse::<usize>().map_err(|_| {
                    format!(
                        "filter `truncate` needs a whole number of characters, not \"{}\"",
                        args[0]
                    )
                })?;
                Ok(Filter::Truncate(n))
            }
            _ => Err(format!(
                "unknown filter `{name}`; the filters are: {}",
                FILTER_NAMES.join(", ")
            )),
        }
    }

    /// Applies the filter to one value. Without the installation's key a
    /// pseudonym is [`PSEUDONYM_WITHOUT_KEY`]; rendering applies the key
    /// itself (see [`crate::pseudonym::Pseudonymizer`]).
    pub fn apply<'a>(&self, value: Cow<'a, str>) -> Cow<'a, str> {
        match self {
            Filter::Pseudonym(_) if value.is_empty() => value,
            Filter::Pseudonym(_) => Cow::Borrowed(PSEUDONYM_WITHOUT_KEY),
            Filter::Default(fallback) => {
                if value.is_empty() {
                    Cow::Owned(fallback.to_string())
                } else {
                    value
                }
            }
            Filter::Upper => Cow::Owned(value.to_uppercase()),
            Filter::Lower => Cow::Owned(value.to_lowercase()),
            Filter::Trim => match value {
                Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
            },
            Filter::Truncate(n) => match value.char_indices().nth(*n) {
                Some((cut, _)) => Cow::Owned(value[..cut].to_string()),
                None => value,
            },
            Filter::Date(pattern) => format_temporal(&value, pattern).map_or(value, Cow::Owned),
            Filter::Unix => unix_seconds(&value).map_or(value, |s| Cow::Owned(s.to_string())),
        }
    }
}

fn example_arg(name: &str) -> &'static str {
    match name {
        "date" => "\"%d/%m/%Y\"",
        "truncate" => "100",
        _ => "\"n/a\"",
    }
}

/// A value read as the most specific temporal type it parses as.
enum Temporal {
    Date(NaiveDate),
    Time(NaiveTime),
    Naive(NaiveDateTime),
    Zoned(DateTime<chrono::FixedOffset>),
}

fn parse_temporal(value: &str) -> Option<Temporal> {
    let v = value.trim();
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(Temporal::Date(d));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(v) {
        return Some(Temporal::Zoned(dt));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(v, fmt) {
            return Some(Temporal::Naive(dt));
        }
    }
    for fmt in ["%H:%M", "%H:%M:%S"] {
        if let Ok(t) = NaiveTime::parse_from_str(v, fmt) {
            return Some(Temporal::Time(t));
        }
    }
    None
}

/// Formats with a pattern; `None` when the value is not temporal or the
/// pattern asks for a part the value lacks (an hour of a date), in which case
/// chrono's formatter reports an error rather than guessing.
fn format_temporal(value: &str, pattern: &str) -> Option<String> {
    let mut out = String::new();
    let ok = match parse_temporal(value)? {
        Temporal::Date(d) => write!(out, "{}", d.format(pattern)),
        Temporal::Time(t) => write!(out, "{}", t.format(pattern)),
        Temporal::Naive(dt) => write!(out, "{}", dt.format(pattern)),
        Temporal::Zoned(dt) => write!(out, "{}", dt.format(pattern)),
    };
    ok.ok().map(|_| out)
}

fn unix_seconds(value: &str) -> Option<i64> {
    match parse_temporal(value)? {
        Temporal::Date(d) => Some(d.and_time(NaiveTime::MIN).and_utc().timestamp()),
        Temporal::Naive(dt) => Some(dt.and_utc().timestamp()),
        Temporal::Zoned(dt) => Some(dt.timestamp()),
        Temporal::Time(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(f: &Filter, v: &str) -> String {
        f.apply(Cow::Borrowed(v)).into_owned()
    }

    #[test]
    fn date_reformats_dates_times_and_datetimes() {
        let f = Filter::from_parts("date", vec!["%d/%m/%Y".into()]).unwrap();
        assert_eq!(apply(&f, "2026-11-26"), "26/11/2026");
        assert_eq!(apply(&f, "2026-11-26T14:05:00+01:00"), "26/11/2026");
        let t = Filter::from_parts("date", vec!["%I:%M %p".into()]).unwrap();
        assert_eq!(apply(&t, "14:05"), "02:05 PM");
    }

    #[test]
    fn date_passes_unreadable_values_through() {
        let f = Filter::from_parts("date", vec!["%d/%m/%Y".into()]).unwrap();
        assert_eq!(apply(&f, "next tuesday"), "next tuesday");
        // An hour asked of a plain date cannot be produced: the value stays.
        let h = Filter::from_parts("date", vec!["%H".into()]).unwrap();
        assert_eq!(apply(&h, "2026-11-26"), "2026-11-26");
    }

    #[test]
    fn invalid_patterns_and_unknown_filters_are_refused() {
        assert!(
            Filter::from_parts("date", vec!["%Q".into()])
                .unwrap_err()
                .contains("invalid pattern")
        );
        assert!(
            Filter::from_parts("date", vec![])
                .unwrap_err()
                .contains("takes 1 argument")
        );
        assert!(
            Filter::from_parts("shout", vec![])
                .unwrap_err()
                .contains("unknown filter `shout`")
        );
        assert!(
            Filter::from_parts("upper", vec!["x".into()])
                .unwrap_err()
                .contains("no argument")
        );
        assert!(
            Filter::from_parts("truncate", vec!["ten".into()])
                .unwrap_err()
                .contains("whole number")
        );
    }

    #[test]
    fn text_filters() {
        let d = Filter::from_parts("default", vec!["n/a".into()]).unwrap();
        assert_eq!(apply(&d, ""), "n/a");
        assert_eq!(apply(&d, "x"), "x");
        assert_eq!(apply(&Filter::Upper, "Zoë"), "ZOË");
        assert_eq!(apply(&Filter::Lower, "ZOË"), "zoë");
        assert_eq!(apply(&Filter::Trim, "  a "), "a");
        assert_eq!(apply(&Filter::Truncate(2), "🏥ab"), "🏥a");
        assert_eq!(apply(&Filter::Truncate(9), "ab"), "ab");
    }

    #[test]
    fn pseudonym_takes_an_optional_label_and_never_shows_the_value_without_a_key() {
        let plain = Filter::from_parts("pseudonym", vec![]).unwrap();
        assert_eq!(plain, Filter::Pseudonym("".into()));
        let labelled = Filter::from_parts("pseudonym", vec!["ga".into()]).unwrap();
        assert_eq!(labelled, Filter::Pseudonym("ga".into()));
        assert!(
            Filter::from_parts("pseudonym", vec!["a".into(), "b".into()])
                .unwrap_err()
                .contains("at most 1 argument")
        );
        assert_eq!(apply(&plain, "42"), PSEUDONYM_WITHOUT_KEY);
        assert_eq!(apply(&plain, ""), "");
    }

    #[test]
    fn unix_converts_dates_and_datetimes() {
        assert_eq!(apply(&Filter::Unix, "1970-01-02"), "86400");
        assert_eq!(
            apply(&Filter::Unix, "2026-11-26T14:05:00+00:00"),
            "1795701900"
        );
        assert_eq!(apply(&Filter::Unix, "14:05"), "14:05");
    }
}
