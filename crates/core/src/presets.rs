//! Presets: the user guide's 15 integrations as data, so a clinic admin sets
//! one up by giving only what is theirs (a URL, a key, an account id).
//!
//! A preset is a webhook spec with marked gaps. A gap is a token such as
//! `YOUR_ACCOUNT_SID` in the URL or the body (the guide's own convention),
//! or the whole URL, or the auth secret. [`build`] fills the gaps with the
//! admin's values, escaping each for where it stands, and says which values
//! are still missing. Where the guide's example would not work against the
//! real service, the preset fixes it and its `notes` say what and why.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::{Value, json};

/// One value the admin gives.
#[derive(Debug, Clone, Serialize)]
pub struct PresetValue {
    /// The key in the request's `values` (`account_sid`), or `url`.
    pub key: &'static str,
    /// The token it replaces in the URL or the body (`YOUR_ACCOUNT_SID`);
    /// empty for `url`, which replaces the whole URL.
    pub token: &'static str,
    pub label: &'static str,
    /// Where to find it in that service.
    pub help: &'static str,
    pub example: &'static str,
}

/// What kind of auth a preset uses, and what the admin must give for it.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PresetAuth {
    None,
    /// `username` and `password`.
    Basic {
        username_label: &'static str,
        password_label: &'static str,
    },
    /// `token`.
    Bearer {
        token_label: &'static str,
    },
    /// `value` (and `name` when `name` is empty here).
    ApiKey {
        name: &'static str,
        location: &'static str,
        value_label: &'static str,
    },
    /// An OAuth 2.0 grant (`kind` is the auth type, `oauth2_client_credentials` or
    /// `oauth2_refresh_token`): the token URL (with the preset's value tokens) and how the
    /// client authenticates are the preset's; `client_id`, `client_secret` and (for the
    /// refresh token grant) `refresh_token` are the admin's, each with help on where it comes from.
    OAuth2 {
        kind: &'static str,
        token_url: &'static str,
        client_auth: &'static str,
        scope: &'static str,
        /// `(field under auth, label, where to find it)`.
        fields: &'static [(&'static str, &'static str, &'static str)],
        /// Setting it up in the provider, step by step.
        steps: &'static [&'static str],
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Preset {
    pub id: &'static str,
    pub name: &'static str,
    pub integration: &'static str,
    pub description: &'static str,
    /// What differs from the guide's example, and why; and what to know.
    pub notes: &'static [&'static str],
    pub events: &'static [&'static str],
    pub method: &'static str,
    pub content_type: &'static str,
    pub auth: PresetAuth,
    /// With tokens for the admin's parts; empty: the admin gives the URL.
    pub url: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: &'static str,
    /// `(variable, op, value)`.
    pub conditions: &'static [(&'static str, &'static str, &'static str)],
    pub values: &'static [PresetValue],
    /// 3xx answers count as success (Google Apps Script answers 302 after running).
    pub accept_redirects: bool,
    /// The patient data this preset sends, which the webhook it makes
    /// declares as its `data_policy` (a test holds every preset to it).
    pub data_policy: PresetPolicy,
    /// A reminder: `(at, offset)`, late ones skipped (see `crate::schedule`).
    pub schedule: Option<(&'static str, &'static str)>,
}

/// What a preset's destination receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresetPolicy {
    pub identifying: bool,
    pub phi: bool,
}

const SENDS_NO_PATIENT_DATA: PresetPolicy = PresetPolicy {
    identifying: false,
    phi: false,
};
const SENDS_IDENTIFYING: PresetPolicy = PresetPolicy {
    identifying: true,
    phi: false,
};
const SENDS_IDENTIFYING_AND_PHI: PresetPolicy = PresetPolicy {
    identifying: true,
    phi: true,
};

impl PresetPolicy {
    /// The webhook's `data_policy`, its basis saying who declared it and
    /// what the admin should record there.
    pub fn declare(self, preset: &Preset) -> Value {
        let basis = match (self.identifying, self.phi) {
            (false, false) => format!(
                "Declared by the preset {}: {} receives no patient data.",
                preset.id, preset.integration
            ),
            (identifying, phi) => format!(
                "Declared by the preset {}: {} receives {}. Record here your agreement with {} that covers it (e.g. \"BAA signed 2026-03\").",
                preset.id,
                preset.integration,
                match (identifying, phi) {
                    (true, true) => "identifying data and health information (phi)",
                    (false, true) => "health information (phi)",
                    _ => "identifying data",
                },
                preset.integration
            ),
        };
        json!({"identifying": self.identifying, "phi": self.phi, "basis": basis})
    }
}

const fn url_value(label: &'static str, help: &'static str, example: &'static str) -> PresetValue {
    PresetValue {
        key: "url",
        token: "",
        label,
        help,
        example,
    }
}

pub static PRESETS: &[Preset] = &[
    Preset {
        id: "slack_new_appointment",
        name: "Slack: new appointment",
        integration: "Slack",
        description: "Posts each new booking to a Slack channel, with a button to the appointment.",
        notes: &["The button opens your site's page for the appointment: {site}/appointments/{id}."],
        events: &["kc_appointment_book"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
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
}"#,
        conditions: &[],
        values: &[
            url_value(
                "Slack incoming webhook URL",
                "Slack → your app → Incoming Webhooks → Add New Webhook to Workspace; it starts with https://hooks.slack.com/services/",
                "https://hooks.slack.com/services/T000/B000/XXXX",
            ),
            PresetValue {
                key: "site_url",
                token: "https://yoursite.com",
                label: "Your clinic site's address",
                help: "where staff open appointments, without a trailing slash; the message's button links to it followed by /appointments/ID",
                example: "https://clinic.example.com",
            },
        ],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "twilio_sms_confirmation",
        name: "Twilio: SMS appointment confirmation",
        integration: "Twilio SMS",
        description: "Texts the patient a confirmation as soon as an appointment is booked.",
        notes: &[
            "Twilio needs the patient's number in E.164 form (+447700900123); store numbers that way.",
            "The basic auth username is your Account SID, the password your Auth Token.",
        ],
        events: &["kc_appointment_book"],
        method: "POST",
        content_type: "form",
        auth: PresetAuth::Basic { username_label: "Account SID", password_label: "Auth Token" },
        url: "https://api.twilio.com/2010-04-01/Accounts/YOUR_ACCOUNT_SID/Messages.json",
        headers: &[],
        body: "To={{patient_contact_number}}
From=YOUR_TWILIO_PHONE_NUMBER
Body=Hi {{patient_name}}, your appointment with Dr. {{doctor_name}} is confirmed for {{appointment_date}} at {{appointment_start_time}}. See you at {{clinic_name}}!",
        conditions: &[],
        values: &[
            PresetValue {
                key: "account_sid",
                token: "YOUR_ACCOUNT_SID",
                label: "Account SID",
                help: "Twilio Console → Account Info (starts with AC); defaults to the auth username",
                example: "AC0123456789abcdef0123456789abcdef",
            },
            PresetValue {
                key: "from_number",
                token: "YOUR_TWILIO_PHONE_NUMBER",
                label: "Your Twilio phone number",
                help: "Twilio Console → Phone Numbers → Active numbers, in E.164 form",
                example: "+15017122661",
            },
        ],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "sendgrid_email_confirmation",
        name: "SendGrid: e-mail appointment confirmation",
        integration: "SendGrid e-mail",
        description: "E-mails the patient an HTML confirmation of a new appointment.",
        notes: &["The clinic's e-mail address must be a verified sender in SendGrid."],
        events: &["kc_appointment_book"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::Bearer { token_label: "SendGrid API key" },
        url: "https://api.sendgrid.com/v3/mail/send",
        headers: &[],
        body: r#"{
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
}"#,
        conditions: &[],
        values: &[],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "twilio_sms_reminder_24h",
        name: "Twilio: SMS reminder 24 h before",
        integration: "Twilio SMS",
        description: "Texts the patient a reminder 24 hours before the appointment; a cancellation withdraws it and a move re-times it.",
        notes: &[
            "A scheduled webhook: each booking's text waits in the log as pending until 24 h before appointment_start (the appointment's date and start time in the clinic's time zone).",
            "Cancelling or deleting the appointment withdraws the reminder (logged as superseded, never sent); an update that moves it schedules the reminder for the new time, with the new details.",
            "An appointment booked less than 24 h ahead gets no reminder (the time has passed: skipped, logged as superseded); set schedule.if_past to send to text it at once instead.",
            "Twilio needs the patient's number in E.164 form (+447700900123). The basic auth username is your Account SID, the password your Auth Token.",
        ],
        events: &["kc_appointment_book", "kc_appointment_update"],
        method: "POST",
        content_type: "form",
        auth: PresetAuth::Basic { username_label: "Account SID", password_label: "Auth Token" },
        url: "https://api.twilio.com/2010-04-01/Accounts/YOUR_ACCOUNT_SID/Messages.json",
        headers: &[],
        body: "To={{patient_contact_number}}
From=YOUR_TWILIO_PHONE_NUMBER
Body=Reminder: Hi {{patient_name}}, your appointment with Dr. {{doctor_name}} at {{clinic_name}} is on {{appointment_date}} at {{appointment_start_time}}. To reschedule, call {{clinic_contact_number}}.",
        conditions: &[("appointment_status", "ne", "cancelled")],
        values: &[
            PresetValue {
                key: "account_sid",
                token: "YOUR_ACCOUNT_SID",
                label: "Account SID",
                help: "Twilio Console → Account Info (starts with AC); defaults to the auth username",
                example: "AC0123456789abcdef0123456789abcdef",
            },
            PresetValue {
                key: "from_number",
                token: "YOUR_TWILIO_PHONE_NUMBER",
                label: "Your Twilio phone number",
                help: "Twilio Console → Phone Numbers → Active numbers, in E.164 form",
                example: "+15017122661",
            },
        ],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: Some(("appointment_start", "-24h")),
    },
    Preset {
        id: "sendgrid_email_reminder_24h",
        name: "SendGrid: e-mail reminder 24 h before",
        integration: "SendGrid e-mail",
        description: "E-mails the patient a reminder 24 hours before the appointment; a cancellation withdraws it and a move re-times it.",
        notes: &[
            "A scheduled webhook: each booking's e-mail waits in the log as pending until 24 h before appointment_start (the appointment's date and start time in the clinic's time zone).",
            "Cancelling or deleting the appointment withdraws the reminder (logged as superseded, never sent); an update that moves it schedules the reminder for the new time, with the new details.",
            "An appointment booked less than 24 h ahead gets no reminder (the time has passed: skipped, logged as superseded); set schedule.if_past to send to e-mail it at once instead.",
            "The clinic's e-mail address must be a verified sender in SendGrid.",
        ],
        events: &["kc_appointment_book", "kc_appointment_update"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::Bearer { token_label: "SendGrid API key" },
        url: "https://api.sendgrid.com/v3/mail/send",
        headers: &[],
        body: r#"{
"personalizations": [{
"to": [{"email": "{{patient_email}}", "name": "{{patient_name}}"}],
"subject": "Reminder: your appointment on {{appointment_date}} - {{clinic_name}}"
}],
"from": {
"email": "{{clinic_email}}",
"name": "{{clinic_name}}"
},
"content": [{
"type": "text/html",
"value": "<h2>Appointment Reminder</h2><p>Dear {{patient_name}},</p><p>This is a reminder of your appointment with Dr. {{doctor_name}} on {{appointment_date}} at {{appointment_start_time}}.</p><p>Location: {{clinic_address}}</p><p>If you need to reschedule, please contact us at {{clinic_contact_number}}.</p><p>Best regards,<br>{{clinic_name}}</p>"
}]
}"#,
        conditions: &[("appointment_status", "ne", "cancelled")],
        values: &[],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: Some(("appointment_start", "-24h")),
    },
    Preset {
        id: "teams_cancellation_alert",
        name: "Microsoft Teams: cancellation alert",
        integration: "Microsoft Teams",
        description: "Alerts a Teams channel when an appointment is cancelled (other status changes send nothing).",
        notes: &[],
        events: &["kc_appointment_status_change"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
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
}"#,
        conditions: &[("appointment_status", "eq", "cancelled")],
        values: &[url_value(
            "Teams incoming webhook URL",
            "Teams → the channel → ⋯ → Workflows (or Connectors) → Incoming Webhook → copy the URL",
            "https://example.webhook.office.com/webhookb2/abc",
        )],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "hubspot_patient_contact",
        name: "HubSpot: contact for a new patient",
        integration: "HubSpot",
        description: "Creates a HubSpot contact when a patient registers.",
        notes: &[
            "The API key travels in the hapikey query parameter, stored sealed and masked in the log.",
            "HubSpot now prefers private-app tokens: choose bearer auth with the token to use one.",
        ],
        events: &["kc_patient_add"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::ApiKey { name: "hapikey", location: "query", value_label: "HubSpot API key" },
        url: "https://api.hubapi.com/contacts/v1/contact",
        headers: &[],
        body: r#"{
"properties": [
{"property": "email", "value": "{{patient_email}}"},
{"property": "firstname", "value": "{{patient_name}}"},
{"property": "phone", "value": "{{patient_contact_number}}"},
{"property": "clinic_id", "value": "{{clinic_id}}"},
{"property": "lifecyclestage", "value": "patient"},
{"property": "registration_date", "value": "{{current_date}}"}
]
}"#,
        conditions: &[],
        values: &[],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "salesforce_lead_update",
        name: "Salesforce: lead status on booking",
        integration: "Salesforce",
        description: "Marks the patient's lead as having an appointment scheduled.",
        notes: &[
            "Uses the OAuth 2.0 client credentials flow of a Salesforce connected app: carehook asks your My Domain for an access token and asks again before it expires (see docs/integrations.md).",
            "The lead id in the URL is the patient's id in carehook: keep them in step, or map ids in your org.",
        ],
        events: &["kc_appointment_book"],
        method: "PATCH",
        content_type: "json",
        auth: PresetAuth::OAuth2 {
            kind: "oauth2_client_credentials",
            token_url: "https://YOUR_INSTANCE.salesforce.com/services/oauth2/token",
            client_auth: "body",
            scope: "",
            fields: &[
                ("client_id", "Consumer Key", "Setup → App Manager → your connected app → View → Manage Consumer Details"),
                ("client_secret", "Consumer Secret", "shown beside the Consumer Key; enable \"Client Credentials Flow\" and pick a Run As user in the app's policies"),
            ],
            steps: &[
                "In Salesforce Setup → App Manager, choose New Connected App (or New External Client App): name it \"carehook\", enable OAuth settings, give it the scope \"Manage user data via APIs (api)\", and tick \"Enable Client Credentials Flow\". Any callback URL will do (https://localhost/); carehook never uses it.",
                "Save, then Manage → Edit Policies: under Client Credentials Flow choose the Run As user whose access carehook gets (an integration user allowed to edit leads).",
                "Back in App Manager → View → Manage Consumer Details: copy the Consumer Key (`auth.client_id`) and the Consumer Secret (`auth.client_secret`).",
                "Your My Domain is the first part of your Salesforce URL (mycompany.my for https://mycompany.my.salesforce.com): give it as `values.instance`. carehook asks https://mycompany.my.salesforce.com/services/oauth2/token for tokens.",
                "Create the webhook: `carehook webhooks create --from-preset salesforce_lead_update --value instance=mycompany.my --auth-username CONSUMER_KEY --auth-secret CONSUMER_SECRET`, or the form in the web UI.",
                "Send a test (`carehook webhooks test ID`): the first one asks for a token; `carehook webhooks get ID` then shows the token's state and expiry. Salesforce gives no expiry with these tokens: carehook keeps one an hour, and asks for a new one at once when Salesforce answers 401 (the session timed out).",
            ],
        },
        url: "https://YOUR_INSTANCE.salesforce.com/services/data/v52.0/sobjects/Lead/{{patient_id}}",
        headers: &[],
        body: r#"{
"Status": "Appointment Scheduled",
"LastActivityDate": "{{current_date}}",
"Description": "Appointment with {{doctor_name}} on {{appointment_date}}"
}"#,
        conditions: &[],
        values: &[PresetValue {
            key: "instance",
            token: "YOUR_INSTANCE",
            label: "Salesforce instance",
            help: "the first part of your Salesforce URL, e.g. mycompany.my for https://mycompany.my.salesforce.com",
            example: "mycompany.my",
        }],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "google_analytics_booking",
        name: "Google Analytics: booking event",
        integration: "Google Analytics",
        description: "Records each booking as an appointment_booked event (Measurement Protocol).",
        notes: &[
            "The measurement id stays in the URL; the API secret is stored as a sealed api_secret query key, masked in the log.",
            "Changed from the guide: client_id is {{ patient_id | pseudonym }}, a keyed hash, so Google counts returning patients without receiving a patient id (no BAA with Google is needed for it).",
        ],
        events: &["kc_appointment_book"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::ApiKey { name: "api_secret", location: "query", value_label: "Measurement Protocol API secret" },
        url: "https://www.google-analytics.com/mp/collect?measurement_id=YOUR_MEASUREMENT_ID",
        headers: &[],
        body: r#"{
"client_id": "{{ patient_id | pseudonym }}",
"events": [{
"name": "appointment_booked",
"params": {
"doctor": "{{doctor_name}}",
"clinic": "{{clinic_name}}",
"appointment_date": "{{appointment_date}}",
"value": 1
}
}]
}"#,
        conditions: &[],
        values: &[PresetValue {
            key: "measurement_id",
            token: "YOUR_MEASUREMENT_ID",
            label: "Measurement ID",
            help: "Google Analytics → Admin → Data streams → your stream (starts with G-)",
            example: "G-ABC123XYZ",
        }],
        accept_redirects: false,
        data_policy: SENDS_NO_PATIENT_DATA,
        schedule: None,
    },
    Preset {
        id: "mixpanel_patient_journey",
        name: "Mixpanel: patient journey",
        integration: "Mixpanel",
        description: "Tracks each booking as an Appointment Booked event for the patient.",
        notes: &[
            "Fixed from the guide: Mixpanel's time must be a unix timestamp, so time is {{current_date_time | unix}}, a number.",
            "Changed from the guide: distinct_id is {{ patient_id | pseudonym }}, a keyed hash, so Mixpanel follows one patient's journey without receiving a patient id.",
        ],
        events: &["kc_appointment_book"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "https://api.mixpanel.com/track",
        headers: &[],
        body: r#"{
"event": "Appointment Booked",
"properties": {
"distinct_id": "{{ patient_id | pseudonym }}",
"token": "YOUR_MIXPANEL_TOKEN",
"appointment_id": "{{appointment_id}}",
"doctor_id": "{{doctor_id}}",
"clinic_id": "{{clinic_id}}",
"appointment_date": "{{appointment_date}}",
"time": {{current_date_time | unix}},
"$insert_id": "{{appointment_id}}"
}
}"#,
        conditions: &[],
        values: &[PresetValue {
            key: "project_token",
            token: "YOUR_MIXPANEL_TOKEN",
            label: "Mixpanel project token",
            help: "Mixpanel → Project settings → Project token",
            example: "0123456789abcdef0123456789abcdef",
        }],
        accept_redirects: false,
        data_policy: SENDS_NO_PATIENT_DATA,
        schedule: None,
    },
    Preset {
        id: "zapier_any_event",
        name: "Zapier: any event",
        integration: "Zapier",
        description: "Sends every clinic event to a Zapier catch hook.",
        notes: &[
            "Fixed from the guide: event_type is {{event_name}}, the event that fired, not always appointment_booked.",
            "Events without a patient or an appointment send those fields empty.",
        ],
        events: &["*"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
"event_type": "{{event_name}}",
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
}"#,
        conditions: &[],
        values: &[url_value(
            "Zapier catch hook URL",
            "Zapier → Create Zap → Webhooks by Zapier → Catch Hook → copy the URL",
            "https://hooks.zapier.com/hooks/catch/123/abc/",
        )],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "make_payment_received",
        name: "Make: payment received",
        integration: "Make",
        description: "Starts a Make scenario whenever a payment is recorded.",
        notes: &["amount arrives as an exact decimal string (1234.50), never rounded."],
        events: &["kc_payment_add"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
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
}"#,
        conditions: &[],
        values: &[url_value(
            "Make webhook URL",
            "Make → your scenario → Webhooks → Custom webhook → copy the address",
            "https://hook.eu1.make.com/abc123",
        )],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "google_sheets_appointments",
        name: "Google Sheets: appointment log",
        integration: "Google Sheets",
        description: "Adds a row to a sheet for every booking, through an Apps Script web app.",
        notes: &[
            "An Apps Script web app runs your doPost, then answers 302; this preset counts a redirect as success so rows are not added twice.",
        ],
        events: &["kc_appointment_book"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
"patient_name": "{{patient_name}}",
"patient_email": "{{patient_email}}",
"patient_phone": "{{patient_contact_number}}",
"doctor_name": "{{doctor_name}}",
"appointment_date": "{{appointment_date}}",
"appointment_time": "{{appointment_start_time}}",
"clinic_name": "{{clinic_name}}",
"status": "{{appointment_status}}",
"created_at": "{{current_date_time}}"
}"#,
        conditions: &[],
        values: &[url_value(
            "Apps Script web app URL",
            "Sheets → Extensions → Apps Script → Deploy → New deployment → Web app → copy the URL",
            "https://script.google.com/macros/s/abc/exec",
        )],
        accept_redirects: true,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "quickbooks_payment_sync",
        name: "QuickBooks: payment sync",
        integration: "QuickBooks/Xero",
        description: "Records each payment in QuickBooks Online.",
        notes: &[
            "Fixed from the guide: QuickBooks Online's API host is quickbooks.api.intuit.com.",
            "Uses OAuth 2.0 refresh tokens: carehook trades the refresh token for hour-long access tokens and keeps the new refresh token QuickBooks answers each time (see docs/integrations.md).",
            "CustomerRef must be a QuickBooks customer id: keep patient ids and customer ids in step.",
        ],
        events: &["kc_payment_add"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::OAuth2 {
            kind: "oauth2_refresh_token",
            token_url: "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
            client_auth: "basic",
            scope: "",
            fields: &[
                ("client_id", "Client ID", "developer.intuit.com → your app → Keys & credentials (Production)"),
                ("client_secret", "Client Secret", "shown beside the Client ID"),
                ("refresh_token", "Refresh token", "from the app's consent step, or the OAuth 2.0 Playground (scope com.intuit.quickbooks.accounting)"),
            ],
            steps: &[
                "At developer.intuit.com create an app with the QuickBooks Online Accounting scope; under Keys & credentials (Production) copy the Client ID (`auth.client_id`) and Client Secret (`auth.client_secret`).",
                "Connect the clinic's company once: in Intuit's OAuth 2.0 Playground (or your own consent page) choose the app, the scope com.intuit.quickbooks.accounting and the company, and authorize. Copy the refresh token (`auth.refresh_token`) and the realm id (the Company ID, `values.company_id`).",
                "Create the webhook: `carehook webhooks create --from-preset quickbooks_payment_sync --value company_id=REALM_ID --auth-username CLIENT_ID --auth-secret CLIENT_SECRET --refresh-token REFRESH_TOKEN`, or the form in the web UI.",
                "carehook trades the refresh token for an access token (an hour long) and asks again a minute before it expires. QuickBooks answers a new refresh token now and then: carehook seals and saves it before using the access token, so do not reuse the one you pasted anywhere else.",
                "If the connection is revoked (the company disconnected the app, or 100 days without use), deliveries fail with \"token request failed: … invalid_grant\" and the webhook shows it; carehook stops asking for 15 minutes. Authorize again and paste the new refresh token: the webhook works at once.",
            ],
        },
        url: "https://quickbooks.api.intuit.com/v3/company/YOUR_COMPANY_ID/payment",
        headers: &[],
        body: r#"{
"TotalAmt": "{{payment_amount}}",
"CustomerRef": {
"value": "{{patient_id}}"
},
"PaymentMethodRef": {
"value": "{{payment_method}}"
},
"TxnDate": "{{payment_date}}",
"PrivateNote": "Payment for Bill #{{bill_number}}"
}"#,
        conditions: &[],
        values: &[PresetValue {
            key: "company_id",
            token: "YOUR_COMPANY_ID",
            label: "Company ID (realm id)",
            help: "QuickBooks → Settings → Account and settings → Billing & subscription → Company ID",
            example: "4620816365178145710",
        }],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "patient_portal_record",
        name: "Patient portal: new medical record",
        integration: "Patient portal",
        description: "Tells the patient portal a new medical record is available.",
        notes: &["The API key is sent in a header (X-API-Key by default; change auth.name to your portal's)."],
        events: &["kc_medical_record_add"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::ApiKey { name: "X-API-Key", location: "header", value_label: "Portal API key" },
        url: "",
        headers: &[],
        body: r#"{
"patient_id": "{{patient_id}}",
"record_type": "medical_record",
"encounter_id": "{{encounter_id}}",
"doctor": "{{doctor_name}}",
"date": "{{encounter_date}}",
"notify_patient": true
}"#,
        conditions: &[],
        values: &[url_value(
            "Portal records endpoint",
            "your portal's API documentation",
            "https://your-portal.example.com/api/records",
        )],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    Preset {
        id: "pharmacy_prescription",
        name: "Pharmacy: new prescription",
        integration: "Pharmacy system",
        description: "Sends each new prescription to the pharmacy for fulfilment.",
        notes: &["The API key is sent in a header (X-API-Key by default; change auth.name to your pharmacy's)."],
        events: &["kc_prescription_add"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::ApiKey { name: "X-API-Key", location: "header", value_label: "Pharmacy API key" },
        url: "",
        headers: &[],
        body: r#"{
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
}"#,
        conditions: &[],
        values: &[url_value(
            "Pharmacy prescriptions endpoint",
            "your pharmacy system's API documentation",
            "https://pharmacy-api.example.com/prescriptions",
        )],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING_AND_PHI,
        schedule: None,
    },
    Preset {
        id: "discord_patient_updates",
        name: "Discord: patient registrations and updates",
        integration: "Discord",
        description: "Posts new and updated patients to a Discord channel.",
        notes: &[
            "Discord needs timestamp in ISO 8601: current_date_time is RFC 3339, which is.",
            "Fixed from the guide: the headline names the event, since the webhook fires for updates too.",
        ],
        events: &["kc_patient_add", "kc_patient_update"],
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
"content": "New Patient Registered! 🎉 ({{event_name}})",
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
}"#,
        conditions: &[],
        values: &[url_value(
            "Discord webhook URL",
            "Discord → Server settings → Integrations → Webhooks → New webhook → Copy webhook URL",
            "https://discord.com/api/webhooks/123/abc",
        )],
        accept_redirects: false,
        data_policy: SENDS_IDENTIFYING,
        schedule: None,
    },
    // --- Alerts: carehook's operational events to a person (docs/alerts.md) ---------------
    Preset {
        id: "slack_carehook_alerts",
        name: "Slack: carehook alerts",
        integration: "Slack",
        description: "Tells a Slack channel when carehook disables a webhook, a delivery gives up, a webhook starts failing or a signing secret is rotated.",
        notes: &[
            "Alerts carry no patient data: the webhook, the event's name, an HTTP status and carehook's reason.",
            "An alert is never about the webhook that carries it, and an alert that fails raises no further alert.",
        ],
        events: OPERATIONAL_EVENTS,
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
"text": "⚠️ carehook: {{event_name}} for {{webhook_name}}",
"blocks": [
{
"type": "section",
"text": {
"type": "mrkdwn",
"text": "*{{event_name}}*\n*Webhook:* {{webhook_name}} ({{webhook_id}})\n*Why:* {{reason}}\n*At:* {{at}}"
}
}
]
}"#,
        conditions: &[],
        values: &[url_value(
            "Slack incoming webhook URL",
            "Slack → your app → Incoming Webhooks → Add New Webhook to Workspace; pick the channel that should hear about problems",
            "https://hooks.slack.com/services/T000/B000/XXXX",
        )],
        accept_redirects: false,
        data_policy: SENDS_NO_PATIENT_DATA,
        schedule: None,
    },
    Preset {
        id: "teams_carehook_alerts",
        name: "Microsoft Teams: carehook alerts",
        integration: "Microsoft Teams",
        description: "Tells a Teams channel when carehook disables a webhook, a delivery gives up, a webhook starts failing or a signing secret is rotated.",
        notes: &[
            "Alerts carry no patient data: the webhook, the event's name, an HTTP status and carehook's reason.",
        ],
        events: OPERATIONAL_EVENTS,
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
"@type": "MessageCard",
"@context": "https://schema.org/extensions",
"summary": "carehook: {{event_name}}",
"themeColor": "FFA500",
"title": "⚠️ carehook: {{event_name}}",
"sections": [{
"facts": [
{"name": "Webhook:", "value": "{{webhook_name}}"},
{"name": "Why:", "value": "{{reason}}"},
{"name": "At:", "value": "{{at}}"}
]
}]
}"#,
        conditions: &[],
        values: &[url_value(
            "Teams incoming webhook URL",
            "Teams → the channel → ⋯ → Workflows (or Connectors) → Incoming Webhook → copy the URL",
            "https://example.webhook.office.com/webhookb2/abc",
        )],
        accept_redirects: false,
        data_policy: SENDS_NO_PATIENT_DATA,
        schedule: None,
    },
    Preset {
        id: "discord_carehook_alerts",
        name: "Discord: carehook alerts",
        integration: "Discord",
        description: "Tells a Discord channel when carehook disables a webhook, a delivery gives up, a webhook starts failing or a signing secret is rotated.",
        notes: &[
            "Alerts carry no patient data: the webhook, the event's name, an HTTP status and carehook's reason.",
        ],
        events: OPERATIONAL_EVENTS,
        method: "POST",
        content_type: "json",
        auth: PresetAuth::None,
        url: "",
        headers: &[],
        body: r#"{
"content": "⚠️ carehook: {{event_name}} for {{webhook_name}}",
"embeds": [{
"title": "{{webhook_name}}",
"description": "{{reason}}",
"color": 16753920,
"timestamp": "{{at}}"
}]
}"#,
        conditions: &[],
        values: &[url_value(
            "Discord webhook URL",
            "Discord → Server settings → Integrations → Webhooks → New webhook → Copy webhook URL",
            "https://discord.com/api/webhooks/123/abc",
        )],
        accept_redirects: false,
        data_policy: SENDS_NO_PATIENT_DATA,
        schedule: None,
    },
    Preset {
        id: "sendgrid_carehook_alerts",
        name: "SendGrid: e-mail carehook alerts",
        integration: "SendGrid e-mail",
        description: "E-mails a person when carehook disables a webhook, a delivery gives up, a webhook starts failing or a signing secret is rotated.",
        notes: &[
            "The sender address must be a verified sender in SendGrid.",
            "Alerts carry no patient data: the webhook, the event's name, an HTTP status and carehook's reason.",
        ],
        events: OPERATIONAL_EVENTS,
        method: "POST",
        content_type: "json",
        auth: PresetAuth::Bearer { token_label: "SendGrid API key" },
        url: "https://api.sendgrid.com/v3/mail/send",
        headers: &[],
        body: r#"{
"personalizations": [{
"to": [{"email": "ALERT_TO_EMAIL"}],
"subject": "carehook: {{event_name}} for {{webhook_name}}"
}],
"from": {"email": "ALERT_FROM_EMAIL", "name": "carehook"},
"content": [{
"type": "text/plain",
"value": "{{event_name}}\n\nWebhook: {{webhook_name}} ({{webhook_id}})\nWhy: {{reason}}\nAt: {{at}}"
}]
}"#,
        conditions: &[],
        values: &[
            PresetValue {
                key: "to_email",
                token: "ALERT_TO_EMAIL",
                label: "Who gets the alerts",
                help: "the e-mail address of the person (or list) on call for carehook",
                example: "it@riversideclinic.example.com",
            },
            PresetValue {
                key: "from_email",
                token: "ALERT_FROM_EMAIL",
                label: "Sender address",
                help: "a verified sender in SendGrid (Settings → Sender Authentication)",
                example: "carehook@riversideclinic.example.com",
            },
        ],
        accept_redirects: false,
        data_policy: SENDS_NO_PATIENT_DATA,
        schedule: None,
    },
];

/// The events an alert preset subscribes to: every operational event.
const OPERATIONAL_EVENTS: &[&str] = &[
    "carehook_webhook_disabled",
    "carehook_delivery_failed",
    "carehook_webhook_failing",
    "carehook_secret_rotated",
];

/// Whether a preset carries carehook's operational events (an alert preset) rather than
/// the clinic's.
pub fn is_alert_preset(p: &Preset) -> bool {
    p.events.iter().all(|e| e.starts_with("carehook_"))
}

pub fn presets() -> &'static [Preset] {
    PRESETS
}

impl Preset {
    /// The `ordering_key` of the webhook this preset makes: for receivers that keep a record
    /// per patient and update it from each event (a CRM's contact or lead, a patient portal, a
    /// pharmacy system, a Zap that may do either), so a later event never overtakes an
    /// earlier one of the same patient (a cancellation its booking). Notifications (chat,
    /// SMS, e-mail) and analytics keep no such record: they stay unordered, and as fast.
    pub fn ordering_key(&self) -> Option<&'static str> {
        match self.id {
            "hubspot_patient_contact"
            | "salesforce_lead_update"
            | "zapier_any_event"
            | "patient_portal_record"
            | "pharmacy_prescription" => Some("{{patient_id}}"),
            _ => None,
        }
    }
}

/// `text` with each of the preset's value tokens replaced by the admin's
/// value, URL-encoded (a token the admin left out stays, and validation
/// names it).
fn fill_tokens(text: &str, preset: &Preset, req: &PresetRequest) -> String {
    let mut out = text.to_string();
    for v in preset.values {
        if let Some(value) = req.values.get(v.key).filter(|s| !s.trim().is_empty())
            && !v.token.is_empty()
        {
            out = out.replace(
                v.token,
                &utf8_percent_encode(value, URL_COMPONENT).to_string(),
            );
        }
    }
    out
}

pub fn lookup(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id == id)
}

/// What is still missing to make a webhook from a preset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Missing {
    /// `url`, `values.account_sid`, `auth.password`…
    pub field: String,
    pub message: String,
}

/// A value that cannot stand where its preset puts it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadValue {
    pub field: String,
    pub message: String,
}

/// Everything the admin gives with `{"preset": …}`.
#[derive(Debug, Clone, Default)]
pub struct PresetRequest {
    pub url: Option<String>,
    pub values: BTreeMap<String, String>,
    pub auth: Option<Value>,
}

/// Everything outside unreserved characters, for a value in a URL.
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds the webhook spec (as JSON, for the caller to merge overrides into
/// and validate) from a preset and the admin's values. Lists every missing
/// value at once, so the admin fixes them in one go.
pub fn build(
    preset: &Preset,
    req: &PresetRequest,
) -> Result<Value, Result<Vec<Missing>, BadValue>> {
    let mut missing = Vec::new();
    for (key, value) in &req.values {
        if !preset.values.iter().any(|v| v.key == key && v.key != "url") {
            let known: Vec<&str> = preset
                .values
                .iter()
                .filter(|v| v.key != "url")
                .map(|v| v.key)
                .collect();
            return Err(Err(BadValue {
                field: format!("values.{key}"),
                message: if known.is_empty() {
                    format!("preset {} takes no values", preset.id)
                } else {
                    format!(
                        "preset {} has no value \"{key}\"; it takes: {}",
                        preset.id,
                        known.join(", ")
                    )
                },
            }));
        }
        if value.contains("{{") || value.contains("}}") || value.chars().any(char::is_control) {
            return Err(Err(BadValue {
                field: format!("values.{key}"),
                message: "a value may not contain {{, }} or control characters".into(),
            }));
        }
    }
    // Twilio's account SID is also the basic auth username.
    let auth_username = req
        .auth
        .as_ref()
        .and_then(|a| a.get("username"))
        .and_then(Value::as_str)
        .map(str::to_string);

    let mut url = preset.url.to_string();
    let mut body = preset.body.to_string();
    for v in preset.values {
        if v.key == "url" {
            match req.url.as_deref().filter(|u| !u.trim().is_empty()) {
                Some(u) => url = u.trim().to_string(),
                None => missing.push(Missing {
                    field: "url".into(),
                    message: format!("{}: {} (e.g. {})", v.label, v.help, v.example),
                }),
            }
            continue;
        }
        let given = req.values.get(v.key).cloned().or_else(|| {
            (v.key == "account_sid" && preset.integration == "Twilio SMS")
                .then(|| auth_username.clone())
                .flatten()
        });
        // A URL given in full makes a value that only stands in the URL moot.
        let full_url = req.url.as_deref().is_some_and(|u| !u.trim().is_empty());
        let in_token_url = matches!(preset.auth, PresetAuth::OAuth2 { token_url, .. } if token_url.contains(v.token));
        if full_url && !body.contains(v.token) && !in_token_url {
            continue;
        }
        let Some(value) = given.filter(|s| !s.trim().is_empty()) else {
            missing.push(Missing {
                field: format!("values.{}", v.key),
                message: format!("{}: {} (e.g. {})", v.label, v.help, v.example),
            });
            continue;
        };
        if url.contains(v.token) {
            url = url.replace(
                v.token,
                &utf8_percent_encode(&value, URL_COMPONENT).to_string(),
            );
        }
        if body.contains(v.token) {
            let escaped = match preset.content_type {
                // Inside a JSON string: escape as JSON, without the quotes.
                "json" => {
                    let quoted = serde_json::to_string(&value).unwrap_or_default();
                    quoted[1..quoted.len() - 1].to_string()
                }
                // Form and text: the template encodes literals when it renders.
                _ => value.clone(),
            };
            body = body.replace(v.token, &escaped);
        }
    }
    // A URL given in full replaces the preset's, tokens and all.
    if let Some(u) = req.url.as_deref().filter(|u| !u.trim().is_empty()) {
        url = u.trim().to_string();
    }

    let auth = match preset.auth {
        PresetAuth::OAuth2 {
            kind,
            token_url,
            client_auth,
            scope,
            fields,
            ..
        } => {
            let get = |k: &str| {
                req.auth
                    .as_ref()
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let mut auth = json!({
                "type": kind,
                "token_url": get("token_url").unwrap_or_else(|| fill_tokens(token_url, preset, req)),
                "client_auth": get("client_auth").unwrap_or_else(|| client_auth.to_string()),
                "scope": get("scope").unwrap_or_else(|| scope.to_string()),
            });
            for (field, label, help) in fields {
                let value = get(field).unwrap_or_default();
                if value.is_empty() {
                    missing.push(Missing {
                        field: format!("auth.{field}"),
                        message: format!("{label}: {help}"),
                    });
                }
                auth[*field] = Value::String(value);
            }
            auth
        }
        PresetAuth::None => json!({"type": "none"}),
        PresetAuth::Basic {
            username_label,
            password_label,
        } => {
            let get = |k: &str| {
                req.auth
                    .as_ref()
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let (username, password) = (get("username"), get("password"));
            if username.is_empty() {
                missing.push(Missing {
                    field: "auth.username".into(),
                    message: format!("{username_label} (basic auth username)"),
                });
            }
            if password.is_empty() {
                missing.push(Missing {
                    field: "auth.password".into(),
                    message: format!("{password_label} (basic auth password)"),
                });
            }
            json!({"type": "basic", "username": username, "password": password})
        }
        PresetAuth::Bearer { token_label } => {
            let token = req
                .auth
                .as_ref()
                .and_then(|a| a.get("token"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if token.is_empty() {
                missing.push(Missing {
                    field: "auth.token".into(),
                    message: format!("{token_label} (bearer token)"),
                });
            }
            json!({"type": "bearer", "token": token})
        }
        PresetAuth::ApiKey {
            name,
            location,
            value_label,
        } => {
            let get = |k: &str| {
                req.auth
                    .as_ref()
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let value = get("value").unwrap_or_default();
            if value.is_empty() {
                missing.push(Missing {
                    field: "auth.value".into(),
                    message: format!("{value_label} (API key)"),
                });
            }
            json!({
                "type": "api_key",
                "name": get("name").unwrap_or_else(|| name.to_string()),
                "value": value,
                "location": get("location").unwrap_or_else(|| location.to_string()),
            })
        }
    };
    if !missing.is_empty() {
        return Err(Ok(missing));
    }
    let conditions: Vec<Value> = preset
        .conditions
        .iter()
        .map(|(variable, op, value)| json!({"variable": variable, "op": op, "value": value}))
        .collect();
    let headers: serde_json::Map<String, Value> = preset
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let mut spec = json!({
        "name": preset.name,
        "description": preset.description,
        "events": preset.events,
        "url": url,
        "method": preset.method,
        "content_type": preset.content_type,
        "auth": auth,
        "headers": headers,
        "body": body,
        "conditions": conditions,
        "data_policy": preset.data_policy.declare(preset),
    });
    if preset.accept_redirects {
        spec["accept_redirects"] = Value::Bool(true);
    }
    // A reminder is sent at its own time: it takes no ordering key (see `WebhookSpec::validate`).
    if let Some((at, offset)) = preset.schedule {
        spec["schedule"] = json!({"at": at, "offset": offset, "if_past": "skip"});
    } else if let Some(key) = preset.ordering_key() {
        spec["ordering_key"] = Value::from(key);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::WebhookSpec;

    fn example_request(p: &Preset) -> PresetRequest {
        let mut req = PresetRequest::default();
        for v in p.values {
            if v.key == "url" {
                req.url = Some(v.example.to_string());
            } else {
                req.values.insert(v.key.to_string(), v.example.to_string());
            }
        }
        req.auth = Some(json!({
            "username": "AC1", "password": "pw", "token": "tok", "value": "key",
            "client_id": "cid", "client_secret": "cs", "refresh_token": "rt",
        }));
        req
    }

    #[test]
    fn every_preset_declares_exactly_the_patient_data_it_sends() {
        for p in PRESETS {
            let spec = build(p, &example_request(p)).unwrap();
            let spec: WebhookSpec = serde_json::from_value(spec).unwrap();
            let declared = spec.data_policy.clone().unwrap();
            let (compiled, _) = spec.compile().unwrap_or_else(|e| panic!("{}: {e}", p.id));
            // Allowed: nothing it sends is beyond its policy.
            let refused = compiled.policy_violations();
            assert!(refused.is_empty(), "{}: {refused:?}", p.id);
            // Needed: it declares no more than it sends.
            let needed = crate::privacy::DataPolicy::needed(&compiled.data_uses());
            assert_eq!(
                (declared.identifying, declared.phi),
                (needed.identifying, needed.phi),
                "{}",
                p.id
            );
            assert!(declared.basis.contains(p.id), "{}", p.id);
        }
        // The analytics presets count patients by pseudonym only.
        for id in ["google_analytics_booking", "mixpanel_patient_journey"] {
            let p = lookup(id).unwrap();
            assert_eq!(p.data_policy, SENDS_NO_PATIENT_DATA, "{id}");
            assert!(p.body.contains("{{ patient_id | pseudonym }}"), "{id}");
        }
    }

    #[test]
    fn there_is_one_preset_per_guide_integration() {
        // The guide's 15, the two reminders (issue 16) and the alert presets, each once.
        let reminders: Vec<_> = PRESETS.iter().filter(|p| p.schedule.is_some()).collect();
        assert_eq!(reminders.len(), 2);
        let guide: Vec<_> = PRESETS
            .iter()
            .filter(|p| !is_alert_preset(p) && p.schedule.is_none())
            .collect();
        assert_eq!(guide.len(), 15);
        let mut ids: Vec<_> = PRESETS.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), PRESETS.len());
        let alerts: Vec<_> = PRESETS.iter().filter(|p| is_alert_preset(p)).collect();
        assert_eq!(alerts.len(), 4);
        for p in alerts {
            assert_eq!(p.data_policy, SENDS_NO_PATIENT_DATA, "{}", p.id);
            for e in crate::catalog::operational_events() {
                assert!(p.events.contains(&e.name), "{} lacks {}", p.id, e.name);
            }
        }
    }

    #[test]
    fn every_preset_builds_and_compiles_with_example_values() {
        for p in PRESETS {
            let spec = build(p, &example_request(p)).unwrap_or_else(|e| panic!("{}: {e:?}", p.id));
            let spec: WebhookSpec =
                serde_json::from_value(spec).unwrap_or_else(|e| panic!("{}: {e}", p.id));
            let (compiled, _) = spec.compile().unwrap_or_else(|e| panic!("{}: {e}", p.id));
            let event = if p.events[0] == "*" {
                "kc_appointment_book"
            } else {
                p.events[0]
            };
            let vars = crate::catalog::lookup(event).unwrap().example_vars();
            let (req, masked) = compiled.render(&vars).unwrap();
            assert!(!req.url.contains("YOUR_"), "{}: {}", p.id, req.url);
            assert!(!req.body.contains("YOUR_"), "{}: {}", p.id, req.body);
            assert!(!format!("{masked:?}").contains("\"pw\""), "{}", p.id);
            // An ordered preset puts each event of a patient under that patient's key.
            assert_eq!(
                compiled.ordering_key(&vars).is_some(),
                p.ordering_key().is_some(),
                "{}",
                p.id
            );
        }
    }

    #[test]
    fn missing_values_are_all_named() {
        let p = lookup("twilio_sms_confirmation").unwrap();
        let missing = build(p, &PresetRequest::default()).unwrap_err().unwrap();
        let fields: Vec<_> = missing.iter().map(|m| m.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "values.account_sid",
                "values.from_number",
                "auth.username",
                "auth.password"
            ]
        );
        assert!(missing[0].message.contains("Twilio Console"));
        let slack = lookup("slack_new_appointment").unwrap();
        let missing = build(slack, &PresetRequest::default())
            .unwrap_err()
            .unwrap();
        assert_eq!(missing[0].field, "url");
    }

    #[test]
    fn values_are_escaped_for_where_they_stand() {
        let p = lookup("mixpanel_patient_journey").unwrap();
        let mut req = PresetRequest::default();
        req.values.insert("project_token".into(), "a\"b\\c".into());
        let spec = build(p, &req).unwrap();
        let spec: WebhookSpec = serde_json::from_value(spec).unwrap();
        let (c, _) = spec.compile().unwrap();
        let vars = crate::catalog::lookup("kc_appointment_book")
            .unwrap()
            .example_vars();
        let body: Value = serde_json::from_str(&c.render(&vars).unwrap().0.body).unwrap();
        assert_eq!(body["properties"]["token"], "a\"b\\c");
        // Mixpanel's time is a unix number.
        assert!(body["properties"]["time"].is_i64(), "{body}");

        let q = lookup("quickbooks_payment_sync").unwrap();
        let mut req = example_request(q);
        req.values.insert("company_id".into(), "1/../2".into());
        let spec = build(q, &req).unwrap();
        assert_eq!(
            spec["url"],
            "https://quickbooks.api.intuit.com/v3/company/1%2F..%2F2/payment"
        );
        req.values
            .insert("company_id".into(), "{{patient_id}}".into());
        assert!(build(q, &req).unwrap_err().is_err());
        req.values.insert("company_id".into(), "42".into());
        req.values.insert("nope".into(), "x".into());
        assert_eq!(
            build(q, &req).unwrap_err().unwrap_err().field,
            "values.nope"
        );
    }

    #[test]
    fn a_full_url_needs_no_url_only_values() {
        // QuickBooks' company id only makes the URL.
        let p = lookup("quickbooks_payment_sync").unwrap();
        let req = PresetRequest {
            url: Some("https://quickbooks.api.intuit.com/v3/company/42/payment".into()),
            auth: Some(json!({"client_id": "cid", "client_secret": "cs", "refresh_token": "rt"})),
            ..PresetRequest::default()
        };
        let built = build(p, &req);
        assert!(built.is_ok(), "{built:?}");
        // A value the body needs is still needed.
        let m = lookup("mixpanel_patient_journey").unwrap();
        let req = PresetRequest {
            url: Some("https://api.mixpanel.com/track".into()),
            ..PresetRequest::default()
        };
        assert_eq!(
            build(m, &req).unwrap_err().unwrap()[0].field,
            "values.project_token"
        );
    }

    #[test]
    fn twilio_takes_the_account_sid_from_the_username() {
        let p = lookup("twilio_sms_confirmation").unwrap();
        let mut req = PresetRequest::default();
        req.values
            .insert("from_number".into(), "+15550001111".into());
        req.auth = Some(json!({"username": "AC42", "password": "pw"}));
        let spec = build(p, &req).unwrap();
        assert_eq!(
            spec["url"],
            "https://api.twilio.com/2010-04-01/Accounts/AC42/Messages.json"
        );
        assert!(spec["body"].as_str().unwrap().contains("From=+15550001111"));
    }
}
