//! Clinic records over HTTP: `/clinics`, `/doctors`, `/receptionists`, `/patients`,
//! `/appointments`, `/encounters`, `/encounters/{id}/medical-records`,
//! `/encounters/{id}/prescriptions`, `/bills`, `/bills/{id}/payments`, each with create, get,
//! list (paged; filtered by clinic, patient, doctor, parent and date), PATCH and DELETE.
//!
//! One set of handlers serves every kind: a kind is its field table in carehook-core, so the
//! routes are generated from [`Kind::ALL`]. A change runs as [`ChangeLogic`] inside the store's
//! transaction ([`Store::change_record`]): the record, the events it fires (every variable
//! computed by `carehook_core::clinic::vars_for`) and their deliveries (matched against the
//! webhook registry at that moment) commit together or not at all.
//!
//! The functions below the handlers ([`create`], [`update`], [`delete`]) take the store and the
//! registry rather than HTTP types, so the demo clinic (`carehook serve --demo`) is created by
//! the same code path as an API call.

use std::sync::Mutex;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use carehook_core::catalog;
use carehook_core::clinic::{
    self, FieldError, Kind, Occasion, Op, Record, Ref, Subject, Valid, validate,
};
use carehook_store::{
    Applied, Changed, Fired, Linked, NewEvent, RecordFilter, RecordLogic, Store, StoreError, Target,
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use super::{AppState, Caller};
use crate::intake::match_deliveries;
use crate::registry::Registry;
use crate::time::rfc3339;

/// The header that says which clinic user acted (`current_user_id` in the events).
pub const USER_HEADER: &str = "x-carehook-user-id";

/// Kinds created under their parent's path rather than at their own collection.
pub(super) const NESTED: [Kind; 3] = [Kind::MedicalRecord, Kind::Prescription, Kind::Payment];

pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    for kind in Kind::ALL {
        let base = format!("/{}", kind.collection());
        let list_route = get(
            move |s: State<AppState>, c: Caller, q: ApiQuery<ListQuery>| list(s, c, q, kind, None),
        );
        let collection = if NESTED.contains(&kind) {
            list_route
        } else {
            list_route.post(
                move |s: State<AppState>, c: Caller, h: HeaderMap, b: ApiJson<Value>| {
                    create_handler(s, c, h, b, kind, None)
                },
            )
        };
        r = r.route(&base, collection).route(
            &format!("{base}/{{id}}"),
            get(move |s: State<AppState>, c: Caller, id: ApiPath<i64>| get_one(s, c, id, kind))
                .patch(
                    move |s: State<AppState>,
                          c: Caller,
                          h: HeaderMap,
                          id: ApiPath<i64>,
                          b: ApiJson<Value>| {
                        update_handler(s, c, h, id, b, kind)
                    },
                )
                .delete(
                    move |s: State<AppState>, c: Caller, h: HeaderMap, id: ApiPath<i64>| {
                        delete_handler(s, c, h, id, kind)
                    },
                ),
        );
        if let (true, Some(parent)) = (NESTED.contains(&kind), kind.parent()) {
            r = r.route(
                &format!(
                    "/{}/{{id}}/{}",
                    parent.kind().collection(),
                    kind.collection()
                ),
                post(
                    move |s: State<AppState>,
                          c: Caller,
                          h: HeaderMap,
                          ApiPath(id): ApiPath<i64>,
                          b: ApiJson<Value>| {
                        create_handler(s, c, h, b, kind, Some((parent, id)))
                    },
                )
                .get(
                    move |s: State<AppState>,
                          c: Caller,
                          ApiPath(id): ApiPath<i64>,
                          q: ApiQuery<ListQuery>| {
                        list(s, c, q, kind, Some((parent, id)))
                    },
                ),
            );
        }
    }
    r
}

// --- handlers -------------------------------------------------------------------------------

async fn create_handler(
    State(state): State<AppState>,
    _: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
    kind: Kind,
    parent: Option<(Ref, i64)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let user = user_id(&headers)?;
    let answer = create(&*state.store, &state.registry, kind, parent, body, user).await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn update_handler(
    State(state): State<AppState>,
    _: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
    kind: Kind,
) -> ApiResult<Json<Value>> {
    let user = user_id(&headers)?;
    Ok(Json(
        update(&*state.store, &state.registry, kind, id, body, user).await?,
    ))
}

async fn delete_handler(
    State(state): State<AppState>,
    _: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    kind: Kind,
) -> ApiResult<Json<Value>> {
    let user = user_id(&headers)?;
    Ok(Json(
        delete(&*state.store, &state.registry, kind, id, user).await?,
    ))
}

async fn get_one(
    State(state): State<AppState>,
    _: Caller,
    ApiPath(id): ApiPath<i64>,
    kind: Kind,
) -> ApiResult<Json<Value>> {
    let record = state
        .store
        .get_record(kind, id)
        .await?
        .ok_or_else(|| ApiError::not_found(kind.noun()))?;
    Ok(Json(view(&record)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    clinic_id: Option<i64>,
    doctor_id: Option<i64>,
    patient_id: Option<i64>,
    appointment_id: Option<i64>,
    encounter_id: Option<i64>,
    bill_id: Option<i64>,
    /// One day, or the first day of a range with `date_to`.
    date: Option<String>,
    date_from: Option<String>,
    date_to: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
    kind: Kind,
    parent: Option<(Ref, i64)>,
) -> ApiResult<Json<Value>> {
    let mut refs: Vec<(Ref, i64)> = parent.into_iter().collect();
    for (r, id) in [
        (Ref::Clinic, q.clinic_id),
        (Ref::Doctor, q.doctor_id),
        (Ref::Patient, q.patient_id),
        (Ref::Appointment, q.appointment_id),
        (Ref::Encounter, q.encounter_id),
        (Ref::Bill, q.bill_id),
    ] {
        if let Some(id) = id {
            refs.push((r, id));
        }
    }
    let day = |field: &str, d: Option<String>| -> ApiResult<Option<String>> {
        d.map(|d| {
            clinic::parse_date(&d)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .map_err(|e| ApiError::invalid(field, e))
        })
        .transpose()
    };
    let exact = day("date", q.date)?;
    let page = state
        .store
        .list_records(
            kind,
            RecordFilter {
                refs,
                day_from: day("date_from", q.date_from)?.or(exact.clone()),
                day_to: day("date_to", q.date_to)?.or(exact),
                limit: super::deliveries::check_limit(q.limit)?,
                cursor: q.cursor,
            },
        )
        .await?;
    let items: Vec<Value> = page.items.iter().map(view).collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

fn user_id(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get(USER_HEADER) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                USER_HEADER,
                "must be the id (an integer) of the clinic user who acted",
            )
        })
}

// --- the changes, for the API and the demo ----------------------------------------------------

/// Creates a record; `parent` is the record named in the path (`/bills/7/payments`).
pub async fn create(
    store: &dyn Store,
    registry: &Registry,
    kind: Kind,
    parent: Option<(Ref, i64)>,
    body: Value,
    user: Option<i64>,
) -> ApiResult<Value> {
    let mut input = object(body)?;
    if let Some((r, id)) = parent {
        match input.get(r.column()) {
            Some(given) if as_id(given) != Some(id) => {
                return Err(ApiError::invalid(
                    r.column(),
                    format!("the path names {} {id}", r.kind().noun()),
                ));
            }
            _ => {
                input.insert(r.column().into(), id.into());
            }
        }
    }
    run(store, registry, kind, Target::Create, input, user).await
}

/// Applies a PATCH (the fields sent replace the stored ones; `null` clears an optional one).
pub async fn update(
    store: &dyn Store,
    registry: &Registry,
    kind: Kind,
    id: i64,
    body: Value,
    user: Option<i64>,
) -> ApiResult<Value> {
    let input = object(body)?;
    run(store, registry, kind, Target::Update(id), input, user).await
}

pub async fn delete(
    store: &dyn Store,
    registry: &Registry,
    kind: Kind,
    id: i64,
    user: Option<i64>,
) -> ApiResult<Value> {
    run(store, registry, kind, Target::Delete(id), Map::new(), user).await
}

fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::invalid("", "the body must be a JSON object")),
    }
}

async fn run(
    store: &dyn Store,
    registry: &Registry,
    kind: Kind,
    target: Target,
    input: Map<String, Value>,
    user: Option<i64>,
) -> ApiResult<Value> {
    let logic = ChangeLogic {
        kind,
        input,
        registry,
        user,
        now: Utc::now(),
        fired: Mutex::new(Vec::new()),
    };
    let changed: Changed = store
        .change_record(kind, target, &logic, logic.now.timestamp_millis())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(kind.noun()),
            e => e.into(),
        })?;
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
fn read_only(kind: Kind, field: &str) -> bool {
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
            let id = Uuid::now_v7();
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
            fired.events.push(NewEvent {
                id,
                event_type: event.name.to_string(),
                vars,
                idempotency_key: None,
                created_at: now_ms,
                deliveries,
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
