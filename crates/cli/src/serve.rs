//! `carehook serve`: settings from flags and `CAREHOOK_*` environment, then
//! [`carehook::app::run`] until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use carehook::app::{self, Settings};
use carehook::dispatcher::DispatcherConfig;
use carehook::outbound::{DestinationPolicy, parse_allowed};
use carehook::vault::{KeySource, Vault};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CAREHOOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database: `sqlite://carehook.db` (made on first start) or `postgres://user@host/db`.
    #[arg(
        long,
        env = "CAREHOOK_DATABASE_URL",
        default_value = "sqlite://carehook.db"
    )]
    pub database_url: String,
    /// The admin API token (16+ characters). Without it, one is made on first start and printed once.
    #[arg(long, env = "CAREHOOK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The e-mail address of the owner account made on first start (its password is printed once).
    #[arg(long, env = "CAREHOOK_OWNER_EMAIL", default_value = "owner@localhost")]
    pub owner_email: String,
    /// Private networks webhooks may reach anyway, as CIDRs: `127.0.0.1/32,10.0.0.0/8`.
    /// Everything loopback, private, link-local, CGNAT, multicast or metadata is refused otherwise.
    #[arg(long, env = "CAREHOOK_ALLOWED_DESTINATIONS", default_value = "")]
    pub allowed_destinations: String,
    /// Send every outbound request (deliveries, test sends, OAuth 2.0 token requests) through
    /// this HTTP proxy: `http://[user:password@]proxy.clinic.lan:3128`. HTTPS goes through CONNECT
    /// tunnels. Destinations are still checked against the policy above; the proxy itself is allowed.
    #[arg(long, env = "CAREHOOK_EGRESS_PROXY", hide_env_values = true)]
    pub egress_proxy: Option<String>,
    /// Master key for secrets at rest: base64 of 32 bytes (`openssl rand -base64 32`).
    /// Without it, a key file is used (see --key-file).
    #[arg(long, env = "CAREHOOK_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Key file made (mode 0600) on first start when no master key is given.
    /// Default: beside the SQLite database, else ./carehook.key.
    #[arg(long, env = "CAREHOOK_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Serve the API only; another process dispatches.
    #[arg(long, conflicts_with = "dispatcher_only")]
    pub api_only: bool,
    /// Dispatch only; no HTTP API.
    #[arg(long)]
    pub dispatcher_only: bool,
    /// Most requests in flight at once, across all webhooks.
    #[arg(long, env = "CAREHOOK_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// Most connections open at once from one client address (more are refused, so one
    /// client cannot hold every connection). Behind a reverse proxy every request comes from
    /// the proxy's address: raise it to what the proxy may open.
    #[arg(long, env = "CAREHOOK_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections_per_client: u32,
    /// Seconds a claimed delivery stays leased while its node lives (a dead node's leases are
    /// freed once its heartbeat is stale; see --node-stale-secs).
    #[arg(long, env = "CAREHOOK_LEASE_SECS", default_value_t = 150)]
    pub lease_secs: u64,
    /// This node's id (letters, digits, `.-_:`). Keep it fixed across restarts, unique per
    /// process, for a restart to free its earlier leases at once. Default: random per start.
    #[arg(long, env = "CAREHOOK_NODE_ID")]
    pub node_id: Option<String>,
    /// Seconds without a heartbeat after which a node is taken for dead and its leases freed.
    #[arg(long, env = "CAREHOOK_NODE_STALE_SECS", default_value_t = 10)]
    pub node_stale_secs: u64,
    /// Serve `GET /metrics` on this address (e.g. 127.0.0.1:9090) instead of the API's.
    #[arg(long, env = "CAREHOOK_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Disable a webhook whose every delivery failed for this long (e.g. 5d, 12h).
    #[arg(long, env = "CAREHOOK_AUTO_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub auto_disable_after: Duration,
    /// Seal event snapshots and attempt bodies with the master key (ChaCha20-Poly1305).
    /// `false` writes new ones in plain text; sealed ones still read.
    #[arg(long, env = "CAREHOOK_SEAL_PAYLOADS", default_value_t = true, action = clap::ArgAction::Set)]
    pub seal_payloads: bool,
    /// Days to keep event snapshots and request/response bodies (a webhook's
    /// `payloads.retention_days` overrides it); then a background purge removes them, keeping
    /// ids, status, times, sizes and SHA-256. 0: never purge.
    #[arg(long, env = "CAREHOOK_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
    /// Seconds between runs of the background retention purge.
    #[arg(long, env = "CAREHOOK_PURGE_EVERY_SECS", default_value_t = 600)]
    pub purge_every_secs: u64,
    /// Start with a demo clinic (doctors, patients, appointments, a paid bill) when the
    /// database has no clinic records yet; otherwise leave it as it is.
    #[arg(long)]
    pub demo: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    carehook_core::retry::parse_duration(s).map_err(|e| e.to_string())
}

/// The key file's default place: beside a SQLite database.
pub fn default_key_file(database_url: &str) -> PathBuf {
    let path = database_url
        .strip_prefix("sqlite://")
        .filter(|p| !p.is_empty() && !p.starts_with(':'));
    match path.map(PathBuf::from) {
        Some(db) => db.with_extension("key"),
        None => PathBuf::from("carehook.key"),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let allowed = parse_allowed(&args.allowed_destinations)
        .map_err(|e| anyhow::anyhow!("CAREHOOK_ALLOWED_DESTINATIONS: {e}"))?;
    let egress_proxy = args
        .egress_proxy
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(carehook::outbound::egress::EgressProxy::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let store = carehook_store::connect(&args.database_url)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&args.database_url)))?;
    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| default_key_file(&args.database_url));
    let (vault, source) = Vault::open(args.master_key.as_deref(), &key_file)?;
    match source {
        KeySource::Environment if key_file.exists() => tracing::warn!(
            key_file = %key_file.display(),
            "secrets are sealed with CAREHOOK_MASTER_KEY, and a key file lies beside the database: \
             if secrets were saved with the file's key, their webhooks will show as broken"
        ),
        KeySource::Environment => tracing::info!("secrets are sealed with CAREHOOK_MASTER_KEY"),
        KeySource::File(p) => {
            tracing::info!(key_file = %p.display(), "secrets are sealed with the key file")
        }
        KeySource::Created(p) => tracing::warn!(
            key_file = %p.display(),
            "made a new master key file; back it up: without it, stored secrets cannot be read"
        ),
    }
    let (hash, new_token) = app::admin_token_hash(&*store, args.admin_token.as_deref()).await?;
    let owner_password = if args.dispatcher_only {
        None
    } else {
        carehook::service::users::first_owner(&*store, &args.owner_email)
            .await
            .map_err(|e| anyhow::anyhow!("making the owner account: {}", e.message()))?
    };
    if args.demo {
        let registry = carehook::registry::Registry::new(vault.clone());
        registry
            .refresh(&*store)
            .await
            .context("loading webhooks")?;
        carehook::demo::fill_if_empty(&*store, &registry)
            .await
            .context("adding the demo clinic")?;
    }
    let mut settings = Settings::new("", vault);
    settings.admin_token_hash = hash;
    settings.policy = DestinationPolicy::new(allowed);
    settings.api = !args.dispatcher_only;
    let mut node = carehook::node::NodeConfig::default();
    if let Some(id) = &args.node_id {
        node.id = carehook_store::NodeId::parse(id).context("CAREHOOK_NODE_ID")?;
    }
    node.stale_after = Duration::from_secs(args.node_stale_secs.max(3));
    settings.dispatcher = (!args.api_only).then(|| DispatcherConfig {
        max_in_flight: args.max_in_flight.max(1),
        lease: Duration::from_secs(args.lease_secs.max(5)),
        node,
        ..DispatcherConfig::default()
    });
    settings.connections.per_client = args.max_connections_per_client as usize;
    settings.auto_disable_after = args.auto_disable_after;
    settings.metrics_listen = args.metrics_listen;
    settings.seal_payloads = args.seal_payloads;
    settings.retention =
        (args.retention_days > 0).then(|| carehook::service::privacy::RetentionConfig {
            default_days: args.retention_days,
            every: Duration::from_secs(args.purge_every_secs.max(1)),
            ..Default::default()
        });
    settings.egress_proxy = egress_proxy;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (is another carehook running? try --listen 127.0.0.1:8081)",
                args.listen
            )
        })?;
    if settings.api {
        println!(
            "{}",
            carehook::welcome::text(listener.local_addr()?, new_token.as_deref(), args.demo)
        );
        if let Some(password) = &owner_password {
            println!(
                "{}",
                carehook::welcome::owner_text(&args.owner_email, password)
            );
        }
    }
    tracing::info!(
        listen = %listener.local_addr()?,
        database = store.backend(),
        api = settings.api,
        dispatcher = settings.dispatcher.is_some(),
        "carehook is running"
    );
    app::run(settings, store, listener, shutdown_signal()).await
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// A database URL for logs, without its password.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("********"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(
            default_key_file("sqlite://carehook.db"),
            PathBuf::from("carehook.key")
        );
        assert_eq!(
            default_key_file("sqlite:///var/lib/ch/x.db"),
            PathBuf::from("/var/lib/ch/x.key")
        );
        assert_eq!(
            default_key_file("postgres://u@h/db"),
            PathBuf::from("carehook.key")
        );
    }

    #[test]
    fn passwords_are_kept_out_of_logs() {
        assert!(!redact_url("postgres://u:secret@h/db").contains("secret"));
    }
}
