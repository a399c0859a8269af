//! This process as a node: an identity, a heartbeat in the store, and the sweep that frees the
//! leases of nodes that died, so that after a crash work moves on in seconds instead of when
//! the lease (minutes) ends.
//!
//! [`start`] runs once before the dispatcher claims anything: it registers the node and
//! releases its earlier incarnation's leases (on SQLite, every lease). [`run`] then loops
//! around [`beat`]: say this node is alive, and release the leases of any node not heard from
//! for `stale_after`. Every node sweeps; the sweep is one statement, so they do not conflict.

use std::sync::Arc;
use std::time::Duration;

use carehook_store::{NodeId, NodeStore};
use tokio::sync::watch;

use crate::time::now_ms;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id. A fixed one (`--node-id`) lets a restart release its earlier leases at
    /// once; the default, random per start, is never shared by two live processes.
    pub id: NodeId,
    /// How often this node says it is alive and looks for dead ones.
    pub heartbeat: Duration,
    /// A node not heard from for this long is taken for dead. Several heartbeats, so a slow
    /// moment is not a death; far below the lease, so a death costs seconds.
    pub stale_after: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: NodeId::random(),
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(10),
        }
    }
}

/// Registers this node and releases what its earlier incarnation held.
pub async fn start(store: &dyn NodeStore, config: &NodeConfig) -> anyhow::Result<()> {
    let released = store.start_node(&config.id, now_ms()).await?;
    if released > 0 {
        tracing::info!(
            node = %config.id,
            released,
            "released the leases of this node's earlier run"
        );
    }
    Ok(())
}

/// Heartbeats and sweeps until `stop` turns true.
pub async fn run(store: Arc<dyn NodeStore>, config: NodeConfig, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.heartbeat) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        beat(&*store, &config, now_ms()).await;
    }
}

/// One step of [`run`], at `now`. Failures are logged: a node that cannot write its heartbeat
/// will be taken for dead, and its deliveries sent by others (at least once, as always).
pub async fn beat(store: &dyn NodeStore, config: &NodeConfig, now: i64) {
    if let Err(e) = store.heartbeat(&config.id, now).await {
        tracing::warn!(node = %config.id, error = %e, "could not write this node's heartbeat");
    }
    let stale_before = now - config.stale_after.as_millis() as i64;
    match store.release_dead_nodes(stale_before).await {
        Ok(0) => {}
        Ok(released) => tracing::warn!(
            released,
            "released the leases of nodes that stopped sending heartbeats"
        ),
        Err(e) => tracing::warn!(error = %e, "could not look for dead nodes"),
    }
}
