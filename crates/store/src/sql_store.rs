//! The store, written once for both dialects: [`SqlStore`] implements every role of
//! [`crate::Store`] over a [`Dialect`], which runs its statements and does what really differs.
//!
//! Writes go to `write`, reads to `read`: on SQLite two pools (one writer connection, a few
//! WAL readers), on PostgreSQL one pool twice. After a write commits, the store tells this
//! process's watchers and, through the dialect, other nodes ([`SqlStore::announce`]); that
//! side effect cannot fail the write, which has already happened.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Pool;
use sqlx::pool::PoolConnection;
use tokio::sync::watch;

use crate::batch;
use crate::dialect::{Channel, Claim, Conn, Dialect};
use crate::error::{Result, StoreError};
use crate::ordering;
use crate::payload::{self, Seal, Sealer, StoredAttempt, StoredEvent};
use crate::privacy::{self, PurgeCursor, PurgeStep};
use crate::records::{self, Changed, RecordFilter, RecordLogic, RecordTuple, RecordTx, Target};
use crate::rows::{self, earliest, to_json};
use crate::schedule;
use crate::sql::{self, Arg, args};
use crate::stats::{self, FailedCount, QueueDepth, WebhookStats};
use crate::types::*;
use crate::{
    AuditStore, LogStore, NodeStore, PrivacyStore, QueueStore, RecordStore, SettingsStore, Store,
    TokenStore, WebhookStore, now_ms,
};
use carehook_core::clinic::{Kind, Record};

#[derive(Debug)]
pub(crate) struct SqlStore<D: Dialect> {
    dialect: D,
    write: Pool<D::Db>,
    read: Pool<D::Db>,
    wake: watch::Sender<u64>,
    webhooks: watch::Sender<u64>,
    /// How payloads are sealed; set by the server ([`Store::set_sealer`]).
    seal: std::sync::RwLock<Arc<Seal>>,
    /// See [`QueueStore::later_work_generation`]: bumped by every wake-up but that of
    /// deliveries all due at once.
    later: std::sync::atomic::AtomicU64,
}

/// The row of a statement that always answers one (an aggregate, `RETURNING` of an insert).
fn one<T>(row: Option<T>) -> Result<T> {
    row.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

fn bump(n: &mut u64) {
    *n = n.wrapping_add(1);
}

impl<D: Dialect> SqlStore<D> {
    /// Migrates, then answers the store. `wake` and `webhooks` feed `watch_deliveries` and
    /// `watch_webhooks` (the dialect may hold clones, to pass on other nodes' news).
    pub(crate) async fn open(
        dialect: D,
        write: Pool<D::Db>,
        read: Pool<D::Db>,
        wake: watch::Sender<u64>,
        webhooks: watch::Sender<u64>,
    ) -> Result<Self> {
        let store = SqlStore {
            dialect,
            write,
            read,
            wake,
            webhooks,
            seal: std::sync::RwLock::new(Arc::new(Seal::default())),
            later: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    fn seal(&self) -> Arc<Seal> {
        // A poisoned lock still holds a whole `Arc` (it is only ever replaced).
        self.seal
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) async fn reader(&self) -> Result<PoolConnection<D::Db>> {
        Ok(self.read.acquire().await?)
    }

    pub(crate) async fn writer(&self) -> Result<PoolConnection<D::Db>> {
        let mut conn = self.write.acquire().await?;
        self.dialect.ready_autocommit(&mut conn).await?;
        Ok(conn)
    }

    /// Wakes this process's dispatcher only: other nodes heard of it through a NOTIFY sent
    /// in the committed transaction (`Dialect::insert_deliveries`).
    /// `later`: something may be due later than now (see `later_work_generation`).
    fn wake_here(&self, later: bool) {
        if later {
            self.later
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        self.wake.send_modify(bump);
    }

    /// After a commit: tells this process's watchers, then other nodes. The change committed,
    /// so a failed notification is logged and the caller still gets its answer; other nodes
    /// see the change on their next poll (a second or a few).
    async fn announce(&self, channel: Channel) {
        match channel {
            Channel::Deliveries => self.wake_here(true),
            Channel::Webhooks => self.webhooks.send_modify(bump),
        }
        if let Err(e) = self.dialect.notify(&self.write, channel).await {
            tracing::warn!(
                error = %e,
                ?channel,
                "could not tell other nodes about a committed change; they will see it when they next look"
            );
        }
    }
}

/// Writes events and their deliveries inside the caller's transaction (`record_events` and
/// clinic record changes): one answer per event, and whether any delivery was written.
async fn write_events<D: Dialect>(
    conn: &mut Conn<D>,
    seal: &Seal,
    batch: &[NewEvent],
) -> Result<(Vec<Recorded>, bool)> {
    let plan = batch::plan_events(batch);
    let stored: Vec<StoredEvent> = plan
        .candidates
        .iter()
        .map(|&i| payload::stored_event(seal, &batch[i]))
        .collect();
    let inserted = D::insert_events(conn, batch, &plan.candidates, &stored).await?;
    let terms: Vec<(&str, String)> = plan
        .candidates
        .iter()
        .zip(&stored)
        .map(|(&i, st)| (st, batch[i].id.to_string()))
        .filter(|(_, id)| inserted.contains(id))
        .flat_map(|(st, id)| st.terms.iter().map(move |t| (t.as_str(), id.clone())))
        .collect();
    insert_search_terms::<D>(conn, &terms).await?;
    // Keys that were already taken: find their first event and its deliveries.
    let taken = plan.taken_keys(batch, &inserted);
    let mut earlier = HashMap::new();
    if !taken.is_empty() {
        let sql = format!(
            "SELECT idempotency_key, id FROM events WHERE idempotency_key IN {}",
            D::ID_LIST
        );
        let firsts: Vec<(String, String)> = D::fetch_all(conn, &sql, vec![Arg::Ids(taken)]).await?;
        let ids = firsts.iter().map(|(_, id)| id.clone()).collect();
        let sql = format!(
            "SELECT event_id, id FROM deliveries WHERE event_id IN {} ORDER BY id",
            D::ID_LIST
        );
        let dels: Vec<(String, String)> = D::fetch_all(conn, &sql, vec![Arg::Ids(ids)]).await?;
        earlier = batch::earlier_events(firsts, dels)?;
    }
    let deliveries = plan.deliveries(batch, &inserted);
    let scheduling = deliveries.iter().any(|(d, _)| d.scheduled.is_some())
        || batch.iter().any(|e| !e.reschedule.is_empty());
    let mut woke = !deliveries.is_empty();
    if !scheduling {
        if !deliveries.is_empty() {
            let seqs = ordering::number::<D>(conn, &deliveries).await?;
            D::insert_deliveries(conn, &deliveries, &seqs).await?;
        }
    } else {
        // Scheduled webhooks: event by event, so each event acts on the reminders written by
        // the events before it (in this batch too) and not on its own.
        for ev in batch
            .iter()
            .filter(|ev| inserted.contains(&ev.id.to_string()))
        {
            woke |= schedule::apply::<D>(conn, ev).await?;
            let own: Vec<(&NewDelivery, &NewEvent)> =
                ev.deliveries.iter().map(|d| (d, ev)).collect();
            if !own.is_empty() {
                let seqs = ordering::number::<D>(conn, &own).await?;
                D::insert_deliveries(conn, &own, &seqs).await?;
                schedule::mark::<D>(conn, ev).await?;
            }
        }
    }
    Ok((plan.answers(batch, &inserted, &earlier)?, woke))
}

/// Writes events' search terms (`(hashed term, event id)`), a bounded number of rows per
/// statement.
async fn insert_search_terms<D: Dialect>(
    conn: &mut Conn<D>,
    terms: &[(&str, String)],
) -> Result<()> {
    for chunk in terms.chunks(250) {
        let mut sql = String::from("INSERT INTO event_search_terms (term, event_id) VALUES ");
        let mut args = Vec::with_capacity(chunk.len() * 2);
        for (n, (term, event)) in chunk.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            sql += &format!("(${}, ${})", 2 * n + 1, 2 * n + 2);
            args.push(Arg::Text((*term).to_owned()));
            args.push(Arg::Text(event.clone()));
        }
        sql.push_str(" ON CONFLICT DO NOTHING");
        D::execute(conn, &sql, args).await?;
    }
    Ok(())
}

/// Clinic record I/O inside one write transaction; see `records::change`.
struct RecordTxn<'t, D: Dialect> {
    conn: &'t mut Conn<D>,
    seal: Arc<Seal>,
    /// Whether a delivery was written: wake the dispatcher after commit.
    delivered: bool,
}

#[async_trait::async_trait]
impl<D: Dialect> RecordTx for RecordTxn<'_, D> {
    async fn fetch(&mut self, kind: Kind, id: i64, lock: bool) -> Result<Option<Record>> {
        let sql = records::select_sql(kind, lock && D::LOCKS_ROWS);
        let t: Option<RecordTuple> = D::fetch_optional(self.conn, &sql, args![id]).await?;
        t.map(|t| records::record(kind, t)).transpose()
    }

    async fn write(&mut self, kind: Kind, sql: &str, args: Vec<Arg>) -> Result<Option<Record>> {
        let t: Option<RecordTuple> = D::fetch_optional(self.conn, sql, args).await?;
        t.map(|t| records::record(kind, t)).transpose()
    }

    async fn exists(&mut self, sql: &str, id: i64) -> Result<bool> {
        let found: Option<(bool,)> = D::fetch_optional(self.conn, sql, args![id]).await?;
        Ok(one(found)?.0)
    }

    async fn next_bill_seq(&mut self, clinic_id: i64) -> Result<i64> {
        let seq: Option<(i64,)> =
            D::fetch_optional(self.conn, records::NEXT_BILL_SEQ, args![clinic_id]).await?;
        Ok(one(seq)?.0)
    }

    async fn payments_of(&mut self, bill_id: i64) -> Result<Vec<Record>> {
        let ts: Vec<RecordTuple> =
            D::fetch_all(self.conn, &records::payments_sql(), args![bill_id]).await?;
        ts.into_iter()
            .map(|t| records::record(Kind::Payment, t))
            .collect()
    }

    async fn write_events(&mut self, events: &[NewEvent]) -> Result<Vec<Recorded>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (answers, delivered) = write_events::<D>(self.conn, &self.seal, events).await?;
        self.delivered |= delivered;
        Ok(answers)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::NAME
    }

    fn set_sealer(&self, sealer: Option<Arc<dyn Sealer>>, seal_new: bool) {
        let seal = Arc::new(Seal { sealer, seal_new });
        *self
            .seal
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = seal;
    }

    async fn migrate(&self) -> Result<()> {
        D::migrate(&self.write).await
    }
}

#[async_trait::async_trait]
impl<D: Dialect> WebhookStore for SqlStore<D> {
    async fn create_webhook(&self, w: NewWebhook) -> Result<WebhookRow> {
        let args = args![
            w.id.to_string(),
            w.name,
            w.enabled,
            to_json(&w.events),
            to_json(&w.config),
            now_ms()
        ];
        let t: Option<rows::WebhookTuple> =
            D::fetch_optional(&mut *self.writer().await?, sql::INSERT_WEBHOOK, args).await?;
        let t = one(t)?;
        self.announce(Channel::Webhooks).await;
        rows::webhook(t)
    }

    async fn get_webhook(&self, id: WebhookId) -> Result<Option<WebhookRow>> {
        let t: Option<rows::WebhookTuple> = D::fetch_optional(
            &mut *self.reader().await?,
            sql::GET_WEBHOOK,
            args![id.to_string()],
        )
        .await?;
        t.map(rows::webhook).transpose()
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookRow>> {
        let ts: Vec<rows::WebhookTuple> =
            D::fetch_all(&mut *self.reader().await?, sql::LIST_WEBHOOKS, args![]).await?;
        ts.into_iter().map(rows::webhook).collect()
    }

    async fn update_webhook(
        &self,
        id: WebhookId,
        name: String,
        enabled: bool,
        events: Vec<String>,
        config: serde_json::Value,
        disabled_reason: Option<String>,
    ) -> Result<Option<WebhookRow>> {
        let args = args![
            id.to_string(),
            name,
            enabled,
            to_json(&events),
            to_json(&config),
            disabled_reason,
            now_ms()
        ];
        let t: Option<rows::WebhookTuple> =
            D::fetch_optional(&mut *self.writer().await?, sql::UPDATE_WEBHOOK, args).await?;
        if t.is_some() {
            self.announce(Channel::Webhooks).await;
        }
        t.map(rows::webhook).transpose()
    }

    async fn set_webhook_enabled(
        &self,
        id: WebhookId,
        enabled: bool,
        reason: Option<String>,
    ) -> Result<bool> {
        let args = args![id.to_string(), enabled, reason, now_ms()];
        let changed =
            D::execute(&mut *self.writer().await?, sql::SET_WEBHOOK_ENABLED, args).await? == 1;
        if changed {
            self.announce(Channel::Webhooks).await;
        }
        Ok(changed)
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<bool> {
        let mut tx = self.dialect.begin(&self.write).await?;
        if D::execute(&mut tx, sql::DELETE_WEBHOOK, args![id.to_string()]).await? == 0 {
            return Ok(false);
        }
        let args = args![id.to_string(), now_ms()];
        D::execute(&mut tx, sql::FAIL_DELIVERIES_OF_DELETED_WEBHOOK, args).await?;
        let args = args![id.to_string()];
        D::execute(&mut tx, ordering::FORGET_WEBHOOK_KEYS, args).await?;
        tx.commit().await?;
        self.announce(Channel::Webhooks).await;
        Ok(true)
    }

    async fn webhooks_failing_since(&self, since: i64) -> Result<Vec<WebhookId>> {
        let ids: Vec<(String,)> = D::fetch_all(
            &mut *self.reader().await?,
            sql::WEBHOOKS_FAILING_SINCE,
            args![since],
        )
        .await?;
        ids.iter()
            .map(|(i,)| rows::uuid(i).map(WebhookId::from))
            .collect()
    }

    fn watch_webhooks(&self) -> watch::Receiver<u64> {
        self.webhooks.subscribe()
    }
}

#[async_trait::async_trait]
impl<D: Dialect> QueueStore for SqlStore<D> {
    async fn record_events(&self, batch: Vec<NewEvent>) -> Result<Vec<Recorded>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.dialect.begin(&self.write).await?;
        let (answers, any_deliveries) = write_events::<D>(&mut tx, &self.seal(), &batch).await?;
        tx.commit().await?;
        if any_deliveries {
            let now = now_ms();
            let later = batch.iter().any(|e| {
                !e.reschedule.is_empty()
                    || e.deliveries
                        .iter()
                        .any(|d| d.scheduled.is_some() || d.next_attempt_at > now)
            });
            self.wake_here(later);
        }
        Ok(answers)
    }

    async fn claim_due(
        &self,
        owner: &NodeId,
        now: i64,
        lease_ms: i64,
        limit: u32,
        exclude: &[WebhookId],
    ) -> Result<Vec<Claimed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ask = ClaimAsk {
            wants: &[],
            others: Some(Others {
                limit,
                per_webhook: limit,
            }),
            exclude,
        };
        self.claim(owner, now, lease_ms, &ask).await
    }

    async fn claim(
        &self,
        owner: &NodeId,
        now: i64,
        lease_ms: i64,
        ask: &ClaimAsk<'_>,
    ) -> Result<Vec<Claimed>> {
        let wants: Vec<(WebhookId, u32)> =
            ask.wants.iter().copied().filter(|(_, n)| *n > 0).collect();
        let others = ask.others.filter(|o| o.limit > 0 && o.per_webhook > 0);
        if wants.is_empty() && others.is_none() {
            return Ok(Vec::new());
        }
        // The others' part leaves the named webhooks out: they were asked for by name.
        let mut exclude = ask.exclude.to_vec();
        exclude.extend(wants.iter().map(|(id, _)| *id));
        let seal = self.seal();
        let terms = Claim {
            seal: &seal,
            owner,
            now,
            lease_until: now.saturating_add(lease_ms),
            limit: others.map_or(0, |o| o.limit),
            per_webhook: others.map_or(0, |o| o.per_webhook),
            exclude: &exclude,
            wants: &wants,
        };
        self.dialect.claim(&self.write, &terms).await
    }

    async fn record_attempts(&self, batch: Vec<AttemptRecord>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let seal = self.seal();
        let stored: Vec<StoredAttempt> = batch
            .iter()
            .map(|a| payload::stored_attempt(&seal, a))
            .collect();
        let mut tx = self.dialect.begin_bookkeeping(&self.write).await?;
        D::write_attempts(&mut tx, &batch, &stored).await?;
        // An attempt in flight while its patient was erased must not bring the data back.
        let ids: Vec<String> = batch.iter().map(|a| a.delivery_id.to_string()).collect();
        let erased: Option<(i64,)> = D::fetch_optional(
            &mut tx,
            &privacy::count_erased(D::ID_LIST),
            vec![Arg::Ids(ids.clone())],
        )
        .await?;
        if one(erased)?.0 > 0 {
            let [attempts, deliveries] = privacy::scrub_late(D::ID_LIST);
            D::execute(&mut tx, &attempts, vec![Arg::Ids(ids.clone())]).await?;
            let args = vec![Arg::Ids(ids), Arg::Text(privacy::ERASED_REASON.into())];
            D::execute(&mut tx, &deliveries, args).await?;
        }
        tx.commit().await?;
        // A retry due already (the first one is at once) is new work for this node.
        let now = now_ms();
        if batch
            .iter()
            .any(|a| matches!(a.next, DeliveryNext::RetryAt(t) if t <= now))
        {
            self.wake_here(false);
        }
        Ok(())
    }

    async fn release(&self, delivery_ids: &[DeliveryId]) -> Result<()> {
        if delivery_ids.is_empty() {
            return Ok(());
        }
        let ids = delivery_ids.iter().map(DeliveryId::to_string).collect();
        let sql = format!(
            "UPDATE deliveries SET lease_until = NULL, lease_owner = NULL \
             WHERE id IN {} AND lease_until IS NOT NULL",
            D::ID_LIST
        );
        D::execute(&mut *self.writer().await?, &sql, vec![Arg::Ids(ids)]).await?;
        self.announce(Channel::Deliveries).await;
        Ok(())
    }

    async fn next_due_at(&self) -> Result<Option<i64>> {
        let row: Option<(Option<i64>, Option<i64>)> =
            D::fetch_optional(&mut *self.reader().await?, sql::NEXT_DUE, args![]).await?;
        let (due, lease) = one(row)?;
        Ok(earliest(due, lease))
    }

    async fn next_due_after(&self, now: i64) -> Result<Option<i64>> {
        let row: Option<(Option<i64>,)> =
            D::fetch_optional(&mut *self.reader().await?, sql::NEXT_DUE_AFTER, args![now]).await?;
        Ok(one(row)?.0)
    }

    fn watch_deliveries(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// Known where one process owns the database (SQLite): every wake-up is this process's.
    fn later_work_generation(&self) -> Option<u64> {
        D::ONE_PROCESS.then(|| self.later.load(std::sync::atomic::Ordering::Acquire))
    }

    async fn queue_depth(&self, now: i64) -> Result<QueueDepth> {
        let row: Option<(i64, i64, i64)> =
            D::fetch_optional(&mut *self.reader().await?, stats::QUEUE_DEPTH, args![now]).await?;
        let (due, scheduled, in_flight) = one(row)?;
        Ok(QueueDepth {
            due: due.max(0) as u64,
            scheduled: scheduled.max(0) as u64,
            in_flight: in_flight.max(0) as u64,
        })
    }

    async fn retry_delivery(&self, id: DeliveryId, now: i64) -> Result<Option<DeliveryRow>> {
        let mut tx = self.dialect.begin(&self.write).await?;
        let moved = D::execute(&mut tx, sql::RETRY_DELIVERY, args![id.to_string(), now]).await?;
        let t: Option<rows::DeliveryTuple> =
            D::fetch_optional(&mut tx, sql::GET_DELIVERY, args![id.to_string()]).await?;
        tx.commit().await?;
        if moved == 0 && t.is_some() {
            return Err(StoreError::Conflict(
                "this delivery's event data is gone (retention or erasure): it cannot be sent again"
                    .into(),
            ));
        }
        if t.is_some() {
            self.announce(Channel::Deliveries).await;
        }
        t.map(rows::delivery).transpose()
    }

    async fn count_failed(
        &self,
        webhook_id: WebhookId,
        since: i64,
        until: i64,
        cap: u32,
    ) -> Result<FailedCount> {
        let args = args![webhook_id.to_string(), since, until, i64::from(cap)];
        let row: Option<(i64, i64)> =
            D::fetch_optional(&mut *self.reader().await?, sql::COUNT_FAILED, args).await?;
        let (read, purged) = one(row)?;
        let read = u64::try_from(read).unwrap_or(0);
        let purged = u64::try_from(purged).unwrap_or(0);
        Ok(FailedCount {
            retryable: read.saturating_sub(purged),
            purged,
            more: read >= u64::from(cap),
        })
    }

    async fn retry_failed(
        &self,
        webhook_id: WebhookId,
        since: i64,
        until: i64,
        now: i64,
    ) -> Result<Vec<DeliveryId>> {
        let args = args![webhook_id.to_string(), since, until, now];
        let ids: Vec<(String,)> =
            D::fetch_all(&mut *self.writer().await?, sql::RETRY_FAILED, args).await?;
        if !ids.is_empty() {
            self.announce(Channel::Deliveries).await;
        }
        let mut ids = ids
            .iter()
            .map(|(i,)| rows::uuid(i).map(DeliveryId::from))
            .collect::<Result<Vec<_>>>()?;
        ids.sort_unstable();
        Ok(ids)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> NodeStore for SqlStore<D> {
    async fn start_node(&self, node: &NodeId, now: i64) -> Result<u64> {
        let mut tx = self.dialect.begin(&self.write).await?;
        D::execute(&mut tx, sql::START_NODE, args![node.as_str(), now]).await?;
        let released = if D::ONE_PROCESS {
            D::execute(&mut tx, sql::RELEASE_ALL_LEASES, args![]).await?
        } else {
            D::execute(&mut tx, sql::RELEASE_OWN_LEASES, args![node.as_str()]).await?
        };
        tx.commit().await?;
        if released > 0 {
            self.announce(Channel::Deliveries).await;
        }
        Ok(released)
    }

    async fn heartbeat(&self, node: &NodeId, now: i64) -> Result<()> {
        let args = args![node.as_str(), now];
        D::execute(&mut *self.writer().await?, sql::HEARTBEAT, args).await?;
        Ok(())
    }

    async fn release_dead_nodes(&self, stale_before: i64) -> Result<u64> {
        let mut tx = self.dialect.begin(&self.write).await?;
        let released = D::execute(&mut tx, sql::RELEASE_DEAD_LEASES, args![stale_before]).await?;
        D::execute(&mut tx, sql::FORGET_DEAD_NODES, args![stale_before]).await?;
        tx.commit().await?;
        if released > 0 {
            self.announce(Channel::Deliveries).await;
        }
        Ok(released)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> LogStore for SqlStore<D> {
    async fn get_delivery(&self, id: DeliveryId) -> Result<Option<(DeliveryRow, Vec<AttemptRow>)>> {
        let mut conn = self.reader().await?;
        let t: Option<rows::DeliveryTuple> =
            D::fetch_optional(&mut conn, sql::GET_DELIVERY, args![id.to_string()]).await?;
        let Some(t) = t else { return Ok(None) };
        let attempts: Vec<rows::AttemptTuple> =
            D::fetch_all(&mut conn, sql::GET_ATTEMPTS, args![id.to_string()]).await?;
        Ok(Some((
            rows::delivery(t)?,
            attempts
                .into_iter()
                .map(|t| rows::attempt(&self.seal(), t))
                .collect::<Result<_>>()?,
        )))
    }

    async fn list_deliveries(&self, f: DeliveryFilter) -> Result<Page<DeliveryRow>> {
        let seal = self.seal();
        let built = sql::list_deliveries(&f, D::NAME, seal.sealer.as_deref())?;
        let ts: Vec<rows::DeliveryTuple> =
            D::fetch_all(&mut *self.reader().await?, &built.sql, built.args).await?;
        let items = ts
            .into_iter()
            .map(rows::delivery)
            .collect::<Result<Vec<_>>>()?;
        Ok(sql::into_page(items, built.limit, |d| {
            (d.created_at, d.id.as_uuid())
        }))
    }

    async fn get_event(&self, id: EventId) -> Result<Option<EventRow>> {
        let t: Option<rows::EventTuple> = D::fetch_optional(
            &mut *self.reader().await?,
            sql::GET_EVENT,
            args![id.to_string()],
        )
        .await?;
        let seal = self.seal();
        t.map(|t| rows::event(&seal, t)).transpose()
    }

    async fn list_events(&self, limit: u32, cursor: Option<String>) -> Result<Page<EventRow>> {
        let built = sql::list_events(limit, cursor.as_deref())?;
        let ts: Vec<rows::EventTuple> =
            D::fetch_all(&mut *self.reader().await?, &built.sql, built.args).await?;
        let items = ts
            .into_iter()
            .map(|t| rows::event(&self.seal(), t))
            .collect::<Result<Vec<_>>>()?;
        Ok(sql::into_page(items, built.limit, |e| {
            (e.created_at, e.id.as_uuid())
        }))
    }

    async fn delivery_ordering(&self, id: DeliveryId) -> Result<Option<DeliveryOrdering>> {
        let t: Option<(String, Option<i64>, Option<String>)> = D::fetch_optional(
            &mut *self.reader().await?,
            ordering::DELIVERY_ORDERING,
            args![id.to_string()],
        )
        .await?;
        let Some((key, Some(sequence), waiting_for)) = t else {
            return Ok(None);
        };
        Ok(Some(DeliveryOrdering {
            place: OrderingPlace { key, sequence },
            waiting_for: waiting_for
                .map(|w| rows::uuid(&w).map(DeliveryId::from))
                .transpose()?,
        }))
    }

    async fn webhook_stats(&self, webhook_id: WebhookId, now: i64) -> Result<WebhookStats> {
        let id = webhook_id.to_string();
        let (h1, h24, d7, lookback) = stats::bounds(now);
        let mut conn = self.reader().await?;
        let deliveries: Vec<stats::CountTuple> = D::fetch_all(
            &mut conn,
            stats::DELIVERY_COUNTS,
            args![id.as_str(), h1, h24, d7],
        )
        .await?;
        let attempts: Vec<stats::CountTuple> = D::fetch_all(
            &mut conn,
            stats::ATTEMPT_COUNTS,
            args![id.as_str(), h1, h24, d7, lookback],
        )
        .await?;
        let durations: Vec<(i64, i64)> = D::fetch_all(
            &mut conn,
            stats::ATTEMPT_DURATIONS,
            args![id.as_str(), d7, lookback, stats::STATS_SAMPLE],
        )
        .await?;
        let last: Option<stats::LastTuple> =
            D::fetch_optional(&mut conn, stats::LAST_DELIVERY, args![id]).await?;
        stats::assemble(now, deliveries, attempts, durations, last)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> TokenStore for SqlStore<D> {
    async fn insert_scoped_token(
        &self,
        id: TokenId,
        name: &str,
        token_hash: &str,
        access: &TokenAccess,
        now: i64,
    ) -> Result<()> {
        let clinics = access.clinics.as_ref().map(rows::to_json);
        let args = args![
            id.to_string(),
            name,
            token_hash,
            now,
            access.role.as_str(),
            clinics,
            access.bodies
        ];
        D::execute(&mut *self.writer().await?, sql::INSERT_TOKEN, args).await?;
        Ok(())
    }

    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        let t: Option<rows::TokenTuple> = D::fetch_optional(
            &mut *self.reader().await?,
            sql::FIND_TOKEN,
            args![token_hash],
        )
        .await?;
        t.map(rows::token).transpose()
    }

    async fn touch_token(&self, id: TokenId, now: i64) -> Result<()> {
        let args = args![id.to_string(), now];
        D::execute(&mut *self.writer().await?, sql::TOUCH_TOKEN, args).await?;
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRow>> {
        let ts: Vec<rows::TokenTuple> =
            D::fetch_all(&mut *self.reader().await?, sql::LIST_TOKENS, args![]).await?;
        ts.into_iter().map(rows::token).collect()
    }

    async fn revoke_token(&self, id: TokenId, now: i64) -> Result<bool> {
        let args = args![id.to_string(), now];
        Ok(D::execute(&mut *self.writer().await?, sql::REVOKE_TOKEN, args).await? == 1)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> SettingsStore for SqlStore<D> {
    async fn kv_get(&self, key: &str) -> Result<Option<String>> {
        let v: Option<(String,)> =
            D::fetch_optional(&mut *self.reader().await?, sql::KV_GET, args![key]).await?;
        Ok(v.map(|(v,)| v))
    }

    async fn kv_set(&self, key: &str, value: &str) -> Result<()> {
        D::execute(&mut *self.writer().await?, sql::KV_SET, args![key, value]).await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl<D: Dialect> RecordStore for SqlStore<D> {
    async fn change_record(
        &self,
        kind: Kind,
        target: Target,
        logic: &dyn RecordLogic,
        now: i64,
    ) -> Result<Changed> {
        let mut tx = self.dialect.begin(&self.write).await?;
        let mut txn = RecordTxn::<D> {
            conn: &mut tx,
            seal: self.seal(),
            delivered: false,
        };
        let changed = records::change(&mut txn, kind, target, logic, now).await?;
        let delivered = txn.delivered;
        tx.commit().await?;
        if delivered {
            self.wake_here(true);
        }
        Ok(changed)
    }

    async fn get_record(&self, kind: Kind, id: i64) -> Result<Option<Record>> {
        let sql = records::select_sql(kind, false);
        let t: Option<RecordTuple> =
            D::fetch_optional(&mut *self.reader().await?, &sql, args![id]).await?;
        t.map(|t| records::record(kind, t)).transpose()
    }

    async fn list_records(&self, kind: Kind, filter: RecordFilter) -> Result<Page<Record>> {
        let built = records::list_sql(kind, &filter)?;
        let ts: Vec<RecordTuple> =
            D::fetch_all(&mut *self.reader().await?, &built.sql, built.args).await?;
        let items = ts
            .into_iter()
            .map(|t| records::record(kind, t))
            .collect::<Result<Vec<_>>>()?;
        Ok(records::into_page(items, built.limit))
    }
}

impl<D: Dialect> SqlStore<D> {
    /// One batch of a purge walk over `table` (see [`PrivacyStore`]).
    async fn purge_step(
        &self,
        scan: privacy::Stmt,
        clear: String,
        forget: Option<String>,
        now: i64,
        limit: u32,
        dry_run: bool,
    ) -> Result<PurgeStep> {
        let limit = limit.max(1);
        let mut tx = self.dialect.begin(&self.write).await?;
        let rows: Vec<(String, i64, bool)> = D::fetch_all(&mut tx, &scan.sql, scan.args).await?;
        let ids: Vec<String> = rows.iter().filter(|r| r.2).map(|r| r.0.clone()).collect();
        let purged = if dry_run || ids.is_empty() {
            ids.len() as u64
        } else {
            if let Some(forget) = &forget {
                D::execute(&mut tx, forget, vec![Arg::Ids(ids.clone())]).await?;
            }
            let args = vec![
                Arg::Ids(ids),
                Arg::Int(now),
                Arg::Text(PurgeReason::Retention.as_str().into()),
            ];
            D::execute(&mut tx, &clear, args).await?
        };
        tx.commit().await?;
        Ok(PurgeStep {
            purged,
            next: privacy::next_cursor(&rows, limit),
        })
    }
}

#[async_trait::async_trait]
impl<D: Dialect> PrivacyStore for SqlStore<D> {
    async fn purge_attempts(
        &self,
        rules: &Retention,
        now: i64,
        after: Option<PurgeCursor>,
        limit: u32,
        dry_run: bool,
    ) -> Result<PurgeStep> {
        let scan = privacy::scan_attempts(rules, &after, limit.max(1));
        let clear = privacy::clear_attempts(D::ID_LIST);
        self.purge_step(scan, clear, None, now, limit, dry_run)
            .await
    }

    async fn purge_events(
        &self,
        rules: &Retention,
        now: i64,
        after: Option<PurgeCursor>,
        limit: u32,
        dry_run: bool,
    ) -> Result<PurgeStep> {
        let scan = privacy::scan_events(rules, &after, limit.max(1));
        let clear = privacy::clear_events(D::ID_LIST);
        // The snapshot goes, and with it what finds it by the patient's name.
        let forget = privacy::forget_search_terms(D::ID_LIST);
        self.purge_step(scan, clear, Some(forget), now, limit, dry_run)
            .await
    }

    async fn erase_patient(&self, patient_id: &str, now: i64) -> Result<ErasureCounts> {
        let mut counts = ErasureCounts::default();
        let mut tx = self.dialect.begin(&self.write).await?;
        // Deliveries first: they find their events by `patient_id`, which stays.
        counts.deliveries_cancelled = D::execute(
            &mut tx,
            privacy::CANCEL_DELIVERIES,
            args![patient_id, now, privacy::ERASED_REASON],
        )
        .await?;
        counts.attempts =
            D::execute(&mut tx, privacy::ERASE_ATTEMPTS, args![patient_id, now]).await?;
        D::execute(&mut tx, privacy::ERASE_SEARCH_TERMS, args![patient_id]).await?;
        counts.events = D::execute(&mut tx, privacy::ERASE_EVENTS, args![patient_id, now]).await?;
        if let Ok(record_id) = patient_id.parse::<i64>() {
            for (table, sql) in privacy::ERASE_RECORDS {
                let n = D::execute(&mut tx, sql, args![record_id, now, privacy::TOMBSTONE]).await?;
                counts.records.insert(table.to_string(), n);
            }
        }
        tx.commit().await?;
        if counts.deliveries_cancelled > 0 {
            self.announce(Channel::Deliveries).await;
        }
        Ok(counts)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> AuditStore for SqlStore<D> {
    async fn append_audit(&self, entry: NewAudit) -> Result<AuditRow> {
        let details = to_json(&entry.details);
        let mut tx = self.dialect.begin(&self.write).await?;
        if let Some(lock) = D::LOCK_AUDIT {
            D::execute(&mut tx, lock, args![]).await?;
        }
        let last: Option<(i64, String)> =
            D::fetch_optional(&mut tx, privacy::LAST_AUDIT, args![]).await?;
        let (prev_seq, prev_hash) = last.unwrap_or((0, privacy::GENESIS.to_string()));
        let seq = prev_seq + 1;
        let hash = privacy::chain_hash(
            &prev_hash,
            seq,
            entry.at,
            &entry.actor,
            entry.client_addr.as_deref(),
            &entry.action,
            &entry.resource,
            &entry.outcome,
            &details,
        );
        let args = args![
            seq,
            entry.at,
            entry.actor.as_str(),
            entry.client_addr.clone(),
            entry.action.as_str(),
            entry.resource.as_str(),
            entry.outcome.as_str(),
            details.as_str(),
            prev_hash.as_str(),
            hash.as_str()
        ];
        D::execute(&mut tx, privacy::INSERT_AUDIT, args).await?;
        let head = format!("{seq}:{hash}");
        D::execute(&mut tx, sql::KV_SET, args![privacy::AUDIT_HEAD, head]).await?;
        tx.commit().await?;
        Ok(AuditRow {
            seq,
            at: entry.at,
            actor: entry.actor,
            client_addr: entry.client_addr,
            action: entry.action,
            resource: entry.resource,
            outcome: entry.outcome,
            details: entry.details,
            prev_hash,
            hash,
        })
    }

    async fn list_audit(&self, f: AuditFilter) -> Result<Page<AuditRow>> {
        let mut b = sql::Builder {
            sql: format!("SELECT {} FROM audit_log WHERE TRUE", privacy::AUDIT_COLS),
            args: Vec::new(),
        };
        if let Some(a) = &f.action {
            let (op, value) = privacy::action_matches(a);
            let p = b.arg(Arg::Text(value));
            b.sql += &format!(" AND {op} {p}");
        }
        for (col, v) in [("resource", &f.resource), ("actor", &f.actor)] {
            if let Some(v) = v {
                let p = b.arg(Arg::Text(v.clone()));
                b.sql += &format!(" AND {col} = {p}");
            }
        }
        if let Some(t) = f.since {
            let p = b.arg(Arg::Int(t));
            b.sql += &format!(" AND at >= {p}");
        }
        if let Some(t) = f.until {
            let p = b.arg(Arg::Int(t));
            b.sql += &format!(" AND at < {p}");
        }
        if let Some(c) = &f.cursor {
            let seq: i64 = c.parse().map_err(|_| StoreError::bad_cursor(c))?;
            let p = b.arg(Arg::Int(seq));
            b.sql += &format!(" AND seq < {p}");
        }
        let limit = rows::page_limit(f.limit);
        let p = b.arg(Arg::Int(i64::from(limit) + 1));
        b.sql += &format!(" ORDER BY seq DESC LIMIT {p}");
        let mut ts: Vec<privacy::AuditTuple> =
            D::fetch_all(&mut *self.reader().await?, &b.sql, b.args).await?;
        let more = ts.len() > limit as usize;
        ts.truncate(limit as usize);
        let next_cursor = if more {
            ts.last().map(|t| t.0.to_string())
        } else {
            None
        };
        let items = ts
            .into_iter()
            .map(|t| {
                Ok(AuditRow {
                    seq: t.0,
                    at: t.1,
                    actor: t.2,
                    client_addr: t.3,
                    action: t.4,
                    resource: t.5,
                    outcome: t.6,
                    details: rows::json("audit_log.details", &t.7)?,
                    prev_hash: t.8,
                    hash: t.9,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next_cursor })
    }

    async fn verify_audit(&self) -> Result<AuditVerdict> {
        const PAGE: i64 = 1000;
        let mut conn = self.reader().await?;
        let head: Option<(String,)> =
            D::fetch_optional(&mut conn, sql::KV_GET, args![privacy::AUDIT_HEAD]).await?;
        let mut prev = (0, privacy::GENESIS.to_string());
        let mut problems = Vec::new();
        let mut rows_seen = 0u64;
        let page_sql = privacy::audit_page_sql();
        loop {
            let ts: Vec<privacy::AuditTuple> =
                D::fetch_all(&mut conn, &page_sql, args![prev.0, PAGE]).await?;
            rows_seen += ts.len() as u64;
            privacy::check_rows(&ts, &mut prev, &mut problems);
            if (ts.len() as i64) < PAGE {
                break;
            }
        }
        match head.and_then(|(h,)| privacy::parse_head(&h)) {
            Some((seq, _)) if seq > prev.0 => problems.push((
                prev.0 + 1,
                format!(
                    "rows {}..{seq} are missing (deleted): the chain ends at row {}, its head names row {seq}",
                    prev.0 + 1,
                    prev.0
                ),
            )),
            Some((seq, hash_of_head)) if seq == prev.0 && hash_of_head != prev.1 => problems.push((
                seq,
                format!("row {seq} differs from the head the trail recorded (edited)"),
            )),
            _ => {}
        }
        Ok(AuditVerdict {
            rows: rows_seen,
            problems,
        })
    }
}

#[async_trait::async_trait]
impl<D: Dialect> crate::ReplayStore for SqlStore<D> {
    async fn replay_candidates(
        &self,
        q: &crate::ReplayQuery,
    ) -> Result<Vec<crate::ReplayCandidate>> {
        if q.event_types.is_empty() || q.limit == 0 {
            return Ok(Vec::new());
        }
        let (after_at, after_id) = match q.after {
            Some((at, id)) => (at, id.to_string()),
            None => (i64::MIN, String::new()),
        };
        let args = vec![
            Arg::Ids(q.event_types.clone()),
            Arg::Text(q.webhook_id.to_string()),
            Arg::Int(q.since),
            Arg::Int(q.until),
            Arg::Int(after_at),
            Arg::Text(after_id),
            Arg::Int(i64::from(q.limit)),
        ];
        let ts: Vec<crate::replay::CandidateTuple> = D::fetch_all(
            &mut *self.reader().await?,
            &crate::replay::candidates_sql(D::ID_LIST),
            args,
        )
        .await?;
        let seal = self.seal();
        ts.into_iter()
            .map(
                |(id, event_type, vars, created_at, reason, succeeded, pending)| {
                    let purge_reason = reason
                        .map(|r| {
                            r.parse::<PurgeReason>()
                                .map_err(|e| StoreError::Corrupt(e.to_string()))
                        })
                        .transpose()?;
                    // A snapshot that does not open (another master key) is not replayable;
                    // it must not stop the others.
                    let vars = if purge_reason.is_some() {
                        None
                    } else {
                        seal.open("events.vars", vars)
                            .ok()
                            .and_then(|v| serde_json::from_str(&v).ok())
                    };
                    Ok(crate::ReplayCandidate {
                        event_id: rows::uuid(&id)?.into(),
                        event_type,
                        created_at,
                        vars,
                        purge_reason,
                        succeeded,
                        pending,
                    })
                },
            )
            .collect()
    }

    async fn insert_replay(
        &self,
        webhook_id: WebhookId,
        items: &[(DeliveryId, EventId, Option<String>)],
        only_missing: bool,
        now: i64,
    ) -> Result<Vec<DeliveryId>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.dialect.begin(&self.write).await?;
        if D::LOCKS_ROWS {
            D::execute(
                &mut tx,
                crate::replay::LOCK_WEBHOOK,
                args![webhook_id.to_string()],
            )
            .await?;
        }
        let mut created = Vec::new();
        for (delivery, event, key) in items {
            let args = vec![
                Arg::Text(delivery.to_string()),
                Arg::Text(event.to_string()),
                Arg::Text(webhook_id.to_string()),
                Arg::Int(now),
                Arg::Bool(only_missing),
            ];
            if D::execute(&mut tx, crate::replay::INSERT_REPLAY, args).await? == 1 {
                created.push(*delivery);
                // Ordered: the next number of its key, after the deliveries already there.
                if let Some(key) = key {
                    let lasts =
                        D::bump_ordering_keys(&mut tx, &[(webhook_id.to_string(), key.clone(), 1)])
                            .await?;
                    let seq = lasts.first().map(|(_, _, last)| *last).ok_or_else(|| {
                        StoreError::Corrupt("an ordering key's counter was not written".into())
                    })?;
                    D::execute(
                        &mut tx,
                        crate::replay::SET_ORDERING,
                        args![key.clone(), seq, delivery.to_string()],
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        if !created.is_empty() {
            self.announce(Channel::Deliveries).await;
        }
        Ok(created)
    }

    async fn latest_events(&self, event_types: &[String], limit: u32) -> Result<Vec<EventRow>> {
        if event_types.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let args = vec![
            Arg::Ids(event_types.to_vec()),
            Arg::Int(i64::from(limit.min(MAX_PAGE))),
        ];
        let ts: Vec<rows::EventTuple> = D::fetch_all(
            &mut *self.reader().await?,
            &crate::replay::latest_sql(D::ID_LIST),
            args,
        )
        .await?;
        let seal = self.seal();
        ts.into_iter().map(|t| rows::event(&seal, t)).collect()
    }
}
