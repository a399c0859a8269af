//! carehook: a webhook server for clinics.
//!
//! - [`app`]: the one seam, `run(settings, store, listener, shutdown)`.
//! - [`service`]: the rules (webhooks, events, clinic records, tokens,
//!   deliveries) with one domain error; the transports below call it.
//! - [`api`]: the HTTP API under `/api/v1` (clinic records in [`api::clinic`]);
//!   the only module that knows status codes.
//! - [`ui`]: the admin UI under `/ui`.
//! - [`domain`]: who acts and what can go wrong, below everything that acts.
//! - [`intake`]: events in, with group commit.
//! - [`alerts`]: operational events (`carehook_*`) carehook emits about its own webhooks.
//! - [`dispatcher`]: deliveries out: claim, render, sign, send, record; its
//!   scheduling state (queues, caps, pacing) is the pure [`dispatcher::schedule`].
//! - [`supervise`]: background tasks restarted after a panic; `/healthz` reports them.
//! - [`node`]: this process's identity and heartbeat; frees dead nodes' leases.
//! - [`outbound`]: the HTTP client and the destination (SSRF) policy.
//! - [`registry`]: webhooks compiled in memory (a broken one, whose secrets
//!   do not open, stays listed and unsent).
//! - [`metrics`]: Prometheus counters, `GET /metrics`.
//! - [`vault`]: secrets at rest.
//! - [`demo`]: the demo clinic's data, written through a [`demo::DemoSink`]; the
//!   in-process sink is here (`carehook serve --demo`).
//!
//! The `carehook` binary and everything only the command line needs (flags, the
//! HTTP client of a running server, `carehook bench`, the catalog printers) live
//! in `crates/cli` (`carehook-cli`), which depends on this library and never the
//! other way round.

pub mod alerts;
pub mod api;
pub mod app;
pub mod client_tls;
pub mod demo;
pub mod dispatcher;
pub mod domain;
pub mod intake;
pub mod metrics;
pub mod node;
pub mod outbound;
pub mod registry;
pub mod serve;
pub mod service;
pub mod supervise;
pub mod time;
pub mod ui;
pub mod vault;
pub mod welcome;
