//! The dispatcher: claims due deliveries, sends them, records each attempt,
//! and schedules the next one.
//!
//! One loop owns all scheduling state, so there are no locks to reason
//! about: it claims batches under a lease, keeps a small queue per webhook,
//! and starts a task per request while the webhook is under its in-flight
//! cap and rate limit. A webhook at its cap is excluded from the next claim,
//! so a dead endpoint's backlog stays in the database instead of crowding
//! out healthy endpoints. Finished attempts go to a recorder task that
//! writes them in batches (one transaction for many results).
//!
//! Delivery is at-least-once: a crash leaves leases, which the next start
//! of this node or a live node's sweep releases (`node`), and the
//! deliveries are claimed again; `webhook-id` is the delivery id, so a
//! receiver can drop repeats.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use carehook_core::retry::{self, NextAttempt};
use carehook_core::signing;
use carehook_core::template::RenderError;
use carehook_core::webhook::{CompiledWebhook, RenderedRequest};
use carehook_store::{AttemptOutcome, AttemptRecord, Claimed, DeliveryNext, Store};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::outbound::{Outbound, Outgoing, SendError};
use crate::registry::{Loaded, Registry};
use crate::time::{from_ms, now_ms};

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Most deliveries one claim takes.
    pub batch: u32,
    /// Most requests in flight across all webhooks.
    pub max_in_flight: usize,
    /// How long a claim holds a delivery; must exceed the longest timeout
    /// plus a queue wait, or a slow send could be claimed twice.
    pub lease: Duration,
    /// Longest sleep between looks at the database when idle.
    pub poll: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// This process as a node: claims are leased to it (see `node`).
    pub node: crate::node::NodeConfig,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            batch: 256,
            max_in_flight: 512,
            lease: Duration::from_secs(150),
            poll: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            node: crate::node::NodeConfig::default(),
        }
    }
}

/// Per-webhook scheduling state.
#[derive(Debug, Default)]
struct Endpoint {
    in_flight: usize,
    /// The webhook's in-flight cap, as of its last claimed delivery.
    cap: usize,
    queue: VecDeque<(Arc<Loaded>, Claimed)>,
    bucket: Option<TokenBucket>,
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        let burst = rate.max(1.0);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// What a finished attempt reports back to the loop.
#[derive(Debug)]
pub struct Done {
    pub webhook_id: Uuid,
    pub record: AttemptRecord,
    /// A 410 answer: the endpoint is gone for good.
    pub gone: bool,
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    outbound: Outbound,
    config: DispatcherConfig,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish()
    }
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        outbound: Outbound,
        config: DispatcherConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Dispatcher {
            store,
            registry,
            outbound,
            config,
            metrics,
        }
    }

    /// Runs until `shutdown` turns true, then finishes or releases what it holds.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let (record_tx, record_rx) = mpsc::unbounded_channel::<Done>();
        let recorder = tokio::spawn(record_loop(
            self.store.clone(),
            self.registry.clone(),
            self.metrics.clone(),
            record_rx,
        ));
        let mut wake = self.store.watch_deliveries();
        let mut endpoints: HashMap<Uuid, Endpoint> = HashMap::new();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut in_flight = 0usize;
        let mut queued = 0usize;
        let mut claim_backoff = Duration::from_millis(100);

        loop {
            if *shutdown.borrow() {
                break;
            }
            // Start whatever queued work may start now.
            let now = Instant::now();
            let mut rate_wait: Option<Duration> = None;
            for ep in endpoints.values_mut() {
                while in_flight < self.config.max_in_flight {
                    let Some((webhook, _)) = ep.queue.front() else {
                        break;
                    };
                    if ep.in_flight >= webhook.compiled.spec.max_in_flight as usize {
                        break;
                    }
                    if let Some(bucket) = ep.bucket.as_mut()
                        && let Err(wait) = bucket.take(now)
                    {
                        rate_wait = Some(rate_wait.map_or(wait, |w| w.min(wait)));
                        break;
                    }
                    let (webhook, claimed) = ep.queue.pop_front().expect("front was Some");
                    queued -= 1;
                    ep.in_flight += 1;
                    in_flight += 1;
                    let outbound = self.outbound.clone();
                    let done = done_tx.clone();
                    tasks.spawn(async move {
                        let result = attempt(&outbound, &webhook, claimed).await;
                        let _ = done.send(result);
                    });
                }
            }

            // Claim more when there is room, leaving saturated webhooks out.
            let room = self.config.max_in_flight.saturating_sub(in_flight + queued);
            let mut claimed_full = false;
            if room > 0 {
                let exclude: Vec<Uuid> = endpoints
                    .iter()
                    .filter(|(_, ep)| ep.in_flight + ep.queue.len() >= ep.cap)
                    .map(|(id, _)| *id)
                    .collect();
                let limit = (self.config.batch as usize).min(room) as u32;
                match self
                    .store
                    .claim_due(
                        &self.config.node.id,
                        now_ms(),
                        self.config.lease.as_millis() as i64,
                        limit,
                        &exclude,
                    )
                    .await
                {
                    Ok(claimed) => {
                        claim_backoff = Duration::from_millis(100);
                        claimed_full = claimed.len() as u32 == limit;
                        let mut finished_now = Vec::new();
                        let mut release = Vec::new();
                        // A webhook made on another node may not be in this
                        // node's registry yet: read it before calling it gone.
                        let unknown: HashSet<Uuid> = claimed
                            .iter()
                            .map(|c| c.webhook_id)
                            .filter(|id| self.registry.get(*id).is_none())
                            .collect();
                        for id in unknown {
                            if let Err(e) = self.registry.load_one(&*self.store, id).await {
                                tracing::warn!(webhook = %id, error = %format!("{e:#}"), "could not load webhook");
                            }
                        }
                        for c in claimed {
                            match self.registry.get(c.webhook_id) {
                                Some(w) if w.row.enabled || c.is_test => {
                                    let ep = endpoints.entry(c.webhook_id).or_default();
                                    let cap = w.compiled.spec.max_in_flight as usize;
                                    ep.cap = cap;
                                    if ep.in_flight + ep.queue.len() >= cap * 2 {
                                        // More than it can use soon: back to the database.
                                        release.push(c.delivery_id);
                                        continue;
                                    }
                                    match (w.compiled.spec.rate_limit, &ep.bucket) {
                                        (Some(rate), Some(b)) if b.rate == rate => {}
                                        (Some(rate), _) => ep.bucket = Some(TokenBucket::new(rate)),
                                        (None, _) => ep.bucket = None,
                                    }
                                    ep.queue.push_back((w, c));
                                    queued += 1;
                                }
                                Some(w) => finished_now.push(ended_without_sending(
                                    &c,
                                    format!(
                                        "the webhook is disabled{}; retry the delivery once it is enabled again",
                                        w.row.disabled_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
                                    ),
                                )),
                                None => finished_now.push(ended_without_sending(&c, "the webhook was deleted".into())),
                            }
                        }
                        if !release.is_empty()
                            && let Err(e) = self.store.release(&release).await
                        {
                            tracing::warn!(error = %e, "could not release deliveries");
                        }
                        for d in finished_now {
                            let _ = record_tx.send(d);
                        }
                        if claimed_full {
                            // Start these, then claim again before waiting.
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "claiming deliveries failed; retrying in {claim_backoff:?}");
                        claim_backoff = (claim_backoff * 2).min(Duration::from_secs(5));
                        tokio::select! {
                            _ = tokio::time::sleep(claim_backoff) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
            }

            // Wait for a reason to look again.
            let idle_sleep = if claimed_full {
                Duration::ZERO
            } else if room == 0 {
                self.config.poll
            } else {
                // Something due now that the claim did not return belongs to a
                // webhook left out as saturated, or is leased elsewhere: look
                // again soon, but do not spin.
                let floor = Duration::from_millis(50).min(self.config.poll);
                match self.store.next_due_at().await {
                    Ok(Some(due)) => {
                        let ms = due - now_ms();
                        if ms <= 0 {
                            floor
                        } else {
                            Duration::from_millis(ms as u64).min(self.config.poll)
                        }
                    }
                    Ok(None) | Err(_) => self.config.poll,
                }
            };
            let sleep = rate_wait.map_or(idle_sleep, |w| w.min(idle_sleep));
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                Some(done) = done_rx.recv() => {
                    let mut batch = vec![done];
                    while let Ok(more) = done_rx.try_recv() {
                        batch.push(more);
                    }
                    for d in batch {
                        if let Some(ep) = endpoints.get_mut(&d.webhook_id) {
                            ep.in_flight -= 1;
                        }
                        in_flight -= 1;
                        let _ = record_tx.send(d);
                    }
                    endpoints.retain(|_, ep| ep.in_flight > 0 || !ep.queue.is_empty() || ep.bucket.is_some());
                }
                _ = wake.changed() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }

        // Shutting down: hand queued work back, let requests in flight finish.
        let unstarted: Vec<Uuid> = endpoints
            .values_mut()
            .flat_map(|ep| ep.queue.drain(..).map(|(_, c)| c.delivery_id))
            .collect();
        if !unstarted.is_empty()
            && let Err(e) = self.store.release(&unstarted).await
        {
            tracing::warn!(error = %e, "could not release queued deliveries; their leases will expire");
        }
        let deadline = Instant::now() + self.config.shutdown_grace;
        while in_flight > 0 {
            tokio::select! {
                Some(d) = done_rx.recv() => {
                    in_flight -= 1;
                    let _ = record_tx.send(d);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(in_flight, "shutdown grace ended with requests in flight; their leases will expire and they will be sent again");
                    break;
                }
            }
        }
        tasks.abort_all();
        drop(record_tx);
        let _ = recorder.await;
    }
}

/// Writes finished attempts in batches, and acts on 410 answers.
async fn record_loop(
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<Done>,
) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        metrics.attempts_recorded(batch.iter().map(|d| (d.webhook_id, &d.record)));
        let mut gone = HashSet::new();
        let records: Vec<AttemptRecord> = batch
            .drain(..)
            .map(|d| {
                if d.gone {
                    gone.insert(d.webhook_id);
                }
                d.record
            })
            .collect();
        let mut delay = Duration::from_millis(50);
        // A result must not be lost to a passing database error: retry a
        // few times; past that, the leases expire and the sends repeat.
        for _ in 0..6 {
            match store.record_attempts(records.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "recording attempts failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        for id in gone {
            let reason = "the endpoint answered 410 Gone, so carehook disabled the webhook";
            match store
                .set_webhook_enabled(id, false, Some(reason.to_string()))
                .await
            {
                Ok(_) => {
                    tracing::warn!(webhook = %id, "{reason}");
                    if let Err(e) = registry.refresh(&*store).await {
                        tracing::warn!(error = %e, "registry refresh failed");
                    }
                }
                Err(e) => tracing::error!(webhook = %id, error = %e, "could not disable webhook"),
            }
        }
    }
}

fn ended_without_sending(c: &Claimed, why: String) -> Done {
    let now = now_ms();
    Done {
        webhook_id: c.webhook_id,
        gone: false,
        record: AttemptRecord {
            delivery_id: c.delivery_id,
            attempt_no: c.attempts + 1,
            started_at: now,
            duration_ms: 0,
            request: serde_json::Value::Null,
            response_status: None,
            response_headers: None,
            response_body: None,
            error: Some(why),
            outcome: AttemptOutcome::GaveUp,
            next: DeliveryNext::Failed,
        },
    }
}

/// A number in `[0, 1)` for retry jitter.
fn jitter_sample() -> f64 {
    (getrandom::u64().unwrap_or(0) >> 11) as f64 / (1u64 << 53) as f64
}

/// The request for one delivery, ready to send, and its masked copy for
/// the log and the API: rendered from the snapshot, auth applied, signed.
/// The dispatcher, a test send and a preview all build requests here.
pub fn build_request(
    compiled: &CompiledWebhook,
    secrets: &[&signing::SigningSecret],
    delivery_id: &str,
    at_ms: i64,
    vars: &carehook_core::Vars,
) -> Result<(RenderedRequest, RenderedRequest), RenderError> {
    let (mut request, mut masked) = compiled.render(vars)?;
    if compiled.spec.signing && !secrets.is_empty() {
        let signed =
            signing::signed_headers(secrets, delivery_id, at_ms / 1000, request.body.as_bytes());
        for (name, value) in signed.pairs() {
            request.headers.push((name.to_string(), value.to_string()));
            masked.headers.push((name.to_string(), value.to_string()));
        }
    }
    Ok((request, masked))
}

/// A request as the log and the API show it (secrets already masked).
pub fn request_json(masked: &RenderedRequest) -> serde_json::Value {
    json!({
        "method": masked.method.as_str(),
        "url": masked.url,
        "headers": masked.headers,
        "body": masked.body,
    })
}

/// One attempt of one delivery, from render to outcome. The dispatcher runs
/// it for claimed deliveries, and the API for a test send (`c.is_test`: sent
/// even if the webhook is disabled, never too old, never retried by itself,
/// and a 410 does not disable the webhook).
pub async fn attempt(outbound: &Outbound, webhook: &Loaded, c: Claimed) -> Done {
    let spec = &webhook.compiled.spec;
    let attempt_no = c.attempts + 1;
    let started_at = now_ms();
    let fail = |record_error: String, request: serde_json::Value| Done {
        webhook_id: c.webhook_id,
        gone: false,
        record: AttemptRecord {
            delivery_id: c.delivery_id,
            attempt_no,
            started_at,
            duration_ms: 0,
            request,
            response_status: None,
            response_headers: None,
            response_body: None,
            error: Some(record_error),
            outcome: AttemptOutcome::GaveUp,
            next: DeliveryNext::Failed,
        },
    };

    // A stale delivery (a reminder for yesterday) is dropped, and logged so.
    if let Some(max_age) = spec.retry.max_age
        && started_at - c.created_at > max_age.as_millis() as i64
        && !c.is_test
    {
        return fail(
            format!(
                "dropped without sending: older than the webhook's max age of {}",
                retry::format_duration(max_age)
            ),
            serde_json::Value::Null,
        );
    }

    let secrets = webhook.signing_secrets(started_at);
    let (request, masked) = match build_request(
        &webhook.compiled,
        &secrets,
        &c.delivery_id.to_string(),
        started_at,
        &c.vars,
    ) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                format!("the request could not be built: {e}"),
                serde_json::Value::Null,
            );
        }
    };
    let logged_request = request_json(&masked);

    let clock = std::time::Instant::now();
    let result = outbound
        .send(Outgoing {
            method: request.method.as_str(),
            url: &request.url,
            headers: &request.headers,
            body: request.body,
            timeout: Duration::from_millis(spec.timeout_ms),
        })
        .await;
    let duration_ms = clock.elapsed().as_millis() as i64;
    let ended = started_at + duration_ms;

    let schedule =
        |retry_after: Option<Duration>, error: String| -> (AttemptOutcome, DeliveryNext, String) {
            if c.is_test {
                // A test send reports its one answer; retrying is the admin's call.
                return (AttemptOutcome::Failed, DeliveryNext::Failed, error);
            }
            match spec.retry.next_attempt(
                attempt_no as u32,
                from_ms(c.created_at),
                from_ms(ended),
                retry_after,
                jitter_sample(),
            ) {
                NextAttempt::At(t) => (
                    AttemptOutcome::Retry,
                    DeliveryNext::RetryAt(t.timestamp_millis()),
                    error,
                ),
                NextAttempt::GiveUp(why) => (
                    AttemptOutcome::Failed,
                    DeliveryNext::Failed,
                    format!("{error}; {why}"),
                ),
            }
        };

    let mut gone = false;
    let (status, headers, body, outcome, next, error) = match result {
        Ok(answer) => {
            let headers = headers_json(&answer.headers);
            if retry::is_success(answer.status)
                || (spec.accept_redirects && (300..400).contains(&answer.status))
            {
                (
                    Some(answer.status),
                    Some(headers),
                    Some(answer.body),
                    AttemptOutcome::Succeeded,
                    DeliveryNext::Succeeded,
                    None,
                )
            } else if answer.status == 410 {
                // A test send only reports it: the admin is looking at the answer.
                gone = !c.is_test;
                let error = if gone {
                    "410 Gone: the endpoint no longer exists; the webhook was disabled"
                } else {
                    "410 Gone: the endpoint no longer exists (a delivery would disable the webhook)"
                }
                .to_string();
                (
                    Some(answer.status),
                    Some(headers),
                    Some(answer.body),
                    AttemptOutcome::Failed,
                    DeliveryNext::Failed,
                    Some(error),
                )
            } else {
                let retry_after = answer
                    .retry_after
                    .as_deref()
                    .and_then(|v| retry::parse_retry_after(v, from_ms(ended)));
                let what = if (300..400).contains(&answer.status) {
                    format!(
                        "HTTP {}: redirects are not followed; point the webhook at the final URL",
                        answer.status
                    )
                } else {
                    format!("HTTP {}", answer.status)
                };
                let (outcome, next, error) = schedule(retry_after, what);
                (
                    Some(answer.status),
                    Some(headers),
                    Some(answer.body),
                    outcome,
                    next,
                    Some(error),
                )
            }
        }
        Err(SendError::Refused(why)) => (
            None,
            None,
            None,
            AttemptOutcome::Failed,
            DeliveryNext::Failed,
            Some(format!("destination refused: {why}")),
        ),
        Err(SendError::Invalid(why)) => (
            None,
            None,
            None,
            AttemptOutcome::Failed,
            DeliveryNext::Failed,
            Some(format!("invalid request: {why}")),
        ),
        Err(e) => {
            let (outcome, next, error) = schedule(None, e.to_string());
            (None, None, None, outcome, next, Some(error))
        }
    };
    Done {
        webhook_id: c.webhook_id,
        gone,
        record: AttemptRecord {
            delivery_id: c.delivery_id,
            attempt_no,
            started_at,
            duration_ms,
            request: logged_request,
            response_status: status.map(i64::from),
            response_headers: headers,
            response_body: body,
            error,
            outcome,
            next,
        },
    }
}

fn headers_json(headers: &[(String, String)]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in headers {
        match map.get_mut(k) {
            Some(serde_json::Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            _ => {
                map.insert(k.clone(), v.clone().into());
            }
        }
    }
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_bucket_paces_requests() {
        let mut b = TokenBucket::new(2.0);
        let t0 = Instant::now();
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0).unwrap_err();
        assert!(
            wait <= Duration::from_millis(500) && wait > Duration::from_millis(400),
            "{wait:?}"
        );
        assert!(b.take(t0 + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn jitter_samples_are_in_range() {
        for _ in 0..1000 {
            let s = jitter_sample();
            assert!((0.0..1.0).contains(&s));
        }
    }
}
