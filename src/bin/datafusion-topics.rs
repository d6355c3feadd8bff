//! `datafusion-topics`: datafusion-cli with Kafka topics and NATS JetStream streams as tables.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::init();
    datafusion_topics::cli::main().await
}
