//! The management API, the CLI, secrets at rest, OpenAPI and metrics, end to
//! end: the real server (`app::run` on 127.0.0.1:0), a real receiver, and
//! the real `carehook` binary for the CLI. One binary, a module per feature.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod metrics;
mod openapi;
mod retries;
mod secrets;
mod tokens;
mod try_out;

/// Runs an async test fn once per backend, as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name($crate::common::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name($crate::common::Backend::Postgres).await }
        }
    )*};
}

use serde_json::{Value, json};

/// A webhook on the receiver: JSON body, one event.
pub fn hook(url: &str) -> Value {
    json!({
        "name": "Slack: new appointment",
        "events": ["kc_appointment_book"],
        "url": url,
        "body": "{\"text\": \"{{patient_name}} with {{doctor_name}} on {{appointment_date}}\"}"
    })
}

pub const WAIT: std::time::Duration = std::time::Duration::from_secs(15);
