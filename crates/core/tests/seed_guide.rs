//! The 15 use cases of the user guide, with each payload typed exactly as the
//! guide shows it (its lost emoji restored). Each compiles against its events,
//! renders with the catalog's example values, and arrives as the expected
//! JSON, form or URL.

use carehook_core::Vars;
use carehook_core::catalog::{Scope, lookup};
use carehook_core::template::{Context, compile};
use serde_json::{Value, json};

/// Compiles `body` for `events` and renders it with `example_event`'s example values.
fn render(events: &[&str], context: Context, body: &str, example_event: &str) -> (String, Vars) {
    let scope = Scope::new(events).unwrap();
    let compiled = compile(body, context, "body", &scope).unwrap_or_else(|e| panic!("{e}"));
    let vars = lookup(example_event).unwrap().example_vars();
    (compiled.template.render(&vars).unwrap(), vars)
}

fn render_json(events: &[&str], body: &str) -> (Value, Vars) {
    let (out, vars) = render(
        events,
        Context::JsonBody,
        body,
        events[0].trim_start_matches('*'),
    );
    (
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")),
        vars,
    )
}

fn render_url(events: &[&str], url: &str) -> String {
    let scope = Scope::new(events).unwrap();
    let vars = lookup(events[0]).unwrap().example_vars();
    compile(url, Context::Url, "url", &scope)
        .unwrap()
        .template
        .render(&vars)
        .unwrap()
}

#[test]
fn use_case_01_slack_new_appointment() {
    let body = r#"{
"text": "🏥 New Appointment Booked!",
"blocks": [
{
"type": "section",
"text": {
"type": "mrkdwn",
"text": "*Patient:* {{patient_name}}\n*Doctor:* {{doctor_name}}\n*Date:* {{appointment_date}} at {{appointment_start_time}}\n*Clinic:* {{clinic_name}}\n*Phone:* {{patient_contact_number}}"
}
},
{
"type": "actions",
"elements": [
{
"type": "button",
"text": {
"type": "plain_text",
"text": "View Details"
},
"url": "https://yoursite.com/appointments/{{appointment_id}}"
}
]
}
]
}"#;
    let (v, x) = render_json(&["kc_appointment_book"], body);
    let text = format!(
        "*Patient:* {}\n*Doctor:* {}\n*Date:* {} at {}\n*Clinic:* {}\n*Phone:* {}",
        x["patient_name"],
        x["doctor_name"],
        x["appointment_date"],
        x["appointment_start_time"],
        x["clinic_name"],
        x["patient_contact_number"]
    );
    assert_eq!(
        v,
        json!({
            "text": "🏥 New Appointment Booked!",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                {"type": "actions", "elements": [{
                    "type": "button",
                    "text": {"type": "plain_text", "text": "View Details"},
                    "url": format!("https://yoursite.com/appointments/{}", x["appointment_id"])
                }]}
            ]
        })
    );
}

#[test]
fn use_case_02_twilio_sms_reminder_as_form_data() {
    let body = "To={{patient_contact_number}}
From=YOUR_TWILIO_PHONE_NUMBER
Body=Hi {{patient_name}}, your appointment with Dr. {{doctor_name}} is confirmed for {{appointment_date}} at {{appointment_start_time}}. See you at {{clinic_name}}!";
    let (out, x) = render(
        &["kc_appointment_book"],
        Context::FormBody,
        body,
        "kc_appointment_book",
    );
    let fields: Vec<(String, String)> = form_urlencoded::parse(out.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        fields,
        vec![
            ("To".to_string(), x["patient_contact_number"].clone()),
            ("From".to_string(), "YOUR_TWILIO_PHONE_NUMBER".to_string()),
            (
                "Body".to_string(),
                format!(
                    "Hi {}, your appointment with Dr. {} is confirmed for {} at {}. See you at {}!",
                    x["patient_name"],
                    x["doctor_name"],
                    x["appointment_date"],
                    x["appointment_start_time"],
                    x["clinic_name"]
                )
            ),
        ]
    );
    let url = render_url(
        &["kc_appointment_book"],
        "https://api.twilio.com/2010-04-01/Accounts/YOUR_ACCOUNT_SID/Messages.json",
    );
    assert_eq!(
        url,
        "https://api.twilio.com/2010-04-01/Accounts/YOUR_ACCOUNT_SID/Messages.json"
    );
}

#[test]
fn use_case_03_sendgrid_email_confirmation() {
    let body = r#"{
"personalizations": [{
"to": [{"email": "{{patient_email}}", "name": "{{patient_name}}"}],
"subject": "Appointment Confirmation - {{clinic_name}}"
}],
"from": {
"email": "{{clinic_email}}",
"name": "{{clinic_name}}"
},
"content": [{
"type": "text/html",
"value": "<h2>Appointment Confirmed</h2><p>Dear {{patient_name}},</p><p>Your appointment with Dr. {{doctor_name}} is confirmed for {{appointment_date}} at {{appointment_start_time}}.</p><p>Location: {{clinic_address}}</p><p>If you need to reschedule, please contact us.</p><p>Best regards,<br>{{clinic_name}}</p>"
}]
}"#;
    let (v, x) = render_json(&["kc_appointment_book"], body);
    assert_eq!(
        v,
        json!({
            "personalizations": [{
                "to": [{"email": x["patient_email"], "name": x["patient_name"]}],
                "subject": format!("Appointment Confirmation - {}", x["clinic_name"])
            }],
            "from": {"email": x["clinic_email"], "name": x["clinic_name"]},
            "content": [{
                "type": "text/html",
                "value": format!("<h2>Appointment Confirmed</h2><p>Dear {},</p><p>Your appointment with Dr. {} is confirmed for {} at {}.</p><p>Location: {}</p><p>If you need to reschedule, please contact us.</p><p>Best regards,<br>{}</p>",
                    x["patient_name"], x["doctor_name"], x["appointment_date"], x["appointment_start_time"], x["clinic_address"], x["clinic_name"])
            }]
        })
    );
}

#[test]
fn use_case_04_teams_cancellation_alert() {
    let body = r#"{
"@type": "MessageCard",
"@context": "https://schema.org/extensions",
"summary": "Appointment Cancelled",
"themeColor": "FF0000",
"title": "⚠️ Appointment Cancelled",
"sections": [{
"facts": [
{"name": "Patient:", "value": "{{patient_name}}"},
{"name": "Doctor:", "value": "{{doctor_name}}"},
{"name": "Date:", "value": "{{appointment_date}}"},
{"name": "Time:", "value": "{{appointment_start_time}}"},
{"name": "Clinic:", "value": "{{clinic_name}}"}
]
}]
}"#;
    let (v, x) = render_json(&["kc_appointment_status_change"], body);
    assert_eq!(
        v,
        json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": "Appointment Cancelled",
            "themeColor": "FF0000",
            "title": "⚠️ Appointment Cancelled",
            "sections": [{"facts": [
                {"name": "Patient:", "value": x["patient_name"]},
                {"name": "Doctor:", "value": x["doctor_name"]},
                {"name": "Date:", "value": x["appointment_date"]},
                {"name": "Time:", "value": x["appointment_start_time"]},
                {"name": "Clinic:", "value": x["clinic_name"]}
            ]}]
        })
    );
    // "when status = cancelled": the guide's condition holds for a cancellation only.
    let conditions: Vec<carehook_core::conditions::Condition> = serde_json::from_value(
        json!([{"variable": "appointment_status", "op": "eq", "value": "cancelled"}]),
    )
    .unwrap();
    let scope = Scope::new(&["kc_appointment_status_change"]).unwrap();
    carehook_core::conditions::validate(&conditions, &scope).unwrap();
    let mut cancelled = x.clone();
    cancelled.insert("appointment_status".into(), "cancelled".into());
    let mut checked_in = x.clone();
    checked_in.insert("appointment_status".into(), "check_in".into());
    assert!(carehook_core::conditions::matches(&conditions, &cancelled));
    assert!(!carehook_core::conditions::matches(
        &conditions,
        &checked_in
    ));
}

#[test]
fn use_case_05_hubspot_contact_on_patient_registration() {
    let body = r#"{
"properties": [
{"property": "email", "value": "{{patient_email}}"},
{"property": "firstname", "value": "{{patient_name}}"},
{"property": "phone", "value": "{{patient_contact_number}}"},
{"property": "clinic_id", "value": "{{clinic_id}}"},
{"property": "lifecyclestage", "value": "patient"},
{"property": "registration_date", "value": "{{current_date}}"}
]
}"#;
    let (v, x) = render_json(&["kc_patient_add"], body);
    assert_eq!(
        v,
        json!({"properties": [
            {"property": "email", "value": x["patient_email"]},
            {"property": "firstname", "value": x["patient_name"]},
            {"property": "phone", "value": x["patient_contact_number"]},
            {"property": "clinic_id", "value": x["clinic_id"]},
            {"property": "lifecyclestage", "value": "patient"},
            {"property": "registration_date", "value": x["current_date"]}
        ]})
    );
}

#[test]
fn use_case_06_salesforce_lead_update_with_id_in_the_path() {
    let body = r#"{
"Status": "Appointment Scheduled",
"LastActivityDate": "{{current_date}}",
"Description": "Appointment with {{doctor_name}} on {{appointment_date}}"
}"#;
    let (v, x) = render_json(&["kc_appointment_book"], body);
    assert_eq!(
        v,
        json!({
            "Status": "Appointment Scheduled",
            "LastActivityDate": x["current_date"],
            "Description": format!("Appointment with {} on {}", x["doctor_name"], x["appointment_date"])
        })
    );
    let url = render_url(
        &["kc_appointment_book"],
        "https://YOUR_INSTANCE.salesforce.com/services/data/v52.0/sobjects/Lead/{{patient_id}}",
    );
    assert_eq!(
        url,
        format!(
            "https://YOUR_INSTANCE.salesforce.com/services/data/v52.0/sobjects/Lead/{}",
            x["patient_id"]
        )
    );
}

#[test]
fn use_case_07_google_analytics_keeps_its_query_and_the_number() {
    let body = r#"{
"client_id": "{{patient_id}}",
"events": [{
"name": "appointment_booked",
"params": {
"doctor": "{{doctor_name}}",
"clinic": "{{clinic_name}}",
"appointment_date": "{{appointment_date}}",
"value": 1
}
}]
}"#;
    let (v, x) = render_json(&["kc_appointment_book"], body);
    assert_eq!(
        v,
        json!({
            "client_id": x["patient_id"],
            "events": [{"name": "appointment_booked", "params": {
                "doctor": x["doctor_name"], "clinic": x["clinic_name"],
                "appointment_date": x["appointment_date"], "value": 1
            }}]
        })
    );
    let url = "https://www.google-analytics.com/mp/collect?measurement_id=YOUR_MEASUREMENT_ID&api_secret=YOUR_API_SECRET";
    assert_eq!(render_url(&["kc_appointment_book"], url), url);
}

#[test]
fn use_case_08_mixpanel_journey() {
    let body = r#"{
"event": "Appointment Booked",
"properties": {
"distinct_id": "{{patient_id}}",
"token": "YOUR_MIXPANEL_TOKEN",
"appointment_id": "{{appointment_id}}",
"doctor_id": "{{doctor_id}}",
"clinic_id": "{{clinic_id}}",
"appointment_date": "{{appointment_date}}",
"time": "{{current_date_time}}",
"$insert_id": "{{appointment_id}}"
}
}"#;
    let (v, x) = render_json(&["kc_appointment_book"], body);
    assert_eq!(
        v,
        json!({"event": "Appointment Booked", "properties": {
            "distinct_id": x["patient_id"], "token": "YOUR_MIXPANEL_TOKEN",
            "appointment_id": x["appointment_id"], "doctor_id": x["doctor_id"],
            "clinic_id": x["clinic_id"], "appointment_date": x["appointment_date"],
            "time": x["current_date_time"], "$insert_id": x["appointment_id"]
        }})
    );
}

#[test]
fn use_case_09_zapier_any_event_warns_about_partial_variables() {
    let body = r#"{
"event_type": "appointment_booked",
"patient": {
"id": "{{patient_id}}",
"name": "{{patient_name}}",
"email": "{{patient_email}}",
"phone": "{{patient_contact_number}}"
},
"appointment": {
"id": "{{appointment_id}}",
"date": "{{appointment_date}}",
"time": "{{appointment_start_time}}",
"doctor": "{{doctor_name}}"
},
"clinic": {
"name": "{{clinic_name}}",
"email": "{{clinic_email}}"
}
}"#;
    let scope = Scope::all();
    let compiled = compile(body, Context::JsonBody, "body", &scope).unwrap();
    // Only some events carry patient and appointment variables: warnings, not errors.
    assert!(
        compiled
            .warnings
            .iter()
            .any(|w| w.variable == "appointment_id")
    );
    assert!(
        !compiled
            .warnings
            .iter()
            .any(|w| w.variable == "clinic_name")
    );
    let x = lookup("kc_appointment_book").unwrap().example_vars();
    let v: Value = serde_json::from_str(&compiled.template.render(&x).unwrap()).unwrap();
    assert_eq!(v["patient"]["name"], x["patient_name"].as_str());
    assert_eq!(
        v["appointment"]["time"],
        x["appointment_start_time"].as_str()
    );
    assert_eq!(v["clinic"]["email"], x["clinic_email"].as_str());
    // For an event without appointment data, those fields are empty strings, and the JSON is still valid.
    let clinic_only = lookup("kc_clinic_add").unwrap().example_vars();
    let v: Value = serde_json::from_str(&compiled.template.render(&clinic_only).unwrap()).unwrap();
    assert_eq!(v["appointment"]["id"], "");
    assert_eq!(v["clinic"]["name"], clinic_only["clinic_name"].as_str());
}

#[test]
fn use_case_10_make_payment_received() {
    let body = r#"{
"event": "payment_received",
"payment": {
"id": "{{payment_id}}",
"amount": "{{payment_amount}}",
"method": "{{payment_method}}",
"date": "{{payment_date}}"
},
"patient": {
"name": "{{patient_name}}",
"email": "{{patient_email}}"
},
"bill": {
"id": "{{bill_id}}",
"number": "{{bill_number}}"
}
}"#;
    let (v, x) = render_json(&["kc_payment_add"], body);
    assert_eq!(
        v,
        json!({"event": "payment_received",
            "payment": {"id": x["payment_id"], "amount": x["payment_amount"], "method": x["payment_method"], "date": x["payment_date"]},
            "patient": {"name": x["patient_name"], "email": x["patient_email"]},
            "bill": {"id": x["bill_id"], "number": x["bill_number"]}})
    );
}

#[test]
fn use_case_11_google_sheets_row() {
    let body = r#"{
"patient_name": "{{patient_name}}",
"patient_email": "{{patient_email}}",
"patient_phone": "{{patient_contact_number}}",
"doctor_name": "{{doctor_name}}",
"appointment_date": "{{appointment_date}}",
"appointment_time": "{{appointment_start_time}}",
"clinic_name": "{{clinic_name}}",
"status": "{{appointment_status}}",
"created_at": "{{current_date_time}}"
}"#;
    let (v, x) = render_json(&["kc_appointment_book"], body);
    assert_eq!(
        v,
        json!({"patient_name": x["patient_name"], "patient_email": x["patient_email"],
            "patient_phone": x["patient_contact_number"], "doctor_name": x["doctor_name"],
            "appointment_date": x["appointment_date"], "appointment_time": x["appointment_start_time"],
            "clinic_name": x["clinic_name"], "status": x["appointment_status"], "created_at": x["current_date_time"]})
    );
}

#[test]
fn use_case_12_quickbooks_payment_sync() {
    let body = r#"{
"TotalAmt": "{{payment_amount}}",
"CustomerRef": {
"value": "{{patient_id}}"
},
"PaymentMethodRef": {
"value": "{{payment_method}}"
},
"TxnDate": "{{payment_date}}",
"PrivateNote": "Payment for Bill #{{bill_number}}"
}"#;
    let (v, x) = render_json(&["kc_payment_add"], body);
    assert_eq!(
        v,
        json!({"TotalAmt": x["payment_amount"], "CustomerRef": {"value": x["patient_id"]},
            "PaymentMethodRef": {"value": x["payment_method"]}, "TxnDate": x["payment_date"],
            "PrivateNote": format!("Payment for Bill #{}", x["bill_number"])})
    );
    let url = render_url(
        &["kc_payment_add"],
        "https://api.quickbooks.com/v3/company/YOUR_COMPANY_ID/payment",
    );
    assert_eq!(
        url,
        "https://api.quickbooks.com/v3/company/YOUR_COMPANY_ID/payment"
    );
}

#[test]
fn use_case_13_patient_portal_medical_record() {
    let body = r#"{
"patient_id": "{{patient_id}}",
"record_type": "medical_record",
"encounter_id": "{{encounter_id}}",
"doctor": "{{doctor_name}}",
"date": "{{encounter_date}}",
"notify_patient": true
}"#;
    let (v, x) = render_json(&["kc_medical_record_add"], body);
    assert_eq!(
        v,
        json!({"patient_id": x["patient_id"], "record_type": "medical_record", "encounter_id": x["encounter_id"],
            "doctor": x["doctor_name"], "date": x["encounter_date"], "notify_patient": true})
    );
}

#[test]
fn use_case_14_pharmacy_prescription() {
    let body = r#"{
"prescription_id": "{{prescription_id}}",
"patient": {
"name": "{{patient_name}}",
"dob": "{{patient_dob}}",
"contact": "{{patient_contact_number}}"
},
"prescriber": {
"name": "{{doctor_name}}",
"license": "{{doctor_license_number}}"
},
"medications": "{{prescription_details}}",
"date": "{{current_date}}"
}"#;
    let (v, x) = render_json(&["kc_prescription_add"], body);
    assert_eq!(
        v,
        json!({"prescription_id": x["prescription_id"],
            "patient": {"name": x["patient_name"], "dob": x["patient_dob"], "contact": x["patient_contact_number"]},
            "prescriber": {"name": x["doctor_name"], "license": x["doctor_license_number"]},
            "medications": x["prescription_details"], "date": x["current_date"]})
    );
}

#[test]
fn use_case_15_discord_several_events() {
    let body = r#"{
"content": "New Patient Registered! 🎉",
"embeds": [{
"title": "Patient Details",
"color": 5814783,
"fields": [
{"name": "Name", "value": "{{patient_name}}", "inline": true},
{"name": "Email", "value": "{{patient_email}}", "inline": true},
{"name": "Phone", "value": "{{patient_contact_number}}", "inline": true},
{"name": "Clinic", "value": "{{clinic_name}}", "inline": true}
],
"timestamp": "{{current_date_time}}"
}]
}"#;
    let (v, x) = render_json(
        &["kc_patient_add", "kc_patient_update", "kc_appointment_book"],
        body,
    );
    assert_eq!(
        v,
        json!({"content": "New Patient Registered! 🎉", "embeds": [{
            "title": "Patient Details", "color": 5814783,
            "fields": [
                {"name": "Name", "value": x["patient_name"], "inline": true},
                {"name": "Email", "value": x["patient_email"], "inline": true},
                {"name": "Phone", "value": x["patient_contact_number"], "inline": true},
                {"name": "Clinic", "value": x["clinic_name"], "inline": true}
            ],
            "timestamp": x["current_date_time"]}]})
    );
}

#[test]
fn an_unknown_variable_in_a_guide_payload_is_refused_with_its_place() {
    let scope = Scope::new(&["kc_patient_add"]).unwrap();
    let e = compile(
        "{\n\"name\": \"{{patient_nmae}}\"\n}",
        Context::JsonBody,
        "body",
        &scope,
    )
    .unwrap_err();
    assert_eq!((e.position.line, e.position.column), (2, 10));
    assert_eq!(e.variable.as_deref(), Some("patient_nmae"));
    assert!(
        e.message.contains("did you mean \"patient_name\""),
        "{}",
        e.message
    );
    // A variable of another event is named as such.
    let e = compile("{{appointment_date}}", Context::Text, "body", &scope).unwrap_err();
    assert!(e.message.contains("other events"), "{}", e.message);
}
