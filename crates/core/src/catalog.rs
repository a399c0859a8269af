//! The event catalog: every event a clinic fires, the aliases KiviCare users
//! know it by, and the variables its snapshot carries, as static data.
//!
//! The catalog is the single source of truth for "which variables exist":
//! templates and conditions are validated against it, the UI lists it, and
//! previews and test sends render each variable's `example`. The examples
//! describe one believable demo clinic so a preview reads like a real message.
//!
//! No secret (API key, password, token) is ever a variable — KiviCare offered
//! Zoom keys as template variables, and we deliberately do not.

use serde::Serialize;

use crate::Vars;

/// How a variable's text may be read, which decides how conditions compare
/// it (numbers and dates compare as such) and how the UI presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VarType {
    Text,
    /// A whole number written in decimal, e.g. `42`.
    Integer,
    /// A decimal number as text, never rounded, e.g. `1234.50`.
    Decimal,
    /// `YYYY-MM-DD`.
    Date,
    /// `HH:MM`, 24 h.
    Time,
    /// RFC 3339, e.g. `2026-11-26T14:05:00+00:00`.
    DateTime,
    Email,
    Phone,
    /// One of a fixed word list, given in [`Variable::values`].
    Enum,
}

impl VarType {
    /// The type as a clinic admin would say it, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            VarType::Text => "text",
            VarType::Integer => "an integer",
            VarType::Decimal => "a decimal number",
            VarType::Date => "a date",
            VarType::Time => "a time",
            VarType::DateTime => "a date and time",
            VarType::Email => "an e-mail address",
            VarType::Phone => "a phone number",
            VarType::Enum => "one of a fixed list of words",
        }
    }

    /// Numbers and dates are ordered; `gt`/`lt` make sense only on these.
    pub fn is_ordered(self) -> bool {
        matches!(
            self,
            VarType::Integer | VarType::Decimal | VarType::Date | VarType::Time | VarType::DateTime
        )
    }
}

/// How much a variable says about a patient, which decides where it may be
/// sent (a webhook's `data_policy`) and what the UI marks.
///
/// The rule: a value *about the patient as a person* (who they are, how to
/// reach them, where they live, their date of birth, gender, the patient id,
/// the invoice number they hold, the id of whoever acted, which may be the
/// patient) is `identifying`; a value *about their health or care* (the
/// reason for a visit, services booked, an encounter's summary, a medical
/// record's title and notes, a prescription, the blood group) is `phi`;
/// everything else (the clinic, its staff, dates, times, statuses, amounts,
/// and the ids of appointments, encounters, records, bills and payments,
/// which mean nothing outside the clinic's own system) is `none`.
/// Ordered: `none` < `identifying` < `phi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Not about a patient: may go anywhere.
    None,
    /// Identifies a patient, or reaches them.
    Identifying,
    /// Protected health information: about a patient's health or care.
    Phi,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::None => "none",
            Sensitivity::Identifying => "identifying",
            Sensitivity::Phi => "phi",
        }
    }
}

impl std::fmt::Display for Sensitivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One variable of an event's snapshot.
#[derive(Debug, Serialize)]
pub struct Variable {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub ty: VarType,
    pub description: &'static str,
    pub example: &'static str,
    pub sensitivity: Sensitivity,
    /// The allowed words of an [`VarType::Enum`] variable; empty otherwise.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub values: &'static [&'static str],
}

/// A named set of variables shared by several events (clinic, patient…).
#[derive(Debug, Serialize)]
pub struct Group {
    pub name: &'static str,
    pub variables: &'static [Variable],
}

/// An event a clinic fires, with the variables its snapshot carries.
#[derive(Debug, Serialize)]
pub struct EventType {
    pub name: &'static str,
    pub description: &'static str,
    pub groups: &'static [&'static Group],
    /// Variables of this event beyond its groups (`appointment_previous_status`…).
    pub extra: &'static [Variable],
    /// Other names accepted for this event (KiviCare add-on names).
    pub aliases: &'static [&'static str],
}

impl EventType {
    /// Every variable of the event: its groups' in order, then its extras.
    pub fn variables(&self) -> impl Iterator<Item = &'static Variable> + use<> {
        let groups: &'static [&'static Group] = self.groups;
        let extra: &'static [Variable] = self.extra;
        groups
            .iter()
            .flat_map(|g| g.variables.iter())
            .chain(extra.iter())
    }

    pub fn variable(&self, name: &str) -> Option<&'static Variable> {
        self.variables().find(|v| v.name == name)
    }

    pub fn has_variable(&self, name: &str) -> bool {
        self.variable(name).is_some()
    }

    /// An operational event (`carehook_*`): emitted by carehook itself about its own webhooks,
    /// never by a clinic and never about a patient. `*` does not subscribe to these; a webhook
    /// names them (see [`OPERATIONAL_PREFIX`]).
    pub fn is_operational(&self) -> bool {
        self.name.starts_with(OPERATIONAL_PREFIX)
    }

    /// A complete sample snapshot of this event, for previews and test sends.
    pub fn example_vars(&self) -> Vars {
        let mut vars: Vars = self
            .variables()
            .map(|v| (v.name.to_owned(), v.example.to_owned()))
            .collect();
        vars.insert("event_name".to_owned(), self.name.to_owned());
        vars
    }
}

/// All events, in catalog order: the clinic's (`kc_*`), then carehook's operational ones.
pub fn events() -> &'static [EventType] {
    EVENTS
}

/// How every operational event's name starts.
pub const OPERATIONAL_PREFIX: &str = "carehook_";

/// The clinic's events (`kc_*`): every event but the operational ones; what `*` means.
pub fn clinic_events() -> impl Iterator<Item = &'static EventType> {
    EVENTS.iter().filter(|e| !e.is_operational())
}

/// carehook's operational events (`carehook_*`), which carry no patient data.
pub fn operational_events() -> impl Iterator<Item = &'static EventType> {
    EVENTS.iter().filter(|e| e.is_operational())
}

/// The event named `name_or_alias`, by its canonical name or an alias.
pub fn lookup(name_or_alias: &str) -> Option<&'static EventType> {
    EVENTS
        .iter()
        .find(|e| e.name == name_or_alias || e.aliases.contains(&name_or_alias))
}

pub fn canonical_name(name_or_alias: &str) -> Option<&'static str> {
    lookup(name_or_alias).map(|e| e.name)
}

/// The variable named `name` in any event. A name has one type and meaning
/// everywhere it appears (a test holds the catalog to this).
pub fn variable(name: &str) -> Option<&'static Variable> {
    EVENTS.iter().find_map(|e| e.variable(name))
}

/// Every distinct variable name of the catalog, in catalog order.
pub fn variable_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for v in EVENTS.iter().flat_map(|e| e.variables()) {
        if !names.contains(&v.name) {
            names.push(v.name);
        }
    }
    names
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown event \"{name}\"{}", did_you_mean(*.suggestion))]
    UnknownEvent {
        name: String,
        suggestion: Option<&'static str>,
    },
    #[error("no events given; name at least one event, or \"*\" for all")]
    NoEvents,
}

/// ` (did you mean "x"?)` or nothing, to append to a message.
pub fn did_you_mean(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean \"{s}\"?)"),
        None => String::new(),
    }
}

/// The candidate closest to `input` by edit distance, if it is close enough
/// to be a plausible typo (at most a third of the input's length, or 2).
pub fn closest_name<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(input, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Whether a variable is carried by the events of a [`Scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Every subscribed event carries it.
    All,
    /// Only some do; for the others it is absent (renders empty).
    Some,
    /// None does.
    None,
}

/// The set of events a webhook subscribes to; `*` means all.
#[derive(Debug, Clone)]
pub struct Scope {
    events: Vec<&'static EventType>,
    any: bool,
}

impl Scope {
    /// Resolves event names and aliases. `"*"` anywhere means every clinic
    /// event (operational `carehook_*` events are only ever named: a webhook
    /// built for patient events must not start getting alerts); a name given
    /// twice (or by name and alias) counts once.
    pub fn new<S: AsRef<str>>(events: &[S]) -> Result<Scope, CatalogError> {
        if events.is_empty() {
            return Err(CatalogError::NoEvents);
        }
        if events.iter().any(|e| e.as_ref() == "*") {
            return Ok(Scope::all());
        }
        let mut resolved: Vec<&'static EventType> = Vec::with_capacity(events.len());
        for name in events {
            let name = name.as_ref();
            let Some(event) = lookup(name) else {
                return Err(CatalogError::UnknownEvent {
                    name: name.to_owned(),
                    suggestion: closest_name(name, EVENTS.iter().map(|e| e.name)),
                });
            };
            if !resolved.iter().any(|e| std::ptr::eq(*e, event)) {
                resolved.push(event);
            }
        }
        Ok(Scope {
            events: resolved,
            any: false,
        })
    }

    pub fn all() -> Scope {
        Scope {
            events: clinic_events().collect(),
            any: true,
        }
    }

    /// Whether this scope was given as `*`.
    pub fn is_all(&self) -> bool {
        self.any
    }

    pub fn events(&self) -> &[&'static EventType] {
        &self.events
    }

    pub fn includes(&self, event_name_or_alias: &str) -> bool {
        lookup(event_name_or_alias).is_some_and(|e| self.events.iter().any(|s| std::ptr::eq(*s, e)))
    }

    pub fn presence(&self, var: &str) -> Presence {
        let carrying = self.events.iter().filter(|e| e.has_variable(var)).count();
        if carrying == 0 {
            Presence::None
        } else if carrying == self.events.len() {
            Presence::All
        } else {
            Presence::Some
        }
    }

    pub fn var_type(&self, var: &str) -> Option<VarType> {
        self.variable(var).map(|v| v.ty)
    }

    /// The variable as the first subscribed event carrying it defines it.
    pub fn variable(&self, var: &str) -> Option<&'static Variable> {
        self.events.iter().find_map(|e| e.variable(var))
    }

    /// The subscribed events that lack `var`, for warnings.
    pub fn events_lacking(&self, var: &str) -> Vec<&'static str> {
        self.events
            .iter()
            .filter(|e| !e.has_variable(var))
            .map(|e| e.name)
            .collect()
    }

    /// Every variable name any subscribed event carries, for suggestions.
    pub fn variable_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for v in self.events.iter().flat_map(|e| e.variables()) {
            if !names.contains(&v.name) {
                names.push(v.name);
            }
        }
        names
    }
}

// ---------------------------------------------------------------------------
// The data.
//
// The demo clinic: Riverside Family Clinic in London. Maria O'Brien booked a
// same-day appointment with Dr Aisha Patel for a sore throat; the encounter,
// record, prescription, bill and payment all follow from that visit, so any
// event's preview tells one consistent story. Phone numbers are in Ofcom's
// ranges reserved for drama, e-mail domains are reserved example domains, so
// a test send cannot reach a real person. Phone numbers are E.164 because
// SMS gateways (Twilio) require it.
// ---------------------------------------------------------------------------

const fn var(
    name: &'static str,
    ty: VarType,
    description: &'static str,
    example: &'static str,
) -> Variable {
    Variable {
        name,
        ty,
        description,
        example,
        sensitivity: Sensitivity::None,
        values: &[],
    }
}

/// A variable that identifies a patient (see [`Sensitivity`]).
const fn identifying(v: Variable) -> Variable {
    Variable {
        sensitivity: Sensitivity::Identifying,
        ..v
    }
}

/// A variable about a patient's health or care (see [`Sensitivity`]).
const fn phi(v: Variable) -> Variable {
    Variable {
        sensitivity: Sensitivity::Phi,
        ..v
    }
}

const fn one_of(
    name: &'static str,
    values: &'static [&'static str],
    description: &'static str,
    example: &'static str,
) -> Variable {
    Variable {
        name,
        ty: VarType::Enum,
        description,
        example,
        sensitivity: Sensitivity::None,
        values,
    }
}

use VarType::{Date, DateTime, Decimal, Email, Integer, Phone, Text, Time};

const APPOINTMENT_STATUSES: &[&str] = &["booked", "pending", "check_in", "check_out", "cancelled"];

static COMMON: Group = Group {
    name: "common",
    variables: &[
        var(
            "current_date",
            Date,
            "Today's date in the clinic's time zone",
            "2026-11-26",
        ),
        var(
            "current_time",
            Time,
            "The time now in the clinic's time zone (24 h)",
            "14:05",
        ),
        var(
            "current_date_time",
            DateTime,
            "The date and time now in the clinic's time zone, with its UTC offset",
            "2026-11-26T14:05:00+00:00",
        ),
        identifying(var(
            "current_user_id",
            Integer,
            "The id of the staff member or patient whose action fired the event",
            "3",
        )),
        var(
            "event_name",
            Text,
            "The name of the event, e.g. kc_appointment_book",
            "kc_appointment_book",
        ),
        var(
            "event_id",
            Text,
            "carehook's unique id for this event; the same on every retry, so a receiver can skip duplicates",
            "0193a1f2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ),
    ],
};

static CLINIC: Group = Group {
    name: "clinic",
    variables: &[
        var("clinic_id", Integer, "The clinic's id", "1"),
        var(
            "clinic_name",
            Text,
            "The clinic's name",
            "Riverside Family Clinic",
        ),
        var(
            "clinic_email",
            Email,
            "The clinic's e-mail address",
            "frontdesk@riversideclinic.example.com",
        ),
        var(
            "clinic_contact_number",
            Phone,
            "The clinic's phone number",
            "+442079460958",
        ),
        var(
            "clinic_address",
            Text,
            "The clinic's full address: street, city, postal code, country",
            "12 Harbour Street, London, SE1 9RT, United Kingdom",
        ),
        var("clinic_city", Text, "The clinic's city", "London"),
        var(
            "clinic_country",
            Text,
            "The clinic's country",
            "United Kingdom",
        ),
        var(
            "clinic_postal_code",
            Text,
            "The clinic's postal code",
            "SE1 9RT",
        ),
        var(
            "clinic_currency",
            Text,
            "The clinic's currency, as a three-letter code",
            "GBP",
        ),
    ],
};

static DOCTOR: Group = Group {
    name: "doctor",
    variables: &[
        var("doctor_id", Integer, "The doctor's id", "12"),
        var(
            "doctor_name",
            Text,
            "The doctor's first and last name (no title)",
            "Aisha Patel",
        ),
        var(
            "doctor_first_name",
            Text,
            "The doctor's first name",
            "Aisha",
        ),
        var("doctor_last_name", Text, "The doctor's last name", "Patel"),
        var(
            "doctor_email",
            Email,
            "The doctor's e-mail address",
            "aisha.patel@riversideclinic.example.com",
        ),
        var(
            "doctor_contact_number",
            Phone,
            "The doctor's phone number",
            "+447700900456",
        ),
        var(
            "doctor_specialization",
            Text,
            "The doctor's specialization",
            "General Practice",
        ),
        var(
            "doctor_license_number",
            Text,
            "The doctor's medical license (registration) number",
            "7654321",
        ),
    ],
};

static PATIENT: Group = Group {
    name: "patient",
    variables: &[
        identifying(var("patient_id", Integer, "The patient's id", "42")),
        identifying(var(
            "patient_name",
            Text,
            "The patient's first and last name",
            "Maria O'Brien",
        )),
        identifying(var(
            "patient_first_name",
            Text,
            "The patient's first name",
            "Maria",
        )),
        identifying(var(
            "patient_last_name",
            Text,
            "The patient's last name",
            "O'Brien",
        )),
        identifying(var(
            "patient_email",
            Email,
            "The patient's e-mail address",
            "maria.obrien@example.com",
        )),
        identifying(var(
            "patient_contact_number",
            Phone,
            "The patient's phone number",
            "+447700900123",
        )),
        identifying(var(
            "patient_dob",
            Date,
            "The patient's date of birth",
            "1988-04-17",
        )),
        identifying(var(
            "patient_gender",
            Text,
            "The patient's gender",
            "female",
        )),
        phi(var(
            "patient_blood_group",
            Text,
            "The patient's blood group",
            "O+",
        )),
        identifying(var(
            "patient_address",
            Text,
            "The patient's full address: street, city, postal code, country",
            "27 Willow Lane, London, N1 7GU, United Kingdom",
        )),
        identifying(var("patient_city", Text, "The patient's city", "London")),
        identifying(var(
            "patient_country",
            Text,
            "The patient's country",
            "United Kingdom",
        )),
        identifying(var(
            "patient_postal_code",
            Text,
            "The patient's postal code",
            "N1 7GU",
        )),
    ],
};

static RECEPTIONIST: Group = Group {
    name: "receptionist",
    variables: &[
        var("receptionist_id", Integer, "The receptionist's id", "3"),
        var(
            "receptionist_name",
            Text,
            "The receptionist's first and last name",
            "Tom Hughes",
        ),
        var(
            "receptionist_first_name",
            Text,
            "The receptionist's first name",
            "Tom",
        ),
        var(
            "receptionist_last_name",
            Text,
            "The receptionist's last name",
            "Hughes",
        ),
        var(
            "receptionist_email",
            Email,
            "The receptionist's e-mail address",
            "tom.hughes@riversideclinic.example.com",
        ),
        var(
            "receptionist_contact_number",
            Phone,
            "The receptionist's phone number",
            "+447700900789",
        ),
    ],
};

static APPOINTMENT: Group = Group {
    name: "appointment",
    variables: &[
        var("appointment_id", Integer, "The appointment's id", "318"),
        var(
            "appointment_date",
            Date,
            "The day of the appointment",
            "2026-11-26",
        ),
        var(
            "appointment_start_time",
            Time,
            "When the appointment starts (24 h)",
            "16:30",
        ),
        var(
            "appointment_end_time",
            Time,
            "When the appointment ends (24 h)",
            "16:45",
        ),
        var(
            "appointment_start",
            DateTime,
            "When the appointment starts, as one instant: its date and start time in the clinic's time zone, with the UTC offset (what a reminder's schedule counts from)",
            "2026-11-26T16:30:00+00:00",
        ),
        one_of(
            "appointment_status",
            APPOINTMENT_STATUSES,
            "The appointment's status: booked, pending, check_in, check_out or cancelled",
            "booked",
        ),
        one_of(
            "appointment_status_code",
            &["1", "2", "4", "3", "0"],
            "The status as KiviCare's number: 1 booked, 2 pending, 4 check_in, 3 check_out, 0 cancelled",
            "1",
        ),
        phi(var(
            "appointment_description",
            Text,
            "The reason for the visit, as entered when booking",
            "Sore throat and fever for 3 days",
        )),
        var(
            "appointment_created_at",
            DateTime,
            "When the appointment was booked",
            "2026-11-26T14:05:00+00:00",
        ),
        phi(var(
            "service_names",
            Text,
            "The services booked, separated by commas",
            "General Consultation, Throat Swab",
        )),
    ],
};

static ENCOUNTER: Group = Group {
    name: "encounter",
    variables: &[
        var(
            "encounter_id",
            Integer,
            "The encounter's (consultation's) id",
            "205",
        ),
        var(
            "encounter_date",
            Date,
            "The day of the encounter",
            "2026-11-26",
        ),
        var(
            "encounter_status",
            Text,
            "Whether the encounter is still open or closed",
            "open",
        ),
        phi(var(
            "encounter_description",
            Text,
            "The doctor's summary of the encounter",
            "Acute tonsillitis; throat swab taken, antibiotics started",
        )),
    ],
};

static MEDICAL_RECORD: Group = Group {
    name: "medical_record",
    variables: &[
        var(
            "medical_record_id",
            Integer,
            "The medical record's id",
            "77",
        ),
        var(
            "medical_record_type",
            Text,
            "The kind of record: problem, observation or note",
            "problem",
        ),
        phi(var(
            "medical_record_title",
            Text,
            "The record's title",
            "Acute tonsillitis",
        )),
        phi(var(
            "medical_record_notes",
            Text,
            "The record's notes",
            "Sore throat for 3 days, temperature 38.2 °C, swollen tonsils",
        )),
    ],
};

static PRESCRIPTION: Group = Group {
    name: "prescription",
    variables: &[
        var("prescription_id", Integer, "The prescription's id", "56"),
        phi(var(
            "prescription_name",
            Text,
            "The medicine prescribed, with its strength",
            "Amoxicillin 500 mg",
        )),
        phi(var(
            "prescription_frequency",
            Text,
            "How often to take it",
            "3 times a day",
        )),
        phi(var(
            "prescription_duration",
            Text,
            "For how long to take it",
            "7 days",
        )),
        phi(var(
            "prescription_instruction",
            Text,
            "The doctor's instructions",
            "Take after meals",
        )),
        phi(var(
            "prescription_details",
            Text,
            "The whole prescription in one readable line",
            "Amoxicillin 500 mg — 3 times a day for 7 days — take after meals",
        )),
    ],
};

static BILL: Group = Group {
    name: "bill",
    variables: &[
        var("bill_id", Integer, "The bill's id", "64"),
        identifying(var(
            "bill_number",
            Text,
            "The bill's number, as printed on the invoice",
            "INV-2026-0142",
        )),
        var(
            "bill_total",
            Decimal,
            "The bill's total before discount",
            "120.50",
        ),
        var("bill_discount", Decimal, "The discount given", "10.00"),
        var(
            "bill_amount",
            Decimal,
            "The amount to pay: total minus discount",
            "110.50",
        ),
        var(
            "bill_status",
            Text,
            "Whether the bill is paid or unpaid",
            "paid",
        ),
    ],
};

static PAYMENT: Group = Group {
    name: "payment",
    variables: &[
        var("payment_id", Integer, "The payment's id", "93"),
        var(
            "payment_amount",
            Decimal,
            "The amount paid, exactly as recorded (never rounded)",
            "110.50",
        ),
        var(
            "payment_currency",
            Text,
            "The payment's currency, as a three-letter code",
            "GBP",
        ),
        var(
            "payment_method",
            Text,
            "How the patient paid, e.g. card, cash, bank transfer",
            "card",
        ),
        var("payment_date", Date, "The day of the payment", "2026-11-26"),
    ],
};

const APPOINTMENT_GROUPS: &[&Group] = &[&COMMON, &CLINIC, &DOCTOR, &PATIENT, &APPOINTMENT];
const ENCOUNTER_GROUPS: &[&Group] = &[&COMMON, &CLINIC, &DOCTOR, &PATIENT, &ENCOUNTER];
const ENCOUNTER_APPOINTMENT_ID: &[Variable] = &[var(
    "appointment_id",
    Integer,
    "The appointment's id this encounter belongs to (empty when there is none)",
    "318",
)];

const fn event(
    name: &'static str,
    description: &'static str,
    groups: &'static [&'static Group],
) -> EventType {
    EventType {
        name,
        description,
        groups,
        extra: &[],
        aliases: &[],
    }
}

// ---------------------------------------------------------------------------
// Operational events: carehook about itself (a webhook disabled, a delivery
// given up, a webhook starting to fail, a secret rotated), so a person can be
// alerted. They carry no patient value at all: only the webhook, the
// delivery and the event *name* concerned, an HTTP status and a reason
// written by carehook. Their own common variables are a separate group (the
// clinic group's `current_user_id` may be a patient's id).
// ---------------------------------------------------------------------------

static OPERATIONAL_COMMON: Group = Group {
    name: "carehook",
    variables: &[
        var(
            "current_date_time",
            DateTime,
            "The date and time now in the clinic's time zone, with its UTC offset",
            "2026-11-26T14:05:00+00:00",
        ),
        var(
            "event_name",
            Text,
            "The name of the event, e.g. kc_appointment_book",
            "carehook_webhook_disabled",
        ),
        var(
            "event_id",
            Text,
            "carehook's unique id for this event; the same on every retry, so a receiver can skip duplicates",
            "0193a1f2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        ),
        var(
            "at",
            DateTime,
            "When it happened (UTC, RFC 3339)",
            "2026-11-26T03:12:00+00:00",
        ),
        var(
            "webhook_id",
            Text,
            "The id of the webhook concerned",
            "0193a1f2-0000-7000-8000-00000000beef",
        ),
        var(
            "webhook_name",
            Text,
            "The name of the webhook concerned",
            "Pharmacy: new prescription",
        ),
        var(
            "webhook_clinics",
            Text,
            "The clinics (their clinic_id, comma-separated) the webhook concerned serves; empty when it serves every clinic",
            "2",
        ),
        var(
            "reason",
            Text,
            "Why, in carehook's words (never a patient value)",
            "the endpoint answered 410 Gone, so carehook disabled the webhook",
        ),
    ],
};

static OPERATIONAL_DELIVERY: Group = Group {
    name: "carehook_delivery",
    variables: &[
        var(
            "delivery_id",
            Text,
            "The id of the delivery concerned (its page in carehook's log)",
            "0193a1f2-1111-7000-8000-0000000000aa",
        ),
        var(
            "delivery_event",
            Text,
            "The name of the event the delivery carried (never its data)",
            "kc_prescription_add",
        ),
        var(
            "status_code",
            Integer,
            "The HTTP status of the last answer; empty when there was none (a timeout, a refused connection)",
            "503",
        ),
        var(
            "attempts",
            Integer,
            "How many attempts the delivery made",
            "10",
        ),
    ],
};

const OPERATIONAL_WEBHOOK_GROUPS: &[&Group] = &[&OPERATIONAL_COMMON];
const OPERATIONAL_DELIVERY_GROUPS: &[&Group] = &[&OPERATIONAL_COMMON, &OPERATIONAL_DELIVERY];

static EVENTS: &[EventType] = &[
    event(
        "kc_appointment_book",
        "An appointment was booked.",
        APPOINTMENT_GROUPS,
    ),
    event(
        "kc_appointment_update",
        "An appointment was changed (date, time, doctor, services…).",
        APPOINTMENT_GROUPS,
    ),
    event(
        "kc_appointment_delete",
        "An appointment was deleted.",
        APPOINTMENT_GROUPS,
    ),
    EventType {
        name: "kc_appointment_status_change",
        description: "An appointment's status changed (e.g. checked in, cancelled).",
        groups: APPOINTMENT_GROUPS,
        extra: &[one_of(
            "appointment_previous_status",
            APPOINTMENT_STATUSES,
            "The appointment's status before this change",
            "pending",
        )],
        aliases: &["kc_appointment_status_update"],
    },
    EventType {
        name: "kc_appointment_payment_complete",
        description: "An appointment was paid for in full.",
        groups: &[
            &COMMON,
            &CLINIC,
            &DOCTOR,
            &PATIENT,
            &APPOINTMENT,
            &BILL,
            &PAYMENT,
        ],
        extra: &[],
        aliases: &[],
    },
    EventType {
        aliases: &["kc_patient_save"],
        ..event(
            "kc_patient_add",
            "A patient was registered.",
            &[&COMMON, &CLINIC, &PATIENT],
        )
    },
    event(
        "kc_patient_update",
        "A patient's details were changed.",
        &[&COMMON, &CLINIC, &PATIENT],
    ),
    event(
        "kc_patient_delete",
        "A patient was deleted.",
        &[&COMMON, &CLINIC, &PATIENT],
    ),
    EventType {
        aliases: &["kc_doctor_save"],
        ..event(
            "kc_doctor_add",
            "A doctor was added.",
            &[&COMMON, &CLINIC, &DOCTOR],
        )
    },
    event(
        "kc_doctor_update",
        "A doctor's details were changed.",
        &[&COMMON, &CLINIC, &DOCTOR],
    ),
    event(
        "kc_doctor_delete",
        "A doctor was deleted.",
        &[&COMMON, &CLINIC, &DOCTOR],
    ),
    EventType {
        aliases: &["kc_receptionist_save"],
        ..event(
            "kc_receptionist_add",
            "A receptionist was added.",
            &[&COMMON, &CLINIC, &RECEPTIONIST],
        )
    },
    event(
        "kc_receptionist_update",
        "A receptionist's details were changed.",
        &[&COMMON, &CLINIC, &RECEPTIONIST],
    ),
    event(
        "kc_receptionist_delete",
        "A receptionist was deleted.",
        &[&COMMON, &CLINIC, &RECEPTIONIST],
    ),
    EventType {
        aliases: &["kcpro_clinic_save"],
        ..event("kc_clinic_add", "A clinic was added.", &[&COMMON, &CLINIC])
    },
    EventType {
        aliases: &["kcpro_clinic_update"],
        ..event(
            "kc_clinic_update",
            "A clinic's details were changed.",
            &[&COMMON, &CLINIC],
        )
    },
    EventType {
        aliases: &["kcpro_clinic_delete"],
        ..event(
            "kc_clinic_delete",
            "A clinic was deleted.",
            &[&COMMON, &CLINIC],
        )
    },
    EventType {
        name: "kc_encounter_add",
        description: "An encounter (consultation) was started.",
        groups: ENCOUNTER_GROUPS,
        extra: ENCOUNTER_APPOINTMENT_ID,
        aliases: &["kc_encounter_save"],
    },
    EventType {
        name: "kc_encounter_update",
        description: "An encounter was changed or closed.",
        groups: ENCOUNTER_GROUPS,
        extra: ENCOUNTER_APPOINTMENT_ID,
        aliases: &[],
    },
    EventType {
        name: "kc_encounter_delete",
        description: "An encounter was deleted.",
        groups: ENCOUNTER_GROUPS,
        extra: ENCOUNTER_APPOINTMENT_ID,
        aliases: &[],
    },
    event(
        "kc_medical_record_add",
        "A medical record was added to an encounter.",
        &[
            &COMMON,
            &CLINIC,
            &DOCTOR,
            &PATIENT,
            &ENCOUNTER,
            &MEDICAL_RECORD,
        ],
    ),
    event(
        "kc_prescription_add",
        "A prescription was written.",
        &[
            &COMMON,
            &CLINIC,
            &DOCTOR,
            &PATIENT,
            &ENCOUNTER,
            &PRESCRIPTION,
        ],
    ),
    event(
        "kc_bill_add",
        "A bill was created.",
        &[&COMMON, &CLINIC, &DOCTOR, &PATIENT, &ENCOUNTER, &BILL],
    ),
    event(
        "kc_payment_add",
        "A payment was received.",
        &[&COMMON, &CLINIC, &PATIENT, &BILL, &PAYMENT],
    ),
    event(
        "carehook_webhook_disabled",
        "carehook disabled a webhook (its endpoint answered 410 Gone, or every delivery failed for days); `reason` says which.",
        OPERATIONAL_WEBHOOK_GROUPS,
    ),
    event(
        "carehook_delivery_failed",
        "A delivery gave up: its attempts or its maximum age ran out, or its request could not be sent.",
        OPERATIONAL_DELIVERY_GROUPS,
    ),
    event(
        "carehook_webhook_failing",
        "A webhook that was delivering started failing (at most one an hour per webhook).",
        OPERATIONAL_DELIVERY_GROUPS,
    ),
    event(
        "carehook_secret_rotated",
        "A webhook's signing secret was rotated; the previous one keeps signing for 24 hours.",
        OPERATIONAL_WEBHOOK_GROUPS,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const DESIGN_EVENTS: &[&str] = &[
        "kc_appointment_book",
        "kc_appointment_update",
        "kc_appointment_delete",
        "kc_appointment_status_change",
        "kc_appointment_payment_complete",
        "kc_patient_add",
        "kc_patient_update",
        "kc_patient_delete",
        "kc_doctor_add",
        "kc_doctor_update",
        "kc_doctor_delete",
        "kc_receptionist_add",
        "kc_receptionist_update",
        "kc_receptionist_delete",
        "kc_clinic_add",
        "kc_clinic_update",
        "kc_clinic_delete",
        "kc_encounter_add",
        "kc_encounter_update",
        "kc_encounter_delete",
        "kc_medical_record_add",
        "kc_prescription_add",
        "kc_bill_add",
        "kc_payment_add",
        "carehook_webhook_disabled",
        "carehook_delivery_failed",
        "carehook_webhook_failing",
        "carehook_secret_rotated",
    ];

    const DESIGN_ALIASES: &[(&str, &str)] = &[
        ("kc_patient_save", "kc_patient_add"),
        ("kc_doctor_save", "kc_doctor_add"),
        ("kc_receptionist_save", "kc_receptionist_add"),
        ("kc_encounter_save", "kc_encounter_add"),
        (
            "kc_appointment_status_update",
            "kc_appointment_status_change",
        ),
        ("kcpro_clinic_save", "kc_clinic_add"),
        ("kcpro_clinic_update", "kc_clinic_update"),
        ("kcpro_clinic_delete", "kc_clinic_delete"),
    ];

    fn group_names(event: &str) -> Vec<&'static str> {
        lookup(event)
            .unwrap()
            .groups
            .iter()
            .map(|g| g.name)
            .collect()
    }

    #[test]
    fn every_design_event_resolves_to_itself_and_nothing_else_exists() {
        for name in DESIGN_EVENTS {
            assert_eq!(canonical_name(name), Some(*name));
        }
        let catalog: Vec<&str> = events().iter().map(|e| e.name).collect();
        assert_eq!(catalog, DESIGN_EVENTS);
    }

    #[test]
    fn every_design_alias_resolves_to_its_canonical_event() {
        for (alias, canonical) in DESIGN_ALIASES {
            assert_eq!(canonical_name(alias), Some(*canonical), "{alias}");
        }
        let alias_count: usize = events().iter().map(|e| e.aliases.len()).sum();
        assert_eq!(alias_count, DESIGN_ALIASES.len());
        assert!(lookup("kc_appointment_booked").is_none());
    }

    #[test]
    fn each_event_has_the_groups_design_lists() {
        let appointment = ["common", "clinic", "doctor", "patient", "appointment"];
        for e in [
            "kc_appointment_book",
            "kc_appointment_update",
            "kc_appointment_delete",
        ] {
            assert_eq!(group_names(e), appointment);
        }
        assert_eq!(group_names("kc_appointment_status_change"), appointment);
        assert_eq!(
            group_names("kc_appointment_payment_complete"),
            [
                "common",
                "clinic",
                "doctor",
                "patient",
                "appointment",
                "bill",
                "payment"
            ]
        );
        assert_eq!(
            group_names("kc_patient_delete"),
            ["common", "clinic", "patient"]
        );
        assert_eq!(group_names("kc_doctor_add"), ["common", "clinic", "doctor"]);
        assert_eq!(
            group_names("kc_receptionist_update"),
            ["common", "clinic", "receptionist"]
        );
        assert_eq!(group_names("kc_clinic_delete"), ["common", "clinic"]);
        let encounter = ["common", "clinic", "doctor", "patient", "encounter"];
        assert_eq!(group_names("kc_encounter_update"), encounter);
        assert_eq!(
            group_names("kc_medical_record_add"),
            [
                "common",
                "clinic",
                "doctor",
                "patient",
                "encounter",
                "medical_record"
            ]
        );
        assert_eq!(
            group_names("kc_prescription_add"),
            [
                "common",
                "clinic",
                "doctor",
                "patient",
                "encounter",
                "prescription"
            ]
        );
        assert_eq!(
            group_names("kc_bill_add"),
            ["common", "clinic", "doctor", "patient", "encounter", "bill"]
        );
        assert_eq!(
            group_names("kc_payment_add"),
            ["common", "clinic", "patient", "bill", "payment"]
        );
    }

    #[test]
    fn events_carry_the_variables_their_use_cases_need() {
        let payment = lookup("kc_payment_add").unwrap();
        assert!(payment.has_variable("payment_amount"));
        assert!(payment.has_variable("bill_number"));
        assert!(payment.has_variable("patient_name"));
        assert!(!payment.has_variable("doctor_name"));

        let status = lookup("kc_appointment_status_update").unwrap();
        assert!(status.has_variable("appointment_previous_status"));
        assert!(
            !lookup("kc_appointment_book")
                .unwrap()
                .has_variable("appointment_previous_status")
        );

        for e in [
            "kc_encounter_add",
            "kc_encounter_update",
            "kc_encounter_delete",
        ] {
            let event = lookup(e).unwrap();
            assert!(event.has_variable("appointment_id"), "{e}");
            assert!(event.has_variable("encounter_date"), "{e}");
        }
        let prescription = lookup("kc_prescription_add").unwrap();
        for v in [
            "prescription_details",
            "doctor_license_number",
            "patient_dob",
        ] {
            assert!(prescription.has_variable(v), "{v}");
        }
        let receptionist = lookup("kc_receptionist_add").unwrap();
        assert!(receptionist.has_variable("receptionist_contact_number"));
        assert!(!receptionist.has_variable("patient_name"));
    }

    #[test]
    fn variables_are_unique_per_event_and_documented() {
        for e in events() {
            let mut seen = BTreeSet::new();
            for v in e.variables() {
                assert!(seen.insert(v.name), "{} repeats {}", e.name, v.name);
                assert!(!v.description.trim().is_empty(), "{}", v.name);
                assert!(!v.example.trim().is_empty(), "{}", v.name);
            }
            assert!(!e.description.is_empty(), "{}", e.name);
        }
    }

    #[test]
    fn a_variable_name_has_one_type_everywhere() {
        for e in events() {
            for v in e.variables() {
                assert_eq!(variable(v.name).unwrap().ty, v.ty, "{}", v.name);
            }
        }
    }

    #[test]
    fn no_variable_looks_like_a_secret() {
        let forbidden = [
            "password",
            "passwd",
            "token",
            "secret",
            "key",
            "credential",
            "auth",
        ];
        for name in variable_names() {
            for word in forbidden {
                assert!(!name.contains(word), "{name} looks like a secret");
            }
        }
    }

    #[test]
    fn examples_parse_as_their_types() {
        for e in events() {
            for v in e.variables() {
                let x = v.example;
                let ok = match v.ty {
                    VarType::Date => {
                        chrono::NaiveDate::parse_from_str(x, "%Y-%m-%d").is_ok() && x.len() == 10
                    }
                    VarType::Time => {
                        chrono::NaiveTime::parse_from_str(x, "%H:%M").is_ok() && x.len() == 5
                    }
                    VarType::DateTime => chrono::DateTime::parse_from_rfc3339(x).is_ok(),
                    VarType::Integer => !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()),
                    VarType::Decimal => {
                        let (int, frac) = x.split_once('.').unwrap_or((x, ""));
                        !int.is_empty()
                            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
                    }
                    VarType::Email => x.contains('@'),
                    VarType::Phone => {
                        x.starts_with('+') && x[1..].bytes().all(|b| b.is_ascii_digit())
                    }
                    VarType::Enum => v.values.contains(&x),
                    VarType::Text => true,
                };
                assert!(ok, "{} example {x:?} is not {}", v.name, v.ty.describe());
                assert_eq!(v.ty == VarType::Enum, !v.values.is_empty(), "{}", v.name);
            }
        }
    }

    #[test]
    fn examples_are_consistent_across_groups() {
        let vars = lookup("kc_appointment_payment_complete")
            .unwrap()
            .example_vars();
        assert_eq!(
            vars["patient_name"],
            format!(
                "{} {}",
                vars["patient_first_name"], vars["patient_last_name"]
            )
        );
        assert_eq!(
            vars["doctor_name"],
            format!("{} {}", vars["doctor_first_name"], vars["doctor_last_name"])
        );
        assert_eq!(vars["payment_amount"], vars["bill_amount"]);
        assert_eq!(vars["payment_currency"], vars["clinic_currency"]);
        assert!(vars["clinic_address"].contains(&vars["clinic_city"]));
        assert!(vars["clinic_address"].contains(&vars["clinic_postal_code"]));
        assert!(vars["current_date_time"].starts_with(&vars["current_date"]));
        let receptionist = lookup("kc_receptionist_add").unwrap().example_vars();
        assert_eq!(
            receptionist["receptionist_name"],
            format!(
                "{} {}",
                receptionist["receptionist_first_name"], receptionist["receptionist_last_name"]
            )
        );
    }

    #[test]
    fn example_vars_cover_every_variable_and_name_the_event() {
        let event = lookup("kc_payment_add").unwrap();
        let vars = event.example_vars();
        assert_eq!(vars.len(), event.variables().count());
        assert_eq!(vars["event_name"], "kc_payment_add");
        assert_eq!(vars["payment_amount"], "110.50");
    }

    #[test]
    fn status_codes_match_kivicare() {
        let status = variable("appointment_status").unwrap().values;
        let code = variable("appointment_status_code").unwrap().values;
        let pairs: Vec<(&str, &str)> = status.iter().copied().zip(code.iter().copied()).collect();
        assert_eq!(
            pairs,
            [
                ("booked", "1"),
                ("pending", "2"),
                ("check_in", "4"),
                ("check_out", "3"),
                ("cancelled", "0")
            ]
        );
    }

    #[test]
    fn scope_of_star_is_every_event() {
        let scope = Scope::new(&["kc_patient_add", "*"]).unwrap();
        assert!(scope.is_all());
        assert_eq!(scope.events().len(), clinic_events().count());
        assert!(!scope.includes("carehook_webhook_disabled"));
        assert!(scope.includes("kcpro_clinic_save"));
        assert_eq!(scope.presence("clinic_name"), Presence::All);
        assert_eq!(scope.presence("event_id"), Presence::All);
        assert_eq!(scope.presence("patient_name"), Presence::Some);
        assert_eq!(scope.presence("payment_amount"), Presence::Some);
        assert_eq!(scope.presence("zoom_api_key"), Presence::None);
        assert_eq!(scope.var_type("payment_amount"), Some(VarType::Decimal));
        assert_eq!(scope.var_type("nope"), None);
        let lacking = scope.events_lacking("patient_name");
        assert!(lacking.contains(&"kc_clinic_add"));
        assert!(lacking.contains(&"kc_doctor_add"));
        assert!(!lacking.contains(&"kc_payment_add"));
    }

    #[test]
    fn scope_of_patient_add_and_appointment_book() {
        let scope =
            Scope::new(&["kc_patient_save", "kc_appointment_book", "kc_patient_add"]).unwrap();
        assert!(!scope.is_all());
        let names: Vec<&str> = scope.events().iter().map(|e| e.name).collect();
        assert_eq!(names, ["kc_patient_add", "kc_appointment_book"]);
        assert!(scope.includes("kc_patient_save"));
        assert!(!scope.includes("kc_doctor_add"));
        assert_eq!(scope.presence("patient_name"), Presence::All);
        assert_eq!(scope.presence("current_date"), Presence::All);
        assert_eq!(scope.presence("appointment_date"), Presence::Some);
        assert_eq!(scope.presence("doctor_name"), Presence::Some);
        assert_eq!(scope.presence("payment_amount"), Presence::None);
        assert_eq!(scope.events_lacking("doctor_name"), ["kc_patient_add"]);
        assert!(scope.events_lacking("patient_email").is_empty());
        assert_eq!(scope.var_type("appointment_date"), Some(VarType::Date));
    }

    #[test]
    fn an_unknown_event_is_refused_with_a_suggestion() {
        let err = Scope::new(&["kc_apointment_book"]).unwrap_err();
        assert_eq!(
            err,
            CatalogError::UnknownEvent {
                name: "kc_apointment_book".into(),
                suggestion: Some("kc_appointment_book")
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown event \"kc_apointment_book\" (did you mean \"kc_appointment_book\"?)"
        );
        let err = Scope::new(&["order_shipped"]).unwrap_err();
        assert_eq!(err.to_string(), "unknown event \"order_shipped\"");
    }

    #[test]
    fn an_empty_scope_is_refused() {
        let none: [&str; 0] = [];
        assert_eq!(Scope::new(&none).unwrap_err(), CatalogError::NoEvents);
    }

    #[test]
    fn closest_name_finds_typos_only() {
        assert_eq!(
            closest_name("patient_nme", variable_names()),
            Some("patient_name")
        );
        assert_eq!(
            closest_name("docter_name", variable_names()),
            Some("doctor_name")
        );
        assert_eq!(closest_name("zzz", variable_names()), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
    }

    #[test]
    fn every_variable_is_classified_by_the_rule() {
        let phi = [
            "patient_blood_group",
            "appointment_description",
            "service_names",
            "encounter_description",
            "medical_record_title",
            "medical_record_notes",
            "prescription_name",
            "prescription_frequency",
            "prescription_duration",
            "prescription_instruction",
            "prescription_details",
        ];
        for name in variable_names() {
            let v = variable(name).unwrap();
            let expected = if phi.contains(&name) {
                Sensitivity::Phi
            } else if (name.starts_with("patient_") && name != "patient_blood_group")
                || name == "current_user_id"
                || name == "bill_number"
            {
                Sensitivity::Identifying
            } else {
                Sensitivity::None
            };
            assert_eq!(v.sensitivity, expected, "{name}");
        }
        // A name has one sensitivity in every event that carries it.
        for e in events() {
            for v in e.variables() {
                assert_eq!(variable(v.name).unwrap().sensitivity, v.sensitivity);
            }
        }
        assert!(Sensitivity::None < Sensitivity::Identifying);
        assert!(Sensitivity::Identifying < Sensitivity::Phi);
    }

    #[test]
    fn the_catalog_serializes_for_the_api() {
        let json = serde_json::to_value(lookup("kc_appointment_status_change").unwrap()).unwrap();
        assert_eq!(json["name"], "kc_appointment_status_change");
        assert_eq!(json["groups"][0]["variables"][0]["type"], "date");
        assert_eq!(json["extra"][0]["values"][4], "cancelled");
        assert_eq!(json["groups"][0]["variables"][0]["sensitivity"], "none");
        assert_eq!(json["groups"][3]["variables"][1]["name"], "patient_name");
        assert_eq!(
            json["groups"][3]["variables"][1]["sensitivity"],
            "identifying"
        );
        assert!(json["groups"][0]["variables"][0].get("values").is_none());
    }

    #[test]
    fn operational_events_carry_no_patient_data_and_star_leaves_them_out() {
        let ops: Vec<&str> = operational_events().map(|e| e.name).collect();
        assert_eq!(
            ops,
            [
                "carehook_webhook_disabled",
                "carehook_delivery_failed",
                "carehook_webhook_failing",
                "carehook_secret_rotated"
            ]
        );
        for e in operational_events() {
            for v in e.variables() {
                assert_eq!(v.sensitivity, Sensitivity::None, "{}: {}", e.name, v.name);
                assert!(!v.name.starts_with("patient_"), "{}", v.name);
                assert_ne!(v.name, "current_user_id");
            }
            assert!(e.has_variable("webhook_id") && e.has_variable("reason"));
            assert!(!Scope::all().includes(e.name));
            assert!(Scope::new(&[e.name]).unwrap().includes(e.name));
        }
        assert!(
            lookup("carehook_delivery_failed")
                .unwrap()
                .has_variable("status_code")
        );
        assert_eq!(clinic_events().count() + 4, events().len());
    }
}
