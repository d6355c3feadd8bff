//! The two ways a table's messages are read, and the columnar batches readers produce.
//!
//! A [`LogSource`] (a Kafka topic, a NATS JetStream stream read by sequence) reads a half-open
//! offset range `[start, end)` of one partition, or an open range `[start, ∞)`. Reading the
//! same closed range twice yields the same messages, or a [`TopicsError::DataLoss`] when
//! retention removed some of them: that determinism is what checkpoints and exactly-once rely
//! on. A [`QueueSource`] (a NATS work queue) hands each message to one of several readers of a
//! shared cursor and learns when it was used through acknowledgements: at-least-once, no
//! offsets. A table holds one or the other ([`TableSource`]), matched once where it is planned.
//!
//! [`TopicsError::DataLoss`]: crate::TopicsError::DataLoss

mod log_set;
mod queue;
mod range;
mod raw_batch;
mod reader_task;
mod topic_partition;

use std::fmt::{Debug, Display};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::{Result, TopicsError};

pub use log_set::{LogCatalog, LogSet, TopicSelector, parse_topic_pattern};
pub use queue::{AckSender, DeferredAcks, QueueRead};
pub use range::{OffsetRange, Watermarks};
pub use raw_batch::{ColumnNeeds, RawBatch, RawBatchBuilder, headers_data_type};
pub use reader_task::running_readers;
pub use topic_partition::TopicPartition;
// The broker readers feed channels; a build without them uses only the guard.
#[allow(unused_imports)]
pub(crate) use reader_task::{RunningGuard, batch_channel, receiver_stream};

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

/// A stream of raw batches read from one partition (or one queue reader).
pub type RawBatchStream = BoxStream<'static, Result<RawBatch>>;

/// A log read by offset ranges: a Kafka topic, a NATS JetStream stream (or a family of them).
///
/// Implementations hold connection settings only; connections are opened by the calls
/// themselves (or lazily, once), so a scan plan holding a source stays plain data.
#[async_trait]
pub trait LogSource: Debug + Display + Send + Sync {
    /// The connector's name, lower case (`kafka`, `nats`, `memory`), for messages.
    fn kind(&self) -> &'static str;

    /// The topic (or stream) name, shown as `_topic`.
    fn topic(&self) -> &str;

    /// The `_topic` value of a partition's rows: the topic, or for sources whose partitions
    /// are separate streams, that partition's stream.
    fn topic_of(&self, partition: i32) -> String {
        let _ = partition;
        self.topic().to_string()
    }

    /// The partition ids, ascending; fails with [`TopicsError::UnknownTopic`] when the topic
    /// does not exist.
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

    /// Reads `range` of `partition`. A closed range ends after its last offset (offsets that
    /// hold no message, such as transaction markers, end it too); an open range follows the
    /// log until the stream is dropped. Dropping the stream releases the reader.
    fn read(&self, partition: i32, range: OffsetRange, request: ReadRequest) -> RawBatchStream;
}

/// A shared, acknowledged cursor read by several readers (a work queue): every message goes
/// to one reader and is acknowledged once used; one that is not acknowledged in time returns
/// to the queue. At-least-once; no offsets to plan by.
#[async_trait]
pub trait QueueSource: Debug + Display + Send + Sync {
    /// The connector's name, lower case, for messages.
    fn kind(&self) -> &'static str;

    /// The topic (or stream) name, shown as `_topic`.
    fn topic(&self) -> &str;

    /// The name of the shared cursor (for NATS, the durable consumer).
    fn cursor(&self) -> &str;

    /// The reader ids (one output partition each); checks that the queue exists (creating
    /// its cursor when the table says so).
    async fn readers(&self) -> Result<Vec<i32>>;

    /// Messages not yet acknowledged: waiting for delivery, or delivered and waiting for
    /// their acknowledgement (they return to the queue when their ack wait passes).
    async fn pending(&self) -> Result<u64>;

    /// Reads as reader `reader`: until the queue has nothing pending (`read.drain`) or
    /// following it, at most `read.max_messages`, acknowledging as `read.acks` says.
    fn read(&self, reader: i32, read: QueueRead, request: ReadRequest) -> RawBatchStream;
}

/// What a table reads: logs by offset ranges, or a queue through a shared cursor.
#[derive(Debug, Clone)]
pub enum TableSource {
    /// Offset ranges of one log or several (a list of topics, a pattern).
    Log(LogSet),
    /// Readers of a work queue.
    Queue(Arc<dyn QueueSource>),
}

impl TableSource {
    /// The connector's name, lower case.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Log(s) => s.kind(),
            Self::Queue(q) => q.kind(),
        }
    }

    /// The topic (or stream) name; for a table over several topics, their list or pattern.
    pub fn topic(&self) -> &str {
        match self {
            Self::Log(s) => s.label(),
            Self::Queue(q) => q.topic(),
        }
    }

    /// The logs, when the table reads by offset ranges.
    pub fn log(&self) -> Option<&LogSet> {
        match self {
            Self::Log(s) => Some(s),
            Self::Queue(_) => None,
        }
    }

    /// The queue, when the table reads one.
    pub fn queue(&self) -> Option<&Arc<dyn QueueSource>> {
        match self {
            Self::Log(_) => None,
            Self::Queue(q) => Some(q),
        }
    }

    /// Checks that the topic exists (and for a queue, its cursor).
    pub async fn check(&self) -> Result<()> {
        match self {
            Self::Log(s) => s.check().await,
            Self::Queue(q) => q.readers().await.map(|_| ()),
        }
    }
}

impl Display for TableSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Log(s) => std::fmt::Display::fmt(s, f),
            Self::Queue(q) => Display::fmt(q, f),
        }
    }
}
