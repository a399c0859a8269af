//! Prometheus metrics (`GET /metrics`), kept with plain atomics.
//!
//! A hand-written registry instead of the `metrics` crates: carehook has a
//! handful of families, the dispatcher's hot path must stay a few atomic
//! adds, and the text format is small. Counters are per process (each node
//! of a PostgreSQL deployment reports its own); queue depth is read from the
//! database at scrape time, so every node reports the shared queue.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use carehook_core::ids::WebhookId;
use carehook_store::{AttemptOutcome, AttemptRecord, QueueDepth};

/// Upper bounds of the attempt-duration histogram, in seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const OUTCOMES: [AttemptOutcome; 4] = [
    AttemptOutcome::Succeeded,
    AttemptOutcome::Failed,
    AttemptOutcome::Retry,
    AttemptOutcome::GaveUp,
];

#[derive(Debug, Default)]
pub struct Metrics {
    events_recorded: AtomicU64,
    deliveries_created: AtomicU64,
    attempts: [AtomicU64; 4],
    test_sends: AtomicU64,
    /// Cumulative is computed at render; each slot counts its own bucket.
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    duration_sum_ms: AtomicU64,
    /// Failed attempts (anything but success) per webhook. Touched once per
    /// recorded batch, off the send path.
    webhook_failures: Mutex<HashMap<WebhookId, u64>>,
}

fn outcome_index(o: AttemptOutcome) -> usize {
    match o {
        AttemptOutcome::Succeeded => 0,
        AttemptOutcome::Failed => 1,
        AttemptOutcome::Retry => 2,
        AttemptOutcome::GaveUp => 3,
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Events written, and the deliveries they made.
    pub fn events_recorded(&self, events: u64, deliveries: u64) {
        self.events_recorded.fetch_add(events, Relaxed);
        self.deliveries_created.fetch_add(deliveries, Relaxed);
    }

    pub fn test_send(&self) {
        self.test_sends.fetch_add(1, Relaxed);
    }

    /// Counts finished attempts: `(webhook, record, gave_up)`, where
    /// `gave_up` says the retry policy ended the delivery after this
    /// attempt: counted as `gave_up`, though the log calls it failed.
    pub fn attempts_recorded<'a>(
        &self,
        batch: impl IntoIterator<Item = (WebhookId, &'a AttemptRecord, bool)>,
    ) {
        let mut failed: Vec<WebhookId> = Vec::new();
        for (webhook, r, gave_up) in batch {
            let outcome = if gave_up {
                AttemptOutcome::GaveUp
            } else {
                r.outcome
            };
            self.attempts[outcome_index(outcome)].fetch_add(1, Relaxed);
            if r.outcome != AttemptOutcome::Succeeded {
                failed.push(webhook);
            }
            // An attempt dropped before sending has no duration worth a bucket.
            if r.outcome == AttemptOutcome::GaveUp
                && r.response_status.is_none()
                && r.duration_ms == 0
            {
                continue;
            }
            let secs = r.duration_ms.max(0) as f64 / 1000.0;
            let slot = DURATION_BUCKETS
                .iter()
                .position(|b| secs <= *b)
                .unwrap_or(DURATION_BUCKETS.len());
            self.duration_buckets[slot].fetch_add(1, Relaxed);
            self.duration_sum_ms
                .fetch_add(r.duration_ms.max(0) as u64, Relaxed);
        }
        if !failed.is_empty() {
            let mut map = self.webhook_failures.lock().expect("metrics lock");
            for w in failed {
                *map.entry(w).or_default() += 1;
            }
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, queue: Option<QueueDepth>) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "carehook_events_recorded_total",
            "Events recorded (pushed through the API or fired by clinic records).",
            self.events_recorded.load(Relaxed),
        );
        counter(
            &mut out,
            "carehook_deliveries_created_total",
            "Deliveries created for recorded events.",
            self.deliveries_created.load(Relaxed),
        );
        counter(
            &mut out,
            "carehook_test_sends_total",
            "Test sends made through the API.",
            self.test_sends.load(Relaxed),
        );

        out.push_str("# HELP carehook_delivery_attempts_total Delivery attempts by outcome (gave_up: the last attempt of a delivery its retry policy ended, or one dropped unsent).\n");
        out.push_str("# TYPE carehook_delivery_attempts_total counter\n");
        for o in OUTCOMES {
            let _ = writeln!(
                out,
                "carehook_delivery_attempts_total{{outcome=\"{}\"}} {}",
                o.as_str(),
                self.attempts[outcome_index(o)].load(Relaxed)
            );
        }

        out.push_str("# HELP carehook_attempt_duration_seconds Time from sending a request to its answer (or error).\n");
        out.push_str("# TYPE carehook_attempt_duration_seconds histogram\n");
        let mut cumulative = 0u64;
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            cumulative += self.duration_buckets[i].load(Relaxed);
            let _ = writeln!(
                out,
                "carehook_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.duration_buckets[DURATION_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            out,
            "carehook_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
             carehook_attempt_duration_seconds_sum {}\n\
             carehook_attempt_duration_seconds_count {cumulative}",
            self.duration_sum_ms.load(Relaxed) as f64 / 1000.0
        );

        out.push_str(
            "# HELP carehook_webhook_failures_total Failed delivery attempts per webhook.\n",
        );
        out.push_str("# TYPE carehook_webhook_failures_total counter\n");
        {
            let map = self.webhook_failures.lock().expect("metrics lock");
            let mut rows: Vec<_> = map.iter().collect();
            rows.sort();
            for (id, n) in rows {
                let _ = writeln!(
                    out,
                    "carehook_webhook_failures_total{{webhook_id=\"{id}\"}} {n}"
                );
            }
        }

        if let Some(q) = queue {
            out.push_str("# HELP carehook_queue_depth Pending deliveries: due now, scheduled for later, or in flight (leased).\n");
            out.push_str("# TYPE carehook_queue_depth gauge\n");
            for (state, n) in [
                ("due", q.due),
                ("scheduled", q.scheduled),
                ("in_flight", q.in_flight),
            ] {
                let _ = writeln!(out, "carehook_queue_depth{{state=\"{state}\"}} {n}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carehook_core::ids::DeliveryId;
    use carehook_store::DeliveryNext;

    fn record(outcome: AttemptOutcome, ms: i64) -> AttemptRecord {
        AttemptRecord {
            delivery_id: DeliveryId::from_uuid(uuid::Uuid::nil()),
            attempt_no: 1,
            started_at: 0,
            duration_ms: ms,
            request: serde_json::Value::Null,
            response_status: Some(200),
            response_headers: None,
            response_body: None,
            error: None,
            outcome,
            next: DeliveryNext::Succeeded,
            store_bodies: true,
        }
    }

    #[test]
    fn the_text_format_has_every_family_with_cumulative_buckets() {
        let m = Metrics::new();
        m.events_recorded(2, 3);
        let w = WebhookId::new();
        let (a, b) = (
            record(AttemptOutcome::Succeeded, 20),
            record(AttemptOutcome::Retry, 700),
        );
        m.attempts_recorded([(w, &a, false), (w, &b, false)]);
        let text = m.render(Some(QueueDepth {
            due: 1,
            scheduled: 2,
            in_flight: 0,
        }));
        for line in [
            "carehook_events_recorded_total 2",
            "carehook_deliveries_created_total 3",
            "carehook_delivery_attempts_total{outcome=\"succeeded\"} 1",
            "carehook_delivery_attempts_total{outcome=\"retry\"} 1",
            "carehook_attempt_duration_seconds_bucket{le=\"0.025\"} 1",
            "carehook_attempt_duration_seconds_bucket{le=\"1\"} 2",
            "carehook_attempt_duration_seconds_bucket{le=\"+Inf\"} 2",
            "carehook_attempt_duration_seconds_sum 0.72",
            "carehook_attempt_duration_seconds_count 2",
            &format!("carehook_webhook_failures_total{{webhook_id=\"{w}\"}} 1"),
            "carehook_queue_depth{state=\"due\"} 1",
            "carehook_queue_depth{state=\"scheduled\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
