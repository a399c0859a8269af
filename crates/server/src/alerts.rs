//! Operational events (`carehook_*`): carehook telling a person about its own webhooks — one
//! disabled, a delivery given up, a webhook starting to fail, a secret rotated. They go through
//! the normal intake (so they are durable, logged and retried like any event) to the webhooks
//! that name them; the alert presets (Slack, Teams, Discord, e-mail) are such webhooks.
//!
//! They carry no patient value: the webhook's id and name, the delivery's id, the *name* of the
//! event it carried, an HTTP status and carehook's own reason text (reasons are written by
//! carehook, never a receiver's answer body, which could echo patient data).
//!
//! An alert about a webhook goes to the alert webhooks of that webhook's clinics and to those
//! of every clinic, never to another clinic's (`webhook_clinics` in the event names them).
//!
//! Loops are prevented by two rules (docs/alerts.md):
//! 1. An operational event about webhook X is never delivered to X (an alert webhook is not
//!    told about itself through itself).
//! 2. A delivery *of* an operational event never emits `carehook_delivery_failed` or
//!    `carehook_webhook_failing`: an alert webhook failing cannot set off alerts that fail in
//!    turn. Only a disable is still reported (to the other alert webhooks): a webhook is
//!    disabled once, so that chain ends.
//!
//! `carehook_webhook_failing` is emitted on the first failed attempt after a success (or the
//! first failure this process sees), at most once an hour per webhook: an in-memory clock per
//! webhook on this node, and an idempotency key per webhook and clock hour across nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use carehook_core::Vars;
use carehook_core::catalog;
use carehook_core::ids::{DeliveryId, EventId, WebhookId};
use carehook_store::{AttemptOutcome, DeliveryNext, NewDelivery, NewEvent, Recorded};
use chrono::{SecondsFormat, Utc};

use crate::domain::Error;
use crate::intake::Intake;
use crate::registry::Registry;
use crate::time::{now_ms, rfc3339};

const HOUR_MS: i64 = 3600 * 1000;

/// One operational event, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// carehook disabled the webhook (410 Gone, or failing for days).
    WebhookDisabled {
        webhook: WebhookId,
        name: String,
        reason: String,
    },
    /// A delivery gave up.
    DeliveryFailed(DeliveryAlert),
    /// The webhook's first failure after it was delivering.
    WebhookFailing(DeliveryAlert),
    /// The webhook's signing secret was rotated.
    SecretRotated {
        webhook: WebhookId,
        name: String,
        reason: String,
    },
}

/// What a delivery alert says about the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAlert {
    pub webhook: WebhookId,
    pub name: String,
    pub delivery: DeliveryId,
    /// The name of the event it carried.
    pub event: String,
    pub status_code: Option<i64>,
    pub attempts: i64,
    pub reason: String,
}

impl Alert {
    pub fn event_name(&self) -> &'static str {
        match self {
            Alert::WebhookDisabled { .. } => "carehook_webhook_disabled",
            Alert::DeliveryFailed(_) => "carehook_delivery_failed",
            Alert::WebhookFailing(_) => "carehook_webhook_failing",
            Alert::SecretRotated { .. } => "carehook_secret_rotated",
        }
    }

    /// The webhook the alert is about (never delivered to it: loop rule 1).
    pub fn subject(&self) -> WebhookId {
        match self {
            Alert::WebhookDisabled { webhook, .. } | Alert::SecretRotated { webhook, .. } => {
                *webhook
            }
            Alert::DeliveryFailed(d) | Alert::WebhookFailing(d) => d.webhook,
        }
    }

    /// A key that makes a repeat of the same alert record nothing: the same delivery's
    /// give-up reported twice (a late result after its lease ended), or a second
    /// `carehook_webhook_failing` of one webhook within a clock hour (another node).
    fn idempotency_key(&self, now: i64) -> Option<String> {
        match self {
            Alert::DeliveryFailed(d) => Some(format!(
                "carehook_delivery_failed:{}:{}",
                d.delivery, d.attempts
            )),
            Alert::WebhookFailing(d) => Some(format!(
                "carehook_webhook_failing:{}:{}",
                d.webhook,
                now / HOUR_MS
            )),
            _ => None,
        }
    }

    /// The event's snapshot: only carehook's own words and ids.
    pub fn vars(&self, id: EventId, now: i64) -> Vars {
        let mut vars = Vars::new();
        let mut put = |k: &str, v: String| {
            vars.insert(k.to_string(), v);
        };
        put("event_name", self.event_name().to_string());
        put("event_id", id.to_string());
        put(
            "current_date_time",
            Utc::now().to_rfc3339_opts(SecondsFormat::Secs, false),
        );
        put("at", rfc3339(now));
        match self {
            Alert::WebhookDisabled {
                webhook,
                name,
                reason,
            }
            | Alert::SecretRotated {
                webhook,
                name,
                reason,
            } => {
                put("webhook_id", webhook.to_string());
                put("webhook_name", name.clone());
                put("reason", reason.clone());
            }
            Alert::DeliveryFailed(d) | Alert::WebhookFailing(d) => {
                put("webhook_id", d.webhook.to_string());
                put("webhook_name", d.name.clone());
                put("reason", d.reason.clone());
                put("delivery_id", d.delivery.to_string());
                put("delivery_event", d.event.clone());
                put(
                    "status_code",
                    d.status_code.map(|s| s.to_string()).unwrap_or_default(),
                );
                put("attempts", d.attempts.to_string());
            }
        }
        vars
    }
}

/// Records `alert` as an event with one delivery per enabled webhook that names its event
/// (and whose conditions hold), except the webhook it is about. Durable once this returns.
pub async fn emit(intake: &Intake, registry: &Registry, alert: &Alert) -> Result<Recorded, Error> {
    let event = catalog::lookup(alert.event_name())
        .ok_or_else(|| Error::internal("an operational event is missing from the catalog"))?;
    let now = now_ms();
    let id = EventId::new();
    let vars = alert.vars(id, now);
    let subject = alert.subject();
    let snapshot = registry.snapshot();
    // The clinics of the webhook it is about (a deleted one's are unknown: every clinic's
    // alert webhooks only).
    let about: Vec<String> = snapshot
        .get(&subject)
        .map(|w| w.compiled.spec.clinics.clone())
        .unwrap_or_default();
    let mut vars = vars;
    vars.insert("webhook_clinics".into(), about.join(","));
    let mut deliveries: Vec<NewDelivery> = snapshot
        .values()
        .filter(|w| w.row.id != subject)
        .filter(|w| w.row.enabled && w.compiled.wants_about(event.name, &vars, &about))
        .map(|w| NewDelivery {
            id: DeliveryId::new(),
            webhook_id: w.row.id,
            next_attempt_at: now,
            is_test: false,
            ordering_key: w.compiled.ordering_key(&vars),
            // An alert is news now: a scheduled webhook's offset does not apply to it.
            scheduled: None,
        })
        .collect();
    deliveries.sort_by_key(|d| d.webhook_id);
    intake
        .record(NewEvent {
            id,
            event_type: event.name.to_string(),
            vars,
            idempotency_key: alert.idempotency_key(now),
            created_at: now,
            deliveries,
            reschedule: Vec::new(),
        })
        .await
}

/// [`emit`], logging a failure instead of answering it: an alert must never stop the work
/// that caused it (the recorder, a secret rotation).
pub async fn emit_logged(intake: &Intake, registry: &Registry, alert: &Alert) {
    if let Err(e) = emit(intake, registry, alert).await {
        tracing::warn!(
            event = alert.event_name(),
            webhook = %alert.subject(),
            error = %e.message(),
            "could not record an operational event"
        );
    }
}

/// The dispatcher's side of alerts: which delivery alerts finished attempts call for
/// ([`Streaks`]), and emitting them.
#[derive(Debug, Clone)]
pub struct Alerter {
    intake: Intake,
    registry: Arc<Registry>,
    streaks: Arc<Mutex<Streaks>>,
}

/// Each webhook's last outcome and last `carehook_webhook_failing` time (pure, so a test
/// drives it with its own clock).
#[derive(Debug, Default)]
pub struct Streaks(HashMap<WebhookId, Streak>);

#[derive(Debug, Clone, Copy, Default)]
struct Streak {
    failing: bool,
    last_failing_alert: Option<i64>,
}

/// One finished attempt, as far as alerts care.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    pub webhook: WebhookId,
    pub delivery: DeliveryId,
    /// The event the delivery carried; `None` when its failures are never alerted (a test
    /// send, a delivery of an operational event, a delivery ended unsent because its webhook
    /// is disabled or deleted).
    pub alertable: Option<&'a str>,
    pub outcome: AttemptOutcome,
    pub next: DeliveryNext,
    pub attempt_no: i64,
    pub status: Option<i64>,
    pub error: Option<&'a str>,
    /// A 410 answer (the webhook is being disabled, which is its own alert).
    pub gone: bool,
}

impl Streaks {
    /// The alerts one finished attempt calls for, in order; `name` is its webhook's.
    pub fn judge(&mut self, f: &Finished<'_>, name: &str, now: i64) -> Vec<Alert> {
        let Some(event) = f.alertable else {
            return Vec::new();
        };
        let streak = self.0.entry(f.webhook).or_default();
        if f.outcome == AttemptOutcome::Succeeded {
            streak.failing = false;
            return Vec::new();
        }
        if f.gone {
            return Vec::new();
        }
        let what = DeliveryAlert {
            webhook: f.webhook,
            name: name.to_string(),
            delivery: f.delivery,
            event: event.to_string(),
            status_code: f.status,
            attempts: f.attempt_no,
            reason: f.error.map(safe_reason).unwrap_or_default(),
        };
        let mut out = Vec::new();
        if !streak.failing {
            streak.failing = true;
            if streak
                .last_failing_alert
                .is_none_or(|t| now.saturating_sub(t) >= HOUR_MS)
            {
                streak.last_failing_alert = Some(now);
                out.push(Alert::WebhookFailing(what.clone()));
            }
        }
        if f.next == DeliveryNext::Failed {
            out.push(Alert::DeliveryFailed(what));
        }
        out
    }
}

impl Alerter {
    pub fn new(intake: Intake, registry: Arc<Registry>) -> Self {
        Alerter {
            intake,
            registry,
            streaks: Default::default(),
        }
    }

    /// The alerts one finished attempt calls for; updates the streaks.
    pub fn judge(&self, f: &Finished<'_>, now: i64) -> Vec<Alert> {
        if f.alertable.is_none() {
            return Vec::new();
        }
        let name = self
            .registry
            .get(f.webhook)
            .map(|w| w.row.name.clone())
            .unwrap_or_default();
        self.streaks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .judge(f, &name, now)
    }

    /// The name of a webhook, if this node knows it.
    pub fn webhook_name(&self, id: WebhookId) -> Option<String> {
        self.registry.get(id).map(|w| w.row.name.clone())
    }

    pub async fn emit(&self, alert: &Alert) {
        emit_logged(&self.intake, &self.registry, alert).await;
    }
}

/// An attempt's error as an alert may carry it: carehook writes these (`HTTP 503`, `timed out
/// after 15s`, `the request could not be built: …`), and a render error names a variable,
/// never its value; still, it is cut to one short line.
fn safe_reason(error: &str) -> String {
    let line = error.lines().next().unwrap_or_default();
    if line.chars().count() > 300 {
        let mut cut: String = line.chars().take(300).collect();
        cut.push('…');
        cut
    } else {
        line.to_string()
    }
}

/// The latest operational events, newest first (the dashboard and `GET /alerts`). They hold no
/// patient data, so reading them is not audited.
pub async fn latest(
    store: &dyn carehook_store::Store,
    limit: u32,
) -> Result<Vec<carehook_store::EventRow>, Error> {
    let names: Vec<String> = catalog::operational_events()
        .map(|e| e.name.to_string())
        .collect();
    Ok(store.latest_events(&names, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(outcome: AttemptOutcome, next: DeliveryNext) -> Finished<'static> {
        Finished {
            webhook: WebhookId::from(uuid::Uuid::nil()),
            delivery: DeliveryId::new(),
            alertable: Some("kc_appointment_book"),
            outcome,
            next,
            attempt_no: 1,
            status: Some(500),
            error: Some("HTTP 500"),
            gone: false,
        }
    }

    #[test]
    fn failing_is_said_once_per_streak_and_at_most_hourly() {
        let mut a = Streaks::default();
        let fail = finished(AttemptOutcome::Retry, DeliveryNext::RetryAt(0));
        let ok = finished(AttemptOutcome::Succeeded, DeliveryNext::Succeeded);
        let names = |v: Vec<Alert>| v.iter().map(|a| a.event_name()).collect::<Vec<_>>();
        assert_eq!(names(a.judge(&fail, "W", 0)), ["carehook_webhook_failing"]);
        assert!(a.judge(&fail, "W", 1000).is_empty());
        assert!(a.judge(&ok, "W", 2000).is_empty());
        // A new streak within the hour: not again.
        assert!(a.judge(&fail, "W", 3000).is_empty());
        assert!(a.judge(&ok, "W", 4000).is_empty());
        assert_eq!(
            names(a.judge(&fail, "W", HOUR_MS + 5000)),
            ["carehook_webhook_failing"]
        );
        let gave_up = finished(AttemptOutcome::Failed, DeliveryNext::Failed);
        assert_eq!(
            names(a.judge(&gave_up, "W", HOUR_MS + 6000)),
            ["carehook_delivery_failed"]
        );
    }

    #[test]
    fn unalertable_and_gone_attempts_say_nothing() {
        let mut a = Streaks::default();
        let mut f = finished(AttemptOutcome::Failed, DeliveryNext::Failed);
        f.alertable = None;
        assert!(a.judge(&f, "W", 0).is_empty());
        f.alertable = Some("kc_patient_add");
        f.gone = true;
        assert!(a.judge(&f, "W", 0).is_empty());
    }

    #[test]
    fn alert_vars_are_only_carehooks_words() {
        let alert = Alert::DeliveryFailed(DeliveryAlert {
            webhook: WebhookId::from(uuid::Uuid::nil()),
            name: "Pharmacy".into(),
            delivery: DeliveryId::new(),
            event: "kc_prescription_add".into(),
            status_code: None,
            attempts: 3,
            reason: "timed out".into(),
        });
        let vars = alert.vars(EventId::new(), 0);
        let event = catalog::lookup(alert.event_name()).unwrap();
        for k in vars.keys() {
            assert!(event.has_variable(k), "{k}");
        }
        assert_eq!(vars["status_code"], "");
        assert_eq!(vars["delivery_event"], "kc_prescription_add");
    }
}
