//! The dispatcher's scheduling state, with no I/O and no clock of its own:
//! which claimed deliveries may start now, how many more of each webhook's
//! deliveries to claim, and when to look again.
//!
//! Time is passed in as a [`Duration`] since an origin the caller picks, so
//! a test drives it with a fake clock and gets exact answers. The caller
//! [`offer`](Schedule::offer)s what it claimed, calls [`tick`](Schedule::tick)
//! to learn what to start, and reports each finished request with
//! [`finished`](Schedule::finished).
//!
//! Fairness: a tick starts one request per webhook per round, taking turns
//! from where the last tick stopped, so when the node-wide cap binds every
//! webhook with work gets its share instead of the first one taking all.
//! And no webhook, whatever its `max_in_flight`, can take the node: a
//! webhook's requests are capped at its share of the node (the node's
//! capacity less a reserve, split between the webhooks with work), and once
//! a webhook has [`FLOOR`] requests open it may only grow while the node has
//! more than the reserve free. The reserve is for webhooks with fewer than
//! [`FLOOR`] open, so endpoints that accept and never answer cannot hold up
//! a healthy one.
//!
//! Pipelining: each webhook keeps a small queue of claimed deliveries
//! (its prefetch) beside its requests in flight, so a finished request is
//! followed at once by the next, with no claim in between; the queue is
//! sized from the webhook's cap and its recent latency, to cover a claim's
//! round trip and no more (twice its recent time, at least [`PREFETCH_TIME`];
//! a claim waits for the database's writer behind intake and the attempt
//! log, so under load it takes longer than on an idle node), and claims ask
//! for each webhook only what it can use ([`Schedule::wants`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use carehook_core::ids::WebhookId;
use carehook_core::webhook::{DeliveryLimits, Rate};

/// Requests any webhook may have open out of the node's reserve.
pub const FLOOR: usize = 8;

/// How long a webhook's queued deliveries should last at its recent pace at
/// least: long enough to hide a claim's round trip on an idle node, short
/// against a lease. Claims that take longer stretch it ([`MAX_PREFETCH_TIME`]).
pub const PREFETCH_TIME: Duration = Duration::from_millis(20);

/// The longest a webhook's queue is sized to last, however slow claims are.
pub const MAX_PREFETCH_TIME: Duration = Duration::from_millis(200);

/// The most deliveries queued for one webhook.
pub const MAX_PREFETCH: usize = 128;

/// Paces one webhook's requests (GCRA, the token bucket written as "the
/// time the next request is due"): `rate` a second, a burst of
/// [`Rate::burst`] after an idle spell. Integer nanoseconds, so pacing with
/// a fake clock is exact.
#[derive(Debug, Clone)]
struct Pacer {
    rate: Rate,
    /// When the next request would be due if none could go early.
    due: Duration,
}

impl Pacer {
    fn new(rate: Rate, now: Duration) -> Self {
        Pacer { rate, due: now }
    }

    /// How early a request may go: the burst less one, in intervals.
    fn tolerance(&self) -> Duration {
        self.rate.interval() * (self.rate.burst() - 1)
    }

    /// Takes a slot now, or says when the next one is free.
    fn take(&mut self, now: Duration) -> Result<(), Duration> {
        let earliest = self.due.saturating_sub(self.tolerance());
        if now >= earliest {
            self.due = self.due.max(now).saturating_add(self.rate.interval());
            Ok(())
        } else {
            Err(earliest)
        }
    }

    /// True once a full burst is available again: the pacer then holds no
    /// information, and can be dropped.
    fn idle(&self, now: Duration) -> bool {
        self.due <= now
    }
}

#[derive(Debug)]
struct Endpoint<T> {
    in_flight: usize,
    /// The webhook's cap, as of its last offered delivery.
    cap: usize,
    /// Claimed, not started, with when each was offered.
    queue: VecDeque<(Duration, T)>,
    pacer: Option<Pacer>,
    /// Recent time per request (a moving average); `None` until one finished.
    latency: Option<Duration>,
    /// When a request last finished, or the first started after none was open.
    progress: Duration,
    /// The database may hold more due deliveries of this webhook: its last
    /// claim got all it asked for.
    more: bool,
}

impl<T> Endpoint<T> {
    fn active(&self) -> bool {
        self.in_flight > 0 || !self.queue.is_empty()
    }

    /// The time a request takes here, as far as can be told now: its
    /// recent average, or longer if the open requests have been going
    /// longer than that without one finishing (a hanging endpoint). `None`
    /// until a request finished.
    fn pace(&self, now: Duration) -> Option<Duration> {
        let stalled = if self.in_flight > 0 {
            now.saturating_sub(self.progress)
        } else {
            Duration::ZERO
        };
        self.latency.map(|l| l.max(stalled))
    }
}

/// What a [`Schedule::tick`] says to do.
#[derive(Debug)]
pub struct Tick<T> {
    /// Start these now (each counted in flight until `finished`).
    pub start: Vec<(WebhookId, T)>,
    /// The earliest time a rate-limited webhook's next request may go.
    pub wake_at: Option<Duration>,
}

/// Per-webhook queues, in-flight counts and pacers, under a node-wide cap.
#[derive(Debug)]
pub struct Schedule<T> {
    max_in_flight: usize,
    /// Slots only webhooks with fewer than [`FLOOR`] requests open may take.
    reserve: usize,
    endpoints: BTreeMap<WebhookId, Endpoint<T>>,
    in_flight: usize,
    queued: usize,
    /// The webhook after which the next tick starts its first round.
    turn: Option<WebhookId>,
    /// Recent time per claim, from asking to having the rows (a moving average).
    claim_time: Duration,
}

impl<T> Schedule<T> {
    /// `max_in_flight`: most requests in flight across all webhooks.
    pub fn new(max_in_flight: usize) -> Self {
        let max_in_flight = max_in_flight.max(1);
        Schedule {
            max_in_flight,
            reserve: max_in_flight / 4,
            endpoints: BTreeMap::new(),
            in_flight: 0,
            queued: 0,
            turn: None,
            claim_time: Duration::ZERO,
        }
    }

    /// The most requests one webhook may have open while `active` webhooks
    /// have work: an even split of the node less its reserve, and never
    /// below [`FLOOR`].
    fn share(&self, active: usize) -> usize {
        ((self.max_in_flight - self.reserve) / active.max(1)).max(FLOOR)
    }

    fn active(&self) -> usize {
        self.endpoints.values().filter(|ep| ep.active()).count()
    }

    /// How many more requests `ep` could start now, queue aside.
    fn startable(&self, ep: &Endpoint<T>, share: usize) -> usize {
        let own = ep.cap.min(share).saturating_sub(ep.in_flight);
        let node = self.max_in_flight.saturating_sub(self.in_flight);
        // Past the floor, a webhook leaves the reserve alone.
        let beyond_reserve = (self.max_in_flight - self.reserve).saturating_sub(self.in_flight);
        let pool = FLOOR.saturating_sub(ep.in_flight).max(beyond_reserve);
        own.min(node).min(pool)
    }

    /// How long queued deliveries should last: twice a claim's recent time
    /// (the queue is refilled at half), within [`PREFETCH_TIME`] and
    /// [`MAX_PREFETCH_TIME`].
    fn prefetch_time(&self) -> Duration {
        (self.claim_time * 2).clamp(PREFETCH_TIME, MAX_PREFETCH_TIME)
    }

    /// Queued deliveries that keep `ep`'s slots full for
    /// [`prefetch_time`](Self::prefetch_time) at its recent pace: one until
    /// it has a pace, at most [`MAX_PREFETCH`].
    fn prefetch(&self, ep: &Endpoint<T>, share: usize, now: Duration) -> usize {
        let slots = ep.cap.min(share).max(1);
        match ep.pace(now) {
            Some(pace) if !pace.is_zero() => {
                let n = slots as u128 * self.prefetch_time().as_nanos() / pace.as_nanos();
                (n as usize).clamp(1, MAX_PREFETCH)
            }
            Some(_) => slots.min(MAX_PREFETCH),
            None => 1,
        }
    }

    /// Takes a claimed delivery into the webhook's queue.
    pub fn offer(&mut self, webhook: WebhookId, limits: &DeliveryLimits, item: T, now: Duration) {
        let ep = self.endpoints.entry(webhook).or_insert_with(|| Endpoint {
            in_flight: 0,
            cap: 1,
            queue: VecDeque::new(),
            pacer: None,
            latency: None,
            progress: now,
            more: false,
        });
        ep.cap = limits.max_in_flight.max(1) as usize;
        match (limits.rate, &ep.pacer) {
            (Some(rate), Some(p)) if p.rate == rate => {}
            (Some(rate), _) => ep.pacer = Some(Pacer::new(rate, now)),
            (None, _) => ep.pacer = None,
        }
        ep.queue.push_back((now, item));
        self.queued += 1;
    }

    /// What may start at `now`: one request per webhook per round, while
    /// the node-wide cap, each webhook's share and cap, and its pacer allow.
    pub fn tick(&mut self, now: Duration) -> Tick<T> {
        // A webhook with nothing queued, nothing in flight and a full burst
        // holds no information: forget it, so nothing grows per webhook.
        self.endpoints
            .retain(|_, ep| ep.active() || ep.pacer.as_ref().is_some_and(|p| !p.idle(now)));
        let share = self.share(self.active());
        let mut start = Vec::new();
        let mut wake_at: Option<Duration> = None;
        // Webhooks in turn order: those after the last one served, then the rest.
        let order: Vec<WebhookId> = match self.turn {
            Some(t) => {
                let after = self
                    .endpoints
                    .range(t..)
                    .map(|(id, _)| *id)
                    .filter(|id| *id != t);
                let before = self.endpoints.range(..=t).map(|(id, _)| *id);
                after.chain(before).collect()
            }
            None => self.endpoints.keys().copied().collect(),
        };
        let mut ready: Vec<WebhookId> = order
            .into_iter()
            .filter(|id| !self.endpoints[id].queue.is_empty())
            .collect();
        while !ready.is_empty() && self.in_flight < self.max_in_flight {
            let mut still = Vec::with_capacity(ready.len());
            for id in ready {
                let ep = &self.endpoints[&id];
                if ep.queue.is_empty() || self.startable(ep, share) == 0 {
                    continue;
                }
                let ep = self.endpoints.get_mut(&id).expect("listed above");
                if let Some(p) = ep.pacer.as_mut()
                    && let Err(at) = p.take(now)
                {
                    wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
                    continue;
                }
                let (_, item) = ep.queue.pop_front().expect("checked non-empty");
                if ep.in_flight == 0 {
                    ep.progress = now;
                }
                ep.in_flight += 1;
                self.in_flight += 1;
                self.queued -= 1;
                self.turn = Some(id);
                start.push((id, item));
                still.push(id);
            }
            ready = still;
        }
        Tick { start, wake_at }
    }

    /// A request started by a tick has finished after `took`.
    pub fn finished(&mut self, webhook: WebhookId, took: Duration, now: Duration) {
        if let Some(ep) = self.endpoints.get_mut(&webhook)
            && ep.in_flight > 0
        {
            ep.in_flight -= 1;
            self.in_flight -= 1;
            ep.progress = now;
            ep.latency = Some(match ep.latency {
                Some(l) => (l * 3 + took) / 4,
                None => took,
            });
        }
    }

    /// How many more deliveries to claim: room under the node-wide cap
    /// that neither requests in flight nor queued ones take.
    pub fn room(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight + self.queued)
    }

    /// How many more deliveries of each known webhook to claim: what it
    /// could start now plus its prefetch, less what it has queued, within
    /// the node's room. `all`: every webhook that wants some (after a
    /// wake-up, when any may have new work); otherwise only those whose last
    /// claim left more behind.
    pub fn wants(&self, now: Duration, all: bool) -> Vec<(WebhookId, u32)> {
        let share = self.share(self.active());
        let mut room = self.room();
        let mut out = Vec::new();
        for (id, ep) in &self.endpoints {
            if room == 0 {
                break;
            }
            if !all && !ep.more {
                continue;
            }
            let want = (self.startable(ep, share) + self.prefetch(ep, share, now))
                .saturating_sub(ep.queue.len())
                .min(room);
            if want > 0 {
                room -= want;
                out.push((*id, want as u32));
            }
        }
        out
    }

    /// Whether some webhook's queue ran low while the database has more of
    /// its work: claim for it now rather than when its slots run dry.
    pub fn refill_due(&self, now: Duration) -> bool {
        if self.room() == 0 {
            return false;
        }
        let share = self.share(self.active());
        self.endpoints.values().any(|ep| {
            ep.more
                && self.startable(ep, share) > 0
                && ep.queue.len() <= self.prefetch(ep, share, now) / 2
        })
    }

    /// A claim took `took`, from asking to having its rows: the queues are
    /// sized to outlast the next one.
    pub fn claim_took(&mut self, took: Duration) {
        self.claim_time = (self.claim_time * 3 + took) / 4;
    }

    /// Notes what a claim brought for each webhook: one that got all it
    /// asked for may have more waiting.
    pub fn claimed(&mut self, webhook: WebhookId, asked: u32, got: u32) {
        if let Some(ep) = self.endpoints.get_mut(&webhook) {
            ep.more = got >= asked;
        }
    }

    /// The database may hold more of this webhook's work now (an ordering key
    /// of it was released): claim it when its queue runs low. False if the
    /// schedule does not know the webhook (look for it instead).
    pub fn may_have_more(&mut self, webhook: WebhookId) -> bool {
        match self.endpoints.get_mut(&webhook) {
            Some(ep) => {
                ep.more = true;
                true
            }
            None => false,
        }
    }

    /// The webhooks this schedule knows (claims name them, with their wants).
    pub fn known(&self) -> impl Iterator<Item = WebhookId> + '_ {
        self.endpoints.keys().copied()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Empties every queue (at shutdown, to release what never started).
    pub fn drain(&mut self) -> Vec<T> {
        self.queued = 0;
        self.endpoints
            .values_mut()
            .flat_map(|ep| ep.queue.drain(..).map(|(_, item)| item))
            .collect()
    }

    /// Takes out what has been queued since before `since` (its endpoint
    /// stalled): to go back to the database before its lease runs out.
    pub fn stale(&mut self, since: Duration) -> Vec<T> {
        let mut out = Vec::new();
        for ep in self.endpoints.values_mut() {
            while ep.queue.front().is_some_and(|(at, _)| *at < since) {
                let (_, item) = ep.queue.pop_front().expect("checked");
                out.push(item);
            }
        }
        self.queued -= out.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits(max_in_flight: u32, rate: Option<f64>) -> DeliveryLimits {
        DeliveryLimits {
            max_in_flight,
            rate: rate.map(|r| Rate::new(r).unwrap()),
            timeout: Duration::from_secs(1),
            max_age: None,
        }
    }

    fn ids(n: u128) -> Vec<WebhookId> {
        (1..=n)
            .map(|i| WebhookId::from_uuid(uuid::Uuid::from_u128(i)))
            .collect()
    }

    /// The wants of one webhook, if any.
    fn want_of<T>(s: &Schedule<T>, id: WebhookId) -> Option<u32> {
        s.wants(Duration::ZERO, true)
            .into_iter()
            .find(|(w, _)| *w == id)
            .map(|(_, n)| n)
    }

    #[test]
    fn a_webhook_never_exceeds_its_cap_nor_the_node_its_own() {
        let [a, b] = ids(2)[..] else { unreachable!() };
        let mut s = Schedule::new(5);
        for i in 0..4 {
            s.offer(a, &limits(2, None), i, Duration::ZERO);
        }
        for i in 0..4 {
            s.offer(b, &limits(8, None), 10 + i, Duration::ZERO);
        }
        let t = s.tick(Duration::ZERO);
        let started_a = t.start.iter().filter(|(id, _)| *id == a).count();
        assert_eq!(started_a, 2);
        assert_eq!(t.start.len(), 5);
        assert_eq!(s.in_flight(), 5);
        assert!(s.tick(Duration::ZERO).start.is_empty());
        // Nothing more is claimed for a full node.
        assert_eq!(s.room(), 0);
        assert!(s.wants(Duration::ZERO, true).is_empty());

        // One of a's finishes: a may start one more, not two.
        s.finished(a, MS, MS);
        let t = s.tick(MS);
        assert_eq!(t.start.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [a]);
        assert!(s.tick(MS).start.is_empty());
    }

    #[test]
    fn hanging_webhooks_leave_the_reserve_to_the_others() {
        for hanging in [2u128, 10] {
            let hooks = ids(hanging + 1);
            let (dead, healthy) = hooks.split_at(hanging as usize);
            let mut s = Schedule::new(512);
            // Each hanging webhook, at the highest cap, is offered more than it can take,
            // and its requests never finish.
            for _ in 0..400 {
                for id in dead {
                    s.offer(*id, &limits(256, None), 0, Duration::ZERO);
                }
                s.tick(Duration::ZERO);
            }
            let held = s.in_flight();
            assert!(
                held <= 512 - 128,
                "{hanging} hanging webhooks hold {held} of 512"
            );
            // The healthy webhook gets slots at once, and more than it asks for now.
            let h = healthy[0];
            assert!(want_of(&s, h).is_none(), "not known yet");
            for i in 0..8 {
                s.offer(h, &limits(8, None), i, Duration::ZERO);
            }
            let t = s.tick(Duration::ZERO);
            assert_eq!(
                t.start.iter().filter(|(id, _)| *id == h).count(),
                8,
                "with {hanging} hanging webhooks"
            );
            // None of the hanging ones is asked for more than a delivery to queue.
            for id in dead {
                assert!(want_of(&s, *id).unwrap_or(0) <= 1);
            }
        }
    }

    #[test]
    fn a_share_is_split_between_busy_webhooks() {
        let [a, b] = ids(2)[..] else { unreachable!() };
        let mut s = Schedule::new(512);
        for _ in 0..300 {
            s.offer(a, &limits(256, None), 0, Duration::ZERO);
            s.offer(b, &limits(256, None), 0, Duration::ZERO);
        }
        let t = s.tick(Duration::ZERO);
        let of = |id| t.start.iter().filter(|(w, _)| *w == id).count();
        // 512 less a reserve of 128, split in two.
        assert_eq!((of(a), of(b)), (192, 192));
    }

    #[test]
    fn the_prefetch_follows_the_pace_and_claims_ask_only_for_room() {
        let [fast, slow] = ids(2)[..] else {
            unreachable!()
        };
        let mut s = Schedule::new(512);
        // Unknown pace: the free slots and one to queue.
        s.offer(fast, &limits(8, None), 0, Duration::ZERO);
        s.offer(slow, &limits(8, None), 0, Duration::ZERO);
        assert_eq!(want_of(&s, fast), Some(8));
        s.tick(Duration::ZERO);
        // Requests take 1 ms at one, 1 s at the other.
        s.finished(fast, MS, MS);
        s.finished(slow, Duration::from_secs(1), Duration::from_secs(1));
        // Fast: 8 slots × 20 ms / 1 ms = 160, capped at 64 queued, plus its 8 free slots.
        assert_eq!(want_of(&s, fast), Some(8 + MAX_PREFETCH as u32));
        // Slow: its free slots and one queued.
        assert_eq!(want_of(&s, slow), Some(8 + 1));
        // Only a webhook whose last claim left more behind is refilled between wake-ups.
        assert!(s.wants(MS, false).is_empty());
        assert!(!s.refill_due(MS));
        s.claimed(fast, 72, 72);
        s.claimed(slow, 9, 3);
        assert_eq!(
            s.wants(MS, false)
                .iter()
                .map(|(id, _)| *id)
                .collect::<Vec<_>>(),
            [fast]
        );
        assert!(s.refill_due(MS));
    }

    #[test]
    fn slow_claims_deepen_the_prefetch_within_its_bounds() {
        let a = ids(1)[0];
        let mut s = Schedule::new(512);
        s.offer(a, &limits(8, None), 0, Duration::ZERO);
        s.tick(Duration::ZERO);
        // Requests take 4 ms: 8 slots × 20 ms / 4 ms = 40 queued, plus 8 free slots.
        s.finished(a, 4 * MS, 4 * MS);
        assert_eq!(want_of(&s, a), Some(8 + 40));
        // Claims that take 5 ms stay within the 20 ms floor.
        for _ in 0..20 {
            s.claim_took(5 * MS);
        }
        assert_eq!(want_of(&s, a), Some(8 + 40));
        // Claims of about 25 ms: the queue lasts ~50 ms, ~100 deliveries.
        for _ in 0..40 {
            s.claim_took(25 * MS);
        }
        let want = want_of(&s, a).unwrap();
        assert!((8 + 95..=8 + 100).contains(&want), "{want}");
        // However slow the claims, the queue is at most MAX_PREFETCH.
        for _ in 0..40 {
            s.claim_took(Duration::from_secs(2));
        }
        assert_eq!(want_of(&s, a), Some(8 + MAX_PREFETCH as u32));
    }

    #[test]
    fn a_stalled_endpoint_gets_no_prefetch() {
        let a = ids(1)[0];
        let mut s = Schedule::new(512);
        for i in 0..20 {
            s.offer(a, &limits(8, None), i, Duration::ZERO);
        }
        s.tick(Duration::ZERO);
        // It answered fast once, then its requests hang for a minute.
        s.finished(a, MS, MS);
        s.tick(MS);
        let later = Duration::from_secs(60);
        // 11 queued already, far more than its one: nothing more to claim.
        assert_eq!(s.wants(later, true), []);
    }

    #[test]
    fn rate_pacing_is_exact_on_a_fake_clock() {
        let a = ids(1)[0];
        let mut s = Schedule::new(100);
        // 2 a second: a burst of two, then one every 500 ms.
        for i in 0..6 {
            s.offer(a, &limits(100, Some(2.0)), i, Duration::ZERO);
        }
        let t = s.tick(Duration::ZERO);
        assert_eq!(t.start.len(), 2);
        assert_eq!(t.wake_at, Some(500 * MS));
        assert!(s.tick(499 * MS).start.is_empty());
        let t = s.tick(500 * MS);
        assert_eq!(t.start.len(), 1);
        assert_eq!(t.wake_at, Some(1000 * MS));
        // Late ticks do not let requests bunch beyond the burst.
        let t = s.tick(2200 * MS);
        assert_eq!(t.start.len(), 2);
        assert_eq!(t.wake_at, Some(2700 * MS));
        let t = s.tick(2700 * MS);
        assert_eq!(t.start.iter().map(|(_, i)| *i).collect::<Vec<_>>(), [5]);
        assert_eq!(t.wake_at, None);
    }

    #[test]
    fn the_slowest_accepted_rate_waits_a_bounded_time() {
        let a = ids(1)[0];
        let mut s = Schedule::new(10);
        for i in 0..2 {
            s.offer(a, &limits(10, Some(0.001)), i, Duration::ZERO);
        }
        assert_eq!(s.tick(Duration::ZERO).start.len(), 1);
        let t = s.tick(Duration::ZERO);
        assert_eq!(t.wake_at, Some(Duration::from_secs(1000)));
        assert_eq!(s.tick(Duration::from_secs(1000)).start.len(), 1);
    }

    #[test]
    fn a_slow_webhook_does_not_block_the_others() {
        let [slow, quick] = ids(2)[..] else {
            unreachable!()
        };
        let mut s = Schedule::new(10);
        for i in 0..4 {
            s.offer(slow, &limits(2, None), i, Duration::ZERO);
        }
        s.tick(Duration::ZERO);
        // Slow's two requests hang; quick's work flows past them.
        let mut done = 0;
        for round in 0..20u32 {
            let now = round * MS;
            if s.room() > 0 {
                s.offer(quick, &limits(2, None), 100, now);
            }
            for (id, _) in s.tick(now).start {
                assert_eq!(id, quick);
                s.finished(quick, MS, now);
                done += 1;
            }
        }
        assert_eq!(done, 20);
        assert_eq!(s.in_flight(), 2);
    }

    #[test]
    fn webhooks_take_turns_when_the_node_cap_binds() {
        let hooks = ids(3);
        let mut s = Schedule::new(3);
        for (n, id) in hooks.iter().enumerate() {
            for i in 0..6 {
                s.offer(*id, &limits(256, None), n * 10 + i, Duration::ZERO);
            }
        }
        let mut served = BTreeMap::<WebhookId, usize>::new();
        for round in 0..12u32 {
            let now = round * MS;
            let started = s.tick(now).start;
            assert!(started.len() <= 3);
            for (id, _) in started {
                *served.entry(id).or_default() += 1;
                s.finished(id, MS, Duration::ZERO);
            }
        }
        // Eighteen queued, three at a time: each webhook served six times.
        assert_eq!(served.values().copied().collect::<Vec<_>>(), [6, 6, 6]);
    }

    #[test]
    fn one_slot_rotates_across_webhooks() {
        let hooks = ids(3);
        let mut s = Schedule::new(1);
        for id in &hooks {
            for _ in 0..2 {
                s.offer(*id, &limits(8, None), *id, Duration::ZERO);
            }
        }
        let mut order = Vec::new();
        for _ in 0..6 {
            let t = s.tick(Duration::ZERO);
            assert_eq!(t.start.len(), 1);
            let (id, _) = t.start[0];
            order.push(id);
            s.finished(id, MS, Duration::ZERO);
        }
        let mut expected = hooks.clone();
        expected.extend(&hooks);
        assert_eq!(order, expected);
    }

    #[test]
    fn a_changed_rate_takes_effect_and_idle_pacers_are_dropped() {
        let a = ids(1)[0];
        let mut s = Schedule::new(10);
        s.offer(a, &limits(10, Some(1.0)), 0, Duration::ZERO);
        s.offer(a, &limits(10, Some(1.0)), 1, Duration::ZERO);
        assert_eq!(s.tick(Duration::ZERO).start.len(), 1);
        // The admin raised the rate: the new pacer starts with a full burst.
        s.offer(a, &limits(10, Some(100.0)), 2, Duration::ZERO);
        assert_eq!(s.tick(Duration::ZERO).start.len(), 2);
        for _ in 0..3 {
            s.finished(a, MS, Duration::ZERO);
        }
        // Paced until its burst is back...
        s.tick(10 * MS);
        assert_eq!(s.endpoints.len(), 1);
        // ...then its state is gone: nothing grows per webhook.
        s.tick(20 * MS);
        assert!(s.endpoints.is_empty());
        assert_eq!(s.drain(), Vec::<i32>::new());
    }

    #[test]
    fn what_waited_too_long_behind_a_stalled_endpoint_is_handed_back() {
        let a = ids(1)[0];
        let mut s = Schedule::new(512);
        for i in 0..10 {
            s.offer(a, &limits(2, None), i, Duration::ZERO);
        }
        s.tick(Duration::ZERO);
        s.offer(a, &limits(2, None), 10, Duration::from_secs(30));
        // Offered before 20 s: the eight queued at 0; the one offered at 30 s stays.
        assert_eq!(
            s.stale(Duration::from_secs(20)),
            (2..10).collect::<Vec<_>>()
        );
        assert_eq!(s.room(), 512 - 2 - 1);
        assert_eq!(s.drain(), [10]);
    }

    #[test]
    fn drain_hands_back_what_never_started() {
        let [a, b] = ids(2)[..] else { unreachable!() };
        let mut s = Schedule::new(1);
        s.offer(a, &limits(1, None), 1, Duration::ZERO);
        s.offer(b, &limits(1, None), 2, Duration::ZERO);
        let started = s.tick(Duration::ZERO).start;
        assert_eq!(started.len(), 1);
        let mut left = s.drain();
        left.sort();
        assert_eq!(left.len(), 1);
        assert_ne!(left[0], started[0].1);
        assert_eq!(s.room(), 0);
    }
}
