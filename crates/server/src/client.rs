//! A small client of carehook's own API, for the commands that talk to a running server
//! (`carehook clinic …`, `carehook demo`). Errors read as the server wrote them:
//! `422 invalid (email): "x" is not an e-mail address`.

use anyhow::Context as _;
use serde_json::Value;

/// Where the server is and how to get in: `--url`/`CAREHOOK_URL`, `--token`/`CAREHOOK_TOKEN`.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// carehook's address.
    #[arg(long, env = "CAREHOOK_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API token (the admin token, or one made for scripts).
    #[arg(long, env = "CAREHOOK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The id of the clinic user acting (`current_user_id` in the events).
    #[arg(long, env = "CAREHOOK_USER_ID")]
    pub user_id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Client {
    remote: Remote,
    http: reqwest::Client,
}

impl Client {
    pub fn new(remote: Remote) -> anyhow::Result<Client> {
        if remote.token.is_none() {
            return Err(crate::cli::UsageError(
                "no API token: pass --token or set CAREHOOK_TOKEN (the admin token `carehook serve` printed)"
                    .into(),
            )
            .into());
        }
        crate::outbound::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Client { remote, http })
    }

    /// `method` on `/api/v1{path}`; the answer's JSON, or the server's error as an error.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.remote.url.trim_end_matches('/'));
        let mut req = self
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes())?, &url)
            .bearer_auth(self.remote.token.as_deref().unwrap_or_default());
        if let Some(user) = self.remote.user_id {
            req = req.header(crate::api::clinic::USER_HEADER, user.to_string());
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach carehook at {} (is it running?)",
                self.remote.url
            )
        })?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let e = &value["error"];
        let field = e["field"]
            .as_str()
            .filter(|f| !f.is_empty())
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        let message = e["message"]
            .as_str()
            .map_or(value.to_string(), String::from);
        let err = anyhow::anyhow!(
            "{} {}{field}: {message}",
            status.as_u16(),
            e["code"].as_str().unwrap_or("error")
        );
        if status.is_client_error() {
            Err(crate::cli::UsageError(err.to_string()).into())
        } else {
            Err(err)
        }
    }
}
