//! The watermark of a continuous query, carried from batch to batch in its commits: per
//! partition the latest event time delivered, per table the minimum over partitions that are
//! not idle minus the table's delay, over tables the minimum, never going back. Idleness is
//! decided when a batch is planned (and recorded in `offsets/N`), so a replay computes the
//! same watermark.

use std::collections::BTreeMap;

use crate::checkpoint::{SourceRanges, StateRecord};
use crate::options::WatermarkSpec;
use crate::source::TopicPartition;

/// Table → (topic, partition) → value.
pub(crate) type PerPartition = BTreeMap<String, BTreeMap<TopicPartition, i64>>;

/// The partitions of each table with a watermark that read nothing in the planned batch and
/// last delivered rows at least the table's idle timeout before `now_ms`.
pub(crate) fn idle_partitions(
    specs: &BTreeMap<String, WatermarkSpec>,
    previous: Option<&StateRecord>,
    planned: &BTreeMap<String, SourceRanges>,
    now_ms: i64,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out = BTreeMap::new();
    for (table, spec) in specs {
        let Some(ranges) = planned.get(table) else {
            continue;
        };
        let idle: Vec<TopicPartition> = ranges
            .partitions
            .iter()
            .filter(|(_, r)| r.is_empty())
            .map(|(p, _)| p.clone())
            .filter(|p| {
                let last = previous
                    .and_then(|s| s.last_active.get(table))
                    .and_then(|l| l.get(p))
                    .copied();
                last.is_some_and(|l| now_ms - l >= spec.idle_timeout.as_millis() as i64)
            })
            .collect();
        if !idle.is_empty() {
            out.insert(table.clone(), idle);
        }
    }
    out
}

/// What the watermark knows after a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WatermarkAfter {
    pub watermark: Option<i64>,
    pub event_time: PerPartition,
    pub last_active: PerPartition,
}

/// The watermark after a batch that read `ranges` (planned at `planned_ms`, with `idle`
/// partitions) and whose rows had the latest event times `maxima`.
pub(crate) fn advance(
    specs: &BTreeMap<String, WatermarkSpec>,
    previous: Option<&StateRecord>,
    ranges: &BTreeMap<String, SourceRanges>,
    idle: &BTreeMap<String, Vec<TopicPartition>>,
    maxima: &PerPartition,
    planned_ms: i64,
) -> WatermarkAfter {
    let mut event_time = previous.map(|s| s.event_time.clone()).unwrap_or_default();
    let mut last_active = previous.map(|s| s.last_active.clone()).unwrap_or_default();
    let mut candidate: Option<Option<i64>> = None;
    for (table, spec) in specs {
        let times = event_time.entry(table.clone()).or_default();
        for (p, m) in maxima.get(table).into_iter().flatten() {
            let e = times.entry(p.clone()).or_insert(*m);
            *e = (*e).max(*m);
        }
        let active_at = last_active.entry(table.clone()).or_default();
        let partitions: Vec<TopicPartition> = ranges
            .get(table)
            .map(|r| r.partitions.keys().cloned().collect())
            .unwrap_or_default();
        for p in &partitions {
            let read_rows = ranges
                .get(table)
                .and_then(|r| r.partitions.get(p))
                .is_some_and(|r| !r.is_empty());
            // A partition seen for the first time counts as active from now.
            if read_rows || !active_at.contains_key(p) {
                active_at.insert(p.clone(), planned_ms);
            }
        }
        let idle_here: &[TopicPartition] = idle.get(table).map(Vec::as_slice).unwrap_or(&[]);
        let active: Vec<&TopicPartition> = partitions
            .iter()
            .filter(|p| !idle_here.contains(p))
            .collect();
        let delay = spec.delay_ms();
        let table_candidate = if active.is_empty() {
            times.values().max().map(|m| m - delay)
        } else if active.iter().all(|p| times.contains_key(*p)) {
            active
                .iter()
                .filter_map(|p| times.get(*p))
                .min()
                .map(|m| m - delay)
        } else {
            None
        };
        candidate = Some(match (candidate, table_candidate) {
            (None, c) => c,
            (Some(Some(a)), Some(b)) => Some(a.min(b)),
            (Some(_), _) => None,
        });
    }
    let before = previous.and_then(|s| s.watermark);
    let watermark = match (before, candidate.flatten()) {
        (Some(b), Some(c)) => Some(b.max(c)),
        (b, c) => b.or(c),
    };
    WatermarkAfter {
        watermark,
        event_time,
        last_active,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::source::OffsetRange;

    fn spec() -> BTreeMap<String, WatermarkSpec> {
        [(
            "t".to_string(),
            WatermarkSpec {
                column: "_timestamp".into(),
                delay: Duration::from_millis(10),
                idle_timeout: Duration::from_millis(1000),
                late_topic: None,
            },
        )]
        .into()
    }

    fn ranges(parts: &[(i32, i64, i64)]) -> BTreeMap<String, SourceRanges> {
        [(
            "t".to_string(),
            SourceRanges {
                kind: "memory".into(),
                topic: "t".into(),
                partitions: parts
                    .iter()
                    .map(|(p, a, b)| (TopicPartition::new("t", *p), OffsetRange::closed(*a, *b)))
                    .collect(),
                skipped: BTreeMap::new(),
                work_queue: None,
                high: Default::default(),
            },
        )]
        .into()
    }

    fn state(after: &WatermarkAfter) -> StateRecord {
        StateRecord {
            watermark: after.watermark,
            event_time: after.event_time.clone(),
            last_active: after.last_active.clone(),
            ..Default::default()
        }
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back() {
        let specs = spec();
        let maxima = |p0: i64| -> PerPartition {
            [("t".into(), [(TopicPartition::new("t", 0), p0)].into())].into()
        };
        // Batch 0: partition 1 reads nothing and has never delivered: no watermark yet.
        let r0 = ranges(&[(0, 0, 5), (1, 0, 0)]);
        let idle0 = idle_partitions(&specs, None, &r0, 0);
        assert!(idle0.is_empty());
        let a0 = advance(&specs, None, &r0, &idle0, &maxima(500), 0);
        assert_eq!(a0.watermark, None);
        // Batch 1, 2 s later: partition 1 is idle now; partition 0 alone sets the watermark.
        let r1 = ranges(&[(0, 5, 9), (1, 0, 0)]);
        let idle1 = idle_partitions(&specs, Some(&state(&a0)), &r1, 2_000);
        assert_eq!(
            idle1,
            [("t".to_string(), vec![TopicPartition::new("t", 1)])].into()
        );
        let a1 = advance(&specs, Some(&state(&a0)), &r1, &idle1, &maxima(900), 2_000);
        assert_eq!(a1.watermark, Some(890));
        // It never goes back.
        let a2 = advance(&specs, Some(&state(&a1)), &r1, &idle1, &maxima(100), 2_100);
        assert_eq!(a2.watermark, Some(890));
    }
}
