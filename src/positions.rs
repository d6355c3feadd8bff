//! Start and end positions (scan.startup.* / scan.bounded.*) resolved into per-partition
//! offset ranges against the partitions' watermarks when the query starts.

use std::collections::BTreeMap;

use crate::error::{Result, TopicsError};
use crate::options::{BoundedMode, ScanOptions, StartupMode};
use crate::source::{OffsetRange, Source, Watermarks};

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
/// what exists when the query starts. Start offsets outside `[low, high]` are errors.
pub async fn resolve_ranges(
    source: &dyn Source,
    scan: &ScanOptions,
    partitions: &[i32],
) -> Result<Vec<PartitionPositions>> {
    let marks = source.watermarks(partitions).await?;
    let topic = source.topic();

    let mut starts: Vec<i64> = match &scan.startup {
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
    let mut skipped = vec![0u64; partitions.len()];
    for (i, ((&p, w), start)) in partitions
        .iter()
        .zip(&marks)
        .zip(starts.iter_mut())
        .enumerate()
    {
        if *start < w.low && !scan.fail_on_data_loss {
            log::warn!(
                "{topic} partition {p}: offsets [{start}, {}) were removed; skipping them",
                w.low
            );
            skipped[i] = (w.low - *start) as u64;
            *start = w.low;
        }
        check_start(topic, p, *start, w, &scan.startup)?;
    }

    let ends: Vec<Option<i64>> = match &scan.bounded {
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

    Ok(partitions
        .iter()
        .zip(marks)
        .zip(starts.into_iter().zip(ends))
        .zip(skipped)
        .map(
            |(((&partition, marks), (start, end)), skipped)| PartitionPositions {
                partition,
                range: OffsetRange {
                    start,
                    end: end.map(|e| e.max(start)),
                },
                marks,
                skipped,
            },
        )
        .collect())
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

fn check_start(
    topic: &str,
    partition: i32,
    start: i64,
    w: &Watermarks,
    mode: &StartupMode,
) -> Result<()> {
    if start >= w.low && start <= w.high {
        return Ok(());
    }
    let origin = match mode {
        StartupMode::GroupOffsets => "the group's committed offset",
        StartupMode::SpecificOffsets(_) => "scan.startup.specific-offsets",
        _ => "the start offset",
    };
    let hint = if start < w.low {
        format!(
            ": {origin} was removed by retention; start at earliest-offset or at {}",
            w.low
        )
    } else {
        format!(
            ": {origin} is beyond the last message; the next offset to be written is {}",
            w.high
        )
    };
    Err(TopicsError::OffsetOutOfRange {
        topic: topic.to_string(),
        partition,
        offset: start,
        low: w.low,
        high: w.high,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_outside_the_partition_say_why() {
        let w = Watermarks { low: 3, high: 5 };
        assert!(check_start("t", 0, 3, &w, &StartupMode::Earliest).is_ok());
        assert!(check_start("t", 0, 5, &w, &StartupMode::Latest).is_ok());
        let below = check_start(
            "t",
            0,
            1,
            &w,
            &StartupMode::SpecificOffsets(Default::default()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            below.contains("offset 1") && below.contains("[3, 5)") && below.contains("retention"),
            "{below}"
        );
        let above = check_start("t", 2, 9, &w, &StartupMode::GroupOffsets)
            .unwrap_err()
            .to_string();
        assert!(
            above.contains("partition 2")
                && above.contains("committed")
                && above.contains("beyond"),
            "{above}"
        );
    }
}
