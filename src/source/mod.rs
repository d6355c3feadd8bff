//! The source abstraction: partitions, watermarks, timestamp lookups and range reads.
//!
//! A source reads a half-open offset range `[start, end)` of one partition (or an open range
//! `[start, ∞)`) into columnar [`RawBatch`]es. Reading the same closed range twice yields the
//! same messages, or a [`TopicsError::DataLoss`] when retention removed some of them; that
//! determinism is what checkpoints and exactly-once rely on.

pub mod kafka;
pub mod nats;
mod raw_batch;
mod reader_task;
mod work_queue;

use std::fmt::{self, Debug, Display};

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::{Result, TopicsError};

pub use raw_batch::{ColumnNeeds, RawBatch, RawBatchBuilder, headers_data_type};
pub use reader_task::running_readers;
pub(crate) use reader_task::{RunningGuard, batch_channel, receiver_stream};
pub use work_queue::{AckSender, DeferredAcks, WorkQueue};

/// A half-open range of offsets `[start, end)` in one partition; `end = None` follows the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetRange {
    /// First offset to read.
    pub start: i64,
    /// Exclusive end, or `None` for an open (unbounded) range.
    pub end: Option<i64>,
}

impl OffsetRange {
    /// A closed range `[start, end)`.
    pub fn closed(start: i64, end: i64) -> Self {
        Self {
            start,
            end: Some(end),
        }
    }

    /// An open range `[start, ∞)`.
    pub fn open(start: i64) -> Self {
        Self { start, end: None }
    }

    /// For work-queue sources: read until nothing is pending (a bounded read of a queue,
    /// which has no offsets to end at).
    pub fn drain() -> Self {
        Self::closed(0, i64::MAX)
    }

    /// True when the range is closed and holds no offset.
    pub fn is_empty(&self) -> bool {
        matches!(self.end, Some(end) if end <= self.start)
    }
}

impl Display for OffsetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(i64::MAX) => f.write_str("until drained"),
            Some(end) => write!(f, "[{}, {})", self.start, end),
            None => write!(f, "[{}, ∞)", self.start),
        }
    }
}

/// What a partition holds: the first available offset and the next offset to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// First available offset (the low watermark).
    pub low: i64,
    /// Next offset to be written (the high watermark).
    pub high: i64,
}

/// How a partition read should behave beyond the range itself.
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest {
    /// Which raw columns to build; the rest are never materialised.
    pub needs: ColumnNeeds,
    /// Maximum rows per emitted batch.
    pub batch_rows: usize,
    /// Stop after this many messages (LIMIT pushdown).
    pub max_messages: Option<u64>,
    /// Fail on offsets removed while reading (true), or skip and count them in
    /// [`RawBatch::skipped`].
    pub fail_on_data_loss: bool,
}

/// A stream of raw batches read from one partition.
pub type RawBatchStream = BoxStream<'static, Result<RawBatch>>;

/// A log-structured source (a Kafka topic, a NATS JetStream stream) read by offset ranges.
///
/// Implementations hold connection settings only; connections are opened by the calls
/// themselves, so a scan plan holding a source stays plain data.
#[async_trait]
pub trait Source: Debug + Display + Send + Sync {
    /// Short kind name: `kafka` or `nats`.
    fn kind(&self) -> &'static str;

    /// The topic (Kafka) or stream (NATS) name, shown as `_topic`.
    fn topic(&self) -> &str;

    /// The `_topic` value of a partition's rows: the topic, or for sources whose partitions
    /// are separate streams, that partition's stream.
    fn topic_of(&self, partition: i32) -> String {
        let _ = partition;
        self.topic().to_string()
    }

    /// The partition ids, ascending; fails with [`TopicsError::UnknownTopic`] when it does not exist.
    async fn partitions(&self) -> Result<Vec<i32>>;

    /// Low and high watermarks of the given partitions, in the same order.
    async fn watermarks(&self, partitions: &[i32]) -> Result<Vec<Watermarks>>;

    /// For each partition, the first offset whose timestamp is at or after `timestamp_ms`,
    /// or the high watermark when no such message exists yet.
    async fn offsets_for_timestamp(
        &self,
        partitions: &[i32],
        timestamp_ms: i64,
    ) -> Result<Vec<i64>>;

    /// True when timestamps never decrease with offsets (log-append time), which makes
    /// `_timestamp` filters exact. Sources that cannot tell answer false.
    async fn timestamps_ordered(&self) -> Result<bool> {
        Ok(false)
    }

    /// Committed offsets of a consumer group for the given partitions (`None` where none).
    async fn committed_offsets(&self, group: &str, partitions: &[i32]) -> Result<Vec<Option<i64>>> {
        let _ = (group, partitions);
        Err(TopicsError::Client {
            kind: self.kind(),
            action: format!("reading committed offsets of '{}'", self.topic()),
            detail: "this source has no consumer-group offsets".into(),
        })
    }

    /// Commits `offsets` (partition → next offset to read) for a consumer group, so lag
    /// dashboards see a continuous query's progress. Never read back for recovery.
    async fn commit_offsets(&self, group: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let _ = (group, offsets);
        Err(TopicsError::Client {
            kind: self.kind(),
            action: format!("committing offsets of '{}'", self.topic()),
            detail: "this source has no consumer groups".into(),
        })
    }

    /// The shared cursor behind this source when it is read as a work queue (its partitions
    /// are then readers, not offset ranges); `None` for sources read by offset ranges.
    fn work_queue(&self) -> Option<&dyn WorkQueue> {
        None
    }

    /// Reads `range` of `partition`. A closed range ends after its last offset; an open range
    /// follows the log until the stream is dropped. Dropping the stream releases the reader.
    fn read(&self, partition: i32, range: OffsetRange, request: ReadRequest) -> RawBatchStream;
}
