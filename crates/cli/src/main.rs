//! The `smolsweep` binary: parse the command line, set up logging, and
//! dispatch to `commands/`. Logs go to stderr, data to stdout.

mod args;
mod commands;

use std::io::IsTerminal;

use clap::Parser;

/// Rust's allocations go through mimalloc rather than glibc's malloc:
/// tokenising a conversation makes many small, short-lived strings and
/// vectors, and under glibc about 40% of `prepare`'s time was malloc and
/// free (a profile of 3,000 tulu-shaped conversations). libtorch keeps its
/// own allocators either way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = args::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    // Before anything touches CUDA: see smolsweep_model::device.
    smolsweep_model::device::load_cuda_backend();
    match commands::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<commands::ExitStatus>() {
            Some(status) => std::process::ExitCode::from(status.0),
            None => {
                // The whole chain on one line, each link once (no error
                // message repeats its source): the orchestrator takes the
                // last `error` line of a trial's log as its failure reason.
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}
