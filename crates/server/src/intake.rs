//! Event intake: turns an event into its snapshot and its deliveries, and
//! writes them durably with group commit.
//!
//! Every request's event goes to one writer task, which takes whatever has
//! queued up (up to [`MAX_BATCH`]) and records it in one transaction. Under
//! load, hundreds of events share one commit (one fsync on SQLite) instead
//! of paying one each; alone, an event waits for nobody. The answer to the
//! client is sent only after the commit, so an accepted event is on disk.

use std::sync::Arc;

use carehook_core::Vars;
use carehook_core::catalog::Presence;
use carehook_core::catalog::{self, EventType};
use carehook_core::ids::{DeliveryId, EventId};
use carehook_core::schedule::{self, Effect, Planned, Schedule};
use carehook_store::{
    NewDelivery, NewEvent, Recorded, Reschedule, ScheduleChange, Scheduled, Store,
};
use chrono::{SecondsFormat, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::domain::Error;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// The most events one commit takes.
pub const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Recorded, String>>;

#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::Sender<(NewEvent, Reply)>,
}

/// The writer task's body, restartable: a writer started again after a
/// panic takes up the same queue (the batch in hand is answered with an
/// error when its replies drop). It ends when every `Intake` clone is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<(NewEvent, Reply)>>>,
}

impl Writer {
    pub async fn run(self) {
        let Writer { store, metrics, rx } = self;
        let mut rx = rx.lock().await;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let (events, replies): (Vec<NewEvent>, Vec<Reply>) =
                std::mem::take(&mut batch).into_iter().unzip();
            match store.record_events(events).await {
                Ok(recorded) => {
                    let created = recorded.iter().filter(|r| !r.is_duplicate());
                    let (events, deliveries) = created.fold((0, 0), |(e, d), r| {
                        (e + 1, d + r.delivery_ids().len() as u64)
                    });
                    metrics.events_recorded(events, deliveries);
                    for (reply, r) in replies.into_iter().zip(recorded) {
                        let _ = reply.send(Ok(r));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "recording events failed");
                    for reply in replies {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    }
}

impl Intake {
    /// The intake and its writer; run the writer (supervised) alongside.
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> (Intake, Writer) {
        let (tx, rx) = mpsc::channel::<(NewEvent, Reply)>(MAX_BATCH * 4);
        let writer = Writer {
            store,
            metrics,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
        };
        (Intake { tx }, writer)
    }

    /// Records one event durably; returns once it is committed.
    pub async fn record(&self, event: NewEvent) -> Result<Recorded, Error> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| Error::internal("the event writer has stopped"))?;
        answer
            .await
            .map_err(|_| Error::internal("the event writer has stopped"))?
            .map_err(Error::internal)
    }
}

/// Builds an event's snapshot from the data an integrator pushed: every
/// variable of the event, with carehook's own (`event_*`, `current_*`)
/// filled in, and anything unknown refused with the name at fault.
pub fn snapshot_from_data(
    event: &EventType,
    event_id: EventId,
    data: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vars, Error> {
    // Variables the sender left out are simply absent: a template renders
    // them empty, and the snapshot (stored per event) stays small.
    let mut vars = Vars::new();
    let now = Utc::now();
    vars.insert("current_date".into(), now.format("%Y-%m-%d").to_string());
    vars.insert("current_time".into(), now.format("%H:%M").to_string());
    vars.insert(
        "current_date_time".into(),
        now.to_rfc3339_opts(SecondsFormat::Secs, false),
    );
    overlay_data(event, &mut vars, data)?;
    vars.insert("event_name".into(), event.name.to_string());
    vars.insert("event_id".into(), event_id.to_string());
    Ok(vars)
}

/// Writes an integrator's `data` over `vars`: each key must be one of the
/// event's variables (else a 422 naming `data.<key>`), each value text, a
/// number, true/false or null, at most 64 KiB.
pub fn overlay_data(
    event: &EventType,
    vars: &mut Vars,
    data: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), Error> {
    for (key, value) in data {
        if event.variable(key).is_none() {
            let names = event.variables().map(|v| v.name);
            return Err(Error::invalid(
                format!("data.{key}"),
                format!(
                    "{} carries no variable \"{key}\"{}; `carehook events {}` lists its variables",
                    event.name,
                    catalog::did_you_mean(catalog::closest_name(key, names)),
                    event.name
                ),
            ));
        }
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => continue,
            _ => {
                return Err(Error::invalid(
                    format!("data.{key}"),
                    "a variable's value must be text, a number, true/false or null",
                ));
            }
        };
        if text.len() > 64 * 1024 {
            return Err(Error::invalid(
                format!("data.{key}"),
                "a value may be at most 64 KiB",
            ));
        }
        if let Some(var) = event.variable(key)
            && !carehook_core::conditions::fits_type(var, &text)
        {
            // The value itself stays out of the message: it may be a
            // patient's, and errors get logged.
            let what = if var.values.is_empty() {
                format!("{}, e.g. {}", var.ty.describe(), var.example)
            } else {
                format!("one of: {}", var.values.join(", "))
            };
            return Err(Error::invalid(
                format!("data.{key}"),
                format!("{key} must be {what}; the value sent is not"),
            ));
        }
        vars.insert(key.clone(), text);
    }
    Ok(())
}

/// One delivery per enabled webhook that subscribes to the event and whose
/// conditions hold on the snapshot.
pub fn match_deliveries(
    registry: &Registry,
    event: &EventType,
    vars: &Vars,
    now: i64,
) -> Vec<NewDelivery> {
    let mut out: Vec<NewDelivery> = registry
        .snapshot()
        .values()
        .filter(|w| w.row.enabled && w.compiled.wants(event.name, vars))
        .map(|w| {
            let (next_attempt_at, scheduled) = match &w.compiled.spec.schedule {
                None => (now, None),
                Some(s) => scheduled_delivery(s, vars, now),
            };
            NewDelivery {
                id: DeliveryId::new(),
                webhook_id: w.row.id,
                next_attempt_at,
                is_test: false,
                ordering_key: w.compiled.ordering_key(vars),
                scheduled,
            }
        })
        .collect();
    out.sort_by_key(|d| d.webhook_id);
    out
}

/// A scheduled webhook's new delivery: its due time, its appointment, and, if its time has
/// passed and the webhook skips late ones, the reason it is written withdrawn.
fn scheduled_delivery(s: &Schedule, vars: &Vars, now: i64) -> (i64, Option<Scheduled>) {
    let appointment_id = schedule::appointment_of(vars).map(str::to_owned);
    match s.plan(vars, now) {
        Planned::At(t) => (
            t,
            Some(Scheduled {
                appointment_id,
                withdrawn: None,
            }),
        ),
        Planned::Skip(why) => (
            now,
            Some(Scheduled {
                appointment_id,
                withdrawn: Some(why),
            }),
        ),
    }
}

/// What an event does to the scheduled webhooks' deliveries still pending for its
/// appointment (see `carehook_core::schedule::effect_on_pending`); `deliveries` are the
/// event's own (from [`match_deliveries`]). Empty for an event without an appointment.
pub fn reschedule_for(
    registry: &Registry,
    event: &EventType,
    event_id: EventId,
    vars: &Vars,
    deliveries: &[NewDelivery],
    now: i64,
) -> Vec<Reschedule> {
    let Some(appointment) = schedule::appointment_of(vars) else {
        return Vec::new();
    };
    let event_id = event_id.to_string();
    let mut out: Vec<Reschedule> = registry
        .snapshot()
        .values()
        .filter_map(|w| {
            let s = w.compiled.spec.schedule.as_ref()?;
            // Only a webhook whose events carry an appointment has reminders tied to one.
            if w.compiled.scope.presence(schedule::APPOINTMENT_KEY) == Presence::None {
                return None;
            }
            let wanted = deliveries.iter().any(|d| d.webhook_id == w.row.id);
            let change =
                match schedule::effect_on_pending(s, event.name, &event_id, vars, wanted, now) {
                    Effect::Withdraw(reason) => ScheduleChange::Withdraw(reason),
                    Effect::Retime(at) => ScheduleChange::Retime(at),
                    Effect::Keep => return None,
                };
            Some(Reschedule {
                webhook_id: w.row.id,
                appointment_id: appointment.to_owned(),
                change,
            })
        })
        .collect();
    out.sort_by_key(|r| r.webhook_id);
    out
}

/// Fills in `appointment_start` of a pushed appointment event that sent only the date and the
/// start time: read in time zone `tz` (the clinic's, see `service::events::push`).
pub fn fill_appointment_start(event: &EventType, vars: &mut Vars, tz: chrono_tz::Tz) {
    const AT: &str = "appointment_start";
    if !event.has_variable(AT) || vars.get(AT).is_some_and(|v| !v.is_empty()) {
        return;
    }
    let (Some(date), Some(time)) = (
        vars.get("appointment_date"),
        vars.get("appointment_start_time"),
    ) else {
        return;
    };
    let at = carehook_core::clinic::local_instant(tz, date, time);
    if !at.is_empty() {
        vars.insert(AT.into(), at);
    }
}
