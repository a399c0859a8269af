//! The delivery log: filters (webhook, event, status, time), one delivery
//! with each attempt's request and response, and retries.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use carehook_core::catalog;
use carehook_core::ids::{DeliveryId, EventId, WebhookId};
use carehook_store::{DeliveryFilter, DeliveryStatus};
use serde::Deserialize;

use super::dashboard::{status_class, status_label};
use super::form::FormData;
use super::session::{Admin, Posted};
use super::{Page, UiError, UiState, html};
use crate::time::now_ms;

pub fn router() -> Router<UiState> {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/retry-failed", post(retry_failed))
        .route("/deliveries/{id}", get(detail))
        .route("/deliveries/{id}/retry", post(retry))
}

/// A time typed in a filter: `datetime-local` or a date, read in the
/// clinic's time zone (as the log shows times), RFC 3339 or unix
/// milliseconds. Empty is none.
fn parse_when(field: &str, text: &str, zone: chrono_tz::Tz) -> Result<Option<i64>, String> {
    use chrono::TimeZone as _;
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    // A local time skipped by a clock change reads as the hour after it.
    let local = |n: chrono::NaiveDateTime| {
        zone.from_local_datetime(&n)
            .earliest()
            .or_else(|| {
                zone.from_local_datetime(&(n + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map_or_else(
                || n.and_utc().timestamp_millis(),
                |at| at.timestamp_millis(),
            )
    };
    for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(Some(local(n)));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(local));
    }
    crate::time::parse_time(t)
        .map(Some)
        .ok_or_else(|| format!("{field}: \"{t}\" is not a date and time like 2026-11-27T09:30"))
}

#[derive(Debug, Default, Deserialize)]
struct Filters {
    #[serde(default)]
    webhook_id: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    cursor: String,
    /// A patient's name, or a patient or appointment id.
    #[serde(default)]
    q: String,
}

impl Filters {
    /// The filters as a query string, without the cursor.
    fn query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("webhook_id", &self.webhook_id),
                ("event", &self.event),
                ("status", &self.status),
                ("since", &self.since),
                ("until", &self.until),
                ("q", &self.q),
            ])
            .finish()
    }
}

pub(super) struct Row {
    pub(super) id: DeliveryId,
    pub(super) created: super::When,
    /// The patient and the appointment the event was about, if any.
    pub(super) patient: String,
    pub(super) appointment: String,
    pub(super) webhook: String,
    pub(super) event: String,
    /// The event in words ("An appointment was booked").
    pub(super) event_human: &'static str,
    pub(super) status: String,
    /// The status as shown (`superseded · not sent`).
    pub(super) label: &'static str,
    pub(super) class: &'static str,
    pub(super) attempts: i64,
    pub(super) last: String,
    pub(super) test: bool,
}

#[derive(Template)]
#[template(path = "ui/deliveries.html")]
struct LogPage {
    page: Page,
    f: Filters,
    error: String,
    rows: Vec<Row>,
    next: Option<String>,
    webhooks: Vec<(WebhookId, String)>,
    /// (name, in words)
    events: Vec<(&'static str, &'static str)>,
    /// The filters, to come back to after a retry.
    here: String,
    /// The clinic's time zone, as the times are shown.
    zone: String,
    /// With the log filtered by a webhook: its name, how many failed deliveries a bulk
    /// retry of the range would send (capped), and how many it would skip (event purged).
    retry_target: Option<(String, String, u64)>,
}

impl LogPage {
    fn selected(&self, a: &str, b: &str) -> &'static str {
        if a == b { "selected" } else { "" }
    }

    /// The filters in force, in words, for the folded filters' summary: the
    /// fold stays closed so the results stay in view on a phone.
    fn active_filters(&self) -> String {
        let f = &self.f;
        let mut on = Vec::new();
        if !f.webhook_id.is_empty() {
            let name = self
                .webhooks
                .iter()
                .find(|(w, _)| w.to_string() == f.webhook_id)
                .map_or("(deleted)", |(_, n)| n.as_str());
            on.push(format!("webhook {name}"));
        }
        if !f.event.is_empty() {
            let human = human_event(&f.event);
            on.push(if human.is_empty() {
                f.event.clone()
            } else {
                human.to_lowercase()
            });
        }
        if !f.status.is_empty() {
            on.push(f.status.clone());
        }
        if !f.since.is_empty() {
            on.push(format!("from {}", f.since.replace('T', " ")));
        }
        if !f.until.is_empty() {
            on.push(format!("to {}", f.until.replace('T', " ")));
        }
        on.join(", ")
    }

    /// How many rows this page shows, in words ("50+ deliveries" when there are more).
    fn count(&self) -> String {
        let n = self.rows.len();
        format!(
            "{n}{} deliver{}",
            if self.next.is_some() { "+" } else { "" },
            if n == 1 && self.next.is_none() {
                "y"
            } else {
                "ies"
            }
        )
    }
}

/// The webhooks the admin may see, by name (a limited admin sees only its clinics').
async fn webhook_names(
    state: &UiState,
    admin: &Admin,
) -> Result<Vec<(WebhookId, String)>, UiError> {
    if admin.caller.is_limited() {
        return Ok(crate::service::webhooks::list(&state.app)
            .await?
            .iter()
            .filter(|w| admin.caller.sees_webhook(w))
            .map(|w| (w.row.id, w.row.name.clone()))
            .collect());
    }
    Ok(state
        .app
        .store
        .list_webhooks()
        .await
        .map_err(UiError::internal)?
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect())
}

async fn list(
    State(state): State<UiState>,
    admin: Admin,
    Query(f): Query<Filters>,
) -> Result<Response, UiError> {
    let webhooks = webhook_names(&state, &admin).await?;
    let mut error = String::new();
    let mut filter = DeliveryFilter {
        limit: 50,
        cursor: Some(f.cursor.clone()).filter(|c| !c.is_empty()),
        webhook_ids: admin
            .caller
            .is_limited()
            .then(|| webhooks.iter().map(|(id, _)| *id).collect()),
        ..DeliveryFilter::default()
    };
    if !f.webhook_id.is_empty() {
        match f.webhook_id.parse() {
            Ok(id)
                if filter
                    .webhook_ids
                    .as_ref()
                    .is_some_and(|ids| !ids.contains(&id)) =>
            {
                return Err(UiError::NotFound);
            }
            Ok(id) => filter.webhook_id = Some(id),
            Err(_) => error = "That webhook id is not valid.".into(),
        }
    }
    if !f.status.is_empty() {
        match f.status.parse::<DeliveryStatus>() {
            Ok(s) => filter.status = Some(s),
            Err(_) => error = format!("Unknown status \"{}\".", f.status),
        }
    }
    if !f.q.trim().is_empty() {
        filter.search = Some(f.q.trim().to_string());
    }
    if !f.event.is_empty() {
        match catalog::canonical_name(&f.event) {
            Some(e) => filter.event_type = Some(e.to_string()),
            None => error = format!("Unknown event \"{}\".", f.event),
        }
    }
    let zone = super::clinic_zone(&state).await;
    match (
        parse_when("From", &f.since, zone),
        parse_when("To", &f.until, zone),
    ) {
        (Ok(since), Ok(until)) => {
            filter.since = since;
            filter.until = until;
        }
        (Err(e), _) | (_, Err(e)) => error = e,
    }
    let retry_target = match (&filter.webhook_id, error.is_empty()) {
        (Some(id), true) => {
            let failed = state
                .app
                .store
                .count_failed(
                    *id,
                    filter.since.unwrap_or(0),
                    filter.until.unwrap_or(i64::MAX),
                    RETRY_COUNT_CAP,
                )
                .await
                .map_err(UiError::internal)?;
            let count = if failed.more {
                format!("at least {}", failed.retryable)
            } else {
                failed.retryable.to_string()
            };
            let skipped = failed.purged;
            let name = webhooks
                .iter()
                .find(|(w, _)| w == id)
                .map_or_else(|| "(deleted)".to_string(), |(_, n)| n.clone());
            Some((name, count, skipped))
        }
        _ => None,
    };
    let (rows, next) = if error.is_empty() {
        let page = match state.app.store.list_deliveries(filter).await {
            Ok(p) => p,
            Err(e) if e.is_bad_cursor() => {
                error = "That page of the log no longer exists; start from the newest.".into();
                carehook_store::Page {
                    items: Vec::new(),
                    next_cursor: None,
                }
            }
            // A filter the store refused (a search over 200 characters): said on the page.
            Err(carehook_store::StoreError::Rejected(f)) => {
                error = format!("The {}: {}.", f.field, f.message);
                carehook_store::Page {
                    items: Vec::new(),
                    next_cursor: None,
                }
            }
            Err(e) => return Err(UiError::internal(e)),
        };
        let rows = log_rows(
            &state,
            &page.items,
            &webhooks,
            zone,
            may_see_patient_data(&admin),
        )
        .await?;
        (rows, page.next_cursor)
    } else {
        (Vec::new(), None)
    };
    let here = format!("/ui/deliveries?{}", f.query());
    Ok(html(&LogPage {
        page: Page::new(&state, &admin, "Delivery log", "deliveries").await,
        error,
        rows,
        next,
        webhooks,
        events: catalog::events()
            .iter()
            .map(|e| (e.name, e.description.trim_end_matches('.')))
            .collect(),
        here,
        zone: zone.name().to_string(),
        retry_target,
        f,
    }))
}

/// Whether this viewer may see who a delivery was about (patient names, appointment times):
/// a caller allowed bodies and event data (see `service::access::Principal::bodies`);
/// [`log_rows`] renders accordingly.
fn may_see_patient_data(admin: &Admin) -> bool {
    admin.caller.bodies
}

/// The log's rows, as the viewer may see them: with `patient_data`, each row's patient and
/// appointment from its event's snapshot (one read per event on the page, at most 50);
/// without, no snapshot is read and the row names only the appointment's number.
pub(super) async fn log_rows(
    state: &UiState,
    items: &[carehook_store::DeliveryRow],
    webhooks: &[(WebhookId, String)],
    zone: chrono_tz::Tz,
    patient_data: bool,
) -> Result<Vec<Row>, UiError> {
    let name = |id: WebhookId| {
        webhooks
            .iter()
            .find(|(w, _)| *w == id)
            .map_or_else(|| "(deleted)".to_string(), |(_, n)| n.clone())
    };
    let mut about: std::collections::HashMap<EventId, (String, String)> = Default::default();
    if patient_data {
        for d in items {
            if about.contains_key(&d.event_id) {
                continue;
            }
            let vars = state
                .app
                .store
                .get_event(d.event_id)
                .await
                .map_err(UiError::internal)?
                .map(|e| e.vars)
                .unwrap_or_default();
            about.insert(d.event_id, who_and_what(&vars));
        }
    }
    let now = now_ms();
    Ok(items
        .iter()
        .map(|d| {
            let (patient, appointment) = about.get(&d.event_id).cloned().unwrap_or_default();
            Row {
                id: d.id,
                created: super::When::new(d.created_at, now, zone),
                patient: if patient_data {
                    patient
                } else {
                    "hidden".into()
                },
                appointment,
                webhook: name(d.webhook_id),
                event: d.event_type.clone(),
                event_human: human_event(&d.event_type),
                status: d.status.to_string(),
                label: status_label(d.status),
                class: status_class(d.status),
                attempts: d.attempts,
                last: {
                    let last = match (d.last_status, &d.last_error) {
                        (_, Some(e)) => e.clone(),
                        (Some(s), None) => format!("HTTP {s}"),
                        (None, None) => String::new(),
                    };
                    if d.status == DeliveryStatus::Pending && d.attempts > 0 {
                        let next = super::When::new(d.next_attempt_at, now, zone);
                        format!("{last}; next try {} ({})", next.local, next.ago)
                    } else if d.status == DeliveryStatus::Pending && d.next_attempt_at > now {
                        // A scheduled delivery (reminder) waiting for its time.
                        let at = super::When::new(d.next_attempt_at, now, zone);
                        format!("scheduled for {} ({})", at.local, at.ago)
                    } else {
                        last
                    }
                },
                test: d.is_test,
            }
        })
        .collect())
}

/// An event's name in words, from the catalog; empty for one it does not know.
pub(super) fn human_event(name: &str) -> &'static str {
    catalog::lookup(name).map_or("", |e| e.description.trim_end_matches('.'))
}

/// How many failed deliveries the bulk-retry count reads at most.
const RETRY_COUNT_CAP: u32 = 1000;

/// The patient ("Maria O'Brien · #42") and the appointment ("#318 · 2026-12-01
/// 09:30") an event is about, from its snapshot; empty when it has none.
fn who_and_what(vars: &carehook_core::Vars) -> (String, String) {
    let get = |k: &str| vars.get(k).map(String::as_str).unwrap_or("").trim();
    let patient = match (get("patient_name"), get("patient_id")) {
        ("", "") => String::new(),
        (name, "") => name.to_string(),
        ("", id) => format!("patient #{id}"),
        (name, id) => format!("{name} · #{id}"),
    };
    let when = [get("appointment_date"), get("appointment_start_time")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let appointment = match (get("appointment_id"), when.as_str()) {
        ("", _) => String::new(),
        (id, "") => format!("#{id}"),
        (id, when) => format!("#{id} · {when}"),
    };
    (patient, appointment)
}

struct AttemptView {
    number: i64,
    started: super::When,
    duration_ms: i64,
    outcome: String,
    class: &'static str,
    error: String,
    method: String,
    url: String,
    request_headers: Vec<(String, String)>,
    request_body: String,
    status: String,
    response_headers: Vec<(String, String)>,
    response_body: String,
}

#[derive(Template)]
#[template(path = "ui/delivery.html")]
struct DetailPage {
    page: Page,
    id: DeliveryId,
    webhook_id: WebhookId,
    webhook: String,
    event: String,
    event_human: &'static str,
    event_id: EventId,
    status: String,
    label: &'static str,
    class: &'static str,
    created: super::When,
    next_attempt: Option<super::When>,
    /// Why a superseded delivery was withdrawn.
    withdrawn: String,
    test: bool,
    /// Who and what the event was about, as the log's row says it.
    patient: String,
    appointment: String,
    data: Vec<(String, String)>,
    attempts: Vec<AttemptView>,
    /// Its number in its ordering key; empty for an unordered delivery.
    sequence: String,
    /// While held back: the delivery it waits for; empty otherwise.
    waiting_for: String,
}

fn pairs(v: &serde_json::Value) -> Vec<(String, String)> {
    match v {
        // The request's headers: [[name, value], …]
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string())))
            .collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or(v.to_string(), str::to_string)))
            .collect(),
        _ => Vec::new(),
    }
}

async fn detail(
    State(state): State<UiState>,
    admin: Admin,
    super::Id(id): super::Id<DeliveryId>,
) -> Result<Response, UiError> {
    let store = &state.app.store;
    // Reads of bodies and snapshots go through the service, which audits them.
    let (d, attempts) = crate::service::deliveries::get(&state.app, &admin.actor(), id).await?;
    let ordering = crate::service::deliveries::ordering(&state.app, id).await?;
    let event = crate::service::events::get(&state.app, &admin.actor(), d.event_id)
        .await
        .ok();
    let zone = super::clinic_zone(&state).await;
    let now = now_ms();
    let webhook = store
        .get_webhook(d.webhook_id)
        .await
        .map_err(UiError::internal)?
        .map_or_else(|| "(deleted)".to_string(), |w| w.name);
    let (patient, appointment) = match &event {
        Some(e) if may_see_patient_data(&admin) => who_and_what(&e.vars),
        _ => Default::default(),
    };
    let attempts = attempts
        .iter()
        .map(|a| AttemptView {
            number: a.attempt_no,
            started: super::When::new(a.started_at, now, zone),
            duration_ms: a.duration_ms,
            outcome: a.outcome.to_string(),
            class: match a.outcome {
                carehook_store::AttemptOutcome::Succeeded => "ok",
                carehook_store::AttemptOutcome::Retry => "wait",
                _ => "bad",
            },
            error: a.error.clone().unwrap_or_default(),
            method: a.request["method"].as_str().unwrap_or("").into(),
            url: a.request["url"].as_str().unwrap_or("").into(),
            request_headers: pairs(&a.request["headers"]),
            request_body: a.request["body"].as_str().unwrap_or("").into(),
            status: a.response_status.map(|s| s.to_string()).unwrap_or_default(),
            response_headers: a.response_headers.as_ref().map(pairs).unwrap_or_default(),
            response_body: a.response_body.clone().unwrap_or_default(),
        })
        .collect();
    Ok(html(&DetailPage {
        page: Page::new(&state, &admin, format!("Delivery {id}"), "deliveries").await,
        id,
        webhook_id: d.webhook_id,
        webhook,
        event: d.event_type.clone(),
        event_human: human_event(&d.event_type),
        event_id: d.event_id,
        status: d.status.to_string(),
        label: status_label(d.status),
        class: status_class(d.status),
        created: super::When::new(d.created_at, now, zone),
        next_attempt: (d.status == DeliveryStatus::Pending)
            .then(|| super::When::new(d.next_attempt_at, now, zone)),
        withdrawn: if d.status == DeliveryStatus::Superseded {
            d.last_error.clone().unwrap_or_default()
        } else {
            String::new()
        },
        test: d.is_test,
        patient,
        appointment,
        data: event
            .map(|e| e.vars.into_iter().collect())
            .unwrap_or_default(),
        attempts,
        sequence: ordering
            .as_ref()
            .map(|o| o.place.sequence.to_string())
            .unwrap_or_default(),
        waiting_for: ordering
            .and_then(|o| o.waiting_for)
            .map(|w| w.to_string())
            .unwrap_or_default(),
    }))
}

async fn retry(
    State(state): State<UiState>,
    super::Id(id): super::Id<DeliveryId>,
    posted: Posted,
) -> Result<Response, UiError> {
    crate::service::deliveries::retry(&state.app, &posted.admin.actor(), id).await?;
    state
        .sessions
        .flash(&posted.admin.key, "ok", "Queued to be sent again now.")
        .await;
    Ok(Redirect::to(&format!("/ui/deliveries/{id}")).into_response())
}

async fn retry_failed(State(state): State<UiState>, posted: Posted) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    let back = super::safe_next(form.get("back"));
    let zone = super::clinic_zone(&state).await;
    let range = match parse_range(&form, zone) {
        Ok((webhook, since, until)) => {
            crate::service::access::webhook(&state.app, &admin.caller, webhook).await?;
            Ok((webhook, since, until))
        }
        Err(e) => Err(e),
    };
    let outcome = match range {
        Ok((webhook, since, until)) => crate::service::webhooks::retry_failed(
            &state.app,
            &admin.actor(),
            webhook,
            since,
            until,
        )
        .await
        .map(|ids| ids.len())
        .map_err(|e| e.message()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(0) => {
            state
                .sessions
                .flash(&admin.key, "ok", "No failed deliveries in that range.")
                .await
        }
        Ok(n) => {
            state
                .sessions
                .flash(
                    &admin.key,
                    "ok",
                    format!(
                        "{n} failed deliver{} queued to be sent again now.",
                        if n == 1 { "y" } else { "ies" }
                    ),
                )
                .await
        }
        Err(e) => state.sessions.flash(&admin.key, "error", e).await,
    }
    Ok(Redirect::to(&back).into_response())
}

fn parse_range(form: &FormData, zone: chrono_tz::Tz) -> Result<(WebhookId, i64, i64), String> {
    let webhook = form
        .get("webhook_id")
        .and_then(|w| w.parse::<WebhookId>().ok())
        .ok_or("Choose the webhook whose failed deliveries to retry.")?;
    let since = parse_when("From", form.get("since").unwrap_or(""), zone)?.unwrap_or(0);
    let until = parse_when("To", form.get("until").unwrap_or(""), zone)?.unwrap_or(now_ms() + 1);
    Ok((webhook, since, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_times_read_in_the_clinic_zone() {
        let utc = chrono_tz::UTC;
        assert_eq!(parse_when("From", "", utc).unwrap(), None);
        assert_eq!(
            parse_when("From", "1970-01-01T00:01", utc).unwrap(),
            Some(60_000)
        );
        assert_eq!(
            parse_when("From", "1970-01-02", utc).unwrap(),
            Some(86_400_000)
        );
        assert!(parse_when("From", "yesterday", utc).is_err());
        // London is an hour ahead of UTC in summer: 10:00 there is 09:00 UTC.
        let london = chrono_tz::Europe::London;
        assert_eq!(
            parse_when("From", "2026-07-01T10:00", london).unwrap(),
            parse_when("From", "2026-07-01T09:00", utc).unwrap()
        );
        // 01:30 on the spring-forward night does not exist there: read as 02:30 (= 01:30 UTC).
        assert_eq!(
            parse_when("From", "2026-03-29T01:30", london).unwrap(),
            parse_when("From", "2026-03-29T01:30", utc).unwrap()
        );
    }
}
