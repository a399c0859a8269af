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

pub async fn list(ctx: &Context, limit: u32, cursor: Option<String>) -> Result<Page<EventRow>> {
    Ok(ctx.store.list_events(limit, cursor).await?)
}

pub async fn get(ctx: &Context, id: EventId) -> Result<EventRow> {
    ctx.store
        .get_event(id)
        .await?
        .ok_or(Error::NotFound("event"))
}
