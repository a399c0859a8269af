//! The management API, secrets at rest, OpenAPI and metrics, end to end: the
//! real server (`app::run` on 127.0.0.1:0) and a real receiver. One binary, a
//! module per feature. (The `carehook` binary's tests are in `crates/cli/tests`.)

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod clinics;
mod conformance;
mod metrics;
mod openapi;
mod openapi_tools;
mod partner_links;
mod patient_data;
mod policy;
mod retries;
mod secrets;
mod signature_docs;
mod tokens;
mod try_out;
mod users;

pub use common::{WAIT, hook};
