//! `datafusion-topics`: datafusion-cli with Kafka topics and NATS JetStream streams as tables.

use std::process::ExitCode;

use clap::Parser;
use datafusion_topics::cli::args::Commands;
use datafusion_topics::cli::{Args, run, shell};

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    match &args.subcommand {
        // A continuous query's failure goes to stderr, apart from its progress lines.
        Some(Commands::Run(run_args)) => match run::run(&args, run_args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        },
        // The shell reports errors on stdout, as datafusion-cli does.
        None => match shell::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                println!("Error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
