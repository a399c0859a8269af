//! The `carehook` binary: hands over to `carehook_cli::main`. Everything that
//! can be tested lives in the libraries (`carehook-cli`, `carehook`).

use std::process::ExitCode;

// mimalloc: every event and delivery allocates many small strings (the
// snapshot's variables, headers, JSON); the system allocator spent a fifth of
// the benchmark's CPU time in malloc and free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    carehook_cli::main()
}
