//! Webhook conditions: filters such as
//! `{"variable":"appointment_status","op":"eq","value":"cancelled"}` that an
//! event's snapshot must pass for a webhook to get a delivery.
//!
//! [`validate`] runs when a webhook is saved and refuses what can never make
//! sense (unknown variable, `gt` on a name, `"abc"` for an integer) with the
//! field and a message a clinic admin can act on. [`matches`] runs for every
//! event and never fails: snapshot values are text, and a value that does not
//! read as the variable's type simply makes the comparison false.
//!
//! How a variable compares comes from its catalog type, looked up by name at
//! match time, so a snapshot needs no type information of its own.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Vars;
use crate::catalog::{self, Presence, Scope, VarType};

/// One filter; a webhook's conditions must all hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub variable: String,
    pub op: Op,
    /// Text, a number or true/false (compared as their text); a list of
    /// those for `in`/`not_in`; absent for `exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Contains,
    StartsWith,
    /// The variable is present and not empty.
    Exists,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Op {
    pub const ALL: [Op; 11] = [
        Op::Eq,
        Op::Ne,
        Op::In,
        Op::NotIn,
        Op::Contains,
        Op::StartsWith,
        Op::Exists,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Contains => "contains",
            Op::StartsWith => "starts_with",
            Op::Exists => "exists",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
        }
    }

    fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Gte | Op::Lt | Op::Lte)
    }

    fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::NotIn)
    }

    /// Ops whose value is compared as the variable's type (not as text).
    fn is_typed(self) -> bool {
        !matches!(self, Op::Contains | Op::StartsWith | Op::Exists)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a webhook's conditions were refused: `field` is the JSON path of the
/// culprit (`conditions[2].value`), `message` says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConditionError {
    pub field: String,
    pub message: String,
}

/// Something that saves but may not do what the admin expects, e.g. a
/// variable that only some subscribed events carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionWarning {
    pub field: String,
    pub message: String,
}

/// Checks conditions against the events a webhook subscribes to. Stops at
/// the first error; returns the warnings otherwise.
pub fn validate(
    conditions: &[Condition],
    scope: &Scope,
) -> Result<Vec<ConditionWarning>, ConditionError> {
    let mut warnings = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        warnings.extend(validate_one(i, condition, scope)?);
    }
    Ok(warnings)
}

/// Whether a snapshot passes every condition (an empty list passes).
pub fn matches(conditions: &[Condition], vars: &Vars) -> bool {
    conditions.iter().all(|c| c.holds(vars))
}

impl Condition {
    /// Whether this one condition holds for a snapshot. Never panics, whatever
    /// the snapshot or an unvalidated condition holds.
    pub fn holds(&self, vars: &Vars) -> bool {
        let Some(actual) = vars.get(&self.variable) else {
            // Absent is "not equal to anything", so only the negative ops hold.
            return matches!(self.op, Op::Ne | Op::NotIn);
        };
        let ty = catalog::variable(&self.variable).map_or(VarType::Text, |v| v.ty);
        let expected = self.value.as_ref().and_then(value_text);
        let ordered = |accept: fn(Ordering) -> bool| {
            expected
                .as_deref()
                .and_then(|e| compare(ty, actual, e))
                .is_some_and(accept)
        };
        match self.op {
            Op::Exists => !actual.is_empty(),
            Op::Eq => expected.is_some_and(|e| equals(ty, actual, &e)),
            Op::Ne => !expected.is_some_and(|e| equals(ty, actual, &e)),
            Op::In => value_list(self.value.as_ref()).any(|e| equals(ty, actual, &e)),
            Op::NotIn => !value_list(self.value.as_ref()).any(|e| equals(ty, actual, &e)),
            Op::Contains => expected.is_some_and(|e| actual.contains(e.as_str())),
            Op::StartsWith => expected.is_some_and(|e| actual.starts_with(e.as_str())),
            Op::Gt => ordered(Ordering::is_gt),
            Op::Gte => ordered(Ordering::is_ge),
            Op::Lt => ordered(Ordering::is_lt),
            Op::Lte => ordered(Ordering::is_le),
        }
    }
}

// --- validation -------------------------------------------------------------

fn validate_one(
    i: usize,
    condition: &Condition,
    scope: &Scope,
) -> Result<Option<ConditionWarning>, ConditionError> {
    let at = |part: &str| format!("conditions[{i}].{part}");
    let fail = |field: String, message: String| Err(ConditionError { field, message });
    let name = condition.variable.as_str();
    let op = condition.op;

    let Some(var) = scope.variable(name) else {
        let message = if name.is_empty() {
            "a variable name is required".to_owned()
        } else {
            let suggestion = catalog::closest_name(name, scope.variable_names());
            format!(
                "unknown variable \"{name}\" — none of the subscribed events has it{}",
                catalog::did_you_mean(suggestion)
            )
        };
        return fail(at("variable"), message);
    };

    if op.is_ordering() && !var.ty.is_ordered() {
        return fail(
            at("op"),
            format!(
                "op \"{op}\" needs a number or a date variable; {name} is {}",
                var.ty.describe()
            ),
        );
    }

    // Collect (field, text) for every value given, checking the shape.
    let mut values: Vec<(String, String)> = Vec::new();
    match (&condition.value, op) {
        (None, Op::Exists) => {}
        (Some(_), Op::Exists) => return fail(at("value"), "op \"exists\" takes no value".into()),
        (None, _) if op.takes_list() => {
            return fail(at("value"), format!("op \"{op}\" needs a list of values"));
        }
        (None, _) => return fail(at("value"), format!("op \"{op}\" needs a value")),
        (Some(Value::Array(items)), _) if op.takes_list() => {
            if items.is_empty() {
                return fail(at("value"), format!("op \"{op}\" needs at least one value"));
            }
            for (j, item) in items.iter().enumerate() {
                let field = format!("conditions[{i}].value[{j}]");
                match value_text(item) {
                    Some(text) => values.push((field, text)),
                    None => return fail(field, SCALAR_ONLY.into()),
                }
            }
        }
        (Some(_), _) if op.takes_list() => {
            return fail(at("value"), format!("op \"{op}\" needs a list of values"));
        }
        (Some(Value::Array(_)), _) => {
            let hint = match op {
                Op::Eq => " (use \"in\" for a list)",
                Op::Ne => " (use \"not_in\" for a list)",
                _ => "",
            };
            return fail(
                at("value"),
                format!("op \"{op}\" takes one value, not a list{hint}"),
            );
        }
        (Some(value), _) => match value_text(value) {
            Some(text) => values.push((at("value"), text)),
            None => return fail(at("value"), SCALAR_ONLY.into()),
        },
    }

    if op.is_typed() {
        for (field, text) in values {
            if let Some(message) = type_mismatch(var, &text) {
                return fail(field, message);
            }
        }
    }

    Ok(match scope.presence(name) {
        Presence::Some => Some(ConditionWarning {
            field: at("variable"),
            message: format!(
                "only some subscribed events have {name}; for {} this condition {}",
                short_list(&scope.events_lacking(name)),
                if matches!(op, Op::Ne | Op::NotIn) {
                    "always holds"
                } else {
                    "never holds"
                }
            ),
        }),
        Presence::All | Presence::None => None,
    })
}

const SCALAR_ONLY: &str = "a value must be text, a number or true/false";

/// Whether `text` reads as `var`'s type (an integer variable holds a whole
/// number, a date variable a date…). Empty text stands for "not given".
pub fn fits_type(var: &catalog::Variable, text: &str) -> bool {
    text.is_empty() || type_mismatch(var, text).is_none()
}

/// Why `text` can never compare with `var`, if it cannot.
fn type_mismatch(var: &catalog::Variable, text: &str) -> Option<String> {
    let name = var.name;
    match var.ty {
        VarType::Integer => match parse_number(text) {
            Some(n) if n.frac.is_empty() => None,
            Some(_) => Some(format!(
                "value \"{text}\" is not a whole number, but {name} is an integer"
            )),
            None => Some(format!(
                "value \"{text}\" is not a number, but {name} is an integer"
            )),
        },
        VarType::Decimal => parse_number(text)
            .is_none()
            .then(|| format!("value \"{text}\" is not a number, but {name} is a decimal number")),
        VarType::Date => parse_date(text)
            .is_none()
            .then(|| format!("value \"{text}\" is not a date YYYY-MM-DD")),
        VarType::Time => parse_time(text)
            .is_none()
            .then(|| format!("value \"{text}\" is not a time HH:MM (24 h)")),
        VarType::DateTime => parse_date_time(text).is_none().then(|| {
            format!("value \"{text}\" is not a date and time like 2026-11-26T14:05:00+00:00")
        }),
        VarType::Enum if !var.values.contains(&text) => Some(format!(
            "value \"{text}\" is not one of {name}'s values: {}{}",
            var.values.join(", "),
            catalog::did_you_mean(catalog::closest_name(text, var.values.iter().copied()))
        )),
        VarType::Enum | VarType::Text | VarType::Email | VarType::Phone => None,
    }
}

/// `a, b, c and 4 more` — event lists with `*` are long.
fn short_list(names: &[&str]) -> String {
    const SHOWN: usize = 3;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    format!(
        "{} and {} more",
        names[..SHOWN].join(", "),
        names.len() - SHOWN
    )
}

// --- comparison -------------------------------------------------------------

/// A condition value as the text it compares as: `10` → "10", `true` → "true".
fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The values of an `in` list; a lone scalar counts as a list of one.
fn value_list(value: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    let items: &[Value] = match value {
        Some(Value::Array(items)) => items,
        Some(scalar) => std::slice::from_ref(scalar),
        None => &[],
    };
    items.iter().filter_map(value_text)
}

/// Numbers are equal by value ("10.0" = "10"); everything else by exact text.
fn equals(ty: VarType, actual: &str, expected: &str) -> bool {
    // No let-chains: the workspace promises Rust 1.85.
    let numbers = match ty {
        VarType::Integer | VarType::Decimal => parse_number(actual).zip(parse_number(expected)),
        _ => None,
    };
    match numbers {
        Some((a, e)) => a == e,
        None => actual == expected,
    }
}

/// Orders two values of a number or date type; `None` when either does not
/// read as the type, or the type has no order.
fn compare(ty: VarType, actual: &str, expected: &str) -> Option<Ordering> {
    match ty {
        VarType::Integer | VarType::Decimal => {
            Some(parse_number(actual)?.cmp(&parse_number(expected)?))
        }
        VarType::Date => Some(parse_date(actual)?.cmp(&parse_date(expected)?)),
        VarType::Time => Some(parse_time(actual)?.cmp(&parse_time(expected)?)),
        VarType::DateTime => Some(parse_date_time(actual)?.cmp(&parse_date_time(expected)?)),
        VarType::Text | VarType::Email | VarType::Phone | VarType::Enum => None,
    }
}

/// A decimal number kept as its digits, so `payment_amount` compares exactly
/// however long it is (an f64 would round past 15 digits).
#[derive(Debug, PartialEq, Eq)]
struct Number<'a> {
    negative: bool,
    /// Integer digits without leading zeros.
    int: &'a str,
    /// Fraction digits without trailing zeros.
    frac: &'a str,
}

/// `[+-]digits[.digits]`, digits on at least one side of the point. No
/// spaces, exponents or thousands separators: "parse exactly".
fn parse_number(s: &str) -> Option<Number<'_>> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    Some(Number {
        // -0 is 0.
        negative: negative && !(int.is_empty() && frac.is_empty()),
        int,
        frac,
    })
}

impl Ord for Number<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // With leading/trailing zeros stripped, a longer integer part is
        // larger, and fraction digits compare lexicographically.
        let magnitude = |a: &Number, b: &Number| {
            a.int
                .len()
                .cmp(&b.int.len())
                .then_with(|| a.int.cmp(b.int))
                .then_with(|| a.frac.cmp(b.frac))
        };
        match (self.negative, other.negative) {
            (false, false) => magnitude(self, other),
            (true, true) => magnitude(other, self),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Number<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Checks `s` against a pattern where `9` is a digit and any other byte must
/// match itself. chrono alone accepts single-digit months and the like.
fn has_shape(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| match p {
            b'9' => c.is_ascii_digit(),
            _ => c == p,
        })
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    has_shape(s, "9999-99-99")
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
}

/// `HH:MM`, or `HH:MM:SS` from an integrator's own system.
fn parse_time(s: &str) -> Option<NaiveTime> {
    if has_shape(s, "99:99") {
        NaiveTime::parse_from_str(s, "%H:%M").ok()
    } else if has_shape(s, "99:99:99") {
        NaiveTime::parse_from_str(s, "%H:%M:%S").ok()
    } else {
        None
    }
}

/// RFC 3339; compares as instants, whatever the offsets.
fn parse_date_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn cond(variable: &str, op: Op, value: Value) -> Condition {
        Condition {
            variable: variable.into(),
            op,
            value: Some(value),
        }
    }

    fn snapshot(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn holds(c: &Condition, pairs: &[(&str, &str)]) -> bool {
        c.holds(&snapshot(pairs))
    }

    fn scope(events: &[&str]) -> Scope {
        Scope::new(events).unwrap()
    }

    fn error_of(conditions: Value, events: &[&str]) -> ConditionError {
        let conditions: Vec<Condition> = serde_json::from_value(conditions).unwrap();
        validate(&conditions, &scope(events)).unwrap_err()
    }

    const STATUS: &str = "appointment_status";

    #[test]
    fn eq_and_ne_compare_text_exactly() {
        let cancelled = cond(STATUS, Op::Eq, json!("cancelled"));
        assert!(holds(&cancelled, &[(STATUS, "cancelled")]));
        assert!(!holds(&cancelled, &[(STATUS, "booked")]));
        assert!(!holds(&cancelled, &[(STATUS, "Cancelled")]));
        let not_cancelled = cond(STATUS, Op::Ne, json!("cancelled"));
        assert!(holds(&not_cancelled, &[(STATUS, "booked")]));
        assert!(!holds(&not_cancelled, &[(STATUS, "cancelled")]));
    }

    #[test]
    fn eq_on_numbers_compares_values() {
        assert!(holds(
            &cond("payment_amount", Op::Eq, json!("10")),
            &[("payment_amount", "10.0")]
        ));
        assert!(holds(
            &cond("payment_amount", Op::Eq, json!(10.5)),
            &[("payment_amount", "10.50")]
        ));
        assert!(holds(
            &cond("doctor_id", Op::Eq, json!(12)),
            &[("doctor_id", "12")]
        ));
        assert!(!holds(
            &cond("payment_amount", Op::Eq, json!("10.01")),
            &[("payment_amount", "10.0")]
        ));
        // Text variables stay text: a postal code "01" is not "1".
        assert!(!holds(
            &cond("clinic_postal_code", Op::Eq, json!("1")),
            &[("clinic_postal_code", "01")]
        ));
    }

    #[test]
    fn booleans_and_numbers_compare_as_their_text() {
        assert!(holds(
            &cond("x_flag", Op::Eq, json!(true)),
            &[("x_flag", "true")]
        ));
        assert!(holds(
            &cond("appointment_status_code", Op::Eq, json!(0)),
            &[("appointment_status_code", "0")]
        ));
    }

    #[test]
    fn in_and_not_in_look_in_the_list() {
        let active = cond(STATUS, Op::In, json!(["booked", "check_in"]));
        assert!(holds(&active, &[(STATUS, "check_in")]));
        assert!(!holds(&active, &[(STATUS, "cancelled")]));
        let inactive = cond(STATUS, Op::NotIn, json!(["booked", "check_in"]));
        assert!(holds(&inactive, &[(STATUS, "cancelled")]));
        assert!(!holds(&inactive, &[(STATUS, "booked")]));
        assert!(holds(
            &cond("clinic_id", Op::In, json!([1, 2])),
            &[("clinic_id", "2")]
        ));
    }

    #[test]
    fn contains_and_starts_with_are_case_sensitive_text() {
        let swab = cond("service_names", Op::Contains, json!("Swab"));
        assert!(holds(
            &swab,
            &[("service_names", "General Consultation, Throat Swab")]
        ));
        assert!(!holds(&swab, &[("service_names", "throat swab")]));
        let uk = cond("patient_contact_number", Op::StartsWith, json!("+44"));
        assert!(holds(&uk, &[("patient_contact_number", "+447700900123")]));
        assert!(!holds(&uk, &[("patient_contact_number", "+15550100")]));
    }

    #[test]
    fn exists_needs_a_non_empty_value() {
        let email = Condition {
            variable: "patient_email".into(),
            op: Op::Exists,
            value: None,
        };
        assert!(holds(
            &email,
            &[("patient_email", "maria.obrien@example.com")]
        ));
        assert!(!holds(&email, &[("patient_email", "")]));
        assert!(!holds(&email, &[]));
    }

    #[test]
    fn numbers_compare_as_numbers() {
        assert!(holds(
            &cond("patient_id", Op::Lt, json!("10")),
            &[("patient_id", "9")]
        ));
        assert!(!holds(
            &cond("patient_id", Op::Gt, json!("10")),
            &[("patient_id", "9")]
        ));
        let big = cond("payment_amount", Op::Gt, json!("999.9"));
        assert!(holds(&big, &[("payment_amount", "1234.50")]));
        assert!(!holds(&big, &[("payment_amount", "999.90")]));
        assert!(holds(
            &cond("payment_amount", Op::Gte, json!(999.9)),
            &[("payment_amount", "999.90")]
        ));
        assert!(holds(
            &cond("payment_amount", Op::Lte, json!(100)),
            &[("payment_amount", "99.999")]
        ));
        assert!(holds(
            &cond("bill_discount", Op::Lt, json!("-0.5")),
            &[("bill_discount", "-1")]
        ));
        assert!(holds(
            &cond("bill_discount", Op::Gt, json!("-0.5")),
            &[("bill_discount", "0")]
        ));
        // Beyond f64's precision, still exact.
        assert!(holds(
            &cond("payment_amount", Op::Gt, json!("12345678901234567.01")),
            &[("payment_amount", "12345678901234567.02")]
        ));
    }

    #[test]
    fn dates_and_times_compare_chronologically() {
        let after = cond("appointment_date", Op::Gt, json!("2026-01-31"));
        assert!(holds(&after, &[("appointment_date", "2026-02-01")]));
        assert!(!holds(&after, &[("appointment_date", "2026-01-31")]));
        assert!(holds(
            &cond("appointment_date", Op::Gte, json!("2026-01-31")),
            &[("appointment_date", "2026-01-31")]
        ));
        let morning = cond("appointment_start_time", Op::Lt, json!("12:00"));
        assert!(holds(&morning, &[("appointment_start_time", "09:30")]));
        assert!(!holds(&morning, &[("appointment_start_time", "16:30")]));
        // 14:05 in London is 15:05 in Paris: the same instant.
        let at = cond(
            "current_date_time",
            Op::Gte,
            json!("2026-11-26T15:05:00+01:00"),
        );
        assert!(holds(
            &at,
            &[("current_date_time", "2026-11-26T14:05:00+00:00")]
        ));
        assert!(!holds(
            &cond(
                "current_date_time",
                Op::Gt,
                json!("2026-11-26T15:05:00+01:00")
            ),
            &[("current_date_time", "2026-11-26T14:05:00Z")]
        ));
    }

    #[test]
    fn a_value_that_does_not_parse_makes_a_comparison_false() {
        for op in [Op::Gt, Op::Gte, Op::Lt, Op::Lte] {
            assert!(!holds(
                &cond("payment_amount", op, json!("10")),
                &[("payment_amount", "ten")]
            ));
            assert!(!holds(
                &cond("appointment_date", op, json!("2026-01-01")),
                &[("appointment_date", "26/11/2026")]
            ));
            assert!(!holds(
                &cond("clinic_name", op, json!("A")),
                &[("clinic_name", "B")]
            ));
        }
    }

    #[test]
    fn an_absent_variable_passes_only_negative_ops() {
        let absent =
            |op: Op, value: Value| holds(&cond("doctor_name", op, value), &[("clinic_name", "x")]);
        assert!(!absent(Op::Eq, json!("x")));
        assert!(absent(Op::Ne, json!("x")));
        assert!(!absent(Op::In, json!(["x"])));
        assert!(absent(Op::NotIn, json!(["x"])));
        assert!(!absent(Op::Contains, json!("")));
        assert!(!absent(Op::StartsWith, json!("")));
        for op in [Op::Gt, Op::Gte, Op::Lt, Op::Lte] {
            assert!(!absent(op, json!("1")));
        }
    }

    #[test]
    fn all_conditions_must_hold_and_none_means_yes() {
        let vars = snapshot(&[(STATUS, "cancelled"), ("clinic_id", "1")]);
        assert!(matches(&[], &vars));
        let both = [
            cond(STATUS, Op::Eq, json!("cancelled")),
            cond("clinic_id", Op::Eq, json!(1)),
        ];
        assert!(matches(&both, &vars));
        let one_fails = [
            cond(STATUS, Op::Eq, json!("cancelled")),
            cond("clinic_id", Op::Eq, json!(2)),
        ];
        assert!(!matches(&one_fails, &vars));
    }

    #[test]
    fn decimal_numbers_parse_exactly() {
        for ok in ["0", "10", "10.", ".5", "-3.25", "+7", "007.500"] {
            assert!(parse_number(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "-", ".", "1e3", " 1", "1 ", "1,000.00", "1.2.3", "0x10", "NaN", "--1",
        ] {
            assert!(parse_number(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_number("-0.00"), parse_number("0"));
        assert_eq!(parse_number("007.500"), parse_number("7.5"));
    }

    #[test]
    fn dates_and_times_parse_exactly() {
        assert!(parse_date("2026-02-28").is_some());
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "2026-2-1",
            "26-02-01",
            "2026/02/01",
            "+2026-02-01",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
        assert!(parse_time("09:30").is_some());
        assert!(parse_time("23:59:59").is_some());
        for bad in ["9:30", "24:00", "12:60", "12h30"] {
            assert!(parse_time(bad).is_none(), "{bad}");
        }
    }

    // --- validation ---

    #[test]
    fn valid_conditions_pass_without_warnings() {
        let conditions: Vec<Condition> = serde_json::from_value(json!([
            {"variable": "appointment_status", "op": "eq", "value": "cancelled"},
            {"variable": "appointment_status", "op": "in", "value": ["booked", "pending"]},
            {"variable": "doctor_id", "op": "ne", "value": 12},
            {"variable": "appointment_date", "op": "gte", "value": "2026-01-01"},
            {"variable": "appointment_start_time", "op": "lt", "value": "12:00"},
            {"variable": "appointment_created_at", "op": "lt", "value": "2026-11-26T14:05:00Z"},
            {"variable": "patient_email", "op": "exists"},
            {"variable": "patient_id", "op": "starts_with", "value": "4"},
            {"variable": "service_names", "op": "contains", "value": "Swab"},
        ]))
        .unwrap();
        let warnings = validate(&conditions, &scope(&["kc_appointment_status_change"])).unwrap();
        assert_eq!(warnings, []);
    }

    #[test]
    fn an_unknown_variable_is_refused_with_a_suggestion() {
        let err = error_of(
            json!([{"variable": "clinic_id", "op": "eq", "value": 1},
                   {"variable": "patient_nme", "op": "eq", "value": "x"}]),
            &["kc_patient_add"],
        );
        assert_eq!(err.field, "conditions[1].variable");
        assert_eq!(
            err.message,
            "unknown variable \"patient_nme\" — none of the subscribed events has it (did you mean \"patient_name\"?)"
        );
        assert_eq!(
            err.to_string(),
            format!("conditions[1].variable: {}", err.message)
        );
    }

    #[test]
    fn a_variable_of_another_event_is_unknown_here() {
        let err = error_of(
            json!([{"variable": "payment_amount", "op": "gt", "value": 1}]),
            &["kc_patient_add"],
        );
        assert_eq!(err.field, "conditions[0].variable");
        assert!(
            err.message
                .starts_with("unknown variable \"payment_amount\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn ops_and_values_must_fit_together() {
        let events = &["kc_appointment_book"];
        let cases = [
            (
                json!({"variable": STATUS, "op": "in", "value": "booked"}),
                "conditions[0].value",
                "op \"in\" needs a list of values",
            ),
            (
                json!({"variable": STATUS, "op": "not_in"}),
                "conditions[0].value",
                "op \"not_in\" needs a list of values",
            ),
            (
                json!({"variable": STATUS, "op": "in", "value": []}),
                "conditions[0].value",
                "op \"in\" needs at least one value",
            ),
            (
                json!({"variable": STATUS, "op": "in", "value": ["booked", {"a": 1}]}),
                "conditions[0].value[1]",
                SCALAR_ONLY,
            ),
            (
                json!({"variable": STATUS, "op": "eq"}),
                "conditions[0].value",
                "op \"eq\" needs a value",
            ),
            (
                json!({"variable": STATUS, "op": "eq", "value": ["booked"]}),
                "conditions[0].value",
                "op \"eq\" takes one value, not a list (use \"in\" for a list)",
            ),
            (
                json!({"variable": STATUS, "op": "eq", "value": {"a": 1}}),
                "conditions[0].value",
                SCALAR_ONLY,
            ),
            (
                json!({"variable": STATUS, "op": "exists", "value": "x"}),
                "conditions[0].value",
                "op \"exists\" takes no value",
            ),
            (
                json!({"variable": "clinic_name", "op": "gt", "value": "A"}),
                "conditions[0].op",
                "op \"gt\" needs a number or a date variable; clinic_name is text",
            ),
        ];
        for (condition, field, message) in cases {
            let err = error_of(json!([condition]), events);
            assert_eq!(
                (err.field.as_str(), err.message.as_str()),
                (field, message),
                "{condition}"
            );
        }
    }

    #[test]
    fn values_must_read_as_the_variables_type() {
        let events = &["kc_appointment_payment_complete"];
        let cases = [
            (
                json!({"variable": "doctor_id", "op": "eq", "value": "abc"}),
                "value \"abc\" is not a number, but doctor_id is an integer",
            ),
            (
                json!({"variable": "doctor_id", "op": "gt", "value": 1.5}),
                "value \"1.5\" is not a whole number, but doctor_id is an integer",
            ),
            (
                json!({"variable": "payment_amount", "op": "gte", "value": "1,000"}),
                "value \"1,000\" is not a number, but payment_amount is a decimal number",
            ),
            (
                json!({"variable": "appointment_date", "op": "lt", "value": "2026-13-01"}),
                "value \"2026-13-01\" is not a date YYYY-MM-DD",
            ),
            (
                json!({"variable": "appointment_start_time", "op": "lt", "value": "9am"}),
                "value \"9am\" is not a time HH:MM (24 h)",
            ),
            (
                json!({"variable": "appointment_created_at", "op": "lt", "value": "2026-11-26"}),
                "value \"2026-11-26\" is not a date and time like 2026-11-26T14:05:00+00:00",
            ),
            (
                json!({"variable": STATUS, "op": "eq", "value": "canceled"}),
                "value \"canceled\" is not one of appointment_status's values: booked, pending, check_in, check_out, cancelled (did you mean \"cancelled\"?)",
            ),
        ];
        for (condition, message) in cases {
            let err = error_of(json!([condition]), events);
            assert_eq!(err.field, "conditions[0].value", "{condition}");
            assert_eq!(err.message, message);
        }
        let err = error_of(
            json!([{"variable": "doctor_id", "op": "in", "value": [1, "x"]}]),
            events,
        );
        assert_eq!(err.field, "conditions[0].value[1]");
        // Text ops take any text, even on typed variables.
        let ok: Vec<Condition> = serde_json::from_value(
            json!([{"variable": "appointment_date", "op": "starts_with", "value": "2026-"}]),
        )
        .unwrap();
        assert!(validate(&ok, &scope(events)).is_ok());
    }

    #[test]
    fn a_variable_only_some_events_have_is_a_warning() {
        let conditions = [
            cond(STATUS, Op::Eq, json!("cancelled")),
            cond("patient_name", Op::Ne, json!("x")),
        ];
        let warnings = validate(
            &conditions,
            &scope(&["kc_patient_add", "kc_appointment_book"]),
        )
        .unwrap();
        assert_eq!(
            warnings,
            [ConditionWarning {
                field: "conditions[0].variable".into(),
                message: "only some subscribed events have appointment_status; for kc_patient_add this condition never holds".into(),
            }]
        );
        let warnings = validate(&conditions[1..], &Scope::all()).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0]
                .message
                .ends_with("more this condition always holds"),
            "{}",
            warnings[0].message
        );
    }

    // --- serde ---

    #[test]
    fn conditions_round_trip_through_json() {
        let json = json!([
            {"variable": "appointment_status", "op": "not_in", "value": ["cancelled", "pending"]},
            {"variable": "patient_email", "op": "exists"},
            {"variable": "payment_amount", "op": "gte", "value": 100.5},
            {"variable": "service_names", "op": "starts_with", "value": "General"},
        ]);
        let conditions: Vec<Condition> = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(conditions[0].op, Op::NotIn);
        assert_eq!(conditions[1].value, None);
        assert_eq!(serde_json::to_value(&conditions).unwrap(), json);
        let ops: Vec<String> = Op::ALL
            .iter()
            .map(|op| {
                serde_json::to_value(op)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let names: Vec<&str> = Op::ALL.iter().map(|op| op.as_str()).collect();
        assert_eq!(ops, names);
    }

    #[test]
    fn unknown_fields_and_ops_are_refused() {
        let typo =
            serde_json::from_value::<Condition>(json!({"variable": "x", "op": "eq", "valu": "y"}));
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `valu`")
        );
        assert!(
            serde_json::from_value::<Condition>(
                json!({"variable": "x", "op": "equals", "value": "y"})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<Condition>(json!({"variable": "x", "value": "y"})).is_err()
        );
    }

    // --- properties ---

    fn variable_name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(catalog::variable_names()).prop_map(str::to_owned),
            "[a-z_]{0,12}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[-+]?[0-9]{0,20}(\\.[0-9]{0,20})?",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}",
            "[0-9]{2}:[0-9]{2}(:[0-9]{2})?",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})",
        ]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            text().prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ]
    }

    fn value() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            scalar().prop_map(Some),
            proptest::collection::vec(scalar(), 0..4).prop_map(|v| Some(Value::Array(v))),
        ]
    }

    fn condition() -> impl Strategy<Value = Condition> {
        (
            variable_name(),
            proptest::sample::select(Op::ALL.to_vec()),
            value(),
        )
            .prop_map(|(variable, op, value)| Condition {
                variable,
                op,
                value,
            })
    }

    proptest! {
        #[test]
        fn matches_never_panics(
            conditions in proptest::collection::vec(condition(), 0..4),
            vars in proptest::collection::btree_map(variable_name(), text(), 0..6),
        ) {
            let _ = matches(&conditions, &vars);
            let _ = validate(&conditions, &Scope::all());
        }

        #[test]
        fn ne_is_the_negation_of_eq_for_present_variables(
            variable in variable_name(),
            actual in text(),
            value in value(),
        ) {
            let vars: Vars = [(variable.clone(), actual)].into_iter().collect();
            let eq = Condition { variable: variable.clone(), op: Op::Eq, value: value.clone() };
            let ne = Condition { variable, op: Op::Ne, value };
            prop_assert_eq!(ne.holds(&vars), !eq.holds(&vars));
        }

        #[test]
        fn numbers_order_like_f64_where_f64_is_exact(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
            // Cents, so every value is exact as text and as f64 after scaling.
            let (ta, tb) = (format!("{}.{:02}", a / 100, (a % 100).abs()), format!("{}.{:02}", b / 100, (b % 100).abs()));
            let (ta, tb) = (if a < 0 && a / 100 == 0 { format!("-{ta}") } else { ta }, if b < 0 && b / 100 == 0 { format!("-{tb}") } else { tb });
            prop_assert_eq!(parse_number(&ta).unwrap().cmp(&parse_number(&tb).unwrap()), a.cmp(&b), "{} vs {}", ta, tb);
        }
    }
}
