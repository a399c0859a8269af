//! Events pushed by a clinic system (`POST /events`), and the event log.

use carehook_core::catalog;
use carehook_core::ids::EventId;
use carehook_store::{EventRow, NewEvent, Page, Recorded};

use super::{Actor, Context, Error, Result};
use crate::intake::{fill_appointment_start, match_deliveries, reschedule_for, snapshot_from_data};
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

/// A variable a webhook that got the event reads, which the event did not
/// carry: that webhook sends it blank.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Missing {
    pub variable: String,
    /// The names of the webhooks that read it.
    pub webhooks: Vec<String>,
}

/// What `push` recorded: the event's canonical name, the record, and the
/// variables its webhooks will miss.
#[derive(Debug)]
pub struct Pushed {
    pub name: &'static str,
    pub recorded: Recorded,
    pub missing: Vec<Missing>,
}

/// The variables the matched webhooks read that `vars` lacks, by name.
fn missing_variables(
    ctx: &Context,
    deliveries: &[carehook_store::NewDelivery],
    vars: &carehook_core::Vars,
) -> Vec<Missing> {
    let webhooks = ctx.registry.snapshot();
    let mut missing: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for d in deliveries {
        let Some(w) = webhooks.get(&d.webhook_id) else {
            continue;
        };
        for var in w.compiled.variables_needed() {
            if vars.get(var).is_none_or(|v| v.is_empty()) {
                missing
                    .entry(var.to_string())
                    .or_default()
                    .push(w.row.name.clone());
            }
        }
    }
    missing
        .into_iter()
        .map(|(variable, webhooks)| Missing { variable, webhooks })
        .collect()
}

/// The time zone of the event's clinic (`clinic_id`) as carehook keeps it, or UTC: how a
/// pushed appointment's separate date and start time become `appointment_start`.
async fn clinic_zone(ctx: &Context, vars: &carehook_core::Vars) -> chrono_tz::Tz {
    let Some(id) = vars.get("clinic_id").and_then(|c| c.parse::<i64>().ok()) else {
        return chrono_tz::UTC;
    };
    match ctx
        .store
        .get_record(carehook_core::clinic::Kind::Clinic, id)
        .await
    {
        Ok(Some(c)) => c.text("timezone").parse().unwrap_or(chrono_tz::UTC),
        _ => chrono_tz::UTC,
    }
}

/// Records an event and its deliveries (one per webhook that wants it),
/// durably; answers once committed.
pub async fn push(ctx: &Context, _actor: &Actor, p: Push) -> Result<Pushed> {
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
    if event.is_operational() {
        // Alerts a person acts on must be carehook's own word, never a forgery.
        return Err(Error::invalid(
            "event",
            format!(
                "{} is an operational event: carehook emits it itself, a clinic system cannot push it",
                event.name
            ),
        ));
    }
    if let Some(key) = &p.idempotency_key
        && (key.is_empty() || key.len() > 255)
    {
        return Err(Error::invalid(
            "idempotency_key",
            "an idempotency key must be 1 to 255 characters",
        ));
    }
    let id = EventId::new();
    let mut vars = snapshot_from_data(event, id, &p.data)?;
    if event.has_variable("appointment_start") {
        let zone = clinic_zone(ctx, &vars).await;
        fill_appointment_start(event, &mut vars, zone);
    }
    let now = now_ms();
    let deliveries = match_deliveries(&ctx.registry, event, &vars, now);
    let reschedule = reschedule_for(&ctx.registry, event, id, &vars, &deliveries, now);
    let missing = missing_variables(ctx, &deliveries, &vars);
    let recorded = ctx
        .intake
        .record(NewEvent {
            id,
            event_type: event.name.to_string(),
            vars,
            idempotency_key: p.idempotency_key,
            created_at: now,
            deliveries,
            reschedule,
        })
        .await?;
    Ok(Pushed {
        name: event.name,
        recorded,
        missing,
    })
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
