//! `carehook purge`, `carehook erase` (through a running server, which audits them) and
//! `carehook audit` (the trail through the server; `verify` straight on the database).

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{
    Client, ClientArgs, block_on, cell, expect_fields, print_json, print_table, seg,
};
use crate::{Failed, UsageError};

#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// Remove payloads from before this time: RFC 3339 (`2026-10-01T00:00:00Z`) or a date
    /// (`2026-10-01`, midnight UTC).
    #[arg(long)]
    pub before: String,
    /// Count what would go; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// The patient's id, as events carry it in `patient_id`.
    #[arg(long)]
    pub patient: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The audit trail, newest first (one page; --json for scripts and export).
    ///
    /// Examples:
    ///   carehook audit list --action delivery.read
    ///   carehook audit list --action webhook. --limit 200 --json
    #[command(verbatim_doc_comment)]
    List {
        /// An action, or a prefix ending in `.`
        #[arg(long)]
        action: Option<String>,
        /// A resource (`delivery/ID`)
        #[arg(long)]
        resource: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Checks the trail's hash chain on the database; exit 1 naming each edited or deleted row.
    ///
    /// Example:
    ///   carehook audit verify --database-url sqlite://carehook.db
    #[command(verbatim_doc_comment)]
    Verify {
        /// The database: `sqlite://carehook.db` or `postgres://…`.
        #[arg(
            long,
            env = "CAREHOOK_DATABASE_URL",
            default_value = "sqlite://carehook.db"
        )]
        database_url: String,
    },
}

/// A date alone means midnight UTC.
fn time_arg(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    if text.parse::<i64>().is_err() && carehook::time::parse_time(&full).is_some() {
        return Ok(full);
    }
    Err(UsageError(format!(
        "--before {text:?} is not a date (2026-10-01) or an RFC 3339 time (2026-10-01T00:00:00Z)"
    ))
    .into())
}

pub fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let before = time_arg(&args.before)?;
    block_on(async move {
        let c = Client::new(&args.client)?;
        let body = json!({ "before": before, "dry_run": args.dry_run });
        let v = expect_fields(
            c.post("/api/v1/purge", &body).await?,
            &["events", "attempts"],
        )?;
        if args.client.json {
            print_json(&v);
        } else {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            println!(
                "{verb}: {} event snapshots, {} attempts' bodies (from before {})",
                cell(&v["events"]),
                cell(&v["attempts"]),
                cell(&v["before"])
            );
        }
        Ok(())
    })
}

pub fn erase(args: EraseArgs) -> anyhow::Result<()> {
    block_on(async move {
        let c = Client::new(&args.client)?;
        let path = format!("/api/v1/patients/{}/erase", seg(&args.patient));
        let v = expect_fields(c.post(&path, &json!({})).await?, &["events", "attempts"])?;
        if args.client.json {
            print_json(&v);
            return Ok(());
        }
        let mut rows = vec![
            vec!["events".to_string(), cell(&v["events"])],
            vec!["attempts".to_string(), cell(&v["attempts"])],
            vec![
                "deliveries cancelled".to_string(),
                cell(&v["deliveries_cancelled"]),
            ],
        ];
        if let Some(records) = v["records"].as_object() {
            for (table, n) in records {
                rows.push(vec![table.clone(), cell(n)]);
            }
        }
        println!("erased patient {}:", cell(&v["patient_id"]));
        print_table(&["table", "rows"], &rows);
        Ok(())
    })
}

pub fn audit(args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::List {
            action,
            resource,
            limit,
            cursor,
            client,
        } => block_on(async move {
            let c = Client::new(&client)?;
            let mut q = Vec::new();
            for (k, v) in [
                ("action", action),
                ("resource", resource),
                ("cursor", cursor),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", seg(&v)));
                }
            }
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            let v = expect_fields(
                c.get(&format!("/api/v1/audit?{}", q.join("&"))).await?,
                &["items"],
            )?;
            if client.json {
                print_json(&v);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = v["items"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|e: &Value| {
                    [
                        "seq",
                        "at",
                        "actor",
                        "client_addr",
                        "action",
                        "resource",
                        "outcome",
                    ]
                    .iter()
                    .map(|k| cell(&e[*k]))
                    .collect()
                })
                .collect();
            print_table(
                &[
                    "SEQ", "AT", "ACTOR", "CLIENT", "ACTION", "RESOURCE", "OUTCOME",
                ],
                &rows,
            );
            if let Some(next) = v["next_cursor"].as_str() {
                println!("more: --cursor {next}");
            }
            Ok(())
        }),
        AuditCommand::Verify { database_url } => block_on(async move {
            let store = carehook_store::connect(&database_url)
                .await
                .context("opening the database given by --database-url")?;
            let verdict = store.verify_audit().await?;
            if verdict.problems.is_empty() {
                println!(
                    "the audit trail verifies: {} rows, chain intact",
                    verdict.rows
                );
                return Ok(());
            }
            for (seq, what) in &verdict.problems {
                eprintln!("row {seq}: {what}");
            }
            Err(Failed(format!(
                "the audit trail does not verify: {} problem(s) in {} rows; first at row {}",
                verdict.problems.len(),
                verdict.rows,
                verdict.problems[0].0
            ))
            .into())
        }),
    }
}
