//! The delivery log: deliveries with their attempts, and manual retries.

use carehook_core::ids::DeliveryId;
use carehook_store::{AttemptRow, DeliveryFilter, DeliveryRow, MAX_PAGE, Page};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Actor, Context, Error, Result};
use crate::time::now_ms;

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    pub status: i64,
    pub headers: Option<serde_json::Value>,
    /// The first 64 KiB.
    pub body: Option<String>,
}

/// A page size, 1 to [`MAX_PAGE`] as documented; left out (`None`), the
/// default (returned as 0, which the store reads as its default).
pub fn check_limit(limit: Option<u32>) -> Result<u32> {
    match limit {
        Some(n) if n == 0 || n > MAX_PAGE => Err(Error::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}; page with next_cursor"),
        )),
        Some(n) => Ok(n),
        None => Ok(0),
    }
}

pub async fn list(ctx: &Context, filter: DeliveryFilter) -> Result<Page<DeliveryRow>> {
    Ok(ctx.store.list_deliveries(filter).await?)
}

/// A delivery with its attempts' request and response bodies: a read of patient data, so it
/// is audited (and refused when it cannot be).
pub async fn get(
    ctx: &Context,
    actor: &Actor,
    id: DeliveryId,
) -> Result<(DeliveryRow, Vec<AttemptRow>)> {
    let found = ctx
        .store
        .get_delivery(id)
        .await?
        .ok_or(Error::NotFound("delivery"))?;
    let details = serde_json::json!({ "attempts": found.1.len(), "event_id": found.0.event_id });
    super::audit::must_record(
        &*ctx.store,
        actor,
        "delivery.read",
        &format!("delivery/{id}"),
        "ok",
        details,
    )
    .await?;
    Ok(found)
}

/// An ordered delivery's place in its key, and the delivery it waits for while held back;
/// `None` for an unordered one. (No patient data: the key is a digest.)
pub async fn ordering(
    ctx: &Context,
    id: DeliveryId,
) -> Result<Option<carehook_store::DeliveryOrdering>> {
    Ok(ctx.store.delivery_ordering(id).await?)
}

/// Sends a delivery again now, whatever its status. Audited. A delivery whose event data is
/// gone (retention, erasure) cannot be sent again: a conflict.
pub async fn retry(ctx: &Context, actor: &Actor, id: DeliveryId) -> Result<DeliveryRow> {
    let d = ctx
        .store
        .retry_delivery(id, now_ms())
        .await
        .map_err(Error::from)
        .and_then(|d| d.ok_or(Error::NotFound("delivery")));
    super::audit::record(
        &*ctx.store,
        actor,
        "delivery.retry",
        &format!("delivery/{id}"),
        super::audit::outcome_of(&d),
        serde_json::json!({}),
    )
    .await;
    let d = d?;
    tracing::info!(delivery = %id, by = %actor, "delivery retried");
    Ok(d)
}
