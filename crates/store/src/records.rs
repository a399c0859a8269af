//! Clinic records: the dialect-free half. Both dialects run the same SQL text here (generated
//! per kind from carehook-core's field table, so ten tables cost one code path), and the same
//! change algorithm ([`change`]) over a small [`RecordTx`].
//!
//! A change runs in one transaction, in this order, and any error rolls all of it back:
//! 1. read (and on PostgreSQL lock) the record being updated or deleted;
//! 2. the server's [`RecordLogic::plan`]: the new fields (a PATCH merged onto the old ones);
//! 3. load every record it refers to, transitively (an appointment's clinic, doctor and
//!    patient; a payment's bill, its encounter, that encounter's appointment…), refusing a
//!    reference to a record that does not exist with the field's name;
//! 4. [`RecordLogic::check`]: rules across records (the doctor belongs to the clinic), and
//!    defaults that need them (today in the clinic's time zone);
//! 5. the write (a bill gets the next number of its clinic; a delete is refused while other
//!    records refer to the record);
//! 6. [`RecordLogic::fire`]: the events, their snapshots and deliveries (the server's
//!    webhook registry decides which webhooks match), and follow-up writes (a bill's status);
//! 7. the events and deliveries through the same insert as `record_events`, then commit.
//!
//! The logic is a trait object the server passes in rather than a transaction handed out to the
//! server: the transaction never leaves the store, so it cannot be held across an HTTP call or
//! leaked uncommitted, and its callbacks are synchronous (they compute; they do no I/O).

use std::collections::{BTreeMap, VecDeque};

use carehook_core::clinic::{FieldError, Kind, Op, Record, Ref, Refs, Valid};
use serde_json::{Map, Value};

use crate::error::{Result, StoreError};
use crate::rows::{json, page_limit, to_json};
use crate::sql::{Arg, Builder, Built};
use crate::types::{NewEvent, Recorded};

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Create,
    Update(i64),
    Delete(i64),
}

/// The records a record refers to, transitively: at most one of each kind (the nearest), and
/// the payments of the bill involved (after the write).
#[derive(Debug, Clone, Default)]
pub struct Linked {
    pub records: BTreeMap<Kind, Record>,
    pub payments: Vec<Record>,
}

impl Linked {
    pub fn get(&self, kind: Kind) -> Option<&Record> {
        self.records.get(&kind)
    }
}

/// A change as written, for [`RecordLogic::fire`].
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    pub op: Op,
    /// The record before an update or delete.
    pub old: Option<&'a Record>,
    /// The record as written (for a delete: as it was).
    pub record: &'a Record,
    pub linked: &'a Linked,
}

/// What a change fires.
#[derive(Debug, Clone, Default)]
pub struct Fired {
    /// Written with their deliveries in the change's transaction.
    pub events: Vec<NewEvent>,
    /// Records whose `data` to rewrite (a bill's status after a payment).
    pub updates: Vec<Record>,
}

/// The server's half of a change; see the module docs for when each runs. Errors roll the
/// change back; a [`StoreError::Rejected`] names the field the caller must fix.
pub trait RecordLogic: Send + Sync {
    /// The record's new fields: `old` is `None` on create. Not called for a delete.
    fn plan(&self, old: Option<&Record>) -> Result<Valid>;
    /// Cross-record rules and defaults, with everything `planned` refers to loaded.
    fn check(&self, planned: &mut Valid, linked: &Linked) -> Result<()>;
    fn fire(&self, applied: &Applied<'_>) -> Result<Fired>;
}

/// A committed change: the record (as it is now; for a delete, as it was) and its events.
#[derive(Debug, Clone)]
pub struct Changed {
    pub record: Record,
    pub events: Vec<Recorded>,
}

/// Filters for `list_records`; all optional. Oldest (lowest id) first.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// Records of this clinic, patient, doctor, encounter… (through their parents where the
    /// kind has no such column: a payment's clinic is its bill's encounter's clinic).
    pub refs: Vec<(Ref, i64)>,
    /// `date >= day_from` (kinds with a date).
    pub day_from: Option<String>,
    /// `date <= day_to`.
    pub day_to: Option<String>,
    /// Clamped to `1..=MAX_PAGE`; 0 means the default.
    pub limit: u32,
    pub cursor: Option<String>,
}

/// One transaction's worth of record I/O, implemented once over the dialect seam
/// (`sql_store::RecordTxn`).
#[async_trait::async_trait]
pub(crate) trait RecordTx: Send {
    /// `lock`: hold the row until commit (PostgreSQL `FOR UPDATE`; SQLite has one writer).
    async fn fetch(&mut self, kind: Kind, id: i64, lock: bool) -> Result<Option<Record>>;
    /// Runs `sql` (one of the statements below) and reads back the record it returns.
    async fn write(&mut self, kind: Kind, sql: &str, args: Vec<Arg>) -> Result<Option<Record>>;
    async fn exists(&mut self, sql: &str, id: i64) -> Result<bool>;
    async fn next_bill_seq(&mut self, clinic_id: i64) -> Result<i64>;
    async fn payments_of(&mut self, bill_id: i64) -> Result<Vec<Record>>;
    async fn write_events(&mut self, events: &[NewEvent]) -> Result<Vec<Recorded>>;
}

/// Runs one change; the caller commits afterwards (and wakes the dispatcher if any delivery
/// was written).
pub(crate) async fn change(
    tx: &mut dyn RecordTx,
    kind: Kind,
    target: Target,
    logic: &dyn RecordLogic,
    now: i64,
) -> Result<Changed> {
    let old = match target {
        Target::Create => None,
        Target::Update(id) | Target::Delete(id) => Some(
            tx.fetch(kind, id, true)
                .await?
                .ok_or(StoreError::NotFound)?,
        ),
    };
    let (op, planned) = match target {
        Target::Create => (Op::Create, Some(logic.plan(None)?)),
        Target::Update(_) => (Op::Update, Some(logic.plan(old.as_ref())?)),
        Target::Delete(_) => (Op::Delete, None),
    };
    let refs = match (&planned, &old) {
        (Some(p), _) => p.refs,
        (None, Some(o)) => o.refs,
        (None, None) => Refs::default(),
    };
    let mut linked = load_linked(tx, kind, &refs).await?;

    let mut record = match (planned, &old) {
        (Some(mut p), None) => {
            logic.check(&mut p, &linked)?;
            let mut args = write_args(kind, &p, now);
            if kind == Kind::Bill {
                let clinic = linked.get(Kind::Clinic).ok_or_else(|| {
                    StoreError::Corrupt("a bill's encounter has no clinic".into())
                })?;
                args.push(Arg::Int(tx.next_bill_seq(clinic.id).await?));
            }
            tx.write(kind, &insert_sql(kind), args).await?
        }
        (Some(mut p), Some(o)) => {
            logic.check(&mut p, &linked)?;
            let mut args = write_args(kind, &p, now);
            args.push(Arg::Int(o.id));
            tx.write(kind, &update_sql(kind), args).await?
        }
        (None, Some(o)) => {
            for (other, r) in referring(kind) {
                if tx.exists(&referring_sql(other, r), o.id).await? {
                    return Err(StoreError::Conflict(format!(
                        "{} {} still has {}; delete or move those first",
                        kind.noun(),
                        o.id,
                        other.table().replace('_', " ")
                    )));
                }
            }
            tx.write(kind, &delete_sql(kind), vec![Arg::Int(o.id)])
                .await?;
            Some(o.clone())
        }
        (None, None) => None,
    }
    .ok_or(StoreError::NotFound)?;

    let bill = if kind == Kind::Bill {
        Some(record.id)
    } else {
        linked.get(Kind::Bill).map(|b| b.id)
    };
    if let Some(bill) = bill {
        linked.payments = tx.payments_of(bill).await?;
    }
    let fired = logic.fire(&Applied {
        op,
        old: old.as_ref(),
        record: &record,
        linked: &linked,
    })?;
    for u in fired.updates {
        let sql = format!(
            "UPDATE {} SET data = $1, updated_at = $2 WHERE id = $3 RETURNING {}",
            u.kind.table(),
            columns(u.kind)
        );
        let args = vec![Arg::Text(to_json(&u.data)), Arg::Int(now), Arg::Int(u.id)];
        let written = tx.write(u.kind, &sql, args).await?;
        if u.kind == kind
            && u.id == record.id
            && let Some(w) = written
        {
            record = w;
        }
    }
    let events = tx.write_events(&fired.events).await?;
    Ok(Changed { record, events })
}

/// Loads what `refs` point at, and what those point at, nearest first. A direct reference to
/// a missing record is the caller's mistake (`Rejected`, naming the field).
async fn load_linked(tx: &mut dyn RecordTx, kind: Kind, refs: &Refs) -> Result<Linked> {
    let mut linked = Linked::default();
    let mut queue: VecDeque<(Ref, i64, bool)> = kind
        .refs()
        .into_iter()
        .filter_map(|r| refs.get(r).map(|id| (r, id, true)))
        .collect();
    while let Some((r, id, direct)) = queue.pop_front() {
        if linked.records.contains_key(&r.kind()) {
            continue;
        }
        // A payment's bill is locked so that two payments of one bill see each other.
        let lock = r == Ref::Bill;
        let Some(found) = tx.fetch(r.kind(), id, lock).await? else {
            if direct {
                return Err(FieldError::new(
                    r.column(),
                    format!("there is no {} {id}", r.kind().noun()),
                )
                .into());
            }
            return Err(StoreError::Corrupt(format!(
                "{} {id} is referred to but missing",
                r.kind().noun()
            )));
        };
        for next in found.kind.refs() {
            if let Some(next_id) = found.refs.get(next) {
                queue.push_back((next, next_id, false));
            }
        }
        linked.records.insert(found.kind, found);
    }
    Ok(linked)
}

/// The kinds whose records refer to a `kind`, and through which reference.
fn referring(kind: Kind) -> Vec<(Kind, Ref)> {
    Kind::ALL
        .into_iter()
        .flat_map(|k| k.refs().into_iter().map(move |r| (k, r)))
        .filter(|(_, r)| r.kind() == kind)
        .collect()
}

// --- SQL ------------------------------------------------------------------------------------

/// The tuple every record query returns: id, the six references (NULL where the table has
/// none), seq, data, created_at, updated_at.
pub(crate) type RecordTuple = (
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
    i64,
    i64,
);

pub(crate) fn record(kind: Kind, t: RecordTuple) -> Result<Record> {
    let (id, clinic_id, doctor_id, patient_id, appointment_id, encounter_id, bill_id) =
        (t.0, t.1, t.2, t.3, t.4, t.5, t.6);
    let data: Map<String, Value> = json(kind.table(), &t.8)?;
    Ok(Record {
        kind,
        id,
        refs: Refs {
            clinic_id,
            doctor_id,
            patient_id,
            appointment_id,
            encounter_id,
            bill_id,
        },
        data,
        seq: t.7,
        created_at: t.9,
        updated_at: t.10,
    })
}

/// The select list of a [`RecordTuple`] for `kind`'s table.
pub(crate) fn columns(kind: Kind) -> String {
    let refs = kind.refs();
    let mut cols = vec!["id".to_string()];
    for r in Ref::ALL {
        cols.push(if refs.contains(&r) {
            r.column().to_string()
        } else {
            "CAST(NULL AS BIGINT)".to_string()
        });
    }
    cols.push(
        if kind == Kind::Bill {
            "seq"
        } else {
            "CAST(NULL AS BIGINT)"
        }
        .to_string(),
    );
    cols.extend(["data", "created_at", "updated_at"].map(String::from));
    cols.join(", ")
}

pub(crate) fn select_sql(kind: Kind, lock: bool) -> String {
    format!(
        "SELECT {} FROM {} WHERE id = $1{}",
        columns(kind),
        kind.table(),
        if lock { " FOR UPDATE" } else { "" }
    )
}

/// The written columns in order: references, day, data, then (insert) created_at/updated_at
/// or (update) updated_at.
fn written_columns(kind: Kind) -> Vec<&'static str> {
    let mut cols: Vec<&str> = kind.refs().iter().map(|r| r.column()).collect();
    if kind.has_day() {
        cols.push("day");
    }
    cols.push("data");
    cols
}

fn write_args(kind: Kind, v: &Valid, now: i64) -> Vec<Arg> {
    let mut args: Vec<Arg> = kind
        .refs()
        .iter()
        .map(|r| v.refs.get(*r).map_or(Arg::NullInt, Arg::Int))
        .collect();
    if kind.has_day() {
        let day = v.data.get("date").and_then(Value::as_str);
        args.push(day.map_or(Arg::NullText, |d| Arg::Text(d.to_string())));
    }
    args.push(Arg::Text(to_json(&v.data)));
    args.push(Arg::Int(now));
    args
}

fn insert_sql(kind: Kind) -> String {
    let mut cols = written_columns(kind);
    cols.extend(["created_at", "updated_at"]);
    let mut values: Vec<String> = (1..cols.len()).map(|i| format!("${i}")).collect();
    values.push(format!("${}", cols.len() - 1)); // updated_at = created_at
    if kind == Kind::Bill {
        cols.push("seq");
        values.push(format!("${}", cols.len() - 1));
    }
    format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING {}",
        kind.table(),
        cols.join(", "),
        values.join(", "),
        columns(kind)
    )
}

fn update_sql(kind: Kind) -> String {
    let mut cols = written_columns(kind);
    cols.push("updated_at");
    let sets: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    format!(
        "UPDATE {} SET {} WHERE id = ${} RETURNING {}",
        kind.table(),
        sets.join(", "),
        cols.len() + 1,
        columns(kind)
    )
}

fn delete_sql(kind: Kind) -> String {
    format!(
        "DELETE FROM {} WHERE id = $1 RETURNING {}",
        kind.table(),
        columns(kind)
    )
}

fn referring_sql(kind: Kind, r: Ref) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = $1)",
        kind.table(),
        r.column()
    )
}

pub(crate) const NEXT_BILL_SEQ: &str =
    "UPDATE clinics SET bills_issued = bills_issued + 1 WHERE id = $1 RETURNING bills_issued";

pub(crate) fn payments_sql() -> String {
    format!(
        "SELECT {} FROM payments WHERE bill_id = $1 ORDER BY id",
        columns(Kind::Payment)
    )
}

/// The condition "this `kind` record belongs to `r` = `param`", through parents where the
/// kind has no such column; `None` if it cannot (a clinic has no patient).
fn scope(kind: Kind, r: Ref, param: &str) -> Option<String> {
    if kind == r.kind() {
        return Some(format!("id = {param}"));
    }
    if kind.refs().contains(&r) {
        return Some(format!("{} = {param}", r.column()));
    }
    let parent = kind.parent()?;
    let inner = scope(parent.kind(), r, param)?;
    Some(format!(
        "{} IN (SELECT id FROM {} WHERE {inner})",
        parent.column(),
        parent.kind().table()
    ))
}

pub(crate) fn list_sql(kind: Kind, f: &RecordFilter) -> Result<Built> {
    let mut b = Builder {
        sql: format!("SELECT {} FROM {} WHERE TRUE", columns(kind), kind.table()),
        args: Vec::new(),
    };
    for (r, id) in &f.refs {
        let p = b.arg(Arg::Int(*id));
        let cond = scope(kind, *r, &p).ok_or_else(|| {
            StoreError::Invalid(format!(
                "{} cannot be filtered by {}",
                kind.table().replace('_', " "),
                r.column()
            ))
        })?;
        b.sql += &format!(" AND {cond}");
    }
    for (bound, op) in [(&f.day_from, ">="), (&f.day_to, "<=")] {
        if let Some(day) = bound {
            if !kind.has_day() {
                return Err(StoreError::Invalid(format!(
                    "{} have no date to filter by",
                    kind.table().replace('_', " ")
                )));
            }
            let p = b.arg(Arg::Text(day.clone()));
            b.sql += &format!(" AND day {op} {p}");
        }
    }
    if let Some(c) = &f.cursor {
        let after: i64 = c.parse().map_err(|_| StoreError::bad_cursor(c))?;
        let p = b.arg(Arg::Int(after));
        b.sql += &format!(" AND id > {p}");
    }
    let limit = page_limit(f.limit);
    let p = b.arg(Arg::Int(i64::from(limit) + 1));
    b.sql += &format!(" ORDER BY id LIMIT {p}");
    Ok(Built {
        sql: b.sql,
        args: b.args,
        limit: limit as usize,
    })
}

/// Cuts the extra row off and makes the cursor (the last id).
pub(crate) fn into_page(mut items: Vec<Record>, limit: usize) -> crate::Page<Record> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if more {
        items.last().map(|r| r.id.to_string())
    } else {
        None
    };
    crate::Page { items, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_cover_each_kind_columns() {
        assert_eq!(
            insert_sql(Kind::Bill),
            "INSERT INTO bills (encounter_id, data, created_at, updated_at, seq) \
             VALUES ($1, $2, $3, $3, $4) RETURNING id, CAST(NULL AS BIGINT), \
             CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), encounter_id, \
             CAST(NULL AS BIGINT), seq, data, created_at, updated_at"
        );
        assert!(update_sql(Kind::Appointment).starts_with(
            "UPDATE appointments SET clinic_id = $1, doctor_id = $2, patient_id = $3, \
                 day = $4, data = $5, updated_at = $6 WHERE id = $7"
        ));
    }

    #[test]
    fn a_payment_belongs_to_a_clinic_through_its_bill_and_encounter() {
        assert_eq!(
            scope(Kind::Payment, Ref::Clinic, "$1").unwrap(),
            "bill_id IN (SELECT id FROM bills WHERE encounter_id IN \
             (SELECT id FROM encounters WHERE clinic_id = $1))"
        );
        assert_eq!(scope(Kind::Patient, Ref::Patient, "$1").unwrap(), "id = $1");
        assert!(scope(Kind::Clinic, Ref::Patient, "$1").is_none());
    }

    #[test]
    fn a_patient_is_referred_to_by_appointments_and_encounters() {
        assert_eq!(
            referring(Kind::Patient),
            [
                (Kind::Appointment, Ref::Patient),
                (Kind::Encounter, Ref::Patient)
            ]
        );
    }
}
