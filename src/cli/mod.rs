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

/// Our own error's message where there is one (without DataFusion's "External error: "
/// wrapping), else DataFusion's.
fn message(e: &datafusion::error::DataFusionError) -> String {
    match crate::error::topics_error(e) {
        Some(ours) => ours.to_string(),
        None => e.to_string(),
    }
}
