//! Running one micro-batch: the SELECT with every source table bound to the batch's recorded
//! ranges, its rows written through the exactly-once sink (for a stateful query, after its
//! state was merged and the groups to emit chosen), then the state, the commit, the
//! work-queue acknowledgements and the consumer-group commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect, execute_stream};
use futures::StreamExt;

use super::compile::{ContinuousQuery, QueryKind, SourceRole};
use super::progress::{BatchProgress, SourceRead, StateProgress};
use super::stateful::shape::Shape;
use super::stateful::watermark::advance;
use super::stateful::{OutputMode, by_table, run_stages};
use crate::checkpoint::{
    CheckpointLog, CommitRecord, Metadata, OffsetsRecord, SourceRanges, StateRecord, now_ms,
    records,
};
use crate::error::{Result, TopicsError};
use crate::scan::TopicScanExec;
use crate::sink::{BatchToWrite, BatchWritten};
use crate::source::{DeferredAcks, TableSource};

/// What every batch of one run shares: the checkpoint, its owner's metadata, this runner's
/// id, the consumer group to commit to, and how a stateful query writes.
pub(crate) struct RunContext<'a> {
    pub log: &'a CheckpointLog,
    pub meta: &'a Metadata,
    pub runner: &'a str,
    pub commit_group: Option<&'a str>,
    pub output_mode: OutputMode,
}

/// Which attempt at a batch this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Planned by this run: nothing of it was written yet.
    First,
    /// Planned by an earlier run that stopped before committing: the sink may hold part of it.
    Replay,
    /// Planned by an earlier run, and the sink (which keeps its own positions) committed it:
    /// run again for its state and figures only, writing nothing.
    AlreadyInSink,
}

/// What executing a batch produced besides its rows in the sink.
pub(crate) struct Executed {
    pub written: BatchWritten,
    /// What the scans read, per source topic.
    pub read: BTreeMap<String, SourceRead>,
    /// Acknowledgements each work-queue table keeps for after the commit.
    pub acks: BTreeMap<String, Arc<DeferredAcks>>,
    /// A stateful query's state after the batch.
    pub state: Option<StateRecord>,
    /// Time spent writing the state file.
    pub state_write: std::time::Duration,
}

impl ContinuousQuery {
    /// Runs `record`'s batch into the sink and commits it (state, checkpoint, then the work
    /// queues' acknowledgements, then the consumer group if asked); `previous` is the state
    /// the batch before committed. Returns its progress and the average message size per
    /// source topic.
    pub(crate) async fn execute_batch(
        &self,
        run: &RunContext<'_>,
        record: &OffsetsRecord,
        previous: Option<&StateRecord>,
        attempt: Attempt,
        lag: i64,
    ) -> Result<(BatchProgress, BTreeMap<String, f64>)> {
        let started = Instant::now();
        let executed = self.run_batch(run, record, previous, attempt).await?;
        let mut commit = commit_record(record, run.runner, executed.written, false);
        commit.state = executed.state.clone();
        let committing = Instant::now();
        run.log.write_commit(&commit).await?;
        let checkpoint_time = executed.state_write + committing.elapsed();
        if record.batch.is_multiple_of(PURGE_EVERY) {
            match run.log.purge(record.batch).await {
                Ok(n) if n > 0 => {
                    log::debug!("batch {}: purged {n} checkpoint files", record.batch)
                }
                Ok(_) => {}
                Err(e) => log::warn!("batch {}: {e}; old checkpoint files stay", record.batch),
            }
        }
        // Only now may the work queues forget the messages: a failure here redelivers them.
        let mut queue_reads = BTreeMap::new();
        for (table, acks) in executed.acks {
            queue_reads.insert(table, acks.messages());
            if let Err(e) = acks.send_all().await {
                log::warn!(
                    "batch {}: {e}; the queue delivers those messages again",
                    record.batch
                );
            }
        }
        if let Some(group) = run.commit_group {
            self.commit_to_group(group, record).await;
        }
        let progress = BatchProgress {
            batch: record.batch,
            replayed: attempt != Attempt::First,
            sources: record.sources.clone(),
            rows: executed.written.rows,
            already_written: executed.written.already_written,
            tombstones: executed.written.tombstones,
            lag,
            queue_reads,
            state: executed.state.as_ref().map(StateProgress::from),
            read: executed.read.clone(),
            checkpoint_time,
            elapsed: started.elapsed(),
        };
        Ok((progress, average_message_bytes(&executed.read)))
    }

    /// Binds every source to `sources` (the batch's recorded ranges; a stream table with rows
    /// older than `late_before` late) and plans the SELECT. Work-queue tables keep their
    /// acknowledgements in `acks`.
    pub(crate) async fn batch_plan(
        &self,
        sources: &BTreeMap<String, SourceRanges>,
        late_before: Option<i64>,
        mut acks: Option<&mut BTreeMap<String, Arc<DeferredAcks>>>,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let mut bound: HashMap<TableReference, Arc<dyn TableProvider>> = HashMap::new();
        for s in &self.sources {
            let name = s.name.to_string();
            let planned = sources.get(&name);
            let recorded_queue = planned.is_some_and(|r| r.work_queue.is_some());
            let table = match s.table.source() {
                TableSource::Queue(_) if planned.is_none() || recorded_queue => {
                    let deferred = Arc::new(DeferredAcks::new());
                    let max = planned
                        .and_then(|r| r.work_queue.as_ref())
                        .and_then(|q| q.max_messages);
                    if let Some(acks) = acks.as_deref_mut() {
                        acks.insert(name.clone(), Arc::clone(&deferred));
                    }
                    s.table.queue_batch(deferred, max)
                }
                TableSource::Log(_) if !recorded_queue => s
                    .table
                    .with_ranges(planned.map(|r| r.partitions.clone()).unwrap_or_default())
                    .map(|t| match s.role {
                        SourceRole::Stream => t.with_late_before(late_before),
                        SourceRole::Dimension => t,
                    }),
                _ => None,
            };
            let table = table.ok_or_else(|| {
                TopicsError::plan(format!(
                    "a batch recorded table {name} as {}, but it is {} now",
                    if recorded_queue {
                        "a work queue"
                    } else {
                        "a log read by ranges"
                    },
                    if s.table.source().queue().is_some() {
                        "a work queue"
                    } else {
                        "a log read by ranges"
                    }
                ))
            })?;
            bound.insert(s.name.clone(), Arc::new(table));
        }
        let plan = bind_sources(&self.select, &bound)?;
        self.planner.create_physical_plan(&plan).await
    }

    /// Runs one batch over exactly `record`'s ranges into the sink.
    async fn run_batch(
        &self,
        run: &RunContext<'_>,
        record: &OffsetsRecord,
        previous: Option<&StateRecord>,
        attempt: Attempt,
    ) -> Result<Executed> {
        let df_err = |e: DataFusionError| TopicsError::Sink {
            target: self.sink.describe(),
            detail: format!("batch {}: {e}", record.batch),
        };
        let mut acks = BTreeMap::new();
        let stateful = self.kind != QueryKind::Stateless;
        let late_before = if stateful { record.watermark } else { None };
        let physical = self
            .batch_plan(&record.sources, late_before, Some(&mut acks))
            .await
            .map_err(|e| match crate::error::topics_error(&e) {
                Some(TopicsError::Plan(p)) => TopicsError::Plan(p.clone()),
                _ => df_err(e),
            })?;
        let mut retracted = Vec::new();
        let (output, state) = match self.shape_of(&physical)? {
            Shape::Stateless => (Arc::clone(&physical), None),
            Shape::Aggregate(stages) => {
                let rows = match previous {
                    Some(p) if !p.file.is_empty() => run.log.read_state(&p.file).await?,
                    _ => Vec::new(),
                };
                let specs = self.watermark_specs();
                let topics = self.stream_topics();
                let mut after = None;
                let outcome = run_stages(
                    &physical,
                    &stages,
                    run.output_mode,
                    self.sink.update_output(),
                    rows,
                    self.ctx.task_ctx(),
                    |maxima| {
                        let a = advance(
                            &specs,
                            previous,
                            &record.sources,
                            &record.idle,
                            &by_table(maxima, &topics),
                            record.planned_ms,
                        );
                        let watermark = a.watermark;
                        after = Some(a);
                        watermark
                    },
                )
                .await?;
                let after = after.unwrap_or_default();
                if let Some(plan) = &outcome.retracted
                    && self.sink.writes_tombstones()
                {
                    retracted = collect(Arc::clone(plan), self.ctx.task_ctx())
                        .await
                        .map_err(df_err)?;
                }
                let state = PendingState {
                    rows: outcome.keep,
                    schema: outcome.state_schema,
                    record: StateRecord {
                        file: String::new(),
                        rows: 0,
                        bytes: 0,
                        watermark: after.watermark,
                        event_time: after.event_time,
                        last_active: after.last_active,
                        late_rows: outcome.late_rows,
                        emitted: outcome.emitted,
                    },
                };
                (outcome.output, Some(state))
            }
        };
        let mut stream =
            execute_stream(Arc::clone(&output), self.ctx.task_ctx()).map_err(df_err)?;
        let written = if attempt == Attempt::AlreadyInSink {
            let mut rows = 0u64;
            while let Some(b) = stream.next().await {
                rows += b.map_err(df_err)?.num_rows() as u64;
            }
            BatchWritten {
                rows,
                already_written: rows,
                tombstones: 0,
            }
        } else {
            let to_write = BatchToWrite {
                query_id: &run.meta.query_id,
                batch: record.batch,
                sources: &record.sources,
                marks: &record.sink,
                replay: attempt == Attempt::Replay,
            };
            self.sink.write_batch(&to_write, stream, retracted).await?
        };
        let writing = Instant::now();
        let state = match state {
            Some(pending) => Some(pending.write(run.log, record.batch, run.runner).await?),
            None => None,
        };
        let state_write = writing.elapsed();
        Ok(Executed {
            written,
            read: scan_reads(&physical),
            acks,
            state,
            state_write,
        })
    }

    /// Commits the batch's end offsets to a consumer group; failures are logged, not fatal.
    async fn commit_to_group(&self, group: &str, record: &OffsetsRecord) {
        for s in &self.sources {
            let (Some(ranges), TableSource::Log(set), SourceRole::Stream) = (
                record.sources.get(&s.name.to_string()),
                s.table.source(),
                s.role,
            ) else {
                continue;
            };
            let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
            for (p, r) in &ranges.partitions {
                by_topic
                    .entry(&p.topic)
                    .or_default()
                    .push((p.partition, r.end_or_max()));
            }
            for (topic, ends) in by_topic {
                let committed = match set.member(topic) {
                    Ok(log) => log.commit_offsets(group, &ends).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = committed {
                    log::warn!("batch {}: {e}", record.batch);
                }
            }
        }
    }
}

/// Old checkpoint files are purged after every this many batches (one LIST per kind).
const PURGE_EVERY: u64 = 10;

/// A batch's state, written once its output is in the sink.
struct PendingState {
    rows: Vec<RecordBatch>,
    schema: arrow::datatypes::SchemaRef,
    record: StateRecord,
}

impl PendingState {
    async fn write(self, log: &CheckpointLog, batch: u64, runner: &str) -> Result<StateRecord> {
        let (file, bytes) = log
            .write_state(batch, runner, &self.schema, &self.rows)
            .await?;
        Ok(StateRecord {
            file,
            bytes,
            rows: self.rows.iter().map(|b| b.num_rows() as u64).sum(),
            ..self.record
        })
    }
}

/// `plan` with every scan of a table in `tables` reading that provider instead (subqueries
/// included).
pub(crate) fn bind_sources(
    plan: &LogicalPlan,
    tables: &HashMap<TableReference, Arc<dyn TableProvider>>,
) -> datafusion::error::Result<LogicalPlan> {
    plan.clone()
        .transform_up_with_subqueries(|node| match node {
            LogicalPlan::TableScan(mut scan) => match tables.get(&scan.table_name) {
                Some(table) => {
                    scan.source = provider_as_source(Arc::clone(table));
                    Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                }
                None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
            },
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

/// The commit record of `record`'s batch.
pub(crate) fn commit_record(
    record: &OffsetsRecord,
    runner: &str,
    written: BatchWritten,
    abandoned: bool,
) -> CommitRecord {
    CommitRecord {
        format: records::FORMAT.into(),
        version: records::VERSION,
        batch: record.batch,
        runner: runner.to_string(),
        rows: written.rows,
        already_written: written.already_written,
        committed_ms: now_ms(),
        abandoned,
        state: None,
    }
}

/// What each topic's scans in `plan` read, from their statistics.
fn scan_reads(plan: &Arc<dyn ExecutionPlan>) -> BTreeMap<String, SourceRead> {
    let mut reads: BTreeMap<String, SourceRead> = BTreeMap::new();
    // A plan that ran on workers read there: its scans here counted nothing, and their
    // figures are the workers' (dft_scan_messages_read_total). Report none rather than zeros.
    if plan.name() == "WorkerErrorsExec" {
        return reads;
    }
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<TopicScanExec>() {
            let stats = scan.statistics();
            let read = reads.entry(scan.topic().to_string()).or_default();
            read.messages += stats.messages();
            read.bytes += stats.bytes();
            read.bad += stats.bad();
            for (p, ms) in stats.newest_ms() {
                let newest = read.newest_ms.entry(p).or_insert(ms);
                *newest = (*newest).max(ms);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    reads
}

/// Average bytes per message of each topic that delivered any.
fn average_message_bytes(reads: &BTreeMap<String, SourceRead>) -> BTreeMap<String, f64> {
    reads
        .iter()
        .filter(|(_, r)| r.messages > 0)
        .map(|(t, r)| (t.clone(), r.bytes as f64 / r.messages as f64))
        .collect()
}
