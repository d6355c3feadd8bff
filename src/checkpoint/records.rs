//! The checkpoint's files: small, versioned JSON documents a person can read.
//!
//! ```text
//! <checkpoint>/metadata                  which query owns the checkpoint
//! <checkpoint>/offsets/00000000000000000007.json   batch 7: ranges to read, sink positions
//! <checkpoint>/commits/00000000000000000007.json   batch 7 is in the sink (and its state)
//! <checkpoint>/state/00000000000000000007-<runner>.arrow  aggregate state after batch 7 (Arrow IPC)
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::source::OffsetRange;

/// The value of every file's `format` field.
pub const FORMAT: &str = "datafusion-topics checkpoint";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// `metadata`: the query that owns the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Always [`FORMAT`].
    pub format: String,
    /// File format version.
    pub version: u32,
    /// Stable id of the query, part of every identity the sinks write.
    pub query_id: String,
    /// The `INSERT INTO … SELECT …` statement, as written.
    pub query: String,
    /// When the checkpoint was created (ms since the epoch).
    pub created_ms: i64,
}

/// `offsets/N`: what batch N reads, written before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetsRecord {
    /// Always [`FORMAT`].
    pub format: String,
    /// File format version.
    pub version: u32,
    /// Batch number.
    pub batch: u64,
    /// The runner that planned the batch (a random id per process).
    pub runner: String,
    /// When the batch was planned (ms since the epoch).
    pub planned_ms: i64,
    /// Ranges per source table.
    pub sources: BTreeMap<String, SourceRanges>,
    /// The sink's positions before the batch wrote anything.
    pub sink: SinkMarks,
    /// The watermark before the batch (left by the previous one): rows with an older event
    /// time are late in this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
    /// Partitions that were idle when the batch was planned (table → partitions): they do not
    /// hold the batch's watermark back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub idle: BTreeMap<String, Vec<i32>>,
}

/// The ranges one source table reads in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRanges {
    /// `kafka` or `nats`.
    pub kind: String,
    /// Topic or stream.
    pub topic: String,
    /// Partition → `[start, end)` (always closed).
    pub partitions: BTreeMap<i32, OffsetRange>,
    /// Partition → offsets skipped because retention removed them (only with
    /// `scan.fail-on-data-loss` = false).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<i32, i64>,
    /// For a work-queue table (read through a durable consumer, not by ranges): what the
    /// batch pulls. `partitions` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_queue: Option<QueueBatch>,
    /// Partition → its high watermark when the batch was planned: the batch's lag is how far
    /// each range's end is behind it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub high: BTreeMap<i32, i64>,
}

impl SourceRanges {
    /// Offsets between the ranges' ends and the high watermarks when the batch was planned.
    pub fn lag(&self) -> i64 {
        self.partitions
            .iter()
            .filter_map(|(p, r)| self.high.get(p).map(|h| (h - r.end_or_max()).max(0)))
            .sum()
    }
}

/// What one batch pulls from a work queue: whatever is pending when it runs, capped per reader.
/// A replay cannot read the same messages again (they went back to the queue), so such a
/// batch is abandoned on restart and its messages are read by a later one: at-least-once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueBatch {
    /// The durable consumer.
    pub consumer: String,
    /// Messages pending when the batch was planned.
    pub pending: u64,
    /// At most this many messages per reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u64>,
}

/// Where the sink stood before a batch: for topic sinks, each output partition's next offset,
/// from which recovery reads back what an interrupted batch already wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkMarks {
    /// `kafka`, `nats` or `files`.
    pub kind: String,
    /// Output partition → next offset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<i32, i64>,
}

/// `commits/N`: batch N is in the sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Always [`FORMAT`].
    pub format: String,
    /// File format version.
    pub version: u32,
    /// Batch number.
    pub batch: u64,
    /// The runner that committed it.
    pub runner: String,
    /// Rows the batch produced.
    pub rows: u64,
    /// Rows found already written by an interrupted earlier attempt (not written again).
    pub already_written: u64,
    /// When it was committed (ms since the epoch).
    pub committed_ms: i64,
    /// True when the batch read a work queue and was interrupted before its commit: it is
    /// not replayed, its messages return to the queue, and the next batch re-reads its
    /// offset ranges (so rows it already wrote may be written again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abandoned: bool,
    /// For a stateful query: its state and watermark after the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateRecord>,
}

/// A stateful query's state after a batch: the file holding its aggregate state, and what the
/// watermark needs to go on from here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// The state file, relative to the checkpoint (`state/<batch>-<runner>.arrow`).
    pub file: String,
    /// Groups (windows and keys) kept open.
    pub rows: u64,
    /// The file's size.
    pub bytes: u64,
    /// The watermark after the batch (ms since the epoch), once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
    /// The latest event time each partition delivered so far (table → partition → ms).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_time: BTreeMap<String, BTreeMap<i32, i64>>,
    /// When each partition last delivered rows (table → partition → ms, wall clock at
    /// planning), for idleness.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_active: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Rows the batch found late.
    #[serde(default)]
    pub late_rows: u64,
    /// Rows the batch emitted (closed windows, or changed keys).
    #[serde(default)]
    pub emitted: u64,
}
