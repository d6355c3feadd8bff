//! Planning one partition's range in the next micro-batch: from where the last batch ended to
//! the high watermark, capped by the rate limits (pure, unit-tested).

use crate::error::{Result, TopicsError};
use crate::source::Watermarks;

/// Per-batch rate limits, per partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// At most this many offsets per partition per batch.
    pub max_records: Option<u64>,
    /// About this many bytes per partition per batch, estimated from the average message size
    /// the previous batch read from the same topic.
    pub max_bytes: Option<u64>,
}

/// One partition's range in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPlan {
    /// First offset.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
    /// Offsets between where the previous batch ended and the low watermark: removed by
    /// retention before they were read.
    pub skipped: i64,
}

/// The most messages one partition (or work-queue reader) reads per batch under `limits`,
/// given the average message size seen so far (`None` before any was read); at least one.
pub fn messages_cap(limits: Limits, avg_message_bytes: Option<f64>) -> Option<u64> {
    let by_bytes = limits.max_bytes.map(|bytes| {
        // Before any message was read, guess 1 KiB per message.
        let avg = avg_message_bytes.filter(|a| *a > 0.0).unwrap_or(1024.0);
        ((bytes as f64 / avg).floor() as u64).max(1)
    });
    let by_records = limits.max_records.map(|n| n.max(1));
    match (by_records, by_bytes) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Where partition `partition` of `topic` reads next, from `from` (the previous batch's end
/// or the start position), given its watermarks now, an optional end `cap` (available-now),
/// the limits, and the average message size seen so far (`None` before any was read).
#[allow(clippy::too_many_arguments)]
pub fn plan_partition(
    topic: &str,
    partition: i32,
    from: i64,
    marks: Watermarks,
    cap: Option<i64>,
    limits: Limits,
    avg_message_bytes: Option<f64>,
    fail_on_data_loss: bool,
) -> Result<PartitionPlan> {
    let mut start = from;
    let mut skipped = 0;
    if start < marks.low {
        if fail_on_data_loss {
            return Err(TopicsError::DataLoss {
                topic: topic.to_string(),
                partition,
                offset: start,
                detail: format!(
                    "offsets {start}..{} were removed (retention or purge) before the query read them; \
                     set 'scan.fail-on-data-loss' = 'false' to skip them and continue",
                    marks.low
                ),
            });
        }
        skipped = marks.low - start;
        start = marks.low;
    }
    if start > marks.high {
        return Err(TopicsError::DataLoss {
            topic: topic.to_string(),
            partition,
            offset: start,
            detail: format!(
                "the checkpoint has read up to offset {start} but the partition now ends at {}; \
                 was the topic deleted and recreated? Use a new checkpoint for the new topic",
                marks.high
            ),
        });
    }
    let mut end = marks.high;
    if let Some(cap) = cap {
        end = end.min(cap.max(start));
    }
    if let Some(n) = messages_cap(limits, avg_message_bytes) {
        end = end.min(start.saturating_add(n.min(i64::MAX as u64) as i64));
    }
    Ok(PartitionPlan {
        start,
        end,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(low: i64, high: i64) -> Watermarks {
        Watermarks { low, high }
    }

    #[test]
    fn ranges_limits_and_data_loss() {
        let none = Limits::default();
        let p = plan_partition("t", 0, 10, w(0, 100), None, none, None, true).unwrap();
        assert_eq!((p.start, p.end, p.skipped), (10, 100, 0));
        let p = plan_partition("t", 0, 10, w(0, 100), Some(50), none, None, true).unwrap();
        assert_eq!(p.end, 50);
        let records = Limits {
            max_records: Some(25),
            max_bytes: None,
        };
        let p = plan_partition("t", 0, 10, w(0, 100), None, records, None, true).unwrap();
        assert_eq!(p.end, 35);
        let bytes = Limits {
            max_records: None,
            max_bytes: Some(2000),
        };
        let p = plan_partition("t", 0, 10, w(0, 100), None, bytes, Some(200.0), true).unwrap();
        assert_eq!(p.end, 20);
        let p = plan_partition("t", 0, 10, w(0, 100), None, bytes, Some(1e9), true).unwrap();
        assert_eq!(p.end, 11, "at least one message per batch");
        let p = plan_partition("t", 0, 100, w(0, 100), None, none, None, true).unwrap();
        assert_eq!((p.start, p.end), (100, 100));

        let err = plan_partition("t", 3, 10, w(40, 100), None, none, None, true).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("partition 3") && text.contains("10..40"),
            "{text}"
        );
        let p = plan_partition("t", 3, 10, w(40, 100), None, none, None, false).unwrap();
        assert_eq!((p.start, p.end, p.skipped), (40, 100, 30));
        let err = plan_partition("t", 0, 500, w(0, 100), None, none, None, true).unwrap_err();
        assert!(err.to_string().contains("recreated"), "{err}");
    }
}
