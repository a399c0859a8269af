//! Webhook pages: the list, creating one (from a preset or blank), the
//! editor with its live preview and test send, and the small actions
//! (enable/disable, clone, delete, rotate the signing secret).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use carehook_core::catalog::{self, Presence, Scope, Sensitivity};
use carehook_core::conditions::Op;
use carehook_core::ids::WebhookId;
use carehook_core::presets::{self, Preset, PresetAuth};
use serde::Deserialize;
use serde_json::{Value, json};

use super::dashboard::{describe_last, last_delivery, status_class};
use super::form::{Editor, FieldError, FormData};
use super::session::{Admin, Posted};
use super::{Page, UiError, UiState, host_of, html, safe_next};
use crate::service::Error;
use crate::service::webhooks::{self, Draft, TryOut};

pub fn router() -> Router<UiState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/new", get(new_page))
        .route("/webhooks/preview", post(preview))
        .route("/webhooks/{id}", get(edit_page).post(save))
        .route("/webhooks/{id}/toggle", post(toggle))
        .route("/webhooks/{id}/clone", post(clone))
        .route("/webhooks/{id}/delete", post(delete))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/test", post(test_send))
        .route("/webhooks/{id}/partner-links", post(share))
        .route(
            "/webhooks/{id}/partner-links/{link}/revoke",
            post(revoke_share),
        )
}

/// A service error as an error beside a field.
fn field_error(e: Error) -> FieldError {
    FieldError::new(e.field().unwrap_or_default(), e.message())
}

/// Creates a webhook from the API's JSON (a spec, or `{"preset": …}`), as
/// `POST /api/v1/webhooks` does; answers the API's view, with the signing
/// secret (shown once).
async fn create_webhook(state: &UiState, admin: &Admin, body: Value) -> Result<Value, Error> {
    let spec = webhooks::spec_from_json(body)?;
    crate::service::access::check_spec_clinics(&admin.caller, &spec.clinics)?;
    webhooks::create(&state.app, &admin.actor(), spec).await
}

/// The request a draft would send for `event`, rendered from the catalog's
/// example values, as `POST /api/v1/webhooks/preview` answers it.
fn preview_json(
    spec: carehook_core::webhook::WebhookSpec,
    event: Option<&str>,
) -> Result<Value, Error> {
    let p = webhooks::preview_draft(Draft {
        webhook: spec,
        event: event.map(str::to_string),
        data: Default::default(),
    })?;
    serde_json::to_value(p).map_err(Error::internal)
}

// --- the list ------------------------------------------------------------------------------

struct Row {
    id: WebhookId,
    name: String,
    events: String,
    host: String,
    enabled: bool,
    disabled_reason: String,
    /// Why it cannot be sent (secrets this key cannot open); empty if it can.
    broken: String,
    last: String,
    last_class: &'static str,
}

#[derive(Template)]
#[template(path = "ui/webhooks.html")]
struct ListPage {
    page: Page,
    rows: Vec<Row>,
}

async fn list(State(state): State<UiState>, admin: Admin) -> Result<Response, UiError> {
    let mut rows = Vec::new();
    for w in webhooks::list(&state.app).await? {
        if !admin.caller.sees_webhook(&w) {
            continue;
        }
        let row = &w.row;
        let last = last_delivery(&state, row.id).await?;
        let spec = &w.compiled.spec;
        rows.push(Row {
            id: row.id,
            name: row.name.clone(),
            // In words, as the editor names them.
            events: if spec.events.iter().any(|e| e == "*") {
                "any event".into()
            } else {
                spec.events
                    .iter()
                    .map(|e| {
                        catalog::lookup(e)
                            .map_or(e.as_str(), |c| c.description.trim_end_matches('.'))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            host: host_of(&spec.url),
            enabled: row.enabled,
            disabled_reason: super::disabled_note(&w),
            broken: w.broken.clone().unwrap_or_default(),
            last_class: last.as_ref().map_or("", |d| status_class(d.status)),
            last: last
                .as_ref()
                .map_or("no deliveries yet".into(), describe_last),
        });
    }
    Ok(html(&ListPage {
        page: Page::new(&state, &admin, "Webhooks", "webhooks").await,
        rows,
    }))
}

// --- creating ------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct NewQuery {
    preset: Option<String>,
    blank: Option<String>,
}

#[derive(Template)]
#[template(path = "ui/new.html")]
struct ChoosePage {
    page: Page,
    presets: &'static [Preset],
}

/// The fields a preset asks for, as the preset form shows them.
struct PresetField {
    /// The input's name: `url`, `value.account_sid`, `auth_password`…
    input: String,
    label: String,
    help: String,
    example: String,
    secret: bool,
    value: String,
    error: String,
}

#[derive(Template)]
#[template(path = "ui/preset.html")]
struct PresetPage {
    page: Page,
    preset: &'static Preset,
    name: String,
    enabled: bool,
    fields: Vec<PresetField>,
    /// An error no field owns.
    error: String,
    /// The preset's events by module: (module, human names).
    events: Vec<(&'static str, Vec<&'static str>)>,
    /// The request it makes, from what is typed (examples for the rest).
    preview: Option<PreviewView>,
    preview_error: String,
    /// What patient data it sends, in words.
    sends: &'static str,
    /// "Which clinic?": for an install of several clinics, or a caller limited to some.
    clinics: Option<ClinicChoice>,
}

/// "Which clinic?" on the preset form.
pub struct ClinicChoice {
    /// (clinic id, name, ticked)
    pub options: Vec<(String, String, bool)>,
    /// Whether "all clinics" may be chosen (only by a caller of every clinic).
    pub all_allowed: bool,
    /// `all` or `some`.
    pub scope: String,
    pub error: String,
}

/// The clinics the preset form offers, or `None` when there is nothing to ask: one clinic
/// (or none) on the install and a caller of every clinic. A limited caller is offered only
/// its own clinics, and those are ticked when it has one (the server checks again).
async fn clinic_choice(
    state: &UiState,
    admin: &Admin,
    f: &FormData,
) -> Result<Option<ClinicChoice>, UiError> {
    let records = state
        .app
        .store
        .list_records(
            carehook_core::clinic::Kind::Clinic,
            carehook_store::RecordFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .map_err(UiError::internal)?
        .items;
    let name_of = |id: &str| {
        records
            .iter()
            .find(|r| r.id.to_string() == id)
            .map(|r| r.text("name").to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("Clinic {id}"))
    };
    let ids: Vec<String> = match &admin.caller.clinics {
        Some(mine) => mine.clone(),
        None if records.len() > 1 => records.iter().map(|r| r.id.to_string()).collect(),
        None => return Ok(None),
    };
    let posted = f.get("csrf").is_some();
    let ticked = f.all("clinics");
    let limited_to_one = ids.len() == 1 && admin.caller.is_limited();
    Ok(Some(ClinicChoice {
        options: ids
            .iter()
            .map(|id| {
                let on = if posted {
                    ticked.contains(id)
                } else {
                    limited_to_one
                };
                (id.clone(), name_of(id), on)
            })
            .collect(),
        all_allowed: !admin.caller.is_limited(),
        scope: match f.get("clinic_scope") {
            Some("some") => "some".into(),
            Some("all") => "all".into(),
            _ if admin.caller.is_limited() => "some".into(),
            _ => "all".into(),
        },
        error: String::new(),
    }))
}

impl PresetPage {
    /// Advanced (the request as built) starts open when it holds the error.
    fn advanced_open(&self) -> bool {
        !self.error.is_empty()
    }
}

/// A preset's events, grouped by module, by their human names.
fn preset_events(preset: &Preset) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for name in preset.events {
        let Some(e) = catalog::lookup(name) else {
            continue;
        };
        let label = group_label(e.name);
        let human = e.description.trim_end_matches('.');
        match out.iter_mut().find(|(l, _)| *l == label) {
            Some((_, names)) => names.push(human),
            None => out.push((label, vec![human])),
        }
    }
    out
}

/// The request a preset form would make: what the admin typed, and each
/// value not typed yet as its example (a secret as a mask), so the
/// preview shows from the first look.
fn preset_preview(preset: &'static Preset, f: &FormData, event: Option<&str>) -> Value {
    let mut pairs = vec![
        (
            "name".to_string(),
            f.get("name").unwrap_or(preset.name).to_string(),
        ),
        ("enabled".to_string(), "on".to_string()),
    ];
    for (input, label, _, example, secret) in preset_inputs(preset) {
        let typed = f.text(&input);
        let value = if !typed.trim().is_empty() {
            typed
        } else if !example.is_empty() {
            example
        } else if secret {
            "********".to_string()
        } else if input == "url" {
            "https://receiver.example/hook".to_string()
        } else {
            format!("({label})")
        };
        pairs.push((input, value));
    }
    let filled = FormData::from_pairs(pairs);
    let result = webhooks::spec_from_json(preset_body(preset, &filled))
        .and_then(|spec| preview_json(spec, event))
        .map_err(field_error);
    match result {
        Ok(mut v) => {
            v["ok"] = true.into();
            v
        }
        Err(e) => json!({"ok": false, "error": e}),
    }
}

async fn new_page(
    State(state): State<UiState>,
    admin: Admin,
    Query(q): Query<NewQuery>,
) -> Result<Response, UiError> {
    if let Some(id) = q.preset.as_deref() {
        let preset = presets::lookup(id).ok_or(UiError::NotFound)?;
        let page = Page::new(&state, &admin, format!("New: {}", preset.name), "webhooks").await;
        let form = FormData::default();
        let clinics = clinic_choice(&state, &admin, &form).await?;
        return Ok(html(&preset_page(page, preset, &form, Vec::new(), clinics)));
    }
    if q.blank.is_some() {
        let page = Page::new(&state, &admin, "New webhook", "webhooks").await;
        return Ok(html(&EditPage::new(page, None, Editor::blank(), None)));
    }
    Ok(html(&ChoosePage {
        page: Page::new(&state, &admin, "New webhook", "webhooks").await,
        presets: presets::presets(),
    }))
}

fn preset_inputs(preset: &Preset) -> Vec<(String, String, String, String, bool)> {
    // A value that is also the basic auth username (Twilio's Account SID) is asked once,
    // as the username: the preset takes the value from it.
    let username = match preset.auth {
        PresetAuth::Basic { username_label, .. } => username_label,
        _ => "",
    };
    let mut out: Vec<(String, String, String, String, bool)> = preset
        .values
        .iter()
        .filter(|v| v.key == "url" || !v.label.eq_ignore_ascii_case(username))
        .map(|v| {
            let input = if v.key == "url" {
                "url".to_string()
            } else {
                format!("value.{}", v.key)
            };
            (
                input,
                v.label.to_string(),
                v.help.to_string(),
                v.example.to_string(),
                false,
            )
        })
        .collect();
    let mut secret = |input: &str, label: &str, is_secret: bool| {
        out.push((
            input.into(),
            label.into(),
            String::new(),
            String::new(),
            is_secret,
        ))
    };
    match preset.auth {
        PresetAuth::None => {}
        PresetAuth::Basic {
            username_label,
            password_label,
        } => {
            secret("auth_username", username_label, false);
            secret("auth_password", password_label, true);
        }
        PresetAuth::Bearer { token_label } => secret("auth_token", token_label, true),
        PresetAuth::ApiKey {
            name, value_label, ..
        } => {
            if name.is_empty() {
                secret("auth_key_name", "API key header name", false);
            }
            secret("auth_key_value", value_label, true);
        }
        PresetAuth::OAuth2 { fields, .. } => {
            for (field, label, _) in fields {
                secret(&format!("auth_{field}"), label, *field != "client_id");
            }
        }
    }
    // The username asks with the help and example of the value it stands for.
    if let Some(v) = preset
        .values
        .iter()
        .find(|v| v.key != "url" && v.label.eq_ignore_ascii_case(username))
        && let Some(u) = out.iter_mut().find(|i| i.0 == "auth_username")
    {
        u.2 = v.help.replace("; defaults to the auth username", "");
        u.3 = v.example.to_string();
    }
    out
}

/// Which preset input an API field name is about.
fn preset_input_for(field: &str) -> String {
    match field {
        "auth.username" => "auth_username".into(),
        "auth.password" => "auth_password".into(),
        "auth.token" => "auth_token".into(),
        "auth.value" => "auth_key_value".into(),
        "auth.name" => "auth_key_name".into(),
        "auth.client_id" | "auth.client_secret" | "auth.refresh_token" => {
            field.replacen('.', "_", 1)
        }
        f => f.replacen("values.", "value.", 1),
    }
}

fn preset_page(
    page: Page,
    preset: &'static Preset,
    f: &FormData,
    errors: Vec<FieldError>,
    mut clinics: Option<ClinicChoice>,
) -> PresetPage {
    let mut placed = vec![false; errors.len()];
    if let Some(c) = clinics.as_mut() {
        for (i, e) in errors.iter().enumerate() {
            if e.field.starts_with("clinics") {
                placed[i] = true;
                c.error = e.message.clone();
            }
        }
    }
    let fields = preset_inputs(preset)
        .into_iter()
        .map(|(input, label, help, example, secret)| {
            let error = errors
                .iter()
                .enumerate()
                .filter(|(_, e)| preset_input_for(&e.field) == input)
                .map(|(i, e)| {
                    placed[i] = true;
                    e.message.clone()
                })
                .collect::<Vec<_>>()
                .join(" ");
            PresetField {
                value: if secret {
                    String::new()
                } else {
                    f.text(&input)
                },
                input,
                label,
                help,
                example,
                secret,
                error,
            }
        })
        .collect();
    let error = errors
        .iter()
        .zip(placed)
        .filter(|(_, p)| !p)
        .map(|(e, _)| e.message.clone())
        .collect::<Vec<_>>()
        .join(" ");
    let preview = preset_preview(preset, f, None);
    PresetPage {
        page,
        preset,
        name: f.get("name").unwrap_or(preset.name).to_string(),
        // As the API and the CLI make it: on, unless the admin unticks it.
        enabled: f.get("csrf").is_none() || f.checked("enabled"),
        fields,
        error,
        events: preset_events(preset),
        preview_error: if preview["ok"] == true {
            String::new()
        } else {
            preview["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string()
        },
        preview: (preview["ok"] == true).then(|| preview_view(&preview)),
        sends: match (preset.data_policy.identifying, preset.data_policy.phi) {
            (false, false) => "no patient data",
            (true, false) => "identifying patient data (names, contact details)",
            (false, true) => "health information (phi)",
            (true, true) => "identifying patient data and health information (phi)",
        },
        clinics,
    }
}

/// The API body for a webhook from a preset form.
fn preset_body(preset: &Preset, f: &FormData) -> Value {
    let mut values = serde_json::Map::new();
    for v in preset.values.iter().filter(|v| v.key != "url") {
        let text = f.text(&format!("value.{}", v.key));
        if !text.trim().is_empty() {
            values.insert(v.key.into(), text.trim().into());
        }
    }
    let mut body = json!({
        "preset": preset.id,
        "name": f.text("name"),
        "enabled": f.checked("enabled"),
        "values": values,
    });
    if let Some(url) = f.get("url").filter(|u| !u.trim().is_empty()) {
        body["url"] = url.trim().into();
    }
    // "Which clinic?": only the ticked ones; "all" (or no question asked) leaves the list
    // empty, every clinic, which the service refuses for a caller limited to some.
    if f.get("clinic_scope") == Some("some") {
        body["clinics"] = json!(f.all("clinics"));
    }
    let auth = match preset.auth {
        PresetAuth::None => None,
        PresetAuth::Basic { .. } => Some(
            json!({"username": f.text("auth_username").trim(), "password": f.text("auth_password")}),
        ),
        PresetAuth::Bearer { .. } => Some(json!({"token": f.text("auth_token")})),
        PresetAuth::ApiKey { name, .. } => {
            let mut a = json!({"value": f.text("auth_key_value")});
            if name.is_empty() {
                a["name"] = f.text("auth_key_name").trim().into();
            }
            Some(a)
        }
        PresetAuth::OAuth2 { fields, .. } => {
            let mut a = json!({});
            for (field, _, _) in fields {
                a[*field] = f.text(&format!("auth_{field}")).trim().into();
            }
            Some(a)
        }
    };
    if let Some(a) = auth {
        body["auth"] = a;
    }
    body
}

async fn create(State(state): State<UiState>, posted: Posted) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    if let Some(id) = form.get("preset") {
        let preset = presets::lookup(id).ok_or(UiError::NotFound)?;
        let body = preset_body(preset, &form);
        let made = if form.get("clinic_scope") == Some("some") && form.all("clinics").is_empty() {
            Err(Error::invalid(
                "clinics",
                "Tick the clinics whose events this webhook sends (or choose all clinics).",
            ))
        } else {
            create_webhook(&state, &admin, body).await
        };
        return match made {
            Ok(view) => Ok(created(&state, &admin, view).await),
            Err(e) => {
                let missing = match &e {
                    Error::Invalid { details, .. } => details.get("missing"),
                    _ => None,
                };
                let errors = match missing {
                    Some(Value::Array(missing)) => missing
                        .iter()
                        .map(|m| {
                            FieldError::new(
                                m["field"].as_str().unwrap_or(""),
                                m["message"].as_str().unwrap_or(""),
                            )
                        })
                        .collect(),
                    _ => vec![field_error(e)],
                };
                let page =
                    Page::new(&state, &admin, format!("New: {}", preset.name), "webhooks").await;
                let clinics = clinic_choice(&state, &admin, &form).await?;
                let mut resp = html(&preset_page(page, preset, &form, errors, clinics));
                *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                Ok(resp)
            }
        };
    }
    let editor = Editor::from_form(&form, false);
    let result = match editor.to_json() {
        Ok(body) => create_webhook(&state, &admin, body)
            .await
            .map_err(field_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(view) => Ok(created(&state, &admin, view).await),
        Err(e) => {
            let page = Page::new(&state, &admin, "New webhook", "webhooks").await;
            let mut resp = html(&EditPage::new(page, None, editor, Some(e)));
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

/// After a create: the secret to show once, and on to the editor.
async fn created(state: &UiState, admin: &Admin, view: Value) -> Response {
    let id = view["id"]
        .as_str()
        .and_then(|s| s.parse::<WebhookId>().ok())
        .unwrap_or(WebhookId::from_uuid(uuid::Uuid::nil()));
    if let Some(secret) = view["signing_secret"].as_str() {
        state
            .sessions
            .reveal_once(&admin.key, id, secret.to_string())
            .await;
    }
    let enabled = view["enabled"].as_bool().unwrap_or(false);
    state
        .sessions
        .flash(
            &admin.key,
            "ok",
            if enabled {
                "Webhook created and enabled. Press \"Send test\" to see it arrive."
            } else {
                "Webhook created, switched off: send a test, then enable it."
            },
        )
        .await;
    flash_warnings(state, admin, &view).await;
    Redirect::to(&format!("/ui/webhooks/{id}")).into_response()
}

async fn flash_warnings(state: &UiState, admin: &Admin, view: &Value) {
    for w in view["warnings"].as_array().into_iter().flatten() {
        state
            .sessions
            .flash(
                &admin.key,
                "warn",
                format!(
                    "Warning, {}: {}",
                    w["field"].as_str().unwrap_or(""),
                    w["message"].as_str().unwrap_or("")
                ),
            )
            .await;
    }
}

// --- the editor ----------------------------------------------------------------------------

pub struct EventGroup {
    pub label: &'static str,
    /// (name, description, checked)
    pub events: Vec<(&'static str, &'static str, bool)>,
}

pub struct VarButton {
    pub name: &'static str,
    pub tip: String,
    /// Not every chosen event carries it (renders empty for the others).
    pub partial: bool,
    /// `none`, `identifying` or `phi`.
    pub sensitivity: &'static str,
}

/// The variables of the chosen events, for click-to-insert.
fn variables(scope: &Scope) -> Vec<VarButton> {
    scope
        .variable_names()
        .into_iter()
        .filter_map(|name| {
            let v = scope.variable(name)?;
            let partial = scope.presence(name) == Presence::Some;
            Some(VarButton {
                name: v.name,
                tip: format!(
                    "{} (e.g. {}){}{}",
                    v.description,
                    v.example,
                    match v.sensitivity {
                        Sensitivity::None => "",
                        Sensitivity::Identifying => "; identifies the patient",
                        Sensitivity::Phi => "; health information (phi)",
                    },
                    if partial {
                        "; not every chosen event has it"
                    } else {
                        ""
                    }
                ),
                partial,
                sensitivity: v.sensitivity.as_str(),
            })
        })
        .collect()
}

fn scope_of(editor: &Editor) -> Scope {
    if editor.any_event {
        return Scope::all();
    }
    Scope::new(&editor.events).unwrap_or_else(|_| {
        let known: Vec<&String> = editor
            .events
            .iter()
            .filter(|e| catalog::lookup(e).is_some())
            .collect();
        Scope::new(&known).unwrap_or_else(|_| Scope::all())
    })
}

fn group_label(event: &str) -> &'static str {
    match event.split('_').nth(1).unwrap_or("") {
        "appointment" => "Appointments",
        "patient" => "Patients",
        "doctor" => "Doctors",
        "receptionist" => "Receptionists",
        "clinic" => "Clinics",
        "encounter" => "Encounters",
        "medical" | "prescription" => "Records and prescriptions",
        _ => "Bills and payments",
    }
}

fn event_groups(chosen: &[String]) -> Vec<EventGroup> {
    let mut groups: Vec<EventGroup> = Vec::new();
    for e in catalog::events() {
        let label = group_label(e.name);
        let checked = chosen
            .iter()
            .any(|c| catalog::canonical_name(c) == Some(e.name));
        match groups.iter_mut().find(|g| g.label == label) {
            Some(g) => g.events.push((e.name, e.description, checked)),
            None => groups.push(EventGroup {
                label,
                events: vec![(e.name, e.description, checked)],
            }),
        }
    }
    groups
}

/// The preview as the editor shows it (server-side on load; the script
/// refreshes it as the admin types).
pub struct PreviewView {
    pub event: String,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub conditions_match: bool,
}

fn preview_view(v: &Value) -> PreviewView {
    let r = &v["request"];
    PreviewView {
        event: v["event"].as_str().unwrap_or("").into(),
        method: r["method"].as_str().unwrap_or("").into(),
        url: r["url"].as_str().unwrap_or("").into(),
        headers: r["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
            .collect(),
        body: r["body"].as_str().unwrap_or("").into(),
        conditions_match: v["conditions_match"].as_bool().unwrap_or(true),
    }
}

/// The hosted services whose incoming webhooks ignore carehook's signature
/// headers: giving them the signing secret would be a chore for nothing.
fn service_without_signatures(url: &str) -> &'static str {
    const SERVICES: &[(&str, &str)] = &[
        ("hooks.slack.com", "Slack"),
        ("webhook.office.com", "Microsoft Teams"),
        ("outlook.office.com", "Microsoft Teams"),
        ("discord.com", "Discord"),
        ("discordapp.com", "Discord"),
        ("chat.googleapis.com", "Google Chat"),
        ("api.twilio.com", "Twilio"),
        ("api.sendgrid.com", "SendGrid"),
        ("api.hubapi.com", "HubSpot"),
        ("hooks.zapier.com", "Zapier"),
        ("make.com", "Make"),
        ("sheets.googleapis.com", "Google Sheets"),
        ("script.google.com", "Google Apps Script"),
        ("quickbooks.api.intuit.com", "QuickBooks"),
        ("salesforce.com", "Salesforce"),
        ("api.mixpanel.com", "Mixpanel"),
    ];
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    SERVICES
        .iter()
        .find(|(domain, _)| host == *domain || host.ends_with(&format!(".{domain}")))
        .map_or("", |(_, name)| name)
}

/// What to try after a failed test, from what the receiver answered.
fn next_step(status: &str, error: &str) -> String {
    let step = match status {
        "" if error.contains("not allowed") || error.contains("private") => {
            "carehook refused the address: a private or local address must be allowed with CAREHOOK_ALLOWED_DESTINATIONS."
        }
        "" => {
            "Nothing answered: check the URL's host name, and that the receiver is up and reachable from this server."
        }
        "401" | "403" => {
            "The receiver refused the credentials: check the Authentication fields (token, key or password)."
        }
        "404" | "410" => {
            "The receiver does not know this address: check the URL (for Slack, Teams and Discord, copy the webhook URL again)."
        }
        "400" | "422" => {
            "The receiver did not accept the body: compare the Body template with what it expects; the response below says what it disliked."
        }
        "429" => "The receiver is rate limiting: wait, or set a rate limit under Advanced.",
        s if s.starts_with('5') => {
            "The receiver had a problem of its own: try again later; real deliveries are retried."
        }
        s if s.starts_with('3') => {
            "The receiver redirects: use the address it redirects to (carehook never follows redirects)."
        }
        _ => "See the response below.",
    };
    step.to_string()
}

/// A test send's outcome, as the editor shows it.
pub struct TestView {
    pub ok: bool,
    pub summary: String,
    /// On failure, what to try.
    pub next_step: String,
    pub request: Option<PreviewView>,
    pub status: String,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
    pub error: String,
    pub duration_ms: i64,
    pub delivery_id: String,
}

#[derive(Template)]
#[template(path = "ui/edit.html")]
pub struct EditPage {
    page: Page,
    id: Option<WebhookId>,
    e: Editor,
    error: Option<FieldError>,
    groups: Vec<EventGroup>,
    vars: Vec<VarButton>,
    /// Every variable name, for the conditions' suggestions.
    all_vars: Vec<&'static str>,
    ops: Vec<&'static str>,
    /// The chosen events, for the preview's and test's event choice.
    scope_events: Vec<&'static str>,
    preview: Option<PreviewView>,
    preview_error: String,
    test: Option<TestView>,
    reveal: Option<String>,
    /// A service that does not check signatures (Slack…), named; empty
    /// for a receiver that may.
    signing_receiver: &'static str,
    enabled_saved: bool,
    disabled_reason: String,
    broken: String,
    signing_rotated: String,
    /// "Share log with partner", for an owner or admin on a saved webhook.
    share: Option<ShareView>,
}

/// The webhook page's partner links: the list, the form, and a new link shown once.
pub struct ShareView {
    pub links: Vec<ShareLink>,
    /// Whether the caller may make a link that shows bodies.
    pub can_bodies: bool,
    /// The link just made: shown this once.
    pub new_url: Option<String>,
    pub error: String,
}

pub struct ShareLink {
    pub id: uuid::Uuid,
    pub label: String,
    /// `active`, `expired` or `revoked`.
    pub state: &'static str,
    pub expires: super::When,
    pub created_by: String,
    pub show_bodies: bool,
}

impl EditPage {
    pub fn new(
        page: Page,
        id: Option<WebhookId>,
        e: Editor,
        error: Option<FieldError>,
    ) -> EditPage {
        let scope = scope_of(&e);
        let (preview, preview_error) = match e.to_spec() {
            Ok(spec) => match preview_json(spec, None) {
                Ok(v) => (Some(preview_view(&v)), String::new()),
                Err(err) => (None, err.message()),
            },
            Err(err) => (None, err.message),
        };
        EditPage {
            page,
            id,
            groups: event_groups(&e.events),
            vars: variables(&scope),
            all_vars: catalog::variable_names(),
            ops: Op::ALL.iter().map(|o| o.as_str()).collect(),
            scope_events: scope.events().iter().map(|ev| ev.name).collect(),
            enabled_saved: e.enabled,
            e,
            error,
            preview,
            preview_error,
            test: None,
            reveal: None,
            signing_receiver: "",
            disabled_reason: String::new(),
            broken: String::new(),
            signing_rotated: String::new(),
            share: None,
        }
    }

    /// Advanced starts open when it holds something of the admin's, or
    /// the error.
    fn advanced_open(&self) -> bool {
        const INSIDE: &[&str] = &[
            "headers",
            "query",
            "body",
            "tls",
            "data_policy",
            "conditions",
            "timeout_ms",
            "rate_limit",
            "retry",
            "max_in_flight",
            "ordering_key",
        ];
        !self.e.headers.is_empty()
            || !self.e.query.is_empty()
            || !self.e.conditions.is_empty()
            || !self.e.ordering_key.is_empty()
            || self
                .error
                .as_ref()
                .is_some_and(|e| INSIDE.contains(&e.anchor.as_str()))
    }

    /// The error text for one slot of the form, or empty.
    fn err(&self, anchor: &str) -> &str {
        match &self.error {
            Some(e) if e.anchor == anchor => &e.message,
            _ => "",
        }
    }

    fn selected(&self, a: &str, b: &str) -> &'static str {
        if a == b { "selected" } else { "" }
    }
}

async fn edit_page(
    State(state): State<UiState>,
    admin: Admin,
    super::Id(id): super::Id<WebhookId>,
) -> Result<Response, UiError> {
    Ok(html(&edit_for(&state, &admin, id, None).await?))
}

/// The editor for a saved webhook, as saved, or with the form as posted
/// and its error.
async fn edit_for(
    state: &UiState,
    admin: &Admin,
    id: WebhookId,
    posted: Option<(Editor, FieldError)>,
) -> Result<EditPage, UiError> {
    let w = webhooks::loaded(&state.app, id).await?;
    let has_secret = w.compiled.spec.auth.secret().is_some_and(|s| !s.is_empty());
    let page = Page::new(state, admin, w.row.name.clone(), "webhooks").await;
    let (editor, error) = match posted {
        Some((e, err)) => (e, Some(err)),
        None => (Editor::from_spec(&w.compiled.spec, has_secret), None),
    };
    let mut p = EditPage::new(page, Some(id), editor, error);
    p.enabled_saved = w.row.enabled;
    p.disabled_reason = super::disabled_note(&w);
    p.broken = w.broken.clone().unwrap_or_default();
    p.reveal = state.sessions.take_reveal(&admin.key, id).await;
    p.signing_receiver = service_without_signatures(&w.compiled.spec.url);
    if w.signing.len() > 1 {
        p.signing_rotated =
            "A previous secret still signs too, for up to 24 hours after the rotation.".into();
    }
    p.share = share_view(state, admin, id).await?;
    Ok(p)
}

/// The partner links of a webhook, for an owner or admin; `None` for other roles.
async fn share_view(
    state: &UiState,
    admin: &Admin,
    id: WebhookId,
) -> Result<Option<ShareView>, UiError> {
    use crate::service::access::Role;
    if !matches!(admin.caller.role, Role::Owner | Role::Admin) {
        return Ok(None);
    }
    let rows = crate::service::partner::list(&state.app, &admin.caller, id).await?;
    let zone = super::clinic_zone(state).await;
    let now = crate::time::now_ms();
    let mut ended = Vec::with_capacity(rows.len());
    for l in &rows {
        ended.push(crate::service::partner::ended(&state.app, l, now).await?);
    }
    Ok(Some(ShareView {
        links: rows
            .into_iter()
            .zip(ended)
            .map(|(l, ended)| ShareLink {
                id: l.id,
                label: l.label.unwrap_or_default(),
                state: if l.revoked_at.is_some() {
                    "revoked"
                } else if l.expires_at <= now {
                    "expired"
                } else if ended {
                    "ended"
                } else {
                    "active"
                },
                expires: super::When::new(l.expires_at, now, zone),
                created_by: l.created_by,
                show_bodies: l.show_bodies,
            })
            .collect(),
        can_bodies: admin.caller.bodies,
        new_url: None,
        error: String::new(),
    }))
}

/// Makes a partner link and shows the page with it, once (not after a redirect: the link is
/// never written to the session).
async fn share(
    State(state): State<UiState>,
    headers: axum::http::HeaderMap,
    super::Id(id): super::Id<WebhookId>,
    posted: Posted,
) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let days = form.get("expires_in_days").unwrap_or("").trim();
    let new = crate::service::partner::NewLink {
        expires_in_days: if days.is_empty() {
            None
        } else {
            Some(days.parse::<i64>().unwrap_or(0))
        },
        label: form.get("label").map(str::to_string),
        show_bodies: Some(form.checked("show_bodies")),
    };
    let Some(maker) = admin.maker(&state).await? else {
        return Err(Error::Unauthorized("the session's token is no longer valid".into()).into());
    };
    let made =
        crate::service::partner::create(&state.app, &admin.caller, &admin.actor(), &maker, id, new)
            .await;
    let (url, error) = match made {
        Ok((_, secret)) => (
            Some(crate::service::partner::link_url(&headers, &secret)),
            String::new(),
        ),
        Err(e @ (Error::Invalid { .. } | Error::BadRequest(_))) => (None, e.message()),
        Err(e) => return Err(e.into()),
    };
    let failed = url.is_none();
    let mut page = edit_for(&state, &admin, id, None).await?;
    if let Some(share) = page.share.as_mut() {
        share.new_url = url;
        share.error = error;
    }
    let mut resp = html(&page);
    if failed {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

async fn revoke_share(
    State(state): State<UiState>,
    axum::extract::Path((id, link)): axum::extract::Path<(String, String)>,
    posted: Posted,
) -> Result<Response, UiError> {
    let id: WebhookId = id.parse().map_err(|_| UiError::NotFound)?;
    let link: uuid::Uuid = link.parse().map_err(|_| UiError::NotFound)?;
    let admin = &posted.admin;
    crate::service::partner::revoke(&state.app, &admin.caller, &admin.actor(), id, link).await?;
    state
        .sessions
        .flash(
            &admin.key,
            "ok",
            "Partner link revoked: it no longer opens the log.",
        )
        .await;
    Ok(Redirect::to(&format!("/ui/webhooks/{id}#share-h")).into_response())
}

async fn save(
    State(state): State<UiState>,
    super::Id(id): super::Id<WebhookId>,
    posted: Posted,
) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let w = webhooks::loaded(&state.app, id).await?;
    let has_secret = w.compiled.spec.auth.secret().is_some_and(|s| !s.is_empty());
    let editor = Editor::from_form(&form, has_secret);
    let result = match editor.to_patch(&w.compiled.spec) {
        Ok(patch) => webhooks::update(&state.app, &admin.actor(), id, patch)
            .await
            .map_err(field_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(view) => {
            state.sessions.flash(&admin.key, "ok", "Saved.").await;
            flash_warnings(&state, &admin, &view).await;
            Ok(Redirect::to(&format!("/ui/webhooks/{id}")).into_response())
        }
        Err(e) => {
            let mut resp = html(&edit_for(&state, &admin, id, Some((editor, e))).await?);
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

/// The live preview: the posted (unsaved) form rendered with the demo
/// clinic's values, or the first error with the slot it belongs in.
async fn preview(State(state): State<UiState>, posted: Posted) -> Json<Value> {
    let form = &posted.form;
    // The preset form (simple mode): its request, from the values typed so far.
    if let Some(preset) = form.get("preset") {
        return Json(match presets::lookup(preset) {
            Some(p) => preset_preview(p, form, None),
            None => json!({"ok": false, "error": FieldError::new("preset", "unknown preset")}),
        });
    }
    let has_secret = form
        .get("id")
        .and_then(|id| id.parse::<WebhookId>().ok())
        .and_then(|id| state.app.registry.get(id))
        .is_some_and(|w| w.compiled.spec.auth.secret().is_some_and(|s| !s.is_empty()));
    let editor = Editor::from_form(form, has_secret);
    let scope = scope_of(&editor);
    let events: Vec<&str> = scope.events().iter().map(|e| e.name).collect();
    let vars: Vec<Value> = variables(&scope)
        .into_iter()
        .map(|v| json!({"name": v.name, "tip": v.tip, "partial": v.partial, "sensitivity": v.sensitivity}))
        .collect();
    // An event the form no longer subscribes to: the first one it does.
    let event = form
        .get("preview_event")
        .filter(|e| events.contains(e) || scope.is_all());
    let result = match editor.to_spec() {
        Ok(spec) => preview_json(spec, event).map_err(field_error),
        Err(e) => Err(e),
    };
    Json(match result {
        Ok(mut v) => {
            v["ok"] = true.into();
            v["variables"] = vars.into();
            v["events"] = events.into();
            v
        }
        Err(e) => json!({"ok": false, "error": e, "variables": vars, "events": events}),
    })
}

// --- small actions ---------------------------------------------------------------------------

fn back(form: &FormData, id: WebhookId) -> String {
    safe_next(Some(
        form.get("back")
            .map(str::to_string)
            .unwrap_or_else(|| format!("/ui/webhooks/{id}"))
            .as_str(),
    ))
}

async fn toggle(
    State(state): State<UiState>,
    super::Id(id): super::Id<WebhookId>,
    posted: Posted,
) -> Result<Response, UiError> {
    let on = posted.form.get("enabled") == Some("true");
    let actor = posted.admin.actor();
    let w = if on {
        webhooks::enable(&state.app, &actor, id).await?
    } else {
        webhooks::disable(&state.app, &actor, id, None).await?
    };
    state
        .sessions
        .flash(
            &posted.admin.key,
            "ok",
            format!(
                "{} is now {}.",
                w.row.name,
                if on { "enabled" } else { "disabled" }
            ),
        )
        .await;
    Ok(Redirect::to(&back(&posted.form, id)).into_response())
}

async fn clone(
    State(state): State<UiState>,
    super::Id(id): super::Id<WebhookId>,
    posted: Posted,
) -> Result<Response, UiError> {
    let view = webhooks::clone(&state.app, &posted.admin.actor(), id).await?;
    Ok(created(&state, &posted.admin, view).await)
}

async fn delete(
    State(state): State<UiState>,
    super::Id(id): super::Id<WebhookId>,
    posted: Posted,
) -> Result<Response, UiError> {
    let name = webhooks::loaded(&state.app, id).await?.row.name.clone();
    webhooks::delete(&state.app, &posted.admin.actor(), id).await?;
    state
        .sessions
        .flash(
            &posted.admin.key,
            "ok",
            format!("Deleted {name}. Its deliveries stay in the log."),
        )
        .await;
    Ok(Redirect::to("/ui/webhooks").into_response())
}

async fn rotate(
    State(state): State<UiState>,
    super::Id(id): super::Id<WebhookId>,
    posted: Posted,
) -> Result<Response, UiError> {
    let view = webhooks::rotate_secret(&state.app, &posted.admin.actor(), id).await?;
    if let Some(secret) = view["signing_secret"].as_str() {
        state
            .sessions
            .reveal_once(&posted.admin.key, id, secret.to_string())
            .await;
    }
    state.sessions.flash(
        &posted.admin.key,
        "ok",
        "New signing secret made; the old one keeps signing for 24 hours so receivers can switch.",
    ).await;
    Ok(Redirect::to(&format!("/ui/webhooks/{id}")).into_response())
}

async fn test_send(
    State(state): State<UiState>,
    super::Id(id): super::Id<WebhookId>,
    posted: Posted,
) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let event = form.get("test_event").filter(|e| !e.is_empty());
    let try_out = TryOut {
        event: event.map(str::to_string),
        data: Default::default(),
    };
    let result = webhooks::test_send(&state.app, &admin.actor(), id, try_out)
        .await
        .and_then(|t| serde_json::to_value(t).map_err(Error::internal));
    let mut page = edit_for(&state, &admin, id, None).await?;
    page.test = Some(match result {
        Ok(v) => test_view(&v),
        Err(e) => TestView {
            ok: false,
            summary: "The test could not be sent".into(),
            next_step: "Save the webhook without errors first, then send the test again.".into(),
            request: None,
            status: String::new(),
            response_headers: Vec::new(),
            response_body: String::new(),
            error: e.message(),
            duration_ms: 0,
            delivery_id: String::new(),
        },
    });
    Ok(html(&page))
}

fn test_view(v: &Value) -> TestView {
    let response = &v["response"];
    let ok = v["outcome"].as_str() == Some("succeeded");
    let status = response["status"]
        .as_i64()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let step = if ok {
        String::new()
    } else {
        next_step(&status, v["error"].as_str().unwrap_or(""))
    };
    TestView {
        ok,
        summary: match (ok, status.as_str()) {
            (true, s) => format!("Test sent: the endpoint answered HTTP {s}"),
            (false, "") => "Test failed: no answer".into(),
            (false, s) => format!("Test failed: the endpoint answered HTTP {s}"),
        },
        request: v
            .get("request")
            .filter(|r| r.is_object())
            .map(|r| preview_view(&json!({"request": r, "event": v["event"]}))),
        status,
        response_headers: response["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
            .collect(),
        response_body: response["body"].as_str().unwrap_or("").into(),
        next_step: step,
        error: v["error"].as_str().unwrap_or("").into(),
        duration_ms: v["duration_ms"].as_i64().unwrap_or(0),
        delivery_id: v["delivery_id"].as_str().unwrap_or("").into(),
    }
}
