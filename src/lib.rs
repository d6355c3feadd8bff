//! # datafusion-topics
//!
//! Kafka topics (and NATS JetStream streams, and topics held in memory) as **unbounded Apache
//! DataFusion tables**.
//!
//! A [`TopicTable`] plans one offset range per source partition and scans it with one output
//! partition per source partition (Spark's "direct" approach: no receivers, no write-ahead
//! log). A scan follows the log unless every partition's range has an end, for example with
//! `scan.bounded.mode = latest-offset` (a snapshot), which makes the plan bounded so
//! `count(*)`, `GROUP BY` and `ORDER BY` work. A [`ContinuousQuery`] runs `INSERT INTO … SELECT`
//! as checkpointed micro-batches with exactly-once output.
//!
//! ```no_run
//! use std::sync::Arc;
//! use datafusion::arrow::datatypes::{DataType, Field, Schema};
//! use datafusion_topics::{TopicTable, options_from_pairs, session_context};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let columns = Arc::new(Schema::new(vec![
//!     Field::new("id", DataType::Int64, true),
//!     Field::new("amount", DataType::Float64, true),
//! ]));
//! let orders = TopicTable::open(
//!     "kafka://127.0.0.1:9092/orders",
//!     columns,
//!     &options_from_pairs([("value.format", "json"), ("scan.bounded.mode", "latest-offset")]),
//! )
//! .await?;
//! let ctx = session_context();
//! ctx.register_table("orders", Arc::new(orders))?;
//! ctx.sql("SELECT _partition, count(*), sum(amount) FROM orders GROUP BY _partition")
//!     .await?
//!     .show()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The crate's layout follows its concepts: `connector` (the seam) and `connectors/` (one
//! folder per broker), `source` (log and queue sources, raw batches), `table` (the provider,
//! its factory and schema), `scan` (pushdown, planning, the exec and its per-partition
//! stream), `format`, `sink`, `checkpoint`, `query` (continuous queries), `options` (declared
//! once) and `cli`.

pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod connector;
pub mod connectors;
#[cfg(feature = "distributed")]
pub mod distributed;
mod error;
pub mod format;
pub mod live;
pub mod observe;
pub(crate) mod options;
pub mod query;
pub(crate) mod scan;
mod secret;
mod session;
pub(crate) mod sink;
pub mod source;
pub(crate) mod table;
mod tls;
pub mod windows;

pub use error::{Result, TopicsError, topics_error};
pub use format::registry::{SchemaRegistry, SchemaType};
pub use format::{ErrorPolicy, FormatKind, TableFormats};
pub use options::{
    BoundedMode, MinPartitions, OnDeleted, OptionBag, OptionDecl, ScanOptions, StartupMode,
    TopicOptions, options_from_pairs,
};
pub use query::{BatchProgress, ContinuousQuery, Limits, RunOptions, Trigger};
pub use scan::{PartitionScan, ScanInput, ScanStatistics, TimestampOrder, TopicScanExec};
pub use session::{
    BoundTheScanHint, STREAMING_SETTINGS, session_context, session_state_builder, streaming_config,
};
pub use sink::{
    BatchSink, BatchToWrite, BatchWritten, MessageWriter, OutgoingMessage, Recovery, SinkCommitted,
};
pub use source::{LogSet, TopicPartition, TopicSelector};
#[allow(deprecated)]
pub use table::StreamingTableProvider;
pub use table::{
    MetadataColumn, ScanOrigin, TableDefinition, TableOrigin, TopicTable, TopicTableFactory,
    complete_insert_columns,
};

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
