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
//! - A link no longer valid (expired, revoked, its webhook deleted or moved, its maker no
//!   longer allowed) is a 410 page that names nothing; an unknown one a 404 with the same
//!   words. Wrong secrets are counted per client address (IPv6 by its /64) and answered 429
//!   past [`FAILURES_PER_MINUTE`] — but a valid link is served even then: behind a proxy every
//!   partner shares one address, and one of them trying wrong links must not lock out the
//!   others. The counts are two generations (this minute and the last) with a hard cap on
//!   entries, so a flood of addresses costs neither memory nor a sweep under the lock.
//! - `Referrer-Policy: no-referrer` (the UI's layer sets it too), `Cache-Control: no-store`,
//!   `X-Robots-Tag: noindex`. Nothing here logs the path: carehook has no request-logging
//!   layer, and the policy layer logs only matched route templates.

use std::collections::HashMap;
use std::net::IpAddr;
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
    /// Failed secrets per client address, this minute and the last.
    failures: Arc<Failures>,
}

/// Addresses counted a minute at most; past it, new addresses share one count.
pub const MAX_ADDRESSES: usize = 10_000;

/// Failed secrets per client address: this minute's counts and last minute's, swapped when
/// the minute turns (last minute's are dropped whole, no sweep). Throttled is a sliding
/// window: this minute's count plus last minute's weighted by how much of it is still in
/// the last 60 seconds.
#[derive(Debug, Default)]
pub struct Failures {
    inner: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    minute: i64,
    current: HashMap<String, u32>,
    previous: HashMap<String, u32>,
}

/// What failures are counted under: an IPv4 address, an IPv6 address's /64 (one host has a
/// whole /64), anything else as given (at most 64 characters).
fn address_key(addr: &str) -> String {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.to_string(),
        Ok(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => addr.chars().take(64).collect(),
    }
}

/// The key every address past [`MAX_ADDRESSES`] counts under.
const OVERFLOW: &str = "(others)";

impl Failures {
    fn generations(&self, now: i64) -> std::sync::MutexGuard<'_, Generations> {
        let minute = now.div_euclid(60_000);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if minute != g.minute {
            let current = std::mem::take(&mut g.current);
            g.previous = if minute == g.minute + 1 {
                current
            } else {
                HashMap::new()
            };
            g.minute = minute;
        }
        g
    }

    /// Whether `addr` has used up its wrong secrets for the last minute.
    pub fn throttled(&self, addr: &str, now: i64) -> bool {
        let key = address_key(addr);
        let g = self.generations(now);
        let key = if g.current.contains_key(&key) || g.previous.contains_key(&key) {
            key
        } else if g.current.len() >= MAX_ADDRESSES {
            OVERFLOW.to_string()
        } else {
            return false;
        };
        let elapsed = now.rem_euclid(60_000);
        let current = u64::from(g.current.get(&key).copied().unwrap_or(0));
        let previous = u64::from(g.previous.get(&key).copied().unwrap_or(0));
        // previous × (60 s − elapsed) / 60 s, in whole counts.
        let weighted = previous * (60_000 - elapsed) as u64 / 60_000;
        current + weighted >= u64::from(FAILURES_PER_MINUTE)
    }

    /// Counts a wrong secret from `addr`.
    pub fn failed(&self, addr: &str, now: i64) {
        let key = address_key(addr);
        let mut g = self.generations(now);
        let key = if g.current.contains_key(&key) || g.current.len() < MAX_ADDRESSES {
            key
        } else {
            OVERFLOW.to_string()
        };
        let n = g.current.entry(key).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Addresses counted now (this minute's and the last).
    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.current.len() + g.previous.len()
    }
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
    // Throttled or not, a valid link is served (others behind the same proxy share the
    // address); throttled, anything else is a 429, and a malformed secret is not even
    // looked up.
    let throttled = state.failures.throttled(addr, now);
    if throttled && !partner::looks_like_secret(secret) {
        return Err(gone(StatusCode::TOO_MANY_REQUESTS));
    }
    match partner::open(&state.ui.app, secret, now).await {
        Ok(Opened::Valid(l)) => Ok(l),
        Ok(_) if throttled => Err(gone(StatusCode::TOO_MANY_REQUESTS)),
        Ok(Opened::Gone) => Err(gone(StatusCode::GONE)),
        Ok(Opened::Unknown) => {
            state.failures.failed(addr, now);
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

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[test]
    fn fifty_thousand_addresses_keep_the_map_bounded() {
        let f = Failures::default();
        let now = 1_000 * 60_000;
        for i in 0..50_000u32 {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            f.failed(&addr, now);
        }
        assert!(f.len() <= MAX_ADDRESSES + 1, "{}", f.len());
        // Past the cap, the newcomers share one count: they are throttled together.
        assert!(f.throttled("192.0.2.1", now));
        // The next minute: this minute's become last minute's; the one after, gone.
        f.failed("10.0.0.1", now + 60_000);
        assert!(f.len() <= 2 * MAX_ADDRESSES + 2);
        f.failed("10.0.0.1", now + 120_000);
        assert!(f.len() <= MAX_ADDRESSES + 2, "{}", f.len());
        f.failed("10.0.0.1", now + 10 * 60_000);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        let f = Failures::default();
        let now = 5 * 60_000;
        for i in 0..FAILURES_PER_MINUTE {
            f.failed(&format!("2001:db8:1:2::{i:x}"), now);
        }
        assert!(f.throttled("2001:db8:1:2:ffff::1", now));
        assert!(!f.throttled("2001:db8:1:3::1", now));
        assert!(!f.throttled("192.0.2.7", now));
        assert_eq!(address_key("::ffff:192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn last_minutes_failures_fade_out() {
        let f = Failures::default();
        let start = 7 * 60_000 + 59_000;
        for _ in 0..FAILURES_PER_MINUTE {
            f.failed("192.0.2.9", start);
        }
        assert!(f.throttled("192.0.2.9", start));
        // Just after the minute turns, still throttled; late in the next minute, not.
        assert!(f.throttled("192.0.2.9", start + 1_000));
        assert!(!f.throttled("192.0.2.9", start + 58_000));
        assert!(!f.throttled("192.0.2.9", start + 120_000));
    }
}
