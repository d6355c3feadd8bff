//! The run loop of a continuous query: claim the checkpoint, finish (replay or abandon) a
//! batch an earlier run left uncommitted, then plan, record, run and commit batches as the
//! trigger says.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::batch::{Attempt, RunContext, commit_record};
use super::compile::{ContinuousQuery, QueryKind};
use super::plan::{Edges, RunBounds, edges_of, high_watermarks, plan_next, queue_pending};
use super::positions::{CheckpointAt, Start, reconcile};
use super::progress::BatchProgress;
use super::stateful::watermark::{advance, idle_partitions};
use super::stateful::{OutputMode, UpdateOutput};
use super::trigger::Trigger;
use crate::checkpoint::{CheckpointLog, OffsetsRecord, StateRecord, new_id, now_ms, records};
use crate::error::{Result, TopicsError};
use crate::scan::Limits;

/// How a continuous query runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Checkpoint location (object_store URL or local directory).
    pub checkpoint: String,
    /// When batches run.
    pub trigger: Trigger,
    /// Per-partition, per-batch rate limits.
    pub limits: Limits,
    /// Stop after this many batches in this run (replays included); `None` runs on.
    pub max_batches: Option<u64>,
    /// After each commit, also commit the batch's end offsets of log sources to this
    /// consumer group, for lag dashboards (never read back: the checkpoint is the truth).
    pub commit_group: Option<String>,
    /// How an aggregating query writes: `None` picks append for windows over an event-time
    /// column, update otherwise.
    pub output_mode: Option<OutputMode>,
}

impl ContinuousQuery {
    /// The output mode the query runs in, checked against what it computes.
    pub fn output_mode(&self, asked: Option<OutputMode>) -> Result<OutputMode> {
        let mode = self.mode_for_kind(asked)?;
        if let QueryKind::Aggregate { filtered: true, .. } = self.kind
            && mode == OutputMode::Update
            && self.sink.update_output() == UpdateOutput::Changes
            && !(self.sink.writes_tombstones() && self.selects_key())
        {
            return Err(TopicsError::plan(format!(
                "this query's HAVING can remove a group from the result, which update output \
                 into {} says with a tombstone for the group's key; select the group key AS \
                 _key (INSERT INTO … (…, _key) SELECT …, customer AS _key …), or drop the HAVING",
                self.sink.describe()
            )));
        }
        Ok(mode)
    }

    fn mode_for_kind(&self, asked: Option<OutputMode>) -> Result<OutputMode> {
        match (&self.kind, asked) {
            (
                QueryKind::Aggregate {
                    windowed: false, ..
                },
                Some(OutputMode::Append),
            ) => Err(TopicsError::plan(
                "append output writes each group once, when it can no longer change, which \
                     only a window can say: group by date_bin(<interval>, <event-time column>) \
                     over a table with 'watermark.column', or use update output",
            )),
            (QueryKind::Aggregate { windowed: true, .. }, None) => Ok(OutputMode::Append),
            (_, Some(mode)) => Ok(mode),
            _ => Ok(OutputMode::Update),
        }
    }
}

impl ContinuousQuery {
    /// Runs batches until the trigger says stop (available-now), `max_batches` is reached, or
    /// an error. Dropping the future stops the query; an interrupted batch is replayed by the
    /// next run. Returns the number of batches run.
    pub async fn run(
        &self,
        options: &RunOptions,
        mut progress: impl FnMut(&BatchProgress),
    ) -> Result<u64> {
        let output_mode = self.output_mode(options.output_mode)?;
        let log = CheckpointLog::open(&options.checkpoint)?;
        let meta = log.claim(&self.text).await?;
        let query_id = meta.query_id.clone();
        let mut report = |p: &BatchProgress| {
            crate::observe::record_batch(&query_id, p, now_ms());
            progress(p);
        };
        let outcome = self
            .run_claimed(options, output_mode, &log, &meta, &mut report)
            .await;
        if let Err(TopicsError::Fenced { .. }) = &outcome {
            crate::observe::record_fenced(&meta.query_id);
        }
        outcome
    }

    async fn run_claimed(
        &self,
        options: &RunOptions,
        output_mode: OutputMode,
        log: &CheckpointLog,
        meta: &crate::checkpoint::Metadata,
        progress: &mut impl FnMut(&BatchProgress),
    ) -> Result<u64> {
        let runner = new_id();
        let run = RunContext {
            log,
            meta,
            runner: &runner,
            commit_group: options.commit_group.as_deref(),
            output_mode,
        };
        let stateful = self.kind != QueryKind::Stateless;
        let specs = self.watermark_specs();
        // The state the last committed batch left.
        let mut state: Option<StateRecord> = None;
        let mut done = 0u64;
        let mut ends: Edges = BTreeMap::new();
        let mut avg_bytes: BTreeMap<String, f64> = BTreeMap::new();
        let mut next = 0u64;
        let latest = match log.latest_offsets().await? {
            Some(last) => {
                let record = log
                    .offsets(last)
                    .await?
                    .ok_or_else(|| TopicsError::Checkpoint {
                        url: log.url().to_string(),
                        detail: format!("offsets of batch {last} vanished while being read"),
                    })?;
                let commit = log.commit(last).await?;
                Some((record, commit))
            }
            None => None,
        };
        let start = self
            .start_with_sink(
                latest.as_ref().map(|(record, commit)| CheckpointAt {
                    record,
                    committed: commit.is_some(),
                }),
                log.url(),
            )
            .await?;
        if let Start::FromSink(sink) = start {
            ends = sink.ends;
            next = sink.batch + 1;
        } else if let Some((record, commit)) = latest {
            let last = record.batch;
            ends = edges_of(&record.sources, |r| r.end_or_max());
            let committed_before = match last {
                0 => None,
                n => log.commit(n - 1).await?,
            };
            if let Some(commit) = commit {
                state = commit.state;
            } else {
                state = committed_before.and_then(|c| c.state);
                if record.sources.values().any(|s| s.work_queue.is_some()) {
                    // Its messages went back to the queue: a replay cannot read them again.
                    // The next batch re-reads its offset ranges instead.
                    log::warn!(
                        "batch {last} read a work queue and was interrupted: abandoning it; \
                         its messages are redelivered and its ranges read again (at-least-once)"
                    );
                    log.write_commit(&commit_record(&record, &runner, Default::default(), true))
                        .await?;
                    crate::observe::record_abandoned(&meta.query_id);
                    ends = edges_of(&record.sources, |r| r.start);
                } else {
                    let attempt = match start {
                        Start::CommitWithoutWriting => Attempt::AlreadyInSink,
                        _ => Attempt::Replay,
                    };
                    let (replayed, _) = self
                        .execute_batch(&run, &record, state.as_ref(), attempt, 0)
                        .await?;
                    state = log.commit(last).await?.and_then(|c| c.state);
                    done += 1;
                    progress(&replayed);
                }
            }
            next = last + 1;
        }
        let mut bounds = match options.trigger {
            Trigger::AvailableNow => RunBounds {
                caps: Some(high_watermarks(&self.sources).await?),
                // Available-now reads of a work queue stop after what was pending at the start.
                queue_left: Some(queue_pending(&self.sources).await?),
            },
            Trigger::Interval(_) => RunBounds::default(),
        };
        loop {
            if options.max_batches.is_some_and(|max| done >= max) {
                return Ok(done);
            }
            let started = Instant::now();
            let planned =
                plan_next(&self.sources, &ends, &bounds, options.limits, &avg_bytes).await?;
            // Without new data, a stateful query still runs a batch when partitions turned idle
            // and so move the watermark on: windows that waited for them close.
            let idle_news = stateful
                && !planned.has_data()
                && watermark_moves(&specs, state.as_ref(), &planned.sources, now_ms());
            if !planned.has_data() && !planned.skipped_any() && !idle_news {
                match options.trigger {
                    Trigger::AvailableNow => return Ok(done),
                    Trigger::Interval(every) => {
                        tokio::time::sleep(every.max(Duration::from_millis(100))).await;
                        continue;
                    }
                }
            }
            let reads_ranges = planned.reads_ranges();
            let planned_ms = now_ms();
            let (watermark, idle) = if stateful {
                (
                    state.as_ref().and_then(|s| s.watermark),
                    idle_partitions(&specs, state.as_ref(), &planned.sources, planned_ms),
                )
            } else {
                (None, Default::default())
            };
            let record = OffsetsRecord {
                format: records::FORMAT.into(),
                version: records::VERSION,
                batch: next,
                runner: runner.clone(),
                planned_ms,
                sources: planned.sources,
                sink: self.sink.marks().await?,
                watermark,
                idle,
            };
            log.write_offsets(&record).await?;
            let (mut batch, bytes) = self
                .execute_batch(&run, &record, state.as_ref(), Attempt::First, planned.lag)
                .await?;
            if stateful {
                state = log.commit(record.batch).await?.and_then(|c| c.state);
            }
            // A planned batch's time includes its planning.
            batch.elapsed = started.elapsed();
            avg_bytes.extend(bytes);
            if let Some(left) = &mut bounds.queue_left {
                for (table, read) in &batch.queue_reads {
                    if let Some(n) = left.get_mut(table) {
                        *n = n.saturating_sub(*read);
                    }
                }
            }
            done += 1;
            progress(&batch);
            ends = edges_of(&record.sources, |r| r.end_or_max());
            next += 1;
            // Unacknowledged messages count as pending, but those another reader holds (or
            // whose ack wait has not passed) cannot be read now: available-now stops when a
            // batch of only work queues found nothing.
            let queues_read: u64 = batch.queue_reads.values().sum();
            if matches!(options.trigger, Trigger::AvailableNow) && !reads_ranges && queues_read == 0
            {
                return Ok(done);
            }
            if let Trigger::Interval(every) = options.trigger {
                let wait = every.saturating_sub(started.elapsed());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

impl ContinuousQuery {
    /// How the run starts, given the checkpoint's newest batch: as the checkpoint says, unless
    /// the sink keeps its own positions (see [`reconcile`]).
    async fn start_with_sink(&self, at: Option<CheckpointAt<'_>>, url: &str) -> Result<Start> {
        if !self.sink.keeps_positions() {
            return Ok(Start::FromCheckpoint);
        }
        if let Some(queue) = self
            .sources
            .iter()
            .find(|s| s.table.source().queue().is_some())
        {
            return Err(TopicsError::plan(format!(
                "{} keeps its own positions, which a work queue ({}) has none of: read the \
                 stream by ranges (nats.mode = ordered)",
                self.sink.describe(),
                queue.name
            )));
        }
        let committed = self.sink.committed().await?;
        let streams = self.stream_topics().into_keys().collect();
        reconcile(
            committed.as_ref(),
            at,
            self.kind != QueryKind::Stateless,
            &streams,
            &self.sink.describe(),
            url,
        )
    }
}

/// Whether a batch planned now with `sources` (reading nothing) would move the watermark past
/// where `state` left it, because partitions turned idle.
fn watermark_moves(
    specs: &BTreeMap<String, crate::options::WatermarkSpec>,
    state: Option<&StateRecord>,
    sources: &BTreeMap<String, crate::checkpoint::SourceRanges>,
    now_ms: i64,
) -> bool {
    let Some(state) = state else {
        return false;
    };
    let idle = idle_partitions(specs, Some(state), sources, now_ms);
    if idle.is_empty() {
        return false;
    }
    let after = advance(specs, Some(state), sources, &idle, &BTreeMap::new(), now_ms);
    after.watermark > state.watermark
}
