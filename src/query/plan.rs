//! Planning the next micro-batch: for every source table, each partition's range from where
//! the previous batch ended (or the table's start position) to the high watermark, capped by
//! the rate limits and, for available-now runs, by the end of what existed at the start; for
//! work-queue tables, what is pending.

use std::collections::BTreeMap;

use super::compile::{SourceRole, SourceTable};
use crate::checkpoint::{QueueBatch, SourceRanges};
use crate::error::Result;
use crate::options::BoundedMode;
use crate::scan::{Limits, messages_cap, plan_batch_range, resolve_positions};
use crate::source::{LogSet, TableSource, TopicPartition};

/// (topic, partition) → offset, per source table name.
pub(crate) type Edges = BTreeMap<String, BTreeMap<TopicPartition, i64>>;

/// The next batch: ranges per source table, and the offsets (or pending messages) left behind.
pub(crate) struct NextBatch {
    pub sources: BTreeMap<String, SourceRanges>,
    pub lag: i64,
    /// Tables read whole each batch (their ranges are no news).
    pub snapshots: std::collections::BTreeSet<String>,
}

impl NextBatch {
    /// True when some range holds offsets.
    pub fn reads_ranges(&self) -> bool {
        self.sources
            .iter()
            .filter(|(name, _)| !self.snapshots.contains(*name))
            .any(|(_, s)| s.partitions.values().any(|r| !r.is_empty()))
    }

    /// True when the batch would read anything: offsets, or pending queue messages.
    pub fn has_data(&self) -> bool {
        self.reads_ranges()
            || self
                .sources
                .values()
                .any(|s| s.work_queue.as_ref().is_some_and(|q| q.pending > 0))
    }

    /// True when some partition skipped removed offsets (worth a batch to record it).
    pub fn skipped_any(&self) -> bool {
        self.sources.values().any(|s| !s.skipped.is_empty())
    }
}

/// What bounds the batches of this run besides the rate limits.
#[derive(Debug, Default)]
pub(crate) struct RunBounds {
    /// Available-now: every partition's high watermark when the run started.
    pub caps: Option<Edges>,
    /// Available-now: messages each work-queue table may still deliver in this run.
    pub queue_left: Option<BTreeMap<String, u64>>,
}

/// Plans the next batch of `sources`, continuing from `ends` (where the previous batch
/// ended, per table and partition).
pub(crate) async fn plan_next(
    sources: &[SourceTable],
    ends: &Edges,
    bounds: &RunBounds,
    limits: Limits,
    avg_bytes: &BTreeMap<String, f64>,
) -> Result<NextBatch> {
    let mut out = BTreeMap::new();
    let mut lag = 0;
    for s in sources {
        let name = s.name.to_string();
        // Message sizes are measured per topic (the scans know topics, not table names).
        let avg = avg_bytes.get(s.table.source().topic()).copied();
        let (ranges, left) = match s.table.source() {
            TableSource::Queue(queue) => {
                let pending = queue.pending().await?;
                let allowed = bounds
                    .queue_left
                    .as_ref()
                    .and_then(|l| l.get(&name))
                    .map_or(pending, |left| pending.min(*left));
                let ranges = SourceRanges {
                    kind: queue.kind().to_string(),
                    topic: queue.topic().to_string(),
                    partitions: BTreeMap::new(),
                    skipped: BTreeMap::new(),
                    work_queue: Some(QueueBatch {
                        consumer: queue.cursor().to_string(),
                        pending: allowed,
                        max_messages: messages_cap(limits, avg),
                    }),
                    high: Default::default(),
                };
                (ranges, pending as i64)
            }
            TableSource::Log(log) if s.role == SourceRole::Dimension => {
                (plan_snapshot(s, log).await?, 0)
            }
            TableSource::Log(log) => {
                let caps = bounds.caps.as_ref().map(|c| c.get(&name));
                plan_log(s, log, ends.get(&name), caps, limits, avg).await?
            }
        };
        lag += left;
        out.insert(name, ranges);
    }
    let snapshots = sources
        .iter()
        .filter(|s| s.role == SourceRole::Dimension)
        .map(|s| s.name.to_string())
        .collect();
    Ok(NextBatch {
        sources: out,
        lag,
        snapshots,
    })
}

/// A snapshot table's ranges for the next batch: all of it, as its declaration says.
async fn plan_snapshot(s: &SourceTable, set: &LogSet) -> Result<SourceRanges> {
    let mut ranges = empty_ranges(set);
    for log in set.members().await? {
        let Some(partitions) = set.partitions_of(log.as_ref()).await? else {
            continue;
        };
        let positions =
            resolve_positions(log.as_ref(), s.table.scan_options(), &partitions, None).await?;
        ranges.partitions.extend(
            positions
                .iter()
                .map(|p| (TopicPartition::new(log.topic(), p.partition), p.range)),
        );
    }
    Ok(ranges)
}

fn empty_ranges(set: &LogSet) -> SourceRanges {
    SourceRanges {
        kind: set.kind().to_string(),
        topic: set.label().to_string(),
        partitions: BTreeMap::new(),
        skipped: BTreeMap::new(),
        work_queue: None,
        high: Default::default(),
    }
}

/// One log table's ranges in the next batch (every topic it reads now, a pattern's new
/// topics included), and the offsets they leave behind.
async fn plan_log(
    s: &SourceTable,
    set: &LogSet,
    previous: Option<&BTreeMap<TopicPartition, i64>>,
    caps: Option<Option<&BTreeMap<TopicPartition, i64>>>,
    limits: Limits,
    avg: Option<f64>,
) -> Result<(SourceRanges, i64)> {
    let scan = s.table.scan_options();
    let mut ranges = empty_ranges(set);
    let mut lag = 0;
    for log in set.members().await? {
        let topic = log.topic();
        let Some(partitions) = set.partitions_of(log.as_ref()).await? else {
            continue;
        };
        // The first batch starts where the table's scan.startup.* says, resolved before the
        // watermarks are read (which only grow), so a message arriving in between cannot put
        // a start beyond its partition's end.
        let first: Option<BTreeMap<i32, i64>> = match previous {
            Some(_) => None,
            None => Some(
                resolve_positions(
                    log.as_ref(),
                    scan,
                    &partitions,
                    Some(&BoundedMode::LatestOffset),
                )
                .await?
                .into_iter()
                .map(|p| (p.partition, p.range.start))
                .collect(),
            ),
        };
        let marks = log.watermarks(&partitions).await?;
        for (p, w) in partitions.iter().zip(&marks) {
            let key = TopicPartition::new(topic, *p);
            // Partitions (and topics) that appear later start at their earliest offset.
            let from = match (&first, previous) {
                (Some(first), _) => first.get(p).copied(),
                (None, Some(previous)) => previous.get(&key).copied(),
                (None, None) => None,
            }
            .unwrap_or(w.low);
            // Partitions created after an available-now run started are not read.
            let cap = caps.map(|c| c.and_then(|c| c.get(&key)).copied().unwrap_or(from));
            let planned = plan_batch_range(
                topic,
                *p,
                from,
                *w,
                cap,
                limits,
                avg,
                scan.fail_on_data_loss,
            )?;
            lag += w.high - planned.range.end_or_max().min(w.high);
            ranges.partitions.insert(key.clone(), planned.range);
            ranges.high.insert(key.clone(), w.high);
            if planned.skipped > 0 {
                ranges.skipped.insert(key, planned.skipped as i64);
            }
        }
    }
    Ok((ranges, lag))
}

/// Every log partition's high watermark now (the end of an available-now run).
pub(crate) async fn high_watermarks(sources: &[SourceTable]) -> Result<Edges> {
    let mut out = BTreeMap::new();
    for s in sources.iter().filter(|s| s.role == SourceRole::Stream) {
        if let TableSource::Log(set) = s.table.source() {
            let mut edges = BTreeMap::new();
            for log in set.members().await? {
                let Some(partitions) = set.partitions_of(log.as_ref()).await? else {
                    continue;
                };
                let marks = log.watermarks(&partitions).await?;
                edges.extend(
                    partitions
                        .iter()
                        .zip(&marks)
                        .map(|(p, w)| (TopicPartition::new(log.topic(), *p), w.high)),
                );
            }
            out.insert(s.name.to_string(), edges);
        }
    }
    Ok(out)
}

/// Messages pending in each work-queue table now.
pub(crate) async fn queue_pending(sources: &[SourceTable]) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for s in sources {
        if let TableSource::Queue(queue) = s.table.source() {
            out.insert(s.name.to_string(), queue.pending().await?);
        }
    }
    Ok(out)
}

/// One edge of every source partition's range in `record`, per table and partition.
pub(crate) fn edges_of(
    sources: &BTreeMap<String, SourceRanges>,
    edge: impl Fn(&crate::source::OffsetRange) -> i64,
) -> Edges {
    sources
        .iter()
        .map(|(t, s)| {
            let edges = s
                .partitions
                .iter()
                .map(|(p, r)| (p.clone(), edge(r)))
                .collect();
            (t.clone(), edges)
        })
        .collect()
}
