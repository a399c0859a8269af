//! Patient data over time: the retention purge (in the background, and by hand) and a
//! patient's erasure. The store does the SQL; this decides each webhook's cutoff.

use std::time::Duration;

use carehook_core::webhook::Payloads;
use carehook_store::{ErasureCounts, PurgeCounts, PurgeCursor, Retention, Store};
use serde_json::json;

use super::{Actor, Error, Result, audit};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// How long payloads are kept, and how the background purge runs.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// The installation's default, in days (a webhook may say otherwise).
    pub default_days: u32,
    /// How often the background purge runs.
    pub every: Duration,
    /// Rows per batch (one short transaction each).
    pub batch: u32,
    /// The pause between batches, so deliveries keep the database.
    pub pause: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            default_days: 30,
            every: Duration::from_secs(600),
            batch: 500,
            pause: Duration::from_millis(20),
        }
    }
}

fn days_ms(days: u32) -> i64 {
    i64::from(days) * DAY_MS
}

/// Each webhook's cutoff at `now`: its own retention, the default, or `now` for a webhook
/// that stores no bodies (its snapshots go once its deliveries end).
pub async fn rules(store: &dyn Store, default_days: u32, now: i64) -> Result<Retention> {
    let mut rules = Retention {
        before: now - days_ms(default_days),
        per_webhook: Vec::new(),
    };
    for w in store.list_webhooks().await? {
        let payloads: Payloads = w
            .config
            .get("spec")
            .and_then(|s| s.get("payloads"))
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default();
        let cutoff = if !payloads.store_bodies {
            now
        } else if let Some(days) = payloads.retention_days {
            now - days_ms(days)
        } else {
            continue;
        };
        rules.per_webhook.push((w.id, cutoff));
    }
    Ok(rules)
}

/// Walks attempts, then events, a bounded batch at a time with a pause between batches, and
/// answers what went (or, dry run, would go).
pub async fn purge(
    store: &dyn Store,
    rules: &Retention,
    now: i64,
    batch: u32,
    pause: Duration,
    dry_run: bool,
) -> Result<PurgeCounts> {
    let mut counts = PurgeCounts::default();
    let mut after: Option<PurgeCursor> = None;
    loop {
        let step = store
            .purge_attempts(rules, now, after.take(), batch, dry_run)
            .await?;
        counts.attempts += step.purged;
        match step.next {
            Some(next) => after = Some(next),
            None => break,
        }
        tokio::time::sleep(pause).await;
    }
    loop {
        let step = store
            .purge_events(rules, now, after.take(), batch, dry_run)
            .await?;
        counts.events += step.purged;
        match step.next {
            Some(next) => after = Some(next),
            None => break,
        }
        tokio::time::sleep(pause).await;
    }
    Ok(counts)
}

/// The background purge: each webhook's retention at `now`, audited when it removed anything.
pub async fn purge_expired(
    store: &dyn Store,
    config: &RetentionConfig,
    now: i64,
) -> Result<PurgeCounts> {
    let rules = rules(store, config.default_days, now).await?;
    let counts = purge(store, &rules, now, config.batch, config.pause, false).await?;
    if counts != PurgeCounts::default() {
        tracing::info!(
            events = counts.events,
            attempts = counts.attempts,
            "retention purge removed payloads"
        );
        audit::record(
            store,
            &Actor::System("retention purge"),
            "purge.retention",
            "payloads",
            "ok",
            json!({ "events": counts.events, "attempts": counts.attempts,
                    "default_days": config.default_days }),
        )
        .await;
    }
    Ok(counts)
}

/// A purge by hand of everything from before `before` (pending deliveries keep theirs).
pub async fn purge_before(
    store: &dyn Store,
    actor: &Actor,
    before: i64,
    now: i64,
    dry_run: bool,
) -> Result<PurgeCounts> {
    if before > now {
        return Err(Error::invalid(
            "before",
            "before is in the future: a purge removes only what is older than a past time",
        ));
    }
    let rules = Retention {
        before,
        per_webhook: Vec::new(),
    };
    let config = RetentionConfig::default();
    let result = purge(store, &rules, now, config.batch, config.pause, dry_run).await;
    let details = match &result {
        Ok(c) => json!({ "before": before, "dry_run": dry_run,
                         "events": c.events, "attempts": c.attempts }),
        Err(_) => json!({ "before": before, "dry_run": dry_run }),
    };
    let action = if dry_run {
        "purge.dry_run"
    } else {
        "purge.manual"
    };
    audit::record(
        store,
        actor,
        action,
        "payloads",
        audit::outcome_of(&result),
        details,
    )
    .await;
    result
}

/// The patient id as events carry it: digits, letters, `-`, `_`, `.`; 1 to 100 of them.
pub fn check_patient_id(id: &str) -> Result<String> {
    let id = id.trim();
    let ok = (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(id.to_string())
    } else {
        Err(Error::invalid(
            "patient_id",
            "a patient id is 1 to 100 letters, digits, '-', '_' or '.' (as in events' patient_id)",
        ))
    }
}

/// Erases one patient's data (see `PrivacyStore::erase_patient`), audited with the counts.
pub async fn erase(
    store: &dyn Store,
    actor: &Actor,
    patient_id: &str,
    now: i64,
) -> Result<ErasureCounts> {
    let id = check_patient_id(patient_id)?;
    let result = store.erase_patient(&id, now).await.map_err(Error::from);
    let details = match &result {
        Ok(c) => serde_json::to_value(c).unwrap_or_default(),
        Err(_) => json!({}),
    };
    audit::record(
        store,
        actor,
        "patient.erase",
        &format!("patient/{id}"),
        audit::outcome_of(&result),
        details,
    )
    .await;
    if let Ok(c) = &result {
        tracing::info!(
            events = c.events,
            attempts = c.attempts,
            cancelled = c.deliveries_cancelled,
            by = %actor,
            "a patient's data was erased"
        );
    }
    result
}
