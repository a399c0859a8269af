//! The HTTP client the CLI talks to a running carehook with: one place for
//! the base URL, the token, JSON in and out, and turning the API's error
//! body into a message and an exit code.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use super::UsageError;

/// Where the server is, and how to prove who we are.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The carehook server.
    #[arg(
        long,
        env = "CAREHOOK_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// An API token (the admin token, or one from `carehook tokens create`).
    #[arg(long, env = "CAREHOOK_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
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
}

impl Client {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        crate::outbound::install_crypto_provider();
        let base = args.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(UsageError(format!(
                "--url must start with http:// or https://, not {base:?}"
            ))
            .into());
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("carehook-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Client {
            base,
            token: args.token.clone().filter(|t| !t.is_empty()),
            user_id: None,
            http,
            json: args.json,
        })
    }

    /// Names the clinic user acting, for the events clinic changes fire.
    pub fn with_user(mut self, user_id: Option<i64>) -> Client {
        self.user_id = user_id;
        self
    }

    /// Sends a request; a 2xx answer's JSON (null when empty), else an error
    /// naming what the server said.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut req = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(user) = self.user_id {
            req = req.header(crate::api::clinic::USER_HEADER, user.to_string());
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.with_context(|| {
            format!("could not reach carehook at {} (is `carehook serve` running? set --url or CAREHOOK_URL)", self.base)
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.context("reading the answer")?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
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
