//! The webhook page's "Replay" action: the admin picks a time range, carehook counts what a
//! replay would send (a dry run) and shows it, and only a second, confirmed post replays.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use carehook_core::ids::WebhookId;

use super::session::Posted;
use super::{Page, UiError, UiState, html, show_time};
use crate::service::replay::{self, Replay, Replayed};
use crate::time::{now_ms, parse_time};

pub fn router() -> Router<UiState> {
    Router::new().route("/webhooks/{id}/replay", post(replay_post))
}

#[derive(Template)]
#[template(path = "ui/replay.html")]
struct ConfirmPage {
    page: Page,
    id: WebhookId,
    name: String,
    since: String,
    until: String,
    since_shown: String,
    until_shown: String,
    all: bool,
    counts: Replayed,
    /// `(count, why)` of each skip.
    skips: Vec<(u64, String)>,
}

/// A time from the form: the browser's `datetime-local` (`2026-11-26T14:05`, read as UTC),
/// RFC 3339 or unix ms.
fn form_time(text: &str) -> Option<i64> {
    let t = text.trim();
    parse_time(t).or_else(|| {
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
            .ok()
            .map(|d| d.and_utc().timestamp_millis())
    })
}

async fn replay_post(
    State(state): State<UiState>,
    Path(id): Path<WebhookId>,
    posted: Posted,
) -> Result<Response, UiError> {
    let Posted { admin, form } = posted;
    // Another clinic's webhook is not there for a caller limited to clinics.
    crate::service::access::webhook(&state.app, &admin.caller, id).await?;
    let since_text = form.get("since").unwrap_or("").to_string();
    let until_text = form.get("until").unwrap_or("").to_string();
    let since = form_time(&since_text).ok_or_else(|| {
        UiError::BadRequest("Since: give a date and time (UTC) to replay from.".into())
    })?;
    let until = match until_text.trim() {
        "" => now_ms() + 1,
        t => form_time(t).ok_or_else(|| {
            UiError::BadRequest(
                "Until: give a date and time (UTC), or leave it empty for now.".into(),
            )
        })?,
    };
    let all = form.get("all") == Some("1");
    let confirmed = form.get("confirm") == Some("1");
    let ask = Replay {
        since,
        until,
        events: None,
        only_missing: !all,
        dry_run: !confirmed,
        cursor: None,
    };
    let actor = admin.actor();
    let counts = replay::replay(&state.app, &actor, id, ask).await?;
    if confirmed {
        let more = if counts.next_cursor.is_some() {
            " The range holds more events than one replay reads: replay again from where this one ended (or use `carehook webhooks replay`)."
        } else {
            ""
        };
        state
            .sessions
            .flash(
                &admin.key,
                "ok",
                format!(
                    "Replaying {} of {} events: {} new deliveries, sent under the webhook's rate limit.{more}",
                    counts.created, counts.scanned, counts.created
                ),
            )
            .await;
        return Ok(Redirect::to(&format!("/ui/deliveries?webhook_id={id}")).into_response());
    }
    let name = crate::service::webhooks::loaded(&state.app, id)
        .await?
        .row
        .name
        .clone();
    let skips = [
        (
            "skipped_already_delivered",
            counts.skipped_already_delivered,
        ),
        ("skipped_in_flight", counts.skipped_in_flight),
        ("skipped_expired", counts.skipped_expired),
        ("skipped_erased", counts.skipped_erased),
        ("skipped_conditions", counts.skipped_conditions),
        ("skipped_unreadable", counts.skipped_unreadable),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| (n, counts.reasons.get(k).cloned().unwrap_or_default()))
    .collect();
    let page = ConfirmPage {
        page: Page::new(&state, &admin, format!("Replay {name}"), "webhooks").await,
        id,
        name,
        since: since.to_string(),
        until: until.to_string(),
        since_shown: show_time(since),
        until_shown: show_time(until),
        all,
        counts,
        skips,
    };
    Ok(html(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_read_as_utc() {
        assert_eq!(form_time("1970-01-01T00:01"), Some(60_000));
        assert_eq!(form_time("1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(form_time("5"), Some(5));
        assert_eq!(form_time("yesterday"), None);
    }
}
