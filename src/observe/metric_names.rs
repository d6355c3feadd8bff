//! The metrics a continuous query exports, declared once: name, kind, help text. Names follow
//! Prometheus conventions (`_total` counters, base units: seconds, bytes).

/// One exported metric.
pub(crate) struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// How a metric behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

macro_rules! metrics {
    ($($id:ident = $name:literal, $kind:ident, $help:literal;)*) => {
        $(pub(crate) const $id: &str = $name;)*
        /// Every metric, for the endpoint's HELP lines and the docs.
        pub(crate) const ALL: &[Metric] = &[$(Metric { name: $name, kind: Kind::$kind, help: $help },)*];
    };
}

metrics! {
    COMMITTED_OFFSET = "dft_source_committed_offset", Gauge,
        "Next offset to read in a source partition: the end of the last committed batch (labels query, table, topic, partition).";
    HIGH_WATERMARK = "dft_source_high_watermark", Gauge,
        "The partition's high watermark when the last batch was planned.";
    LAG_MESSAGES = "dft_source_lag_messages", Gauge,
        "Offsets between the last committed batch's end and the high watermark.";
    LAG_SECONDS = "dft_source_lag_seconds", Gauge,
        "Age of the newest message the last batch read from a partition that still lags (0 when caught up).";
    MESSAGES_READ = "dft_source_messages_read_total", Counter,
        "Messages read from a source topic (labels query, topic).";
    BYTES_READ = "dft_source_bytes_read_total", Counter,
        "Key, value and header bytes read from a source topic.";
    BAD_MESSAGES = "dft_source_bad_messages_total", Counter,
        "Messages that could not be decoded.";
    BATCHES = "dft_batches_total", Counter,
        "Committed micro-batches (label attempt: first or replay).";
    BATCHES_ABANDONED = "dft_batches_abandoned_total", Counter,
        "Interrupted work-queue batches abandoned on restart (their messages are redelivered).";
    FENCED = "dft_fenced_total", Counter,
        "Runs stopped because another runner took the checkpoint over.";
    BATCH_DURATION = "dft_batch_duration_seconds", Histogram,
        "Time from planning a batch to its commit.";
    CHECKPOINT_WRITE = "dft_checkpoint_write_seconds", Histogram,
        "Time writing a batch's state file and commits/N.";
    ROWS_WRITTEN = "dft_sink_rows_written_total", Counter,
        "Rows the sink received (replays included).";
    ROWS_ALREADY_WRITTEN = "dft_sink_rows_already_written_total", Counter,
        "Rows of replayed batches an earlier attempt had written, not written again.";
    TOMBSTONES = "dft_sink_tombstones_total", Counter,
        "Tombstones written for keys that left an update-mode result.";
    LATE_ROWS = "dft_late_rows_total", Counter,
        "Rows that arrived behind the watermark (not merged into closed windows).";
    STATE_GROUPS = "dft_state_groups", Gauge,
        "Groups (windows and keys) a stateful query keeps open.";
    STATE_BYTES = "dft_state_bytes", Gauge,
        "Size of the latest state file.";
    WATERMARK = "dft_watermark_seconds", Gauge,
        "A stateful query's watermark (seconds since the epoch).";
    LAST_BATCH = "dft_last_batch_timestamp_seconds", Gauge,
        "When the last batch committed (seconds since the epoch): alert when it stops moving.";
    SCAN_MESSAGES = "dft_scan_messages_read_total", Counter,
        "Messages any scan of this process read, as it reads them (label topic): on a worker, its share.";
    SCAN_BYTES = "dft_scan_bytes_read_total", Counter,
        "Key, value and header bytes any scan of this process read (label topic).";
}

#[cfg(test)]
mod tests {
    /// The operators' page lists every metric the endpoint serves.
    #[test]
    fn every_metric_is_documented() {
        let page = include_str!("../../docs/operating.md");
        for metric in super::ALL {
            assert!(
                page.contains(&format!("`{}`", metric.name)),
                "docs/operating.md does not list {}",
                metric.name
            );
        }
    }
}
