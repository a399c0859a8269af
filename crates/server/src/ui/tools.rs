//! Two pages that used to need the CLI: API tokens (make, list, revoke) and
//! "Test events" (book a demo appointment, or send any catalog event with
//! its example values, edited). Both go through the service layer, as the
//! API's handlers do.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use carehook_core::catalog;
use carehook_core::clinic::Kind;
use carehook_core::ids::TokenId;
use carehook_store::RecordFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{Admin, Posted};
use super::{Page, UiError, UiState, When, html};
use crate::service::clinic::{self, Records};
use crate::service::{events, tokens};
use crate::time::now_ms;

pub fn router() -> Router<UiState> {
    Router::new()
        .route("/tokens", get(tokens_page).post(create_token))
        .route("/tokens/revoke", post(revoke_token))
        .route("/try", get(try_page))
        .route("/try/book", post(book))
        .route("/try/send", post(send))
}

// --- tokens ---------------------------------------------------------------------------------

struct TokenView {
    id: TokenId,
    name: String,
    role: String,
    /// `every clinic`, or the clinic ids.
    clinics: String,
    created: When,
    last_used: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "ui/tokens.html")]
struct TokensPage {
    page: Page,
    rows: Vec<TokenView>,
    /// A token just made: shown on this answer only.
    made: Option<(String, String)>,
    name: String,
    error: String,
}

async fn tokens_view(
    state: &UiState,
    admin: &Admin,
    made: Option<(String, String)>,
    name: String,
    error: String,
) -> Result<Response, UiError> {
    let zone = super::clinic_zone(state).await;
    let now = now_ms();
    let rows = tokens::list(&state.app)
        .await?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            role: if t.bodies || t.role != "viewer" {
                t.role
            } else {
                format!("{} (no bodies)", t.role)
            },
            clinics: t
                .clinics
                .map_or_else(|| "every clinic".into(), |c| c.join(", ")),
            created: When::new(t.created_at, now, zone),
            last_used: t
                .last_used_at
                .map_or_else(|| "never".into(), |at| super::ago(now - at)),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    let mut resp = html(&TokensPage {
        page: Page::new(state, admin, "API tokens", "tokens").await,
        rows,
        made,
        name,
        error,
    });
    // A token shown once must not be kept by the browser's cache.
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

async fn tokens_page(State(state): State<UiState>, admin: Admin) -> Result<Response, UiError> {
    tokens_view(&state, &admin, None, String::new(), String::new()).await
}

async fn create_token(State(state): State<UiState>, posted: Posted) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let name = form.text("name");
    let clinics: Vec<String> = form
        .text("clinics")
        .split([',', ' '])
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let role = form.text("role");
    let access = tokens::check_access(
        Some(if role.is_empty() {
            "owner"
        } else {
            role.as_str()
        }),
        Some(clinics),
        Some(form.get("bodies") == Some("on") || role != "viewer"),
    );
    let made = match access {
        Ok(access) => tokens::create(&state.app, &admin.actor(), &name, &access).await,
        Err(e) => Err(e),
    };
    match made {
        Ok((row, token)) => {
            tokens_view(
                &state,
                &admin,
                Some((row.name, token)),
                String::new(),
                String::new(),
            )
            .await
        }
        Err(e) => {
            let mut resp = tokens_view(&state, &admin, None, name, e.message()).await?;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

async fn revoke_token(State(state): State<UiState>, posted: Posted) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let id = form.get("id").and_then(|i| i.parse::<TokenId>().ok());
    match id {
        Some(id) => match tokens::revoke(&state.app, &admin.actor(), id).await {
            Ok(()) => {
                state
                    .sessions
                    .flash(&admin.key, "ok", "Token revoked: it stops working at once.")
                    .await
            }
            Err(e) => state.sessions.flash(&admin.key, "error", e.message()).await,
        },
        None => {
            state
                .sessions
                .flash(&admin.key, "error", "That token id is not valid.")
                .await
        }
    }
    Ok(Redirect::to("/ui/tokens").into_response())
}

// --- test events ----------------------------------------------------------------------------

struct Field {
    name: &'static str,
    kind: &'static str,
    value: String,
    about: &'static str,
}

#[derive(Template)]
#[template(path = "ui/try.html")]
struct TryPage {
    page: Page,
    patients: Vec<(i64, String)>,
    doctors: Vec<(i64, String)>,
    clinic: Option<i64>,
    tomorrow: String,
    events: Vec<(&'static str, &'static str)>,
    event: &'static str,
    fields: Vec<Field>,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
struct TryQuery {
    #[serde(default)]
    event: String,
}

async fn names(state: &UiState, kind: Kind) -> Result<Vec<(i64, String)>, UiError> {
    let page = clinic::list(
        &state.app,
        kind,
        RecordFilter {
            limit: 200,
            ..Default::default()
        },
    )
    .await?;
    Ok(page
        .items
        .iter()
        .map(|r| {
            let name = match r.text("name") {
                "" => format!("{} {}", r.text("first_name"), r.text("last_name")),
                n => n.to_string(),
            };
            (r.id, name.trim().to_string())
        })
        .collect())
}

async fn try_view(
    state: &UiState,
    admin: &Admin,
    event: &'static catalog::EventType,
    values: Option<&super::form::FormData>,
    error: String,
) -> Result<Response, UiError> {
    let clinic = names(state, Kind::Clinic).await?.first().map(|c| c.0);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let examples = event.example_vars();
    let fields = event
        .variables()
        .filter(|v| {
            !v.name.starts_with("current_") && v.name != "event_name" && v.name != "event_id"
        })
        .map(|v| Field {
            name: v.name,
            kind: v.ty.describe(),
            value: values
                .map(|f| f.text(&format!("v.{}", v.name)))
                .unwrap_or_else(|| examples.get(v.name).cloned().unwrap_or_default()),
            about: v.description,
        })
        .collect();
    Ok(html(&TryPage {
        page: Page::new(state, admin, "Test events", "try").await,
        patients: names(state, Kind::Patient).await?,
        doctors: names(state, Kind::Doctor).await?,
        clinic,
        tomorrow,
        events: catalog::events()
            .iter()
            .map(|e| (e.name, e.description))
            .collect(),
        event: event.name,
        fields,
        error,
    }))
}

async fn try_page(
    State(state): State<UiState>,
    admin: Admin,
    Query(q): Query<TryQuery>,
) -> Result<Response, UiError> {
    let event = catalog::lookup(&q.event)
        .or_else(|| catalog::lookup("kc_appointment_book"))
        .ok_or(UiError::NotFound)?;
    try_view(&state, &admin, event, None, String::new()).await
}

/// Books an appointment in the clinic records: it fires
/// `kc_appointment_book`, as a booking from the clinic system would.
async fn book(State(state): State<UiState>, posted: Posted) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let number = |k: &str| form.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let body = json!({
        "clinic_id": number("clinic_id"),
        "doctor_id": number("doctor_id"),
        "patient_id": number("patient_id"),
        "date": form.text("date").trim(),
        "start_time": form.text("start_time").trim(),
        "description": "Booked from carehook's Test events page",
    });
    let outcome = clinic::create(
        &Records::of(&state.app),
        &admin.actor(),
        Kind::Appointment,
        None,
        body,
        None,
    )
    .await;
    match outcome {
        Ok(v) => {
            state
                .sessions
                .flash(&admin.key, "ok", fired(&v, "Appointment booked"))
                .await;
            Ok(Redirect::to("/ui/deliveries").into_response())
        }
        Err(e) => {
            let event = catalog::lookup("kc_appointment_book").ok_or(UiError::NotFound)?;
            let message = match e.field() {
                Some(f) => format!("Not booked: {f}: {}", e.message()),
                None => format!("Not booked: {}", e.message()),
            };
            try_view(&state, &admin, event, None, message).await
        }
    }
}

/// "Appointment booked; fired kc_appointment_book, 2 deliveries."
fn fired(answer: &Value, what: &str) -> String {
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    let deliveries: usize = events
        .iter()
        .map(|e| e["deliveries"].as_array().map_or(0, Vec::len))
        .sum();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    format!(
        "{what}; fired {}, {deliveries} deliver{}. They show here as they are sent.",
        if names.is_empty() {
            "no event".to_string()
        } else {
            names.join(", ")
        },
        if deliveries == 1 { "y" } else { "ies" }
    )
}

/// Pushes one catalog event with the values as edited, like
/// `POST /api/v1/events`.
async fn send(State(state): State<UiState>, posted: Posted) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let event = catalog::lookup(form.get("event").unwrap_or("")).ok_or(UiError::NotFound)?;
    let mut data = serde_json::Map::new();
    for v in event.variables() {
        if let Some(value) = form.get(&format!("v.{}", v.name)) {
            data.insert(v.name.into(), value.into());
        }
    }
    let pushed = events::push(
        &state.app,
        &admin.actor(),
        events::Push {
            event: event.name.into(),
            data,
            idempotency_key: None,
        },
    )
    .await;
    match pushed {
        Ok(p) => {
            let n = p.recorded.delivery_ids().len();
            let mut text = format!(
                "Sent {}: {n} deliver{}. They show here as they are sent.",
                p.name,
                if n == 1 { "y" } else { "ies" }
            );
            if n == 0 {
                text = format!(
                    "Sent {}, but no enabled webhook subscribes to it (or its conditions did not hold): nothing to deliver.",
                    p.name
                );
            }
            state.sessions.flash(&admin.key, "ok", text).await;
            for m in p.missing {
                state
                    .sessions
                    .flash(
                        &admin.key,
                        "warn",
                        format!(
                            "{} was empty; {} send{} it blank.",
                            m.variable,
                            m.webhooks.join(", "),
                            if m.webhooks.len() == 1 { "s" } else { "" }
                        ),
                    )
                    .await;
            }
            Ok(Redirect::to("/ui/deliveries").into_response())
        }
        Err(e) => {
            let message = match e.field() {
                Some(f) => format!("Not sent: {f}: {}", e.message()),
                None => format!("Not sent: {}", e.message()),
            };
            let mut resp = try_view(&state, &admin, event, Some(&form), message).await?;
            *resp.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}
