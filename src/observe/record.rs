//! Recording a committed micro-batch through the `metrics` facade: a no-op until a recorder
//! is installed ([`serve_prometheus`](super::serve_prometheus) or the embedder's own).

use metrics::{counter, gauge, histogram};

use super::metric_names::*;
use crate::query::BatchProgress;

/// Records what batch `p` of query `query` did: per source partition its committed offset,
/// high watermark and lag; per topic what was read; the batch's timings, rows and state.
pub fn record_batch(query: &str, p: &BatchProgress, now_ms: i64) {
    let q = query.to_string();
    for (table, ranges) in &p.sources {
        let read = p.read.get(&ranges.topic);
        for (partition, range) in &ranges.partitions {
            let labels = [
                ("query", q.clone()),
                ("table", table.clone()),
                ("topic", partition.topic.to_string()),
                ("partition", partition.partition.to_string()),
            ];
            let end = range.end_or_max();
            gauge!(COMMITTED_OFFSET, &labels).set(end as f64);
            let Some(high) = ranges.high.get(partition) else {
                continue;
            };
            let lag = (high - end).max(0);
            gauge!(HIGH_WATERMARK, &labels).set(*high as f64);
            gauge!(LAG_MESSAGES, &labels).set(lag as f64);
            let newest = read.and_then(|r| r.newest_ms.get(partition));
            match (lag, newest) {
                (0, _) => gauge!(LAG_SECONDS, &labels).set(0.0),
                (_, Some(ms)) => {
                    gauge!(LAG_SECONDS, &labels).set((now_ms - ms).max(0) as f64 / 1000.0)
                }
                // Behind, but nothing read this batch: the age is unknown, keep the last one.
                (_, None) => {}
            }
        }
    }
    for (topic, read) in &p.read {
        let labels = [("query", q.clone()), ("topic", topic.clone())];
        counter!(MESSAGES_READ, &labels).increment(read.messages);
        counter!(BYTES_READ, &labels).increment(read.bytes);
        counter!(BAD_MESSAGES, &labels).increment(read.bad);
    }
    let labels = [("query", q.clone())];
    let attempt = if p.replayed { "replay" } else { "first" };
    counter!(
        BATCHES,
        &[("query", q.clone()), ("attempt", attempt.to_string())]
    )
    .increment(1);
    histogram!(BATCH_DURATION, &labels).record(p.elapsed.as_secs_f64());
    histogram!(CHECKPOINT_WRITE, &labels).record(p.checkpoint_time.as_secs_f64());
    counter!(ROWS_WRITTEN, &labels).increment(p.rows);
    counter!(ROWS_ALREADY_WRITTEN, &labels).increment(p.already_written);
    counter!(TOMBSTONES, &labels).increment(p.tombstones);
    gauge!(LAST_BATCH, &labels).set(now_ms as f64 / 1000.0);
    if let Some(state) = &p.state {
        counter!(LATE_ROWS, &labels).increment(state.late_rows);
        gauge!(STATE_GROUPS, &labels).set(state.groups as f64);
        gauge!(STATE_BYTES, &labels).set(state.bytes as f64);
        if let Some(w) = state.watermark {
            gauge!(WATERMARK, &labels).set(w as f64 / 1000.0);
        }
    }
}

/// Records an interrupted work-queue batch abandoned on restart.
pub(crate) fn record_abandoned(query: &str) {
    counter!(BATCHES_ABANDONED, "query" => query.to_string()).increment(1);
}

/// Records a run stopped by fencing.
pub(crate) fn record_fenced(query: &str) {
    counter!(FENCED, "query" => query.to_string()).increment(1);
}

/// Counts what a scan read as it reads it (per topic, whatever query it belongs to): the
/// figure a worker, which runs parts of other processes' queries, reports.
pub(crate) fn record_scan_read(topic: &str, messages: usize, bytes: u64) {
    let labels = [("topic", topic.to_string())];
    counter!(SCAN_MESSAGES, &labels).increment(messages as u64);
    counter!(SCAN_BYTES, &labels).increment(bytes);
}
