//! The management API, secrets at rest, OpenAPI and metrics, end to end: the
//! real server (`app::run` on 127.0.0.1:0) and a real receiver. One binary, a
//! module per feature. (The `carehook` binary's tests are in `crates/cli/tests`.)

#[path = "../common/mod.rs"]
mod common;

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

pub use common::{WAIT, hook};
