//! Events pushed by a clinic system (`POST /events`), and the event log.

use carehook_core::catalog;
use carehook_core::ids::EventId;
use carehook_store::{EventRow, NewEvent, Page, Recorded};

use super::{Actor, Context, Error, Result};
use crate::intake::{match_deliveries, snapshot_from_data};
use crate::time::now_ms;

/// An event as a clinic system pushes it.
#[derive(Debug)]
pub struct Push {
    /// An event name or alias from the catalog.
    pub event: String,
    /// The event's variables; carehook fills in its own.
    pub data: serde_json::Map<String, serde_json::Value>,
    /// The same key again answers the first event, recording nothing.
    pub idempotency_key: Option<String>,
}

/// Records an event and its deliveries (one per webhook that wants it),
/// durably; answers once committed. Its canonical name comes back with it.
pub async fn push(ctx: &Context, _actor: &Actor, p: Push) -> Result<(&'static str, Recorded)> {
    let event = catalog::lookup(&p.event).ok_or_else(|| {
        let names = catalog::events().iter().map(|e| e.name);
        Error::invalid(
            "event",
            format!(
                "unknown event \"{}\"{}; GET /api/v1/event-types lists them",
                p.event,
                catalog::did_you_mean(catalog::closest_name(&p.event, names))
            ),
        )
    })?;
    if let Some(key) = &p.idempotency_key
        && (key.is_empty() || key.len() > 255)
    {
        return Err(Error::invalid(
            "idempotency_key",
            "an idempotency key must be 1 to 255 characters",
        ));
    }
    let id = EventId::new();
    let vars = snapshot_from_data(event, id, &p.data)?;
    let now = now_ms();
    let deliveries = match_deliveries(&ctx.registry, event, &vars, now);
    let recorded = ctx
        .intake
        .record(NewEvent {
            id,
            event_type: event.name.to_string(),
            vars,
            idempotency_key: p.idempotency_key,
            created_at: now,
            deliveries,
        })
        .await?;
    Ok((event.name, recorded))
}

/// A page of events with their snapshots: a read of patient data, audited with the ids read.
pub async fn list(
    ctx: &Context,
    actor: &Actor,
    limit: u32,
    cursor: Option<String>,
) -> Result<Page<EventRow>> {
    let page = ctx.store.list_events(limit, cursor).await?;
    let ids: Vec<String> = page.items.iter().map(|e| e.id.to_string()).collect();
    super::audit::must_record(
        &*ctx.store,
        actor,
        "event.list",
        "events",
        "ok",
        serde_json::json!({ "count": ids.len(), "event_ids": ids }),
    )
    .await?;
    Ok(page)
}

/// An event with its snapshot: audited (and refused when it cannot be).
pub async fn get(ctx: &Context, actor: &Actor, id: EventId) -> Result<EventRow> {
    let e = ctx
        .store
        .get_event(id)
        .await?
        .ok_or(Error::NotFound("event"))?;
    super::audit::must_record(
        &*ctx.store,
        actor,
        "event.read",
        &format!("event/{id}"),
        "ok",
        serde_json::json!({}),
    )
    .await?;
    Ok(e)
}
