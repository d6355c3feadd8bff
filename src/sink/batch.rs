//! Sinks of the continuous-query runner: each writes one micro-batch so that writing it again
//! after a crash leaves the output as if it had been written once.

use std::collections::BTreeMap;

use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;

use crate::checkpoint::{SinkMarks, SourceRanges};
use crate::error::Result;
use crate::source::TopicPartition;

/// The micro-batch a sink is asked to write: which query and batch, the offset ranges the batch
/// read per source table, and whether an earlier attempt may have written part of it. A sink
/// that commits its rows in a transaction of its own stores `sources` (or their ends) in the
/// same transaction, and reports them from [`BatchSink::committed`].
#[derive(Debug, Clone, Copy)]
pub struct BatchToWrite<'a> {
    /// The query's id (from the checkpoint's metadata; a new checkpoint is a new id).
    pub query_id: &'a str,
    /// The batch number; batches are numbered from 0 without gaps within one checkpoint.
    pub batch: u64,
    /// Per source table (as the query names it): its topic and the `[start, end)` offset range
    /// read from each partition.
    pub sources: &'a BTreeMap<String, SourceRanges>,
    /// The sink's position before the batch, as [`BatchSink::marks`] gave it.
    pub marks: &'a SinkMarks,
    /// An earlier attempt at this batch may have written part of it.
    pub replay: bool,
}

/// What a sink that keeps its own positions last committed: the batch number and, per source
/// table and partition, the end offset (exclusive) the batch read to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkCommitted {
    /// The last batch the sink committed.
    pub batch: u64,
    /// Source table → (topic, partition) → end offset (the next batch starts there).
    pub ends: BTreeMap<String, BTreeMap<TopicPartition, i64>>,
}

impl SinkCommitted {
    /// The ends of `sources` (a batch's ranges): what a sink records for the batch.
    pub fn ends_of(batch: u64, sources: &BTreeMap<String, SourceRanges>) -> Self {
        let ends = sources
            .iter()
            .map(|(table, ranges)| {
                let ends = ranges
                    .partitions
                    .iter()
                    .map(|(p, r)| (p.clone(), r.end_or_max()))
                    .collect();
                (table.clone(), ends)
            })
            .collect();
        Self { batch, ends }
    }
}

/// What writing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchWritten {
    /// Rows the batch produced.
    pub rows: u64,
    /// Rows an interrupted earlier attempt had already written (not written again).
    pub already_written: u64,
    /// Tombstones written for keys that left the result (update output with a HAVING).
    pub tombstones: u64,
}

/// A sink that writes micro-batches exactly once.
#[async_trait]
pub trait BatchSink: Send + Sync + std::fmt::Debug {
    /// Where the rows go, for progress lines and errors.
    fn describe(&self) -> String;

    /// The sink's position before a batch writes anything (recorded in `offsets/N`), from
    /// which an idempotent sink finds what an interrupted attempt wrote. Sinks that write each
    /// batch in one transaction need none.
    async fn marks(&self) -> Result<SinkMarks> {
        Ok(SinkMarks::default())
    }

    /// Whether this sink stores each batch's number and ranges in the same transaction as
    /// its rows, and reports them from [`committed`](Self::committed). The runner then checks
    /// them against the checkpoint on start: a batch the sink committed is never written
    /// again, and a sink ahead of the checkpoint (or a new checkpoint) gives the positions
    /// to start from. See docs/your-own-sink.md.
    fn keeps_positions(&self) -> bool {
        false
    }

    /// The last batch this sink committed and the ranges it covered; `None` when it has
    /// committed none. Only asked when [`keeps_positions`](Self::keeps_positions).
    async fn committed(&self) -> Result<Option<SinkCommitted>> {
        Ok(None)
    }

    /// What this sink receives from a query in update output mode: the groups each batch
    /// changed (an upsert stream, the default), or every group after each batch.
    fn update_output(&self) -> crate::query::UpdateOutput {
        crate::query::UpdateOutput::Changes
    }

    /// Whether this sink can say that a row left the result: a topic table with a `_key`
    /// column writes a tombstone (a message with the key and no value) for it.
    fn writes_tombstones(&self) -> bool {
        false
    }

    /// Writes `batch` (its number, ranges, marks and whether it is a replay) with its `rows`.
    /// `retracted` are rows the output held before this batch for groups the batch changed
    /// (update output with a HAVING): a sink that [writes tombstones](Self::writes_tombstones)
    /// deletes those whose key is not among `rows`; others receive none.
    async fn write_batch(
        &self,
        batch: &BatchToWrite<'_>,
        rows: SendableRecordBatchStream,
        retracted: Vec<arrow::array::RecordBatch>,
    ) -> Result<BatchWritten>;
}
