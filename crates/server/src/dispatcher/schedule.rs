//! The dispatcher's scheduling state, with no I/O and no clock of its own:
//! which claimed deliveries may start now, which webhooks to leave out of the
//! next claim, and when to look again.
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

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use carehook_core::ids::WebhookId;
use carehook_core::webhook::{DeliveryLimits, Rate};

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
    queue: VecDeque<T>,
    pacer: Option<Pacer>,
}

impl<T> Endpoint<T> {
    fn holds(&self) -> usize {
        self.in_flight + self.queue.len()
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
    endpoints: BTreeMap<WebhookId, Endpoint<T>>,
    in_flight: usize,
    queued: usize,
    /// The webhook after which the next tick starts its first round.
    turn: Option<WebhookId>,
}

impl<T> Schedule<T> {
    /// `max_in_flight`: most requests in flight across all webhooks.
    pub fn new(max_in_flight: usize) -> Self {
        Schedule {
            max_in_flight: max_in_flight.max(1),
            endpoints: BTreeMap::new(),
            in_flight: 0,
            queued: 0,
            turn: None,
        }
    }

    /// Takes a claimed delivery into the webhook's queue. A webhook already
    /// holding twice its cap has more than it can use soon: the delivery is
    /// handed back (`Err`) to be released to the database.
    pub fn offer(
        &mut self,
        webhook: WebhookId,
        limits: &DeliveryLimits,
        item: T,
        now: Duration,
    ) -> Result<(), T> {
        let ep = self.endpoints.entry(webhook).or_insert_with(|| Endpoint {
            in_flight: 0,
            cap: 1,
            queue: VecDeque::new(),
            pacer: None,
        });
        ep.cap = limits.max_in_flight.max(1) as usize;
        if ep.holds() >= ep.cap * 2 {
            return Err(item);
        }
        match (limits.rate, &ep.pacer) {
            (Some(rate), Some(p)) if p.rate == rate => {}
            (Some(rate), _) => ep.pacer = Some(Pacer::new(rate, now)),
            (None, _) => ep.pacer = None,
        }
        ep.queue.push_back(item);
        self.queued += 1;
        Ok(())
    }

    /// What may start at `now`: one request per webhook per round, while
    /// the node-wide cap, each webhook's cap and its pacer allow.
    pub fn tick(&mut self, now: Duration) -> Tick<T> {
        // A webhook with nothing queued, nothing in flight and a full burst
        // holds no information: forget it, so nothing grows per webhook.
        self.endpoints.retain(|_, ep| {
            ep.in_flight > 0
                || !ep.queue.is_empty()
                || ep.pacer.as_ref().is_some_and(|p| !p.idle(now))
        });
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
                if self.in_flight >= self.max_in_flight {
                    break;
                }
                let ep = self.endpoints.get_mut(&id).expect("listed above");
                if ep.in_flight >= ep.cap || ep.queue.is_empty() {
                    continue;
                }
                if let Some(p) = ep.pacer.as_mut()
                    && let Err(at) = p.take(now)
                {
                    wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
                    continue;
                }
                let item = ep.queue.pop_front().expect("checked non-empty");
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

    /// A request started by a tick has finished.
    pub fn finished(&mut self, webhook: WebhookId) {
        if let Some(ep) = self.endpoints.get_mut(&webhook)
            && ep.in_flight > 0
        {
            ep.in_flight -= 1;
            self.in_flight -= 1;
        }
    }

    /// How many more deliveries to claim: room under the node-wide cap
    /// that neither requests in flight nor queued ones take.
    pub fn room(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight + self.queued)
    }

    /// Webhooks holding as much as their cap: left out of the next claim,
    /// so a slow endpoint's backlog stays in the database and does not
    /// crowd out the others.
    pub fn saturated(&self) -> Vec<WebhookId> {
        self.endpoints
            .iter()
            .filter(|(_, ep)| ep.holds() >= ep.cap)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Empties every queue (at shutdown, to release what never started).
    pub fn drain(&mut self) -> Vec<T> {
        self.queued = 0;
        self.endpoints
            .values_mut()
            .flat_map(|ep| ep.queue.drain(..))
            .collect()
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

    #[test]
    fn a_webhook_never_exceeds_its_cap_nor_the_node_its_own() {
        let [a, b] = ids(2)[..] else { unreachable!() };
        let mut s = Schedule::new(5);
        for i in 0..4 {
            s.offer(a, &limits(2, None), i, Duration::ZERO).unwrap();
        }
        // Twice the cap is held: the fifth goes back to the database.
        assert_eq!(s.offer(a, &limits(2, None), 4, Duration::ZERO), Err(4));
        for i in 0..4 {
            s.offer(b, &limits(8, None), 10 + i, Duration::ZERO)
                .unwrap();
        }
        let t = s.tick(Duration::ZERO);
        let started_a = t.start.iter().filter(|(id, _)| *id == a).count();
        assert_eq!(started_a, 2);
        assert_eq!(t.start.len(), 5);
        assert_eq!(s.in_flight(), 5);
        assert!(s.tick(Duration::ZERO).start.is_empty());
        assert_eq!(s.saturated(), vec![a]);
        assert_eq!(s.room(), 0);

        // One of a's finishes: a may start one more, not two.
        s.finished(a);
        let t = s.tick(MS);
        assert_eq!(t.start.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [a]);
        assert!(s.tick(MS).start.is_empty());
    }

    #[test]
    fn rate_pacing_is_exact_on_a_fake_clock() {
        let a = ids(1)[0];
        let mut s = Schedule::new(100);
        // 2 a second: a burst of two, then one every 500 ms.
        for i in 0..6 {
            s.offer(a, &limits(100, Some(2.0)), i, Duration::ZERO)
                .unwrap();
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
            s.offer(a, &limits(10, Some(0.001)), i, Duration::ZERO)
                .unwrap();
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
            s.offer(slow, &limits(2, None), i, Duration::ZERO).unwrap();
        }
        s.tick(Duration::ZERO);
        // Slow's two requests hang; quick's work flows past them.
        let mut done = 0;
        for round in 0..20u32 {
            let now = round * MS;
            if s.room() > 0 && !s.saturated().contains(&quick) {
                s.offer(quick, &limits(2, None), 100, now).unwrap();
            }
            for (id, _) in s.tick(now).start {
                assert_eq!(id, quick);
                s.finished(quick);
                done += 1;
            }
        }
        assert_eq!(done, 20);
        assert_eq!(s.saturated(), vec![slow]);
    }

    #[test]
    fn webhooks_take_turns_when_the_node_cap_binds() {
        let hooks = ids(3);
        let mut s = Schedule::new(3);
        for (n, id) in hooks.iter().enumerate() {
            for i in 0..6 {
                s.offer(*id, &limits(256, None), n * 10 + i, Duration::ZERO)
                    .unwrap();
            }
        }
        let mut served = BTreeMap::<WebhookId, usize>::new();
        for round in 0..12u32 {
            let now = round * MS;
            let started = s.tick(now).start;
            assert!(started.len() <= 3);
            for (id, _) in started {
                *served.entry(id).or_default() += 1;
                s.finished(id);
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
                s.offer(*id, &limits(8, None), *id, Duration::ZERO).unwrap();
            }
        }
        let mut order = Vec::new();
        for _ in 0..6 {
            let t = s.tick(Duration::ZERO);
            assert_eq!(t.start.len(), 1);
            let (id, _) = t.start[0];
            order.push(id);
            s.finished(id);
        }
        let mut expected = hooks.clone();
        expected.extend(&hooks);
        assert_eq!(order, expected);
    }

    #[test]
    fn a_changed_rate_takes_effect_and_idle_pacers_are_dropped() {
        let a = ids(1)[0];
        let mut s = Schedule::new(10);
        s.offer(a, &limits(10, Some(1.0)), 0, Duration::ZERO)
            .unwrap();
        s.offer(a, &limits(10, Some(1.0)), 1, Duration::ZERO)
            .unwrap();
        assert_eq!(s.tick(Duration::ZERO).start.len(), 1);
        // The admin raised the rate: the new pacer starts with a full burst.
        s.offer(a, &limits(10, Some(100.0)), 2, Duration::ZERO)
            .unwrap();
        assert_eq!(s.tick(Duration::ZERO).start.len(), 2);
        for _ in 0..3 {
            s.finished(a);
        }
        assert!(s.saturated().is_empty());
        // Paced until its burst is back...
        s.tick(10 * MS);
        assert_eq!(s.endpoints.len(), 1);
        // ...then its state is gone: nothing grows per webhook.
        s.tick(20 * MS);
        assert!(s.endpoints.is_empty());
        assert_eq!(s.drain(), Vec::<i32>::new());
    }

    #[test]
    fn drain_hands_back_what_never_started() {
        let [a, b] = ids(2)[..] else { unreachable!() };
        let mut s = Schedule::new(1);
        s.offer(a, &limits(1, None), 1, Duration::ZERO).unwrap();
        s.offer(b, &limits(1, None), 2, Duration::ZERO).unwrap();
        let started = s.tick(Duration::ZERO).start;
        assert_eq!(started.len(), 1);
        let mut left = s.drain();
        left.sort();
        assert_eq!(left.len(), 1);
        assert_ne!(left[0], started[0].1);
        assert_eq!(s.room(), 0);
    }
}
