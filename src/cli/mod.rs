//! The `datafusion-topics` command-line shell: datafusion-cli (REPL, `-c`, `-f`, `--format`,
//! `\d` meta commands, object-store URLs) with topic tables (`STORED AS KAFKA | NATS | MEMORY`),
//! and `datafusion-topics run` for continuous queries.

mod args;
mod namespaces;
mod progress_bar;
mod registry;
mod run;
mod shell;
mod status;

use std::process::ExitCode;

use clap::Parser;

use args::{Args, Commands};

/// The `datafusion-topics` program: parses the command line, runs the shell or a continuous
/// query, and reports a failure (the shell on stdout, as datafusion-cli does; `run` on
/// stderr, apart from its progress lines).
pub async fn main() -> ExitCode {
    let args = Args::parse();
    match &args.subcommand {
        Some(Commands::Run(run_args)) => match run::run(&args, run_args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {}", message(&e));
                ExitCode::FAILURE
            }
        },
        Some(Commands::Worker(worker_args)) => match worker(worker_args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {}", message(&e));
                ExitCode::FAILURE
            }
        },
        Some(Commands::Status(status_args)) => match status::status(status_args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {}", message(&e));
                ExitCode::FAILURE
            }
        },
        None => match shell::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                println!("Error: {}", message(&e));
                ExitCode::FAILURE
            }
        },
    }
}

/// `datafusion-topics worker`: serves until killed.
async fn worker(args: &args::WorkerArgs) -> datafusion::error::Result<()> {
    #[cfg(feature = "distributed")]
    {
        if let Some(addr) = args.metrics_addr {
            crate::observe::serve_prometheus(addr)?;
        }
        eprintln!("datafusion-topics worker listening on {}", args.listen);
        crate::distributed::serve_worker(args.listen).await?;
        Ok(())
    }
    #[cfg(not(feature = "distributed"))]
    {
        let _ = args;
        Err(no_distributed())
    }
}

/// The error for `worker` and `--workers` in a build without the `distributed` feature.
#[cfg(not(feature = "distributed"))]
pub(crate) fn no_distributed() -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Plan(
        "this build has no workers: build datafusion-topics with the `distributed` feature \
         (cargo install --path . --features distributed)"
            .into(),
    )
}

/// Our own error's message where there is one (without DataFusion's "External error: "
/// wrapping), else DataFusion's.
fn message(e: &datafusion::error::DataFusionError) -> String {
    match crate::error::topics_error(e) {
        Some(ours) => ours.to_string(),
        None => e.to_string(),
    }
}
