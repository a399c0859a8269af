//! carehook's command line (`carehook-cli`): the `carehook` binary, and
//! everything only the command line needs. The server itself is the `carehook`
//! library (`crates/server`); this crate depends on it, never the reverse.
//!
//! - this file: the commands ([`Cli`]), exit codes, and [`main`].
//! - [`serve`]: `carehook serve`, flags and environment into `carehook::app::run`.
//! - [`client`]: the one HTTP client of a running server, and the one place
//!   `CAREHOOK_URL`/`CAREHOOK_TOKEN` are read; it checks carehook is what answers.
//! - the commands that talk to a running server through it: `webhooks_cmd`,
//!   `deliveries_cmd` (and `stats`), `tokens_cmd` (also offline on the database,
//!   through the library), `events_client` (`events send|list`), `clinic` (also
//!   `carehook demo`: the library's demo data sent over HTTP).
//! - `import_kivicare`: `carehook import kivicare-addon`, the KiviCare Webhooks
//!   add-on's export converted (pure) and created disabled through the client.
//! - offline printers of what is compiled in: `events_cmd` (the catalog),
//!   `presets_cmd`.
//! - [`bench`]: `carehook bench`, a load benchmark against a `carehook serve` child.
//!
//! Names a person gets right the first time: carehook's own address is
//! `--server` (or `CAREHOOK_URL`) in every command; `--url` is only ever a
//! webhook's destination (`webhooks create --from-preset … --url …`), as in the
//! webhook's JSON. A `--url` anywhere else fails with a hint.

mod backup_cmd;
pub mod bench;
pub mod client;
mod clinic;
mod deliveries_cmd;
mod events_client;
mod events_cmd;
mod import_kivicare;
mod presets_cmd;
mod privacy_cmd;
pub mod serve;
mod tokens_cmd;
mod users_cmd;
mod webhooks_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// carehook sends an HTTP request, built from a template you write, to the
/// services your clinic uses whenever something happens in the clinic.
#[derive(Debug, Parser)]
#[command(name = "carehook", version, about, long_about = None, after_help = "Start here:\n  carehook serve                      run the server on ./carehook.db (SQLite)\n  carehook events                     list the events a clinic fires\n  carehook events kc_appointment_book show one event's variables\n  carehook serve --demo               start with a demo clinic (on an empty database)\n  carehook clinic --help              fire clinic events from the shell\n  carehook webhooks list              talk to a running server (--server, --token or CAREHOOK_URL, CAREHOOK_TOKEN)\n\nExit codes: 0 done; 1 failed (server unreachable, server error, a test send or retry that did not succeed); 2 bad input or usage (the server refused the request with a 4xx, a bad flag or file).")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run carehook: the HTTP API and the dispatcher (or either alone).
    ///
    /// Examples:
    ///   carehook serve
    ///   CAREHOOK_ADMIN_TOKEN=$(openssl rand -hex 24) carehook serve --listen 0.0.0.0:8080
    ///   carehook serve --database-url postgres://carehook@db/carehook --dispatcher-only
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// Measure carehook: N events from C clients through the API to a local sink.
    ///
    /// Starts carehook in-process on a fresh SQLite file (or --database-url),
    /// with a receiver on 127.0.0.1, and prints events/s accepted, deliveries/s
    /// end to end, event→receiver latency (p50/p99) and peak memory.
    ///
    /// Examples:
    ///   carehook bench -n 20000 -c 64
    ///   carehook bench -n 10000 -c 16 --rate 1000            (latency at a steady rate)
    ///   carehook bench --database-url postgres://postgres@127.0.0.1/bench
    #[command(verbatim_doc_comment)]
    Bench(bench::BenchArgs),
    /// List the guide's integration presets, or show one.
    ///
    /// Create a webhook from one with POST /api/v1/webhooks
    /// {"preset": "slack_new_appointment", "url": "https://hooks.slack.com/services/…"}.
    ///
    /// Examples:
    ///   carehook presets
    ///   carehook presets show twilio_sms_confirmation
    #[command(verbatim_doc_comment)]
    Presets {
        #[command(subcommand)]
        action: Option<PresetsAction>,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// List the events carehook knows, or one event's variables with examples.
    ///
    /// Examples:
    ///   carehook events
    ///   carehook events kc_appointment_book
    ///   carehook events kc_patient_save --json     (aliases work too)
    ///   carehook events send kc_appointment_book --data '{"patient_name":"Ada"}'   (to a running server)
    ///   carehook events list                       (events recorded on a running server)
    #[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
    Events {
        /// An event name or alias; omit to list every event.
        event: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<events_client::EventsCommand>,
    },
    /// Manage webhooks on a running server.
    ///
    /// Examples:
    ///   carehook webhooks list
    ///   carehook webhooks create --file hook.json
    ///   carehook webhooks test ID
    #[command(verbatim_doc_comment)]
    Webhooks(webhooks_cmd::WebhooksArgs),
    /// The delivery log on a running server, and retries.
    ///
    /// Examples:
    ///   carehook deliveries list --status failed
    ///   carehook deliveries retry-failed WEBHOOK_ID --since 2026-11-26T00:00:00Z
    #[command(verbatim_doc_comment)]
    Deliveries(deliveries_cmd::DeliveriesArgs),
    /// API tokens: make, list, revoke (on a running server, or offline with --database-url).
    ///
    /// Examples:
    ///   carehook tokens create --name zapier
    ///   carehook tokens create --name first --database-url sqlite://carehook.db
    #[command(verbatim_doc_comment)]
    Tokens(tokens_cmd::TokensArgs),
    /// People who log in to the admin UI: add, list, disable, reset-password (on the database).
    ///
    /// Examples:
    ///   carehook users add --email ada@clinic.example --name "Ada" --role editor --clinic 2
    ///   carehook users reset-password --email ada@clinic.example
    ///
    /// Owners can do the same, and change a role or clinics, on the admin UI's Users page or
    /// through /api/v1/users; each person sets up two-step login on "Your account".
    #[command(verbatim_doc_comment)]
    Users(users_cmd::UsersArgs),
    /// A webhook's statistics: outcomes, success rate, p50/p95 over 1 h, 24 h, 7 d.
    ///
    /// Example:
    ///   carehook stats 0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b
    #[command(verbatim_doc_comment)]
    Stats {
        /// The webhook's id.
        webhook: String,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Clinic actions against a running carehook: add a patient, book an appointment,
    /// change its status, record a payment, list or show records. Each fires its event.
    ///
    /// Examples:
    ///   carehook clinic add-patient --clinic 1 --first-name Maria --last-name "O'Brien"
    ///   carehook clinic book --clinic 1 --doctor 1 --patient 1 --date 2026-12-01 --start 09:30
    ///   carehook clinic status 7 cancelled
    ///   carehook clinic pay --bill 1 --amount 110.50 --method card
    ///   carehook clinic list appointments --clinic 1
    #[command(verbatim_doc_comment)]
    Clinic(clinic::ClinicArgs),
    /// Add the demo clinic (Riverside Family Clinic) to a running carehook through its API.
    ///
    /// Examples:
    ///   CAREHOOK_TOKEN=… carehook demo
    ///   carehook demo --server http://127.0.0.1:8081 --token chk_…
    ///   (`carehook serve --demo` does the same at start, on an empty database)
    #[command(verbatim_doc_comment)]
    Demo(clinic::Remote),
    /// Remove event snapshots and request/response bodies from before a date, now, on a
    /// running server (pending deliveries keep theirs; metadata stays). Prints counts.
    ///
    /// Examples:
    ///   carehook purge --before 2026-10-01 --dry-run
    ///   carehook purge --before 2026-10-01T00:00:00Z
    #[command(verbatim_doc_comment)]
    Purge(privacy_cmd::PurgeArgs),
    /// Erase one patient's data on a running server: event snapshots, attempt bodies,
    /// clinic records (tombstones); cancels their pending deliveries. Prints counts per table.
    ///
    /// Example:
    ///   carehook erase --patient 42
    #[command(verbatim_doc_comment)]
    Erase(privacy_cmd::EraseArgs),
    /// The audit trail: list it (through a running server), or verify its hash chain
    /// (on the database).
    ///
    /// Examples:
    ///   carehook audit list --action delivery.read
    ///   carehook audit verify --database-url sqlite://carehook.db
    #[command(verbatim_doc_comment)]
    Audit(privacy_cmd::AuditArgs),
    /// Back up the database and master key while carehook runs (SQLite).
    ///
    /// Example:
    ///   carehook backup --to /srv/backups/carehook-$(date +%F) --database-url sqlite:///var/lib/carehook/carehook.db
    #[command(verbatim_doc_comment)]
    Backup(backup_cmd::BackupArgs),
    /// Restore a backup onto a new machine or directory, and check its master key.
    ///
    /// Example:
    ///   carehook restore /srv/backups/carehook-2026-11-30 --database-url sqlite:///var/lib/carehook/carehook.db
    #[command(verbatim_doc_comment)]
    Restore(backup_cmd::RestoreArgs),
    /// Print (or write) a systemd unit that runs carehook as its own user, and the steps around it.
    ///
    /// Example:
    ///   carehook install-service --output /etc/systemd/system/carehook.service
    #[command(verbatim_doc_comment)]
    InstallService(backup_cmd::InstallServiceArgs),
    /// Bring webhooks from another system into a running carehook (created disabled).
    ///
    /// Examples:
    ///   carehook import kivicare-addon --file kivicare-webhooks.json --dry-run
    ///   carehook import kivicare-addon --file kivicare-webhooks.json
    #[command(verbatim_doc_comment)]
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// The KiviCare Webhooks add-on's webhooks, from its export (docs/kivicare.md):
    /// events and {{keys}} mapped to carehook's, each created disabled, with a
    /// report of what could not be carried over.
    KivicareAddon(import_kivicare::ImportAddonArgs),
}

#[derive(Debug, Subcommand)]
pub enum PresetsAction {
    /// List every preset.
    List,
    /// Show one preset: what it sends and what you give.
    Show { id: String },
}

/// The `carehook` binary: parses the command line, runs it. A usage error that
/// involves `--url` says which address is which.
pub fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => run(cli),
        Err(e) if !e.use_stderr() => {
            // --help and --version: printed, exit 0.
            let _ = e.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = e.print();
            if args
                .iter()
                .any(|a| a == "--url" || a.to_string_lossy().starts_with("--url="))
            {
                eprintln!("\n{URL_HINT}");
            }
            ExitCode::from(2)
        }
    }
}

/// Shown when `--url` was given where it means nothing.
pub const URL_HINT: &str = "hint: carehook's own address is --server (or CAREHOOK_URL); \
--url is only a webhook's destination, as in \
`carehook webhooks create --from-preset slack_new_appointment --url https://hooks.slack.com/…`";

/// Runs a parsed command line; the exit code is what scripts see.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Presets { action, json } => {
            let id = match &action {
                Some(PresetsAction::Show { id }) => Some(id.as_str()),
                Some(PresetsAction::List) | None => None,
            };
            presets_cmd::run(id, json, &mut std::io::stdout())
        }
        Command::Bench(args) => bench::run(args),
        Command::Clinic(args) => clinic::run(args),
        Command::Demo(remote) => clinic::run_demo(remote),
        Command::Backup(args) => backup_cmd::backup(args),
        Command::Restore(args) => backup_cmd::restore(args),
        Command::InstallService(args) => backup_cmd::install_service(args),
        Command::Events {
            command: Some(command),
            ..
        } => events_client::run(command),
        Command::Events { event, json, .. } => {
            events_cmd::run(event.as_deref(), json, &mut std::io::stdout())
        }
        Command::Webhooks(args) => webhooks_cmd::run(args),
        Command::Deliveries(args) => deliveries_cmd::run(args),
        Command::Tokens(args) => tokens_cmd::run(args),
        Command::Users(args) => users_cmd::run(args),
        Command::Stats { webhook, client } => deliveries_cmd::stats(webhook, client),
        Command::Purge(args) => privacy_cmd::purge(args),
        Command::Erase(args) => privacy_cmd::erase(args),
        Command::Audit(args) => privacy_cmd::audit(args),
        Command::Import {
            from: ImportFrom::KivicareAddon(args),
        } => import_kivicare::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `carehook events | head`: the reader had enough; nothing went wrong.
        Err(e) if is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `println!` panics when its reader went away (`carehook deliveries list |
/// head`); Rust ignores SIGPIPE, so the process would end with a panic
/// message. Such a panic ends the process quietly instead, as `cat` does.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Exit codes: 1 for a failure, 2 for bad input from the user (clap also
/// uses 2 for usage errors; a 4xx from the server is the input's fault too).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() || e.downcast_ref::<client::Refused>().is_some() {
        2
    } else {
        1
    }
}

/// An error in what the user asked for, as opposed to a failure while doing it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The command ran, and what it checked did not succeed (a test send that
/// got no 2xx, retried deliveries that failed again). Exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

/// Logs to stderr; `RUST_LOG` chooses what (default: info).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour for a person at a terminal; plain text for a log file or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
