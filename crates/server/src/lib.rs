//! carehook: a webhook server for clinics.
//!
//! - [`app`]: the one seam, `run(settings, store, listener, shutdown)`.
//! - [`api`]: the HTTP API under `/api/v1` (clinic records in [`api::clinic`]).
//! - [`ui`]: the admin UI under `/ui`.
//! - [`intake`]: events in, with group commit.
//! - [`dispatcher`]: deliveries out: claim, render, sign, send, record.
//! - [`node`]: this process's identity and heartbeat; frees dead nodes' leases.
//! - [`outbound`]: the HTTP client and the destination (SSRF) policy.
//! - [`registry`]: webhooks compiled in memory.
//! - [`metrics`]: Prometheus counters, `GET /metrics`.
//! - [`vault`]: secrets at rest.
//! - [`cli`]: the `carehook` command line; [`client`]: its client of the API.
//! - [`bench`]: `carehook bench`, the load benchmark.
//! - [`demo`]: the demo clinic (`carehook serve --demo`, `carehook demo`).

pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub mod demo;
pub mod dispatcher;
pub mod events_cmd;
pub mod intake;
pub mod metrics;
pub mod node;
pub mod outbound;
pub mod presets_cmd;
pub mod registry;
pub mod time;
pub mod ui;
pub mod vault;
