//! The demo clinic: Riverside Family Clinic in London, the clinic the catalog's examples
//! describe, with enough going on that the UI, previews and presets show real data from the
//! first minute: three doctors, a receptionist, patients with accents and an apostrophe,
//! appointments in every status, and Maria O'Brien's visit carried through an encounter, a
//! medical record, a prescription, a bill and the payment that settles it.
//!
//! Every record goes through a [`DemoSink`], so each fires its event as an API call would:
//! [`LocalSink`] writes in-process for `carehook serve --demo` (which fills only an empty
//! database) through the same code as the API (`service::clinic::create`…); the command line's
//! sink (`carehook demo`, in `crates/cli`) sends the same records to a running server over
//! HTTP. The data lives here once, for both.

use std::future::Future;
use std::pin::Pin;

use carehook_core::clinic::{Kind, Ref};
use carehook_store::{RecordFilter, Store};
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::registry::Registry;

/// What a sink's calls return: boxed, so the trait stays object-safe without an
/// async-trait dependency.
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// Who makes the demo's records when they are written in-process.
const DEMO: crate::service::Actor = crate::service::Actor::System("the demo clinic");

/// Where the demo's records go.
pub trait DemoSink: Sync {
    /// Creates a record of `kind` (under `parent` for the kinds kept under another record,
    /// e.g. a payment under its bill); the record as the API answers it, with its `id`.
    fn create(&self, kind: Kind, parent: Option<(Ref, i64)>, body: Value) -> SinkFuture<'_, Value>;
    /// Changes a record with a JSON merge patch.
    fn update(&self, kind: Kind, id: i64, body: Value) -> SinkFuture<'_, ()>;
}

/// Straight into a store, matching a registry's webhooks.
#[derive(Debug, Clone, Copy)]
pub struct LocalSink<'a> {
    pub store: &'a dyn Store,
    pub registry: &'a Registry,
}

impl DemoSink for LocalSink<'_> {
    fn create(&self, kind: Kind, parent: Option<(Ref, i64)>, body: Value) -> SinkFuture<'_, Value> {
        Box::pin(async move {
            let at = crate::service::clinic::Records::local(self.store, self.registry);
            crate::service::clinic::create(&at, &DEMO, kind, parent, body, None)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {}", e.field().unwrap_or_default(), e.message()))
        })
    }

    fn update(&self, kind: Kind, id: i64, body: Value) -> SinkFuture<'_, ()> {
        Box::pin(async move {
            let at = crate::service::clinic::Records::local(self.store, self.registry);
            crate::service::clinic::update(&at, &DEMO, kind, id, body, None)
                .await
                .map(drop)
                .map_err(|e| anyhow::anyhow!("{}", e.message()))
        })
    }
}

/// The sink, with each created record read down to its id.
struct Records<'a>(&'a dyn DemoSink);

impl Records<'_> {
    async fn create(
        &self,
        kind: Kind,
        parent: Option<(Ref, i64)>,
        body: Value,
    ) -> anyhow::Result<i64> {
        let answer = self.0.create(kind, parent, body).await?;
        answer["id"]
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("the answer has no id: {answer}"))
    }

    async fn update(&self, kind: Kind, id: i64, body: Value) -> anyhow::Result<()> {
        self.0.update(kind, id, body).await
    }
}

/// Fills the database only if it has no clinic yet; true if it did.
pub async fn fill_if_empty(store: &dyn Store, registry: &Registry) -> anyhow::Result<bool> {
    let clinics = store
        .list_records(
            Kind::Clinic,
            RecordFilter {
                limit: 1,
                ..RecordFilter::default()
            },
        )
        .await?;
    if !clinics.items.is_empty() {
        tracing::info!("the database already has clinic records; the demo clinic was not added");
        return Ok(false);
    }
    let clinic = fill(&LocalSink { store, registry }).await?;
    tracing::info!(clinic, "added the demo clinic (Riverside Family Clinic)");
    Ok(true)
}

/// Creates the demo clinic and everything in it; returns the clinic's id.
pub async fn fill(to: &dyn DemoSink) -> anyhow::Result<i64> {
    let to = Records(to);
    let today = Utc::now().date_naive();
    let day = |offset: i64| {
        (today + Duration::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };

    let clinic = to
        .create(
            Kind::Clinic,
            None,
            json!({
            "name": "Riverside Family Clinic", "email": "frontdesk@riversideclinic.example.com",
            "contact_number": "+442079460958", "address": "12 Harbour Street", "city": "London",
            "postal_code": "SE1 9RT", "country": "United Kingdom", "currency": "GBP",
            "timezone": "Europe/London"}),
        )
        .await?;
    let mut doctors = Vec::new();
    for (first, last, email, phone, speciality, licence) in [
        (
            "Aisha",
            "Patel",
            "aisha.patel",
            "+447700900456",
            "General Practice",
            "7654321",
        ),
        (
            "Léa",
            "Fontaine",
            "lea.fontaine",
            "+447700900457",
            "Paediatrics",
            "7654322",
        ),
        (
            "Rhys",
            "Ó Briain",
            "rhys.obriain",
            "+447700900458",
            "Dermatology",
            "7654323",
        ),
    ] {
        doctors.push(
            to.create(
                Kind::Doctor,
                None,
                json!({
                "clinic_id": clinic, "first_name": first, "last_name": last,
                "email": format!("{email}@riversideclinic.example.com"), "contact_number": phone,
                "specialization": speciality, "license_number": licence}),
            )
            .await?,
        );
    }
    to.create(
        Kind::Receptionist,
        None,
        json!({
        "clinic_id": clinic, "first_name": "Tom", "last_name": "Hughes",
        "email": "tom.hughes@riversideclinic.example.com", "contact_number": "+447700900789"}),
    )
    .await?;
    let mut patients = Vec::new();
    for (first, last, email, phone, dob, gender, blood, address, postcode) in [
        (
            "Maria",
            "O'Brien",
            "maria.obrien",
            "+447700900123",
            "1988-04-17",
            "female",
            "O+",
            "27 Willow Lane",
            "N1 7GU",
        ),
        (
            "José",
            "Álvarez Núñez",
            "jose.alvarez",
            "+447700900124",
            "1975-09-02",
            "male",
            "A+",
            "4 Canal Row",
            "E8 3PL",
        ),
        (
            "Siobhán",
            "Ní Bhriain",
            "siobhan.nibhriain",
            "+447700900125",
            "1994-01-30",
            "female",
            "B-",
            "91 Elm Grove",
            "SE15 4QR",
        ),
        (
            "Zoë",
            "Müller",
            "zoe.muller",
            "+447700900126",
            "2016-06-11",
            "female",
            "AB+",
            "3 Kiln Yard",
            "SW9 8LA",
        ),
        (
            "Kwame",
            "Mensah",
            "kwame.mensah",
            "+447700900127",
            "1962-12-24",
            "male",
            "O-",
            "58 Station Road",
            "N16 0AB",
        ),
    ] {
        patients.push(
            to.create(
                Kind::Patient,
                None,
                json!({
                "clinic_id": clinic, "first_name": first, "last_name": last,
                "email": format!("{email}@example.com"), "contact_number": phone, "dob": dob,
                "gender": gender, "blood_group": blood, "address": address, "city": "London",
                "postal_code": postcode, "country": "United Kingdom"}),
            )
            .await?,
        );
    }
    // One appointment in each status; Maria's is the visit that goes all the way to payment.
    let mut appointments = Vec::new();
    for (doctor, patient, date, start, end, status, description, services) in [
        (
            0,
            0,
            day(0),
            "16:30",
            "16:45",
            "check_out",
            "Sore throat and fever for 3 days",
            "General Consultation, Throat Swab",
        ),
        (
            1,
            3,
            day(0),
            "10:00",
            "10:20",
            "check_in",
            "Vaccination, second dose",
            "Childhood Vaccination",
        ),
        (
            0,
            1,
            day(1),
            "09:15",
            "09:30",
            "booked",
            "Blood pressure review",
            "General Consultation",
        ),
        (
            2,
            2,
            day(2),
            "14:00",
            "14:30",
            "pending",
            "Rash on both forearms — since last week",
            "Skin Check",
        ),
        (
            0,
            4,
            day(3),
            "11:00",
            "11:15",
            "booked",
            "Repeat prescription",
            "General Consultation",
        ),
        (
            2,
            4,
            day(-2),
            "15:00",
            "15:15",
            "cancelled",
            "Mole check",
            "Skin Check",
        ),
    ] {
        let id = to
            .create(
                Kind::Appointment,
                None,
                json!({
                "clinic_id": clinic, "doctor_id": doctors[doctor], "patient_id": patients[patient],
                "date": date, "start_time": start, "end_time": end,
                "description": description, "services": services}),
            )
            .await?;
        // Booked first, then moved on, as a clinic would: each change fires its event.
        if status != "booked" {
            to.update(Kind::Appointment, id, json!({"status": status}))
                .await?;
        }
        appointments.push(id);
    }
    let encounter = to
        .create(
            Kind::Encounter,
            None,
            json!({
            "clinic_id": clinic, "doctor_id": doctors[0], "patient_id": patients[0],
            "appointment_id": appointments[0], "date": day(0),
            "description": "Acute tonsillitis; throat swab taken, antibiotics started"}),
        )
        .await?;
    let under_encounter = Some((Ref::Encounter, encounter));
    to.create(
        Kind::MedicalRecord,
        under_encounter,
        json!({
        "type": "problem", "title": "Acute tonsillitis",
        "notes": "Sore throat for 3 days, temperature 38.2 °C, swollen tonsils"}),
    )
    .await?;
    to.create(
        Kind::Prescription,
        under_encounter,
        json!({
        "name": "Amoxicillin 500 mg", "frequency": "3 times a day", "duration": "7 days",
        "instruction": "Take after meals"}),
    )
    .await?;
    let bill = to
        .create(
            Kind::Bill,
            None,
            json!({"encounter_id": encounter, "total": "120.50", "discount": "10.00"}),
        )
        .await?;
    to.create(
        Kind::Payment,
        Some((Ref::Bill, bill)),
        json!({"amount": "110.50", "method": "card", "date": day(0)}),
    )
    .await?;
    Ok(clinic)
}
