//! A sink that keeps its own positions (results and offset ranges in one transaction of its
//! database) against the checkpoint, on start: which one says where the query stands, and
//! what a disagreement means.
//!
//! The rule: a batch the sink committed is never written again, and the sink wins when it
//! is ahead of the checkpoint (a lost or older checkpoint, or a new one). A sink behind the
//! checkpoint, or one that recorded other ranges for the same batch, lost or never had
//! batches the checkpoint says were written: that is an error naming both, never a guess.

use std::collections::BTreeMap;

use crate::checkpoint::OffsetsRecord;
use crate::error::{Result, TopicsError};
use crate::sink::SinkCommitted;
use crate::source::TopicPartition;

/// Where the checkpoint stands: its newest planned batch and whether it was committed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointAt<'a> {
    /// The newest `offsets/N`.
    pub record: &'a OffsetsRecord,
    /// Whether `commits/N` exists.
    pub committed: bool,
}

/// What the runner does on start, given the sink's committed positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// As the checkpoint says (replaying its uncommitted batch, if any).
    FromCheckpoint,
    /// The checkpoint's uncommitted batch is already in the sink: run it again for its
    /// state and figures, write nothing, commit it.
    CommitWithoutWriting,
    /// After the sink's last batch, from the ends it recorded.
    FromSink(SinkCommitted),
}

/// Decides how a run starts from the sink's last commit (`sink`) and the checkpoint's newest
/// batch (`checkpoint`; `None` when empty). `stateful` queries keep their state only in the
/// checkpoint, so they cannot start from the sink alone. `streams` are the tables read
/// incrementally (a snapshot table's next range starts over, not where the last one ended).
pub(crate) fn reconcile(
    sink: Option<&SinkCommitted>,
    checkpoint: Option<CheckpointAt<'_>>,
    stateful: bool,
    streams: &std::collections::BTreeSet<String>,
    sink_name: &str,
    checkpoint_url: &str,
) -> Result<Start> {
    let mismatch = |detail: String| TopicsError::Checkpoint {
        url: checkpoint_url.to_string(),
        detail: format!("{sink_name} and this checkpoint disagree: {detail}"),
    };
    let from_sink = |s: &SinkCommitted, why: &str| {
        if stateful {
            return Err(mismatch(format!(
                "{why}, but this query keeps state (windows, groups) that only the checkpoint \
                 holds, and it has none for batch {}; start from a checkpoint that does, or \
                 clear the sink to start over",
                s.batch
            )));
        }
        log::info!(
            "{sink_name} committed batch {}, {why}: starting after it from the sink's offsets",
            s.batch
        );
        Ok(Start::FromSink(s.clone()))
    };
    let Some(at) = checkpoint else {
        return match sink {
            None => Ok(Start::FromCheckpoint),
            Some(s) => from_sink(s, "the checkpoint is empty"),
        };
    };
    let last = at.record.batch;
    let committed_up_to = if at.committed {
        Some(last)
    } else {
        last.checked_sub(1)
    };
    let Some(s) = sink else {
        return match committed_up_to {
            None => Ok(Start::FromCheckpoint),
            Some(c) => Err(mismatch(format!(
                "the sink has committed no batch, but the checkpoint committed batches up to \
                 {c}: the sink's rows and positions were removed, or this is another database; \
                 restore them, or start over with a new checkpoint"
            ))),
        };
    };
    let ends = ends_of(at.record);
    let same_ends = |s: &SinkCommitted| {
        if s.ends == ends {
            Ok(())
        } else {
            Err(mismatch(format!(
                "for batch {last} the sink recorded ends {:?}, the checkpoint {:?}: the sink \
                 was written by another query or checkpoint",
                s.ends, ends
            )))
        }
    };
    match (s.batch.cmp(&last), at.committed) {
        (std::cmp::Ordering::Equal, true) => {
            same_ends(s)?;
            Ok(Start::FromCheckpoint)
        }
        (std::cmp::Ordering::Equal, false) => {
            same_ends(s)?;
            Ok(Start::CommitWithoutWriting)
        }
        (std::cmp::Ordering::Greater, _) => from_sink(
            s,
            &format!("the checkpoint only planned up to batch {last}"),
        ),
        (std::cmp::Ordering::Less, false) if Some(s.batch) == committed_up_to => {
            // The usual crash: the batch after the sink's is replayed; it must start where
            // the sink's batch ended.
            let starts: BTreeMap<String, BTreeMap<TopicPartition, i64>> = at
                .record
                .sources
                .iter()
                .map(|(t, r)| {
                    let starts = r
                        .partitions
                        .iter()
                        .map(|(p, r)| (p.clone(), r.start))
                        .collect();
                    (t.clone(), starts)
                })
                .collect();
            for (table, partitions) in s.ends.iter().filter(|(t, _)| streams.contains(*t)) {
                for (p, end) in partitions {
                    if let Some(start) = starts.get(table).and_then(|t| t.get(p))
                        && start != end
                    {
                        return Err(mismatch(format!(
                            "the sink's batch {} ended {table} partition {p} at {end}, but \
                             the checkpoint's batch {last} starts it at {start}",
                            s.batch
                        )));
                    }
                }
            }
            Ok(Start::FromCheckpoint)
        }
        (std::cmp::Ordering::Less, _) => Err(mismatch(format!(
            "the sink's last batch is {}, but the checkpoint committed batches up to {}: the \
             sink lost batches (restored from a backup?); restore it, or start over with a \
             new checkpoint and an emptied sink",
            s.batch,
            committed_up_to.map_or_else(|| "none".to_string(), |c| c.to_string())
        ))),
    }
}

/// Per table and partition, where `record`'s batch ended.
fn ends_of(record: &OffsetsRecord) -> BTreeMap<String, BTreeMap<TopicPartition, i64>> {
    SinkCommitted::ends_of(record.batch, &record.sources).ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{SinkMarks, SourceRanges, records};
    use crate::source::OffsetRange;

    fn tp(topic: &str) -> TopicPartition {
        TopicPartition::new(topic, 0)
    }

    fn record(batch: u64, start: i64, end: i64) -> OffsetsRecord {
        let ranges = SourceRanges {
            kind: "kafka".into(),
            topic: "orders".into(),
            partitions: [(tp("orders"), OffsetRange::closed(start, end))].into(),
            skipped: Default::default(),
            work_queue: None,
            high: Default::default(),
        };
        OffsetsRecord {
            format: records::FORMAT.into(),
            version: records::VERSION,
            batch,
            runner: "r".into(),
            planned_ms: 0,
            sources: [("orders".to_string(), ranges)].into(),
            sink: SinkMarks::default(),
            watermark: None,
            idle: Default::default(),
        }
    }

    fn sink(batch: u64, end: i64) -> SinkCommitted {
        SinkCommitted {
            batch,
            ends: [("orders".to_string(), [(tp("orders"), end)].into())].into(),
        }
    }

    fn start(
        s: Option<SinkCommitted>,
        r: Option<(OffsetsRecord, bool)>,
        stateful: bool,
    ) -> Result<Start> {
        let at = r.as_ref().map(|(record, committed)| CheckpointAt {
            record,
            committed: *committed,
        });
        let streams = ["orders".to_string()].into();
        reconcile(s.as_ref(), at, stateful, &streams, "pg", "file:///cp")
    }

    #[test]
    fn agreement_goes_on_from_the_checkpoint() {
        assert_eq!(start(None, None, false).unwrap(), Start::FromCheckpoint);
        let r = Some((record(3, 30, 40), true));
        assert_eq!(
            start(Some(sink(3, 40)), r, false).unwrap(),
            Start::FromCheckpoint
        );
        // Crashed before the sink committed batch 3: replay it.
        let r = Some((record(3, 30, 40), false));
        assert_eq!(
            start(Some(sink(2, 30)), r, true).unwrap(),
            Start::FromCheckpoint
        );
        // Crashed before the sink committed batch 0.
        let r = Some((record(0, 0, 10), false));
        assert_eq!(start(None, r, false).unwrap(), Start::FromCheckpoint);
    }

    #[test]
    fn a_batch_the_sink_committed_is_not_written_again() {
        let r = Some((record(3, 30, 40), false));
        assert_eq!(
            start(Some(sink(3, 40)), r, true).unwrap(),
            Start::CommitWithoutWriting
        );
    }

    #[test]
    fn a_sink_ahead_of_the_checkpoint_wins_for_stateless_queries() {
        assert_eq!(
            start(Some(sink(7, 70)), None, false).unwrap(),
            Start::FromSink(sink(7, 70))
        );
        let r = Some((record(3, 30, 40), true));
        assert_eq!(
            start(Some(sink(7, 70)), r.clone(), false).unwrap(),
            Start::FromSink(sink(7, 70))
        );
        let err = start(Some(sink(7, 70)), r, true).unwrap_err().to_string();
        assert!(
            err.contains("keeps state") && err.contains("file:///cp"),
            "{err}"
        );
    }

    #[test]
    fn a_snapshot_table_starting_over_is_no_disagreement() {
        let mut r = record(3, 30, 40);
        let mut snapshot = r.sources["orders"].clone();
        snapshot.partitions = [(tp("customers"), OffsetRange::closed(0, 500))].into();
        r.sources.insert("customers".to_string(), snapshot);
        let mut s = sink(2, 30);
        s.ends
            .insert("customers".to_string(), [(tp("customers"), 500)].into());
        assert_eq!(
            start(Some(s), Some((r, false)), false).unwrap(),
            Start::FromCheckpoint
        );
    }

    #[test]
    fn a_sink_behind_or_elsewhere_is_an_error_naming_both() {
        let r = Some((record(3, 30, 40), true));
        let err = start(Some(sink(1, 20)), r.clone(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sink's last batch is 1") && err.contains("up to 3"),
            "{err}"
        );
        let err = start(None, r.clone(), false).unwrap_err().to_string();
        assert!(err.contains("committed no batch"), "{err}");
        let err = start(Some(sink(3, 41)), r, false).unwrap_err().to_string();
        assert!(err.contains("another query"), "{err}");
        let r = Some((record(3, 30, 40), false));
        let err = start(Some(sink(2, 29)), r, false).unwrap_err().to_string();
        assert!(err.contains("starts it at 30"), "{err}");
    }
}
