//! `carehook webhooks …`: manage webhooks on a running server. A webhook's
//! destination is `--url`, as in its JSON; carehook's own address is `--server`.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{
    Client, ClientArgs, block_on, cell, clip, expect_fields, parse_data, print_json, print_table,
    read_json_file, seg,
};

#[derive(Debug, clap::Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    pub command: WebhooksCommand,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List every webhook.
    ///
    /// Example:
    ///   carehook webhooks list
    ///   carehook webhooks list --json | jq -r '.items[].id'
    #[command(verbatim_doc_comment)]
    List,
    /// Show one webhook (secrets masked).
    ///
    /// Example:
    ///   carehook webhooks get 0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b
    #[command(verbatim_doc_comment)]
    Get { id: String },
    /// Create a webhook from a JSON file (`-` reads stdin), or from one of the
    /// guide's presets (`carehook presets` lists them). Prints its signing
    /// secret, which is shown only this once.
    ///
    /// Examples:
    ///   carehook webhooks create --file hook.json
    ///   echo '{"name":"Slack","events":["kc_appointment_book"],"url":"https://hooks.slack.com/services/T/B/X","body":"{\"text\":\"{{patient_name}}\"}"}' | carehook webhooks create --file -
    ///   carehook webhooks create --from-preset slack_new_appointment --url https://hooks.slack.com/services/T/B/X \
    ///     --value site_url=https://clinic.example.com
    ///   carehook webhooks create --from-preset twilio_sms_confirmation --value from_number=+15017122661 \
    ///       --auth-username AC123 --auth-secret "$TWILIO_TOKEN"
    ///   carehook webhooks create --from-preset slack_new_appointment --url https://hooks.slack.com/services/T/B/X \
    ///     --value site_url=https://north.example.com --clinic 2
    #[command(verbatim_doc_comment)]
    Create {
        /// The webhook as JSON (the body of POST /api/v1/webhooks).
        #[arg(
            long,
            required_unless_present = "from_preset",
            conflicts_with = "from_preset"
        )]
        file: Option<String>,
        /// A preset id; what it still needs is named if missing.
        #[arg(long)]
        from_preset: Option<String>,
        /// With --from-preset: where the webhook sends its requests, the receiver's URL
        /// (`--endpoint` too). carehook's own address is --server or CAREHOOK_URL.
        #[arg(
            long,
            alias = "endpoint",
            requires = "from_preset",
            conflicts_with = "file"
        )]
        url: Option<String>,
        /// With --from-preset: a preset value, as KEY=VALUE (repeatable).
        #[arg(long = "value", requires = "from_preset", conflicts_with = "file")]
        values: Vec<String>,
        /// With --from-preset: a clinic (its clinic_id) whose events it sends (repeatable);
        /// left out, every clinic's. A token limited to clinics must name its own.
        #[arg(long = "clinic", requires = "from_preset", conflicts_with = "file")]
        clinics: Vec<String>,
        /// With --from-preset: the basic-auth username.
        #[arg(long, requires = "from_preset", conflicts_with = "file")]
        auth_username: Option<String>,
        /// With --from-preset: the password, token or API key the preset's auth needs (for an
        /// OAuth 2.0 preset, the client secret; --auth-username is then the client id).
        #[arg(
            long,
            requires = "from_preset",
            env = "CAREHOOK_AUTH_SECRET",
            hide_env_values = true
        )]
        auth_secret: Option<String>,
        /// With an OAuth 2.0 refresh token preset (QuickBooks): the refresh token from the
        /// provider's consent step. carehook keeps the new one each time it rotates.
        #[arg(
            long,
            requires = "from_preset",
            env = "CAREHOOK_AUTH_REFRESH_TOKEN",
            hide_env_values = true
        )]
        refresh_token: Option<String>,
    },
    /// Change a webhook with a JSON merge patch from a file: the fields given
    /// replace the webhook's; secrets not given stay.
    ///
    /// Example:
    ///   echo '{"timeout_ms": 5000}' | carehook webhooks update ID --file -
    #[command(verbatim_doc_comment)]
    Update {
        id: String,
        #[arg(long)]
        file: String,
    },
    /// Delete a webhook (its delivery log stays).
    ///
    /// Example:
    ///   carehook webhooks delete ID
    #[command(verbatim_doc_comment)]
    Delete { id: String },
    /// Send the webhook's request now with example values, and show the
    /// request and the answer. Exits 1 if the endpoint did not answer 2xx.
    ///
    /// Example:
    ///   carehook webhooks test ID
    ///   carehook webhooks test ID --event kc_appointment_update --data '{"patient_name":"Ada"}'
    #[command(verbatim_doc_comment)]
    Test {
        id: String,
        /// The event to render (default: the webhook's first event).
        #[arg(long)]
        event: Option<String>,
        /// Values over the examples, as a JSON object.
        #[arg(long)]
        data: Option<String>,
    },
    /// Show the request a webhook would send, without sending it; or, with
    /// --file, of an unsaved draft (its errors with line and column).
    ///
    /// Example:
    ///   carehook webhooks preview ID
    ///   carehook webhooks preview --file draft.json --event kc_patient_add
    #[command(verbatim_doc_comment)]
    Preview {
        /// A saved webhook's id; leave out with --file.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        id: Option<String>,
        /// An unsaved webhook as JSON (`-` reads stdin).
        #[arg(long)]
        file: Option<String>,
        #[arg(long)]
        event: Option<String>,
        #[arg(long)]
        data: Option<String>,
    },
    /// Switch a webhook on.
    ///
    /// Example:
    ///   carehook webhooks enable ID
    #[command(verbatim_doc_comment)]
    Enable { id: String },
    /// Switch a webhook off (events stop making deliveries for it).
    ///
    /// Example:
    ///   carehook webhooks disable ID
    #[command(verbatim_doc_comment)]
    Disable { id: String },
    /// Make a new signing secret; the old one keeps signing for 24 hours.
    ///
    /// Example:
    ///   carehook webhooks rotate-secret ID
    #[command(verbatim_doc_comment)]
    RotateSecret { id: String },
    /// Send the webhook's stored events of a time range to it again, through its current
    /// templates (after fixing a template, or for a webhook added later). Events it already
    /// delivered are skipped unless --all; an event with a delivery to it still pending is
    /// always skipped, so running it twice sends nothing twice. Events whose stored data is
    /// gone (retention, erasure) are counted, not sent. Long ranges are done in bounded steps.
    ///
    /// Example:
    ///   carehook webhooks replay ID --since 2026-11-26T00:00:00Z --dry-run
    ///   carehook webhooks replay ID --since 2026-11-26T00:00:00Z --until 2026-11-27T00:00:00Z
    ///   carehook webhooks replay ID --since 2026-11-26T00:00:00Z --events kc_appointment_book --all
    #[command(verbatim_doc_comment)]
    Replay {
        id: String,
        /// Events created at or after this (RFC 3339, or unix ms).
        #[arg(long)]
        since: String,
        /// Events created before this (RFC 3339, or unix ms). Default: now.
        #[arg(long)]
        until: Option<String>,
        /// Only these events (comma-separated names the webhook subscribes to).
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Send events the webhook already delivered too.
        #[arg(long)]
        all: bool,
        /// Count only; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The counts a replay answers, summed over its steps.
const REPLAY_COUNTS: [&str; 8] = [
    "scanned",
    "created",
    "skipped_already_delivered",
    "skipped_in_flight",
    "skipped_expired",
    "skipped_erased",
    "skipped_conditions",
    "skipped_unreadable",
];

async fn replay(c: &Client, id: &str, mut body: Value) -> anyhow::Result<Value> {
    let path = format!("/api/v1/webhooks/{}/replay", seg(id));
    let mut total = json!({});
    // Each call reads a bounded number of events; the cursor goes on from there.
    loop {
        let v = expect_fields(c.post(&path, &body).await?, &["created", "scanned"])?;
        for k in REPLAY_COUNTS {
            let sum = total[k].as_u64().unwrap_or(0) + v[k].as_u64().unwrap_or(0);
            total[k] = sum.into();
        }
        for k in ["dry_run", "only_missing", "events"] {
            total[k] = v[k].clone();
        }
        if let Some(reasons) = v["reasons"].as_object() {
            for (k, r) in reasons {
                total["reasons"][k] = r.clone();
            }
        }
        match v["next_cursor"].as_str() {
            Some(cursor) if !cursor.is_empty() => {
                body["cursor"] = cursor.into();
                if !c.json {
                    eprintln!(
                        "… {} events read so far, going on",
                        total["scanned"].as_u64().unwrap_or(0)
                    );
                }
            }
            _ => break,
        }
    }
    if total.get("reasons").is_none() {
        total["reasons"] = json!({});
    }
    Ok(total)
}

pub fn run(args: WebhooksArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.client)?;
    block_on(run_async(client, args.command))
}

async fn run_async(c: Client, cmd: WebhooksCommand) -> anyhow::Result<()> {
    match cmd {
        WebhooksCommand::List => {
            let headers = ["ID", "NAME", "ENABLED", "EVENTS", "URL"];
            c.print_list("/api/v1/webhooks", &headers, |w| {
                vec![
                    cell(&w["id"]),
                    clip(&cell(&w["name"]), 32),
                    if w["enabled"] == true { "yes" } else { "no" }.into(),
                    clip(&events_text(&w["events"]), 40),
                    clip(&cell(&w["url"]), 60),
                ]
            })
            .await?;
        }
        WebhooksCommand::Get { id } => {
            let v = c.get(&format!("/api/v1/webhooks/{}", seg(&id))).await?;
            show_webhook(&c, &expect_fields(v, &["id"])?);
        }
        WebhooksCommand::Create {
            file,
            from_preset,
            url,
            values,
            clinics,
            auth_username,
            auth_secret,
            refresh_token,
        } => {
            let preset = from_preset.clone();
            let spec = match (file, from_preset) {
                (Some(file), _) => read_json_file(&file)?,
                (None, Some(preset)) => {
                    let auth = PresetAuthArgs {
                        username: auth_username,
                        secret: auth_secret,
                        refresh_token,
                    };
                    let mut body = preset_body(&preset, url, &values, auth)?;
                    if !clinics.is_empty() {
                        body["clinics"] = clinics.into();
                    }
                    body
                }
                (None, None) => unreachable!("clap requires --file or --from-preset"),
            };
            let created = c.post("/api/v1/webhooks", &spec).await.map_err(|e| {
                let flags = match (&preset, e.downcast_ref::<crate::client::Refused>()) {
                    (Some(p), Some(r)) => missing_as_flags(p, r),
                    _ => None,
                };
                flags.unwrap_or(e)
            })?;
            let v = expect_fields(created, &["id", "signing_secret"])?;
            if c.json {
                print_json(&v);
            } else {
                println!("created webhook {} ({})", cell(&v["id"]), cell(&v["name"]));
                println!(
                    "signing secret (shown only now; verify signatures with it):\n    {}",
                    cell(&v["signing_secret"])
                );
                print_warnings(&v);
            }
        }
        WebhooksCommand::Update { id, file } => {
            let patch = read_json_file(&file)?;
            let v = c
                .call(
                    "PATCH",
                    &format!("/api/v1/webhooks/{}", seg(&id)),
                    Some(&patch),
                )
                .await?;
            let v = expect_fields(v, &["id", "version"])?;
            if c.json {
                print_json(&v);
            } else {
                println!(
                    "updated webhook {} (version {})",
                    cell(&v["id"]),
                    cell(&v["version"])
                );
                print_warnings(&v);
            }
        }
        WebhooksCommand::Delete { id } => {
            c.call("DELETE", &format!("/api/v1/webhooks/{}", seg(&id)), None)
                .await?;
            if c.json {
                print_json(&json!({"deleted": id}));
            } else {
                println!("deleted webhook {id}");
            }
        }
        WebhooksCommand::Enable { id } => set_enabled(&c, &id, true).await?,
        WebhooksCommand::Disable { id } => set_enabled(&c, &id, false).await?,
        WebhooksCommand::RotateSecret { id } => {
            let v = c
                .post(
                    &format!("/api/v1/webhooks/{}/rotate-secret", seg(&id)),
                    &json!({}),
                )
                .await?;
            let v = expect_fields(v, &["signing_secret"])?;
            if c.json {
                print_json(&v);
            } else {
                println!(
                    "new signing secret (shown only now):\n    {}",
                    cell(&v["signing_secret"])
                );
                println!(
                    "the previous secret keeps signing until {}",
                    cell(&v["previous_secret_expires_at"])
                );
            }
        }
        WebhooksCommand::Replay {
            id,
            since,
            until,
            events,
            all,
            dry_run,
        } => {
            let mut body = json!({"since": since, "only_missing": !all, "dry_run": dry_run});
            if let Some(u) = until {
                body["until"] = u.into();
            }
            if !events.is_empty() {
                body["events"] = json!(events);
            }
            let v = replay(&c, &id, body).await?;
            if c.json {
                print_json(&v);
            } else {
                let n = |k: &str| v[k].as_u64().unwrap_or(0);
                if dry_run {
                    println!(
                        "would send {} of {} events (nothing sent: --dry-run)",
                        n("created"),
                        n("scanned")
                    );
                } else {
                    println!(
                        "replaying {} of {} events: {} new deliveries, sent under the webhook's rate limit",
                        n("created"),
                        n("scanned"),
                        n("created")
                    );
                }
                for k in &REPLAY_COUNTS[2..] {
                    if n(k) > 0 {
                        println!(
                            "  {}: {} ({})",
                            k,
                            n(k),
                            v["reasons"][*k].as_str().unwrap_or("")
                        );
                    }
                }
            }
        }
        WebhooksCommand::Test { id, event, data } => {
            let body = try_out_body(event, data.as_deref())?;
            let v = c
                .post(&format!("/api/v1/webhooks/{}/test", seg(&id)), &body)
                .await?;
            let v = expect_fields(v, &["outcome"])?;
            if c.json {
                print_json(&v);
            } else {
                print_request(&v["request"]);
                println!();
                match v["response"].as_object() {
                    Some(r) => {
                        println!(
                            "answer: HTTP {} in {} ms",
                            cell(&r["status"]),
                            cell(&v["duration_ms"])
                        );
                        if let Some(body) = r["body"].as_str().filter(|b| !b.is_empty()) {
                            println!("{}", clip(body, 2000));
                        }
                    }
                    None => println!("no answer ({} ms)", cell(&v["duration_ms"])),
                }
                if let Some(e) = v["error"].as_str() {
                    println!("error: {e}");
                }
                if v["conditions_match"] == false {
                    println!(
                        "note: the webhook's conditions do not hold on these values; a real event like this would not be sent"
                    );
                }
                println!("logged as delivery {} (a test)", cell(&v["delivery_id"]));
            }
            if v["outcome"] != "succeeded" {
                return Err(crate::Failed("the test send did not succeed".into()).into());
            }
        }
        WebhooksCommand::Preview {
            id,
            file,
            event,
            data,
        } => {
            let v = match (id, file) {
                (Some(id), _) => {
                    let body = try_out_body(event, data.as_deref())?;
                    c.post(&format!("/api/v1/webhooks/{}/preview", seg(&id)), &body)
                        .await?
                }
                (None, Some(file)) => {
                    let mut body = try_out_body(event, data.as_deref())?;
                    body["webhook"] = read_json_file(&file)?;
                    c.post("/api/v1/webhooks/preview", &body).await?
                }
                (None, None) => unreachable!("clap requires an id or --file"),
            };
            if c.json {
                print_json(&v);
            } else {
                println!("event: {}", cell(&v["event"]));
                print_request(&v["request"]);
                if v["conditions_match"] == false {
                    println!("\nnote: the webhook's conditions do not hold on these values");
                }
                print_warnings(&v);
            }
        }
    }
    Ok(())
}

async fn set_enabled(c: &Client, id: &str, enabled: bool) -> anyhow::Result<()> {
    let v = c
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{}", seg(id)),
            Some(&json!({ "enabled": enabled })),
        )
        .await?;
    let v = expect_fields(v, &["id"])?;
    if c.json {
        print_json(&v);
    } else {
        println!(
            "webhook {} is {}",
            cell(&v["id"]),
            if enabled { "enabled" } else { "disabled" }
        );
    }
    Ok(())
}

fn try_out_body(event: Option<String>, data: Option<&str>) -> anyhow::Result<Value> {
    let mut body = json!({});
    if let Some(e) = event {
        body["event"] = e.into();
    }
    if let Some(d) = parse_data(data)? {
        body["data"] = d;
    }
    Ok(body)
}

fn events_text(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(cell).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn show_webhook(c: &Client, v: &Value) {
    if c.json {
        print_json(v);
        return;
    }
    let rows: Vec<Vec<String>> = [
        "id",
        "name",
        "enabled",
        "disabled_reason",
        "method",
        "url",
        "content_type",
        "timeout_ms",
        "signing",
        "version",
        "created_at",
        "updated_at",
    ]
    .iter()
    .map(|k| vec![k.to_string(), cell(&v[*k])])
    .chain([
        vec!["events".into(), events_text(&v["events"])],
        vec!["auth".into(), cell(&v["auth"])],
        vec!["schedule".into(), schedule_text(&v["schedule"])],
        vec!["data_policy".into(), data_policy_text(&v["data_policy"])],
        vec!["data_sent".into(), cell(&v["data_sent"]["variables"])],
    ])
    .chain(
        v["ordering_key"]
            .as_str()
            .map(|k| vec!["ordering_key".into(), k.to_string()]),
    )
    .chain(oauth_and_tls_rows(v))
    .collect();
    print_table(&["FIELD", "VALUE"], &rows);
    if let Some(body) = v["body"].as_str().filter(|b| !b.is_empty()) {
        println!("\nbody:\n{body}");
    }
}

/// `-24h from appointment_start (if past: skip)`, or that it sends at once.
fn schedule_text(s: &Value) -> String {
    if s.is_null() {
        return "at once".into();
    }
    format!(
        "{} from {} (if past: {})",
        s["offset"].as_str().unwrap_or(""),
        s["at"].as_str().unwrap_or(""),
        s["if_past"].as_str().unwrap_or("skip")
    )
}

/// `identifying, phi — basis`, or that none is declared.
fn data_policy_text(p: &Value) -> String {
    if p.is_null() {
        return "not declared".into();
    }
    let mut allowed: Vec<&str> = ["identifying", "phi"]
        .into_iter()
        .filter(|k| p[*k] == true)
        .collect();
    if allowed.is_empty() {
        allowed.push("no patient data");
    }
    format!("{} — {}", allowed.join(", "), cell(&p["basis"]))
}

/// The OAuth 2.0 token's state and the client certificate's expiry, when the webhook has them.
fn oauth_and_tls_rows(v: &Value) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let o = &v["oauth"];
    if o.is_object() {
        let mut state = cell(&o["state"]);
        if let Some(t) = o["token_expires_at"].as_str() {
            state.push_str(&format!(", token expires {t}"));
        }
        rows.push(vec!["oauth".into(), state]);
        if let Some(e) = o["last_error"].as_str() {
            rows.push(vec!["oauth error".into(), e.to_string()]);
        }
    }
    let t = &v["tls"];
    if let Some(at) = t["client_cert_expires_at"].as_str() {
        let soon = if t["client_cert_expires_soon"] == true {
            " (within 14 days: renew it)"
        } else {
            ""
        };
        rows.push(vec![
            "client cert".into(),
            format!("{}, expires {at}{soon}", cell(&t["client_cert_subject"])),
        ]);
    }
    rows
}

fn print_request(r: &Value) {
    if r.is_null() {
        println!("(the request could not be built)");
        return;
    }
    println!("{} {}", cell(&r["method"]), cell(&r["url"]));
    for h in r["headers"].as_array().into_iter().flatten() {
        println!("{}: {}", cell(&h[0]), cell(&h[1]));
    }
    if let Some(body) = r["body"].as_str().filter(|b| !b.is_empty()) {
        println!("\n{body}");
    }
}

fn print_warnings(v: &Value) {
    for w in v["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}: {}", cell(&w["field"]), cell(&w["message"]));
    }
}

/// A preset's missing values, as the server names them (`values.from_number`,
/// `auth.password`), said as the flags that give them here.
fn missing_as_flags(preset: &str, refused: &crate::client::Refused) -> Option<anyhow::Error> {
    let missing = refused.body["error"]["missing"].as_array()?;
    let lines: Vec<String> = missing
        .iter()
        .map(|m| {
            let field = m["field"].as_str().unwrap_or("");
            let flag = match field {
                "url" => "--url URL".to_string(),
                "auth.username" => "--auth-username NAME".to_string(),
                f if f.starts_with("auth.") => {
                    "--auth-secret SECRET (or CAREHOOK_AUTH_SECRET)".to_string()
                }
                f => match f.strip_prefix("values.") {
                    Some(key) => format!("--value {key}=…"),
                    None => f.to_string(),
                },
            };
            format!("  {flag:44} {}", m["message"].as_str().unwrap_or(""))
        })
        .collect();
    Some(
        crate::UsageError(format!(
            "preset {preset} still needs:\n{}\n`carehook presets show {preset}` says where to find each",
            lines.join("\n")
        ))
        .into(),
    )
}

/// The auth flags of `--from-preset`.
#[derive(Debug, Default)]
struct PresetAuthArgs {
    username: Option<String>,
    secret: Option<String>,
    refresh_token: Option<String>,
}

/// The body of POST /api/v1/webhooks for `--from-preset`: the secret goes
/// into whichever field the preset's auth uses.
fn preset_body(
    preset: &str,
    url: Option<String>,
    values: &[String],
    args: PresetAuthArgs,
) -> anyhow::Result<serde_json::Value> {
    let PresetAuthArgs {
        username: auth_username,
        secret: auth_secret,
        refresh_token,
    } = args;
    let mut body = serde_json::json!({ "preset": preset });
    if let Some(url) = url {
        body["url"] = url.into();
    }
    let mut map = serde_json::Map::new();
    for v in values {
        let (k, val) = v.split_once('=').ok_or_else(|| {
            crate::UsageError(format!(
                "--value {v}: write it as KEY=VALUE, e.g. from_number=+15017122661"
            ))
        })?;
        map.insert(k.to_string(), val.into());
    }
    if !map.is_empty() {
        body["values"] = map.into();
    }
    use carehook_core::presets::PresetAuth;
    let kind = carehook_core::presets::lookup(preset).map(|p| p.auth);
    let (username_field, secret_field) = match kind {
        Some(PresetAuth::Basic { .. }) => ("username", "password"),
        Some(PresetAuth::Bearer { .. }) => ("username", "token"),
        Some(PresetAuth::OAuth2 { .. }) => ("client_id", "client_secret"),
        _ => ("username", "value"),
    };
    let mut auth = serde_json::Map::new();
    if let Some(u) = auth_username {
        auth.insert(username_field.into(), u.into());
    }
    if let Some(r) = refresh_token {
        auth.insert("refresh_token".into(), r.into());
    }
    if let Some(secret) = auth_secret {
        auth.insert(secret_field.into(), secret.into());
    }
    if !auth.is_empty() {
        body["auth"] = auth.into();
    }
    Ok(body)
}
