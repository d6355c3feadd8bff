//! Watching long-running queries: metrics of every micro-batch through the `metrics` facade
//! (`record`), a Prometheus endpoint for them ([`serve_prometheus`]), and the progress of
//! recent batches read back from a checkpoint ([`checkpoint_progress`]).

mod checkpoint_progress;
mod metric_names;
mod prometheus;
mod record;
mod scan_progress;

pub use checkpoint_progress::{
    CheckpointProgressFunc, DEFAULT_BATCHES, checkpoint_progress, progress_schema,
};
pub use prometheus::serve_prometheus;
pub use record::record_batch;
pub(crate) use record::{record_abandoned, record_fenced, record_scan_read};
pub(crate) use scan_progress::ScanProgressGuard;
pub use scan_progress::{ScanProgress, scan_progress, when_scans_done};
