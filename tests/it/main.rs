//! Integration tests against real brokers (one test binary, one module per area).

#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "cli")]
mod continuous;
mod ddl;
#[cfg(all(feature = "distributed", feature = "cli"))]
mod distributed;
mod examples;
mod formats;
mod harness;
mod kafka_errors;
mod kafka_log;
mod kafka_scan;
mod kafka_start_positions;
mod nats;
mod nats_work_queue;
#[cfg(feature = "cli")]
mod observe;
#[cfg(feature = "cli")]
mod own_sink;
mod pushdown;
mod registry_replay;
#[cfg(feature = "cli")]
mod sql_examples;
#[cfg(feature = "cli")]
mod stateful;
mod topics;
