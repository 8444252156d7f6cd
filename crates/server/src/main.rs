//! The `strata` binary. Thin: parse, run, and turn any start-up failure into
//! one line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;

/// Serving a request allocates and frees many small and a few large
/// buffers from every worker thread; mimalloc's per-thread free lists do
/// that with a fraction of the system allocator's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = strata_server::cli::Cli::parse();
    match strata_server::cli::run(cli).await {
        Ok(status) => ExitCode::from(status),
        Err(err) => {
            eprintln!("strata: {err:#}");
            ExitCode::FAILURE
        }
    }
}
