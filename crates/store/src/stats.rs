//! Per-webhook statistics and queue depth: the SQL both dialects run, and the pure assembly of
//! its rows into [`WebhookStats`].
//!
//! Counts are aggregates computed in the database. Percentiles come from a bounded read (the
//! newest [`STATS_SAMPLE`] attempts of the widest window): SQLite has no percentile function,
//! and a clinic's webhook rarely sends that many in a week; when it does, the percentiles
//! describe the newest attempts, and the short windows stay exact the longest.
//!
//! Attempts are found through their deliveries (`deliveries_by_webhook`), limited to deliveries
//! created in the last [`ATTEMPT_LOOKBACK_MS`]: a retry schedule ends well within that, so only
//! a manual retry of an older delivery is left out. Test sends are left out everywhere.

use crate::types::{AttemptOutcome, DeliveryStatus};

/// The windows reported, as (label, length in ms).
pub const STATS_WINDOWS: [(&str, i64); 3] = [
    ("1h", 3_600_000),
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
];
/// Most attempt durations read for percentiles.
pub const STATS_SAMPLE: i64 = 20_000;
/// How far back deliveries are looked at for attempts in the widest window.
pub const ATTEMPT_LOOKBACK_MS: i64 = 14 * 86_400_000;

/// `$1` webhook, `$2` since 1 h, `$3` since 24 h, `$4` since 7 d.
pub(crate) const DELIVERY_COUNTS: &str = "SELECT status, \
    SUM(CASE WHEN created_at >= $2 THEN 1 ELSE 0 END), \
    SUM(CASE WHEN created_at >= $3 THEN 1 ELSE 0 END), \
    COUNT(*) \
    FROM deliveries WHERE webhook_id = $1 AND created_at >= $4 AND is_test = FALSE \
    GROUP BY status";

/// `$1` webhook, `$2` since 1 h, `$3` since 24 h, `$4` since 7 d, `$5` deliveries since.
pub(crate) const ATTEMPT_COUNTS: &str = "SELECT a.outcome, \
    SUM(CASE WHEN a.started_at >= $2 THEN 1 ELSE 0 END), \
    SUM(CASE WHEN a.started_at >= $3 THEN 1 ELSE 0 END), \
    COUNT(*) \
    FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
    WHERE d.webhook_id = $1 AND d.created_at >= $5 AND d.is_test = FALSE \
    AND a.started_at >= $4 \
    GROUP BY a.outcome";

/// `$1` webhook, `$2` since 7 d, `$3` deliveries since, `$4` limit. Newest first.
pub(crate) const ATTEMPT_DURATIONS: &str = "SELECT a.started_at, a.duration_ms \
    FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
    WHERE d.webhook_id = $1 AND d.created_at >= $3 AND d.is_test = FALSE \
    AND a.started_at >= $2 AND a.outcome <> 'gave_up' \
    ORDER BY a.started_at DESC LIMIT $4";

/// The newest delivery that has been tried.
pub(crate) const LAST_DELIVERY: &str = "SELECT id, status, last_status, last_error, updated_at \
    FROM deliveries WHERE webhook_id = $1 AND attempts > 0 AND is_test = FALSE \
    ORDER BY created_at DESC, id DESC LIMIT 1";

/// `$1` now. Each count reads one partial index (see the migrations).
pub(crate) const QUEUE_DEPTH: &str = "SELECT \
    (SELECT COUNT(*) FROM deliveries \
        WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at <= $1), \
    (SELECT COUNT(*) FROM deliveries \
        WHERE status = 'pending' AND lease_until IS NULL AND next_attempt_at > $1), \
    (SELECT COUNT(*) FROM deliveries \
        WHERE status = 'pending' AND lease_until IS NOT NULL)";

pub(crate) type CountTuple = (String, i64, i64, i64);
pub(crate) type LastTuple = (String, String, Option<i64>, Option<String>, i64);

/// A webhook's failed deliveries in a time range, as a bulk retry would find them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FailedCount {
    /// Those a retry sends again.
    pub retryable: u64,
    /// Those it skips: their event's data was purged (retention or erasure).
    pub purged: u64,
    /// The count stopped at its cap: there are more.
    pub more: bool,
}

/// Pending deliveries: due now, due later, and leased to a worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueDepth {
    pub due: u64,
    pub scheduled: u64,
    pub in_flight: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WebhookStats {
    /// One per [`STATS_WINDOWS`] entry, shortest first.
    pub windows: Vec<StatsWindow>,
    pub last: Option<LastDelivery>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StatsWindow {
    pub window: &'static str,
    /// Deliveries created in the window, by status.
    pub pending: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Withdrawn before they were sent (scheduled deliveries): neither success nor failure.
    pub superseded: u64,
    /// Attempts started in the window, by outcome.
    pub attempts_succeeded: u64,
    pub attempts_failed: u64,
    pub attempts_retry: u64,
    pub attempts_gave_up: u64,
    /// Succeeded over finished (succeeded + failed) deliveries; `None` when none finished.
    pub success_rate: Option<f64>,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LastDelivery {
    pub delivery_id: carehook_core::ids::DeliveryId,
    pub status: DeliveryStatus,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub at: i64,
}

/// `(since 1 h, since 24 h, since 7 d, deliveries since)` for `now`.
pub(crate) fn bounds(now: i64) -> (i64, i64, i64, i64) {
    (
        now - STATS_WINDOWS[0].1,
        now - STATS_WINDOWS[1].1,
        now - STATS_WINDOWS[2].1,
        now - ATTEMPT_LOOKBACK_MS,
    )
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub(crate) fn assemble(
    now: i64,
    deliveries: Vec<CountTuple>,
    attempts: Vec<CountTuple>,
    durations: Vec<(i64, i64)>,
    last: Option<LastTuple>,
) -> crate::Result<WebhookStats> {
    let mut windows: Vec<StatsWindow> = STATS_WINDOWS
        .iter()
        .map(|(label, _)| StatsWindow {
            window: label,
            ..StatsWindow::default()
        })
        .collect();
    for (status, c1, c24, c7) in deliveries {
        let status: DeliveryStatus = status.parse()?;
        for (w, n) in windows.iter_mut().zip([c1, c24, c7]) {
            let n = n.max(0) as u64;
            match status {
                DeliveryStatus::Pending => w.pending = n,
                DeliveryStatus::Succeeded => w.succeeded = n,
                DeliveryStatus::Failed => w.failed = n,
                DeliveryStatus::Superseded => w.superseded = n,
            }
        }
    }
    for (outcome, c1, c24, c7) in attempts {
        let outcome: AttemptOutcome = outcome.parse()?;
        for (w, n) in windows.iter_mut().zip([c1, c24, c7]) {
            let n = n.max(0) as u64;
            match outcome {
                AttemptOutcome::Succeeded => w.attempts_succeeded = n,
                AttemptOutcome::Failed => w.attempts_failed = n,
                AttemptOutcome::Retry => w.attempts_retry = n,
                AttemptOutcome::GaveUp => w.attempts_gave_up = n,
            }
        }
    }
    for (w, (_, len)) in windows.iter_mut().zip(STATS_WINDOWS) {
        let finished = w.succeeded + w.failed;
        w.success_rate = (finished > 0).then(|| w.succeeded as f64 / finished as f64);
        let mut d: Vec<i64> = durations
            .iter()
            .filter(|(at, _)| *at >= now - len)
            .map(|(_, ms)| *ms)
            .collect();
        d.sort_unstable();
        w.p50_ms = percentile(&d, 50.0);
        w.p95_ms = percentile(&d, 95.0);
    }
    let last = last
        .map(
            |(id, status, http_status, error, at)| -> crate::Result<LastDelivery> {
                Ok(LastDelivery {
                    delivery_id: crate::rows::uuid(&id)?.into(),
                    status: status.parse()?,
                    http_status,
                    error,
                    at,
                })
            },
        )
        .transpose()?;
    Ok(WebhookStats { windows, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1, 2], 50.0), Some(1));
    }

    #[test]
    fn rows_fill_each_window() {
        let now = 10 * 86_400_000;
        let s = assemble(
            now,
            vec![("succeeded".into(), 1, 3, 4), ("failed".into(), 1, 1, 4)],
            vec![("retry".into(), 0, 2, 2)],
            vec![(now - 10, 100), (now - 7_200_000, 300)],
            None,
        )
        .unwrap();
        assert_eq!(s.windows[0].success_rate, Some(0.5));
        assert_eq!(s.windows[2].success_rate, Some(0.5));
        assert_eq!(s.windows[1].attempts_retry, 2);
        assert_eq!(s.windows[0].p95_ms, Some(100));
        assert_eq!(s.windows[1].p95_ms, Some(300));
        assert_eq!(s.windows[1].pending, 0);
    }
}
