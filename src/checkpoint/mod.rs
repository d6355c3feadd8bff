//! Checkpoints of continuous queries on object storage: which offset ranges each micro-batch
//! reads, and which batches are in the sink.

mod log;
pub mod records;
pub(crate) mod store;

pub use log::{CheckpointLog, RETAINED_BATCHES, RETAINED_STATES, new_id, now_ms};
pub use records::{
    CommitRecord, Metadata, OffsetsRecord, QueueBatch, SinkMarks, SourceRanges, StateRecord,
};
