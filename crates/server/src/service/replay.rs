//! Replay: a webhook's stored events of a time range sent to it again, rendered through its
//! current templates (after fixing a template, or for a webhook added later).
//!
//! The rules:
//! - Only events the webhook subscribes to (or the named subset of them), whose snapshot is
//!   still kept and whose conditions hold now. Operational events (`carehook_*`) are never
//!   replayed: an alert is about its moment.
//! - `only_missing` (the default) skips events the webhook already has a succeeded delivery
//!   of. An event with a pending delivery to the webhook (waiting, retrying, in flight — a
//!   replay's included) is always skipped, so a second identical replay creates nothing; the
//!   store checks again under the webhook's lock when it writes.
//! - Retention: an event whose snapshot is gone (purged, erased) or older than the webhook's
//!   retention (its own `payloads.retention_days`, else the installation's) is skipped and
//!   counted.
//! - Cost is bounded: one call reads at most [`MAX_SCAN`] events, a page of [`PAGE`] at a time
//!   (one short write transaction each), and answers `next_cursor` when the range holds more;
//!   pass it back as `cursor` to go on. The CLI does so until the range is done.
//! - The deliveries are ordinary pending deliveries, due now: the dispatcher sends them under
//!   the webhook's rate limit and in-flight cap like any other.

use std::collections::BTreeMap;

use carehook_core::catalog;
use carehook_core::ids::{DeliveryId, EventId, WebhookId};
use carehook_store::{PurgeReason, ReplayQuery};
use serde::Serialize;
use serde_json::json;

use super::{Actor, Context, Error, Result};
use crate::time::{now_ms, rfc3339};

/// The most events one call reads.
pub const MAX_SCAN: u32 = 5_000;
/// Events read (and deliveries written) per step.
pub const PAGE: u32 = 500;
/// The most delivery ids an answer lists.
const LISTED_IDS: usize = 100;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// What to replay.
#[derive(Debug, Clone)]
pub struct Replay {
    pub since: i64,
    pub until: i64,
    /// Event names or aliases; `None`: every event the webhook subscribes to.
    pub events: Option<Vec<String>>,
    pub only_missing: bool,
    /// Count only; create nothing.
    pub dry_run: bool,
    /// `next_cursor` of the previous call over the same range.
    pub cursor: Option<String>,
}

/// What a replay did (or, dry run, would do).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Replayed {
    pub dry_run: bool,
    pub only_missing: bool,
    /// The events considered, canonical names.
    pub events: Vec<String>,
    /// Events read in the range.
    pub scanned: u64,
    /// Deliveries created (dry run: that would be).
    pub created: u64,
    pub skipped_already_delivered: u64,
    /// A delivery of it to this webhook is still pending (an earlier replay, or a retry).
    pub skipped_in_flight: u64,
    /// Its snapshot is past the retention, or was purged by it.
    pub skipped_expired: u64,
    /// Its patient's data was erased.
    pub skipped_erased: u64,
    /// The webhook's conditions do not hold on it.
    pub skipped_conditions: u64,
    /// Its snapshot cannot be opened with this master key.
    pub skipped_unreadable: u64,
    /// Why each non-zero skip count skipped, in words.
    pub reasons: BTreeMap<&'static str, String>,
    /// The deliveries created, up to 100.
    pub delivery_ids: Vec<DeliveryId>,
    /// Present when the range holds more than one call reads: pass it as `cursor`.
    pub next_cursor: Option<String>,
}

fn parse_cursor(c: &str) -> Result<(i64, EventId)> {
    let bad = || {
        Error::invalid(
            "cursor",
            "not a cursor this API gave; pass next_cursor back unchanged",
        )
    };
    let (at, id) = c.split_once('.').ok_or_else(bad)?;
    let at = at.parse::<i64>().map_err(|_| bad())?;
    let id = id.parse::<uuid::Uuid>().map_err(|_| bad())?;
    Ok((at, id.into()))
}

/// The canonical events a replay considers: the named ones (each one the webhook subscribes
/// to), or all its clinic events.
fn event_scope(w: &crate::registry::Loaded, named: Option<&[String]>) -> Result<Vec<String>> {
    let scope = &w.compiled.scope;
    let Some(named) = named.filter(|n| !n.is_empty()) else {
        return Ok(scope
            .events()
            .iter()
            .filter(|e| !e.is_operational())
            .map(|e| e.name.to_string())
            .collect());
    };
    if named.len() > 100 {
        return Err(Error::invalid("events", "at most 100 event names"));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, name) in named.iter().enumerate() {
        let field = format!("events[{i}]");
        let Some(e) = catalog::lookup(name) else {
            return Err(Error::invalid(
                field,
                format!(
                    "unknown event \"{name}\"{}",
                    catalog::did_you_mean(catalog::closest_name(
                        name,
                        catalog::events().iter().map(|e| e.name)
                    ))
                ),
            ));
        };
        if e.is_operational() {
            return Err(Error::invalid(
                field,
                format!(
                    "{} is an operational event; alerts are about their moment and are not replayed",
                    e.name
                ),
            ));
        }
        if !scope.includes(e.name) {
            return Err(Error::invalid(
                field,
                format!("this webhook does not subscribe to {}", e.name),
            ));
        }
        if !out.iter().any(|n| n == e.name) {
            out.push(e.name.to_string());
        }
    }
    Ok(out)
}

/// The time before which this webhook's event snapshots are past their retention; `None`
/// when nothing is purged by age here.
fn retention_cutoff(ctx: &Context, w: &crate::registry::Loaded, now: i64) -> Option<i64> {
    let days = w
        .compiled
        .spec
        .payloads
        .retention_days
        .or(ctx.retention_default_days)?;
    Some(now - i64::from(days) * DAY_MS)
}

/// Replays, or (dry run) counts; see the module's rules.
pub async fn replay(ctx: &Context, actor: &Actor, id: WebhookId, r: Replay) -> Result<Replayed> {
    if r.since >= r.until {
        return Err(Error::invalid("until", "until must be later than since"));
    }
    let w = super::webhooks::loaded(ctx, id).await?;
    if let Some(why) = &w.broken {
        return Err(Error::Conflict(format!("webhook {id} is broken: {why}")));
    }
    if !w.row.enabled && !r.dry_run {
        return Err(Error::Conflict(format!(
            "webhook {id} is disabled; enable it before replaying to it"
        )));
    }
    let events = event_scope(&w, r.events.as_deref())?;
    let mut after = r.cursor.as_deref().map(parse_cursor).transpose()?;
    let now = now_ms();
    let cutoff = retention_cutoff(ctx, &w, now);
    let mut out = Replayed {
        dry_run: r.dry_run,
        only_missing: r.only_missing,
        events: events.clone(),
        ..Replayed::default()
    };
    loop {
        let left = MAX_SCAN.saturating_sub(out.scanned as u32);
        if left == 0 {
            // More may remain: the caller goes on from here.
            out.next_cursor = after.map(|(at, id)| format!("{at}.{id}"));
            break;
        }
        let limit = PAGE.min(left);
        let page = ctx
            .store
            .replay_candidates(&ReplayQuery {
                webhook_id: id,
                event_types: events.clone(),
                since: r.since,
                until: r.until,
                after,
                limit,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.event_id));
        let full = page.len() as u32 == limit;
        out.scanned += page.len() as u64;
        let mut create: Vec<(DeliveryId, EventId, Option<String>)> = Vec::new();
        for c in page {
            if c.pending {
                out.skipped_in_flight += 1;
            } else if r.only_missing && c.succeeded {
                out.skipped_already_delivered += 1;
            } else if c.purge_reason == Some(PurgeReason::Erasure) {
                out.skipped_erased += 1;
            } else if c.purge_reason.is_some() || cutoff.is_some_and(|t| c.created_at < t) {
                out.skipped_expired += 1;
            } else if let Some(vars) = &c.vars {
                if w.compiled.wants(&c.event_type, vars) {
                    // An ordered webhook's replays keep its order: event order, each after
                    // what its key already has.
                    create.push((DeliveryId::new(), c.event_id, w.compiled.ordering_key(vars)));
                } else {
                    out.skipped_conditions += 1;
                }
            } else {
                out.skipped_unreadable += 1;
            }
        }
        if r.dry_run {
            out.created += create.len() as u64;
        } else if !create.is_empty() {
            let made = ctx
                .store
                .insert_replay(id, &create, r.only_missing, now)
                .await?;
            // Another replay (or a retry) got there between the read and the write.
            out.skipped_in_flight += (create.len() - made.len()) as u64;
            out.created += made.len() as u64;
            let room = LISTED_IDS.saturating_sub(out.delivery_ids.len());
            out.delivery_ids.extend(made.into_iter().take(room));
        }
        if !full {
            break;
        }
    }
    explain(&mut out, cutoff);
    if !r.dry_run {
        tracing::info!(webhook = %id, by = %actor, created = out.created, scanned = out.scanned, "events replayed");
        let details = json!({
            "since": rfc3339(r.since), "until": rfc3339(r.until), "events": out.events,
            "only_missing": r.only_missing, "scanned": out.scanned, "created": out.created,
            "skipped_already_delivered": out.skipped_already_delivered,
            "skipped_in_flight": out.skipped_in_flight, "skipped_expired": out.skipped_expired,
            "skipped_erased": out.skipped_erased, "skipped_conditions": out.skipped_conditions,
            "skipped_unreadable": out.skipped_unreadable,
        });
        super::audit::record(
            &*ctx.store,
            actor,
            "webhook.replay",
            &format!("webhook/{id}"),
            "ok",
            details,
        )
        .await;
    }
    Ok(out)
}

fn explain(out: &mut Replayed, cutoff: Option<i64>) {
    let mut say = |n: u64, key: &'static str, text: String| {
        if n > 0 {
            out.reasons.insert(key, text);
        }
    };
    say(
        out.skipped_already_delivered,
        "skipped_already_delivered",
        "the webhook already has a succeeded delivery of the event (replay with only_missing false, or --all, to send it again)".into(),
    );
    say(
        out.skipped_in_flight,
        "skipped_in_flight",
        "a delivery of the event to this webhook is still pending (an earlier replay, or a retry); it is not doubled".into(),
    );
    say(
        out.skipped_expired,
        "skipped_expired",
        match cutoff {
            Some(t) => format!(
                "the event's stored data is gone or past the webhook's retention (kept since {}), so it cannot be rendered",
                rfc3339(t)
            ),
            None => "the event's stored data was purged, so it cannot be rendered".into(),
        },
    );
    say(
        out.skipped_erased,
        "skipped_erased",
        "the patient's data was erased on request".into(),
    );
    say(
        out.skipped_conditions,
        "skipped_conditions",
        "the webhook's conditions do not hold on the event".into(),
    );
    say(
        out.skipped_unreadable,
        "skipped_unreadable",
        "the event's stored data cannot be opened with this master key".into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_name_the_field() {
        let id = EventId::new();
        let (at, back) = parse_cursor(&format!("42.{id}")).unwrap();
        assert_eq!((at, back), (42, id));
        for bad in ["", "42", "x.y", "42.not-a-uuid"] {
            assert_eq!(parse_cursor(bad).unwrap_err().field(), Some("cursor"));
        }
    }
}
