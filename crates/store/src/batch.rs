//! The dialect-free half of the batch writes. Both dialects write a batch as a few set-based
//! statements that take whole columns at once (PostgreSQL: arrays and `UNNEST`; SQLite: one
//! JSON array and `json_each`), so the per-row work — which event of a batch is written, what
//! each caller gets back, which attempt decides a delivery's state — is decided here, once.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Result, StoreError};
use crate::types::*;

/// Which events of a batch to try to write. An idempotency key repeated within the batch is
/// settled here (the first one is written, later ones answer with it), so the database only
/// ever decides against keys written earlier.
#[derive(Debug)]
pub(crate) struct EventPlan {
    /// `dup_of[i] = Some(j)`: event `i` repeats the key of the earlier event `j`.
    pub dup_of: Vec<Option<usize>>,
    /// Indexes of the events to insert (a key may still turn out to be taken).
    pub candidates: Vec<usize>,
}

pub(crate) fn plan_events(batch: &[NewEvent]) -> EventPlan {
    let mut first_with_key: HashMap<&str, usize> = HashMap::new();
    let mut dup_of = vec![None; batch.len()];
    let mut candidates = Vec::with_capacity(batch.len());
    for (i, ev) in batch.iter().enumerate() {
        if let Some(k) = ev.idempotency_key.as_deref() {
            if let Some(&j) = first_with_key.get(k) {
                dup_of[i] = Some(j);
                continue;
            }
            first_with_key.insert(k, i);
        }
        candidates.push(i);
    }
    EventPlan { dup_of, candidates }
}

impl EventPlan {
    /// Candidates the insert skipped: their keys belong to earlier events.
    pub(crate) fn taken_keys(&self, batch: &[NewEvent], inserted: &HashSet<String>) -> Vec<String> {
        self.candidates
            .iter()
            .filter(|&&i| !inserted.contains(&batch[i].id.to_string()))
            .filter_map(|&i| batch[i].idempotency_key.clone())
            .collect()
    }

    /// The deliveries of the events that were written, with their event.
    pub(crate) fn deliveries<'a>(
        &self,
        batch: &'a [NewEvent],
        inserted: &HashSet<String>,
    ) -> Vec<(&'a NewDelivery, &'a NewEvent)> {
        self.candidates
            .iter()
            .map(|&i| &batch[i])
            .filter(|ev| inserted.contains(&ev.id.to_string()))
            .flat_map(|ev| ev.deliveries.iter().map(move |d| (d, ev)))
            .collect()
    }

    /// One answer per event, in order. `earlier` maps a taken key to its first event and that
    /// event's deliveries.
    pub(crate) fn answers(
        &self,
        batch: &[NewEvent],
        inserted: &HashSet<String>,
        earlier: &HashMap<String, (EventId, Vec<DeliveryId>)>,
    ) -> Result<Vec<Recorded>> {
        let mut out: Vec<Recorded> = Vec::with_capacity(batch.len());
        for (i, ev) in batch.iter().enumerate() {
            let r = if let Some(j) = self.dup_of[i] {
                let first = &out[j];
                Recorded::Duplicate {
                    event_id: first.event_id(),
                    delivery_ids: first.delivery_ids().to_vec(),
                }
            } else if inserted.contains(&ev.id.to_string()) {
                Recorded::Created {
                    event_id: ev.id,
                    delivery_ids: ev.deliveries.iter().map(|d| d.id).collect(),
                }
            } else {
                let key = ev.idempotency_key.as_deref().unwrap_or_default();
                let (event_id, delivery_ids) = earlier.get(key).cloned().ok_or_else(|| {
                    // Only a row deleted between the insert and the look-up gets here.
                    StoreError::Conflict(format!(
                        "idempotency key {key:?} vanished while recording"
                    ))
                })?;
                Recorded::Duplicate {
                    event_id,
                    delivery_ids,
                }
            };
            out.push(r);
        }
        Ok(out)
    }
}

/// Groups `(key, event id)` and `(event id, delivery id)` rows into key → (event, deliveries).
pub(crate) fn earlier_events(
    firsts: Vec<(String, String)>,
    deliveries: Vec<(String, String)>,
) -> Result<HashMap<String, (EventId, Vec<DeliveryId>)>> {
    let mut by_event: HashMap<String, Vec<DeliveryId>> = HashMap::new();
    for (event_id, id) in deliveries {
        by_event
            .entry(event_id)
            .or_default()
            .push(crate::rows::uuid(&id)?.into());
    }
    let mut out = HashMap::new();
    for (key, id) in firsts {
        let ds = by_event.remove(&id).unwrap_or_default();
        out.insert(key, (crate::rows::uuid(&id)?.into(), ds));
    }
    Ok(out)
}

/// One state change per delivery: the batch's highest-numbered attempt decides it (a
/// set-based UPDATE must not see the same row twice).
pub(crate) fn latest_per_delivery(batch: &[AttemptRecord]) -> Vec<&AttemptRecord> {
    let mut latest: BTreeMap<DeliveryId, &AttemptRecord> = BTreeMap::new();
    for a in batch {
        if latest
            .get(&a.delivery_id)
            .is_none_or(|b| a.attempt_no >= b.attempt_no)
        {
            latest.insert(a.delivery_id, a);
        }
    }
    latest.into_values().collect()
}

/// `(started_at, succeeded)` of the batch's attempts per webhook, for the failure streaks.
/// `webhook_of` maps the deliveries that moved (and are not test sends) to their webhook.
/// `moved`: (delivery, webhook, is_test) of the deliveries the attempts moved on; test sends
/// do not count.
pub(crate) fn streak_inputs(
    batch: &[AttemptRecord],
    moved: Vec<(String, String, bool)>,
) -> BTreeMap<String, Vec<(i64, bool)>> {
    let webhook_of: HashMap<String, String> = moved
        .into_iter()
        .filter(|(_, _, is_test)| !is_test)
        .map(|(d, w, _)| (d, w))
        .collect();
    let mut per_webhook: BTreeMap<String, Vec<(i64, bool)>> = BTreeMap::new();
    for a in batch {
        if let Some(w) = webhook_of.get(&a.delivery_id.to_string()) {
            per_webhook
                .entry(w.clone())
                .or_default()
                .push((a.started_at, a.outcome == AttemptOutcome::Succeeded));
        }
    }
    per_webhook
}

pub(crate) fn retry_at(next: DeliveryNext) -> Option<i64> {
    match next {
        DeliveryNext::RetryAt(t) => Some(t),
        _ => None,
    }
}
