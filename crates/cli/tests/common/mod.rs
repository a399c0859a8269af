//! The server's test harness (`crates/server/tests/common`), shared rather than
//! copied: the real carehook on 127.0.0.1:0 and a receiver that records what
//! arrives.

#[path = "../../../server/tests/common/mod.rs"]
mod shared;

#[allow(unused_imports)]
pub use shared::*;
