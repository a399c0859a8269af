//! The `carehook` binary: parses the command line and hands over to the
//! library. Everything that can be tested lives in `carehook` (lib).

use std::process::ExitCode;

use clap::Parser;

// mimalloc: every event and delivery allocates many small strings (the
// snapshot's variables, headers, JSON); the system allocator spent a fifth of
// the benchmark's CPU time in malloc and free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = carehook::cli::Cli::parse();
    carehook::cli::run(cli)
}
