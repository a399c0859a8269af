//! `carehook bench`: a load benchmark anyone can run.
//!
//! It starts `carehook serve` as a child process (on a fresh SQLite file, or
//! a given PostgreSQL URL) and a sink receiver on 127.0.0.1 in this process
//! (answering at once, or after `--endpoint-latency`), creates `--webhooks`
//! webhooks pointing at the sink, then sends N events through
//! `POST /api/v1/events` from C concurrent clients over real HTTP, and
//! reports what the clients and the sink saw. Each event carries its send
//! time, so the sink measures event→receiver latency.
//!
//! - `--backlog N`: N events are accepted by `serve --api-only` first; then
//!   `serve` starts and the drain of the whole backlog is timed.
//! - `--preload-rows N`: N old events, each with a delivered delivery and its
//!   attempt, are written to the database before the run (a database that
//!   has been in use for a while).
//! - `--nodes N` (PostgreSQL): N `carehook serve` on the one database, the
//!   clients spread over them; `--pin` gives each node a CPU of its own.
//! - `--server PATH`: runs another carehook binary as the server, so two
//!   builds are measured by the same load generator.
//! - `--ordering-keys N`: the webhooks order their deliveries by
//!   `{{patient_id}}`, and the events spread over N patients, so each
//!   patient's deliveries go one at a time; compare with a run without it.
//!
//! carehook runs in its own process so its CPU time and peak memory can be
//! read apart from the load generator's (from /proc), while both share this
//! machine's cores, as they would on a small clinic server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events to send.
    #[arg(short = 'n', long, default_value_t = 20_000)]
    pub events: u64,
    /// Concurrent clients.
    #[arg(short = 'c', long, default_value_t = 64)]
    pub concurrency: u64,
    /// Database; default: a fresh SQLite file in a temporary directory.
    /// A PostgreSQL URL should name an empty database made for the run.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Send at this many events per second in total (paced), instead of as fast as possible.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Webhooks, each subscribed to every event (so each event makes this many deliveries),
    /// each at its own path of the sink.
    #[arg(long, default_value_t = 1)]
    pub webhooks: u32,
    /// The webhooks' `max_in_flight`; default: a new webhook's default.
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// The sink answers each request after this many milliseconds.
    #[arg(long, default_value_t = 0)]
    pub endpoint_latency: u64,
    /// Fill a backlog of this many events with the dispatcher stopped (`serve --api-only`),
    /// then start `serve` and time the drain. Replaces --events.
    #[arg(long)]
    pub backlog: Option<u64>,
    /// Write this many old events, each with a delivered delivery and its attempt, before the run.
    #[arg(long, default_value_t = 0)]
    pub preload_rows: u64,
    /// Run this many `carehook serve` nodes on the one database (PostgreSQL only); the
    /// clients spread the events over their APIs.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// Pin node i to CPU i (with `taskset`), so each node has a core of its own.
    #[arg(long)]
    pub pin: bool,
    /// The carehook binary to run as the server; default: this one.
    #[arg(long)]
    pub server: Option<std::path::PathBuf>,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Print the figures as JSON too.
    #[arg(long)]
    pub json: bool,
    /// Seal event snapshots and bodies at rest (`CAREHOOK_SEAL_PAYLOADS`); compare
    /// `--seal-payloads false` to measure what sealing costs.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub seal_payloads: bool,
    /// Before the run, fill the database with this many attempts (and events) 40 days old, so
    /// the retention purge (every second, 30 days) removes them while the run goes on.
    #[arg(long, default_value_t = 0)]
    pub expired_backlog: u64,
    /// Give the webhooks the ordering key `{{patient_id}}` and spread the events over this
    /// many patients: each patient's deliveries then go one at a time, in order.
    #[arg(long)]
    pub ordering_keys: Option<u64>,
}

const TOKEN: &str = "carehook-bench-token-0123456789";

/// What the sink saw.
#[derive(Debug, Default)]
struct Sink {
    received: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    last_at_us: AtomicU64,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.concurrency == 0 || args.webhooks == 0 {
        bail!("--events, --concurrency and --webhooks must be at least 1");
    }
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if args.nodes > 1
        && !args
            .database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres"))
    {
        bail!(
            "--nodes above 1 needs a PostgreSQL --database-url: on SQLite one process owns the file"
        );
    }
    if args.backlog == Some(0) {
        bail!("--backlog must be at least 1");
    }
    if args.ordering_keys == Some(0) {
        bail!("--ordering-keys must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

/// A `carehook serve` child process on 127.0.0.1, stopped with SIGTERM when dropped.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    /// Node `node` (pinned to CPU `node` with `--pin`); `mode`: `--api-only`, say.
    async fn start(
        args: &BenchArgs,
        url: &str,
        dir: &std::path::Path,
        node: u32,
        mode: Option<&str>,
    ) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let exe = match &args.server {
            Some(p) => p.clone(),
            None => std::env::current_exe()?,
        };
        let mut cmd = if args.pin {
            let mut c = std::process::Command::new("taskset");
            c.arg("-c").arg(node.to_string()).arg(exe);
            c
        } else {
            std::process::Command::new(exe)
        };
        cmd.arg("serve");
        if let Some(m) = mode {
            cmd.arg(m);
        }
        let mut child = cmd
            .env("CAREHOOK_LISTEN", format!("127.0.0.1:{port}"))
            .env("CAREHOOK_DATABASE_URL", url)
            .env("CAREHOOK_ADMIN_TOKEN", TOKEN)
            .env("CAREHOOK_ALLOWED_DESTINATIONS", "127.0.0.1/32")
            // Every client of the load generator comes from 127.0.0.1, as through a proxy.
            .env(
                "CAREHOOK_MAX_CONNECTIONS_PER_CLIENT",
                (args.concurrency.saturating_mul(2) + 16).to_string(),
            )
            .env("CAREHOOK_KEY_FILE", dir.join("bench.key"))
            .env("RUST_LOG", "warn,carehook::service::privacy=info")
            .env("CAREHOOK_SEAL_PAYLOADS", args.seal_payloads.to_string())
            .env("CAREHOOK_PURGE_EVERY_SECS", "1")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting `carehook serve`")?;
        if let Err(e) = wait_healthy(&base, &mut child).await {
            let _ = child.kill();
            return Err(e);
        }
        Ok(Server { child, base })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the graceful exit.
    fn stop(mut self) -> anyhow::Result<()> {
        terminate(self.child.id());
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(self.child.id());
            let _ = self.child.wait();
        }
    }
}

fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    carehook::outbound::install_crypto_provider();
    let dir = tempfile::Builder::new()
        .prefix("carehook-bench-")
        .tempdir()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let events = args.backlog.unwrap_or(args.events);
    let expected = events * u64::from(args.webhooks);

    // The sink: answers 200 (after the endpoint latency) and notes each event's latency.
    let origin = Instant::now();
    let sink = Arc::new(Sink::default());
    let sink_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink_listener.local_addr()?;
    let s = sink.clone();
    let delay = Duration::from_millis(args.endpoint_latency);
    let sink_app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let s = s.clone();
        async move {
            let now = origin.elapsed().as_micros() as u64;
            if let Some(sent) = sent_at(&body) {
                s.latencies_us
                    .lock()
                    .expect("sink lock")
                    .push(now.saturating_sub(sent) as u32);
            }
            s.last_at_us.fetch_max(now, Ordering::Relaxed);
            s.received.fetch_add(1, Ordering::Relaxed);
            if !delay.is_zero() {
                // A thread's sleep, not a tokio timer: tokio's timer rounds up to its next
                // millisecond tick, so a "1 ms" endpoint answered after 1.5–2 ms on average.
                // A sleeping thread costs no CPU; the blocking pool grows to the requests open.
                let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
            }
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(sink_listener, sink_app).await });

    if args.expired_backlog > 0 {
        let started = Instant::now();
        fill_expired(&url, args.expired_backlog).await?;
        eprintln!(
            "carehook bench: {} expired attempts written in {:.1} s",
            args.expired_backlog,
            started.elapsed().as_secs_f64()
        );
    }

    // carehook itself: `carehook serve`, as a user runs it (API only while a backlog fills).
    let mode = args.backlog.map(|_| "--api-only");
    let mut servers = Vec::new();
    for node in 0..if args.backlog.is_some() {
        1
    } else {
        args.nodes
    } {
        servers.push(Server::start(&args, &url, dir.path(), node, mode).await?);
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency as usize)
        .build()?;
    // Set up through the CLI's client; the load below goes through a bare pooled
    // client, so the figures measure carehook and not the CLI's checks.
    let api = crate::client::Client::connect(&crate::client::Server {
        address: servers[0].base.clone(),
        token: Some(TOKEN.into()),
    })?;
    let mut first_webhook = None;
    for i in 0..args.webhooks {
        let mut hook = json!({
            "name": format!("bench sink {i}"),
            "events": ["kc_appointment_book"],
            "url": format!("http://{sink_addr}/hook/{i}"),
            "body": "{\"t\": \"{{appointment_id}}\", \"patient\": \"{{patient_name}}\", \"clinic\": \"{{clinic_name}}\"}",
        });
        if let Some(n) = args.max_in_flight {
            hook["max_in_flight"] = json!(n);
        }
        if args.ordering_keys.is_some() {
            hook["ordering_key"] = json!("{{patient_id}}");
        }
        let made = api
            .post("/api/v1/webhooks", &hook)
            .await
            .context("creating a benchmark webhook")?;
        first_webhook = first_webhook.or_else(|| made["id"].as_str().map(str::to_string));
    }
    if args.preload_rows > 0 {
        let webhook = first_webhook.context("the webhook's id")?;
        let started = Instant::now();
        carehook_store::preload_history(&url, &webhook, args.preload_rows)
            .await
            .context("preloading rows")?;
        eprintln!(
            "carehook bench: preloaded {} events, deliveries and attempts in {:.1} s",
            args.preload_rows,
            started.elapsed().as_secs_f64()
        );
    }

    eprintln!(
        "carehook bench: {events} events × {} webhooks (max_in_flight {}, endpoint {} ms{}), {} clients, {backend}{}{} on {} CPUs",
        args.webhooks,
        args.max_in_flight
            .map(|n| n.to_string())
            .unwrap_or_else(|| "default".into()),
        args.endpoint_latency,
        args.ordering_keys
            .map(|n| format!(", ordered over {n} keys"))
            .unwrap_or_default(),
        args.concurrency,
        args.rate
            .map(|r| format!(", paced at {r}/s"))
            .unwrap_or_default(),
        args.backlog.map(|_| ", as a backlog").unwrap_or_default(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let bar = ProgressBar::new(expected);
    bar.set_style(
        ProgressStyle::with_template("{spinner} delivered {pos}/{len} [{bar:40}] {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // carehook's CPU is counted from here: start-up (migrations, the first
    // connections, webhooks made above) is not part of the load.
    let cpu_before = servers
        .iter()
        .map(|s| cpu_seconds(s.pid()))
        .sum::<Option<f64>>();
    let start = Instant::now();
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let mut clients = send_events(&args, events, &client, &bases, origin, start);
    let deadline = start + Duration::from_secs(args.timeout_secs);
    let accepted_all =
        |clients: &mut tokio::task::JoinSet<anyhow::Result<()>>| -> anyhow::Result<bool> {
            while let Some(r) = clients.try_join_next() {
                r??;
            }
            Ok(clients.is_empty())
        };
    // A backlog: wait for every event to be accepted, then swap the API-only server for a
    // whole one and time the drain from its start.
    let mut drain_from = None;
    if args.backlog.is_some() {
        while !accepted_all(&mut clients)? {
            if Instant::now() > deadline {
                bail!(
                    "the backlog was not accepted within {} s",
                    args.timeout_secs
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bar.set_message("backlog accepted");
        for s in servers.drain(..) {
            s.stop()?;
        }
        drain_from = Some(origin.elapsed());
        for node in 0..args.nodes {
            servers.push(Server::start(&args, &url, dir.path(), node, None).await?);
        }
    }
    let mut sent_elapsed = None;
    loop {
        let got = sink.received.load(Ordering::Relaxed);
        bar.set_position(got.min(expected));
        if sent_elapsed.is_none() && accepted_all(&mut clients)? {
            sent_elapsed = Some(start.elapsed());
            bar.set_message("all events accepted");
        }
        if got >= expected && sent_elapsed.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bar.abandon();
            bail!(
                "only {got} of {expected} deliveries arrived within {} s",
                args.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish();
    let sent_elapsed = sent_elapsed.unwrap_or_else(|| start.elapsed());
    let last_at = Duration::from_micros(sink.last_at_us.load(Ordering::Relaxed));
    let delivered_elapsed = last_at.saturating_sub(drain_from.unwrap_or(start - origin));
    let mut lat = std::mem::take(&mut *sink.latencies_us.lock().expect("sink lock"));
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1] as f64 / 1000.0
    };
    let accepted_per_sec = events as f64 / sent_elapsed.as_secs_f64();
    let delivered_per_sec = expected as f64 / delivered_elapsed.as_secs_f64();
    // Every node's CPU, and the largest node's memory.
    // A backlog restarts the servers: their CPU is all the drain's.
    let cpu_before = if drain_from.is_some() {
        Some(0.0)
    } else {
        cpu_before
    };
    let cpu = servers
        .iter()
        .map(|s| cpu_seconds(s.pid()))
        .sum::<Option<f64>>()
        .zip(cpu_before)
        .map(|(after, before)| (after - before).max(0.0));
    let run_secs = if args.backlog.is_some() {
        delivered_elapsed
    } else {
        start.elapsed()
    }
    .as_secs_f64();
    let rss = servers
        .iter()
        .filter_map(|s| peak_rss_mib(s.pid()))
        .reduce(f64::max);
    println!("database             {backend}");
    println!(
        "events               {events} × {} webhooks from {} clients, {} node{}{}{}",
        args.webhooks,
        args.concurrency,
        args.nodes,
        if args.nodes == 1 { "" } else { "s" },
        if args.pin { " (pinned)" } else { "" },
        args.ordering_keys
            .map(|n| format!(", ordered over {n} keys"))
            .unwrap_or_default()
    );
    println!(
        "accepted             {accepted_per_sec:.0} events/s ({:.2} s)",
        sent_elapsed.as_secs_f64()
    );
    let what = if args.backlog.is_some() {
        "backlog drained     "
    } else {
        "delivered end to end"
    };
    println!(
        "{what} {delivered_per_sec:.0} deliveries/s ({:.2} s)",
        delivered_elapsed.as_secs_f64()
    );
    if args.backlog.is_none() {
        println!(
            "event→receiver       p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(0.50),
            pct(0.99),
            pct(1.0)
        );
    }
    let during = if args.backlog.is_some() {
        " while draining"
    } else {
        ""
    };
    if let Some(cpu) = cpu {
        println!(
            "carehook CPU{during} {:.2} s, {:.0} µs per delivery, {:.1} % of one core (start-up and the load generator not counted)",
            cpu,
            cpu * 1e6 / expected as f64,
            cpu * 100.0 / run_secs.max(1e-9)
        );
    }
    println!(
        "carehook peak RSS{during} {}",
        rss.map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "unknown".into())
    );
    if args.json {
        println!(
            "{}",
            json!({
                "database": backend, "events": events, "webhooks": args.webhooks,
                "concurrency": args.concurrency, "rate": args.rate,
                "max_in_flight": args.max_in_flight, "endpoint_latency_ms": args.endpoint_latency,
                "backlog": args.backlog.is_some(), "preload_rows": args.preload_rows,
                "nodes": args.nodes, "pinned": args.pin, "ordering_keys": args.ordering_keys,
                "accepted_per_sec": accepted_per_sec, "delivered_per_sec": delivered_per_sec,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0), "peak_rss_mib": rss,
                "carehook_cpu_s": cpu,
                "carehook_cpu_percent_of_core": cpu.map(|c| c * 100.0 / run_secs.max(1e-9)),
            })
        );
    }
    for s in servers {
        s.stop()?;
    }
    Ok(())
}

/// The load: `events` events from `--concurrency` clients (paced by `--rate`), each carrying
/// its send time (µs since `origin`) as `appointment_id`.
fn send_events(
    args: &BenchArgs,
    events: u64,
    client: &reqwest::Client,
    bases: &[String],
    origin: Instant,
    start: Instant,
) -> tokio::task::JoinSet<anyhow::Result<()>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for k in 0..args.concurrency as usize {
        let base = bases[k % bases.len()].clone();
        let (client, next) = (client.clone(), next.clone());
        let rate = args.rate;
        let keys = args.ordering_keys.unwrap_or(u64::MAX);
        clients.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events {
                    return Ok::<(), anyhow::Error>(());
                }
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = origin.elapsed().as_micros() as u64;
                let body = json!({
                    "event": "kc_appointment_book",
                    "data": {"appointment_id": sent.to_string(), "patient_id": (i % keys).to_string(),
                             "patient_name": "Zoë O'Brien", "clinic_name": "Riverside"}
                });
                let resp = client
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                if resp.status() != 202 {
                    bail!("an event was refused: {} {}", resp.status(), resp.text().await?);
                }
                resp.bytes().await?;
            }
        });
    }
    clients
}

async fn wait_healthy(base: &str, child: &mut std::process::Child) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    for _ in 0..200 {
        if let Some(status) = child.try_wait()? {
            bail!("`carehook serve` exited with {status} before it was ready");
        }
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("`carehook serve` did not become ready within 10 s")
}

/// Writes `n` delivered attempts (each with its event and delivery) from 40 days ago, in
/// batches, for the purge to remove during a run.
async fn fill_expired(url: &str, n: u64) -> anyhow::Result<()> {
    use carehook_store::{
        AttemptOutcome, AttemptRecord, DeliveryId, DeliveryNext, EventId, NewDelivery, NewEvent,
        WebhookId,
    };
    let store = carehook_store::connect(url).await?;
    let old = carehook::time::now_ms() - 40 * 24 * 3600 * 1000;
    let webhook = WebhookId::new();
    let mut done = 0u64;
    while done < n {
        let k = (n - done).min(2000);
        let mut events = Vec::new();
        let mut attempts = Vec::new();
        for i in 0..k {
            let (event, delivery) = (EventId::new(), DeliveryId::new());
            let at = old + (done + i) as i64;
            let vars = [("patient_name".to_string(), "Zoë O'Brien".to_string())].into();
            events.push(NewEvent {
                id: event,
                event_type: "kc_appointment_book".into(),
                vars,
                idempotency_key: None,
                created_at: at,
                deliveries: vec![NewDelivery {
                    id: delivery,
                    webhook_id: webhook,
                    next_attempt_at: i64::MAX,
                    is_test: false,
                    ordering_key: None,
                    scheduled: None,
                }],
                reschedule: Vec::new(),
            });
            attempts.push(AttemptRecord {
                delivery_id: delivery,
                attempt_no: 1,
                started_at: at,
                duration_ms: 3,
                request: json!({"method": "POST", "url": "http://127.0.0.1/x", "headers": [],
                                "body": "{\"patient\": \"Zoë O'Brien\"}"}),
                response_status: Some(200),
                response_headers: None,
                response_body: Some("ok".into()),
                error: None,
                outcome: AttemptOutcome::Succeeded,
                next: DeliveryNext::Succeeded,
                store_bodies: true,
            });
        }
        store.record_events(events).await?;
        store.record_attempts(attempts).await?;
        done += k;
    }
    Ok(())
}

/// User plus system CPU time of a process, from /proc (Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}

/// The send time an event carried (`"t": "<µs>"`), without a JSON parse.
fn sent_at(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"t\": \"")? + 6;
    let end = start + text[start..].find('"')?;
    text[start..end].parse().ok()
}

/// VmHWM of a process from /proc (Linux).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_send_time_is_read_from_the_body() {
        assert_eq!(
            super::sent_at(br#"{"t": "12345", "patient": "x"}"#),
            Some(12345)
        );
        assert_eq!(super::sent_at(b"{}"), None);
    }
}
