//! Scan planning: the table's start/end positions narrowed by pushed-down filters into the
//! offset ranges each partition reads.

use std::collections::HashMap;
use std::fmt;

use datafusion::logical_expr::Expr;

use crate::error::Result;
use crate::options::{BoundedMode, ScanOptions};
use crate::positions::resolve_ranges;
use crate::pushdown::{Interval, analyze_all};
use crate::source::{OffsetRange, Source};

/// The offset ranges one output partition of a scan reads, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionScan {
    /// Source partition id.
    pub partition: i32,
    /// Disjoint ranges in ascending order; only the last may be open.
    pub ranges: Vec<OffsetRange>,
    /// Offsets the start skipped because they were removed (`scan.fail-on-data-loss = false`).
    pub skipped: u64,
}

impl PartitionScan {
    /// True when every range has an end.
    pub fn is_bounded(&self) -> bool {
        self.ranges.iter().all(|r| r.end.is_some())
    }
}

impl fmt::Display for PartitionScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.partition)?;
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(" ∪ ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// How `_timestamp` relates to offsets in a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimestampOrder {
    /// Timestamps never decrease with offsets (log-append time): timestamp filters are exact.
    pub ordered: bool,
    /// A declared bound on how far a timestamp may lag behind a later offset's, in
    /// milliseconds; lets upper bounds end a scan even when timestamps are not ordered.
    pub max_skew_ms: Option<i64>,
}

impl TimestampOrder {
    /// The skew allowed when turning an upper timestamp bound into an end offset.
    pub fn upper_bound_skew(&self) -> Option<i64> {
        if self.ordered {
            Some(0)
        } else {
            self.max_skew_ms
        }
    }
}

/// Plans the per-partition ranges of a scan. A filter set that selects nothing returns no
/// partitions without contacting the source.
pub async fn plan_scan(
    source: &dyn Source,
    options: &ScanOptions,
    filters: &[Expr],
    order: TimestampOrder,
) -> Result<Vec<PartitionScan>> {
    let selection = analyze_all(filters, order.ordered);
    if selection.is_empty() {
        return Ok(Vec::new());
    }
    let partitions: Vec<i32> = source
        .partitions()
        .await?
        .into_iter()
        .filter(|p| selection.includes_partition(*p))
        .filter(|p| {
            options
                .only_partitions
                .as_ref()
                .is_none_or(|only| only.contains(p))
        })
        .collect();
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let positions = resolve_ranges(source, options, &partitions).await?;

    let skew = order.upper_bound_skew();
    let mut lookups: HashMap<i64, Vec<i64>> = HashMap::new();
    for t in selection.timestamp_lookups(skew) {
        lookups.insert(t, source.offsets_for_timestamp(&partitions, t).await?);
    }

    let mut scans = Vec::with_capacity(positions.len());
    for (i, pos) in positions.iter().enumerate() {
        let base = Interval::new(pos.range.start, pos.range.end.unwrap_or(i64::MAX));
        let offset_at = |t: i64| lookups.get(&t).map(|offsets| offsets[i]);
        let ranges: Vec<OffsetRange> = selection
            .offset_ranges(pos.partition, base, pos.marks.high, skew, &offset_at)
            .into_iter()
            .map(|iv| OffsetRange {
                start: iv.lo,
                end: iv.has_end().then_some(iv.hi),
            })
            .collect();
        // A partition the filters select keeps its output partition even when no offset of
        // it qualifies, so EXPLAIN shows every selected partition.
        scans.push(PartitionScan {
            partition: pos.partition,
            ranges,
            skipped: pos.skipped,
        });
    }
    Ok(scans)
}

/// Plans a scan of a work-queue source: one partition per reader, each draining the queue
/// (bounded scans) or following it (unbounded ones). Filters are not pushed down.
pub async fn plan_work_queue_scan(
    source: &dyn Source,
    options: &ScanOptions,
) -> Result<Vec<PartitionScan>> {
    let range = match options.bounded {
        BoundedMode::Unbounded => OffsetRange::open(0),
        _ => OffsetRange::drain(),
    };
    Ok(source
        .partitions()
        .await?
        .into_iter()
        .map(|partition| PartitionScan {
            partition,
            ranges: vec![range],
            skipped: 0,
        })
        .collect())
}
