//! Scanning a topic table: filters pushed down into offset ranges ([`pushdown`], pure), the
//! ranges planned against the partitions ([`plan`]), the `ExecutionPlan` ([`exec`]) and the
//! per-partition stream that reads, decodes and applies the bad-message policy and LIMIT
//! ([`stream`]); bounded ranges split over several output partitions ([`split`]), and live
//! scans that take in partitions and topics appearing after they were planned
//! ([`discovery`]).

mod discovery;
mod exec;
pub mod plan;
pub mod pushdown;
pub mod split;
mod stream;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod topics_tests;
mod watermark;

pub use discovery::Discovery;
pub use exec::{ScanInput, ScanStatistics, TopicScanExec};
pub use plan::{
    Limits, PartitionScan, ScanBounds, TimestampOrder, messages_cap, plan_batch_range, plan_scan,
    resolve_positions,
};
pub use watermark::EventTimeTracker;
