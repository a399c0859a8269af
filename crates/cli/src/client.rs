//! The one HTTP client of a running carehook, for every command that talks to
//! one: the one place `CAREHOOK_URL` and `CAREHOOK_TOKEN` are read ([`Server`]),
//! the token, JSON in and out, and the API's error body turned into a message
//! and an exit code.
//!
//! Before the token leaves this process, the client makes sure carehook is what
//! answers at the address: `GET /healthz` without the token must come back with
//! carehook's `carehook-version` header. Every later answer must carry it too,
//! and be JSON. Anything else (a webhook receiver given as the server's address,
//! a proxy's error page, another service on the port) is an error naming what
//! answered, never treated as carehook's answer. This guards against mistakes,
//! not against a server that imitates carehook; `https://` does that.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::UsageError;

/// Where carehook is and how to get in.
#[derive(Debug, Clone, Args)]
pub struct Server {
    /// carehook's own address (a webhook's destination is `webhooks create --url`).
    #[arg(
        long = "server",
        value_name = "URL",
        env = "CAREHOOK_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub address: String,
    /// An API token (the admin token, or one from `carehook tokens create`).
    #[arg(long, env = "CAREHOOK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// The server, and how to print its answers.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub server: Server,
    /// Print the server's JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The server refused the request (4xx): the input is at fault. Exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub status: u16,
    pub message: String,
    pub body: Value,
}

#[derive(Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    /// Sent as `X-Carehook-User-Id`, for clinic changes (`current_user_id`).
    user_id: Option<i64>,
    http: reqwest::Client,
    pub json: bool,
    /// Set once `base` answered as carehook, before the first request with the token.
    is_carehook: OnceCell<()>,
}

/// What answered, read far enough to tell whether it was carehook.
struct Answer {
    status: u16,
    content_type: String,
    from_carehook: bool,
    text: String,
}

impl Answer {
    async fn read(resp: reqwest::Response) -> anyhow::Result<Answer> {
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (status, content_type) = (resp.status().as_u16(), header("content-type"));
        let from_carehook = resp.headers().contains_key(carehook::api::VERSION_HEADER);
        let location = header("location");
        let mut text = if from_carehook {
            resp.text().await.context("reading the answer")?
        } else {
            excerpt_of(resp).await
        };
        if !location.is_empty() {
            text = format!("redirect to {location} {text}");
        }
        Ok(Answer {
            status,
            content_type,
            from_carehook,
            text,
        })
    }
}

/// The start of a stranger's answer: enough to name it, never all of whatever
/// it streams.
async fn excerpt_of(mut resp: reqwest::Response) -> String {
    const MOST: usize = 4096;
    let mut bytes = Vec::new();
    while bytes.len() < MOST {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MOST);
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let mut client = Client::connect(&args.server)?;
        client.json = args.json;
        Ok(client)
    }

    pub fn connect(server: &Server) -> anyhow::Result<Client> {
        carehook::outbound::install_crypto_provider();
        let base = server.address.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(UsageError(format!(
                "--server must start with http:// or https://, not {base:?}"
            ))
            .into());
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("carehook-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(120))
            // carehook's API never redirects; following one would take the
            // request (and its token) to an address nobody gave.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Client {
            base,
            token: server.token.clone().filter(|t| !t.is_empty()),
            user_id: None,
            http,
            json: false,
            is_carehook: OnceCell::new(),
        })
    }

    /// Names the clinic user acting, for the events clinic changes fire.
    pub fn with_user(mut self, user_id: Option<i64>) -> Client {
        self.user_id = user_id;
        self
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `GET /healthz` without the token: carehook answers with its version
    /// header, whatever its health.
    async fn check_is_carehook(&self) -> anyhow::Result<()> {
        self.is_carehook
            .get_or_try_init(|| async {
                let resp = self
                    .http
                    .get(format!("{}/healthz", self.base))
                    .send()
                    .await
                    .with_context(|| self.unreachable())?;
                let answer = Answer::read(resp).await?;
                if answer.from_carehook {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!(
                        "{} is not carehook: GET /healthz answered {}; nothing was sent with the token. \
                         Set --server or CAREHOOK_URL to carehook's address (a webhook's destination \
                         is `carehook webhooks create … --url`)",
                        self.base,
                        self.describe(&answer)
                    ))
                }
            })
            .await
            .map(drop)
    }

    fn unreachable(&self) -> String {
        format!(
            "could not reach carehook at {} (is `carehook serve` running? set --server or CAREHOOK_URL)",
            self.base
        )
    }

    /// What answered, for an error: status, content type and the start of the
    /// body, with the token blotted out should the body echo it.
    fn describe(&self, answer: &Answer) -> String {
        let mut text = answer.text.clone();
        if let Some(token) = &self.token {
            text = text.replace(token.as_str(), "********");
        }
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let content_type = match answer.content_type.as_str() {
            "" => "no content type",
            t => t,
        };
        format!(
            "HTTP {} ({content_type}) {:?}",
            answer.status,
            clip(text.trim(), 120)
        )
    }

    /// Sends a request; a 2xx answer's JSON (null when empty), else an error
    /// naming what the server said, or what answered instead of carehook.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.check_is_carehook().await?;
        let url = format!("{}{}", self.base, path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut req = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(user) = self.user_id {
            req = req.header(carehook::api::clinic::USER_HEADER, user.to_string());
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.with_context(|| self.unreachable())?;
        let answer = Answer::read(resp).await?;
        let not_carehook = |why: &str| {
            anyhow::anyhow!(
                "{method} {path} at {}: the answer is not carehook's ({why}): {}",
                self.base,
                self.describe(&answer)
            )
        };
        if !answer.from_carehook {
            return Err(not_carehook("no carehook-version header"));
        }
        let status = answer.status;
        let value: Value = if answer.text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&answer.text).map_err(|_| not_carehook("not JSON"))?
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let e = &value["error"];
        let mut message = e["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}: {value}"));
        if let Some(field) = e["field"].as_str().filter(|f| !f.is_empty())
            && !message.starts_with(field)
        {
            message = format!("{field}: {message}");
        }
        if status == 401 && self.token.is_none() {
            message.push_str(" (pass --token or set CAREHOOK_TOKEN)");
        }
        if (400..500).contains(&status) {
            Err(Refused {
                status,
                message,
                body: value,
            }
            .into())
        } else {
            Err(anyhow::anyhow!(
                "carehook answered HTTP {status}: {message}"
            ))
        }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call("POST", path, Some(body)).await
    }

    /// Prints one page of a list (`{"items": […], "next_cursor"?}`): the whole answer with
    /// `--json`, else a table with a row per item and how to ask for the next page.
    pub async fn print_list(
        &self,
        path: &str,
        headers: &[&str],
        row: impl Fn(&Value) -> Vec<String>,
    ) -> anyhow::Result<()> {
        let v = expect_fields(self.get(path).await?, &["items"])?;
        if self.json {
            print_json(&v);
            return Ok(());
        }
        let rows: Vec<Vec<String>> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(row)
            .collect();
        print_table(headers, &rows);
        if let Some(next) = v["next_cursor"].as_str() {
            println!("\nmore: --cursor {next}");
        }
        Ok(())
    }
}

/// An answer with the fields a command reads from it; a 2xx without them is no
/// answer of carehook's to that request, and is an error rather than a table
/// of dashes.
pub fn expect_fields(answer: Value, fields: &[&str]) -> anyhow::Result<Value> {
    let missing: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| answer.get(*f).is_none_or(Value::is_null))
        .collect();
    if missing.is_empty() {
        Ok(answer)
    } else {
        // The fields it has, not their values: an answer may hold a secret.
        let has = match &answer {
            Value::Object(map) => map.keys().cloned().collect::<Vec<_>>().join(", "),
            other => format!("a JSON {}", json_type(other)),
        };
        Err(anyhow::anyhow!(
            "the answer lacks {}, so it is not carehook's answer to this command (it has: {has})",
            missing.join(", ")
        ))
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A path segment from user input (an id), percent-encoded.
pub fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A query string from the pairs that are set.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            ser.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", ser.finish())
    } else {
        String::new()
    }
}

/// Reads JSON from a file, or from stdin for `-`.
pub fn read_json_file(path: &str) -> anyhow::Result<Value> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(path).map_err(|e| UsageError(format!("cannot read {path}: {e}")))?
    };
    serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("{path} is not valid JSON: {e}")).into())
}

/// Parses a `--data` argument: a JSON object.
pub fn parse_data(text: Option<&str>) -> anyhow::Result<Option<Value>> {
    let Some(text) = text else { return Ok(None) };
    let v: Value = serde_json::from_str(text)
        .map_err(|e| UsageError(format!("--data is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(UsageError(
            "--data must be a JSON object, e.g. '{\"patient_name\":\"Ada\"}'".into(),
        )
        .into());
    }
    Ok(Some(v))
}

/// Prints JSON for scripts, pretty.
pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A plain text table: a header row, then the rows, columns padded.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A JSON value as table text: strings bare, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Cuts text to `max` characters for a table cell.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Runs an async CLI command on a small runtime.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}
