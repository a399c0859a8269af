//! Clinic record changes: create, update, delete, for the API and the demo
//! clinic alike, with the domain's rules.
//!
//! A change runs as [`ChangeLogic`] inside the store's transaction
//! ([`Store::change_record`]): the record is validated (carehook-core's
//! field tables), checked against the records it links (the doctor, the
//! patient and the appointment belong to the record's clinic; an
//! encounter's appointment is its patient's), billed (a bill's status
//! follows its payments; the payment that completes an appointment's bill
//! fires `kc_appointment_payment_complete`), and the events it fires (every
//! variable computed by `carehook_core::clinic::vars_for`) and their
//! deliveries (matched against the webhook registry at that moment) commit
//! with it or not at all. Events fired here are counted in the metrics as
//! pushed ones are.

use std::sync::Mutex;

use carehook_core::catalog;
use carehook_core::clinic::{
    self, FieldError, Kind, Occasion, Op, Record, Ref, Subject, Valid, validate,
};
use carehook_core::ids::EventId;
use carehook_store::{
    Applied, Changed, Fired, Linked, NewEvent, Page, RecordFilter, RecordLogic, Store, StoreError,
    Target,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{Actor, Context, Error, Result};
use crate::intake::{match_deliveries, reschedule_for};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::time::rfc3339;

/// Where a change is written and what it is matched against: a running
/// server's ([`Records::of`]), or a bare store and registry (the demo
/// clinic filled before the server starts, [`Records::local`]).
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    pub store: &'a dyn Store,
    pub registry: &'a Registry,
    /// Where events fired are counted; none before the server runs.
    pub metrics: Option<&'a Metrics>,
}

impl<'a> Records<'a> {
    pub fn of(ctx: &'a Context) -> Self {
        Records {
            store: &*ctx.store,
            registry: &ctx.registry,
            metrics: Some(&ctx.metrics),
        }
    }

    pub fn local(store: &'a dyn Store, registry: &'a Registry) -> Self {
        Records {
            store,
            registry,
            metrics: None,
        }
    }
}

pub async fn get(ctx: &Context, kind: Kind, id: i64) -> Result<Record> {
    ctx.store
        .get_record(kind, id)
        .await?
        .ok_or(Error::NotFound(kind.noun()))
}

pub async fn list(ctx: &Context, kind: Kind, filter: RecordFilter) -> Result<Page<Record>> {
    Ok(ctx.store.list_records(kind, filter).await?)
}

/// Creates a record; `parent` is the record named in the path (`/bills/7/payments`).
pub async fn create(
    at: &Records<'_>,
    actor: &Actor,
    kind: Kind,
    parent: Option<(Ref, i64)>,
    body: Value,
    user: Option<i64>,
) -> Result<Value> {
    let mut input = object(body)?;
    if let Some((r, id)) = parent {
        match input.get(r.column()) {
            Some(given) if as_id(given) != Some(id) => {
                return Err(Error::invalid(
                    r.column(),
                    format!("the path names {} {id}", r.kind().noun()),
                ));
            }
            _ => {
                input.insert(r.column().into(), id.into());
            }
        }
    }
    run(at, actor, kind, Target::Create, input, user).await
}

/// Applies a PATCH (the fields sent replace the stored ones; `null` clears an optional one).
pub async fn update(
    at: &Records<'_>,
    actor: &Actor,
    kind: Kind,
    id: i64,
    body: Value,
    user: Option<i64>,
) -> Result<Value> {
    let input = object(body)?;
    run(at, actor, kind, Target::Update(id), input, user).await
}

pub async fn delete(
    at: &Records<'_>,
    actor: &Actor,
    kind: Kind,
    id: i64,
    user: Option<i64>,
) -> Result<Value> {
    run(at, actor, kind, Target::Delete(id), Map::new(), user).await
}

fn object(body: Value) -> Result<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(Error::invalid("", "the body must be a JSON object")),
    }
}

async fn run(
    at: &Records<'_>,
    actor: &Actor,
    kind: Kind,
    target: Target,
    input: Map<String, Value>,
    user: Option<i64>,
) -> Result<Value> {
    let logic = ChangeLogic {
        kind,
        input,
        registry: at.registry,
        user,
        now: Utc::now(),
        fired: Mutex::new(Vec::new()),
    };
    let changed: Changed = at
        .store
        .change_record(kind, target, &logic, logic.now.timestamp_millis())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => Error::NotFound(kind.noun()),
            e => e.into(),
        })?;
    if let Some(metrics) = at.metrics {
        let created = changed.events.iter().filter(|r| !r.is_duplicate());
        let (events, deliveries) = created.fold((0, 0), |(e, d), r| {
            (e + 1, d + r.delivery_ids().len() as u64)
        });
        metrics.events_recorded(events, deliveries);
    }
    tracing::debug!(kind = kind.noun(), by = %actor, events = changed.events.len(), "clinic record changed");
    let names = logic.fired.into_inner().unwrap_or_default();
    let mut answer = view(&changed.record);
    answer["events"] = changed
        .events
        .iter()
        .zip(names)
        .map(|(r, name)| json!({"id": r.event_id(), "event": name, "deliveries": r.delivery_ids()}))
        .collect();
    Ok(answer)
}

/// A record as the API shows it: its fields, its references, `id`, and what is derived
/// (a bill's `bill_number` and `amount`).
pub fn view(r: &Record) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), r.id.into());
    for reference in r.kind.refs() {
        out.insert(reference.column().into(), r.refs.get(reference).into());
    }
    for (k, v) in &r.data {
        out.insert(k.clone(), v.clone());
    }
    if r.kind == Kind::Bill {
        out.insert("bill_number".into(), r.bill_number().into());
        out.insert("amount".into(), clinic::bill_amount(r).to_string().into());
    }
    if r.kind == Kind::Appointment {
        out.insert(
            "status_code".into(),
            clinic::status_code(r.text("status")).into(),
        );
    }
    out.insert("created_at".into(), rfc3339(r.created_at).into());
    out.insert("updated_at".into(), rfc3339(r.updated_at).into());
    Value::Object(out)
}

/// Fields the API shows but nobody sets; sent back in a PATCH (GET, edit, PATCH) they are
/// ignored.
pub fn read_only(kind: Kind, field: &str) -> bool {
    matches!(
        field,
        "id" | "created_at" | "updated_at" | "events" | "status_code"
    ) || kind == Kind::Bill && matches!(field, "bill_number" | "amount" | "status")
}

fn as_id(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The server's half of a change, run inside the store's transaction.
struct ChangeLogic<'a> {
    kind: Kind,
    input: Map<String, Value>,
    registry: &'a Registry,
    user: Option<i64>,
    now: DateTime<Utc>,
    /// The names of the events fired, in order, for the answer.
    fired: Mutex<Vec<&'static str>>,
}

impl RecordLogic for ChangeLogic<'_> {
    fn plan(&self, old: Option<&Record>) -> carehook_store::Result<Valid> {
        let mut fields = Map::new();
        if let Some(old) = old {
            for r in self.kind.refs() {
                fields.insert(r.column().into(), old.refs.get(r).into());
            }
            for (k, v) in &old.data {
                if !read_only(self.kind, k) {
                    fields.insert(k.clone(), v.clone());
                }
            }
        }
        for (k, v) in &self.input {
            if read_only(self.kind, k) {
                continue;
            }
            // A record stays under its parent: moving a payment to another bill would
            // silently change two bills' statuses.
            if let (Some(old), Some(parent)) = (old, self.kind.parent())
                && k == parent.column()
                && as_id(v) != old.refs.get(parent)
            {
                return Err(FieldError::new(k.clone(), "cannot be changed").into());
            }
            fields.insert(k.clone(), v.clone());
        }
        Ok(validate(self.kind, &fields)?)
    }

    fn check(&self, planned: &mut Valid, linked: &Linked) -> carehook_store::Result<()> {
        // The doctor, the patient and the appointment belong to the record's clinic.
        if let Some(clinic_id) = planned.refs.clinic_id {
            for r in [Ref::Doctor, Ref::Patient, Ref::Appointment] {
                let (Some(id), Some(other)) = (planned.refs.get(r), linked.get(r.kind())) else {
                    continue;
                };
                if other.refs.clinic_id != Some(clinic_id) {
                    return Err(FieldError::new(
                        r.column(),
                        format!(
                            "{} {id} belongs to clinic {}, not clinic {clinic_id}",
                            r.kind().noun(),
                            other.refs.clinic_id.unwrap_or_default()
                        ),
                    )
                    .into());
                }
            }
        }
        // An encounter of an appointment is that appointment's patient's.
        if let (Some(a), Some(patient)) = (
            planned
                .refs
                .appointment_id
                .and(linked.get(Kind::Appointment)),
            planned.refs.patient_id,
        ) && a.refs.patient_id != Some(patient)
        {
            return Err(FieldError::new(
                "appointment_id",
                format!(
                    "appointment {} is patient {}'s, not patient {patient}'s",
                    a.id,
                    a.refs.patient_id.unwrap_or_default()
                ),
            )
            .into());
        }
        // A date left out is today in the clinic's time zone.
        if self.kind.has_day() && !planned.data.contains_key("date") {
            let tz = linked
                .get(Kind::Clinic)
                .map(|c| c.text("timezone"))
                .and_then(|t| t.parse::<chrono_tz::Tz>().ok())
                .unwrap_or(chrono_tz::UTC);
            let today = self.now.with_timezone(&tz).format("%Y-%m-%d").to_string();
            planned.data.insert("date".into(), today.into());
        }
        Ok(())
    }

    fn fire(&self, a: &Applied<'_>) -> carehook_store::Result<Fired> {
        let mut fired = Fired::default();
        let mut record = a.record.clone();

        // A bill's status follows its payments.
        let mut bill = match self.kind {
            Kind::Bill if a.op != Op::Delete => Some(record.clone()),
            Kind::Payment => a.linked.get(Kind::Bill).cloned(),
            _ => None,
        };
        if let Some(b) = bill.as_mut() {
            let status = clinic::bill_status(b, &a.linked.payments);
            if b.text("status") != status {
                b.data.insert("status".into(), status.into());
                fired.updates.push(b.clone());
            }
            if self.kind == Kind::Bill {
                record = b.clone();
            }
        }

        let mut names = clinic::events_for(self.kind, a.op, a.old, &record);
        if self.kind == Kind::Payment
            && a.op == Op::Create
            && let Some(b) = &bill
            && a.linked.get(Kind::Appointment).is_some()
        {
            let others: Vec<Record> = a
                .linked
                .payments
                .iter()
                .filter(|p| p.id != record.id)
                .cloned()
                .collect();
            let amount = clinic::bill_amount(b);
            if clinic::paid(&others) < amount && clinic::paid(&a.linked.payments) >= amount {
                names.push("kc_appointment_payment_complete");
            }
        }

        let mut subject = Subject::default();
        for r in a.linked.records.values() {
            subject = subject.with(r);
        }
        if let Some(b) = &bill {
            subject = subject.with(b);
        }
        subject = subject.with(&record);
        let now_ms = self.now.timestamp_millis();
        for name in &names {
            let event = catalog::lookup(name)
                .ok_or_else(|| StoreError::Corrupt(format!("{name} is not in the catalog")))?;
            let id = EventId::new();
            let event_id = id.to_string();
            let mut s = subject.clone();
            if *name == "kc_appointment_status_change" {
                s.previous_status = a.old.map(|o| o.text("status"));
            }
            let vars = clinic::vars_for(
                event,
                &s,
                &Occasion {
                    event_id: &event_id,
                    now: self.now,
                    user_id: self.user,
                },
            );
            let deliveries = match_deliveries(self.registry, event, &vars, now_ms);
            let reschedule = reschedule_for(self.registry, event, id, &vars, &deliveries, now_ms);
            fired.events.push(NewEvent {
                id,
                event_type: event.name.to_string(),
                vars,
                idempotency_key: None,
                created_at: now_ms,
                deliveries,
                reschedule,
            });
        }
        *self.fired.lock().unwrap_or_else(|e| e.into_inner()) = names;
        Ok(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_fields_depend_on_the_kind() {
        assert!(read_only(Kind::Bill, "status"));
        assert!(read_only(Kind::Bill, "amount"));
        assert!(!read_only(Kind::Appointment, "status"));
        assert!(!read_only(Kind::Payment, "amount"));
        assert!(read_only(Kind::Patient, "id"));
        assert!(read_only(Kind::Appointment, "status_code"));
    }
}
