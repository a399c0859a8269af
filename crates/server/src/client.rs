//! The client for the commands that change clinic records on a running
//! server (`carehook clinic …`, `carehook demo`): the CLI's one HTTP client
//! ([`crate::cli::client::Client`]) with paths under `/api/v1`, the acting
//! user, and errors read as the server wrote them:
//! `422 invalid (email): "x" is not an e-mail address`.

use serde_json::Value;

use crate::cli::client::{ClientArgs, Refused};

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

#[derive(Debug)]
pub struct Client(crate::cli::client::Client);

impl Client {
    pub fn new(remote: Remote) -> anyhow::Result<Client> {
        if remote.token.is_none() {
            return Err(crate::cli::UsageError(
                "no API token: pass --token or set CAREHOOK_TOKEN (the admin token `carehook serve` printed)"
                    .into(),
            )
            .into());
        }
        let args = ClientArgs {
            url: remote.url,
            token: remote.token,
            json: false,
        };
        Ok(Client(
            crate::cli::client::Client::new(&args)?.with_user(remote.user_id),
        ))
    }

    /// `method` on `/api/v1{path}`; the answer's JSON, or the server's error as an error.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.0
            .call(method, &format!("/api/v1{path}"), body)
            .await
            .map_err(|e| {
                // A refusal reads with its status, code and field, and exits 2.
                match e.downcast_ref::<Refused>() {
                    Some(r) => {
                        let err = &r.body["error"];
                        let field = err["field"]
                            .as_str()
                            .filter(|f| !f.is_empty())
                            .map(|f| format!(" ({f})"))
                            .unwrap_or_default();
                        let message = err["message"]
                            .as_str()
                            .map_or_else(|| r.message.clone(), String::from);
                        crate::cli::UsageError(format!(
                            "{} {}{field}: {message}",
                            r.status,
                            err["code"].as_str().unwrap_or("error")
                        ))
                        .into()
                    }
                    None => e,
                }
            })
    }
}
