//! The dashboard: each webhook's health at a glance, and deliveries over
//! the last 24 hours by outcome, drawn as an inline SVG on the server.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use carehook_core::ids::WebhookId;
use carehook_store::{DeliveryFilter, DeliveryRow, DeliveryStatus, MAX_PAGE};

use super::session::Admin;
use super::{Page, UiError, UiState, html};
use crate::time::now_ms;

/// The share of deliveries that arrived, and beside it how many attempts
/// failed on the way: "100 %" alone would hide a receiver that needed
/// three tries for each request.
fn honest_rate(w: &carehook_store::StatsWindow) -> String {
    let Some(rate) = w.success_rate else {
        return "—".into();
    };
    let failed_attempts = w.attempts_failed + w.attempts_retry + w.attempts_gave_up;
    let attempts = failed_attempts + w.attempts_succeeded;
    if failed_attempts == 0 {
        format!("{:.0} %", rate * 100.0)
    } else {
        format!(
            "{:.0} % delivered; {failed_attempts} of {attempts} attempt{} failed",
            rate * 100.0,
            if attempts == 1 { "" } else { "s" }
        )
    }
}

const HOUR_MS: i64 = 3600 * 1000;
/// The chart reads at most this many deliveries of the last 24 hours.
const CHART_ROWS: usize = 20_000;

pub struct Health {
    pub id: WebhookId,
    pub name: String,
    pub enabled: bool,
    pub disabled_reason: String,
    /// Why it cannot be sent (secrets this key cannot open); empty if it can.
    pub broken: String,
    /// `97 %`, or `—` when nothing finished.
    pub success_rate: String,
    pub failed_24h: u64,
    /// Deliveries of the last 24 h not finished yet.
    pub retrying: u64,
    pub last: String,
    /// `ok`, `bad` or `wait`: the last delivery's colour.
    pub last_class: &'static str,
}

/// One operational event (`carehook_*`) as the dashboard lists it.
pub struct AlertLine {
    pub event: String,
    /// The event in words, from the catalog ("A webhook started failing").
    pub event_human: &'static str,
    pub at: super::When,
    pub webhook_id: String,
    pub webhook_name: String,
    pub reason: String,
}

/// How many of the latest alerts the dashboard shows.
const ALERTS_SHOWN: u32 = 10;

pub struct Bar {
    pub x: u32,
    pub label: String,
    pub tip: String,
    /// (y, height, class) per stacked part.
    pub parts: Vec<(u32, u32, &'static str)>,
}

#[derive(Template)]
#[template(path = "ui/dashboard.html")]
struct DashboardPage {
    page: Page,
    webhooks: Vec<Health>,
    bars: Vec<Bar>,
    chart_max: u64,
    totals: (u64, u64, u64),
    truncated: bool,
    alerts: Vec<AlertLine>,
}

/// The chart's frame, in SVG units.
pub const CHART_TOP: u32 = 10;
pub const CHART_HEIGHT: u32 = 160;

pub async fn page(State(state): State<UiState>, admin: Admin) -> Result<Response, UiError> {
    let app = &state.app;
    let now = now_ms();
    // 24 whole hours, the last one the current hour.
    let since = (now / HOUR_MS - 23) * HOUR_MS;
    let visible = crate::service::access::visible_webhooks(app, &admin.caller).await?;
    let recent = recent_deliveries(&state, since, visible).await?;
    let truncated = recent.len() >= CHART_ROWS;

    // Hour buckets, oldest first; the last one is the current hour.
    let mut buckets = vec![(0u64, 0u64, 0u64); 24];
    let mut totals = (0, 0, 0);
    for d in recent.iter().filter(|d| !d.is_test) {
        let i = ((d.created_at - since) / HOUR_MS).clamp(0, 23) as usize;
        match d.status {
            DeliveryStatus::Succeeded => {
                buckets[i].0 += 1;
                totals.0 += 1;
            }
            DeliveryStatus::Failed => {
                buckets[i].1 += 1;
                totals.1 += 1;
            }
            DeliveryStatus::Pending => {
                buckets[i].2 += 1;
                totals.2 += 1;
            }
            // Withdrawn before sending (a cancelled appointment's reminder): neither a
            // success nor a failure, so not on the chart.
            DeliveryStatus::Superseded => {}
        }
    }

    // Each webhook's numbers are the store's (`GET /webhooks/{id}/stats`):
    // exact, whatever the chart could read. Test sends are left out.
    let mut loaded = crate::service::webhooks::list(app).await?;
    loaded.retain(|w| admin.caller.sees_webhook(w));
    let mut webhooks = Vec::with_capacity(loaded.len());
    for w in loaded {
        let row = &w.row;
        let stats = app
            .store
            .webhook_stats(row.id, now)
            .await
            .map_err(UiError::internal)?;
        let day = stats.windows.iter().find(|w| w.window == "24h");
        webhooks.push(Health {
            id: row.id,
            name: row.name.clone(),
            enabled: row.enabled,
            disabled_reason: super::disabled_note(&w),
            broken: w.broken.clone().unwrap_or_default(),
            success_rate: day.map_or("—".into(), honest_rate),
            failed_24h: day.map_or(0, |w| w.failed),
            retrying: day.map_or(0, |w| w.pending),
            last_class: stats.last.as_ref().map_or("", |l| status_class(l.status)),
            last: stats.last.as_ref().map_or("never".into(), |l| {
                let http = l
                    .http_status
                    .map(|s| format!(" (HTTP {s})"))
                    .unwrap_or_default();
                format!(
                    "{}{http} · {}",
                    l.status,
                    super::ago(crate::time::now_ms() - l.at)
                )
            }),
        });
    }

    let chart_max = buckets
        .iter()
        .map(|(s, f, p)| s + f + p)
        .max()
        .unwrap_or(0)
        .max(1);
    let bars = buckets
        .iter()
        .enumerate()
        .map(|(i, &(s, f, p))| {
            let start = since + i as i64 * HOUR_MS;
            let mut y = CHART_TOP + CHART_HEIGHT;
            let mut parts = Vec::new();
            for (n, class) in [(s, "ok"), (f, "bad"), (p, "wait")] {
                if n > 0 {
                    let h = ((n * CHART_HEIGHT as u64) / chart_max).max(2) as u32;
                    y -= h.min(y - CHART_TOP);
                    parts.push((y, h, class));
                }
            }
            Bar {
                x: 40 + i as u32 * 28,
                label: if i % 4 == 0 {
                    crate::time::from_ms(start).format("%H:%M").to_string()
                } else {
                    String::new()
                },
                tip: format!(
                    "{} to {}: {s} succeeded, {f} failed, {p} pending",
                    crate::time::from_ms(start).format("%H:%M"),
                    crate::time::from_ms(start + HOUR_MS).format("%H:%M UTC")
                ),
                parts,
            }
        })
        .collect();

    // A caller limited to clinics sees the alerts of its clinics' webhooks only.
    let (now, zone) = (crate::time::now_ms(), super::clinic_zone(&state).await);
    let alerts = crate::service::access::alerts(app, &admin.caller, ALERTS_SHOWN)
        .await?
        .into_iter()
        .map(|e| {
            let get = |k: &str| e.vars.get(k).cloned().unwrap_or_default();
            AlertLine {
                at: super::When::new(e.created_at, now, zone),
                event_human: carehook_core::catalog::lookup(&e.event_type)
                    .map_or("", |c| c.description.trim_end_matches('.')),
                webhook_id: get("webhook_id"),
                webhook_name: get("webhook_name"),
                reason: get("reason"),
                event: e.event_type,
            }
        })
        .collect();
    let page = DashboardPage {
        page: Page::new(&state, &admin, "Dashboard", "dashboard").await,
        alerts,
        webhooks,
        bars,
        chart_max,
        totals,
        truncated,
    };
    Ok(html(&page))
}

/// Deliveries since `since`, of `webhooks` only when given (a limited admin's).
async fn recent_deliveries(
    state: &UiState,
    since: i64,
    webhooks: Option<Vec<WebhookId>>,
) -> Result<Vec<DeliveryRow>, UiError> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = state
            .app
            .store
            .list_deliveries(DeliveryFilter {
                since: Some(since),
                webhook_ids: webhooks.clone(),
                limit: MAX_PAGE,
                cursor,
                ..DeliveryFilter::default()
            })
            .await
            .map_err(UiError::internal)?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) if out.len() < CHART_ROWS => cursor = Some(c),
            _ => return Ok(out),
        }
    }
}

/// The webhook's newest delivery (test sends included).
pub async fn last_delivery(
    state: &UiState,
    webhook: WebhookId,
) -> Result<Option<DeliveryRow>, UiError> {
    Ok(state
        .app
        .store
        .list_deliveries(DeliveryFilter {
            webhook_id: Some(webhook),
            limit: 1,
            ..DeliveryFilter::default()
        })
        .await
        .map_err(UiError::internal)?
        .items
        .into_iter()
        .next())
}

pub fn status_class(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Succeeded => "ok",
        DeliveryStatus::Failed => "bad",
        DeliveryStatus::Pending => "wait",
        DeliveryStatus::Superseded => "off",
    }
}

/// A status as the log shows it: `superseded` says what it means.
pub fn status_label(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Superseded => "superseded · not sent",
        other => other.as_str(),
    }
}

/// `succeeded (HTTP 200) · 2026-11-27 10:05 UTC`
pub fn describe_last(d: &DeliveryRow) -> String {
    let http = d
        .last_status
        .map(|s| format!(" (HTTP {s})"))
        .unwrap_or_default();
    let test = if d.is_test { ", test" } else { "" };
    // How long ago reads at a glance; the log has the exact time.
    format!(
        "{}{http}{test} · {}",
        d.status,
        super::ago(crate::time::now_ms() - d.updated_at)
    )
}
