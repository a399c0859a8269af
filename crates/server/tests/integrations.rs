//! The guide's 15 integrations end to end: a webhook made from each preset,
//! the clinic action that fires it done through the clinic API, and a local
//! receiver listening at the service's real path checking method, path,
//! query, auth, content type and every body field against the records.
//!
//! The patient's name carries quotes, an apostrophe, an ampersand, `=`, `%`,
//! `+` and an emoji, so every JSON and form body is shown to carry it intact.

mod common;

use std::time::Duration;

use common::{Backend, Received, Receiver, TestServer};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const FIRST: &str = "Zoë \"Zee\" & Co";
const LAST: &str = "O'Brien=100%+🏥";

fn patient_name() -> String {
    format!("{FIRST} {LAST}")
}

/// What the tests build through the clinic API.
struct Clinic {
    clinic: i64,
    doctor: i64,
    patient: i64,
}

async fn ok(server: &TestServer, method: &str, path: &str, body: Value) -> Value {
    let (status, v) = server
        .call(method, &format!("/api/v1{path}"), Some(body))
        .await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {v}"
    );
    v
}

async fn clinic(server: &TestServer) -> Clinic {
    let clinic = ok(
        server,
        "POST",
        "/clinics",
        json!({"name": "Riverside Family Clinic", "email": "frontdesk@riverside.example.com",
               "contact_number": "+44 20 7946 0000", "address": "1 River Road", "city": "London",
               "postal_code": "SE1 9AA", "country": "United Kingdom", "currency": "GBP"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let doctor = ok(
        server,
        "POST",
        "/doctors",
        json!({"clinic_id": clinic, "first_name": "Aisha", "last_name": "Patel",
               "email": "aisha.patel@riverside.example.com", "contact_number": "+447700900001",
               "specialization": "General practice", "license_number": "GMC-7654321"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let patient = add_patient(server, clinic).await;
    Clinic {
        clinic,
        doctor,
        patient,
    }
}

/// The patient id as the analytics presets send it: the test server's
/// (master key `[42; 32]`) pseudonym, never the id itself.
fn pseudonym_of(patient: i64) -> String {
    let p = carehook_core::privacy::Pseudonymizer::from_master_key(&[42; 32])
        .pseudonym("", &patient.to_string());
    assert_ne!(p, patient.to_string());
    p
}

async fn add_patient(server: &TestServer, clinic: i64) -> i64 {
    ok(
        server,
        "POST",
        "/patients",
        json!({"clinic_id": clinic, "first_name": FIRST, "last_name": LAST,
               "email": "zoe@example.com", "contact_number": "+447700900123", "dob": "1990-02-03",
               "gender": "female", "blood_group": "A+", "address": "2 Elm St", "city": "London",
               "country": "United Kingdom", "postal_code": "E1 6AN"}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn book(server: &TestServer, c: &Clinic) -> i64 {
    ok(
        server,
        "POST",
        "/appointments",
        json!({"clinic_id": c.clinic, "doctor_id": c.doctor, "patient_id": c.patient,
               "date": "2026-12-01", "start_time": "09:30", "end_time": "09:45",
               "description": "Sore throat"}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

async fn encounter(server: &TestServer, c: &Clinic, appointment: i64) -> i64 {
    ok(
        server,
        "POST",
        "/encounters",
        json!({"clinic_id": c.clinic, "doctor_id": c.doctor, "patient_id": c.patient,
               "appointment_id": appointment, "date": "2026-12-01", "description": "Tonsillitis"}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// A bill of 1234.50 paid in full; the payment's id.
async fn pay(server: &TestServer, c: &Clinic) -> (Value, Value) {
    let a = book(server, c).await;
    let e = encounter(server, c, a).await;
    let bill = ok(
        server,
        "POST",
        "/bills",
        json!({"encounter_id": e, "total": "1234.50", "discount": "0"}),
    )
    .await;
    let payment = ok(
        server,
        "POST",
        &format!("/bills/{}/payments", bill["id"]),
        json!({"amount": "1234.50", "method": "card", "date": "2026-12-01"}),
    )
    .await;
    (bill, payment)
}

async fn from_preset(server: &TestServer, body: Value) -> Value {
    server.create_webhook(body).await
}

/// Swaps an OAuth 2.0 preset's auth for a fixed bearer token.
async fn as_bearer(server: &TestServer, webhook: &Value, token: &str) {
    let path = format!("/api/v1/webhooks/{}", webhook["id"].as_str().unwrap());
    // A merge patch: `null` drops the OAuth fields, then the new auth goes in.
    for auth in [Value::Null, json!({"type": "bearer", "token": token})] {
        let (status, body) = server
            .call("PATCH", &path, Some(json!({ "auth": auth })))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

fn today_is_a_date(v: &Value) {
    let s = v.as_str().unwrap();
    assert!(
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "{s} is not a date"
    );
}

async fn one(rx: &Receiver) -> Received {
    let got = rx.wait_for(1, WAIT).await;
    got.into_iter().next().unwrap()
}

#[tokio::test]
async fn slack_posts_a_new_appointment() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "slack_new_appointment", "url": rx.url("/services/T000/B000/XXXX"),
            "values": {"site_url": "https://riverside.example.com"}}),
    )
    .await;
    let c = clinic(&server).await;
    let a = book(&server, &c).await;
    let r = one(&rx).await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.query.as_deref()),
        ("POST", "/services/T000/B000/XXXX", None)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["text"], "🏥 New Appointment Booked!");
    assert_eq!(
        v["blocks"][0]["text"]["text"],
        format!(
            "*Patient:* {}\n*Doctor:* Aisha Patel\n*Date:* 2026-12-01 at 09:30\n*Clinic:* Riverside Family Clinic\n*Phone:* +447700900123",
            patient_name()
        )
    );
    assert_eq!(
        v["blocks"][1]["elements"][0]["url"],
        format!("https://riverside.example.com/appointments/{a}")
    );
    server.stop().await;
}

#[tokio::test]
async fn twilio_texts_the_patient_as_a_form() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "twilio_sms_confirmation", "url": rx.url("/2010-04-01/Accounts/AC42/Messages.json"),
               "values": {"from_number": "+15017122661"}, "auth": {"username": "AC42", "password": "tw-token"}}),
    )
    .await;
    let c = clinic(&server).await;
    book(&server, &c).await;
    let r = one(&rx).await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/2010-04-01/Accounts/AC42/Messages.json")
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        r.header("authorization"),
        Some("Basic QUM0Mjp0dy10b2tlbg==")
    );
    assert_eq!(
        r.form(),
        vec![
            ("To".to_string(), "+447700900123".to_string()),
            ("From".to_string(), "+15017122661".to_string()),
            (
                "Body".to_string(),
                format!(
                    "Hi {}, your appointment with Dr. Aisha Patel is confirmed for 2026-12-01 at 09:30. See you at Riverside Family Clinic!",
                    patient_name()
                )
            ),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn sendgrid_emails_a_confirmation() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "sendgrid_email_confirmation", "url": rx.url("/v3/mail/send"), "auth": {"token": "SG.key"}}),
    )
    .await;
    let c = clinic(&server).await;
    book(&server, &c).await;
    let r = one(&rx).await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v3/mail/send")
    );
    assert_eq!(r.header("authorization"), Some("Bearer SG.key"));
    let v = r.json();
    assert_eq!(
        v["personalizations"][0]["to"][0],
        json!({"email": "zoe@example.com", "name": patient_name()})
    );
    assert_eq!(
        v["personalizations"][0]["subject"],
        "Appointment Confirmation - Riverside Family Clinic"
    );
    assert_eq!(
        v["from"],
        json!({"email": "frontdesk@riverside.example.com", "name": "Riverside Family Clinic"})
    );
    let html = v["content"][0]["value"].as_str().unwrap();
    assert!(
        html.contains(&format!("<p>Dear {},</p>", patient_name())),
        "{html}"
    );
    assert!(
        html.contains("Location: 1 River Road, London, SE1 9AA, United Kingdom"),
        "{html}"
    );
    server.stop().await;
}

#[tokio::test]
async fn teams_hears_only_about_cancellations() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "teams_cancellation_alert", "url": rx.url("/webhookb2/abc")}),
    )
    .await;
    let c = clinic(&server).await;
    let a = book(&server, &c).await;
    ok(
        &server,
        "PATCH",
        &format!("/appointments/{a}"),
        json!({"status": "check_in"}),
    )
    .await;
    ok(
        &server,
        "PATCH",
        &format!("/appointments/{a}"),
        json!({"status": "cancelled"}),
    )
    .await;
    let r = one(&rx).await;
    let log = server.settled(WAIT).await;
    assert_eq!(
        log.len(),
        1,
        "Teams heard about a status change that is not a cancellation: {log:#?}"
    );
    assert_eq!(rx.count(), 1);
    assert_eq!(r.path, "/webhookb2/abc");
    let v = r.json();
    assert_eq!(v["title"], "⚠️ Appointment Cancelled");
    let facts = &v["sections"][0]["facts"];
    assert_eq!(
        facts[0],
        json!({"name": "Patient:", "value": patient_name()})
    );
    assert_eq!(facts[1], json!({"name": "Doctor:", "value": "Aisha Patel"}));
    assert_eq!(facts[2], json!({"name": "Date:", "value": "2026-12-01"}));
    assert_eq!(facts[3], json!({"name": "Time:", "value": "09:30"}));
    assert_eq!(
        facts[4],
        json!({"name": "Clinic:", "value": "Riverside Family Clinic"})
    );
    server.stop().await;
}

#[tokio::test]
async fn hubspot_gets_a_contact_with_the_key_in_the_query() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "hubspot_patient_contact", "url": rx.url("/contacts/v1/contact"), "auth": {"value": "hub&key"}}),
    )
    .await;
    let c = clinic(&server).await;
    let r = one(&rx).await;
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/contacts/v1/contact")
    );
    assert_eq!(r.query.as_deref(), Some("hapikey=hub%26key"));
    let props = r.json()["properties"].clone();
    assert_eq!(
        props[0],
        json!({"property": "email", "value": "zoe@example.com"})
    );
    assert_eq!(
        props[1],
        json!({"property": "firstname", "value": patient_name()})
    );
    assert_eq!(
        props[2],
        json!({"property": "phone", "value": "+447700900123"})
    );
    assert_eq!(
        props[3],
        json!({"property": "clinic_id", "value": c.clinic.to_string()})
    );
    assert_eq!(
        props[4],
        json!({"property": "lifecyclestage", "value": "patient"})
    );
    today_is_a_date(&props[5]["value"]);
    // The key is masked in the delivery log.
    let (_, list) = server.get("/api/v1/deliveries").await;
    let id = list["items"][0]["id"].as_str().unwrap();
    let d = server
        .wait_delivery(id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let logged = d["attempts"][0]["request"]["url"].as_str().unwrap();
    assert!(
        logged.ends_with("hapikey=********") && !logged.contains("hub"),
        "{logged}"
    );
    server.stop().await;
}

#[tokio::test]
async fn salesforce_patches_the_lead_named_in_the_path() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    let w = from_preset(
        &server,
        json!({"preset": "salesforce_lead_update", "values": {"instance": "acme.my"},
               "url": rx.url("/services/data/v52.0/sobjects/Lead/{{patient_id}}"),
               "auth": {"client_id": "cid", "client_secret": "cs"}}),
    )
    .await;
    // The preset fetches its token from Salesforce (tests/oauth.rs covers that
    // against a local provider); here a fixed token, to check the request.
    as_bearer(&server, &w, "sf-token").await;
    let c = clinic(&server).await;
    book(&server, &c).await;
    let r = one(&rx).await;
    assert_eq!(r.method, "PATCH");
    assert_eq!(
        r.path,
        format!("/services/data/v52.0/sobjects/Lead/{}", c.patient)
    );
    assert_eq!(r.header("authorization"), Some("Bearer sf-token"));
    let v = r.json();
    assert_eq!(v["Status"], "Appointment Scheduled");
    today_is_a_date(&v["LastActivityDate"]);
    assert_eq!(
        v["Description"],
        "Appointment with Aisha Patel on 2026-12-01"
    );
    server.stop().await;
}

#[tokio::test]
async fn google_analytics_gets_the_measurement_id_and_secret_in_the_query() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "google_analytics_booking", "url": rx.url("/mp/collect?measurement_id=G-TEST1"),
               "auth": {"value": "ga-secret"}}),
    )
    .await;
    let c = clinic(&server).await;
    book(&server, &c).await;
    let r = one(&rx).await;
    assert_eq!(r.path, "/mp/collect");
    assert_eq!(
        r.query.as_deref(),
        Some("measurement_id=G-TEST1&api_secret=ga-secret")
    );
    assert_eq!(
        r.json(),
        json!({"client_id": pseudonym_of(c.patient), "events": [{"name": "appointment_booked", "params": {
            "doctor": "Aisha Patel", "clinic": "Riverside Family Clinic", "appointment_date": "2026-12-01", "value": 1}}]})
    );
    server.stop().await;
}

#[tokio::test]
async fn mixpanel_tracks_the_booking_with_a_unix_time() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "mixpanel_patient_journey", "url": rx.url("/track"), "values": {"project_token": "mp-token"}}),
    )
    .await;
    let c = clinic(&server).await;
    let a = book(&server, &c).await;
    let r = one(&rx).await;
    assert_eq!(r.path, "/track");
    let p = r.json()["properties"].clone();
    assert_eq!(p["distinct_id"], pseudonym_of(c.patient));
    assert_eq!(p["token"], "mp-token");
    assert_eq!(p["appointment_id"], a.to_string());
    assert_eq!(p["$insert_id"], a.to_string());
    assert_eq!(p["doctor_id"], c.doctor.to_string());
    assert_eq!(p["clinic_id"], c.clinic.to_string());
    assert_eq!(p["appointment_date"], "2026-12-01");
    let now = chrono::Utc::now().timestamp();
    let t = p["time"].as_i64().expect("time is a unix number");
    assert!((now - t).abs() < 120, "time {t} is not now ({now})");
    server.stop().await;
}

#[tokio::test]
async fn zapier_receives_every_event() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "zapier_any_event", "url": rx.url("/hooks/catch/1/abc/")}),
    )
    .await;
    let c = clinic(&server).await; // clinic, doctor, patient: 3 events
    let a = book(&server, &c).await; // 4
    ok(
        &server,
        "PATCH",
        &format!("/appointments/{a}"),
        json!({"status": "cancelled"}),
    )
    .await; // 5
    let got = rx.wait_for(5, WAIT).await;
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.json()["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "kc_clinic_add",
            "kc_doctor_add",
            "kc_patient_add",
            "kc_appointment_book",
            "kc_appointment_status_change"
        ]
    );
    let booking = got[3].json();
    assert_eq!(booking["patient"]["name"], patient_name());
    assert_eq!(booking["appointment"]["id"], a.to_string());
    assert_eq!(booking["appointment"]["time"], "09:30");
    assert_eq!(booking["appointment"]["doctor"], "Aisha Patel");
    assert_eq!(
        booking["clinic"],
        json!({"name": "Riverside Family Clinic", "email": "frontdesk@riverside.example.com"})
    );
    // The clinic event has no patient: those fields are empty, the JSON still valid.
    assert_eq!(got[0].json()["patient"]["name"], "");
    server.stop().await;
}

#[tokio::test]
async fn make_receives_a_payment_of_exactly_1234_50() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "make_payment_received", "url": rx.url("/make/abc123")}),
    )
    .await;
    let c = clinic(&server).await;
    let (bill, payment) = pay(&server, &c).await;
    let r = one(&rx).await;
    let raw = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(raw.contains("\"amount\": \"1234.50\""), "{raw}");
    assert_eq!(
        r.json(),
        json!({"event": "payment_received",
               "payment": {"id": payment["id"].to_string(), "amount": "1234.50", "method": "card", "date": "2026-12-01"},
               "patient": {"name": patient_name(), "email": "zoe@example.com"},
               "bill": {"id": bill["id"].to_string(), "number": bill["bill_number"]}})
    );
    assert!(
        bill["bill_number"].as_str().unwrap().starts_with("BILL-"),
        "{bill}"
    );
    server.stop().await;
}

#[tokio::test]
async fn google_sheets_logs_a_row_and_a_redirect_counts_as_done() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    // Apps Script runs doPost, then answers 302.
    rx.answer(|_, _| {
        common::Answer::status(302).header("Location", "https://script.googleusercontent.com/echo")
    });
    from_preset(
        &server,
        json!({"preset": "google_sheets_appointments", "url": rx.url("/macros/s/abc/exec")}),
    )
    .await;
    let c = clinic(&server).await;
    book(&server, &c).await;
    let r = one(&rx).await;
    let v = r.json();
    assert_eq!(v["patient_name"], patient_name());
    assert_eq!(v["patient_email"], "zoe@example.com");
    assert_eq!(v["patient_phone"], "+447700900123");
    assert_eq!(v["doctor_name"], "Aisha Patel");
    assert_eq!(v["appointment_date"], "2026-12-01");
    assert_eq!(v["appointment_time"], "09:30");
    assert_eq!(v["clinic_name"], "Riverside Family Clinic");
    assert_eq!(v["status"], "booked");
    assert!(
        chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap()).is_ok(),
        "{v}"
    );
    let (_, list) = server.get("/api/v1/deliveries").await;
    let id = list["items"][0]["id"].as_str().unwrap();
    server
        .wait_delivery(id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let log = server.settled(WAIT).await;
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(
        log[0]["attempts"], 1,
        "a 302 from Apps Script is a success: one attempt, not a retry"
    );
    assert_eq!(rx.count(), 1, "a row would have been added twice");
    server.stop().await;
}

#[tokio::test]
async fn quickbooks_records_the_payment() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    let w = from_preset(
        &server,
        json!({"preset": "quickbooks_payment_sync", "url": rx.url("/v3/company/4620816365178145710/payment"),
               "auth": {"client_id": "cid", "client_secret": "cs", "refresh_token": "rt"}}),
    )
    .await;
    as_bearer(&server, &w, "qb-token").await;
    let c = clinic(&server).await;
    let (bill, _) = pay(&server, &c).await;
    let r = one(&rx).await;
    assert_eq!(r.path, "/v3/company/4620816365178145710/payment");
    assert_eq!(r.header("authorization"), Some("Bearer qb-token"));
    assert_eq!(
        r.json(),
        json!({"TotalAmt": "1234.50", "CustomerRef": {"value": c.patient.to_string()},
               "PaymentMethodRef": {"value": "card"}, "TxnDate": "2026-12-01",
               "PrivateNote": format!("Payment for Bill #{}", bill["bill_number"].as_str().unwrap())})
    );
    server.stop().await;
}

#[tokio::test]
async fn the_patient_portal_hears_of_a_new_medical_record() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(&server, json!({"preset": "patient_portal_record", "url": rx.url("/api/records"), "auth": {"value": "portal-key"}}))
        .await;
    let c = clinic(&server).await;
    let a = book(&server, &c).await;
    let e = encounter(&server, &c, a).await;
    ok(
        &server,
        "POST",
        &format!("/encounters/{e}/medical-records"),
        json!({"type": "problem", "title": "Tonsillitis", "notes": "Rest"}),
    )
    .await;
    let r = one(&rx).await;
    assert_eq!(r.path, "/api/records");
    assert_eq!(r.header("x-api-key"), Some("portal-key"));
    assert_eq!(
        r.json(),
        json!({"patient_id": c.patient.to_string(), "record_type": "medical_record", "encounter_id": e.to_string(),
               "doctor": "Aisha Patel", "date": "2026-12-01", "notify_patient": true})
    );
    server.stop().await;
}

#[tokio::test]
async fn the_pharmacy_receives_the_prescription() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "pharmacy_prescription", "url": rx.url("/prescriptions"), "auth": {"value": "rx-key", "name": "X-Pharmacy-Key"}}),
    )
    .await;
    let c = clinic(&server).await;
    let a = book(&server, &c).await;
    let e = encounter(&server, &c, a).await;
    let p = ok(
        &server,
        "POST",
        &format!("/encounters/{e}/prescriptions"),
        json!({"name": "Amoxicillin 500 mg", "frequency": "3 times a day", "duration": "7 days", "instruction": "after meals"}),
    )
    .await;
    let r = one(&rx).await;
    assert_eq!(r.path, "/prescriptions");
    assert_eq!(r.header("x-pharmacy-key"), Some("rx-key"));
    let v = r.json();
    assert_eq!(v["prescription_id"], p["id"].to_string());
    assert_eq!(
        v["patient"],
        json!({"name": patient_name(), "dob": "1990-02-03", "contact": "+447700900123"})
    );
    assert_eq!(
        v["prescriber"],
        json!({"name": "Aisha Patel", "license": "GMC-7654321"})
    );
    let meds = v["medications"].as_str().unwrap();
    assert!(
        meds.contains("Amoxicillin 500 mg")
            && meds.contains("3 times a day")
            && meds.contains("7 days"),
        "{meds}"
    );
    today_is_a_date(&v["date"]);
    server.stop().await;
}

#[tokio::test]
async fn discord_hears_each_of_its_events() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let rx = Receiver::start().await;
    from_preset(
        &server,
        json!({"preset": "discord_patient_updates", "url": rx.url("/api/webhooks/123/abc")}),
    )
    .await;
    let c = clinic(&server).await; // kc_patient_add
    ok(
        &server,
        "PATCH",
        &format!("/patients/{}", c.patient),
        json!({"contact_number": "+447700900999"}),
    )
    .await; // kc_patient_update
    book(&server, &c).await; // not subscribed
    let got = rx.wait_for(2, WAIT).await;
    let log = server.settled(WAIT).await;
    assert_eq!(log.len(), 2, "not the booking: {log:#?}");
    assert_eq!(rx.count(), 2);
    let (add, update) = (got[0].json(), got[1].json());
    assert_eq!(
        add["content"],
        "New Patient Registered! 🎉 (kc_patient_add)"
    );
    assert_eq!(
        update["content"],
        "New Patient Registered! 🎉 (kc_patient_update)"
    );
    let fields = &add["embeds"][0]["fields"];
    assert_eq!(
        fields[0],
        json!({"name": "Name", "value": patient_name(), "inline": true})
    );
    assert_eq!(fields[2]["value"], "+447700900123");
    assert_eq!(update["embeds"][0]["fields"][2]["value"], "+447700900999");
    assert_eq!(fields[3]["value"], "Riverside Family Clinic");
    assert!(
        chrono::DateTime::parse_from_rfc3339(add["embeds"][0]["timestamp"].as_str().unwrap())
            .is_ok()
    );
    server.stop().await;
}
