//! `carehook backup`, `carehook restore` and `carehook install-service`:
//! what a clinic's IT person runs carehook with.
//!
//! A backup is a directory: `carehook.db`, a consistent copy of the SQLite
//! database taken while carehook runs (`VACUUM INTO`), `carehook.key`, the
//! master key that opens the webhooks' stored secrets (left out with
//! `--without-key`, and then named in the manifest), and `backup.json`, the
//! manifest. `restore` puts both where `carehook serve` looks for them and
//! checks that the key opens every stored secret.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use crate::UsageError;
use crate::serve::default_key_file;

const DB_FILE: &str = "carehook.db";
const KEY_FILE: &str = "carehook.key";
const MANIFEST: &str = "backup.json";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory to write the backup into (made; must not exist or be empty).
    #[arg(long)]
    pub to: PathBuf,
    /// The database to back up (a SQLite file; carehook may be running).
    #[arg(
        long,
        env = "CAREHOOK_DATABASE_URL",
        default_value = "sqlite://carehook.db"
    )]
    pub database_url: String,
    /// The master key, when carehook runs with one (it is then written to the backup).
    #[arg(long, env = "CAREHOOK_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// The key file carehook uses. Default: beside the database.
    #[arg(long, env = "CAREHOOK_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Leave the master key out (keep it elsewhere; the manifest says where it was).
    #[arg(long)]
    pub without_key: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory made by `carehook backup`.
    pub from: PathBuf,
    /// Where to restore the database (a SQLite file URL); it must not exist yet.
    #[arg(
        long,
        env = "CAREHOOK_DATABASE_URL",
        default_value = "sqlite://carehook.db"
    )]
    pub database_url: String,
    /// Where to put the master key. Default: beside the database, where `carehook serve` looks.
    #[arg(long, env = "CAREHOOK_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// The master key, for a backup made `--without-key`.
    #[arg(long, env = "CAREHOOK_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.starts_with(':'))
        .map(PathBuf::from)
        .ok_or_else(|| {
            UsageError(format!(
                "{url}: backup and restore work on a SQLite file (sqlite://FILE); for PostgreSQL use pg_dump and pg_restore, and keep the master key with the dump"
            ))
            .into()
        })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let db = sqlite_path(&args.database_url)?;
    if !db.exists() {
        return Err(UsageError(format!("no database at {}", db.display())).into());
    }
    if args.to.exists() && std::fs::read_dir(&args.to)?.next().is_some() {
        return Err(UsageError(format!(
            "{} is not empty: back up into a new directory",
            args.to.display()
        ))
        .into());
    }
    std::fs::create_dir_all(&args.to).with_context(|| format!("making {}", args.to.display()))?;
    restrict(&args.to)?;
    let dest = args.to.join(DB_FILE);
    runtime()?.block_on(carehook_store::sqlite_backup(&args.database_url, &dest))?;

    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| default_key_file(&args.database_url));
    let (key, key_source) = match (&args.master_key, key_file.exists()) {
        (Some(k), _) => (
            Some(k.trim().to_string()),
            "CAREHOOK_MASTER_KEY".to_string(),
        ),
        (None, true) => (
            Some(
                std::fs::read_to_string(&key_file)
                    .with_context(|| format!("reading the key file {}", key_file.display()))?
                    .trim()
                    .to_string(),
            ),
            format!("the key file {}", key_file.display()),
        ),
        (None, false) => (None, "none found".to_string()),
    };
    let included = match (&key, args.without_key) {
        (Some(k), false) => {
            carehook::vault::write_private(&args.to.join(KEY_FILE), k)?;
            true
        }
        _ => false,
    };
    let manifest = json!({
        "carehook_version": env!("CARGO_PKG_VERSION"),
        "created_at": chrono_now(),
        "database": DB_FILE,
        "master_key": if included { json!(KEY_FILE) } else { json!(null) },
        "master_key_source": key_source,
    });
    std::fs::write(
        args.to.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    println!(
        "backed up {} to {}",
        db.display(),
        args.to.join(DB_FILE).display()
    );
    if included {
        println!(
            "the master key ({key_source}) is in {}: keep this backup as safe as the key itself",
            args.to.join(KEY_FILE).display()
        );
    } else {
        println!(
            "the master key is NOT in this backup (from: {key_source}); without it the webhooks' stored secrets cannot be read"
        );
    }
    Ok(())
}

fn chrono_now() -> String {
    carehook::time::rfc3339(carehook::time::now_ms())
}

/// Only the owner may read a backup directory: it holds patient data.
fn restrict(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let _ = dir;
    Ok(())
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let source = args.from.join(DB_FILE);
    if !source.exists() {
        return Err(UsageError(format!(
            "{} has no {DB_FILE}: is it a directory made by `carehook backup`?",
            args.from.display()
        ))
        .into());
    }
    let db = sqlite_path(&args.database_url)?;
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            return Err(UsageError(format!(
                "{} exists: restore onto a new path (or move it away first)",
                p.display()
            ))
            .into());
        }
    }
    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| default_key_file(&args.database_url));
    let backed_up_key = args.from.join(KEY_FILE);
    let key = match (&args.master_key, backed_up_key.exists()) {
        (Some(k), _) => k.trim().to_string(),
        (None, true) => std::fs::read_to_string(&backed_up_key)?.trim().to_string(),
        (None, false) => {
            return Err(UsageError(
                "this backup has no master key: pass it with --master-key (or CAREHOOK_MASTER_KEY)"
                    .into(),
            )
            .into());
        }
    };
    if key_file.exists() {
        let existing = std::fs::read_to_string(&key_file)?;
        if existing.trim() != key {
            return Err(UsageError(format!(
                "{} holds another master key: pass --key-file with a new path",
                key_file.display()
            ))
            .into());
        }
    }
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(&source, &db)
        .with_context(|| format!("copying {} to {}", source.display(), db.display()))?;
    if !key_file.exists() {
        carehook::vault::write_private(&key_file, &key)?;
    }
    let rt = runtime()?;
    let check = rt.block_on(carehook_store::sqlite_integrity_check(&args.database_url))?;
    if check != "ok" {
        anyhow::bail!("the restored database fails its integrity check: {check}");
    }
    // The key must open every stored secret, or those webhooks would come
    // back broken.
    let (webhooks, broken) = rt.block_on(async {
        let store = carehook_store::connect(&args.database_url).await?;
        let (vault, _) = carehook::vault::Vault::open(Some(key.as_str()), &key_file)?;
        let registry = carehook::registry::Registry::new(vault);
        registry.refresh(&*store).await?;
        let all = store.list_webhooks().await?.len();
        anyhow::Ok((all, registry.broken_ids().len()))
    })?;
    println!(
        "restored {} webhook{} into {}; master key in {}",
        webhooks,
        if webhooks == 1 { "" } else { "s" },
        db.display(),
        key_file.display()
    );
    if broken > 0 {
        anyhow::bail!(
            "{broken} webhook(s) have secrets this master key cannot open: was the backup made with another key?"
        );
    }
    println!(
        "start it with: carehook serve --database-url {} --key-file {}",
        args.database_url,
        key_file.display()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct InstallServiceArgs {
    /// The system user carehook runs as (made by the steps printed, with no login shell).
    #[arg(long, default_value = "carehook")]
    pub user: String,
    /// Where the database and key file live (the user's home; 0700).
    #[arg(long, default_value = "/var/lib/carehook")]
    pub data_dir: PathBuf,
    /// The installed binary.
    #[arg(long, default_value = "/usr/local/bin/carehook")]
    pub binary: PathBuf,
    /// The address carehook listens on; put a TLS reverse proxy in front of it.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Write the unit here (e.g. /etc/systemd/system/carehook.service) instead of printing it.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The systemd unit: a dedicated user, the data directory its only
/// writable place, and the usual hardening.
pub fn unit(args: &InstallServiceArgs) -> String {
    let data = args.data_dir.display();
    format!(
        "[Unit]
Description=carehook: webhooks for the clinic
After=network-online.target
Wants=network-online.target

[Service]
User={user}
Group={user}
Environment=CAREHOOK_LISTEN={listen}
Environment=CAREHOOK_DATABASE_URL=sqlite://{data}/carehook.db
Environment=CAREHOOK_KEY_FILE={data}/carehook.key
# Put CAREHOOK_ADMIN_TOKEN=... (16+ characters) in this file, mode 0600:
EnvironmentFile=-/etc/carehook/env
ExecStart={binary} serve
Restart=on-failure
RestartSec=2
WorkingDirectory={data}
ReadWritePaths={data}
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
RestrictSUIDSGID=true
LockPersonality=true
UMask=0077

[Install]
WantedBy=multi-user.target
",
        user = args.user,
        listen = args.listen,
        binary = args.binary.display(),
    )
}

pub fn install_service(args: InstallServiceArgs) -> anyhow::Result<()> {
    let text = unit(&args);
    let data = args.data_dir.display();
    let steps = format!(
        "Then, as root:
  useradd --system --home-dir {data} --create-home --shell /usr/sbin/nologin {user}
  chmod 700 {data}
  install -d -m 700 /etc/carehook
  echo \"CAREHOOK_ADMIN_TOKEN=$(openssl rand -hex 24)\" > /etc/carehook/env && chmod 600 /etc/carehook/env
  systemctl daemon-reload && systemctl enable --now carehook
  journalctl -u carehook      (the log; the admin token is in /etc/carehook/env)
Back up with: sudo -u {user} {binary} backup --to /somewhere/safe/carehook-$(date +%F) \\
  --database-url sqlite://{data}/carehook.db",
        user = args.user,
        binary = args.binary.display(),
    );
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}\n{steps}", path.display());
        }
        None => {
            print!("{text}");
            eprintln!(
                "\nSave this as /etc/systemd/system/carehook.service (or pass --output).\n{steps}"
            );
        }
    }
    Ok(())
}
