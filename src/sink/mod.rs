//! Writing rows to topics: `INSERT INTO` a Kafka or NATS table encodes each row in the
//! table's value format and produces it, at least once (a failed statement may have written
//! some rows; rerunning it writes them again). The continuous-query runner builds its
//! exactly-once sinks on the same encoder and writers.

mod batch;
mod dead_letter;
mod encode;
pub(crate) mod files;
pub(crate) mod identity;
mod late_rows;
#[cfg(test)]
mod tests;
mod topic_batches;

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::datasource::sink::DataSink;
use datafusion::error::Result as DFResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;

pub use batch::{BatchSink, BatchToWrite, BatchWritten, SinkCommitted};
pub use dead_letter::DeadLetters;
pub use encode::{OutgoingMessage, RowEncoder};
pub use files::{FileBatchSink, FileFormat};
pub use late_rows::LateRows;
pub use topic_batches::TopicBatchSink;

/// The header that carries a message's exactly-once identity on brokers without a native
/// one (Kafka, memory topics); NATS uses `Nats-Msg-Id`, which its streams deduplicate on.
pub const IDENTITY_HEADER: &str = "dft-id";

use crate::error::Result;

/// Something that writes messages to one topic or stream and waits until they are stored.
#[async_trait]
pub trait MessageWriter: Send + Sync + fmt::Debug {
    /// Where the messages go, for display and errors.
    fn target(&self) -> String;

    /// The header that carries a message's exactly-once identity (`query-batch-hash-n`).
    fn identity_header(&self) -> &'static str;

    /// How a replayed micro-batch finds what an interrupted attempt already wrote.
    fn recovery(&self) -> Recovery;

    /// A writer for continuous-query batches (for Kafka: ordered, never retried).
    fn for_batches(&self) -> Arc<dyn MessageWriter>;

    /// Writes `messages` and returns once the broker acknowledged every one.
    async fn write(&self, messages: &[OutgoingMessage]) -> Result<u64>;

    /// Gets ready to write batches of query `query_id`. A transactional writer fences any
    /// earlier writer of the query and aborts the transaction it left open, so what is read
    /// back afterwards is only what committed.
    async fn prepare_batches(&self, query_id: &str) -> Result<()> {
        let _ = query_id;
        Ok(())
    }

    /// Writes one micro-batch of query `query_id`: in one transaction where the writer has
    /// them (all of it becomes visible to read-committed consumers, or none), else as
    /// [`Self::write`].
    async fn write_batch(&self, query_id: &str, messages: &[OutgoingMessage]) -> Result<u64> {
        let _ = query_id;
        self.write(messages).await
    }
}

/// How a replayed micro-batch finds the messages an interrupted attempt already wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Every message carries an identity header; the replay reads the identities written
    /// since the batch began and skips those messages. Safe with other writers on the same
    /// topic. Used for NATS, where the identity is also the `Nats-Msg-Id` the server
    /// deduplicates on.
    IdentityHeader,
    /// Each partition receives the batch's messages in a deterministic order, one request at
    /// a time; the replay counts what each output partition gained since the batch began and
    /// skips that many. Requires that only the query writes to the output topic while it
    /// runs (checked: a partition that gained more than the batch writes is an error). Used
    /// for Kafka: no per-message header, so it costs the brokers nothing extra.
    Positional,
    /// Each batch is one Kafka transaction (the brokers must support them), and every
    /// message carries an identity header as with [`Recovery::IdentityHeader`]. A restart
    /// first fences the interrupted writer and aborts its open transaction, then reads back
    /// (read-committed) which of the batch's messages committed: all of them or none.
    /// Read-committed consumers of the output never see part of a batch, nor a batch twice.
    Transactional,
}

/// The `DataSink` behind `INSERT INTO` a topic table.
#[derive(Debug)]
pub struct TopicSink {
    schema: SchemaRef,
    encoder: RowEncoder,
    writer: Arc<dyn MessageWriter>,
}

impl TopicSink {
    /// A sink for rows of `schema`, encoded by `encoder` and written by `writer`.
    pub fn new(schema: SchemaRef, encoder: RowEncoder, writer: Arc<dyn MessageWriter>) -> Self {
        Self {
            schema,
            encoder,
            writer,
        }
    }
}

impl DisplayAs for TopicSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicSink: {}", self.writer.target())
    }
}

#[async_trait]
impl DataSink for TopicSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> DFResult<u64> {
        let mut written = 0;
        while let Some(batch) = data.next().await {
            let messages = self.encoder.encode(&batch?)?;
            written += self.writer.write(&messages).await?;
        }
        Ok(written)
    }
}
