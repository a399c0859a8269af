//! When to try a failed delivery again, and when to stop.
//!
//! Everything here is a pure function: the caller passes the clock (`now`) and
//! the randomness (`jitter_sample`), so the worker stays testable and a test
//! can pin any schedule exactly.
//!
//! The first attempt is immediate; [`RetryPolicy::schedule`] holds the delays
//! *between* attempts, so the default nine delays give ten attempts.
//! A delivery is given up when its attempts are spent, or when its next attempt
//! would come later than `max_age` after the delivery was created (a reminder
//! sent days late does more harm than none).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The DESIGN.md schedule: delays after attempts 1..=9 (attempt 1 is at once).
pub const DEFAULT_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 60 * 60),
    Duration::from_secs(5 * 60 * 60),
    Duration::from_secs(10 * 60 * 60),
    Duration::from_secs(14 * 60 * 60),
    Duration::from_secs(20 * 60 * 60),
    Duration::from_secs(24 * 60 * 60),
];

/// Default maximum age: 4 days. The default schedule adds up to 3 d 3 h 35 m,
/// and with +20 % jitter at every step to at most 3 d 18 h 42 m, so every
/// default attempt happens, with about five hours of slack for a queue backlog
/// or a server restart. Beyond that a clinic message is stale; webhooks
/// sending reminders should set a shorter one.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(4 * 24 * 60 * 60);
/// Default jitter: ±20 %, so deliveries failing together do not retry together.
pub const DEFAULT_JITTER: f64 = 0.2;
/// Longest delay a schedule may hold; also caps every computed delay, so even
/// an unvalidated policy cannot park a delivery for years.
pub const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Longest `max_age`: past a year a clinic message means nothing, and the
/// bound keeps every age in milliseconds far inside an `i64`.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Most attempts a policy may ask for.
pub const MAX_ATTEMPTS: u32 = 50;
/// Largest jitter allowed: beyond ±50 % the schedule stops meaning anything.
pub const MAX_JITTER: f64 = 0.5;
/// Longest `Retry-After` honoured; a larger one is clamped to it, so a buggy
/// or hostile receiver cannot park a delivery indefinitely (max age still applies).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a policy or a duration was refused. `field` names the offending setting
/// as the API spells it (`retry.schedule[3]`), for a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(
        "invalid duration {input:?}: {reason} (examples: \"500ms\", \"5s\", \"5m\", \"2h\", \"1d\", \"1h30m\")"
    )]
    Duration { input: String, reason: &'static str },
}

impl RetryError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        RetryError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// What is wrong, without the setting's name (a 422 names it in its own field).
    pub fn message(&self) -> String {
        match self {
            RetryError::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The setting at fault, when the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            RetryError::Invalid { field, .. } => Some(field),
            RetryError::Duration { .. } => None,
        }
    }
}

/// A webhook's retry settings (`retry` in the webhook's JSON).
///
/// Durations are written as human strings (`"500ms"`, `"5s"`, `"5m"`, `"2h"`,
/// `"1d"`, `"1h30m"`) or as a number of seconds. Missing fields take their
/// defaults; `"max_age": null` means no age limit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Delays between attempts: `schedule[0]` after the first attempt failed,
    /// and so on.
    #[serde(with = "human_durations")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["5s", "5m", "30m"]), default = json!(["5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "1d"])))]
    pub schedule: Vec<Duration>,
    /// Overrides the attempt count the schedule implies: more attempts repeat
    /// the last delay, fewer cut the schedule short.
    pub max_attempts: Option<u32>,
    /// Give up once the next attempt would be later than this after the
    /// delivery was created. `None`: no limit.
    #[serde(with = "human_duration_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "4d", default = "4d"))]
    pub max_age: Option<Duration>,
    /// Relative jitter applied to each delay: 0.2 means ±20 %.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            schedule: DEFAULT_SCHEDULE.to_vec(),
            max_attempts: None,
            max_age: Some(DEFAULT_MAX_AGE),
            jitter: DEFAULT_JITTER,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAttempt {
    /// Try again at this time.
    At(DateTime<Utc>),
    /// Stop; the delivery is failed for good (or dropped as stale).
    GiveUp(GiveUpReason),
}

/// Why a delivery will not be tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUpReason {
    /// Every attempt the policy allows was made.
    AttemptsExhausted { attempts: u32 },
    /// The next attempt would come `age` after the delivery was created,
    /// beyond `max_age`: the message is stale.
    MaxAgeExceeded { age: Duration, max_age: Duration },
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUpReason::AttemptsExhausted { attempts } => {
                write!(f, "gave up after {attempts} failed attempts")
            }
            GiveUpReason::MaxAgeExceeded { age, max_age } => write!(
                f,
                "dropped as stale: the next attempt would be {} after the event, beyond the maximum age of {}",
                format_duration(*age),
                format_duration(*max_age)
            ),
        }
    }
}

impl RetryPolicy {
    /// Checks every setting; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), RetryError> {
        for (i, delay) in self.schedule.iter().enumerate() {
            if *delay > MAX_DELAY {
                return Err(RetryError::invalid(
                    format!("retry.schedule[{i}]"),
                    format!(
                        "delay {} is longer than the maximum of {}",
                        format_duration(*delay),
                        format_duration(MAX_DELAY)
                    ),
                ));
            }
        }
        if let Some(n) = self.max_attempts {
            if !(1..=MAX_ATTEMPTS).contains(&n) {
                return Err(RetryError::invalid(
                    "retry.max_attempts",
                    format!("must be 1 to {MAX_ATTEMPTS}, got {n}"),
                ));
            }
            if n > 1 && self.schedule.is_empty() {
                return Err(RetryError::invalid(
                    "retry.schedule",
                    format!("is empty, so there is no delay to repeat for {n} attempts"),
                ));
            }
        } else if self.schedule.len() >= MAX_ATTEMPTS as usize {
            return Err(RetryError::invalid(
                "retry.schedule",
                format!(
                    "{} delays make more than the maximum of {MAX_ATTEMPTS} attempts",
                    self.schedule.len()
                ),
            ));
        }
        if self.max_age == Some(Duration::ZERO) {
            return Err(RetryError::invalid(
                "retry.max_age",
                "must be longer than zero (use null for no limit)",
            ));
        }
        if let Some(max_age) = self.max_age
            && max_age > MAX_MAX_AGE
        {
            return Err(RetryError::invalid(
                "retry.max_age",
                format!(
                    "{} is longer than the maximum of {} (use null for no limit)",
                    format_duration(max_age),
                    format_duration(MAX_MAX_AGE)
                ),
            ));
        }
        if !(0.0..=MAX_JITTER).contains(&self.jitter) {
            return Err(RetryError::invalid(
                "retry.jitter",
                format!("must be 0 to {MAX_JITTER}, got {}", self.jitter),
            ));
        }
        Ok(())
    }

    /// Attempts in all, the first one included.
    pub fn total_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or_else(|| {
            u32::try_from(self.schedule.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1)
        })
    }

    /// After attempt number `attempts_made` (1-based; 0 is read as 1) failed:
    /// when to try next, or why to stop.
    ///
    /// `retry_after` is the receiver's `Retry-After`, if it sent one (see
    /// [`parse_retry_after`]). The later of it (clamped to [`MAX_RETRY_AFTER`])
    /// and the scheduled delay wins: the receiver asked us to wait *at least*
    /// that long, and a short or zero `Retry-After` must not let a struggling
    /// endpoint be hammered, or burn the attempts in seconds.
    ///
    /// `jitter_sample` is uniform in `[0, 1)`, supplied by the caller: 0.5
    /// gives the exact schedule, 0 the shortest and ~1 the longest delay.
    pub fn next_attempt(
        &self,
        attempts_made: u32,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
        jitter_sample: f64,
    ) -> NextAttempt {
        let attempts_made = attempts_made.max(1);
        if attempts_made >= self.total_attempts() {
            return NextAttempt::GiveUp(GiveUpReason::AttemptsExhausted {
                attempts: attempts_made,
            });
        }
        let index = (attempts_made - 1) as usize;
        let Some(&scheduled) = self.schedule.get(index).or(self.schedule.last()) else {
            // Only reachable by an unvalidated policy: more attempts than an
            // empty schedule can space out.
            return NextAttempt::GiveUp(GiveUpReason::AttemptsExhausted {
                attempts: attempts_made,
            });
        };

        let mut delay = jittered(scheduled.min(MAX_DELAY), self.jitter, jitter_sample);
        if let Some(asked) = retry_after {
            delay = delay.max(asked.min(MAX_RETRY_AFTER));
        }
        // Both bounded by a week above, so the conversion cannot fail.
        let at = now + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::MAX);

        if let Some(max_age) = self.max_age {
            // A created_at in the future (clock skew) counts as age zero.
            let age = (at - created_at).to_std().unwrap_or(Duration::ZERO);
            if age > max_age {
                return NextAttempt::GiveUp(GiveUpReason::MaxAgeExceeded { age, max_age });
            }
        }
        NextAttempt::At(at)
    }
}

/// `delay` scaled by a factor in `[1 - jitter, 1 + jitter)`, linear in the
/// sample. Out-of-range inputs are clamped rather than trusted, so this never
/// panics.
fn jittered(delay: Duration, jitter: f64, sample: f64) -> Duration {
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, MAX_JITTER)
    } else {
        0.0
    };
    let sample = if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.5
    };
    // Exactly 1.0 for a sample of 0.5, so the schedule is reproducible in tests.
    let factor = 1.0 + jitter * (2.0 * sample - 1.0);
    delay.mul_f64(factor)
}

/// Success is any 2xx reply; everything else is retried.
pub fn is_success(status: u16) -> bool {
    (200..=299).contains(&status)
}

/// Reads a `Retry-After` value: delta seconds (`"120"`) or an HTTP date.
/// A date in the past, or negative seconds, means "now" (zero). Anything else
/// is `None`, and the schedule applies. Not clamped here, so the caller can log
/// what the receiver asked for; [`RetryPolicy::next_attempt`] clamps.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Some(digits) = value.strip_prefix('-') {
        return (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(Duration::ZERO);
    }
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits, so parsing fails only on overflow: a huge wait.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let date: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

/// Units from largest to smallest; `format_duration` writes them in this order.
const UNITS: [(&str, u128); 7] = [
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Writes a duration the way people write them: `"5s"`, `"1h30m"`, `"2d"`,
/// `"1s500ms"`, `"0s"`. [`parse_duration`] reads it back exactly.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let mut rest = d.as_nanos();
    let mut out = String::new();
    for (unit, nanos) in UNITS {
        let count = rest / nanos;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(unit);
            rest %= nanos;
        }
    }
    out
}

/// Reads `"500ms"`, `"5s"`, `"5m"`, `"2h"`, `"1d"`, combinations such as
/// `"1h30m"` or `"1h 30m"`, and a bare number of seconds (`"90"`).
/// Units: d, h, m, s, ms, us, ns. Fractions (`"1.5h"`) are refused; write `"1h30m"`.
pub fn parse_duration(s: &str) -> Result<Duration, RetryError> {
    let fail = |reason| RetryError::Duration {
        input: s.to_owned(),
        reason,
    };
    let text = s.trim();
    if text.is_empty() {
        return Err(fail("empty"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs = text.parse::<u64>().map_err(|_| fail("too large"))?;
        return Ok(Duration::from_secs(secs));
    }

    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(fail("expected a number"));
        }
        let count: u128 = rest[..digits_end].parse().map_err(|_| fail("too large"))?;
        rest = &rest[digits_end..];
        let unit_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        if unit.is_empty() {
            return Err(fail("a number needs a unit"));
        }
        let (_, nanos) = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(|| fail("unknown unit"))?;
        total = count
            .checked_mul(*nanos)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| fail("too large"))?;
        rest = rest[unit_end..].trim_start();
    }

    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| fail("too large"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// A duration on the wire: a human string, or a whole number of seconds.
struct HumanDuration(Duration);

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration such as \"5s\", \"5m\", \"2h\", \"1d\", or a number of seconds",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_secs(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                u64::try_from(v)
                    .map(|secs| HumanDuration(Duration::from_secs(secs)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

mod human_durations {
    use super::HumanDuration;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &[Duration], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(value.iter().map(|d| HumanDuration(*d)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Duration>, D::Error> {
        let list = Vec::<HumanDuration>::deserialize(deserializer)?;
        Ok(list.into_iter().map(|d| d.0).collect())
    }
}

mod human_duration_option {
    use super::HumanDuration;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.map(HumanDuration).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<HumanDuration>::deserialize(deserializer)?.map(|d| d.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(60 * 60);
    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 9, 0, 0).unwrap()
    }

    fn at(d: Duration) -> DateTime<Utc> {
        t0() + chrono::TimeDelta::from_std(d).unwrap()
    }

    /// Runs a policy from the first attempt to the end, failing every time
    /// with the given jitter sample; returns the delays between attempts.
    fn delays(policy: &RetryPolicy, sample: f64) -> (Vec<Duration>, GiveUpReason) {
        let mut now = t0();
        let mut out = Vec::new();
        for attempt in 1.. {
            match policy.next_attempt(attempt, t0(), now, None, sample) {
                NextAttempt::At(next) => {
                    out.push((next - now).to_std().unwrap());
                    now = next;
                }
                NextAttempt::GiveUp(reason) => return (out, reason),
            }
        }
        unreachable!()
    }

    #[test]
    fn the_default_schedule_is_ten_attempts_as_designed() {
        let policy = RetryPolicy::default();
        policy.validate().unwrap();
        assert_eq!(policy.total_attempts(), 10);
        let (got, reason) = delays(&policy, 0.5);
        let expected = [
            5 * SECOND,
            5 * MINUTE,
            30 * MINUTE,
            2 * HOUR,
            5 * HOUR,
            10 * HOUR,
            14 * HOUR,
            20 * HOUR,
            24 * HOUR,
        ];
        assert_eq!(got, expected);
        assert_eq!(reason, GiveUpReason::AttemptsExhausted { attempts: 10 });
        assert_eq!(reason.to_string(), "gave up after 10 failed attempts");
    }

    #[test]
    fn jitter_stretches_each_delay_by_twenty_percent_either_way() {
        let policy = RetryPolicy::default();
        let (low, _) = delays(&policy, 0.0);
        let (high, _) = delays(&policy, 0.999_999);
        for ((lo, hi), d) in low.iter().zip(&high).zip(DEFAULT_SCHEDULE) {
            assert_eq!(*lo, d.mul_f64(0.8));
            assert!(
                *hi > d.mul_f64(1.199_99) && *hi <= d.mul_f64(1.2),
                "{hi:?} for {d:?}"
            );
        }
        assert_eq!(low[0], 4 * SECOND);
        assert_eq!(low[8], Duration::from_secs(24 * 3600 * 8 / 10));
    }

    #[test]
    fn the_default_max_age_lets_the_whole_default_schedule_run() {
        let (high, reason) = delays(&RetryPolicy::default(), 0.999_999);
        assert_eq!(high.len(), 9);
        assert_eq!(reason, GiveUpReason::AttemptsExhausted { attempts: 10 });
        assert!(high.iter().sum::<Duration>() < DEFAULT_MAX_AGE);
    }

    #[test]
    fn max_attempts_repeats_the_last_delay_or_cuts_the_schedule() {
        let policy = RetryPolicy {
            schedule: vec![10 * SECOND, MINUTE],
            max_attempts: Some(5),
            max_age: None,
            jitter: 0.0,
        };
        policy.validate().unwrap();
        assert_eq!(policy.total_attempts(), 5);
        let (got, reason) = delays(&policy, 0.9);
        assert_eq!(got, [10 * SECOND, MINUTE, MINUTE, MINUTE]);
        assert_eq!(reason, GiveUpReason::AttemptsExhausted { attempts: 5 });

        let short = RetryPolicy {
            max_attempts: Some(3),
            ..RetryPolicy::default()
        };
        let (got, _) = delays(&short, 0.5);
        assert_eq!(got, [5 * SECOND, 5 * MINUTE]);

        let once = RetryPolicy {
            max_attempts: Some(1),
            ..RetryPolicy::default()
        };
        assert_eq!(delays(&once, 0.5).0, []);
    }

    #[test]
    fn a_custom_schedule_sets_the_attempt_count() {
        let policy = RetryPolicy {
            schedule: vec![MINUTE, 10 * MINUTE, HOUR],
            ..RetryPolicy::default()
        };
        assert_eq!(policy.total_attempts(), 4);
        assert_eq!(delays(&policy, 0.5).0, [MINUTE, 10 * MINUTE, HOUR]);
        let none = RetryPolicy {
            schedule: vec![],
            ..RetryPolicy::default()
        };
        none.validate().unwrap();
        assert_eq!(none.total_attempts(), 1);
        assert_eq!(delays(&none, 0.5).0, []);
    }

    #[test]
    fn retry_after_in_seconds_postpones_but_never_hastens() {
        let policy = RetryPolicy::default();
        let now = t0();
        let asked = parse_retry_after("120", now);
        assert_eq!(asked, Some(120 * SECOND));
        // After attempt 1 the schedule says 5 s; the receiver asks for 2 min.
        assert_eq!(
            policy.next_attempt(1, t0(), now, asked, 0.5),
            NextAttempt::At(at(120 * SECOND))
        );
        // After attempt 2 the schedule says 5 min, longer than 2 min.
        assert_eq!(
            policy.next_attempt(2, t0(), now, asked, 0.5),
            NextAttempt::At(at(5 * MINUTE))
        );
        assert_eq!(
            policy.next_attempt(1, t0(), now, Some(Duration::ZERO), 0.5),
            NextAttempt::At(at(5 * SECOND))
        );
    }

    #[test]
    fn retry_after_as_an_http_date_is_read_and_clamped() {
        let now = t0(); // Sat, 01 Mar 2025 09:00:00 GMT
        assert_eq!(
            parse_retry_after("Sat, 01 Mar 2025 09:10:00 GMT", now),
            Some(10 * MINUTE)
        );
        assert_eq!(
            parse_retry_after("Sat, 01 Mar 2025 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        let in_a_week = parse_retry_after("Sat, 08 Mar 2025 09:00:00 GMT", now);
        assert_eq!(in_a_week, Some(7 * DAY));
        let policy = RetryPolicy {
            max_age: None,
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.next_attempt(1, t0(), now, in_a_week, 0.5),
            NextAttempt::At(at(MAX_RETRY_AFTER))
        );
        assert_eq!(
            policy.next_attempt(
                1,
                t0(),
                now,
                parse_retry_after("99999999999999999999999", now),
                0.5
            ),
            NextAttempt::At(at(MAX_RETRY_AFTER))
        );
    }

    #[test]
    fn retry_after_garbage_is_ignored_and_negative_means_now() {
        let now = t0();
        for garbage in ["", "soon", "1.5", "12s", "- 5", "-", "Tomorrow, 10:00"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
        assert_eq!(parse_retry_after("-5", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    }

    #[test]
    fn a_delivery_whose_next_attempt_would_be_stale_is_dropped() {
        let policy = RetryPolicy {
            max_age: Some(HOUR),
            ..RetryPolicy::default()
        };
        // Attempt 4 failed 40 min after creation; the next is due 2 h later.
        let now = at(40 * MINUTE);
        let NextAttempt::GiveUp(reason) = policy.next_attempt(4, t0(), now, None, 0.5) else {
            panic!("expected to give up")
        };
        assert_eq!(
            reason,
            GiveUpReason::MaxAgeExceeded {
                age: 2 * HOUR + 40 * MINUTE,
                max_age: HOUR
            }
        );
        assert_eq!(
            reason.to_string(),
            "dropped as stale: the next attempt would be 2h40m after the event, beyond the maximum age of 1h"
        );
        // Attempt 2 failed at the same time: 5 min later is still within the hour.
        assert_eq!(
            policy.next_attempt(2, t0(), now, None, 0.5),
            NextAttempt::At(at(45 * MINUTE))
        );
        // A Retry-After past the limit makes the delivery stale too.
        assert!(matches!(
            policy.next_attempt(2, t0(), now, Some(30 * MINUTE), 0.5),
            NextAttempt::GiveUp(GiveUpReason::MaxAgeExceeded { .. })
        ));
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        let field = |p: RetryPolicy| p.validate().unwrap_err().field().unwrap().to_owned();
        let mut schedule = DEFAULT_SCHEDULE.to_vec();
        schedule[3] = 8 * DAY;
        assert_eq!(
            field(RetryPolicy {
                schedule,
                ..RetryPolicy::default()
            }),
            "retry.schedule[3]"
        );
        for n in [0, 51] {
            assert_eq!(
                field(RetryPolicy {
                    max_attempts: Some(n),
                    ..RetryPolicy::default()
                }),
                "retry.max_attempts"
            );
        }
        for j in [-0.1, 0.51, f64::NAN] {
            assert_eq!(
                field(RetryPolicy {
                    jitter: j,
                    ..RetryPolicy::default()
                }),
                "retry.jitter"
            );
        }
        assert_eq!(
            field(RetryPolicy {
                max_age: Some(Duration::ZERO),
                ..RetryPolicy::default()
            }),
            "retry.max_age"
        );
        assert_eq!(
            field(RetryPolicy {
                schedule: vec![],
                max_attempts: Some(3),
                ..RetryPolicy::default()
            }),
            "retry.schedule"
        );
        let err = RetryPolicy {
            max_attempts: Some(0),
            ..RetryPolicy::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "retry.max_attempts: must be 1 to 50, got 0"
        );
        let week = RetryPolicy {
            schedule: vec![Duration::ZERO, 7 * DAY],
            max_attempts: Some(50),
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        week.validate().unwrap();
    }

    #[test]
    fn success_is_any_2xx() {
        for ok in [200, 201, 204, 299] {
            assert!(is_success(ok));
        }
        for failed in [0, 100, 199, 300, 301, 304, 400, 410, 429, 500, 503] {
            assert!(!is_success(failed));
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        let cases = [
            ("500ms", 500 * Duration::from_millis(1)),
            ("5s", 5 * SECOND),
            ("5m", 5 * MINUTE),
            ("2h", 2 * HOUR),
            ("1d", DAY),
            ("1h30m", 90 * MINUTE),
            ("1h 30m", 90 * MINUTE),
            ("90", 90 * SECOND),
            ("0", Duration::ZERO),
            (" 7d ", 7 * DAY),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
        for bad in [
            "",
            "5x",
            "h",
            "1.5h",
            "-5s",
            "5s5",
            "1 d",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(format_duration(90 * MINUTE), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(DAY + 2 * HOUR), "1d2h");
    }

    #[test]
    fn a_policy_reads_from_json_with_defaults_and_writes_human_strings() {
        let policy: RetryPolicy =
            serde_json::from_str(r#"{"schedule": ["5s", 300, "1h30m"], "max_age": "1d"}"#).unwrap();
        assert_eq!(policy.schedule, [5 * SECOND, 5 * MINUTE, 90 * MINUTE]);
        assert_eq!(policy.max_age, Some(DAY));
        assert_eq!(policy.jitter, DEFAULT_JITTER);
        assert_eq!(policy.max_attempts, None);

        let empty: RetryPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, RetryPolicy::default());
        let unlimited: RetryPolicy = serde_json::from_str(r#"{"max_age": null}"#).unwrap();
        assert_eq!(unlimited.max_age, None);

        let json = serde_json::to_value(RetryPolicy::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "schedule": ["5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "1d"],
                "max_attempts": null,
                "max_age": "4d",
                "jitter": 0.2
            })
        );
        let back: RetryPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, RetryPolicy::default());

        for bad in [
            r#"{"retries": 3}"#,
            r#"{"schedule": ["5 parsecs"]}"#,
            r#"{"schedule": [-5]}"#,
        ] {
            assert!(serde_json::from_str::<RetryPolicy>(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_duration_round_trips_through_its_text(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn whole_second_durations_round_trip_through_json(secs in 0u64..=7 * 86_400) {
            let policy = RetryPolicy { schedule: vec![Duration::from_secs(secs)], ..RetryPolicy::default() };
            let json = serde_json::to_string(&policy).unwrap();
            prop_assert_eq!(serde_json::from_str::<RetryPolicy>(&json).unwrap(), policy);
        }

        #[test]
        fn the_next_attempt_is_never_sooner_than_the_jittered_floor(
            attempt in 1u32..10,
            sample in 0.0f64..1.0,
            retry_after in proptest::option::of(0u64..200_000),
        ) {
            let policy = RetryPolicy { max_age: None, ..RetryPolicy::default() };
            let retry_after = retry_after.map(Duration::from_secs);
            let NextAttempt::At(next) = policy.next_attempt(attempt, t0(), t0(), retry_after, sample) else {
                return Err(TestCaseError::fail("gave up early"));
            };
            let delay = (next - t0()).to_std().unwrap();
            let scheduled = DEFAULT_SCHEDULE[attempt as usize - 1];
            prop_assert!(delay >= scheduled.mul_f64(0.8));
            prop_assert!(delay <= scheduled.mul_f64(1.2).max(MAX_RETRY_AFTER));
            if let Some(asked) = retry_after {
                prop_assert!(delay >= asked.min(MAX_RETRY_AFTER));
            }
        }
    }
}
