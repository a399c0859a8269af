//! The store, written once for both dialects: [`SqlStore`] implements every role of
//! [`crate::Store`] over a [`Dialect`], which runs its statements and does what really differs.
//!
//! Writes go to `write`, reads to `read`: on SQLite two pools (one writer connection, a few
//! WAL readers), on PostgreSQL one pool twice. After a write commits, the store tells this
//! process's watchers and, through the dialect, other nodes ([`SqlStore::announce`]); that
//! side effect cannot fail the write, which has already happened.

use std::collections::HashMap;

use sqlx::Pool;
use sqlx::pool::PoolConnection;
use tokio::sync::watch;

use crate::batch;
use crate::dialect::{Channel, Claim, Conn, Dialect};
use crate::error::{Result, StoreError};
use crate::records::{self, Changed, RecordFilter, RecordLogic, RecordTuple, RecordTx, Target};
use crate::rows::{self, earliest, to_json};
use crate::sql::{self, Arg, args};
use crate::stats::{self, QueueDepth, WebhookStats};
use crate::types::*;
use crate::{
    LogStore, NodeStore, QueueStore, RecordStore, SettingsStore, Store, TokenStore, WebhookStore,
    now_ms,
};
use carehook_core::clinic::{Kind, Record};

#[derive(Debug)]
pub(crate) struct SqlStore<D: Dialect> {
    dialect: D,
    write: Pool<D::Db>,
    read: Pool<D::Db>,
    wake: watch::Sender<u64>,
    webhooks: watch::Sender<u64>,
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
        };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) async fn reader(&self) -> Result<PoolConnection<D::Db>> {
        Ok(self.read.acquire().await?)
    }

    pub(crate) async fn writer(&self) -> Result<PoolConnection<D::Db>> {
        Ok(self.write.acquire().await?)
    }

    /// Wakes this process's dispatcher only: other nodes heard of it through a NOTIFY sent
    /// in the committed transaction (`Dialect::insert_deliveries`).
    fn wake_here(&self) {
        self.wake.send_modify(bump);
    }

    /// After a commit: tells this process's watchers, then other nodes. The change committed,
    /// so a failed notification is logged and the caller still gets its answer; other nodes
    /// see the change on their next poll (a second or a few).
    async fn announce(&self, channel: Channel) {
        match channel {
            Channel::Deliveries => self.wake.send_modify(bump),
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
    batch: &[NewEvent],
) -> Result<(Vec<Recorded>, bool)> {
    let plan = batch::plan_events(batch);
    let inserted = D::insert_events(conn, batch, &plan.candidates).await?;
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
    if !deliveries.is_empty() {
        D::insert_deliveries(conn, &deliveries).await?;
    }
    Ok((
        plan.answers(batch, &inserted, &earlier)?,
        !deliveries.is_empty(),
    ))
}

/// Clinic record I/O inside one write transaction; see `records::change`.
struct RecordTxn<'t, D: Dialect> {
    conn: &'t mut Conn<D>,
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
        let (answers, delivered) = write_events::<D>(self.conn, events).await?;
        self.delivered |= delivered;
        Ok(answers)
    }
}

#[async_trait::async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::NAME
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
        let (answers, any_deliveries) = write_events::<D>(&mut tx, &batch).await?;
        tx.commit().await?;
        if any_deliveries {
            self.wake_here();
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
        let lease_until = now.saturating_add(lease_ms);
        let terms = Claim {
            owner,
            now,
            lease_until,
            limit,
            exclude,
        };
        self.dialect.claim(&self.write, &terms).await
    }

    async fn record_attempts(&self, batch: Vec<AttemptRecord>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.dialect.begin(&self.write).await?;
        D::write_attempts(&mut tx, &batch).await?;
        tx.commit().await?;
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

    fn watch_deliveries(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
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
        D::execute(&mut tx, sql::RETRY_DELIVERY, args![id.to_string(), now]).await?;
        let t: Option<rows::DeliveryTuple> =
            D::fetch_optional(&mut tx, sql::GET_DELIVERY, args![id.to_string()]).await?;
        tx.commit().await?;
        if t.is_some() {
            self.announce(Channel::Deliveries).await;
        }
        t.map(rows::delivery).transpose()
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
                .map(rows::attempt)
                .collect::<Result<_>>()?,
        )))
    }

    async fn list_deliveries(&self, f: DeliveryFilter) -> Result<Page<DeliveryRow>> {
        let built = sql::list_deliveries(&f)?;
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
        t.map(rows::event).transpose()
    }

    async fn list_events(&self, limit: u32, cursor: Option<String>) -> Result<Page<EventRow>> {
        let built = sql::list_events(limit, cursor.as_deref())?;
        let ts: Vec<rows::EventTuple> =
            D::fetch_all(&mut *self.reader().await?, &built.sql, built.args).await?;
        let items = ts
            .into_iter()
            .map(rows::event)
            .collect::<Result<Vec<_>>>()?;
        Ok(sql::into_page(items, built.limit, |e| {
            (e.created_at, e.id.as_uuid())
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
    async fn insert_token(
        &self,
        id: TokenId,
        name: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<()> {
        let args = args![id.to_string(), name, token_hash, now];
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
            delivered: false,
        };
        let changed = records::change(&mut txn, kind, target, logic, now).await?;
        let delivered = txn.delivered;
        tx.commit().await?;
        if delivered {
            self.wake_here();
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
