//! `carehook events send|list`: events on a running server (the catalog
//! itself is `carehook events [EVENT]`, which needs no server).

use clap::Subcommand;
use serde_json::json;

use crate::client::{
    Client, ClientArgs, block_on, cell, clip, expect_fields, parse_data, print_json, query,
};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Record an event on the server, as a clinic system would; prints the
    /// deliveries it made.
    ///
    /// Example:
    ///   carehook events send kc_appointment_book --data '{"patient_name":"Ada Lovelace"}'
    ///   carehook events send kc_patient_add --idempotency-key crm-4711
    #[command(verbatim_doc_comment)]
    Send {
        /// The event's name or alias.
        event: String,
        /// The event's variables, as a JSON object.
        #[arg(long)]
        data: Option<String>,
        /// Sending the same key again records nothing new.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The events recorded on the server, newest first.
    ///
    /// Example:
    ///   carehook events list --limit 20
    #[command(verbatim_doc_comment)]
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn run(cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Send {
            event,
            data,
            idempotency_key,
            client,
        } => {
            let c = Client::new(&client)?;
            let mut body = json!({ "event": event });
            if let Some(d) = parse_data(data.as_deref())? {
                body["data"] = d;
            }
            if let Some(k) = idempotency_key {
                body["idempotency_key"] = k.into();
            }
            block_on(async move {
                let v = expect_fields(
                    c.post("/api/v1/events", &body).await?,
                    &["id", "deliveries"],
                )?;
                if c.json {
                    print_json(&v);
                } else {
                    let n = v["deliveries"].as_array().map_or(0, Vec::len);
                    println!(
                        "event {} ({}){}: {n} deliveries",
                        cell(&v["id"]),
                        cell(&v["event"]),
                        if v["duplicate"] == true {
                            ", recorded before"
                        } else {
                            ""
                        }
                    );
                    for d in v["deliveries"].as_array().into_iter().flatten() {
                        println!("  {}", cell(d));
                    }
                }
                Ok(())
            })
        }
        EventsCommand::List {
            limit,
            cursor,
            client,
        } => {
            let c = Client::new(&client)?;
            block_on(async move {
                let q = query(&[("limit", Some(limit.to_string())), ("cursor", cursor)]);
                let headers = ["ID", "EVENT", "CREATED", "IDEMPOTENCY KEY"];
                c.print_list(&format!("/api/v1/events{q}"), &headers, |e| {
                    vec![
                        cell(&e["id"]),
                        cell(&e["event"]),
                        cell(&e["created_at"]),
                        clip(&cell(&e["idempotency_key"]), 30),
                    ]
                })
                .await
            })
        }
    }
}
