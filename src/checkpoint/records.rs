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

use crate::source::{OffsetRange, TopicPartition};

/// The value of every file's `format` field.
pub const FORMAT: &str = "datafusion-topics checkpoint";
/// The version this build writes. Version 2 keys every per-partition figure by
/// `topic/partition` (a table may read several topics); version 1 files (keyed by partition
/// number, one topic per table) are read through [`migrate_offsets_v1`] and
/// [`migrate_commit_v1`].
pub const VERSION: u32 = 2;
/// The oldest version this build reads.
pub const OLDEST_READABLE: u32 = 1;

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
    pub idle: BTreeMap<String, Vec<TopicPartition>>,
}

/// The ranges one source table reads in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRanges {
    /// `kafka` or `nats`.
    pub kind: String,
    /// Topic or stream; for a table over several, their list or pattern.
    pub topic: String,
    /// (topic, partition) → `[start, end)` (always closed).
    pub partitions: BTreeMap<TopicPartition, OffsetRange>,
    /// (topic, partition) → offsets skipped because retention removed them (only with
    /// `scan.fail-on-data-loss` = false).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<TopicPartition, i64>,
    /// For a work-queue table (read through a durable consumer, not by ranges): what the
    /// batch pulls. `partitions` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_queue: Option<QueueBatch>,
    /// (topic, partition) → its high watermark when the batch was planned: the batch's lag is
    /// how far each range's end is behind it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub high: BTreeMap<TopicPartition, i64>,
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
    pub event_time: BTreeMap<String, BTreeMap<TopicPartition, i64>>,
    /// When each partition last delivered rows (table → partition → ms, wall clock at
    /// planning), for idleness.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_active: BTreeMap<String, BTreeMap<TopicPartition, i64>>,
    /// Rows the batch found late.
    #[serde(default)]
    pub late_rows: u64,
    /// Rows the batch emitted (closed windows, or changed keys).
    #[serde(default)]
    pub emitted: u64,
}

/// Rewrites a version-1 `offsets/N` document as version 2: each source's partition keys
/// (`"3"`) become `topic/partition` keys (`"orders/3"`) with the source's one topic, and so do
/// the idle partitions.
pub fn migrate_offsets_v1(value: &mut serde_json::Value) {
    let topics = source_topics(value);
    if let Some(sources) = value.get_mut("sources").and_then(|s| s.as_object_mut()) {
        for (table, source) in sources.iter_mut() {
            let topic = topics.get(table).cloned().unwrap_or_default();
            for field in ["partitions", "skipped", "high"] {
                if let Some(map) = source.get_mut(field) {
                    rekey(map, &topic);
                }
            }
        }
    }
    if let Some(idle) = value.get_mut("idle").and_then(|i| i.as_object_mut()) {
        for (table, list) in idle.iter_mut() {
            let topic = topics.get(table).cloned().unwrap_or_default();
            if let Some(items) = list.as_array_mut() {
                for item in items.iter_mut() {
                    if let Some(p) = item.as_i64() {
                        *item = serde_json::Value::String(format!("{topic}/{p}"));
                    }
                }
            }
        }
    }
    value["version"] = serde_json::Value::from(VERSION);
}

/// Rewrites a version-1 `commits/N` document as version 2, given the topic of each table
/// (from the batch's `offsets/N`, see [`source_topics`]).
pub fn migrate_commit_v1(value: &mut serde_json::Value, topics: &BTreeMap<String, String>) {
    if let Some(state) = value.get_mut("state") {
        for field in ["event_time", "last_active"] {
            if let Some(tables) = state.get_mut(field).and_then(|t| t.as_object_mut()) {
                for (table, map) in tables.iter_mut() {
                    let topic = topics.get(table).cloned().unwrap_or_else(|| table.clone());
                    rekey(map, &topic);
                }
            }
        }
    }
    value["version"] = serde_json::Value::from(VERSION);
}

/// Table → topic of an `offsets/N` document (either version).
pub fn source_topics(offsets: &serde_json::Value) -> BTreeMap<String, String> {
    offsets
        .get("sources")
        .and_then(|s| s.as_object())
        .map(|sources| {
            sources
                .iter()
                .filter_map(|(table, s)| {
                    let topic = s.get("topic")?.as_str()?;
                    Some((table.clone(), topic.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `{"3": x}` → `{"topic/3": x}`.
fn rekey(map: &mut serde_json::Value, topic: &str) {
    if let Some(object) = map.as_object_mut() {
        let old = std::mem::take(object);
        for (k, v) in old {
            let key = if k.parse::<i32>().is_ok() {
                format!("{topic}/{k}")
            } else {
                k
            };
            object.insert(key, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 batch as 0.2 wrote it: partition numbers as keys.
    const V1_OFFSETS: &str = r#"{
      "format": "datafusion-topics checkpoint", "version": 1, "batch": 7, "runner": "r",
      "planned_ms": 1, "sink": {"kind": "kafka"},
      "sources": {"orders": {"kind": "kafka", "topic": "orders",
        "partitions": {"0": {"start": 0, "end": 10}, "1": {"start": 5, "end": 5}},
        "skipped": {"1": 2}, "high": {"0": 12, "1": 5}}},
      "watermark": 100, "idle": {"orders": [1]}
    }"#;

    const V1_COMMIT: &str = r#"{
      "format": "datafusion-topics checkpoint", "version": 1, "batch": 7, "runner": "r",
      "rows": 3, "already_written": 0, "committed_ms": 2,
      "state": {"file": "state/7-r.arrow", "rows": 1, "bytes": 10, "watermark": 100,
        "event_time": {"orders": {"0": 150}}, "last_active": {"orders": {"0": 5, "1": 4}}}
    }"#;

    #[test]
    fn version_1_files_read_as_version_2() {
        let mut offsets: serde_json::Value = serde_json::from_str(V1_OFFSETS).unwrap();
        let topics = source_topics(&offsets);
        migrate_offsets_v1(&mut offsets);
        let record: OffsetsRecord = serde_json::from_value(offsets).unwrap();
        assert_eq!(record.version, VERSION);
        let orders = &record.sources["orders"];
        let p0 = TopicPartition::new("orders", 0);
        let p1 = TopicPartition::new("orders", 1);
        assert_eq!(orders.partitions[&p0], OffsetRange::closed(0, 10));
        assert_eq!(orders.skipped[&p1], 2);
        assert_eq!(orders.high[&p0], 12);
        assert_eq!(record.idle["orders"], vec![p1.clone()]);
        assert_eq!(orders.lag(), 2);
        let mut commit: serde_json::Value = serde_json::from_str(V1_COMMIT).unwrap();
        migrate_commit_v1(&mut commit, &topics);
        let commit: CommitRecord = serde_json::from_value(commit).unwrap();
        let state = commit.state.unwrap();
        assert_eq!(state.event_time["orders"][&p0], 150);
        assert_eq!(state.last_active["orders"][&p1], 4);
        // Written back, every key names its topic.
        let json = serde_json::to_string(&record.sources).unwrap();
        assert!(
            json.contains(r#""orders/0":{"start":0,"end":10}"#),
            "{json}"
        );
    }
}
