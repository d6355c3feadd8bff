//! Planning what a scan reads: the table's start and end positions, resolved against the
//! partitions' watermarks and narrowed by pushed-down filters, into per-partition offset
//! ranges; and the next micro-batch's range of each partition. One data-loss rule serves both.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use datafusion::logical_expr::Expr;

use std::sync::Arc;

use super::pushdown::{Selection, Span, analyze_all};
use crate::error::{Result, TopicsError};
use crate::options::{BoundedMode, ScanOptions, StartupMode};
use crate::source::{LogSet, LogSource, OffsetRange, TopicPartition, Watermarks};

/// The offset ranges one output partition of a scan reads, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionScan {
    /// The topic (of the table's topics) the partition belongs to.
    pub topic: Arc<str>,
    /// Source partition id (or queue reader id).
    pub partition: i32,
    /// Disjoint ranges in ascending order; only the last may be open.
    pub ranges: Vec<OffsetRange>,
    /// Offsets the start skipped because they were removed (`scan.fail-on-data-loss = false`).
    pub skipped: u64,
}

impl PartitionScan {
    /// The (topic, partition) it reads.
    pub fn key(&self) -> TopicPartition {
        TopicPartition::new(Arc::clone(&self.topic), self.partition)
    }

    /// True when every range has an end.
    pub fn is_bounded(&self) -> bool {
        self.ranges.iter().all(OffsetRange::is_closed)
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

/// Where a read's first offset came from, for the data-loss error.
#[derive(Debug, Clone, Copy)]
pub enum StartOrigin<'a> {
    /// The table's start position (`scan.startup.*`).
    Table(&'a StartupMode),
    /// Where the previous micro-batch of a continuous query ended.
    Checkpoint,
}

/// The data-loss rule: a read that must start at `start` in a partition now holding
/// `[marks.low, marks.high)`. Offsets below the low watermark were removed (retention,
/// DeleteRecords): with `fail_on_data_loss` that is an error naming them, otherwise the read
/// starts at the low watermark and counts what it skipped. A start beyond the high watermark
/// is always an error. Returns the start to use and the offsets skipped.
pub fn check_start(
    topic: &str,
    partition: i32,
    start: i64,
    marks: Watermarks,
    fail_on_data_loss: bool,
    origin: StartOrigin<'_>,
) -> Result<(i64, u64)> {
    if start < marks.low && !fail_on_data_loss {
        log::warn!(
            "{topic} partition {partition}: offsets [{start}, {}) were removed; skipping them",
            marks.low
        );
        return Ok((marks.low, (marks.low - start) as u64));
    }
    if start >= marks.low && start <= marks.high {
        return Ok((start, 0));
    }
    Err(match origin {
        StartOrigin::Checkpoint if start < marks.low => TopicsError::DataLoss {
            topic: topic.to_string(),
            partition,
            offset: start,
            detail: format!(
                "offsets {start}..{} were removed (retention or purge) before the query read them; \
                 set 'scan.fail-on-data-loss' = 'false' to skip them and continue",
                marks.low
            ),
        },
        StartOrigin::Checkpoint => TopicsError::DataLoss {
            topic: topic.to_string(),
            partition,
            offset: start,
            detail: format!(
                "the checkpoint has read up to offset {start} but the partition now ends at {}; \
                 was the topic deleted and recreated? Use a new checkpoint for the new topic",
                marks.high
            ),
        },
        StartOrigin::Table(mode) => {
            let what = match mode {
                StartupMode::GroupOffsets => "the group's committed offset",
                StartupMode::SpecificOffsets(_) => "scan.startup.specific-offsets",
                _ => "the start offset",
            };
            let hint = if start < marks.low {
                format!(
                    ": {what} was removed by retention; start at earliest-offset or at {}",
                    marks.low
                )
            } else {
                format!(
                    ": {what} is beyond the last message; the next offset to be written is {}",
                    marks.high
                )
            };
            TopicsError::OffsetOutOfRange {
                topic: topic.to_string(),
                partition,
                offset: start,
                low: marks.low,
                high: marks.high,
                hint,
            }
        }
    })
}

/// Where one partition's scan starts and ends before any filter, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPositions {
    /// Source partition id.
    pub partition: i32,
    /// Offsets the table's start and end positions select.
    pub range: OffsetRange,
    /// The partition's watermarks when the query started.
    pub marks: Watermarks,
    /// Offsets below the low watermark the start skipped (`scan.fail-on-data-loss = false`).
    pub skipped: u64,
}

/// Resolves the table's start and end positions for `partitions`.
///
/// Every closed range ends at or below the high watermark read here: a bounded scan reads
/// what exists when the query starts. `end` overrides the table's end position (a micro-batch
/// resolving its first starts asks for `LatestOffset`).
pub async fn resolve_positions(
    source: &dyn LogSource,
    scan: &ScanOptions,
    partitions: &[i32],
    end: Option<&BoundedMode>,
) -> Result<Vec<PartitionPositions>> {
    let marks = source.watermarks(partitions).await?;
    let topic = source.topic();
    let starts: Vec<i64> = match &scan.startup {
        StartupMode::Earliest => marks.iter().map(|w| w.low).collect(),
        StartupMode::Latest => marks.iter().map(|w| w.high).collect(),
        StartupMode::Timestamp(ts) => source.offsets_for_timestamp(partitions, *ts).await?,
        StartupMode::SpecificOffsets(map) => {
            check_partitions_exist(topic, "scan.startup.specific-offsets", map, partitions)?;
            partitions
                .iter()
                .zip(&marks)
                .map(|(p, w)| *map.get(p).unwrap_or(&w.low))
                .collect()
        }
        StartupMode::GroupOffsets => {
            let group = scan.group_id.as_deref().unwrap_or_default();
            let committed = source.committed_offsets(group, partitions).await?;
            committed
                .iter()
                .zip(&marks)
                .map(|(c, w)| c.unwrap_or(w.low))
                .collect()
        }
    };
    let ends: Vec<Option<i64>> = match end.unwrap_or(&scan.bounded) {
        BoundedMode::Unbounded => vec![None; partitions.len()],
        BoundedMode::LatestOffset => marks.iter().map(|w| Some(w.high)).collect(),
        BoundedMode::Timestamp(ts) => source
            .offsets_for_timestamp(partitions, *ts)
            .await?
            .into_iter()
            .map(Some)
            .collect(),
        BoundedMode::SpecificOffsets(map) => {
            check_partitions_exist(topic, "scan.bounded.specific-offsets", map, partitions)?;
            partitions
                .iter()
                .zip(&marks)
                .map(|(p, w)| Some(map.get(p).map_or(w.high, |&o| o.min(w.high))))
                .collect()
        }
    };
    let mut out = Vec::with_capacity(partitions.len());
    for (((&partition, marks), start), end) in partitions.iter().zip(marks).zip(starts).zip(ends) {
        let (start, skipped) = check_start(
            topic,
            partition,
            start,
            marks,
            scan.fail_on_data_loss,
            StartOrigin::Table(&scan.startup),
        )?;
        out.push(PartitionPositions {
            partition,
            range: OffsetRange {
                start,
                end: end.map(|e| e.max(start)),
            },
            marks,
            skipped,
        });
    }
    Ok(out)
}

fn check_partitions_exist(
    topic: &str,
    key: &str,
    map: &BTreeMap<i32, i64>,
    partitions: &[i32],
) -> Result<()> {
    match map.keys().find(|p| !partitions.contains(p)) {
        Some(p) => Err(TopicsError::InvalidOption {
            key: key.to_string(),
            value: format!("partition:{p}"),
            reason: format!("topic '{topic}' has no partition {p} (it has {partitions:?})"),
        }),
        None => Ok(()),
    }
}

/// What a scan reads before filters: the table's positions, or ranges bound by a caller (a
/// continuous query's micro-batch reads exactly the ranges it recorded).
#[derive(Debug, Clone, Copy)]
pub enum ScanBounds<'a> {
    /// The table's `scan.startup.*` / `scan.bounded.*`, resolved against the watermarks now.
    Table(&'a ScanOptions),
    /// Exactly these closed ranges, per (topic, partition).
    Bound(&'a BTreeMap<TopicPartition, OffsetRange>),
}

/// A planned scan: what each output partition reads, and every partition that existed when it
/// was planned (selected or not), from which a live scan's discovery tells new ones apart.
#[derive(Debug, Clone, Default)]
pub struct PlannedScan {
    /// The output partitions' ranges.
    pub partitions: Vec<PartitionScan>,
    /// Every (topic, partition) listed while planning.
    pub seen: std::collections::BTreeSet<TopicPartition>,
    /// What the filters select (for partitions discovered later).
    pub selection: Option<Selection>,
}

/// Plans the per-partition ranges of a scan of `set`'s topics, topic after topic. A filter set
/// that selects nothing returns no partitions without contacting the brokers; a filter on
/// `_topic` leaves the other topics unread.
pub async fn plan_scan(
    set: &LogSet,
    bounds: ScanBounds<'_>,
    filters: &[Expr],
    order: TimestampOrder,
) -> Result<PlannedScan> {
    let selection = analyze_all(filters, order.ordered);
    if selection.is_empty() {
        return Ok(PlannedScan::default());
    }
    let mut scans = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    match bounds {
        ScanBounds::Table(scan) => {
            for source in set.members().await? {
                let Some(all) = set.partitions_of(source.as_ref()).await? else {
                    continue;
                };
                seen.extend(all.iter().map(|p| TopicPartition::new(source.topic(), *p)));
                let partitions: Vec<i32> = all
                    .into_iter()
                    .filter(|p| selection.includes(&source.topic_of(*p), *p))
                    .collect();
                if partitions.is_empty() {
                    continue;
                }
                let positions = resolve_positions(source.as_ref(), scan, &partitions, None).await?;
                scans
                    .extend(plan_partitions(source.as_ref(), &positions, &selection, order).await?);
            }
        }
        ScanBounds::Bound(ranges) => {
            let mut by_topic: BTreeMap<&str, Vec<PartitionPositions>> = BTreeMap::new();
            for (key, &range) in ranges.iter() {
                by_topic
                    .entry(&key.topic)
                    .or_default()
                    .push(PartitionPositions {
                        partition: key.partition,
                        range,
                        // The bound ranges were planned against watermarks at least this high.
                        marks: Watermarks {
                            low: range.start,
                            high: range.end_or_max(),
                        },
                        skipped: 0,
                    });
            }
            for (topic, positions) in by_topic {
                let source = set.member(topic)?;
                let positions: Vec<PartitionPositions> = positions
                    .into_iter()
                    .filter(|p| selection.includes(&source.topic_of(p.partition), p.partition))
                    .collect();
                scans
                    .extend(plan_partitions(source.as_ref(), &positions, &selection, order).await?);
            }
        }
    }
    Ok(PlannedScan {
        partitions: scans,
        seen,
        selection: Some(selection),
    })
}

/// The partitions a live scan found after it was planned (a partition added to a topic, or a
/// new topic matching the table's pattern): read from their earliest offset, as far as the
/// scan's filters select them.
pub async fn plan_discovered(
    source: &dyn LogSource,
    partitions: &[i32],
    filters: &Selection,
    order: TimestampOrder,
) -> Result<Vec<PartitionScan>> {
    let partitions: Vec<i32> = partitions
        .iter()
        .copied()
        .filter(|p| filters.includes(&source.topic_of(*p), *p))
        .collect();
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let marks = source.watermarks(&partitions).await?;
    let positions: Vec<PartitionPositions> = partitions
        .iter()
        .zip(marks)
        .map(|(&partition, marks)| PartitionPositions {
            partition,
            range: OffsetRange::open(marks.low),
            marks,
            skipped: 0,
        })
        .collect();
    plan_partitions(source, &positions, filters, order).await
}

/// Narrows each partition's positions by the filters (timestamp bounds looked up once for
/// all of them).
async fn plan_partitions(
    source: &dyn LogSource,
    positions: &[PartitionPositions],
    selection: &Selection,
    order: TimestampOrder,
) -> Result<Vec<PartitionScan>> {
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    let topic: Arc<str> = Arc::from(source.topic());
    let partitions: Vec<i32> = positions.iter().map(|p| p.partition).collect();
    let skew = order.upper_bound_skew();
    let mut lookups: HashMap<i64, Vec<i64>> = HashMap::new();
    for t in selection.timestamp_lookups(skew) {
        lookups.insert(t, source.offsets_for_timestamp(&partitions, t).await?);
    }
    let mut scans = Vec::with_capacity(positions.len());
    for (i, pos) in positions.iter().enumerate() {
        let base = Span::new(pos.range.start, pos.range.end_or_max());
        let offset_at = |t: i64| lookups.get(&t).map(|offsets| offsets[i]);
        let row_topic = source.topic_of(pos.partition);
        let ranges = selection.offset_ranges(
            &row_topic,
            pos.partition,
            base,
            pos.marks.high,
            skew,
            &offset_at,
        );
        // A partition the filters select keeps its output partition even when no offset of
        // it qualifies, so EXPLAIN shows every selected partition.
        scans.push(PartitionScan {
            topic: Arc::clone(&topic),
            partition: pos.partition,
            ranges,
            skipped: pos.skipped,
        });
    }
    Ok(scans)
}

/// Per-batch rate limits of a continuous query, per partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// At most this many offsets per partition per batch.
    pub max_records: Option<u64>,
    /// About this many bytes per partition per batch, estimated from the average message size
    /// the previous batch read from the same table.
    pub max_bytes: Option<u64>,
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

/// One partition's range in the next micro-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    /// The closed range to read.
    pub range: OffsetRange,
    /// Offsets between where the previous batch ended and the low watermark: removed by
    /// retention before they were read.
    pub skipped: u64,
}

/// Where partition `partition` of `topic` reads next, from `from` (the previous batch's end
/// or the start position), given its watermarks now, an optional end `cap` (available-now),
/// the limits and the average message size seen so far.
#[allow(clippy::too_many_arguments)]
pub fn plan_batch_range(
    topic: &str,
    partition: i32,
    from: i64,
    marks: Watermarks,
    cap: Option<i64>,
    limits: Limits,
    avg_message_bytes: Option<f64>,
    fail_on_data_loss: bool,
) -> Result<BatchRange> {
    let (start, skipped) = check_start(
        topic,
        partition,
        from,
        marks,
        fail_on_data_loss,
        StartOrigin::Checkpoint,
    )?;
    let mut end = marks.high;
    if let Some(cap) = cap {
        end = end.min(cap.max(start));
    }
    if let Some(n) = messages_cap(limits, avg_message_bytes) {
        end = end.min(start.saturating_add(n.min(i64::MAX as u64) as i64));
    }
    Ok(BatchRange {
        range: OffsetRange::closed(start, end),
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
    fn starts_outside_the_partition_say_why() {
        let table = |mode: &StartupMode, start| {
            check_start("t", 0, start, w(3, 5), true, StartOrigin::Table(mode))
        };
        assert_eq!(table(&StartupMode::Earliest, 3).unwrap(), (3, 0));
        assert_eq!(table(&StartupMode::Latest, 5).unwrap(), (5, 0));
        let below = table(&StartupMode::SpecificOffsets(Default::default()), 1)
            .unwrap_err()
            .to_string();
        assert!(
            below.contains("offset 1") && below.contains("[3, 5)") && below.contains("retention"),
            "{below}"
        );
        let above = check_start(
            "t",
            2,
            9,
            w(3, 5),
            true,
            StartOrigin::Table(&StartupMode::GroupOffsets),
        )
        .unwrap_err()
        .to_string();
        assert!(
            above.contains("partition 2")
                && above.contains("committed")
                && above.contains("beyond"),
            "{above}"
        );
        assert_eq!(
            check_start("t", 0, 1, w(3, 5), false, StartOrigin::Checkpoint).unwrap(),
            (3, 2)
        );
    }

    #[test]
    fn batch_ranges_limits_and_data_loss() {
        let none = Limits::default();
        let plan = |from, marks, cap, limits, avg, fail| {
            plan_batch_range("t", 3, from, marks, cap, limits, avg, fail)
        };
        let p = plan(10, w(0, 100), None, none, None, true).unwrap();
        assert_eq!((p.range, p.skipped), (OffsetRange::closed(10, 100), 0));
        let p = plan(10, w(0, 100), Some(50), none, None, true).unwrap();
        assert_eq!(p.range.end, Some(50));
        let records = Limits {
            max_records: Some(25),
            max_bytes: None,
        };
        assert_eq!(
            plan(10, w(0, 100), None, records, None, true)
                .unwrap()
                .range
                .end,
            Some(35)
        );
        let bytes = Limits {
            max_records: None,
            max_bytes: Some(2000),
        };
        assert_eq!(
            plan(10, w(0, 100), None, bytes, Some(200.0), true)
                .unwrap()
                .range
                .end,
            Some(20)
        );
        assert_eq!(
            plan(10, w(0, 100), None, bytes, Some(1e9), true)
                .unwrap()
                .range
                .end,
            Some(11),
            "at least one message per batch"
        );
        assert_eq!(
            plan(100, w(0, 100), None, none, None, true).unwrap().range,
            OffsetRange::closed(100, 100)
        );
        let err = plan(10, w(40, 100), None, none, None, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partition 3") && err.contains("10..40"),
            "{err}"
        );
        let p = plan(10, w(40, 100), None, none, None, false).unwrap();
        assert_eq!((p.range, p.skipped), (OffsetRange::closed(40, 100), 30));
        let err = plan(500, w(0, 100), None, none, None, true).unwrap_err();
        assert!(err.to_string().contains("recreated"), "{err}");
    }
}
