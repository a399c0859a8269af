//! The `carehook` binary against a live server (`app::run` on 127.0.0.1:0) and
//! against things that are not carehook. One binary, a module per feature.

#[path = "../common/mod.rs"]
mod common;

mod commands;
mod import_kivicare;
mod not_carehook;

pub use common::{WAIT, hook};
