//! What one micro-batch did, for progress lines and callers of the library API.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::checkpoint::{SourceRanges, StateRecord};
use crate::source::TopicPartition;

/// What a batch read from one source topic, counted by its scans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceRead {
    /// Messages read.
    pub messages: u64,
    /// Key, value and header bytes read.
    pub bytes: u64,
    /// Messages that could not be decoded.
    pub bad: u64,
    /// Per (topic, partition), the newest message timestamp read (ms since the epoch).
    pub newest_ms: BTreeMap<TopicPartition, i64>,
}

/// A stateful query's state after a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateProgress {
    /// Groups (windows and keys) kept open.
    pub groups: u64,
    /// Size of the state file.
    pub bytes: u64,
    /// The watermark after the batch (ms since the epoch).
    pub watermark: Option<i64>,
    /// Rows the batch found late.
    pub late_rows: u64,
    /// Groups the batch emitted.
    pub emitted: u64,
}

impl From<&StateRecord> for StateProgress {
    fn from(s: &StateRecord) -> Self {
        Self {
            groups: s.rows,
            bytes: s.bytes,
            watermark: s.watermark,
            late_rows: s.late_rows,
            emitted: s.emitted,
        }
    }
}

/// What one batch did. Serialized (`--progress json`), durations are in milliseconds
/// (`checkpoint_ms`, `elapsed_ms`).
#[derive(Debug, Clone, Serialize)]
pub struct BatchProgress {
    /// Batch number.
    pub batch: u64,
    /// True when this was the replay of a batch an earlier run did not commit.
    pub replayed: bool,
    /// The ranges read, per source table.
    pub sources: BTreeMap<String, SourceRanges>,
    /// Rows written to the sink (including those an earlier attempt already wrote).
    pub rows: u64,
    /// Rows an interrupted earlier attempt had already written.
    pub already_written: u64,
    /// Tombstones written for keys that left the result.
    pub tombstones: u64,
    /// Offsets still behind the high watermarks when the batch was planned (for work queues,
    /// the messages pending).
    pub lag: i64,
    /// Messages each work-queue table delivered to the batch (acknowledged after its commit).
    pub queue_reads: BTreeMap<String, u64>,
    /// A stateful query's state after the batch.
    pub state: Option<StateProgress>,
    /// What the batch's scans read, per source topic.
    pub read: BTreeMap<String, SourceRead>,
    /// Time the batch spent writing its checkpoint after the sink had its rows: the state
    /// file (stateful queries) and `commits/N`.
    #[serde(rename = "checkpoint_ms", serialize_with = "millis")]
    pub checkpoint_time: Duration,
    /// Time the batch took.
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl fmt::Display for BatchProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch {}", self.batch)?;
        if self.replayed {
            f.write_str(" (replay)")?;
        }
        f.write_str(" ")?;
        write_ranges(f, &self.sources, &self.queue_reads)?;
        write!(f, " rows={}", self.rows)?;
        if self.tombstones > 0 {
            write!(f, " tombstones={}", self.tombstones)?;
        }
        if self.already_written > 0 {
            write!(f, " already_written={}", self.already_written)?;
        }
        if let Some(state) = &self.state {
            write!(
                f,
                " emitted={} state={} groups ({} bytes)",
                state.emitted, state.groups, state.bytes
            )?;
            match state.watermark {
                Some(w) => write!(f, " watermark={}", format_ms(w))?,
                None => f.write_str(" watermark=none")?,
            }
            if state.late_rows > 0 {
                write!(f, " late={}", state.late_rows)?;
            }
        }
        write!(
            f,
            " lag={} in {} (checkpoint {})",
            self.lag,
            short(self.elapsed),
            short(self.checkpoint_time)
        )
    }
}

/// Each table's ranges as progress lines show them: `orders[0:[0,10) 1:[0,12)]`, a work
/// queue as `jobs[queue C: N read]`.
fn write_ranges(
    f: &mut impl fmt::Write,
    sources: &BTreeMap<String, SourceRanges>,
    queue_reads: &BTreeMap<String, u64>,
) -> fmt::Result {
    for (i, (table, s)) in sources.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        if let Some(q) = &s.work_queue {
            let read = queue_reads.get(table).copied().unwrap_or(0);
            write!(f, "{table}[queue {}: {read} read]", q.consumer)?;
            continue;
        }
        write!(f, "{table}[")?;
        for (i, (p, r)) in s.partitions.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            // A table over one topic shows partition numbers; over several, topic/partition.
            if *p.topic == *s.topic {
                write!(f, "{}:[{},{})", p.partition, r.start, r.end_or_max())?;
            } else {
                write!(f, "{p}:[{},{})", r.start, r.end_or_max())?;
            }
        }
        f.write_str("]")?;
    }
    Ok(())
}

/// A batch's ranges as progress lines show them (work queues without their read counts).
pub fn ranges_text(sources: &BTreeMap<String, SourceRanges>) -> String {
    let mut out = String::new();
    let _ = write_ranges(&mut out, sources, &BTreeMap::new());
    out
}

/// A duration as people read it in a log line: `41ms`, `2.3ms`, `2.31s`.
fn short(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

/// An instant in ms since the epoch as RFC 3339 (UTC).
fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
