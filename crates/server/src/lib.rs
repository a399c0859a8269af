//! carehook: a webhook server for clinics.
//!
//! - [`cli`]: the `carehook` command line.
//! - [`events_cmd`]: `carehook events`, the catalog for people and scripts.

pub mod cli;
pub mod events_cmd;
