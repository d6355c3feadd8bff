//! `datafusion-topics`: datafusion-cli with Kafka topics and NATS JetStream streams as tables.

use std::process::ExitCode;

use clap::Parser;
use datafusion_topics::cli::{Args, shell};

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::init();
    match shell::run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
