//! Running one micro-batch: the SELECT with every source table bound to the batch's recorded
//! ranges, its rows written through the exactly-once sink, then the commit, the work-queue
//! acknowledgements and the consumer-group commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};

use super::compile::ContinuousQuery;
use super::progress::BatchProgress;
use crate::checkpoint::{CheckpointLog, CommitRecord, Metadata, OffsetsRecord, now_ms, records};
use crate::error::{Result, TopicsError};
use crate::scan::TopicScanExec;
use crate::sink::BatchWritten;
use crate::source::{DeferredAcks, TableSource};

/// What every batch of one run shares: the checkpoint, its owner's metadata, this runner's
/// id, and the consumer group to commit to.
pub(crate) struct RunContext<'a> {
    pub log: &'a CheckpointLog,
    pub meta: &'a Metadata,
    pub runner: &'a str,
    pub commit_group: Option<&'a str>,
}

/// What executing a batch produced besides its rows in the sink.
pub(crate) struct Executed {
    pub written: BatchWritten,
    /// Average bytes per message read, per source topic.
    pub avg_bytes: BTreeMap<String, f64>,
    /// Acknowledgements each work-queue table keeps for after the commit.
    pub acks: BTreeMap<String, Arc<DeferredAcks>>,
}

impl ContinuousQuery {
    /// Runs `record`'s batch into the sink and commits it (checkpoint, then the work queues'
    /// acknowledgements, then the consumer group if asked); returns its progress and the
    /// average message size per source topic.
    pub(crate) async fn execute_batch(
        &self,
        run: &RunContext<'_>,
        record: &OffsetsRecord,
        replay: bool,
        lag: i64,
    ) -> Result<(BatchProgress, BTreeMap<String, f64>)> {
        let started = Instant::now();
        let executed = self.run_batch(run.meta, record, replay).await?;
        run.log
            .write_commit(&commit_record(record, run.runner, executed.written, false))
            .await?;
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
            replayed: replay,
            sources: record.sources.clone(),
            rows: executed.written.rows,
            already_written: executed.written.already_written,
            lag,
            queue_reads,
            elapsed: started.elapsed(),
        };
        Ok((progress, executed.avg_bytes))
    }

    /// Runs one batch over exactly `record`'s ranges into the sink.
    async fn run_batch(
        &self,
        meta: &Metadata,
        record: &OffsetsRecord,
        replay: bool,
    ) -> Result<Executed> {
        let df_err = |e: DataFusionError| TopicsError::Sink {
            target: self.sink.describe(),
            detail: format!("batch {}: {e}", record.batch),
        };
        let mut acks = BTreeMap::new();
        let mut bound: HashMap<TableReference, Arc<dyn TableProvider>> = HashMap::new();
        for s in &self.sources {
            let name = s.name.to_string();
            let planned = record.sources.get(&name);
            let table = match (
                s.table.source(),
                planned.and_then(|r| r.work_queue.as_ref()),
            ) {
                (TableSource::Queue(_), Some(queue)) => {
                    let deferred = Arc::new(DeferredAcks::new());
                    let table = s
                        .table
                        .queue_batch(Arc::clone(&deferred), queue.max_messages);
                    acks.insert(name.clone(), deferred);
                    table
                }
                (TableSource::Log(_), None) => s
                    .table
                    .with_ranges(planned.map(|r| r.partitions.clone()).unwrap_or_default()),
                _ => None,
            };
            let table = table.ok_or_else(|| {
                TopicsError::Plan(format!(
                    "batch {} recorded table {name} as {}, but it is {} now",
                    record.batch,
                    if planned.is_some_and(|r| r.work_queue.is_some()) {
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
        let plan = bind_sources(&self.select, &bound).map_err(df_err)?;
        let physical = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(df_err)?
            .create_physical_plan()
            .await
            .map_err(df_err)?;
        let stream = execute_stream(Arc::clone(&physical), self.ctx.task_ctx()).map_err(df_err)?;
        let written = self
            .sink
            .write_batch(&meta.query_id, record.batch, &record.sink, replay, stream)
            .await?;
        Ok(Executed {
            written,
            avg_bytes: average_message_bytes(&physical),
            acks,
        })
    }

    /// Commits the batch's end offsets to a consumer group; failures are logged, not fatal.
    async fn commit_to_group(&self, group: &str, record: &OffsetsRecord) {
        for s in &self.sources {
            let (Some(ranges), TableSource::Log(log)) =
                (record.sources.get(&s.name.to_string()), s.table.source())
            else {
                continue;
            };
            let ends: Vec<(i32, i64)> = ranges
                .partitions
                .iter()
                .map(|(p, r)| (*p, r.end_or_max()))
                .collect();
            if let Err(e) = log.commit_offsets(group, &ends).await {
                log::warn!("batch {}: {e}", record.batch);
            }
        }
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
    }
}

/// Average bytes per message each topic's scans read, from their statistics.
fn average_message_bytes(plan: &Arc<dyn ExecutionPlan>) -> BTreeMap<String, f64> {
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<TopicScanExec>() {
            let stats = scan.statistics();
            let entry = totals.entry(scan.topic().to_string()).or_default();
            entry.0 += stats.bytes();
            entry.1 += stats.messages();
        }
        Ok(TreeNodeRecursion::Continue)
    });
    totals
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(t, (b, n))| (t, b as f64 / n as f64))
        .collect()
}
