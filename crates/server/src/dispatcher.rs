//! The dispatcher: claims due deliveries, sends them, records each attempt,
//! and schedules the next one.
//!
//! One loop owns all scheduling state, so there are no locks to reason
//! about: it claims under a lease, and [`schedule::Schedule`] (pure, tested
//! with a fake clock) keeps a small queue per webhook and says which requests
//! may start under the in-flight caps, the node's fair shares and rate
//! limits; the loop starts a task per request. Claims ask for each busy
//! webhook by name, only as many as it can start plus a small prefetch sized
//! from its pace, so a busy webhook's slots refill from its queue without
//! waiting on the database, a dead endpoint's backlog stays in the database,
//! and nothing claimed is handed back unused. A claim runs beside the loop
//! (one at a time), so requests that finish while it waits on the database
//! are followed at once from the queues, and the queues are sized to outlast
//! a claim's recent time. After a wake-up (new work committed) the claim
//! also takes a few of any other webhook's deliveries.
//! Finished attempts go to a recorder task that writes them in batches (one
//! transaction for many results).
//!
//! Ordered deliveries (a webhook's `ordering_key`) need nothing of the
//! schedule: a claim returns only the first pending delivery of a key (the
//! store's rule, in its claim statement), so what this node holds is of
//! distinct keys and goes out like any other work. Once the recorder has
//! written the end of an ordered delivery it tells the loop, which claims
//! that webhook again when its queue runs low (at once if it is idle), so
//! the next one of the key waits for no poll and costs no extra claim.
//!
//! Delivery is at-least-once: a crash leaves leases, which the next start
//! of this node or a live node's sweep releases (`node`), and the
//! deliveries are claimed again; `webhook-id` is the delivery id, so a
//! receiver can drop repeats. A run that panicked is replaced by a fresh one
//! (see [`crate::supervise`]), which first releases what the dead run held.

pub mod schedule;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use carehook_core::ids::{DeliveryId, WebhookId};
use carehook_core::ordering;
use carehook_core::retry::{self, NextAttempt};
use carehook_core::signing;
use carehook_core::template::RenderError;
use carehook_core::webhook::{CompiledWebhook, MASK, RenderedRequest};
use carehook_store::{
    AttemptOutcome, AttemptRecord, ClaimAsk, Claimed, DeliveryNext, Others, Store,
};
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::outbound::{Outbound, Outgoing, SendError};
use crate::registry::{Loaded, Registry};
use crate::time::{from_ms, now_ms};
use schedule::Schedule;

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
    /// Makes the dispatcher panic, for tests of its supervision. Only code
    /// sets it: no setting, flag or API call reaches it.
    pub fault: Fault,
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
            fault: Fault::default(),
            node: crate::node::NodeConfig::default(),
        }
    }
}

/// How many deliveries of a webhook not yet busy one claim takes: a lone
/// event's, or the start of a burst (the next claim asks by its pace).
const DISCOVER_PER_WEBHOOK: u32 = 2 * schedule::FLOOR as u32;

/// How long the recorder gathers results before writing them.
const RECORD_GATHER: Duration = Duration::from_millis(5);

/// The least time between two looks for new work prompted by wake-ups: a
/// steady stream of events is claimed a few at a time, not one claim per
/// commit. A lone event (no look for this long) is claimed at once.
const LOOK_GAP: Duration = Duration::from_millis(2);

/// The least time between two reads of the next due time (`Store::next_due_after`): a
/// stream of wake-ups costs at most one such read per gap.
const DUE_CHECK_GAP: Duration = Duration::from_millis(20);

/// How many retry times the loop keeps, to wake when they fall due.
const TRACKED_RETRIES: usize = 4096;

type FaultFn = dyn Fn(&Claimed) -> bool + Send + Sync;

/// A test's failpoint: the dispatcher panics when about to start a
/// delivery this predicate picks. None by default.
#[derive(Clone, Default)]
pub struct Fault(Option<Arc<FaultFn>>);

impl Fault {
    pub fn panic_when(pick: impl Fn(&Claimed) -> bool + Send + Sync + 'static) -> Self {
        Fault(Some(Arc::new(pick)))
    }

    fn fires(&self, c: &Claimed) -> bool {
        self.0.as_ref().is_some_and(|pick| pick(c))
    }
}

impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Fault(set)"
        } else {
            "Fault(none)"
        })
    }
}

/// What one claim asks for (see [`Dispatcher::plan_claim`]).
struct ClaimPlan {
    wants: Vec<(WebhookId, u32)>,
    others: Option<Others>,
    exclude: Vec<WebhookId>,
}

/// What a claim brought, for the loop to queue (see [`Dispatcher::take_claim`]).
struct Fetched {
    plan: ClaimPlan,
    /// Deliveries claimed per webhook, whatever became of them.
    got: HashMap<WebhookId, u32>,
    /// Those to send.
    offers: Vec<(Arc<Loaded>, Claimed)>,
}

/// A claim under way: the loop polls it beside its other wake-ups.
type Claiming<'a> =
    Pin<Box<dyn Future<Output = Result<Fetched, carehook_store::StoreError>> + Send + 'a>>;

/// Waits for the claim under way, if any (never ready without one).
async fn claim_landed(
    claiming: &mut Option<Claiming<'_>>,
) -> Result<Fetched, carehook_store::StoreError> {
    match claiming.as_mut() {
        Some(c) => c.await,
        None => std::future::pending().await,
    }
}

/// What a finished attempt reports back to the loop.
#[derive(Debug)]
pub struct Done {
    pub webhook_id: WebhookId,
    pub record: AttemptRecord,
    /// A 410 answer: the endpoint is gone for good.
    pub gone: bool,
    /// The retry policy ended the delivery after this attempt (attempts
    /// spent, or the next one would be too late). The log calls the attempt
    /// failed; the metrics count it as `gave_up`.
    pub gave_up: bool,
    /// The delivery has an ordering key: once its end is recorded, the next
    /// delivery of the key may be claimed.
    pub ordered: bool,
    /// The event the delivery carried, when its failures may raise
    /// operational alerts: `None` for a test send, a delivery of an
    /// operational event (no alert loops, see `alerts`), or one ended unsent.
    pub alertable: Option<String>,
}

/// Whether a claimed delivery's failures may raise alerts, and its event.
fn alertable(c: &Claimed) -> Option<String> {
    let operational = c
        .event_type
        .starts_with(carehook_core::catalog::OPERATIONAL_PREFIX);
    (!c.is_test && !operational).then(|| c.event_type.clone())
}

/// Deliveries this node claimed and has not yet recorded an outcome for.
/// It outlives a dispatcher that panicked, so the next one hands them back
/// at once instead of leaving them to wait out their lease.
type Held = Arc<Mutex<HashSet<DeliveryId>>>;

fn lock(held: &Held) -> MutexGuard<'_, HashSet<DeliveryId>> {
    // Nothing panics while holding it; a poisoned set is still right.
    held.lock().unwrap_or_else(|e| e.into_inner())
}

/// The delivery engine. Cheap to clone: a supervisor starts a fresh run
/// from a clone after a panic. The [`Recorder`] it hands out writes what
/// every run reports.
#[derive(Clone)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    outbound: Outbound,
    config: DispatcherConfig,
    metrics: Arc<Metrics>,
    record_tx: mpsc::UnboundedSender<Done>,
    record_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Done>>>,
    held: Held,
    /// Webhooks whose ordered deliveries the recorder has ended: the next of
    /// each key may be claimed now.
    released: Arc<Released>,
    alerter: Option<crate::alerts::Alerter>,
}

/// What the recorder tells the loop about ordering keys it released.
#[derive(Debug, Default)]
struct Released {
    webhooks: Mutex<HashSet<WebhookId>>,
    notify: Notify,
}

impl Released {
    fn add(&self, ids: HashSet<WebhookId>) {
        if ids.is_empty() {
            return;
        }
        self.webhooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(ids);
        self.notify.notify_one();
    }

    fn take(&self) -> HashSet<WebhookId> {
        std::mem::take(&mut *self.webhooks.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish()
    }
}

/// Writes finished attempts in batches and acts on 410 answers; runs until
/// every [`Dispatcher`] clone is gone. A restarted recorder takes up the
/// same queue, so only the batch in hand at a panic is lost (its deliveries
/// are sent again when the dispatcher restarts or their lease ends).
#[derive(Debug, Clone)]
pub struct Recorder {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Done>>>,
    held: Held,
    released: Arc<Released>,
    alerter: Option<crate::alerts::Alerter>,
}

impl Recorder {
    pub async fn run(self) {
        let mut rx = self.rx.lock().await;
        record_loop(
            self.store,
            self.registry,
            self.metrics,
            &mut rx,
            self.held,
            self.released,
            self.alerter,
        )
        .await;
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
        let (record_tx, record_rx) = mpsc::unbounded_channel::<Done>();
        Dispatcher {
            store,
            registry,
            outbound,
            config,
            metrics,
            record_tx,
            record_rx: Arc::new(tokio::sync::Mutex::new(record_rx)),
            held: Held::default(),
            released: Arc::default(),
            alerter: None,
        }
    }

    /// Emits operational events (`carehook_*`) through `alerter` when a
    /// delivery gives up, a webhook starts failing or a 410 disables it.
    pub fn with_alerts(mut self, alerter: crate::alerts::Alerter) -> Self {
        self.alerter = Some(alerter);
        self
    }

    /// The recorder for this dispatcher's results; run it alongside.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            store: self.store.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            rx: self.record_rx.clone(),
            held: self.held.clone(),
            released: self.released.clone(),
            alerter: self.alerter.clone(),
        }
    }

    /// Hands back deliveries an earlier run claimed and never finished.
    async fn release_orphans(&self) {
        let orphans: Vec<DeliveryId> = lock(&self.held).drain().collect();
        if orphans.is_empty() {
            return;
        }
        tracing::warn!(
            deliveries = orphans.len(),
            "releasing deliveries the previous dispatcher run held"
        );
        if let Err(e) = self.store.release(&orphans).await {
            tracing::warn!(error = %e, "could not release deliveries; their leases will expire");
        }
    }

    /// Releases deliveries this node claimed and will not send now.
    async fn hand_back(&self, ids: &[DeliveryId]) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.store.release(ids).await {
            tracing::warn!(error = %e, "could not release deliveries; their leases will expire");
        }
        let mut held = lock(&self.held);
        for id in ids {
            held.remove(id);
        }
    }

    /// What to claim for what `schedule` wants: for each busy webhook its free
    /// slots and prefetch, and with `look` some of any other webhook's work too.
    fn plan_claim(
        &self,
        schedule: &Schedule<(Arc<Loaded>, Claimed)>,
        look: bool,
        origin: Instant,
    ) -> ClaimPlan {
        let broken: HashSet<WebhookId> = self.registry.broken_ids().into_iter().collect();
        let wants: Vec<(WebhookId, u32)> = schedule
            .wants(origin.elapsed(), look)
            .into_iter()
            .filter(|(id, _)| !broken.contains(id))
            .collect();
        let asked: usize = wants.iter().map(|(_, n)| *n as usize).sum();
        let left = schedule.room().saturating_sub(asked);
        let others = (look && left > 0).then(|| Others {
            limit: left.min(self.config.batch as usize) as u32,
            per_webhook: DISCOVER_PER_WEBHOOK,
        });
        // Broken webhooks (their secrets do not open) wait, and busy ones are named.
        let mut exclude: Vec<WebhookId> = broken.into_iter().collect();
        exclude.extend(schedule.known());
        ClaimPlan {
            wants,
            others,
            exclude,
        }
    }

    /// Claims what `plan` says, and sorts what came: deliveries to send, those
    /// of a broken webhook (handed back) and those of a disabled or deleted
    /// one (ended unsent). Touches no scheduling state, so the loop goes on
    /// starting queued work while this waits on the database.
    async fn fetch_claim(&self, plan: ClaimPlan) -> Result<Fetched, carehook_store::StoreError> {
        let ask = ClaimAsk {
            wants: &plan.wants,
            others: plan.others,
            exclude: &plan.exclude,
        };
        let claimed = self
            .store
            .claim(
                &self.config.node.id,
                now_ms(),
                self.config.lease.as_millis() as i64,
                &ask,
            )
            .await?;
        lock(&self.held).extend(claimed.iter().map(|c| c.delivery_id));
        let mut got: HashMap<WebhookId, u32> = HashMap::new();
        for c in &claimed {
            *got.entry(c.webhook_id).or_default() += 1;
        }
        let mut finished_now = Vec::new();
        let mut release = Vec::new();
        let mut offers = Vec::with_capacity(claimed.len());
        // A webhook made on another node may not be in this
        // node's registry yet: read it before calling it gone.
        let unknown: HashSet<WebhookId> = got
            .keys()
            .copied()
            .filter(|id| self.registry.get(*id).is_none())
            .collect();
        for id in unknown {
            if let Err(e) = self.registry.load_one(&*self.store, id).await {
                tracing::warn!(webhook = %id, error = %format!("{e:#}"), "could not load webhook");
            }
        }
        for c in claimed {
            match self.registry.get(c.webhook_id) {
                Some(w) if w.broken.is_none() && (w.row.enabled || c.is_test) => {
                    offers.push((w, c));
                }
                // Its secrets do not open: it waits (left out of
                // the next claims), no attempt counted.
                Some(w) if w.broken.is_some() => release.push(c.delivery_id),
                Some(w) => finished_now.push(ended_without_sending(
                    &c,
                    format!(
                        "the webhook is disabled{}; retry the delivery once it is enabled again",
                        w.disabled()
                            .and_then(|d| d.reason)
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ),
                )),
                None => {
                    finished_now.push(ended_without_sending(&c, "the webhook was deleted".into()))
                }
            }
        }
        self.hand_back(&release).await;
        for d in finished_now {
            let _ = self.record_tx.send(d);
        }
        Ok(Fetched { plan, got, offers })
    }

    /// Queues what a claim brought and notes, per webhook, whether it got all
    /// it asked for (then it may have more). Answers, if other webhooks' work
    /// was looked for, whether that part was cut by its limit (look again).
    fn take_claim(
        schedule: &mut Schedule<(Arc<Loaded>, Claimed)>,
        fetched: Fetched,
        now: Duration,
    ) -> Option<bool> {
        let Fetched { plan, got, offers } = fetched;
        let named: usize = plan
            .wants
            .iter()
            .map(|(id, _)| got.get(id).copied().unwrap_or(0) as usize)
            .sum();
        let others_got = got.values().map(|n| *n as usize).sum::<usize>() - named;
        for (w, c) in offers {
            let limits = w.compiled.limits;
            schedule.offer(c.webhook_id, &limits, (w, c), now);
        }
        // What each webhook got against what it asked for: one that got all may have more.
        for (id, n) in &plan.wants {
            schedule.claimed(*id, *n, got.get(id).copied().unwrap_or(0));
        }
        if let Some(o) = plan.others {
            for (id, n) in &got {
                if !plan.wants.iter().any(|(w, _)| w == id) {
                    schedule.claimed(*id, o.per_webhook, *n);
                }
            }
        }
        plan.others.map(|o| others_got >= o.limit as usize)
    }

    /// Runs until `shutdown` turns true, then finishes or releases what it
    /// holds. The scheduling decisions are [`Schedule`]'s; this loop claims,
    /// starts requests, and waits.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.release_orphans().await;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Done, Duration)>();
        let record_tx = self.record_tx.clone();
        let mut wake = self.store.watch_deliveries();
        let origin = Instant::now();
        let mut schedule: Schedule<(Arc<Loaded>, Claimed)> =
            Schedule::new(self.config.max_in_flight);
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut claim_backoff = Duration::from_millis(100);
        // A reason to look for any webhook's work, not only more of the busy
        // ones': the start, a wake-up (new or released work), the poll, a
        // retry this node scheduled falling due.
        let mut look = true;
        // When the retries this node scheduled fall due, earliest first (a
        // bounded number; the poll finds the others).
        let mut retries: BinaryHeap<Reverse<i64>> = BinaryHeap::new();
        // When the last look for new work was made (see LOOK_GAP).
        let mut last_look: Option<Instant> = None;
        // When queues were last checked for deliveries waiting too long.
        let mut last_stale_check = Instant::now();
        // The earliest later due time in the store (a scheduled delivery, a retry another
        // node scheduled), so an idle loop sleeps until then and not a whole poll; read again
        // after a wake-up or a poll (`due_stale`), at most every DUE_CHECK_GAP.
        let mut next_due: Option<i64> = None;
        let mut due_stale = true;
        let mut last_due_check: Option<Instant> = None;
        // A wake-up by deliveries all due at once (a lone event: the claim takes it) leaves
        // the next later due time as it was; where the store cannot tell, every wake-up does.
        let mut later_seen = self.store.later_work_generation();

        // The claim under way, if any: one at a time, polled beside the other
        // wake-ups, so requests that finish meanwhile are followed at once by
        // queued ones instead of waiting on the database (with a 1 ms
        // endpoint, a claim's round trip is several requests' time).
        let mut claiming: Option<Claiming<'_>> = None;
        // After a failed claim, none before this.
        let mut claim_pause: Option<Instant> = None;
        let mut claim_started = Instant::now();

        loop {
            if *shutdown.borrow() {
                break;
            }
            // Claim when something may be waiting and there is room: after a
            // wake-up, or when a busy webhook's queue runs low.
            let look_now = look && last_look.is_none_or(|t| t.elapsed() >= LOOK_GAP);
            if claiming.is_none()
                && claim_pause.is_none_or(|t| Instant::now() >= t)
                && schedule.room() > 0
                && (look_now || schedule.refill_due(origin.elapsed()))
            {
                let plan = self.plan_claim(&schedule, look_now, origin);
                if plan.others.is_some() {
                    // Looked: a wake-up from now on asks for another look.
                    look = false;
                }
                // Nothing to ask (the webhooks low on work are broken): no claim, which
                // would land at once and be asked again.
                if !plan.wants.is_empty() || plan.others.is_some() {
                    claim_started = Instant::now();
                    claiming = Some(Box::pin(self.fetch_claim(plan)));
                }
            }

            // Deliveries queued behind an endpoint that stalled go back to the
            // database long before their lease ends (they would be claimed again).
            if last_stale_check.elapsed() >= Duration::from_secs(1) {
                last_stale_check = Instant::now();
                let since = origin.elapsed().saturating_sub(self.config.lease / 3);
                let stale: Vec<DeliveryId> = schedule
                    .stale(since)
                    .into_iter()
                    .map(|(_, c)| c.delivery_id)
                    .collect();
                self.hand_back(&stale).await;
            }

            // Start whatever may start now, including what was just claimed
            // (before waiting: a lone event must not sit queued until a poll).
            let tick = schedule.tick(origin.elapsed());
            for (_, (webhook, claimed)) in tick.start {
                if self.config.fault.fires(&claimed) {
                    panic!(
                        "injected fault: panicking on delivery {}",
                        claimed.delivery_id
                    );
                }
                let outbound = self.outbound.clone();
                let done = done_tx.clone();
                tasks.spawn(async move {
                    let started = Instant::now();
                    let result = attempt(&outbound, &webhook, claimed).await;
                    let _ = done.send((result, started.elapsed()));
                });
            }
            // Wait for a reason to look again: a request finished, new work,
            // a retry or a paced request falling due, or the poll.
            let now = now_ms();
            let mut retry_due = false;
            while retries.peek().is_some_and(|Reverse(at)| *at <= now) {
                retries.pop();
                retry_due = true;
            }
            if retry_due {
                look = true;
                if schedule.room() > 0 {
                    continue;
                }
            }
            let mut sleep = self.config.poll;
            if look
                && claiming.is_none()
                && schedule.room() > 0
                && let Some(t) = last_look
            {
                // A look put off by LOOK_GAP.
                sleep = sleep.min(LOOK_GAP.saturating_sub(t.elapsed()));
            }
            if claiming.is_none()
                && let Some(t) = claim_pause
            {
                sleep = sleep.min(t.saturating_duration_since(Instant::now()));
            }
            if let Some(Reverse(at)) = retries.peek() {
                sleep = sleep.min(Duration::from_millis((at - now) as u64));
            }
            if due_stale && schedule.room() > 0 {
                match last_due_check.map(|t| DUE_CHECK_GAP.saturating_sub(t.elapsed())) {
                    Some(wait) if !wait.is_zero() => sleep = sleep.min(wait),
                    _ => {
                        last_due_check = Some(Instant::now());
                        match self.store.next_due_after(now).await {
                            Ok(at) => {
                                next_due = at;
                                due_stale = false;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "could not read the next due time; the poll will find it")
                            }
                        }
                    }
                }
            }
            let mut due_now = false;
            if let Some(at) = next_due {
                if at <= now {
                    // Due: look for it now, and read the next one after.
                    next_due = None;
                    due_stale = true;
                    due_now = true;
                } else {
                    sleep = sleep.min(Duration::from_millis((at - now) as u64));
                }
            }
            if due_now {
                look = true;
                if schedule.room() > 0 {
                    continue;
                }
            }
            let timer_looks = tick
                .wake_at
                .is_none_or(|at| at.saturating_sub(origin.elapsed()) >= sleep);
            if let Some(at) = tick.wake_at {
                sleep = sleep.min(at.saturating_sub(origin.elapsed()));
            }
            tokio::select! {
                landed = claim_landed(&mut claiming) => {
                    claiming = None;
                    match landed {
                        Ok(fetched) => {
                            schedule.claim_took(claim_started.elapsed());
                            claim_backoff = Duration::from_millis(100);
                            claim_pause = None;
                            // Other webhooks' work was looked for: look again at once
                            // if the claim was cut by its limit, else not before
                            // LOOK_GAP from now.
                            match Self::take_claim(&mut schedule, fetched, origin.elapsed()) {
                                Some(true) => {
                                    look = true;
                                    last_look = None;
                                }
                                Some(false) => last_look = Some(Instant::now()),
                                None => {}
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "claiming deliveries failed; retrying in {claim_backoff:?}");
                            claim_pause = Some(Instant::now() + claim_backoff);
                            claim_backoff = (claim_backoff * 2).min(Duration::from_secs(5));
                            look = true;
                        }
                    }
                }
                Some(first) = done_rx.recv() => {
                    let mut batch = vec![first];
                    while let Ok(more) = done_rx.try_recv() {
                        batch.push(more);
                    }
                    let at = origin.elapsed();
                    for (d, took) in batch {
                        schedule.finished(d.webhook_id, took, at);
                        if let DeliveryNext::RetryAt(t) = d.record.next
                            && retries.len() < TRACKED_RETRIES
                        {
                            retries.push(Reverse(t));
                        }
                        let _ = record_tx.send(d);
                    }
                }
                _ = wake.changed() => {
                    look = true;
                    let later = self.store.later_work_generation();
                    if later.is_none() || later != later_seen {
                        due_stale = true;
                        later_seen = later;
                    }
                }
                _ = self.released.notify.notified() => {
                    // The released keys' next deliveries: claimed by name when the
                    // webhook's queue runs low (at once if it is idle), as more work
                    // of a busy webhook is; a webhook this node no longer tracks is
                    // looked for.
                    for id in self.released.take() {
                        look |= !schedule.may_have_more(id);
                    }
                }
                _ = tokio::time::sleep(sleep) => {
                    look = look || timer_looks;
                    due_stale = due_stale || timer_looks;
                }
                _ = shutdown.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }

        // Shutting down: hand queued work back (and what a claim under way
        // brings), let requests in flight finish.
        if let Some(c) = claiming.take()
            && let Ok(fetched) = c.await
        {
            let ids: Vec<DeliveryId> = fetched.offers.iter().map(|(_, c)| c.delivery_id).collect();
            self.hand_back(&ids).await;
        }
        let unstarted: Vec<DeliveryId> = schedule
            .drain()
            .into_iter()
            .map(|(_, c)| c.delivery_id)
            .collect();
        self.hand_back(&unstarted).await;
        let deadline = Instant::now() + self.config.shutdown_grace;
        while schedule.in_flight() > 0 {
            tokio::select! {
                Some((d, took)) = done_rx.recv() => {
                    schedule.finished(d.webhook_id, took, origin.elapsed());
                    let _ = record_tx.send(d);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(in_flight = schedule.in_flight(), "shutdown grace ended with requests in flight; their leases will expire and they will be sent again");
                    break;
                }
            }
        }
        tasks.abort_all();
    }
}

/// Writes finished attempts in batches, and acts on 410 answers.
async fn record_loop(
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    rx: &mut mpsc::UnboundedReceiver<Done>,
    held: Held,
    released: Arc<Released>,
    alerter: Option<crate::alerts::Alerter>,
) {
    let mut batch = Vec::with_capacity(512);
    while rx.recv_many(&mut batch, 512).await > 0 {
        // A trickle of results is gathered for a moment into one transaction (one commit,
        // one fsync) instead of one each; the requests were sent, only their log waits.
        let until = Instant::now() + RECORD_GATHER;
        while batch.len() < 512 {
            let room = 512 - batch.len();
            match tokio::time::timeout_at(until, rx.recv_many(&mut batch, room)).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        metrics.attempts_recorded(batch.iter().map(|d| (d.webhook_id, &d.record, d.gave_up)));
        let mut gone = HashSet::new();
        let mut keys_released = HashSet::new();
        // Judged before the write, in attempt order; emitted after it (an alert never
        // stands for an attempt the log lacks).
        let now = now_ms();
        let alerts: Vec<crate::alerts::Alert> = match &alerter {
            Some(a) => batch
                .iter()
                .flat_map(|d| {
                    a.judge(
                        &crate::alerts::Finished {
                            webhook: d.webhook_id,
                            delivery: d.record.delivery_id,
                            alertable: d.alertable.as_deref(),
                            outcome: d.record.outcome,
                            next: d.record.next,
                            attempt_no: d.record.attempt_no,
                            status: d.record.response_status,
                            error: d.record.error.as_deref(),
                            gone: d.gone,
                        },
                        now,
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        let records: Vec<AttemptRecord> = batch
            .drain(..)
            .map(|d| {
                if d.gone {
                    gone.insert(d.webhook_id);
                }
                if d.ordered && !matches!(d.record.next, DeliveryNext::RetryAt(_)) {
                    keys_released.insert(d.webhook_id);
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
        {
            let mut held = lock(&held);
            for r in &records {
                held.remove(&r.delivery_id);
            }
        }
        released.add(keys_released);
        for alert in &alerts {
            if let Some(a) = &alerter {
                a.emit(alert).await;
            }
        }
        for id in gone {
            let reason = "the endpoint answered 410 Gone, so carehook disabled the webhook";
            let by = crate::domain::Actor::System("dispatcher: endpoint answered 410 Gone");
            // Only the change from enabled is news (several 410s, or another node, may come first).
            let was_enabled = registry.get(id).is_some_and(|w| w.row.enabled);
            match crate::registry::disable(&*store, &registry, &by, id, Some(reason.into())).await {
                Ok(w) => {
                    if let Some(a) = alerter.as_ref().filter(|_| was_enabled) {
                        let alert = crate::alerts::Alert::WebhookDisabled {
                            webhook: id,
                            name: w.row.name.clone(),
                            reason: reason.into(),
                        };
                        a.emit(&alert).await;
                    }
                }
                Err(crate::domain::Error::NotFound(_)) => {}
                Err(e) => {
                    tracing::error!(webhook = %id, error = %e.message(), "could not disable webhook")
                }
            }
        }
    }
}

fn ended_without_sending(c: &Claimed, why: String) -> Done {
    let now = now_ms();
    Done {
        webhook_id: c.webhook_id,
        gone: false,
        gave_up: false,
        ordered: c.ordering.is_some(),
        alertable: None,
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
            store_bodies: true,
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
    if compiled.spec.auth.is_oauth2() {
        // The token itself is added when the request goes out (`attempt`).
        masked
            .headers
            .push(("authorization".to_string(), format!("Bearer {MASK}")));
    }
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
    let limits = &webhook.compiled.limits;
    let attempt_no = c.attempts + 1;
    let started_at = now_ms();
    let fail = |record_error: String, request: serde_json::Value| Done {
        webhook_id: c.webhook_id,
        gone: false,
        gave_up: false,
        ordered: c.ordering.is_some(),
        alertable: alertable(&c),
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
            store_bodies: spec.payloads.store_bodies,
        },
    };

    // A stale delivery (a reminder for yesterday) is dropped, and logged so.
    let born = age_origin(spec, &c);
    if let (Some(max_age), Some(max_age_ms)) = (spec.retry.max_age, limits.max_age_ms())
        && started_at.saturating_sub(born) > max_age_ms
        && !c.is_test
        && !(spec.schedule.is_some() && c.attempts == 0)
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
    let (mut request, mut masked) = match build_request(
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
    if let Some(place) = &c.ordering {
        // The key's id and the delivery's number in it, so a receiver can tell a gap.
        for (name, value) in [
            (ordering::KEY_HEADER, place.key.clone()),
            (ordering::SEQUENCE_HEADER, place.sequence.to_string()),
        ] {
            request.headers.push((name.to_string(), value.clone()));
            masked.headers.push((name.to_string(), value));
        }
    }
    let logged_request = request_json(&masked);

    let clock = std::time::Instant::now();
    let result = send_authorized(outbound, webhook, request, limits.timeout).await;
    let duration_ms = clock.elapsed().as_millis() as i64;
    let ended = started_at + duration_ms;

    let mut gave_up = false;
    let mut schedule =
        |retry_after: Option<Duration>, error: String| -> (AttemptOutcome, DeliveryNext, String) {
            if c.is_test {
                // A test send reports its one answer; retrying is the admin's call.
                return (AttemptOutcome::Failed, DeliveryNext::Failed, error);
            }
            match spec.retry.next_attempt(
                attempt_no as u32,
                from_ms(born),
                from_ms(ended),
                retry_after,
                jitter_sample(),
            ) {
                NextAttempt::At(t) => (
                    AttemptOutcome::Retry,
                    DeliveryNext::RetryAt(t.timestamp_millis()),
                    error,
                ),
                NextAttempt::GiveUp(why) => {
                    gave_up = true;
                    (
                        AttemptOutcome::Failed,
                        DeliveryNext::Failed,
                        format!("{error}; {why}"),
                    )
                }
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
        gave_up,
        ordered: c.ordering.is_some(),
        alertable: alertable(&c),
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
            store_bodies: spec.payloads.store_bodies,
        },
    }
}

/// When a delivery's age (for `retry.max_age`) starts: its event's time, or for a scheduled
/// webhook its due time, so a reminder booked weeks ahead is not stale when it falls due. (Its
/// first attempt is never stale: it is on time by design.)
fn age_origin(spec: &carehook_core::webhook::WebhookSpec, c: &Claimed) -> i64 {
    match &spec.schedule {
        Some(s) => s
            .due_at(&c.vars)
            .map_or(c.created_at, |due| due.max(c.created_at)),
        None => c.created_at,
    }
}

/// Sends a rendered request with the webhook's TLS settings and, for an OAuth 2.0 webhook,
/// its access token; a 401 renews the token once and sends again (a second 401 is the answer).
async fn send_authorized(
    outbound: &Outbound,
    webhook: &Loaded,
    request: RenderedRequest,
    timeout: Duration,
) -> Result<crate::outbound::Answer, SendError> {
    let tls = webhook.compiled.spec.tls.as_ref();
    let oauth = webhook.compiled.spec.auth.is_oauth2();
    let tokens = match (oauth, outbound.tokens()) {
        (false, _) => None,
        (true, Some(t)) => Some(t),
        (true, None) => {
            return Err(SendError::Token(
                "this carehook has no token store set up".into(),
            ));
        }
    };
    let mut token = match tokens {
        Some(t) => Some(t.get(webhook, timeout).await.map_err(SendError::Token)?),
        None => None,
    };
    let mut renewed = false;
    loop {
        let mut headers = request.headers.clone();
        if let Some(t) = &token {
            headers.push(("authorization".to_string(), format!("Bearer {}", t.value)));
        }
        let answer = outbound
            .send_tls(
                Outgoing {
                    method: request.method.as_str(),
                    url: &request.url,
                    headers: &headers,
                    body: request.body.clone(),
                    timeout,
                },
                tls,
            )
            .await?;
        match (answer.status, tokens, &token) {
            (401, Some(tokens), Some(t)) if !renewed => {
                renewed = true;
                token = Some(
                    tokens
                        .renew(webhook, t.generation, timeout)
                        .await
                        .map_err(SendError::Token)?,
                );
            }
            _ => return Ok(answer),
        }
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
    fn jitter_samples_are_in_range() {
        for _ in 0..1000 {
            let s = jitter_sample();
            assert!((0.0..1.0).contains(&s));
        }
    }
}
