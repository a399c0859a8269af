//! Ordering keys in the store: each key's deliveries are numbered as they are written, and a
//! claim takes only the first pending delivery of a key.
//!
//! The rule lives in the claim statements themselves ([`first_of_its_key!`]), so it holds for
//! any number of nodes on one PostgreSQL: a delivery is claimable only while no earlier
//! delivery of its key is pending (due, waiting for a retry, or leased and in flight), and the
//! claim's lease and row lock keep two nodes from taking the same one. A delivery that ends,
//! `succeeded` or `failed`, lets the next one of its key go. Unordered deliveries
//! (`ordering_key` NULL) pass the test at its first term, so they pay nothing for it.
//!
//! Numbers come from a counter row per (webhook, key) in `ordering_keys`, bumped in the
//! transaction that writes the deliveries: on PostgreSQL the row lock makes two nodes writing
//! the same key take turns, so numbers follow commit order and never repeat. Keys are bumped
//! in sorted order, so two batches cannot deadlock on each other's keys.

use std::collections::{BTreeMap, HashMap};

use crate::dialect::{Conn, Dialect};
use crate::error::Result;
use crate::types::{NewDelivery, NewEvent};

/// ` AND (…)`: delivery row `$t` (an alias, or the table's name) is the first pending delivery
/// of its ordering key, or has none. Index: `deliveries_pending_by_key` (migration 0008). The
/// SQLite form; PostgreSQL's is [`first_of_its_key_pg!`].
macro_rules! first_of_its_key {
    ($t:literal) => {
        concat!(
            " AND (",
            $t,
            ".ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries earlier \
             WHERE earlier.webhook_id = ",
            $t,
            ".webhook_id AND earlier.ordering_key = ",
            $t,
            ".ordering_key AND earlier.status = 'pending' AND earlier.ordering_seq < ",
            $t,
            ".ordering_seq)) "
        )
    };
}
pub(crate) use first_of_its_key;

/// [`first_of_its_key!`] for PostgreSQL: the same rule, with the key looked up as one
/// expression that only `deliveries_pending_by_webhook_key` (migration 0014) holds, so the
/// plan cannot depend on statistics. With `earlier.webhook_id = …` the planner could answer it
/// from `deliveries_pending_by_webhook` instead, and did on a new database (no statistics yet:
/// both looked equally cheap); each ordered row of a claim then read all of its webhook's
/// pending deliveries (a claim of 40 took 3–28 ms instead of under 1 ms, and ordered delivery
/// ran at half the unordered rate on a 10,000-event run).
macro_rules! first_of_its_key_pg {
    ($t:literal) => {
        concat!(
            " AND (",
            $t,
            ".ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries earlier \
             WHERE earlier.webhook_id || earlier.ordering_key = ",
            $t,
            ".webhook_id || ",
            $t,
            ".ordering_key AND earlier.status = 'pending' AND earlier.ordering_key IS NOT NULL \
             AND earlier.ordering_seq < ",
            $t,
            ".ordering_seq)) "
        )
    };
}
pub(crate) use first_of_its_key_pg;

/// A delivery's key and number, and while it is pending, the earliest pending delivery of
/// its key before it (the one it waits for; in flight or being retried).
pub(crate) const DELIVERY_ORDERING: &str = "SELECT d.ordering_key, d.ordering_seq, \
    CASE WHEN d.status = 'pending' THEN (SELECT earlier.id FROM deliveries earlier \
      WHERE earlier.webhook_id = d.webhook_id AND earlier.ordering_key = d.ordering_key \
      AND earlier.status = 'pending' AND earlier.ordering_seq < d.ordering_seq \
      ORDER BY earlier.ordering_seq LIMIT 1) END \
    FROM deliveries d WHERE d.id = $1 AND d.ordering_key IS NOT NULL";

/// A deleted webhook's counters go with it.
pub(crate) const FORGET_WEBHOOK_KEYS: &str = "DELETE FROM ordering_keys WHERE webhook_id = $1";

/// The numbers of `deliveries` (in order) inside the caller's transaction: for each ordered
/// one the next of its key, in the order given; `None` for an unordered one. No statement at
/// all when none is ordered.
pub(crate) async fn number<D: Dialect>(
    conn: &mut Conn<D>,
    deliveries: &[(&NewDelivery, &NewEvent)],
) -> Result<Vec<Option<i64>>> {
    let mut counts: BTreeMap<(String, &str), i64> = BTreeMap::new();
    for (d, _) in deliveries {
        if let Some(key) = d.ordering_key.as_deref() {
            *counts.entry((d.webhook_id.to_string(), key)).or_default() += 1;
        }
    }
    if counts.is_empty() {
        return Ok(vec![None; deliveries.len()]);
    }
    let groups: Vec<(String, String, i64)> = counts
        .iter()
        .map(|((w, k), n)| (w.clone(), (*k).to_string(), *n))
        .collect();
    let lasts = D::bump_ordering_keys(conn, &groups).await?;
    // The number before this batch's first of each key.
    let mut next: HashMap<(String, String), i64> = lasts
        .into_iter()
        .map(|(w, k, last)| {
            let n = counts.get(&(w.clone(), k.as_str())).copied().unwrap_or(0);
            ((w, k), last - n)
        })
        .collect();
    Ok(deliveries
        .iter()
        .map(|(d, _)| {
            let key = d.ordering_key.clone()?;
            let seq = next.get_mut(&(d.webhook_id.to_string(), key))?;
            *seq += 1;
            Some(*seq)
        })
        .collect())
}
