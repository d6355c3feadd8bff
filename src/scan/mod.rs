//! Scanning a topic table: filters pushed down into offset ranges ([`pushdown`], pure), the
//! ranges planned against the partitions ([`plan`]), the `ExecutionPlan` ([`exec`]) and the
//! per-partition stream that reads, decodes and applies the bad-message policy and LIMIT
//! ([`stream`]).

mod exec;
pub mod plan;
pub mod pushdown;
mod stream;
#[cfg(test)]
mod tests;
mod watermark;

pub use exec::{ScanInput, ScanStatistics, TopicScanExec};
pub use plan::{
    Limits, PartitionScan, ScanBounds, TimestampOrder, messages_cap, plan_batch_range, plan_scan,
    resolve_positions,
};
pub use watermark::EventTimeTracker;
