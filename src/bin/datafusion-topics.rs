//! `datafusion-topics`: datafusion-cli with Kafka topics and NATS JetStream streams as tables.

use std::process::ExitCode;

use clap::Parser;
use datafusion_topics::cli::args::Commands;
use datafusion_topics::cli::{Args, run, shell};

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let outcome = match &args.subcommand {
        Some(Commands::Run(run_args)) => run::run(&args, run_args).await,
        None => shell::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
