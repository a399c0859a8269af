//! Clinic records as data, and the variables their events carry.
//!
//! carehook keeps ten kinds of clinic record (clinics, doctors, receptionists, patients,
//! appointments, encounters, medical records, prescriptions, bills, payments). This module is the
//! pure half of that: which fields each kind has and how they are validated ([`validate`]), which
//! events a change fires ([`events_for`]), and every variable of such an event computed from the
//! records involved ([`vars_for`]). The store keeps the records and the server runs the change; both
//! call in here, so what a webhook receives is decided (and unit-tested) in one place.
//!
//! Decisions a reader might otherwise undo:
//! - A record is generic ([`Record`]: id, references, a JSON object of its other fields), not one
//!   struct per kind. The ten kinds differ only in their field list ([`Kind::fields`]), so one
//!   validation, one store path and one API module serve all of them; the field table below is
//!   the whole definition of a kind.
//! - References (`clinic_id`, `patient_id`…) are integers and real columns (foreign keys) in the
//!   store; integer ids are what KiviCare-style templates show (`patient_id` = `42`).
//! - Amounts are [`Decimal`]s kept as the text the clinic sent (`110.50` stays `110.50`): never a
//!   float, so no payment is rounded on its way to an accounting system.
//! - Dates and times are stored normalised (`YYYY-MM-DD`, `HH:MM`) and shown in the clinic's
//!   formats (`date_format`, `time_format`, strftime) and time zone (`timezone`, an IANA name;
//!   UTC by default). `chrono-tz` (the IANA database compiled in, default features only) is what
//!   makes `Europe/London` mean something without reading the host's zoneinfo.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Vars;
use crate::catalog::{self, EventType};

/// A kind of clinic record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Clinic,
    Doctor,
    Receptionist,
    Patient,
    Appointment,
    Encounter,
    MedicalRecord,
    Prescription,
    Bill,
    Payment,
}

/// A reference from one record to another: a column `<name>_id` holding the other's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Ref {
    Clinic,
    Doctor,
    Patient,
    Appointment,
    Encounter,
    Bill,
}

impl Ref {
    pub const ALL: [Ref; 6] = [
        Ref::Clinic,
        Ref::Doctor,
        Ref::Patient,
        Ref::Appointment,
        Ref::Encounter,
        Ref::Bill,
    ];

    pub fn column(self) -> &'static str {
        match self {
            Ref::Clinic => "clinic_id",
            Ref::Doctor => "doctor_id",
            Ref::Patient => "patient_id",
            Ref::Appointment => "appointment_id",
            Ref::Encounter => "encounter_id",
            Ref::Bill => "bill_id",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Ref::Clinic => Kind::Clinic,
            Ref::Doctor => Kind::Doctor,
            Ref::Patient => Kind::Patient,
            Ref::Appointment => Kind::Appointment,
            Ref::Encounter => Kind::Encounter,
            Ref::Bill => Kind::Bill,
        }
    }
}

/// A record's references; `None` where the kind has none or it is not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refs {
    pub clinic_id: Option<i64>,
    pub doctor_id: Option<i64>,
    pub patient_id: Option<i64>,
    pub appointment_id: Option<i64>,
    pub encounter_id: Option<i64>,
    pub bill_id: Option<i64>,
}

impl Refs {
    pub fn get(&self, r: Ref) -> Option<i64> {
        match r {
            Ref::Clinic => self.clinic_id,
            Ref::Doctor => self.doctor_id,
            Ref::Patient => self.patient_id,
            Ref::Appointment => self.appointment_id,
            Ref::Encounter => self.encounter_id,
            Ref::Bill => self.bill_id,
        }
    }

    pub fn set(&mut self, r: Ref, id: Option<i64>) {
        let slot = match r {
            Ref::Clinic => &mut self.clinic_id,
            Ref::Doctor => &mut self.doctor_id,
            Ref::Patient => &mut self.patient_id,
            Ref::Appointment => &mut self.appointment_id,
            Ref::Encounter => &mut self.encounter_id,
            Ref::Bill => &mut self.bill_id,
        };
        *slot = id;
    }
}

/// What a change did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// A stored clinic record. `data` holds every field that is not a reference, normalised by
/// [`validate`]; `seq` is a bill's number within its clinic (`BILL-0001` is 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: Kind,
    pub id: i64,
    pub refs: Refs,
    pub data: Map<String, Value>,
    pub seq: Option<i64>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record {
    /// A text field, or "" when it is absent.
    pub fn text(&self, field: &str) -> &str {
        self.data.get(field).and_then(Value::as_str).unwrap_or("")
    }

    /// The day the store indexes for date filters (`date` of appointments, encounters and
    /// payments).
    pub fn day(&self) -> Option<&str> {
        self.kind
            .has_day()
            .then(|| self.text("date"))
            .filter(|d| !d.is_empty())
    }

    /// `BILL-0001`… for a bill; "" otherwise.
    pub fn bill_number(&self) -> String {
        self.seq.map(bill_number).unwrap_or_default()
    }
}

/// The printed number of a clinic's `seq`-th bill.
pub fn bill_number(seq: i64) -> String {
    format!("BILL-{seq:04}")
}

/// The type of a field, which decides how it is checked and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    /// Free text that may be long (notes, descriptions).
    LongText,
    Email,
    Phone,
    /// `YYYY-MM-DD`.
    Date,
    /// `HH:MM` (24 h); `HH:MM:SS` is accepted and cut to minutes.
    Time,
    /// A non-negative decimal amount, kept exactly as written.
    Amount,
    /// A three-letter currency code, stored in capitals.
    Currency,
    /// An IANA time zone name.
    TimeZone,
    /// A strftime pattern for a date or for a time of day: it may use only what that kind of
    /// value has (`%H` cannot show a date, `%Y` cannot show a time).
    Format(Shows),
    OneOf(&'static [&'static str]),
    /// A list of names: a JSON array of strings or one comma-separated string.
    List,
    /// The id of another record.
    Ref(Ref),
}

/// What a strftime pattern formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shows {
    Date,
    Time,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    /// Used when the field is absent on create.
    pub default: Option<&'static str>,
}

const fn f(name: &'static str, ty: FieldType) -> Field {
    Field {
        name,
        ty,
        required: false,
        default: None,
    }
}

const fn req(name: &'static str, ty: FieldType) -> Field {
    Field {
        required: true,
        ..f(name, ty)
    }
}

const fn def(name: &'static str, ty: FieldType, default: &'static str) -> Field {
    Field {
        default: Some(default),
        ..f(name, ty)
    }
}

/// Appointment statuses with KiviCare's numeric codes.
pub const APPOINTMENT_STATUSES: &[(&str, &str)] = &[
    ("booked", "1"),
    ("pending", "2"),
    ("check_out", "3"),
    ("check_in", "4"),
    ("cancelled", "0"),
];
const STATUS_WORDS: &[&str] = &["booked", "pending", "check_in", "check_out", "cancelled"];
pub const BLOOD_GROUPS: &[&str] = &["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"];
pub const ENCOUNTER_STATUSES: &[&str] = &["open", "closed"];
pub const MEDICAL_RECORD_TYPES: &[&str] = &["problem", "observation", "note"];
pub const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%d";
pub const DEFAULT_TIME_FORMAT: &str = "%H:%M";

use FieldType as T;

const PERSON: [Field; 4] = [
    req("first_name", T::Text),
    req("last_name", T::Text),
    f("email", T::Email),
    f("contact_number", T::Phone),
];

static CLINIC_FIELDS: &[Field] = &[
    req("name", T::Text),
    f("email", T::Email),
    f("contact_number", T::Phone),
    f("address", T::Text),
    f("city", T::Text),
    f("postal_code", T::Text),
    f("country", T::Text),
    def("currency", T::Currency, "USD"),
    def("timezone", T::TimeZone, "UTC"),
    def("date_format", T::Format(Shows::Date), DEFAULT_DATE_FORMAT),
    def("time_format", T::Format(Shows::Time), DEFAULT_TIME_FORMAT),
];
static DOCTOR_FIELDS: &[Field] = &[
    req("clinic_id", T::Ref(Ref::Clinic)),
    PERSON[0],
    PERSON[1],
    PERSON[2],
    PERSON[3],
    f("specialization", T::Text),
    f("license_number", T::Text),
];
static RECEPTIONIST_FIELDS: &[Field] = &[
    req("clinic_id", T::Ref(Ref::Clinic)),
    PERSON[0],
    PERSON[1],
    PERSON[2],
    PERSON[3],
];
static PATIENT_FIELDS: &[Field] = &[
    req("clinic_id", T::Ref(Ref::Clinic)),
    PERSON[0],
    PERSON[1],
    PERSON[2],
    PERSON[3],
    f("dob", T::Date),
    f("gender", T::Text),
    f("blood_group", T::OneOf(BLOOD_GROUPS)),
    f("address", T::Text),
    f("city", T::Text),
    f("country", T::Text),
    f("postal_code", T::Text),
];
static APPOINTMENT_FIELDS: &[Field] = &[
    req("clinic_id", T::Ref(Ref::Clinic)),
    req("doctor_id", T::Ref(Ref::Doctor)),
    req("patient_id", T::Ref(Ref::Patient)),
    req("date", T::Date),
    req("start_time", T::Time),
    f("end_time", T::Time),
    def("status", T::OneOf(STATUS_WORDS), "booked"),
    f("description", T::LongText),
    f("services", T::List),
];
static ENCOUNTER_FIELDS: &[Field] = &[
    req("clinic_id", T::Ref(Ref::Clinic)),
    req("doctor_id", T::Ref(Ref::Doctor)),
    req("patient_id", T::Ref(Ref::Patient)),
    f("appointment_id", T::Ref(Ref::Appointment)),
    // Defaults to today in the clinic's time zone (the server fills it in).
    f("date", T::Date),
    def("status", T::OneOf(ENCOUNTER_STATUSES), "open"),
    f("description", T::LongText),
];
static MEDICAL_RECORD_FIELDS: &[Field] = &[
    req("encounter_id", T::Ref(Ref::Encounter)),
    req("type", T::OneOf(MEDICAL_RECORD_TYPES)),
    req("title", T::Text),
    f("notes", T::LongText),
];
static PRESCRIPTION_FIELDS: &[Field] = &[
    req("encounter_id", T::Ref(Ref::Encounter)),
    req("name", T::Text),
    f("frequency", T::Text),
    f("duration", T::Text),
    f("instruction", T::LongText),
];
static BILL_FIELDS: &[Field] = &[
    req("encounter_id", T::Ref(Ref::Encounter)),
    req("total", T::Amount),
    def("discount", T::Amount, "0.00"),
];
static PAYMENT_FIELDS: &[Field] = &[
    req("bill_id", T::Ref(Ref::Bill)),
    req("amount", T::Amount),
    def("method", T::Text, "cash"),
    // Defaults to today in the clinic's time zone (the server fills it in).
    f("date", T::Date),
];

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Clinic,
        Kind::Doctor,
        Kind::Receptionist,
        Kind::Patient,
        Kind::Appointment,
        Kind::Encounter,
        Kind::MedicalRecord,
        Kind::Prescription,
        Kind::Bill,
        Kind::Payment,
    ];

    /// The kind in words, for messages: "medical record".
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Clinic => "clinic",
            Kind::Doctor => "doctor",
            Kind::Receptionist => "receptionist",
            Kind::Patient => "patient",
            Kind::Appointment => "appointment",
            Kind::Encounter => "encounter",
            Kind::MedicalRecord => "medical record",
            Kind::Prescription => "prescription",
            Kind::Bill => "bill",
            Kind::Payment => "payment",
        }
    }

    /// The table, and the API collection with `_` read as `-`.
    pub fn table(self) -> &'static str {
        match self {
            Kind::Clinic => "clinics",
            Kind::Doctor => "doctors",
            Kind::Receptionist => "receptionists",
            Kind::Patient => "patients",
            Kind::Appointment => "appointments",
            Kind::Encounter => "encounters",
            Kind::MedicalRecord => "medical_records",
            Kind::Prescription => "prescriptions",
            Kind::Bill => "bills",
            Kind::Payment => "payments",
        }
    }

    /// `medical-records`: how the API names the collection.
    pub fn collection(self) -> String {
        self.table().replace('_', "-")
    }

    pub fn fields(self) -> &'static [Field] {
        match self {
            Kind::Clinic => CLINIC_FIELDS,
            Kind::Doctor => DOCTOR_FIELDS,
            Kind::Receptionist => RECEPTIONIST_FIELDS,
            Kind::Patient => PATIENT_FIELDS,
            Kind::Appointment => APPOINTMENT_FIELDS,
            Kind::Encounter => ENCOUNTER_FIELDS,
            Kind::MedicalRecord => MEDICAL_RECORD_FIELDS,
            Kind::Prescription => PRESCRIPTION_FIELDS,
            Kind::Bill => BILL_FIELDS,
            Kind::Payment => PAYMENT_FIELDS,
        }
    }

    /// The references this kind's table has, in field order.
    pub fn refs(self) -> Vec<Ref> {
        self.fields()
            .iter()
            .filter_map(|f| match f.ty {
                FieldType::Ref(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Records created under another one in the API (`/encounters/{id}/prescriptions`): the
    /// reference that names the parent. Filters by clinic or patient go through it.
    pub fn parent(self) -> Option<Ref> {
        match self {
            Kind::MedicalRecord | Kind::Prescription | Kind::Bill => Some(Ref::Encounter),
            Kind::Payment => Some(Ref::Bill),
            _ => None,
        }
    }

    /// Whether a list of this kind can be filtered by `r` (`?clinic_id=`): the kind
    /// itself, one of its references, or one its parent's chain has (a payment by
    /// clinic goes through its bill's encounter). The store's list query follows the
    /// same chain; the API refuses, and its document leaves out, any other.
    pub fn filterable_by(self, r: Ref) -> bool {
        self == r.kind()
            || self.refs().contains(&r)
            || self.parent().is_some_and(|p| p.kind().filterable_by(r))
    }

    /// Whether records of this kind have a `date` the store indexes.
    pub fn has_day(self) -> bool {
        matches!(self, Kind::Appointment | Kind::Encounter | Kind::Payment)
    }

    /// The event a create, update or delete of this kind fires (appointments: see
    /// [`events_for`]). Medical records, prescriptions, bills and payments have only an "add".
    pub fn event(self, op: Op) -> Option<&'static str> {
        use Kind::*;
        Some(match (self, op) {
            (Clinic, Op::Create) => "kc_clinic_add",
            (Clinic, Op::Update) => "kc_clinic_update",
            (Clinic, Op::Delete) => "kc_clinic_delete",
            (Doctor, Op::Create) => "kc_doctor_add",
            (Doctor, Op::Update) => "kc_doctor_update",
            (Doctor, Op::Delete) => "kc_doctor_delete",
            (Receptionist, Op::Create) => "kc_receptionist_add",
            (Receptionist, Op::Update) => "kc_receptionist_update",
            (Receptionist, Op::Delete) => "kc_receptionist_delete",
            (Patient, Op::Create) => "kc_patient_add",
            (Patient, Op::Update) => "kc_patient_update",
            (Patient, Op::Delete) => "kc_patient_delete",
            (Appointment, Op::Create) => "kc_appointment_book",
            (Appointment, Op::Update) => "kc_appointment_update",
            (Appointment, Op::Delete) => "kc_appointment_delete",
            (Encounter, Op::Create) => "kc_encounter_add",
            (Encounter, Op::Update) => "kc_encounter_update",
            (Encounter, Op::Delete) => "kc_encounter_delete",
            (MedicalRecord, Op::Create) => "kc_medical_record_add",
            (Prescription, Op::Create) => "kc_prescription_add",
            (Bill, Op::Create) => "kc_bill_add",
            (Payment, Op::Create) => "kc_payment_add",
            _ => return None,
        })
    }
}

impl FromStr for Kind {
    type Err = String;
    /// `medical-records`, `medical_record`, `patients`, `patient`…
    fn from_str(s: &str) -> Result<Kind, String> {
        let s = s.replace('-', "_");
        Kind::ALL
            .into_iter()
            .find(|k| k.table() == s || k.table().trim_end_matches('s') == s)
            .ok_or_else(|| {
                format!(
                    "unknown kind of record {s:?}; one of: {}",
                    Kind::ALL.map(|k| k.table()).join(", ")
                )
            })
    }
}

/// A field the clinic must fix; the API answers 422 naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A record's fields, checked and normalised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Valid {
    pub refs: Refs,
    pub data: Map<String, Value>,
}

/// The most digits after the point an amount may have (cents).
pub const AMOUNT_DECIMALS: u32 = 2;

/// The most characters a short text field takes, and a long one.
const TEXT_MAX: usize = 500;
const LONG_TEXT_MAX: usize = 20_000;

/// Checks a record's fields and normalises them: every field of the kind known, required ones
/// present and non-empty, dates, times, e-mails, amounts, time zones and word lists parsed,
/// defaults filled in. `input` is the whole record (on an update: the stored record with the
/// patch merged in), references included. Read-only fields the API shows (`id`, `created_at`,
/// `bill_number`…) are the caller's to strip.
pub fn validate(kind: Kind, input: &Map<String, Value>) -> Result<Valid, FieldError> {
    let fields = kind.fields();
    if let Some(unknown) = input.keys().find(|k| !fields.iter().any(|f| f.name == *k)) {
        let names = fields.iter().map(|f| f.name);
        return Err(FieldError::new(
            unknown.clone(),
            format!(
                "a {} has no field \"{unknown}\"{}; its fields are: {}",
                kind.noun(),
                catalog::did_you_mean(catalog::closest_name(unknown, names)),
                fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let mut out = Valid::default();
    for field in fields {
        let value = match input.get(field.name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() && field.ty != FieldType::List => None,
            Some(v) => Some(v),
        };
        let Some(value) = value else {
            if field.required {
                return Err(FieldError::new(field.name, "is required"));
            }
            if let Some(d) = field.default {
                out.data.insert(field.name.into(), d.into());
            }
            continue;
        };
        let err = |m: String| FieldError::new(field.name, m);
        match field.ty {
            FieldType::Ref(r) => {
                // A JSON integer, as the API documents: `"1"` is refused rather than guessed at.
                let id = match value {
                    Value::Number(n) => n.as_i64(),
                    _ => None,
                }
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    err(format!(
                        "must be the id of a {} (a positive JSON integer)",
                        r.kind().noun()
                    ))
                })?;
                out.refs.set(r, Some(id));
            }
            FieldType::List => {
                let items: Vec<String> = match value {
                    Value::String(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
                    Value::Array(a) => a
                        .iter()
                        .map(|v| v.as_str().map(|s| s.trim().to_string()))
                        .collect::<Option<_>>()
                        .ok_or_else(|| err("must be a list of names".into()))?,
                    _ => return Err(err("must be a list of names".into())),
                };
                let items: Vec<Value> = items
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .map(Value::String)
                    .collect();
                if items
                    .iter()
                    .any(|s| s.as_str().is_some_and(|s| s.len() > TEXT_MAX))
                {
                    return Err(err(format!("each name may be at most {TEXT_MAX} bytes")));
                }
                out.data.insert(field.name.into(), Value::Array(items));
            }
            ty => {
                let text = match value {
                    Value::String(s) => s.trim().to_string(),
                    // Whole numbers are fine for amounts and the like; a JSON fraction has
                    // already been through a float, so it is refused rather than trusted.
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    Value::Number(_) if ty == FieldType::Amount => {
                        return Err(err(
                            "send amounts as text (\"110.50\") so no digit is lost".into()
                        ));
                    }
                    _ => return Err(err("must be text".into())),
                };
                let text = normalise(ty, &text).map_err(err)?;
                out.data.insert(field.name.into(), Value::String(text));
            }
        }
    }
    check_record(kind, &out)?;
    Ok(out)
}

fn normalise(ty: FieldType, text: &str) -> Result<String, String> {
    let max = if ty == FieldType::LongText {
        LONG_TEXT_MAX
    } else {
        TEXT_MAX
    };
    if text.len() > max {
        return Err(format!("may be at most {max} bytes"));
    }
    // No NUL, escape or other control character: they show as nothing (or worse) in every
    // system a webhook feeds. Long text keeps its line breaks and tabs.
    let allowed = |c: char| ty == FieldType::LongText && matches!(c, '\n' | '\r' | '\t');
    if let Some(c) = text.chars().find(|c| c.is_control() && !allowed(*c)) {
        return Err(format!(
            "must not contain control characters (found U+{:04X})",
            c as u32
        ));
    }
    match ty {
        FieldType::Text | FieldType::LongText => Ok(text.to_string()),
        FieldType::Email => {
            if is_email(text) {
                Ok(text.to_string())
            } else {
                Err(format!("{text:?} is not an e-mail address"))
            }
        }
        FieldType::Phone => {
            let digits = text.chars().filter(char::is_ascii_digit).count();
            let ok = text
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            if ok && (3..=20).contains(&digits) {
                Ok(text.to_string())
            } else {
                Err(format!(
                    "{text:?} is not a phone number (digits, spaces and + - ( ) .)"
                ))
            }
        }
        FieldType::Date => parse_date(text).map(|d| d.format("%Y-%m-%d").to_string()),
        FieldType::Time => parse_time(text).map(|t| t.format("%H:%M").to_string()),
        FieldType::Amount => {
            let d = Decimal::parse(text)?;
            if d.is_negative() {
                return Err("must not be negative".into());
            }
            if d.scale > AMOUNT_DECIMALS {
                return Err(format!(
                    "{text:?} has more than {AMOUNT_DECIMALS} digits after the point"
                ));
            }
            Ok(text.to_string())
        }
        FieldType::Currency => {
            if text.len() == 3 && text.chars().all(|c| c.is_ascii_alphabetic()) {
                Ok(text.to_ascii_uppercase())
            } else {
                Err(format!(
                    "{text:?} is not a three-letter currency code (GBP, EUR, USD…)"
                ))
            }
        }
        FieldType::TimeZone => chrono_tz::Tz::from_str(text)
            .map(|tz| tz.name().to_string())
            .map_err(|_| format!("{text:?} is not an IANA time zone (e.g. Europe/London)")),
        FieldType::Format(shows) => {
            if StrftimeItems::new(text).any(|i| matches!(i, Item::Error)) {
                return Err(format!("{text:?} is not a valid strftime format"));
            }
            // Formatting is the only complete check: chrono fails (at display time) on a
            // specifier the value lacks, so try the pattern on a sample of its kind.
            let sample = match shows {
                Shows::Date => {
                    try_format(NaiveDate::from_ymd_opt(2026, 1, 2).map(|d| d.format(text)))
                }
                Shows::Time => {
                    try_format(NaiveTime::from_hms_opt(13, 4, 5).map(|t| t.format(text)))
                }
            };
            match sample {
                Some(shown) if shown.len() <= TEXT_MAX => Ok(text.to_string()),
                Some(_) => Err(format!("{text:?} makes too long a text")),
                None => Err(match shows {
                    Shows::Date => format!(
                        "{text:?} cannot format a date: use only date specifiers (%Y, %m, %d, %b…), no time of day or zone"
                    ),
                    Shows::Time => format!(
                        "{text:?} cannot format a time of day: use only time specifiers (%H, %M, %I, %p…), no date or zone"
                    ),
                }),
            }
        }
        FieldType::OneOf(words) => {
            if words.contains(&text) {
                Ok(text.to_string())
            } else {
                Err(format!("{text:?} is not one of: {}", words.join(", ")))
            }
        }
        FieldType::List | FieldType::Ref(_) => unreachable!("handled by the caller"),
    }
}

/// Rules across the fields of one record.
fn check_record(kind: Kind, v: &Valid) -> Result<(), FieldError> {
    let text = |k: &str| v.data.get(k).and_then(Value::as_str).unwrap_or("");
    match kind {
        Kind::Appointment
            if !text("end_time").is_empty() && text("end_time") <= text("start_time") =>
        {
            Err(FieldError::new("end_time", "must be after start_time"))
        }
        Kind::Bill => {
            let total = Decimal::parse(text("total")).map_err(|e| FieldError::new("total", e))?;
            let discount =
                Decimal::parse(text("discount")).map_err(|e| FieldError::new("discount", e))?;
            if discount > total {
                Err(FieldError::new("discount", "must not be more than total"))
            } else {
                Ok(())
            }
        }
        Kind::Payment if Decimal::parse(text("amount")).is_ok_and(|a| a.is_zero()) => {
            Err(FieldError::new("amount", "must be more than zero"))
        }
        _ => Ok(()),
    }
}

/// Shows a chrono formatting without the panic `to_string` has when the pattern asks for
/// something the value lacks (a stored pattern from before validation was this strict).
fn try_format(shown: Option<impl fmt::Display>) -> Option<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    write!(out, "{}", shown?).ok()?;
    Some(out)
}

/// The years a clinic date may fall in: a birth date or an appointment outside them is a typo
/// (`0000-01-01`, `20026-01-01`), never a record.
pub const YEARS: std::ops::RangeInclusive<i32> = 1900..=2199;

pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    use chrono::Datelike as _;
    let d = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date as YYYY-MM-DD"))?;
    if !YEARS.contains(&d.year()) {
        return Err(format!(
            "{text:?} is outside the years {} to {}",
            YEARS.start(),
            YEARS.end()
        ));
    }
    Ok(d)
}

/// A date (`YYYY-MM-DD`) and a time of day (`HH:MM`) read in time zone `tz`, as RFC 3339
/// with the offset (`appointment_start`); empty if either does not read. A time that a
/// daylight-saving change skips is read an hour later, as a wall clock would show it.
pub fn local_instant(tz: chrono_tz::Tz, date: &str, time: &str) -> String {
    let (Ok(d), Ok(t)) = (parse_date(date), parse_time(time)) else {
        return String::new();
    };
    let local = d.and_time(t);
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, false))
        .unwrap_or_default()
}

pub fn parse_time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .map_err(|_| format!("{text:?} is not a time as HH:MM (24 h)"))
}

/// A plausible e-mail address: one `@`, a local part, a dotted domain, no spaces.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && s.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An exact decimal number: `units / 10^scale`. Enough for money (18 digits before the point,
/// 6 after), with no float anywhere.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

impl Decimal {
    pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };

    /// `123`, `-4.50`, `0.125`. No exponent, no thousands separator, no `+`.
    pub fn parse(s: &str) -> Result<Decimal, String> {
        let bad = || format!("{s:?} is not a decimal number like 110.50");
        let (negative, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (int, frac) = match rest.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (rest, None),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return Err(bad());
        }
        let frac = frac.unwrap_or("");
        if int.len() > 18 || frac.len() > 6 {
            return Err(format!(
                "{s:?} has too many digits (at most 18 before the point and 6 after)"
            ));
        }
        let units: i128 = format!("{int}{frac}").parse().map_err(|_| bad())?;
        Ok(Decimal {
            units: if negative { -units } else { units },
            scale: frac.len() as u32,
        })
    }

    fn at_scale(self, scale: u32) -> i128 {
        self.units * 10i128.pow(scale - self.scale)
    }

    pub fn is_negative(self) -> bool {
        self.units < 0
    }

    pub fn is_zero(self) -> bool {
        self.units == 0
    }
}

/// The scale of the result is the larger of the two, so `120.50 - 10` is `110.50`.
impl std::ops::Sub for Decimal {
    type Output = Decimal;
    fn sub(self, other: Decimal) -> Decimal {
        let scale = self.scale.max(other.scale);
        Decimal {
            units: self.at_scale(scale) - other.at_scale(scale),
            scale,
        }
    }
}

impl std::ops::Add for Decimal {
    type Output = Decimal;
    fn add(self, other: Decimal) -> Decimal {
        let scale = self.scale.max(other.scale);
        Decimal {
            units: self.at_scale(scale) + other.at_scale(scale),
            scale,
        }
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Decimal {}
impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let scale = self.scale.max(other.scale);
        self.at_scale(scale).cmp(&other.at_scale(scale))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let abs = self.units.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let p = 10u128.pow(self.scale);
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / p,
            abs % p,
            width = self.scale as usize
        )
    }
}

fn amount(r: &Record, field: &str) -> Decimal {
    Decimal::parse(r.text(field)).unwrap_or(Decimal::ZERO)
}

/// What a bill asks for: total minus discount.
pub fn bill_amount(bill: &Record) -> Decimal {
    amount(bill, "total") - amount(bill, "discount")
}

/// The sum of some payments' amounts.
pub fn paid(payments: &[Record]) -> Decimal {
    payments
        .iter()
        .fold(Decimal::ZERO, |sum, p| sum + amount(p, "amount"))
}

/// `paid` once the payments cover the amount, else `unpaid`.
pub fn bill_status(bill: &Record, payments: &[Record]) -> &'static str {
    if paid(payments) >= bill_amount(bill) {
        "paid"
    } else {
        "unpaid"
    }
}

/// The events a change fires, in order. An appointment update that changes its status fires
/// `kc_appointment_status_change`; one that changes anything else fires
/// `kc_appointment_update` (a PATCH doing both fires both). An update that changes nothing
/// fires nothing.
pub fn events_for(kind: Kind, op: Op, old: Option<&Record>, new: &Record) -> Vec<&'static str> {
    if op == Op::Update {
        let Some(old) = old else {
            return Vec::new();
        };
        if kind == Kind::Appointment {
            let mut out = Vec::new();
            let status_changed = old.text("status") != new.text("status");
            let mut rest_old = old.data.clone();
            let mut rest_new = new.data.clone();
            rest_old.remove("status");
            rest_new.remove("status");
            if rest_old != rest_new || old.refs != new.refs {
                out.push("kc_appointment_update");
            }
            if status_changed {
                out.push("kc_appointment_status_change");
            }
            return out;
        }
        if old.data == new.data && old.refs == new.refs {
            return Vec::new();
        }
    }
    kind.event(op).into_iter().collect()
}

/// Who and when, for the `common` variables.
#[derive(Debug, Clone)]
pub struct Occasion<'a> {
    pub event_id: &'a str,
    pub now: DateTime<Utc>,
    /// The clinic user whose action fired the event, when the caller said.
    pub user_id: Option<i64>,
}

/// The records an event is about: at most one of each kind (the subject and what it refers
/// to), plus an appointment's status before a status change.
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    pub records: BTreeMap<Kind, &'a Record>,
    pub previous_status: Option<&'a str>,
}

impl<'a> Subject<'a> {
    pub fn with(mut self, r: &'a Record) -> Self {
        self.records.insert(r.kind, r);
        self
    }

    fn get(&self, kind: Kind) -> Option<&'a Record> {
        self.records.get(&kind).copied()
    }
}

/// How the clinic shows dates and times.
#[derive(Debug, Clone)]
struct Local {
    tz: chrono_tz::Tz,
    date_format: String,
    time_format: String,
}

impl Local {
    fn of(clinic: Option<&Record>) -> Local {
        let pick = |field: &str, default: &str| {
            clinic
                .map(|c| c.text(field))
                .filter(|s| !s.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        Local {
            tz: chrono_tz::Tz::from_str(&pick("timezone", "UTC")).unwrap_or(chrono_tz::UTC),
            date_format: pick("date_format", DEFAULT_DATE_FORMAT),
            time_format: pick("time_format", DEFAULT_TIME_FORMAT),
        }
    }

    /// A stored `YYYY-MM-DD` in the clinic's date format.
    fn date(&self, stored: &str) -> String {
        match parse_date(stored) {
            Ok(d) => self.show_date(d),
            Err(_) => stored.to_string(),
        }
    }

    fn time(&self, stored: &str) -> String {
        match parse_time(stored) {
            Ok(t) => self.show_time(t),
            Err(_) => stored.to_string(),
        }
    }

    /// In the clinic's format; in the default one should a pattern stored before formats were
    /// checked against their kind not fit the value.
    fn show_date(&self, d: NaiveDate) -> String {
        try_format(Some(d.format(&self.date_format)))
            .unwrap_or_else(|| d.format(DEFAULT_DATE_FORMAT).to_string())
    }

    fn show_time(&self, t: NaiveTime) -> String {
        try_format(Some(t.format(&self.time_format)))
            .unwrap_or_else(|| t.format(DEFAULT_TIME_FORMAT).to_string())
    }

    fn instant(&self, date: &str, time: &str) -> String {
        local_instant(self.tz, date, time)
    }

    fn date_time(&self, at: DateTime<Utc>) -> String {
        self.tz
            .from_utc_datetime(&at.naive_utc())
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    }
}

/// Every variable of `event`, computed from the records. A variable whose record is missing
/// (an encounter without an appointment) is empty; every variable of the event is present.
pub fn vars_for(event: &EventType, subject: &Subject<'_>, occasion: &Occasion<'_>) -> Vars {
    let clinic = subject.get(Kind::Clinic);
    let local = Local::of(clinic);
    let mut all = Vars::new();
    let mut put = |k: &str, v: String| {
        all.insert(k.to_string(), v);
    };

    // common
    let now = local.tz.from_utc_datetime(&occasion.now.naive_utc());
    put("current_date", local.show_date(now.date_naive()));
    put("current_time", local.show_time(now.time()));
    put("current_date_time", local.date_time(occasion.now));
    put(
        "current_user_id",
        occasion.user_id.map(|u| u.to_string()).unwrap_or_default(),
    );
    put("event_name", event.name.to_string());
    put("event_id", occasion.event_id.to_string());

    if let Some(c) = clinic {
        put("clinic_id", c.id.to_string());
        put("clinic_name", c.text("name").into());
        put("clinic_email", c.text("email").into());
        put("clinic_contact_number", c.text("contact_number").into());
        put("clinic_address", address(c));
        put("clinic_city", c.text("city").into());
        put("clinic_country", c.text("country").into());
        put("clinic_postal_code", c.text("postal_code").into());
        put("clinic_currency", c.text("currency").into());
    }
    for (kind, prefix) in [
        (Kind::Doctor, "doctor"),
        (Kind::Patient, "patient"),
        (Kind::Receptionist, "receptionist"),
    ] {
        if let Some(p) = subject.get(kind) {
            put(&format!("{prefix}_id"), p.id.to_string());
            put(&format!("{prefix}_name"), full_name(p));
            for field in ["first_name", "last_name", "email", "contact_number"] {
                put(&format!("{prefix}_{field}"), p.text(field).into());
            }
        }
    }
    if let Some(d) = subject.get(Kind::Doctor) {
        put("doctor_specialization", d.text("specialization").into());
        put("doctor_license_number", d.text("license_number").into());
    }
    if let Some(p) = subject.get(Kind::Patient) {
        put("patient_dob", local.date(p.text("dob")));
        put("patient_gender", p.text("gender").into());
        put("patient_blood_group", p.text("blood_group").into());
        put("patient_address", address(p));
        put("patient_city", p.text("city").into());
        put("patient_country", p.text("country").into());
        put("patient_postal_code", p.text("postal_code").into());
    }
    if let Some(a) = subject.get(Kind::Appointment) {
        let status = a.text("status");
        put("appointment_id", a.id.to_string());
        put("appointment_date", local.date(a.text("date")));
        put("appointment_start_time", local.time(a.text("start_time")));
        put("appointment_end_time", local.time(a.text("end_time")));
        put(
            "appointment_start",
            local.instant(a.text("date"), a.text("start_time")),
        );
        put("appointment_status", status.into());
        put("appointment_status_code", status_code(status).into());
        put("appointment_description", a.text("description").into());
        put(
            "appointment_created_at",
            local.date_time(DateTime::from_timestamp_millis(a.created_at).unwrap_or_default()),
        );
        put("service_names", service_names(a));
    }
    if let Some(e) = subject.get(Kind::Encounter) {
        put("encounter_id", e.id.to_string());
        put("encounter_date", local.date(e.text("date")));
        put("encounter_status", e.text("status").into());
        put("encounter_description", e.text("description").into());
    }
    if let Some(m) = subject.get(Kind::MedicalRecord) {
        put("medical_record_id", m.id.to_string());
        put("medical_record_type", m.text("type").into());
        put("medical_record_title", m.text("title").into());
        put("medical_record_notes", m.text("notes").into());
    }
    if let Some(p) = subject.get(Kind::Prescription) {
        put("prescription_id", p.id.to_string());
        for field in ["name", "frequency", "duration", "instruction"] {
            put(&format!("prescription_{field}"), p.text(field).into());
        }
        put("prescription_details", prescription_details(p));
    }
    if let Some(b) = subject.get(Kind::Bill) {
        put("bill_id", b.id.to_string());
        put("bill_number", b.bill_number());
        put("bill_total", b.text("total").into());
        put("bill_discount", b.text("discount").into());
        put("bill_amount", bill_amount(b).to_string());
        put("bill_status", b.text("status").into());
    }
    if let Some(p) = subject.get(Kind::Payment) {
        put("payment_id", p.id.to_string());
        put("payment_amount", p.text("amount").into());
        put(
            "payment_currency",
            clinic.map(|c| c.text("currency")).unwrap_or("").into(),
        );
        put("payment_method", p.text("method").into());
        put("payment_date", local.date(p.text("date")));
    }
    if let Some(prev) = subject.previous_status {
        put("appointment_previous_status", prev.into());
    }

    // Exactly the event's variables: each one present (empty when its record is missing),
    // nothing from a group the event does not carry.
    event
        .variables()
        .map(|v| (v.name.to_string(), all.remove(v.name).unwrap_or_default()))
        .collect()
}

/// KiviCare's number for a status word.
pub fn status_code(status: &str) -> &'static str {
    APPOINTMENT_STATUSES
        .iter()
        .find(|(w, _)| *w == status)
        .map_or("", |(_, c)| c)
}

/// First and last name joined by one space (either may be missing).
pub fn full_name(r: &Record) -> String {
    join([r.text("first_name"), r.text("last_name")], " ")
}

/// "address, city, postal code, country", leaving out the parts not given.
pub fn address(r: &Record) -> String {
    join(
        [
            r.text("address"),
            r.text("city"),
            r.text("postal_code"),
            r.text("country"),
        ],
        ", ",
    )
}

fn join<'a>(parts: impl IntoIterator<Item = &'a str>, sep: &str) -> String {
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(sep)
}

fn service_names(a: &Record) -> String {
    match a.data.get("services") {
        Some(Value::Array(items)) => join(items.iter().filter_map(Value::as_str), ", "),
        _ => String::new(),
    }
}

/// "Amoxicillin 500 mg — 3 times a day for 7 days — take after meals": the parts given, in
/// the order a pharmacist reads them.
pub fn prescription_details(p: &Record) -> String {
    let (frequency, duration) = (p.text("frequency").trim(), p.text("duration").trim());
    let when = match (frequency.is_empty(), duration.is_empty()) {
        (false, false) => format!("{frequency} for {duration}"),
        (false, true) => frequency.to_string(),
        (true, false) => format!("for {duration}"),
        (true, true) => String::new(),
    };
    let instruction = lower_first_word(p.text("instruction").trim());
    join([p.text("name"), when.as_str(), instruction.as_str()], " — ")
}

/// "Take after meals" → "take after meals", but "MRI in 2 weeks" stays.
fn lower_first_word(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() && !b.is_uppercase() => {
            a.to_lowercase().chain(s[a.len_utf8()..].chars()).collect()
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(kind: Kind, id: i64, data: Value) -> Record {
        let mut input = data.as_object().unwrap().clone();
        let valid = validate(kind, &input).unwrap_or_else(|e| panic!("{e}"));
        input.clear();
        Record {
            kind,
            id,
            refs: valid.refs,
            data: valid.data,
            seq: None,
            created_at: 1_795_183_500_000, // 2026-11-20T14:05:00Z
            updated_at: 1_795_183_500_000,
        }
    }

    fn world() -> Vec<Record> {
        let clinic = record(
            Kind::Clinic,
            1,
            json!({"name": "Clínica d'Ávila 🏥", "email": "hola@avila.example.com",
                   "contact_number": "+34 910 000 000", "address": "Calle Mayor 1",
                   "city": "Madrid", "postal_code": "28013", "country": "España",
                   "currency": "eur", "timezone": "Europe/Madrid"}),
        );
        let doctor = record(
            Kind::Doctor,
            12,
            json!({"clinic_id": 1, "first_name": "Zoë", "last_name": "Núñez",
                   "specialization": "Pediatría", "license_number": "28/12345"}),
        );
        let patient = record(
            Kind::Patient,
            42,
            json!({"clinic_id": 1, "first_name": "Maria \"Mia\"", "last_name": "O'Brien",
                   "dob": "1988-04-17", "blood_group": "O+", "city": "Madrid"}),
        );
        let appointment = record(
            Kind::Appointment,
            318,
            json!({"clinic_id": 1, "doctor_id": 12, "patient_id": 42, "date": "2026-11-26",
                   "start_time": "16:30", "end_time": "16:45:00", "status": "check_in",
                   "services": "Consulta,  Frotis "}),
        );
        vec![clinic, doctor, patient, appointment]
    }

    fn occasion() -> Occasion<'static> {
        Occasion {
            event_id: "evt-1",
            now: DateTime::parse_from_rfc3339("2026-11-26T23:30:00Z")
                .unwrap()
                .with_timezone(&Utc),
            user_id: Some(3),
        }
    }

    #[test]
    fn an_appointment_event_carries_every_variable_from_its_records() {
        let w = world();
        let subject = w.iter().fold(Subject::default(), |s, r| s.with(r));
        let event = catalog::lookup("kc_appointment_book").unwrap();
        let vars = vars_for(event, &subject, &occasion());
        let names: Vec<&str> = event.variables().map(|v| v.name).collect();
        assert_eq!(vars.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut n = names.clone();
            n.sort();
            n
        });
        let v = |k: &str| vars[k].as_str();
        // Madrid is UTC+1 in November: 23:30 UTC is the next day there.
        assert_eq!(v("current_date"), "2026-11-27");
        assert_eq!(v("current_time"), "00:30");
        assert_eq!(v("current_date_time"), "2026-11-27T00:30:00+01:00");
        assert_eq!(v("current_user_id"), "3");
        assert_eq!(v("event_id"), "evt-1");
        assert_eq!(v("clinic_name"), "Clínica d'Ávila 🏥");
        assert_eq!(v("clinic_address"), "Calle Mayor 1, Madrid, 28013, España");
        assert_eq!(v("clinic_currency"), "EUR");
        assert_eq!(v("doctor_name"), "Zoë Núñez");
        assert_eq!(v("doctor_email"), "");
        assert_eq!(v("patient_name"), "Maria \"Mia\" O'Brien");
        assert_eq!(v("patient_address"), "Madrid");
        assert_eq!(v("appointment_end_time"), "16:45");
        assert_eq!(v("appointment_status"), "check_in");
        assert_eq!(v("appointment_status_code"), "4");
        assert_eq!(v("appointment_created_at"), "2026-11-20T15:05:00+01:00");
        assert_eq!(v("service_names"), "Consulta, Frotis");
    }

    #[test]
    fn the_clinic_formats_dates_and_times() {
        let mut w = world();
        w[0].data.insert("date_format".into(), "%d/%m/%Y".into());
        w[0].data.insert("time_format".into(), "%I:%M %p".into());
        let subject = w.iter().fold(Subject::default(), |s, r| s.with(r));
        let vars = vars_for(
            catalog::lookup("kc_appointment_book").unwrap(),
            &subject,
            &occasion(),
        );
        assert_eq!(vars["appointment_date"], "26/11/2026");
        assert_eq!(vars["appointment_start_time"], "04:30 PM");
        assert_eq!(vars["current_date"], "27/11/2026");
        assert_eq!(vars["patient_dob"], "17/04/1988");
    }

    #[test]
    fn a_format_must_fit_the_kind_of_value_it_formats() {
        let clinic = |k: &str, f: &str| {
            validate(
                Kind::Clinic,
                json!({"name": "x", k: f}).as_object().unwrap(),
            )
        };
        for (field, pattern) in [
            ("date_format", "%H:%M"),
            ("date_format", "%Y %z"),
            ("date_format", "%s"),
            ("date_format", "%c"),
            ("time_format", "%Y"),
            ("time_format", "%d/%m"),
            ("time_format", "%Z"),
            ("time_format", "%A %H"),
        ] {
            let e = clinic(field, pattern).unwrap_err();
            assert_eq!(e.field, field, "{pattern}");
        }
        for (field, pattern) in [
            ("date_format", "%d %B %Y (%a)"),
            ("date_format", "%F"),
            ("time_format", "%I:%M:%S %p"),
            ("time_format", "%T"),
        ] {
            assert!(clinic(field, pattern).is_ok(), "{field} {pattern}");
        }
    }

    #[test]
    fn a_stored_format_that_cannot_format_its_value_falls_back_instead_of_panicking() {
        // A clinic saved before formats were checked against their kind.
        let mut w = world();
        w[0].data.insert("date_format".into(), "%H:%M".into());
        w[0].data.insert("time_format".into(), "%Y %z".into());
        let subject = w.iter().fold(Subject::default(), |s, r| s.with(r));
        let vars = vars_for(
            catalog::lookup("kc_appointment_book").unwrap(),
            &subject,
            &occasion(),
        );
        assert_eq!(vars["appointment_date"], "2026-11-26");
        assert_eq!(vars["appointment_start_time"], "16:30");
        assert_eq!(vars["current_date"], "2026-11-27");
        assert_eq!(vars["patient_dob"], "1988-04-17");
    }

    #[test]
    fn values_no_system_means_are_refused_naming_the_field() {
        let bad = |kind, v: Value| validate(kind, v.as_object().unwrap()).unwrap_err().field;
        let patient = |extra: Value| {
            let mut p = json!({"clinic_id": 1, "first_name": "a", "last_name": "b"});
            p.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            p
        };
        assert_eq!(bad(Kind::Clinic, json!({"name": "\u{0}"})), "name");
        assert_eq!(bad(Kind::Clinic, json!({"name": "a\u{1b}[31m"})), "name");
        assert_eq!(
            bad(Kind::Clinic, json!({"name": "x", "city": "a\nb"})),
            "city"
        );
        assert_eq!(
            bad(
                Kind::Doctor,
                json!({"clinic_id": "1", "first_name": "a", "last_name": "b"})
            ),
            "clinic_id"
        );
        assert_eq!(
            bad(
                Kind::Doctor,
                json!({"clinic_id": 1.5, "first_name": "a", "last_name": "b"})
            ),
            "clinic_id"
        );
        assert_eq!(
            bad(Kind::Patient, patient(json!({"dob": "0000-01-01"}))),
            "dob"
        );
        assert_eq!(
            bad(Kind::Patient, patient(json!({"dob": "1899-12-31"}))),
            "dob"
        );
        assert_eq!(
            bad(Kind::Patient, patient(json!({"dob": "+12026-01-01"}))),
            "dob"
        );
        assert_eq!(
            bad(Kind::Payment, json!({"bill_id": 1, "amount": "0.001"})),
            "amount"
        );
        assert_eq!(
            bad(Kind::Bill, json!({"encounter_id": 1, "total": "10.005"})),
            "total"
        );
        assert!(validate(
            Kind::Encounter,
            json!({"clinic_id": 1, "doctor_id": 1, "patient_id": 1, "description": "line 1\n\tline 2"})
                .as_object()
                .unwrap()
        )
        .is_ok());
        assert!(
            validate(
                Kind::Payment,
                json!({"bill_id": 1, "amount": "0.01"}).as_object().unwrap()
            )
            .is_ok()
        );
        assert!(
            validate(
                Kind::Patient,
                patient(json!({"dob": "1900-01-01"})).as_object().unwrap()
            )
            .is_ok()
        );
    }

    #[test]
    fn status_codes_follow_kivicare() {
        let codes: Vec<_> = STATUS_WORDS.iter().map(|s| status_code(s)).collect();
        assert_eq!(codes, ["1", "2", "4", "3", "0"]);
    }

    #[test]
    fn a_missing_record_leaves_its_variables_empty_but_present() {
        let event = catalog::lookup("kc_encounter_add").unwrap();
        let vars = vars_for(event, &Subject::default(), &occasion());
        assert_eq!(vars.len(), event.variables().count());
        assert_eq!(vars["appointment_id"], "");
        assert_eq!(vars["current_date_time"], "2026-11-26T23:30:00+00:00");
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        let bad = |kind, v: Value| validate(kind, v.as_object().unwrap()).unwrap_err().field;
        assert_eq!(bad(Kind::Clinic, json!({})), "name");
        assert_eq!(bad(Kind::Clinic, json!({"name": "  "})), "name");
        assert_eq!(
            bad(Kind::Clinic, json!({"name": "x", "timezone": "Mars/Base"})),
            "timezone"
        );
        assert_eq!(
            bad(Kind::Clinic, json!({"name": "x", "date_format": "%Q"})),
            "date_format"
        );
        assert_eq!(
            bad(
                Kind::Patient,
                json!({"clinic_id": 1, "first_name": "a", "last_name": "b", "email": "nope"})
            ),
            "email"
        );
        assert_eq!(
            bad(
                Kind::Patient,
                json!({"clinic_id": 1, "first_name": "a", "last_name": "b", "dob": "17/04/1988"})
            ),
            "dob"
        );
        assert_eq!(
            bad(
                Kind::Patient,
                json!({"clinic_id": 1, "first_name": "a", "last_name": "b", "naem": "x"})
            ),
            "naem"
        );
        assert_eq!(
            bad(
                Kind::Doctor,
                json!({"clinic_id": "one", "first_name": "a", "last_name": "b"})
            ),
            "clinic_id"
        );
        let appt = json!({"clinic_id": 1, "doctor_id": 2, "patient_id": 3, "date": "2026-11-26",
                          "start_time": "10:00", "end_time": "09:00"});
        assert_eq!(bad(Kind::Appointment, appt.clone()), "end_time");
        let mut appt = appt;
        appt["end_time"] = json!("10:15");
        appt["status"] = json!("done");
        assert_eq!(bad(Kind::Appointment, appt), "status");
        assert_eq!(
            bad(
                Kind::Bill,
                json!({"encounter_id": 1, "total": "10", "discount": "10.01"})
            ),
            "discount"
        );
        assert_eq!(
            bad(Kind::Bill, json!({"encounter_id": 1, "total": 12.5})),
            "total"
        );
        assert_eq!(
            bad(Kind::Payment, json!({"bill_id": 1, "amount": "0.00"})),
            "amount"
        );
        assert_eq!(
            bad(Kind::Payment, json!({"bill_id": 1, "amount": "1,000"})),
            "amount"
        );
    }

    #[test]
    fn validation_fills_defaults_and_keeps_amounts_as_written() {
        let v = validate(
            Kind::Bill,
            json!({"encounter_id": 7, "total": "120.50"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(v.refs.encounter_id, Some(7));
        assert_eq!(v.data["total"], "120.50");
        assert_eq!(v.data["discount"], "0.00");
        let v = validate(Kind::Clinic, json!({"name": "x"}).as_object().unwrap()).unwrap();
        assert_eq!(v.data["timezone"], "UTC");
        assert_eq!(v.data["currency"], "USD");
    }

    #[test]
    fn decimals_are_exact() {
        let d = |s: &str| Decimal::parse(s).unwrap();
        assert_eq!((d("120.50") - d("10")).to_string(), "110.50");
        assert_eq!((d("0.1") + d("0.2")).to_string(), "0.3");
        assert_eq!(d("1234.50").to_string(), "1234.50");
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert!(d("110.5") == d("110.50"));
        assert!(d("99.99") < d("100"));
        for bad in ["", ".5", "5.", "1e3", "+1", "1,5", "abc", "1.1234567"] {
            assert!(Decimal::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bill_is_paid_once_payments_cover_its_amount() {
        let mut bill = record(
            Kind::Bill,
            1,
            json!({"encounter_id": 1, "total": "120.50", "discount": "10.00"}),
        );
        bill.seq = Some(7);
        assert_eq!(bill.bill_number(), "BILL-0007");
        let pay = |a: &str| record(Kind::Payment, 1, json!({"bill_id": 1, "amount": a}));
        assert_eq!(bill_status(&bill, &[pay("100")]), "unpaid");
        assert_eq!(bill_status(&bill, &[pay("100"), pay("10.50")]), "paid");
    }

    #[test]
    fn prescription_details_read_as_one_line() {
        let p = record(
            Kind::Prescription,
            1,
            json!({"encounter_id": 1, "name": "Amoxicillin 500 mg", "frequency": "3 times a day",
                   "duration": "7 days", "instruction": "Take after meals"}),
        );
        assert_eq!(
            prescription_details(&p),
            "Amoxicillin 500 mg — 3 times a day for 7 days — take after meals"
        );
        let p = record(
            Kind::Prescription,
            1,
            json!({"encounter_id": 1, "name": "Ibuprofen", "duration": "3 days",
                   "instruction": "MRI if no better"}),
        );
        assert_eq!(
            prescription_details(&p),
            "Ibuprofen — for 3 days — MRI if no better"
        );
    }

    #[test]
    fn an_appointment_status_change_is_its_own_event() {
        let w = world();
        let old = &w[3];
        let mut new = old.clone();
        new.data.insert("status".into(), "cancelled".into());
        assert_eq!(
            events_for(Kind::Appointment, Op::Update, Some(old), &new),
            ["kc_appointment_status_change"]
        );
        new.data.insert("description".into(), "moved".into());
        assert_eq!(
            events_for(Kind::Appointment, Op::Update, Some(old), &new),
            ["kc_appointment_update", "kc_appointment_status_change"]
        );
        assert!(events_for(Kind::Patient, Op::Update, Some(&w[2]), &w[2]).is_empty());
        assert!(events_for(Kind::Payment, Op::Delete, None, &w[2]).is_empty());
    }

    #[test]
    fn every_kind_parses_from_its_collection_name() {
        for k in Kind::ALL {
            assert_eq!(k.collection().parse::<Kind>().unwrap(), k);
        }
        assert_eq!("patient".parse::<Kind>().unwrap(), Kind::Patient);
        assert!("nurses".parse::<Kind>().is_err());
    }

    #[test]
    fn every_catalog_event_is_fired_by_some_change() {
        let mut fired: Vec<&str> = Kind::ALL
            .iter()
            .flat_map(|k| [Op::Create, Op::Update, Op::Delete].map(|op| k.event(op)))
            .flatten()
            .collect();
        fired.push("kc_appointment_status_change");
        fired.push("kc_appointment_payment_complete");
        for e in catalog::clinic_events() {
            assert!(fired.contains(&e.name), "{} is never fired", e.name);
        }
    }
}
