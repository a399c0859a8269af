//! Scheduled webhooks (reminders): a webhook whose deliveries fall due at an offset from a
//! date-and-time variable of their event (`appointment_start` less 24 h), and what a later
//! event for the same appointment does to a reminder still waiting.
//!
//! Decisions a reader might otherwise undo:
//! - The anchor is one variable of kind date-and-time (RFC 3339, with its UTC offset), never a
//!   date and a time read separately: `appointment_date` and `appointment_start_time` are shown
//!   in the clinic's own formats, and only the clinic's time zone makes them an instant. The
//!   catalog's `appointment_start` is that instant, computed where the clinic is known (see
//!   `clinic::vars_for`), so the due time is exact whatever the clinic's formats.
//! - A reminder is tied to its appointment by `appointment_id`. A later event for the same
//!   appointment acts on the webhook's reminders still pending ([`effect_on_pending`]): a
//!   cancellation (or delete) withdraws them; an event the webhook itself wants replaces them
//!   (its own delivery carries the new time and the new data); any other event that carries
//!   the anchor moves them to the new time. Withdrawn deliveries end `superseded`, never sent.
//! - A due time already past is sent at once or skipped, as the webhook says
//!   ([`IfPast`]); skipping is the default, because a late reminder misleads (a "see you
//!   tomorrow" an hour before, or a reminder for last week's appointment when its record is
//!   edited). A skipped delivery is logged as `superseded`, with the reason, rather than not
//!   written at all, so the admin can see why no reminder went.

use std::fmt;

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::Vars;
use crate::catalog::{Presence, Scope, VarType};

/// The longest offset either way: a year and a day.
pub const MAX_OFFSET_SECS: i64 = 366 * 86_400;

/// The variable that ties a scheduled delivery to its appointment.
pub const APPOINTMENT_KEY: &str = "appointment_id";

/// When a webhook's deliveries fall due: `offset` from the date and time in variable `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A date-and-time variable every subscribed event carries, e.g. `appointment_start`, or
    /// `current_date_time` (when the event happened).
    #[cfg_attr(feature = "openapi", schema(example = "appointment_start"))]
    pub at: String,
    /// Signed, in days, hours, minutes and seconds: `-24h`, `+2h`, `-1d12h`, `90m`, `0s`.
    #[cfg_attr(feature = "openapi", schema(example = "-24h"))]
    pub offset: String,
    /// What to do when the due time has already passed when the event arrives (or when a
    /// move puts it in the past).
    #[serde(default)]
    pub if_past: IfPast,
}

/// A due time already past: send at once, or skip (logged as `superseded`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IfPast {
    Send,
    #[default]
    Skip,
}

impl IfPast {
    pub fn as_str(self) -> &'static str {
        match self {
            IfPast::Send => "send",
            IfPast::Skip => "skip",
        }
    }
}

/// A schedule problem, naming its field (`schedule.at`, `schedule.offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Reads an offset: an optional sign, then one or more `<number><unit>` with units `d`, `h`,
/// `m`, `s` (largest first, each once), or a bare `0`. Answers seconds.
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let help = "write it like -24h, +2h, -1d12h, 90m or 0s (units d, h, m, s)";
    let t = text.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(format!("the offset is empty; {help}"));
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut last_unit = usize::MAX;
    for c in rest.chars() {
        if c.is_ascii_digit() {
            if digits.len() >= 9 {
                return Err(format!("the offset is too large; {help}"));
            }
            digits.push(c);
            continue;
        }
        let (rank, secs) = match c {
            'd' => (0, 86_400),
            'h' => (1, 3_600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err(format!("\"{c}\" is not a unit; {help}")),
        };
        if digits.is_empty() {
            return Err(format!("a number must come before \"{c}\"; {help}"));
        }
        if last_unit != usize::MAX && rank <= last_unit {
            return Err(format!("give each unit once, largest first; {help}"));
        }
        last_unit = rank;
        let n: i64 = digits.parse().map_err(|_| format!("bad number; {help}"))?;
        digits.clear();
        total = total.saturating_add(n.saturating_mul(secs));
    }
    if !digits.is_empty() {
        return Err(format!("the number {digits} needs a unit; {help}"));
    }
    if total > MAX_OFFSET_SECS {
        return Err(format!(
            "the offset may be at most {} days either way",
            MAX_OFFSET_SECS / 86_400
        ));
    }
    Ok(sign * total)
}

/// `-24h`, `+2h30m`, `0s`: seconds as an offset is written.
pub fn format_offset(secs: i64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::from(if secs < 0 { "-" } else { "+" });
    let mut left = secs.unsigned_abs();
    for (unit, size) in [('d', 86_400u64), ('h', 3_600), ('m', 60), ('s', 1)] {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    out
}

impl Schedule {
    /// Checks the schedule against the webhook's events: the variable exists in every one of
    /// them and is a date and time; the offset reads.
    pub fn validate(&self, scope: &Scope) -> Result<(), ScheduleError> {
        let at = self.at.trim();
        let err = |field, message: String| ScheduleError { field, message };
        if at.is_empty() {
            return Err(err(
                "schedule.at",
                "name the date-and-time variable to count from, e.g. appointment_start".into(),
            ));
        }
        let date_times: Vec<&str> = scope
            .variable_names()
            .into_iter()
            .filter(|n| scope.var_type(n) == Some(VarType::DateTime))
            .filter(|n| scope.presence(n) == Presence::All)
            .collect();
        let hint = if date_times.is_empty() {
            "these events have no date-and-time variable in common".to_string()
        } else {
            format!("choose one of: {}", date_times.join(", "))
        };
        match (scope.presence(at), scope.var_type(at)) {
            (Presence::None, _) => {
                return Err(err(
                    "schedule.at",
                    format!("no subscribed event carries a variable \"{at}\"; {hint}"),
                ));
            }
            (Presence::Some, _) => {
                let lacking = scope.events_lacking(at);
                return Err(err(
                    "schedule.at",
                    format!(
                        "{at} is missing from {} of the subscribed events ({}); every event of a scheduled webhook must carry it; {hint}",
                        lacking.len(),
                        lacking
                            .iter()
                            .take(3)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            (Presence::All, Some(VarType::DateTime)) => {}
            (Presence::All, ty) => {
                return Err(err(
                    "schedule.at",
                    format!(
                        "{at} is {}, not a date and time; {hint}",
                        ty.map_or("unknown", |t| t.describe())
                    ),
                ));
            }
        }
        parse_offset(&self.offset).map_err(|m| err("schedule.offset", m))?;
        Ok(())
    }

    /// The offset in seconds (0 if it does not read; [`Schedule::validate`] refused that).
    pub fn offset_secs(&self) -> i64 {
        parse_offset(&self.offset).unwrap_or(0)
    }

    /// When a delivery for an event with snapshot `vars` falls due (unix ms), or why it cannot
    /// be scheduled (the variable is empty or not a date and time: a pushed event may lack it).
    pub fn due_at(&self, vars: &Vars) -> Result<i64, String> {
        let at = self.at.trim();
        let text = vars.get(at).map(String::as_str).unwrap_or("");
        if text.is_empty() {
            return Err(format!("the event carries no {at} to count from"));
        }
        let t = DateTime::parse_from_rfc3339(text)
            .map_err(|_| format!("{at} is not a date and time (RFC 3339)"))?;
        Ok(t.timestamp_millis()
            .saturating_add(self.offset_secs().saturating_mul(1000)))
    }

    /// The due time of a new delivery, decided against `now`.
    pub fn plan(&self, vars: &Vars, now: i64) -> Planned {
        match self.due_at(vars) {
            Err(why) => Planned::Skip(format!("not scheduled: {why}")),
            Ok(due) if due >= now => Planned::At(due),
            Ok(due) => match self.if_past {
                IfPast::Send => Planned::At(now),
                IfPast::Skip => Planned::Skip(format!(
                    "skipped: its time ({}) had passed when the event arrived, and the webhook skips late deliveries (schedule.if_past = skip)",
                    rfc3339(due)
                )),
            },
        }
    }

    /// A short phrase for the UI and logs: `24h before appointment_start`.
    pub fn describe(&self) -> String {
        let secs = self.offset_secs();
        let amount = format_offset(secs.abs())
            .trim_start_matches('+')
            .to_string();
        match secs.signum() {
            0 => format!("at {}", self.at),
            -1 => format!("{amount} before {}", self.at),
            _ => format!("{amount} after {}", self.at),
        }
    }
}

/// What a scheduled webhook does with a new event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// Due at this time (unix ms).
    At(i64),
    /// Written as `superseded` with this reason, never sent.
    Skip(String),
}

/// What a later event does to a scheduled webhook's deliveries still pending for the same
/// appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Withdrawn: they end `superseded`, with this reason.
    Withdraw(String),
    /// Moved to this due time (unix ms).
    Retime(i64),
    /// Left as they are.
    Keep,
}

/// Whether an event cancels its appointment: the appointment was deleted, or its status is
/// now `cancelled`.
pub fn cancels_appointment(event_name: &str, vars: &Vars) -> bool {
    event_name == "kc_appointment_delete"
        || vars.get("appointment_status").map(String::as_str) == Some("cancelled")
}

/// The appointment a scheduled delivery of this event belongs to, if any.
pub fn appointment_of(vars: &Vars) -> Option<&str> {
    vars.get(APPOINTMENT_KEY)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

/// What event `event_name` (snapshot `vars`, `event_id`) does to the pending deliveries of a
/// webhook with `schedule` for the same appointment; `wanted` says whether the webhook takes
/// this event itself (subscribed, conditions hold).
pub fn effect_on_pending(
    schedule: &Schedule,
    event_name: &str,
    event_id: &str,
    vars: &Vars,
    wanted: bool,
    now: i64,
) -> Effect {
    if cancels_appointment(event_name, vars) {
        let what = if event_name == "kc_appointment_delete" {
            "deleted"
        } else {
            "cancelled"
        };
        return Effect::Withdraw(format!(
            "withdrawn: the appointment was {what} ({event_name}, event {event_id})"
        ));
    }
    if wanted {
        return Effect::Withdraw(format!(
            "replaced: a later {event_name} for the same appointment (event {event_id}) is scheduled in its place"
        ));
    }
    match (schedule.due_at(vars), schedule.plan(vars, now)) {
        // The event does not carry the anchor: it says nothing about the time.
        (Err(_), _) => Effect::Keep,
        (_, Planned::At(t)) => Effect::Retime(t),
        (Ok(due), Planned::Skip(_)) => Effect::Withdraw(format!(
            "withdrawn: the appointment moved ({event_name}, event {event_id}) and its new time ({}) has passed (schedule.if_past = skip)",
            rfc3339(due)
        )),
    }
}

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(at: &str, offset: &str, if_past: IfPast) -> Schedule {
        Schedule {
            at: at.into(),
            offset: offset.into(),
            if_past,
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn offsets_read_with_sign_and_units() {
        assert_eq!(parse_offset("-24h"), Ok(-86_400));
        assert_eq!(parse_offset("+2h"), Ok(7_200));
        assert_eq!(parse_offset("90m"), Ok(5_400));
        assert_eq!(parse_offset("-1d12h"), Ok(-129_600));
        assert_eq!(parse_offset("3s"), Ok(3));
        assert_eq!(parse_offset("0"), Ok(0));
        assert_eq!(parse_offset("-0s"), Ok(0));
        for bad in [
            "",
            "-",
            "24",
            "h",
            "24x",
            "1h1d",
            "1h1h",
            "2 h",
            "400d",
            "9999999999s",
        ] {
            assert!(parse_offset(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(format_offset(-86_400), "-1d");
        assert_eq!(format_offset(9_000), "+2h30m");
        assert_eq!(format_offset(0), "0s");
    }

    #[test]
    fn validation_names_the_field_and_wants_a_date_time_every_event_carries() {
        let appts = Scope::new(&["kc_appointment_book", "kc_appointment_update"]).unwrap();
        assert!(
            sched("appointment_start", "-24h", IfPast::Skip)
                .validate(&appts)
                .is_ok()
        );
        let e = sched("appointment_date", "-24h", IfPast::Skip)
            .validate(&appts)
            .unwrap_err();
        assert_eq!(e.field, "schedule.at");
        assert!(e.message.contains("not a date and time"), "{e}");
        assert!(e.message.contains("appointment_start"), "{e}");
        let e = sched("appointment_strat", "-24h", IfPast::Skip)
            .validate(&appts)
            .unwrap_err();
        assert_eq!(e.field, "schedule.at");
        let mixed = Scope::new(&["kc_appointment_book", "kc_patient_add"]).unwrap();
        let e = sched("appointment_start", "-24h", IfPast::Skip)
            .validate(&mixed)
            .unwrap_err();
        assert!(e.message.contains("kc_patient_add"), "{e}");
        let e = sched("appointment_start", "yesterday", IfPast::Skip)
            .validate(&appts)
            .unwrap_err();
        assert_eq!(e.field, "schedule.offset");
        // When the event happened is a date and time every event carries.
        assert!(
            sched("current_date_time", "+2h", IfPast::Send)
                .validate(&Scope::all())
                .is_ok()
        );
    }

    #[test]
    fn due_time_is_the_instant_plus_the_offset_and_past_times_follow_if_past() {
        let v = vars(&[("appointment_start", "2026-12-02T09:30:00+01:00")]);
        let start = DateTime::parse_from_rfc3339("2026-12-02T09:30:00+01:00")
            .unwrap()
            .timestamp_millis();
        let s = sched("appointment_start", "-24h", IfPast::Skip);
        assert_eq!(s.due_at(&v), Ok(start - 86_400_000));
        assert_eq!(
            s.plan(&v, start - 90_000_000),
            Planned::At(start - 86_400_000)
        );
        assert!(
            matches!(s.plan(&v, start - 3_600_000), Planned::Skip(m) if m.contains("had passed"))
        );
        let send = sched("appointment_start", "-24h", IfPast::Send);
        assert_eq!(send.plan(&v, start), Planned::At(start));
        assert!(
            matches!(s.plan(&vars(&[]), 0), Planned::Skip(m) if m.contains("no appointment_start"))
        );
        assert_eq!(s.describe(), "1d before appointment_start");
    }

    #[test]
    fn a_later_event_withdraws_replaces_or_moves_pending_reminders() {
        let s = sched("appointment_start", "-1h", IfPast::Skip);
        let now = 0;
        let cancelled = vars(&[("appointment_status", "cancelled")]);
        assert!(matches!(
            effect_on_pending(&s, "kc_appointment_status_change", "e1", &cancelled, false, now),
            Effect::Withdraw(m) if m.contains("cancelled")
        ));
        assert!(matches!(
            effect_on_pending(&s, "kc_appointment_delete", "e1", &vars(&[]), false, now),
            Effect::Withdraw(m) if m.contains("deleted")
        ));
        let moved = vars(&[
            ("appointment_status", "booked"),
            ("appointment_start", "1970-01-01T05:00:00Z"),
        ]);
        assert_eq!(
            effect_on_pending(&s, "kc_appointment_update", "e2", &moved, false, now),
            Effect::Retime(4 * 3_600_000)
        );
        assert!(matches!(
            effect_on_pending(&s, "kc_appointment_update", "e2", &moved, true, now),
            Effect::Withdraw(m) if m.contains("replaced")
        ));
        // Moved into the past, with skip: withdrawn.
        assert!(matches!(
            effect_on_pending(&s, "kc_appointment_update", "e2", &moved, false, 5 * 3_600_000),
            Effect::Withdraw(m) if m.contains("moved")
        ));
        // An event without the anchor says nothing about the time.
        assert_eq!(
            effect_on_pending(
                &s,
                "kc_encounter_add",
                "e3",
                &vars(&[("appointment_id", "7")]),
                false,
                now
            ),
            Effect::Keep
        );
    }
}
