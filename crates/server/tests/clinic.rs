//! Clinic records end to end: each change made through the API fires its event, and a real
//! receiver gets every variable of the event with the value the records say (names with
//! quotes, accents and emoji included). One test per event of the catalog.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use common::{Backend, Receiver, TOKEN, TestServer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
/// The clinic is in Asia/Kolkata: UTC+05:30 all year, so the test can compute local times
/// without a time zone database.
const IST: i32 = 5 * 3600 + 30 * 60;
const USER: &str = "7";

/// Every catalog event, as a test of its own.
macro_rules! per_event {
    ($($event:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $event() {
            check_event(Backend::Sqlite, stringify!($event)).await
        }
    )*};
}

per_event!(
    kc_appointment_book,
    kc_appointment_update,
    kc_appointment_delete,
    kc_appointment_status_change,
    kc_appointment_payment_complete,
    kc_patient_add,
    kc_patient_update,
    kc_patient_delete,
    kc_doctor_add,
    kc_doctor_update,
    kc_doctor_delete,
    kc_receptionist_add,
    kc_receptionist_update,
    kc_receptionist_delete,
    kc_clinic_add,
    kc_clinic_update,
    kc_clinic_delete,
    kc_encounter_add,
    kc_encounter_update,
    kc_encounter_delete,
    kc_medical_record_add,
    kc_prescription_add,
    kc_bill_add,
    kc_payment_add,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_that_settles_an_appointment_fires_on_postgres_too() {
    check_event(Backend::Postgres, "kc_appointment_payment_complete").await;
}

#[test]
fn every_catalog_event_has_a_test_here() {
    let source = include_str!("clinic.rs");
    for e in carehook_core::catalog::clinic_events() {
        assert!(
            source.contains(&format!("    {},\n", e.name)),
            "{} has no test",
            e.name
        );
    }
}

// --- talking to carehook ------------------------------------------------------------------------

async fn call(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = server
        .http
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}/api/v1{path}", server.base),
        )
        .bearer_auth(TOKEN)
        .header("x-carehook-user-id", USER);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn ok(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = call(server, method, path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    assert!(
        answer["id"].is_i64(),
        "every answer carries the id: {answer}"
    );
    answer
}

/// A webhook for `event` whose JSON body maps every variable of the event to itself.
async fn catch_all(server: &TestServer, rx: &Receiver, event: &str, enabled: bool) -> Value {
    let names: Vec<&str> = carehook_core::catalog::lookup(event)
        .unwrap()
        .variables()
        .map(|v| v.name)
        .collect();
    let body = format!(
        "{{{}}}",
        names
            .iter()
            .map(|n| format!("\"{n}\": \"{{{{{n}}}}}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    server
        .create_webhook(json!({
            "name": format!("all of {event}"),
            "events": [event],
            "url": rx.url(&format!("/{event}")),
            "body": body,
            "enabled": enabled,
        }))
        .await
}

// --- the clinic the tests build -----------------------------------------------------------------

fn clinic_fields() -> Value {
    json!({"name": "Clínica São Tomé \"Sol\" 🏥", "email": "ola@saotome.example.com",
           "contact_number": "+91 22 4000 1234", "address": "12 Hill Road", "city": "Mumbai",
           "postal_code": "400050", "country": "India", "currency": "inr",
           "timezone": "Asia/Kolkata"})
}

/// Ids of what was built; `None` for what the test did not need.
#[derive(Debug, Default)]
struct World {
    clinic: i64,
    doctor: Option<i64>,
    receptionist: Option<i64>,
    patient: Option<i64>,
    appointment: Option<Value>,
    encounter: Option<i64>,
    medical_record: Option<i64>,
    prescription: Option<i64>,
    bill: Option<i64>,
    payment: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Upto {
    Clinic,
    Doctor,
    Receptionist,
    Patient,
    Appointment,
    Encounter,
    Everything,
}

async fn build(server: &TestServer, upto: Upto, with_receptionist: bool) -> World {
    let id = |v: Value| v["id"].as_i64().unwrap();
    let mut w = World {
        clinic: id(ok(server, "POST", "/clinics", Some(clinic_fields())).await),
        ..World::default()
    };
    let c = w.clinic;
    if upto >= Upto::Doctor && upto != Upto::Receptionist && upto != Upto::Patient {
        w.doctor = Some(id(ok(
            server,
            "POST",
            "/doctors",
            Some(json!({
            "clinic_id": c, "first_name": "Zoë", "last_name": "D'Souza",
            "email": "zoe.dsouza@saotome.example.com", "contact_number": "+91 98200 00001",
            "specialization": "Pédiatrie", "license_number": "MH-2026-77"})),
        )
        .await));
    }
    if with_receptionist {
        w.receptionist = Some(id(ok(
            server,
            "POST",
            "/receptionists",
            Some(json!({
            "clinic_id": c, "first_name": "Ana", "last_name": "Ñúñez 😊",
            "email": "ana@saotome.example.com", "contact_number": "+91 98200 00002"})),
        )
        .await));
    }
    if upto >= Upto::Patient && upto != Upto::Receptionist || upto == Upto::Patient {
        w.patient = Some(id(ok(
            server,
            "POST",
            "/patients",
            Some(json!({
            "clinic_id": c, "first_name": "Maria \"Mia\"", "last_name": "O'Brien",
            "email": "mia@example.com", "contact_number": "+91 98200 00003",
            "dob": "1988-04-17", "gender": "female", "blood_group": "O+",
            "address": "27 Willow Lane", "city": "Mumbai", "country": "India",
            "postal_code": "400001"})),
        )
        .await));
    }
    if upto < Upto::Appointment {
        return w;
    }
    let (d, p) = (w.doctor.unwrap(), w.patient.unwrap());
    let appointment = ok(
        server,
        "POST",
        "/appointments",
        Some(json!({
        "clinic_id": c, "doctor_id": d, "patient_id": p, "date": "2026-12-01",
        "start_time": "09:30", "end_time": "09:45",
        "description": "Fever & cough — 3 days", "services": ["Consultation", "Throat swab"]})),
    )
    .await;
    let a = id(appointment.clone());
    w.appointment = Some(appointment);
    if upto < Upto::Encounter {
        return w;
    }
    let e = id(ok(
        server,
        "POST",
        "/encounters",
        Some(json!({
        "clinic_id": c, "doctor_id": d, "patient_id": p, "appointment_id": a,
        "date": "2026-12-01", "description": "Tonsillitis 🤒"})),
    )
    .await);
    w.encounter = Some(e);
    if upto < Upto::Everything {
        return w;
    }
    w.medical_record = Some(id(ok(
        server,
        "POST",
        &format!("/encounters/{e}/medical-records"),
        Some(json!({"type": "problem", "title": "Acute tonsillitis",
                    "notes": "Temp 38.2 °C, swollen tonsils"})),
    )
    .await));
    w.prescription = Some(id(ok(
        server,
        "POST",
        &format!("/encounters/{e}/prescriptions"),
        Some(
            json!({"name": "Amoxicillin 500 mg", "frequency": "3 times a day",
                    "duration": "7 days", "instruction": "Take after meals"}),
        ),
    )
    .await));
    w.bill = Some(id(ok(
        server,
        "POST",
        "/bills",
        Some(json!({"encounter_id": e, "total": "120.50", "discount": "10.00"})),
    )
    .await));
    w
}

/// The records each event needs, and what to do after building them.
fn plan(event: &str) -> (Upto, bool) {
    match event {
        "kc_clinic_add" | "kc_clinic_update" | "kc_clinic_delete" => (Upto::Clinic, false),
        "kc_doctor_add" | "kc_doctor_update" | "kc_doctor_delete" => (Upto::Doctor, false),
        "kc_receptionist_add" | "kc_receptionist_update" | "kc_receptionist_delete" => {
            (Upto::Receptionist, true)
        }
        "kc_patient_add" | "kc_patient_update" | "kc_patient_delete" => (Upto::Patient, false),
        "kc_appointment_book"
        | "kc_appointment_update"
        | "kc_appointment_delete"
        | "kc_appointment_status_change" => (Upto::Appointment, false),
        "kc_encounter_add" | "kc_encounter_update" | "kc_encounter_delete" => {
            (Upto::Encounter, false)
        }
        _ => (Upto::Everything, false),
    }
}

/// Changes the world so that `event` fires (add events fired while building).
async fn act(server: &TestServer, w: &mut World, event: &str) {
    let appointment = w.appointment.as_ref().map(|a| a["id"].as_i64().unwrap());
    let (method, path, body) = match event {
        "kc_clinic_update" => (
            "PATCH",
            format!("/clinics/{}", w.clinic),
            Some(json!({"contact_number": "+91 22 4000 9999"})),
        ),
        "kc_clinic_delete" => ("DELETE", format!("/clinics/{}", w.clinic), None),
        "kc_doctor_update" => (
            "PATCH",
            format!("/doctors/{}", w.doctor.unwrap()),
            Some(json!({"specialization": "Pediatría"})),
        ),
        "kc_doctor_delete" => ("DELETE", format!("/doctors/{}", w.doctor.unwrap()), None),
        "kc_receptionist_update" => (
            "PATCH",
            format!("/receptionists/{}", w.receptionist.unwrap()),
            Some(json!({"email": "ana.nunez@saotome.example.com"})),
        ),
        "kc_receptionist_delete" => (
            "DELETE",
            format!("/receptionists/{}", w.receptionist.unwrap()),
            None,
        ),
        "kc_patient_update" => (
            "PATCH",
            format!("/patients/{}", w.patient.unwrap()),
            Some(json!({"blood_group": "A-"})),
        ),
        "kc_patient_delete" => ("DELETE", format!("/patients/{}", w.patient.unwrap()), None),
        "kc_appointment_update" => (
            "PATCH",
            format!("/appointments/{}", appointment.unwrap()),
            Some(json!({"start_time": "10:00", "end_time": "10:15"})),
        ),
        "kc_appointment_status_change" => (
            "PATCH",
            format!("/appointments/{}", appointment.unwrap()),
            Some(json!({"status": "check_in"})),
        ),
        "kc_appointment_delete" => (
            "DELETE",
            format!("/appointments/{}", appointment.unwrap()),
            None,
        ),
        "kc_encounter_update" => (
            "PATCH",
            format!("/encounters/{}", w.encounter.unwrap()),
            Some(json!({"status": "closed"})),
        ),
        "kc_encounter_delete" => (
            "DELETE",
            format!("/encounters/{}", w.encounter.unwrap()),
            None,
        ),
        "kc_payment_add" | "kc_appointment_payment_complete" => (
            "POST",
            format!("/bills/{}/payments", w.bill.unwrap()),
            Some(json!({"amount": "110.50", "method": "card", "date": "2026-12-01"})),
        ),
        _ => return,
    };
    let answer = ok(server, method, &path, body).await;
    let fired: Vec<&str> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(fired.contains(&event), "{method} {path} fired {fired:?}");
    if path.ends_with("/payments") {
        w.payment = answer["id"].as_i64();
    }
}

/// What the records say each variable of `event` is, written out by hand.
fn expected(w: &World, event: &str) -> BTreeMap<String, String> {
    let mut v: BTreeMap<&str, String> = BTreeMap::new();
    let s = |x: &str| x.to_string();
    v.insert("event_name", s(event));
    v.insert("current_user_id", s(USER));
    v.insert("clinic_id", w.clinic.to_string());
    v.insert("clinic_name", s("Clínica São Tomé \"Sol\" 🏥"));
    v.insert("clinic_email", s("ola@saotome.example.com"));
    v.insert(
        "clinic_contact_number",
        s(if event == "kc_clinic_update" {
            "+91 22 4000 9999"
        } else {
            "+91 22 4000 1234"
        }),
    );
    v.insert("clinic_address", s("12 Hill Road, Mumbai, 400050, India"));
    v.insert("clinic_city", s("Mumbai"));
    v.insert("clinic_country", s("India"));
    v.insert("clinic_postal_code", s("400050"));
    v.insert("clinic_currency", s("INR"));
    if let Some(d) = w.doctor {
        v.insert("doctor_id", d.to_string());
        v.insert("doctor_name", s("Zoë D'Souza"));
        v.insert("doctor_first_name", s("Zoë"));
        v.insert("doctor_last_name", s("D'Souza"));
        v.insert("doctor_email", s("zoe.dsouza@saotome.example.com"));
        v.insert("doctor_contact_number", s("+91 98200 00001"));
        v.insert(
            "doctor_specialization",
            s(if event == "kc_doctor_update" {
                "Pediatría"
            } else {
                "Pédiatrie"
            }),
        );
        v.insert("doctor_license_number", s("MH-2026-77"));
    }
    if let Some(r) = w.receptionist {
        v.insert("receptionist_id", r.to_string());
        v.insert("receptionist_name", s("Ana Ñúñez 😊"));
        v.insert("receptionist_first_name", s("Ana"));
        v.insert("receptionist_last_name", s("Ñúñez 😊"));
        v.insert(
            "receptionist_email",
            s(if event == "kc_receptionist_update" {
                "ana.nunez@saotome.example.com"
            } else {
                "ana@saotome.example.com"
            }),
        );
        v.insert("receptionist_contact_number", s("+91 98200 00002"));
    }
    if let Some(p) = w.patient {
        v.insert("patient_id", p.to_string());
        v.insert("patient_name", s("Maria \"Mia\" O'Brien"));
        v.insert("patient_first_name", s("Maria \"Mia\""));
        v.insert("patient_last_name", s("O'Brien"));
        v.insert("patient_email", s("mia@example.com"));
        v.insert("patient_contact_number", s("+91 98200 00003"));
        v.insert("patient_dob", s("1988-04-17"));
        v.insert("patient_gender", s("female"));
        v.insert(
            "patient_blood_group",
            s(if event == "kc_patient_update" {
                "A-"
            } else {
                "O+"
            }),
        );
        v.insert(
            "patient_address",
            s("27 Willow Lane, Mumbai, 400001, India"),
        );
        v.insert("patient_city", s("Mumbai"));
        v.insert("patient_country", s("India"));
        v.insert("patient_postal_code", s("400001"));
    }
    if let Some(a) = &w.appointment {
        let moved = event == "kc_appointment_update";
        let checked_in = event == "kc_appointment_status_change";
        v.insert("appointment_id", a["id"].to_string());
        v.insert("appointment_date", s("2026-12-01"));
        v.insert(
            "appointment_start_time",
            s(if moved { "10:00" } else { "09:30" }),
        );
        v.insert(
            "appointment_end_time",
            s(if moved { "10:15" } else { "09:45" }),
        );
        // The date and start time in the clinic's zone (Asia/Kolkata), as one instant.
        v.insert(
            "appointment_start",
            s(if moved {
                "2026-12-01T10:00:00+05:30"
            } else {
                "2026-12-01T09:30:00+05:30"
            }),
        );
        v.insert(
            "appointment_status",
            s(if checked_in { "check_in" } else { "booked" }),
        );
        v.insert(
            "appointment_status_code",
            s(if checked_in { "4" } else { "1" }),
        );
        v.insert("appointment_description", s("Fever & cough — 3 days"));
        let created = DateTime::parse_from_rfc3339(a["created_at"].as_str().unwrap()).unwrap();
        v.insert(
            "appointment_created_at",
            created
                .with_timezone(&FixedOffset::east_opt(IST).unwrap())
                .to_rfc3339_opts(SecondsFormat::Secs, false),
        );
        v.insert("service_names", s("Consultation, Throat swab"));
        v.insert("appointment_previous_status", s("booked"));
    }
    if let Some(e) = w.encounter {
        v.insert("encounter_id", e.to_string());
        v.insert("encounter_date", s("2026-12-01"));
        v.insert(
            "encounter_status",
            s(if event == "kc_encounter_update" {
                "closed"
            } else {
                "open"
            }),
        );
        v.insert("encounter_description", s("Tonsillitis 🤒"));
    }
    if let Some(m) = w.medical_record {
        v.insert("medical_record_id", m.to_string());
        v.insert("medical_record_type", s("problem"));
        v.insert("medical_record_title", s("Acute tonsillitis"));
        v.insert("medical_record_notes", s("Temp 38.2 °C, swollen tonsils"));
    }
    if let Some(p) = w.prescription {
        v.insert("prescription_id", p.to_string());
        v.insert("prescription_name", s("Amoxicillin 500 mg"));
        v.insert("prescription_frequency", s("3 times a day"));
        v.insert("prescription_duration", s("7 days"));
        v.insert("prescription_instruction", s("Take after meals"));
        v.insert(
            "prescription_details",
            s("Amoxicillin 500 mg — 3 times a day for 7 days — take after meals"),
        );
    }
    if let Some(b) = w.bill {
        v.insert("bill_id", b.to_string());
        v.insert("bill_number", s("BILL-0001"));
        v.insert("bill_total", s("120.50"));
        v.insert("bill_discount", s("10.00"));
        v.insert("bill_amount", s("110.50"));
        v.insert(
            "bill_status",
            s(if w.payment.is_some() {
                "paid"
            } else {
                "unpaid"
            }),
        );
    }
    if let Some(p) = w.payment {
        v.insert("payment_id", p.to_string());
        v.insert("payment_amount", s("110.50"));
        v.insert("payment_currency", s("INR"));
        v.insert("payment_method", s("card"));
        v.insert("payment_date", s("2026-12-01"));
    }
    // Only the event's own variables; the time-dependent ones are checked separately.
    carehook_core::catalog::lookup(event)
        .unwrap()
        .variables()
        .filter(|var| {
            !var.name.starts_with("current_date")
                && !var.name.starts_with("current_time")
                && var.name != "event_id"
        })
        .map(|var| {
            let value = v
                .get(var.name)
                .unwrap_or_else(|| panic!("the test expects nothing for {}", var.name));
            (var.name.to_string(), value.clone())
        })
        .collect()
}

async fn check_event(backend: Backend, event: &str) {
    let Some(server) = TestServer::start(backend).await else {
        return;
    };
    let rx = Receiver::start().await;
    catch_all(&server, &rx, event, true).await;
    let before = Utc::now();
    let (upto, with_receptionist) = plan(event);
    let mut world = build(&server, upto, with_receptionist).await;
    act(&server, &mut world, event).await;
    let got = rx.wait_for(1, WAIT).await;
    let after = Utc::now();
    let body = got[0].json();
    let mut sent: BTreeMap<String, String> = body
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();

    // The time-dependent variables: the clinic's local time, between before and after.
    let at = DateTime::parse_from_rfc3339(&sent.remove("current_date_time").unwrap()).unwrap();
    assert_eq!(
        at.offset().local_minus_utc(),
        IST,
        "in the clinic's time zone"
    );
    assert!(
        at.timestamp() >= before.timestamp() && at.timestamp() <= after.timestamp(),
        "{at} is not between {before} and {after}"
    );
    assert_eq!(
        sent.remove("current_date").unwrap(),
        at.format("%Y-%m-%d").to_string()
    );
    assert_eq!(
        sent.remove("current_time").unwrap(),
        at.format("%H:%M").to_string()
    );
    // The event id is the one carehook logged for the delivery.
    let delivery = got[0].header("webhook-id").unwrap().to_string();
    let (_, d) = server.get(&format!("/api/v1/deliveries/{delivery}")).await;
    assert_eq!(
        sent.remove("event_id").unwrap(),
        d["event_id"].as_str().unwrap()
    );

    assert_eq!(sent, expected(&world, event), "{event}");
    // Exactly one event of this kind was fired by building and acting: the log holds one
    // delivery, settled, and the receiver got it once.
    let log = server.settled(WAIT).await;
    assert_eq!(log.len(), 1, "{event} fired more than once: {log:#?}");
    assert_eq!(log[0]["status"], "succeeded", "{log:#?}");
    assert_eq!(rx.count(), 1, "{event} was sent more than once");
    server.stop().await;
}

// --- what must not happen -------------------------------------------------------------------

async fn event_count(server: &TestServer) -> usize {
    let (_, page) = server.get("/api/v1/events?limit=1000").await;
    page["items"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_fires_nothing_and_stores_nothing() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    server
        .create_webhook(
            json!({"name": "all", "events": ["*"], "url": rx.url("/all"),
                               "body": "{\"e\": \"{{event_name}}\"}"}),
        )
        .await;
    let w = build(&server, Upto::Patient, false).await;
    let other = ok(&server, "POST", "/clinics", Some(json!({"name": "Other"}))).await;
    let stranger = ok(
        &server,
        "POST",
        "/doctors",
        Some(json!({
        "clinic_id": other["id"], "first_name": "Sam", "last_name": "Lee"})),
    )
    .await;
    rx.wait_for(4, WAIT).await;
    let events = event_count(&server).await;

    let appointment = |doctor: Value, patient: Value| {
        json!({
        "clinic_id": w.clinic, "doctor_id": doctor, "patient_id": patient,
        "date": "2026-12-01", "start_time": "09:30"})
    };
    for (body, field, words) in [
        (
            appointment(json!(4242), json!(w.patient)),
            "doctor_id",
            "no doctor 4242",
        ),
        (
            appointment(stranger["id"].clone(), json!(w.patient)),
            "doctor_id",
            "belongs to clinic",
        ),
        (
            appointment(stranger["id"].clone(), json!(9999)),
            "patient_id",
            "no patient 9999",
        ),
    ] {
        let (status, answer) = call(&server, "POST", "/appointments", Some(body)).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
    }
    let bad_fields = [
        (
            "/patients",
            json!({"clinic_id": w.clinic, "first_name": "A", "last_name": "B", "email": "not-an-email"}),
            "email",
        ),
        (
            "/patients",
            json!({"clinic_id": w.clinic, "first_name": "A"}),
            "last_name",
        ),
        (
            "/patients",
            json!({"clinic_id": w.clinic, "first_name": "A", "last_name": "B", "dob": "1988-13-01"}),
            "dob",
        ),
        (
            "/clinics",
            json!({"name": "X", "timezone": "Europe/Atlantis"}),
            "timezone",
        ),
        (
            "/appointments",
            json!({"clinic_id": w.clinic, "doctor_id": stranger["id"], "patient_id": w.patient, "date": "2026-12-01", "start_time": "9h30"}),
            "start_time",
        ),
    ];
    for (path, body, field) in bad_fields {
        let (status, answer) = call(&server, "POST", path, Some(body)).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    // Deleting a clinic that still has people is refused, whole.
    let (status, answer) = call(&server, "DELETE", &format!("/clinics/{}", w.clinic), None).await;
    assert_eq!(status, 409, "{answer}");

    let (_, appointments) = server.get("/api/v1/appointments").await;
    assert_eq!(appointments["items"], json!([]));
    let (_, patients) = server
        .get(&format!("/api/v1/patients?clinic_id={}", w.clinic))
        .await;
    assert_eq!(patients["items"].as_array().unwrap().len(), 1);
    assert_eq!(event_count(&server).await, events, "no event was recorded");
    let log = server.settled(WAIT).await;
    assert_eq!(log.len(), 4, "no delivery was written: {log:#?}");
    assert_eq!(rx.count(), 4, "nothing more was sent");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_only_the_events_fired_while_they_are_on() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    let w = build(&server, Upto::Patient, false).await;
    let patient = w.patient.unwrap();

    // Created after the patient was added: not sent that old event.
    catch_all(&server, &rx, "kc_patient_add", true).await;
    // Disabled while the patient changes: not sent that change, then or later.
    let off = catch_all(&server, &rx, "kc_patient_update", false).await;
    ok(
        &server,
        "PATCH",
        &format!("/patients/{patient}"),
        Some(json!({"city": "Pune"})),
    )
    .await;
    let (status, _) = server
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{}", off["id"].as_str().unwrap()),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    // The log says so: no delivery was written for either webhook, then or on enabling.
    let log = server.settled(WAIT).await;
    assert_eq!(log, Vec::<Value>::new(), "no delivery for events of before");
    assert_eq!(rx.count(), 0);

    // Once on, the next change is sent — and only that one.
    ok(
        &server,
        "PATCH",
        &format!("/patients/{patient}"),
        Some(json!({"city": "Goa"})),
    )
    .await;
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["patient_city"], "Goa");
    let log = server.settled(WAIT).await;
    assert_eq!(log.len(), 1, "only the change made while on: {log:#?}");
    assert_eq!(log[0]["webhook_id"], off["id"], "{log:#?}");
    assert_eq!(rx.count(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_listed_by_clinic_patient_and_date_and_read_back() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let w = build(&server, Upto::Everything, false).await;
    let p = w.patient.unwrap();
    let bill = ok(&server, "GET", &format!("/bills/{}", w.bill.unwrap()), None).await;
    assert_eq!(bill["bill_number"], "BILL-0001");
    assert_eq!(bill["amount"], "110.50");
    assert_eq!(bill["status"], "unpaid");
    // A partial payment leaves it unpaid; the rest pays it.
    ok(
        &server,
        "POST",
        &format!("/bills/{}/payments", w.bill.unwrap()),
        Some(json!({"amount": "100"})),
    )
    .await;
    let bill = ok(&server, "GET", &format!("/bills/{}", w.bill.unwrap()), None).await;
    assert_eq!(bill["status"], "unpaid");
    let payment = ok(
        &server,
        "POST",
        &format!("/bills/{}/payments", w.bill.unwrap()),
        Some(json!({"amount": "10.50", "method": "cash"})),
    )
    .await;
    // The date defaults to today in the clinic's time zone (UTC+05:30).
    let today = (Utc::now() + chrono::Duration::seconds(IST.into()))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(payment["date"], today);
    let names: Vec<&str> = payment["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kc_payment_add", "kc_appointment_payment_complete"]);
    let bill = ok(&server, "GET", &format!("/bills/{}", w.bill.unwrap()), None).await;
    assert_eq!(bill["status"], "paid");

    let count = |v: &Value| v["items"].as_array().unwrap().len();
    for (path, n) in [
        (format!("/appointments?patient_id={p}&date=2026-12-01"), 1),
        (
            format!("/appointments?clinic_id={}&date_from=2026-12-02", w.clinic),
            0,
        ),
        (format!("/payments?clinic_id={}", w.clinic), 2),
        (format!("/bills/{}/payments?limit=1", w.bill.unwrap()), 1),
        (
            format!("/encounters/{}/prescriptions", w.encounter.unwrap()),
            1,
        ),
        (format!("/medical-records?patient_id={p}"), 1),
        (format!("/patients?clinic_id={}", w.clinic + 1), 0),
    ] {
        let (status, page) = server.get(&format!("/api/v1{path}")).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert_eq!(count(&page), n, "{path}: {page}");
    }
    // Patients have no date: the filter is refused, naming it.
    let (status, body) = server.get("/api/v1/patients?date=2026-12-01").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "date", "{body}");
    let (status, _) = server.get("/api/v1/patients/4242").await;
    assert_eq!(status, 404);
    server.stop().await;
}
