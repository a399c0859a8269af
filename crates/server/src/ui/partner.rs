//! The page a partner link opens: `/partner/{secret}` (the log) and
//! `/partner/{secret}/deliveries/{id}` (one delivery). No login and no session: the secret in
//! the path is the key (see `service::partner` for the rules).
//!
//! Why `/partner/…` and not under `/ui`: everything under `/ui` is the admin UI, which sends
//! a visitor without a session to the login page; a partner never logs in, and a separate
//! prefix lets a proxy publish these pages (and nothing else) to the outside.
//!
//! Decisions a reader might otherwise undo:
//! - Read-only: GET only (a POST is answered 405), no forms, no retry or replay.
//! - Shown: the webhook's name, its destination's host (never the full URL, which may carry a
//!   key, nor headers or auth), and the log. Bodies and patient names only on a link made with
//!   `show_bodies`; otherwise the log is built as for a caller without bodies (no snapshot is
//!   even read).
//! - A link no longer valid (expired, revoked, its webhook deleted) is a 410 page that names
//!   nothing; an unknown one a 404 with the same words. Wrong secrets are counted per client
//!   address and answered 429 past [`FAILURES_PER_MINUTE`].
//! - `Referrer-Policy: no-referrer` (the UI's layer sets it too), `Cache-Control: no-store`,
//!   `X-Robots-Tag: noindex`. Nothing here logs the path: carehook has no request-logging
//!   layer, and the policy layer logs only matched route templates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use carehook_core::catalog;
use carehook_core::ids::{DeliveryId, WebhookId};
use carehook_store::{DeliveryFilter, PartnerLinkRow};
use serde::Deserialize;

use super::dashboard::{status_class, status_label};
use super::deliveries::{Row, human_event, log_rows};
use super::{UiError, UiState, When, html};
use crate::service::partner::{self, Opened};
use crate::time::now_ms;

/// Wrong secrets a client address may try in a minute before it is answered 429.
pub const FAILURES_PER_MINUTE: u32 = 20;
/// Rows on one page of the partner's log.
const PAGE: u32 = 25;

#[derive(Debug, Clone)]
struct PartnerState {
    ui: UiState,
    /// Failed secrets per client address in the current minute: (minute, count).
    failures: Arc<Mutex<HashMap<String, (i64, u32)>>>,
}

pub fn router(ui: UiState) -> Router {
    let state = PartnerState {
        ui,
        failures: Default::default(),
    };
    Router::new()
        .route("/partner/{secret}", get(log_page))
        .route("/partner/{secret}/deliveries/{id}", get(delivery_page))
        .layer(middleware::from_fn(headers))
        .layer(middleware::from_fn(super::security_headers))
        .with_state(state)
}

/// Every partner page: not cached, not indexed, no referrer (the secret is in the URL).
async fn headers(req: axum::extract::Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

impl PartnerState {
    /// Whether `addr` has used up its wrong secrets for this minute.
    fn throttled(&self, addr: &str, now: i64) -> bool {
        let minute = now / 60_000;
        let map = self.failures.lock().expect("partner failures lock");
        map.get(addr)
            .is_some_and(|(m, n)| *m == minute && *n >= FAILURES_PER_MINUTE)
    }

    fn failed(&self, addr: &str, now: i64) {
        let minute = now / 60_000;
        let mut map = self.failures.lock().expect("partner failures lock");
        // Bounded: entries of past minutes go whenever the map grows large.
        if map.len() > 10_000 {
            map.retain(|_, (m, _)| *m == minute);
        }
        let e = map.entry(addr.to_string()).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        e.1 += 1;
    }
}

#[derive(Template)]
#[template(path = "ui/partner_gone.html")]
struct GonePage {
    title: &'static str,
    message: &'static str,
}

fn gone(status: StatusCode) -> Response {
    let (title, message) = if status == StatusCode::TOO_MANY_REQUESTS {
        (
            "Too many tries",
            "Too many links that do not work were opened from this address. Wait a minute, then open the link you were given again.",
        )
    } else {
        (
            "This link is no longer valid",
            "The link you opened has expired, was revoked, or never existed. Ask the clinic that shared it with you for a new one.",
        )
    };
    let mut resp = html(&GonePage { title, message });
    *resp.status_mut() = status;
    resp
}

/// The link the secret opens, or the page to answer instead.
async fn link(state: &PartnerState, secret: &str, addr: &str) -> Result<PartnerLinkRow, Response> {
    let now = now_ms();
    if state.throttled(addr, now) {
        return Err(gone(StatusCode::TOO_MANY_REQUESTS));
    }
    match partner::open(&state.ui.app, secret, now).await {
        Ok(Opened::Valid(l)) => Ok(l),
        Ok(Opened::Gone) => Err(gone(StatusCode::GONE)),
        Ok(Opened::Unknown) => {
            state.failed(addr, now);
            Err(gone(StatusCode::NOT_FOUND))
        }
        Err(e) => Err(UiError::from(e).into_response()),
    }
}

/// What the page says about the webhook: never its URL, headers or secrets.
struct About {
    name: String,
    host: String,
    events: String,
    label: String,
    show_bodies: bool,
    expires: When,
    zone: String,
}

/// The time zone the webhook's clinic reads times in: its (first) clinic's, else the
/// install's.
async fn zone_of(state: &UiState, clinics: &[String]) -> chrono_tz::Tz {
    if let Some(id) = clinics.first().and_then(|c| c.parse::<i64>().ok())
        && let Ok(Some(c)) = state
            .app
            .store
            .get_record(carehook_core::clinic::Kind::Clinic, id)
            .await
        && let Ok(tz) = c.text("timezone").parse()
    {
        return tz;
    }
    super::clinic_zone(state).await
}

async fn about(
    state: &UiState,
    l: &PartnerLinkRow,
) -> Result<(About, chrono_tz::Tz, String), Response> {
    let w = crate::service::webhooks::loaded(&state.app, l.webhook_id)
        .await
        .map_err(|_| gone(StatusCode::GONE))?;
    let spec = &w.compiled.spec;
    let zone = zone_of(state, &spec.clinics).await;
    let events = if spec.events.iter().any(|e| e == "*") {
        "any event".to_string()
    } else {
        spec.events
            .iter()
            .map(|e| catalog::lookup(e).map_or(e.as_str(), |c| c.description.trim_end_matches('.')))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Ok((
        About {
            name: w.row.name.clone(),
            host: super::host_of(&spec.url),
            events,
            label: l.label.clone().unwrap_or_default(),
            show_bodies: l.show_bodies,
            expires: When::new(l.expires_at, now_ms(), zone),
            zone: zone.name().to_string(),
        },
        zone,
        w.row.name.clone(),
    ))
}

/// One row of the partner's log: the admin log's row, with the last attempt's answer.
struct PartnerRow {
    row: Row,
    code: String,
    latency: String,
    /// The last result when the code does not say it all (an error, the next try).
    note: String,
}

#[derive(Template)]
#[template(path = "ui/partner.html")]
struct LogPage {
    base: String,
    about: About,
    rows: Vec<PartnerRow>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    cursor: Option<String>,
}

async fn log_page(
    State(state): State<PartnerState>,
    super::ClientAddr(addr): super::ClientAddr,
    Path(secret): Path<String>,
    Query(paging): Query<Paging>,
) -> Response {
    let l = match link(&state, &secret, &addr).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    match render_log(&state.ui, &l, &secret, paging.cursor).await {
        Ok(r) => r,
        Err(r) => r,
    }
}

async fn render_log(
    state: &UiState,
    l: &PartnerLinkRow,
    secret: &str,
    cursor: Option<String>,
) -> Result<Response, Response> {
    let (about, zone, name) = about(state, l).await?;
    if let Err(e) = partner::audit_open(&state.app, l, "log").await {
        return Err(UiError::from(e).into_response());
    }
    let page = match state
        .app
        .store
        .list_deliveries(DeliveryFilter {
            webhook_id: Some(l.webhook_id),
            limit: PAGE,
            cursor: cursor.filter(|c| !c.is_empty()),
            ..DeliveryFilter::default()
        })
        .await
    {
        Ok(p) => p,
        // A stale or made-up cursor: the newest page.
        Err(carehook_store::StoreError::Invalid(_)) => carehook_store::Page {
            items: Vec::new(),
            next_cursor: None,
        },
        Err(e) => return Err(UiError::internal(e).into_response()),
    };
    let names: Vec<(WebhookId, String)> = vec![(l.webhook_id, name)];
    let rows = log_rows(state, &page.items, &names, zone, l.show_bodies)
        .await
        .map_err(IntoResponse::into_response)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        // The last attempt's answer and how long it took (one read per row, 25 at most).
        let last = state
            .app
            .store
            .get_delivery(row.id)
            .await
            .map_err(|e| UiError::internal(e).into_response())?
            .and_then(|(_, attempts)| attempts.into_iter().last());
        let code = last
            .as_ref()
            .and_then(|a| a.response_status)
            .map(|s| s.to_string())
            .unwrap_or_default();
        out.push(PartnerRow {
            note: if row.last == format!("HTTP {code}") {
                String::new()
            } else {
                row.last.clone()
            },
            code,
            latency: last
                .as_ref()
                .map(|a| format!("{} ms", a.duration_ms))
                .unwrap_or_default(),
            row,
        });
    }
    Ok(html(&LogPage {
        base: format!("{}{secret}", partner::PATH_PREFIX),
        about,
        rows: out,
        next: page.next_cursor,
    }))
}

struct AttemptView {
    number: i64,
    started: When,
    duration_ms: i64,
    outcome: String,
    class: &'static str,
    status: String,
    error: String,
    request_body: String,
    response_body: String,
    /// Why a body is not shown, when it is not.
    masked: &'static str,
}

#[derive(Template)]
#[template(path = "ui/partner_delivery.html")]
struct DetailPage {
    base: String,
    about: About,
    id: DeliveryId,
    event: String,
    event_human: &'static str,
    status: String,
    label: &'static str,
    class: &'static str,
    created: When,
    test: bool,
    patient: String,
    attempts: Vec<AttemptView>,
}

async fn delivery_page(
    State(state): State<PartnerState>,
    super::ClientAddr(addr): super::ClientAddr,
    Path((secret, id)): Path<(String, String)>,
) -> Response {
    let l = match link(&state, &secret, &addr).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    match render_delivery(&state.ui, &l, &secret, &id).await {
        Ok(r) => r,
        Err(r) => r,
    }
}

async fn render_delivery(
    state: &UiState,
    l: &PartnerLinkRow,
    secret: &str,
    id: &str,
) -> Result<Response, Response> {
    let id: DeliveryId = id.parse().map_err(|_| UiError::NotFound.into_response())?;
    let (d, attempts) = state
        .app
        .store
        .get_delivery(id)
        .await
        .map_err(|e| UiError::internal(e).into_response())?
        // Another webhook's delivery is not on this link: as a missing one.
        .filter(|(d, _)| d.webhook_id == l.webhook_id)
        .ok_or_else(|| UiError::NotFound.into_response())?;
    let (about, zone, name) = about(state, l).await?;
    if let Err(e) = partner::audit_open(&state.app, l, &format!("delivery/{id}")).await {
        return Err(UiError::from(e).into_response());
    }
    let names = vec![(l.webhook_id, name)];
    let row = log_rows(state, std::slice::from_ref(&d), &names, zone, l.show_bodies)
        .await
        .map_err(IntoResponse::into_response)?
        .pop();
    let now = now_ms();
    let masked = if l.show_bodies {
        ""
    } else {
        "Not shown: this link was shared without bodies (they may hold patient data)."
    };
    let attempts = attempts
        .iter()
        .map(|a| AttemptView {
            number: a.attempt_no,
            started: When::new(a.started_at, now, zone),
            duration_ms: a.duration_ms,
            outcome: a.outcome.to_string(),
            class: match a.outcome {
                carehook_store::AttemptOutcome::Succeeded => "ok",
                carehook_store::AttemptOutcome::Retry => "wait",
                _ => "bad",
            },
            status: a.response_status.map(|s| s.to_string()).unwrap_or_default(),
            error: a.error.clone().unwrap_or_default(),
            request_body: if l.show_bodies {
                a.request["body"].as_str().unwrap_or("").to_string()
            } else {
                String::new()
            },
            response_body: if l.show_bodies {
                a.response_body.clone().unwrap_or_default()
            } else {
                String::new()
            },
            masked: if a.purged_at.is_some() {
                "Gone: removed after the clinic's retention period."
            } else {
                masked
            },
        })
        .collect();
    Ok(html(&DetailPage {
        base: format!("{}{secret}", partner::PATH_PREFIX),
        about,
        id,
        event: d.event_type.clone(),
        event_human: human_event(&d.event_type),
        status: d.status.to_string(),
        label: status_label(d.status),
        class: status_class(d.status),
        created: When::new(d.created_at, now, zone),
        test: d.is_test,
        patient: row.map(|r| r.patient).unwrap_or_default(),
        attempts,
    }))
}
