//! # datafusion-topics
//!
//! Kafka topics (and NATS JetStream streams) as **unbounded Apache DataFusion tables**.
//!
//! A [`StreamingTableProvider`] plans one offset range per source partition and scans it
//! with one output partition per source partition (Spark's "direct" approach: no receivers,
//! no write-ahead log). A scan follows the log unless every partition's range has an end,
//! for example with `scan.bounded.mode = latest-offset` (a snapshot), which makes the plan
//! bounded so `count(*)`, `GROUP BY` and `ORDER BY` work.
//!
//! ```no_run
//! use std::sync::Arc;
//! use datafusion::arrow::datatypes::{DataType, Field, Schema};
//! use datafusion::prelude::SessionContext;
//! use datafusion_topics::{KafkaTableOptions, StreamingTableProvider, options_from_pairs};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let value_schema = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, true),
//!     Field::new("amount", DataType::Float64, true),
//! ]));
//! let options = KafkaTableOptions::parse(
//!     "kafka://127.0.0.1:9092/orders",
//!     value_schema,
//!     &options_from_pairs([("value.format", "json"), ("scan.bounded.mode", "latest-offset")]),
//! )?;
//! let ctx = SessionContext::new();
//! ctx.register_table("orders", Arc::new(StreamingTableProvider::try_new_kafka(options).await?))?;
//! ctx.sql("SELECT _partition, count(*), sum(amount) FROM orders GROUP BY _partition")
//!     .await?
//!     .show()
//!     .await?;
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod exec;
pub mod factory;
pub mod format;
pub mod options;
pub mod planner;
pub mod positions;
pub mod provider;
pub mod pushdown;
pub mod query;
pub mod schema;
pub mod secret;
pub mod session;
pub mod sink;
pub mod source;

pub use error::{Result, TopicsError};
pub use exec::TopicScanExec;
pub use factory::TopicTableFactory;
pub use format::{ErrorPolicy, Format, FormatKind, TableFormats};
pub use options::{
    BoundedMode, KafkaTableOptions, NatsTableOptions, ScanOptions, StartupMode, options_from_pairs,
};
pub use planner::{PartitionScan, TimestampOrder};
pub use provider::StreamingTableProvider;
pub use session::{session_context, session_state_builder, streaming_config};
pub use source::kafka::{KafkaConfig, KafkaSource};
pub use source::nats::{NatsConfig, NatsPartitioning, NatsSource};
pub use source::{OffsetRange, Source, Watermarks};

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
