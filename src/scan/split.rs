//! Split scans: a bounded partition range read as several output partitions, so a backfill of
//! a topic with fewer partitions than cores uses every core (Spark's `minPartitions`, Trino's
//! messages per split). Each piece is read in offset order by its own reader; pieces of one
//! partition are disjoint and together read exactly what the unsplit scan would.

use super::plan::PartitionScan;
use crate::options::topics::MIN_SPLIT_MESSAGES;
use crate::source::OffsetRange;

/// Cuts `scans` into pieces of at most `max_messages` offsets, then halves the biggest piece
/// until there are at least `min_partitions` (never below [`MIN_SPLIT_MESSAGES`] a piece).
/// Scans with an open range (live) are never split; a scan's skipped count stays with its
/// first piece.
pub fn split_scans(
    scans: Vec<PartitionScan>,
    max_messages: Option<u64>,
    min_partitions: Option<usize>,
) -> Vec<PartitionScan> {
    if scans.iter().any(|s| !s.is_bounded()) {
        return scans;
    }
    let mut pieces: Vec<PartitionScan> = match max_messages {
        Some(max) => scans.into_iter().flat_map(|s| cut(s, max.max(1))).collect(),
        None => scans,
    };
    if let Some(min) = min_partitions {
        while pieces.len() < min {
            let Some((i, size)) = pieces
                .iter()
                .enumerate()
                .map(|(i, p)| (i, offsets(p)))
                .max_by_key(|(_, n)| *n)
            else {
                break;
            };
            if size < 2 * MIN_SPLIT_MESSAGES {
                break;
            }
            let piece = pieces.remove(i);
            let halves = cut(piece, size.div_ceil(2));
            for (k, half) in halves.into_iter().enumerate() {
                pieces.insert(i + k, half);
            }
        }
    }
    pieces
}

fn offsets(scan: &PartitionScan) -> u64 {
    scan.ranges.iter().map(OffsetRange::len).sum()
}

/// Cuts one bounded scan into consecutive pieces of at most `max` offsets.
fn cut(scan: PartitionScan, max: u64) -> Vec<PartitionScan> {
    if offsets(&scan) <= max {
        return vec![scan];
    }
    let mut pieces = Vec::new();
    let mut current: Vec<OffsetRange> = Vec::new();
    let mut room = max;
    for range in &scan.ranges {
        let mut start = range.start;
        let end = range.end_or_max();
        while start < end {
            let take = ((end - start) as u64).min(room) as i64;
            current.push(OffsetRange::closed(start, start + take));
            start += take;
            room -= take as u64;
            if room == 0 {
                pieces.push(std::mem::take(&mut current));
                room = max;
            }
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, ranges)| PartitionScan {
            topic: scan.topic.clone(),
            partition: scan.partition,
            ranges,
            skipped: if i == 0 { scan.skipped } else { 0 },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(p: i32, ranges: &[(i64, i64)]) -> PartitionScan {
        PartitionScan {
            topic: "t".into(),
            partition: p,
            ranges: ranges
                .iter()
                .map(|(a, b)| OffsetRange::closed(*a, *b))
                .collect(),
            skipped: 3,
        }
    }

    fn spans(scans: &[PartitionScan]) -> Vec<(i32, Vec<(i64, i64)>)> {
        scans
            .iter()
            .map(|s| {
                (
                    s.partition,
                    s.ranges.iter().map(|r| (r.start, r.end_or_max())).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn pieces_cover_exactly_the_unsplit_ranges() {
        let pieces = split_scans(vec![scan(0, &[(0, 25), (30, 40)])], Some(10), None);
        assert_eq!(
            spans(&pieces),
            vec![
                (0, vec![(0, 10)]),
                (0, vec![(10, 20)]),
                (0, vec![(20, 25), (30, 35)]),
                (0, vec![(35, 40)]),
            ]
        );
        assert_eq!(pieces.iter().map(|p| p.skipped).sum::<u64>(), 3);
        // Small enough: unchanged.
        assert_eq!(
            split_scans(vec![scan(1, &[(0, 5)])], Some(10), None).len(),
            1
        );
    }

    #[test]
    fn min_partitions_halves_the_biggest_and_stops_at_the_smallest_piece() {
        let pieces = split_scans(
            vec![scan(0, &[(0, 1_000_000)]), scan(1, &[(0, 100)])],
            None,
            Some(4),
        );
        assert_eq!(
            spans(&pieces),
            vec![
                (0, vec![(0, 500_000)]),
                (0, vec![(500_000, 750_000)]),
                (0, vec![(750_000, 1_000_000)]),
                (1, vec![(0, 100)]),
            ]
        );
        // Never below 10 000 offsets a piece.
        let pieces = split_scans(vec![scan(0, &[(0, 30_000)])], None, Some(16));
        assert_eq!(
            spans(&pieces),
            vec![(0, vec![(0, 15_000)]), (0, vec![(15_000, 30_000)])]
        );
    }

    #[test]
    fn live_scans_are_never_split() {
        let live = PartitionScan {
            ranges: vec![OffsetRange::open(0)],
            ..scan(0, &[])
        };
        assert_eq!(
            split_scans(vec![live.clone()], Some(1), Some(8)),
            vec![live]
        );
    }
}
