//! The one seam: [`run`] starts carehook (API, dispatcher, background jobs)
//! on a listener it is given and stops when `shutdown` completes, or with an
//! error when a supervised background task keeps panicking. `carehook
//! serve` and every integration test go through it, so tests run the real
//! thing on port 0.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use carehook_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, AppState, Shared};
use crate::dispatcher::{Dispatcher, DispatcherConfig};
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::outbound::{DestinationPolicy, Outbound};
use crate::registry::Registry;
use crate::supervise::Supervisor;
use crate::time::now_ms;
use crate::vault::Vault;

/// Everything [`run`] needs, already validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: DestinationPolicy,
    /// SHA-256 (hex) of the admin token.
    pub admin_token_hash: String,
    /// Serve the HTTP API.
    pub api: bool,
    /// Run the dispatcher, with this configuration.
    pub dispatcher: Option<DispatcherConfig>,
    /// Disable a webhook whose deliveries all failed for this long.
    pub auto_disable_after: Duration,
    /// How often to re-read webhooks changed by other nodes.
    pub registry_refresh: Duration,
    pub vault: Vault,
    /// Serve `GET /metrics` on this address instead of the API's.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Seal new event snapshots and attempt bodies with the master key (on by default).
    pub seal_payloads: bool,
    /// How long payloads are kept, and the background purge; `None`: no background purge.
    pub retention: Option<crate::service::privacy::RetentionConfig>,
    /// Read timeouts and the cap on connections per client address.
    pub connections: crate::serve::ConnLimits,
    /// Send all outbound traffic through this proxy (`CAREHOOK_EGRESS_PROXY`).
    pub egress_proxy: Option<crate::outbound::egress::EgressProxy>,
    /// How failed logins to the admin UI are slowed down.
    pub login_limits: crate::service::users::LoginLimits,
}

impl Settings {
    /// Defaults for a given admin token and master key; tests start here.
    pub fn new(admin_token: &str, vault: Vault) -> Self {
        Settings {
            policy: DestinationPolicy::default(),
            admin_token_hash: crate::service::tokens::hash_token(admin_token),
            api: true,
            dispatcher: Some(DispatcherConfig::default()),
            auto_disable_after: Duration::from_secs(5 * 24 * 3600),
            registry_refresh: Duration::from_secs(5),
            vault,
            metrics_listen: None,
            seal_payloads: true,
            retention: Some(crate::service::privacy::RetentionConfig::default()),
            connections: Default::default(),
            egress_proxy: None,
            login_limits: Default::default(),
        }
    }
}

/// Runs carehook until `shutdown` completes, then drains: the API stops
/// taking requests, the dispatcher finishes or releases what it holds.
/// Returns an error, after the same drain, when a background task panicked
/// [`crate::supervise::MAX_PANICS`] times (so the process exits non-zero).
pub async fn run(
    settings: Settings,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Payloads are sealed with the master key; sealed ones read back whatever the setting.
    store.set_sealer(
        Some(Arc::new(settings.vault.clone())),
        settings.seal_payloads,
    );
    let registry = Arc::new(Registry::new(settings.vault.clone()));
    registry
        .refresh(&*store)
        .await
        .context("loading webhooks")?;
    let outbound = Outbound::with_proxy(settings.policy.clone(), settings.egress_proxy.clone())?;
    if let Some(proxy) = &settings.egress_proxy {
        tracing::info!(proxy = %proxy.describe(), "outbound requests go through the egress proxy");
    }
    // OAuth 2.0 tokens are asked for through the same outbound (policy, proxy, timeouts).
    let node = settings.dispatcher.as_ref().map_or_else(
        || carehook_store::NodeId::random().to_string(),
        |d| d.node.id.to_string(),
    );
    let tokens = crate::outbound::oauth::Tokens::new(
        store.clone(),
        settings.vault.clone(),
        outbound.clone(),
        &node,
    );
    let outbound = outbound.with_tokens(Arc::new(tokens));
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);

    // Every background task is supervised: restarted after a panic, and
    // the process ends (an error from `run`) if one keeps panicking.
    let (supervisor, mut fatal) = Supervisor::new(stop_rx.clone());
    let mut jobs = tokio::task::JoinSet::new();

    // The writer ends once the API and the dispatcher are gone (every `Intake`
    // dropped), so it is not waited for with the jobs. The dispatcher records
    // operational events (`alerts`) through it too.
    let (intake, writer) = Intake::new(store.clone(), metrics.clone());
    tokio::spawn(supervisor.supervise("intake_writer", move || writer.clone().run()));
    let alerter = crate::alerts::Alerter::new(intake.clone(), registry.clone());
    if let Some(config) = settings.dispatcher.clone() {
        // Before the first claim: free what this node's earlier run held.
        crate::node::start(&*store, &config.node).await?;
        let (node_store, node, stop) = (store.clone(), config.node.clone(), stop_rx.clone());
        jobs.spawn(supervisor.supervise("node_heartbeat", move || {
            crate::node::run(node_store.clone(), node.clone(), stop.clone())
        }));
        let dispatcher = Dispatcher::new(
            store.clone(),
            registry.clone(),
            outbound.clone(),
            config,
            metrics.clone(),
        )
        .with_alerts(alerter.clone());
        let recorder = dispatcher.recorder();
        jobs.spawn(supervisor.supervise("recorder", move || recorder.clone().run()));
        let stop = stop_rx.clone();
        jobs.spawn(
            supervisor.supervise("dispatcher", move || dispatcher.clone().run(stop.clone())),
        );
        let (store, registry, stop) = (store.clone(), registry.clone(), stop_rx.clone());
        let window = settings.auto_disable_after;
        let alerter = alerter.clone();
        jobs.spawn(supervisor.supervise("auto_disable", move || {
            auto_disable_loop(
                store.clone(),
                registry.clone(),
                alerter.clone(),
                window,
                stop.clone(),
            )
        }));
    }
    if let Some(config) = settings.retention.clone() {
        let (store, stop) = (store.clone(), stop_rx.clone());
        jobs.spawn(supervisor.supervise("retention_purge", move || {
            purge_loop(store.clone(), config.clone(), stop.clone())
        }));
    }
    {
        let (store, registry, stop) = (store.clone(), registry.clone(), stop_rx.clone());
        let every = settings.registry_refresh;
        jobs.spawn(supervisor.supervise("registry_refresh", move || {
            refresh_loop(store.clone(), registry.clone(), every, stop.clone())
        }));
    }

    drop(alerter);

    let state = AppState(Arc::new(Shared {
        store: store.clone(),
        registry,
        intake,
        outbound,
        admin_token_hash: settings.admin_token_hash.clone(),
        metrics,
        token_touches: Default::default(),
        metrics_on_api: settings.metrics_listen.is_none(),
        tasks: supervisor.board.clone(),
        retention_default_days: settings.retention.as_ref().map(|r| r.default_days),
        login_limits: settings.login_limits,
    }));

    if let Some(addr) = settings.metrics_listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for metrics on {addr}"))?;
        tracing::info!(listen = %listener.local_addr()?, "metrics are served at /metrics");
        let shared = state.0.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let shared = shared.clone();
                async move { api::metrics_text(&shared).await }
            }),
        );
        let (stop, limits) = (stop_rx.clone(), settings.connections);
        jobs.spawn(crate::serve::serve(listener, app, limits, stop));
    }

    if settings.api {
        let app = api::router(state.clone())
            .merge(crate::ui::router(state))
            .layer(axum::middleware::from_fn(client_address));
        let app = api::guard::guard(app, settings.connections.body_read);
        let (stop, limits) = (stop_rx.clone(), settings.connections);
        jobs.spawn(crate::serve::serve(listener, app, limits, stop));
    } else {
        drop(listener);
    }

    let failed = tokio::select! {
        _ = shutdown => None,
        why = fatal.recv() => why,
    };
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    while jobs.join_next().await.is_some() {}
    match failed {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// Serves a request with its client's address known to the audit trail.
async fn client_address(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let addr = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    crate::service::audit::client_scope(addr, next.run(request)).await
}

/// Purges payloads past their retention, every `config.every` (the first run soon after the
/// start), in bounded batches with pauses so deliveries go on meanwhile.
async fn purge_loop(
    store: Arc<dyn Store>,
    config: crate::service::privacy::RetentionConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = Duration::from_secs(5).min(config.every);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = config.every;
        let run = crate::service::privacy::purge_expired(&*store, &config, now_ms());
        tokio::select! {
            r = run => if let Err(e) = r {
                tracing::warn!(error = %e.message(), "the retention purge failed; it runs again later");
            },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Reloads webhooks when the store says they changed (on PostgreSQL, also
/// when another node changed them), and every `every` in case a
/// notification was missed.
async fn refresh_loop(
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut changed = store.watch_webhooks();
    loop {
        let closed = tokio::select! {
            _ = tokio::time::sleep(every) => false,
            r = changed.changed() => r.is_err(),
            _ = stop.wait_for(|s| *s) => return,
        };
        if closed {
            // The store dropped its sender: fall back to the timer alone.
            tokio::time::sleep(every).await;
        }
        if let Err(e) = registry.refresh(&*store).await {
            tracing::warn!(error = %format!("{e:#}"), "could not refresh webhooks");
        }
    }
}

/// Disables webhooks whose every delivery failed for the whole window.
async fn auto_disable_loop(
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    alerter: crate::alerts::Alerter,
    window: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let every = (window / 100).clamp(Duration::from_millis(200), Duration::from_secs(3600));
    loop {
        let since = now_ms() - window.as_millis() as i64;
        match store.webhooks_failing_since(since).await {
            Ok(ids) => {
                for id in ids {
                    let reason = format!(
                        "every delivery failed for {}; fix the endpoint, then enable the webhook again",
                        carehook_core::retry::format_duration(window)
                    );
                    let by = crate::domain::Actor::System("auto-disable");
                    let was_enabled = registry.get(id).is_none_or(|w| w.row.enabled);
                    let disabled =
                        crate::registry::disable(&*store, &registry, &by, id, Some(reason.clone()))
                            .await;
                    if let (Ok(w), true) = (disabled, was_enabled) {
                        let alert = crate::alerts::Alert::WebhookDisabled {
                            webhook: id,
                            name: w.row.name.clone(),
                            reason,
                        };
                        alerter.emit(&alert).await;
                    }
                }
                let _ = registry.refresh(&*store).await;
            }
            Err(e) => tracing::warn!(error = %e, "auto-disable check failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The admin token: `CAREHOOK_ADMIN_TOKEN` when given; else the one made on
/// first start (its hash is stored; the token itself is printed once).
pub async fn admin_token_hash(
    store: &dyn Store,
    from_env: Option<&str>,
) -> anyhow::Result<(String, Option<String>)> {
    if let Some(token) = from_env {
        if token.len() < 16 {
            anyhow::bail!("CAREHOOK_ADMIN_TOKEN must be at least 16 characters");
        }
        return Ok((crate::service::tokens::hash_token(token), None));
    }
    if let Some(hash) = store.kv_get("admin_token_hash").await? {
        return Ok((hash, None));
    }
    let token = crate::service::tokens::generate_token()?;
    let hash = crate::service::tokens::hash_token(&token);
    store.kv_set("admin_token_hash", &hash).await?;
    Ok((hash, Some(token)))
}
