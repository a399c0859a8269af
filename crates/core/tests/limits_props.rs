//! No webhook that validation accepts can make the dispatcher's arithmetic
//! panic: whatever numbers an API call carries, an accepted spec turns into
//! bounded pacing figures, timeouts and retry times.

use std::time::Duration;

use carehook_core::retry::MAX_MAX_AGE;
use carehook_core::webhook::{MAX_RATE, MIN_RATE, WebhookSpec};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

/// Numbers from every corner: tiny, huge, subnormal, negative, and plain.
fn any_rate() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("JSON carries finite numbers", |f| f.is_finite()),
        0.0005f64..20_000.0,
        Just(1e-300),
        Just(5e-324),
        Just(MIN_RATE),
        Just(MAX_RATE),
        Just(1e308),
    ]
}

/// Seconds, mostly near the bounds that matter (a week, a year).
fn any_secs() -> impl Strategy<Value = u64> {
    prop_oneof![
        30 => 0u64..(7 * 86_400),
        6 => 0u64..(8 * 86_400),
        2 => 0u64..(400 * 86_400),
        1 => any::<u64>(),
        1 => Just(u64::MAX),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn an_accepted_spec_schedules_without_panicking(
        rate in proptest::option::of(any_rate()),
        max_in_flight in prop_oneof![1 => any::<u32>(), 5 => 0u32..300],
        timeout_ms in prop_oneof![1 => any::<u64>(), 5 => 0u64..70_000],
        schedule in proptest::collection::vec(any_secs(), 0..10),
        max_attempts in proptest::option::of(prop_oneof![any::<u32>(), 0u32..60]),
        max_age in proptest::option::of(any_secs()),
        jitter in prop_oneof![1 => any::<f64>().prop_filter("finite", |f| f.is_finite()), 4 => 0.0f64..0.6],
        attempts_made in any::<u32>(),
        created_ms in 0i64..4_000_000_000_000,
        elapsed_ms in 0i64..(400 * 86_400_000),
        retry_after in proptest::option::of(any_secs()),
        sample in any::<f64>(),
    ) {
        let spec: WebhookSpec = serde_json::from_value(json!({
            "name": "n", "events": ["kc_patient_add"], "url": "https://x.org/",
            "rate_limit": rate, "max_in_flight": max_in_flight, "timeout_ms": timeout_ms,
            "retry": {"schedule": schedule, "max_attempts": max_attempts,
                      "max_age": max_age, "jitter": jitter},
        })).unwrap();
        let Ok((compiled, _)) = spec.compile() else {
            return Ok(());
        };
        let limits = compiled.limits;

        // What the dispatcher's pacer and shell compute from them.
        prop_assert!((1..=256).contains(&limits.max_in_flight));
        if let Some(rate) = limits.rate {
            let interval = rate.interval();
            prop_assert!(interval >= Duration::from_micros(100));
            prop_assert!(interval <= Duration::from_secs(1000));
            let tolerance = interval.checked_mul(rate.burst() - 1);
            prop_assert!(tolerance.is_some_and(|t| t <= Duration::from_secs(2)));
        } else {
            prop_assert_eq!(rate, None);
        }
        prop_assert!(limits.timeout >= Duration::from_millis(100));
        prop_assert!(limits.timeout <= Duration::from_secs(60));
        if let Some(ms) = limits.max_age_ms() {
            prop_assert!(ms > 0 && ms <= MAX_MAX_AGE.as_millis() as i64);
        }

        let created = Utc.timestamp_millis_opt(created_ms).unwrap();
        let now = Utc.timestamp_millis_opt(created_ms + elapsed_ms).unwrap();
        let _ = compiled.spec.retry.next_attempt(
            attempts_made,
            created,
            now,
            retry_after.map(Duration::from_secs),
            sample,
        );
        prop_assert!(compiled.spec.retry.total_attempts() >= 1);
    }
}
