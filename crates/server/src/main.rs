//! The `carehook` binary: parses the command line and hands over to the
//! library. Everything that can be tested lives in `carehook` (lib).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = carehook::cli::Cli::parse();
    carehook::cli::run(cli)
}
