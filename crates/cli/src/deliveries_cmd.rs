//! `carehook deliveries …` and `carehook stats`: the delivery log on a
//! running server, retries (with a progress bar for a bulk retry), and a
//! webhook's statistics.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::client::{
    Client, ClientArgs, block_on, cell, clip, expect_fields, print_json, print_table, query, seg,
};

#[derive(Debug, clap::Args)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    pub command: DeliveriesCommand,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// The delivery log, newest first.
    ///
    /// Example:
    ///   carehook deliveries list --status failed --webhook ID
    ///   carehook deliveries list --since 2026-11-26T00:00:00Z --limit 200 --json
    #[command(verbatim_doc_comment)]
    List {
        /// Only this webhook's deliveries.
        #[arg(long)]
        webhook: Option<String>,
        /// pending, succeeded or failed.
        #[arg(long)]
        status: Option<String>,
        /// Only this event.
        #[arg(long)]
        event: Option<String>,
        /// Created at or after (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Created before (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Page size (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// `next_cursor` from the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One delivery with every attempt: the request as sent, the answer.
    ///
    /// Example:
    ///   carehook deliveries get ID
    #[command(verbatim_doc_comment)]
    Get { id: String },
    /// Send one delivery again, now.
    ///
    /// Example:
    ///   carehook deliveries retry ID
    #[command(verbatim_doc_comment)]
    Retry { id: String },
    /// Send a webhook's failed deliveries of a time range again, and follow
    /// them with a progress bar until they end (or --wait passes).
    ///
    /// Example:
    ///   carehook deliveries retry-failed WEBHOOK_ID --since 2026-11-26T00:00:00Z
    ///   carehook deliveries retry-failed WEBHOOK_ID --no-wait --json
    #[command(verbatim_doc_comment)]
    RetryFailed {
        webhook: String,
        /// Deliveries created at or after (RFC 3339); default: all.
        #[arg(long)]
        since: Option<String>,
        /// Deliveries created before (RFC 3339); default: now.
        #[arg(long)]
        until: Option<String>,
        /// Seconds to follow the retried deliveries.
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Do not follow them: print what was retried and stop.
        #[arg(long)]
        no_wait: bool,
    },
}

/// An ordered delivery's number in its key, and what it waits for while held back.
fn ordering_row(o: &Value) -> Option<Vec<String>> {
    let sequence = o["sequence"].as_i64()?;
    let mut text = format!("number {sequence} of key {}", cell(&o["key"]));
    if let Some(state) = o["state"].as_str() {
        text.push_str(&format!(": {state}"));
    }
    Some(vec!["ordering".into(), text])
}

pub fn run(args: DeliveriesArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.client)?;
    block_on(run_async(client, args.command))
}

async fn run_async(c: Client, cmd: DeliveriesCommand) -> anyhow::Result<()> {
    match cmd {
        DeliveriesCommand::List {
            webhook,
            status,
            event,
            since,
            until,
            limit,
            cursor,
        } => {
            let q = query(&[
                ("webhook_id", webhook),
                ("status", status),
                ("event", event),
                ("since", since),
                ("until", until),
                ("limit", Some(limit.to_string())),
                ("cursor", cursor),
            ]);
            let headers = [
                "ID",
                "EVENT",
                "STATUS",
                "ATTEMPTS",
                "HTTP",
                "CREATED",
                "LAST ERROR",
            ];
            c.print_list(&format!("/api/v1/deliveries{q}"), &headers, |d| {
                vec![
                    cell(&d["id"]),
                    cell(&d["event"]),
                    cell(&d["status"]) + if d["test"] == true { " (test)" } else { "" },
                    cell(&d["attempts"]),
                    cell(&d["last_status"]),
                    cell(&d["created_at"]),
                    clip(&cell(&d["last_error"]), 50),
                ]
            })
            .await?;
        }
        DeliveriesCommand::Get { id } => {
            let v = c.get(&format!("/api/v1/deliveries/{}", seg(&id))).await?;
            let v = expect_fields(v, &["id"])?;
            if c.json {
                print_json(&v);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = [
                "id",
                "event",
                "webhook_id",
                "event_id",
                "status",
                "created_at",
                "updated_at",
                "next_attempt_at",
                "last_status",
                "last_error",
                "test",
            ]
            .iter()
            .map(|k| vec![k.to_string(), cell(&v[*k])])
            .chain(ordering_row(&v["ordering"]))
            .collect();
            print_table(&["FIELD", "VALUE"], &rows);
            for a in v["attempts"].as_array().into_iter().flatten() {
                println!(
                    "\nattempt {} at {}: {} in {} ms",
                    cell(&a["attempt"]),
                    cell(&a["started_at"]),
                    cell(&a["outcome"]),
                    cell(&a["duration_ms"])
                );
                println!(
                    "  {} {}",
                    cell(&a["request"]["method"]),
                    cell(&a["request"]["url"])
                );
                if let Some(r) = a["response"].as_object() {
                    println!(
                        "  answer: HTTP {} {}",
                        cell(&r["status"]),
                        clip(&cell(&r["body"]), 200)
                    );
                }
                if let Some(e) = a["error"].as_str() {
                    println!("  error: {e}");
                }
            }
        }
        DeliveriesCommand::Retry { id } => {
            let v = c
                .post(
                    &format!("/api/v1/deliveries/{}/retry", seg(&id)),
                    &json!({}),
                )
                .await?;
            if c.json {
                print_json(&v);
            } else {
                println!("delivery {} will be sent again now", cell(&v["id"]));
            }
        }
        DeliveriesCommand::RetryFailed {
            webhook,
            since,
            until,
            wait,
            no_wait,
        } => {
            let mut body = json!({});
            if let Some(s) = since {
                body["since"] = s.into();
            }
            if let Some(u) = until {
                body["until"] = u.into();
            }
            let v = c
                .post(
                    &format!("/api/v1/webhooks/{}/retry-failed", seg(&webhook)),
                    &body,
                )
                .await?;
            let ids: Vec<String> = v["retried"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            if no_wait || ids.is_empty() {
                if c.json {
                    print_json(&v);
                } else {
                    println!("{} failed deliveries will be sent again", ids.len());
                }
                return Ok(());
            }
            let (succeeded, failed, pending) = follow(&c, &ids, Duration::from_secs(wait)).await?;
            let summary = json!({
                "retried": ids,
                "count": ids.len(),
                "succeeded": succeeded,
                "failed": failed,
                "pending": pending,
            });
            if c.json {
                print_json(&summary);
            } else {
                println!(
                    "retried {}: {} succeeded, {} failed, {} still pending",
                    ids.len(),
                    succeeded.len(),
                    failed.len(),
                    pending.len()
                );
            }
            if !failed.is_empty() {
                return Err(crate::Failed(format!(
                    "{} of the retried deliveries failed again",
                    failed.len()
                ))
                .into());
            }
        }
    }
    Ok(())
}

type Outcomes = (Vec<String>, Vec<String>, Vec<String>);

/// Polls the retried deliveries until each ends or `wait` passes, drawing a
/// progress bar on stderr (when it is a terminal).
async fn follow(c: &Client, ids: &[String], wait: Duration) -> anyhow::Result<Outcomes> {
    let bar = ProgressBar::with_draw_target(Some(ids.len() as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} resending [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut pending: BTreeSet<String> = ids.iter().cloned().collect();
    let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + wait;
    loop {
        // A bounded number of looks per round keeps a big retry from
        // hammering the server.
        let batch: Vec<String> = pending.iter().take(50).cloned().collect();
        for id in batch {
            let d = c.get(&format!("/api/v1/deliveries/{}", seg(&id))).await?;
            match d["status"].as_str() {
                Some("succeeded") => {
                    pending.remove(&id);
                    succeeded.push(id);
                    bar.inc(1);
                }
                Some("failed") => {
                    pending.remove(&id);
                    failed.push(id);
                    bar.inc(1);
                }
                _ => {}
            }
        }
        bar.set_message(format!("{} ok, {} failed", succeeded.len(), failed.len()));
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bar.finish_and_clear();
    Ok((succeeded, failed, pending.into_iter().collect()))
}

/// `carehook stats WEBHOOK_ID`.
pub fn stats(webhook: String, client: ClientArgs) -> anyhow::Result<()> {
    let c = Client::new(&client)?;
    block_on(async move {
        let v = c
            .get(&format!("/api/v1/webhooks/{}/stats", seg(&webhook)))
            .await?;
        if c.json {
            print_json(&v);
            return Ok(());
        }
        let pct = |x: &Value| {
            x.as_f64()
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "-".into())
        };
        let ms = |x: &Value| {
            x.as_i64()
                .map(|n| format!("{n} ms"))
                .unwrap_or_else(|| "-".into())
        };
        let rows: Vec<Vec<String>> = v["windows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| {
                vec![
                    cell(&w["window"]),
                    cell(&w["deliveries"]["succeeded"]),
                    cell(&w["deliveries"]["failed"]),
                    cell(&w["deliveries"]["pending"]),
                    pct(&w["success_rate"]),
                    format!(
                        "{}/{}/{}/{}",
                        cell(&w["attempts"]["succeeded"]),
                        cell(&w["attempts"]["failed"]),
                        cell(&w["attempts"]["retry"]),
                        cell(&w["attempts"]["gave_up"])
                    ),
                    ms(&w["p50_ms"]),
                    ms(&w["p95_ms"]),
                ]
            })
            .collect();
        print_table(
            &[
                "WINDOW",
                "SUCCEEDED",
                "FAILED",
                "PENDING",
                "SUCCESS",
                "ATTEMPTS ok/fail/retry/gave-up",
                "P50",
                "P95",
            ],
            &rows,
        );
        match v["last"].as_object() {
            Some(l) => println!(
                "\nlast: {} {} (HTTP {}) at {}{}",
                cell(&l["delivery_id"]),
                cell(&l["status"]),
                cell(&l["http_status"]),
                cell(&l["at"]),
                l["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            None => println!("\nno delivery tried yet"),
        }
        Ok(())
    })
}
