//! Integration tests against real brokers (one test binary, one module per area).

mod ddl;
mod harness;
mod kafka_errors;
mod kafka_scan;
mod kafka_start_positions;
mod nats;
mod pushdown;
