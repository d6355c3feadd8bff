//! Sinks of the continuous-query runner: each writes one micro-batch so that writing it again
//! after a crash leaves the output as if it had been written once.

use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;

use crate::checkpoint::SinkMarks;
use crate::error::Result;

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

    /// The sink's position before a batch writes anything (recorded in `offsets/N`).
    async fn marks(&self) -> Result<SinkMarks>;

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

    /// Writes batch `batch` of query `query_id`. `marks` are those recorded before the batch;
    /// `replay` says an earlier attempt may have written part of it. `retracted` are rows the
    /// output held before this batch for groups the batch changed (update output with a
    /// HAVING): a sink that [writes tombstones](Self::writes_tombstones) deletes those whose
    /// key is not among `rows`; others receive none.
    async fn write_batch(
        &self,
        query_id: &str,
        batch: u64,
        marks: &SinkMarks,
        replay: bool,
        rows: SendableRecordBatchStream,
        retracted: Vec<arrow::array::RecordBatch>,
    ) -> Result<BatchWritten>;
}
