//! The HTTP server loop: accepts connections and serves a router on each
//! with the limits that keep slow or greedy clients from holding carehook's
//! sockets, memory and tasks (`axum::serve` has none of them):
//!
//! - a request's head must arrive in full within [`ConnLimits::header_read`]
//!   (also the longest an idle keep-alive connection waits for its next
//!   request), so a client that sends a byte now and then is cut off;
//! - a request's body must arrive in full within [`ConnLimits::body_read`]
//!   (408 otherwise; applied by [`crate::api::guard`], which the router
//!   passed in is expected to carry);
//! - one client address holds at most [`ConnLimits::per_client`]
//!   connections; more are closed as soon as they are accepted.
//!
//! Shutdown is graceful: idle connections close, requests in progress
//! finish, and the loop returns when every connection is gone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long and how many: see the module's description.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read: Duration,
    pub body_read: Duration,
    pub per_client: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            per_client: 64,
        }
    }
}

/// Connections open per client address.
#[derive(Debug, Default)]
struct Clients(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`Clients`], given back when dropped.
#[derive(Debug)]
struct Slot {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Clients {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let clients = Arc::new(Clients::default());
    // Every connection task holds a receiver; the loop waits for them all.
    let (done_tx, done_rx) = watch::channel(());
    let mut refused_logged = std::collections::HashSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let Some(slot) = clients.take(peer.ip(), limits.per_client) else {
            // Logged once per address (until the map is cleared) so a flood
            // does not flood the log too.
            if refused_logged.len() < 1024 && refused_logged.insert(peer.ip()) {
                tracing::warn!(client = %peer.ip(), cap = limits.per_client,
                    "refusing connections beyond the cap per client address");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut app = app.clone();
            let mut req = req.map(Body::new);
            // The client's address, for the audit trail and per-address limits.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            tower_service::Service::call(&mut app, req)
        });
        let mut stop = stop.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _done = done;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read);
            let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(done_rx);
    done_tx.closed().await;
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
