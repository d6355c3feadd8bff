//! The micro-batch runner: plans each batch's offset ranges, records them in the checkpoint
//! before running the batch, writes the batch through an exactly-once sink, then records the
//! commit. A restart finds an uncommitted batch and replays it with the identical ranges.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{DmlStatement, LogicalPlan, WriteOp};
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};

use super::batch_plan::{Limits, plan_partition};
use super::trigger::Trigger;
use crate::checkpoint::{
    CheckpointLog, CommitRecord, Metadata, OffsetsRecord, QueueRead, Range, SourceRanges, new_id,
    now_ms, records,
};
use crate::error::{Result, TopicsError};
use crate::exec::TopicScanExec;
use crate::options::BoundedMode;
use crate::positions::resolve_ranges;
use crate::provider::StreamingTableProvider;
use crate::sink::files::FileFormat;
use crate::sink::{BatchSink, FileBatchSink, RowEncoder, TopicBatchSink};
use crate::source::DeferredAcks;

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
    /// After each commit, also commit the batch's end offsets of Kafka sources to this
    /// consumer group, for lag dashboards (never read back: the checkpoint is the truth).
    pub commit_group: Option<String>,
}

/// What one batch did, for progress lines.
#[derive(Debug, Clone)]
pub struct BatchProgress {
    /// Batch number.
    pub batch: u64,
    /// True when this was the replay of a batch an earlier run did not commit.
    pub replayed: bool,
    /// The ranges read, per source table.
    pub sources: BTreeMap<String, SourceRanges>,
    /// Rows written to the sink (including those an earlier attempt already wrote).
    pub rows: u64,
    /// Rows an interrupted earlier attempt had already written.
    pub already_written: u64,
    /// Offsets still behind the high watermarks when the batch was planned (for work queues,
    /// the messages pending).
    pub lag: i64,
    /// Messages each work-queue table delivered to the batch (acknowledged after its commit).
    pub queue_reads: BTreeMap<String, u64>,
    /// Time the batch took.
    pub elapsed: Duration,
}

impl fmt::Display for BatchProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch {}", self.batch)?;
        if self.replayed {
            f.write_str(" (replay)")?;
        }
        for (table, s) in &self.sources {
            if let Some(q) = &s.work_queue {
                let read = self.queue_reads.get(table).copied().unwrap_or(0);
                write!(f, " {table}[queue {}: {read} read]", q.consumer)?;
                continue;
            }
            write!(f, " {table}[")?;
            for (i, (p, r)) in s.partitions.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{p}:[{},{})", r.start, r.end)?;
            }
            f.write_str("]")?;
        }
        write!(f, " rows={}", self.rows)?;
        if self.already_written > 0 {
            write!(f, " already_written={}", self.already_written)?;
        }
        write!(f, " lag={} in {:?}", self.lag, self.elapsed)
    }
}

/// A source table of the query.
#[derive(Debug)]
struct SourceTable {
    name: TableReference,
    table: StreamingTableProvider,
}

/// A continuous `INSERT INTO sink SELECT … FROM topic tables` query.
pub struct ContinuousQuery {
    ctx: SessionContext,
    insert: Statement,
    text: String,
    sources: Vec<SourceTable>,
    sink: Arc<dyn BatchSink>,
}

impl fmt::Debug for ContinuousQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContinuousQuery")
            .field("query", &self.text)
            .field("sources", &self.sources)
            .field("sink", &self.sink)
            .finish()
    }
}

fn plan_error(detail: impl Into<String>) -> TopicsError {
    TopicsError::InvalidSchema(detail.into())
}

impl ContinuousQuery {
    /// Runs the DDL statements of `sql` in `ctx` and prepares its one `INSERT INTO … SELECT`
    /// (the continuous query). Sources are the topic tables it reads; the sink is its target:
    /// a Kafka or NATS table, or a Parquet / JSON table (`STORED AS PARQUET | JSON`).
    pub async fn from_sql(ctx: SessionContext, sql: &str) -> Result<Self, DataFusionError> {
        let statements = DFParser::parse_sql(sql)?;
        let mut insert: Option<(Statement, DmlStatement)> = None;
        for statement in statements {
            let plan = ctx.state().statement_to_plan(statement.clone()).await?;
            match plan {
                LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)) => {
                    if insert.is_some() {
                        return Err(plan_error(
                            "a continuous query file holds exactly one INSERT INTO … SELECT",
                        )
                        .into());
                    }
                    insert = Some((statement, dml));
                }
                other => {
                    ctx.execute_logical_plan(other).await?.collect().await?;
                }
            }
        }
        let (insert, dml) = insert.ok_or_else(|| {
            plan_error("no INSERT INTO … SELECT: a continuous query writes its rows somewhere")
        })?;
        let text = insert.to_string();
        let sources = find_sources(&dml.input)?;
        if sources.is_empty() {
            return Err(plan_error(
                "the query reads no Kafka or NATS table, so there is nothing to run continuously",
            )
            .into());
        }
        let sink = sink_of(&ctx, &dml).await?;
        Ok(Self {
            ctx,
            insert,
            text,
            sources,
            sink,
        })
    }

    /// The sink's description.
    pub fn sink(&self) -> String {
        self.sink.describe()
    }

    /// Runs batches until the trigger says stop (available-now), `max_batches` is reached, or
    /// an error. Dropping the future stops the query; an interrupted batch is replayed by the
    /// next run. Returns the number of batches run.
    pub async fn run(
        &self,
        options: &RunOptions,
        mut progress: impl FnMut(&BatchProgress),
    ) -> Result<u64> {
        let log = CheckpointLog::open(&options.checkpoint)?;
        let meta = log.claim(&self.text).await?;
        let runner = new_id();
        let mut done = 0u64;
        let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
        let mut avg_bytes: BTreeMap<String, f64> = BTreeMap::new();
        let mut next = 0u64;
        if let Some(last) = log.latest_offsets().await? {
            let record = log
                .offsets(last)
                .await?
                .ok_or_else(|| TopicsError::Checkpoint {
                    url: log.url().to_string(),
                    detail: format!("offsets of batch {last} vanished while being read"),
                })?;
            ends = ends_of(&record);
            if log.commit(last).await?.is_none() {
                if record.sources.values().any(|s| s.work_queue.is_some()) {
                    // Its messages went back to the queue: a replay cannot read them again.
                    // The next batch re-reads its offset ranges instead.
                    log::warn!(
                        "batch {last} read a work queue and was interrupted: abandoning it; \
                         its messages are redelivered and its ranges read again (at-least-once)"
                    );
                    log.write_commit(&commit_record(&record, &runner, Default::default(), true))
                        .await?;
                    ends = starts_of(&record);
                } else {
                    let (done_batch, _) = self
                        .execute(&log, &meta, &runner, &record, true, 0, options)
                        .await?;
                    done += 1;
                    progress(&done_batch);
                }
            }
            next = last + 1;
        }
        let caps = match options.trigger {
            Trigger::AvailableNow => Some(self.high_watermarks().await?),
            Trigger::Interval(_) => None,
        };
        // Available-now reads of a work queue stop after what was pending at the start.
        let mut queue_left = match options.trigger {
            Trigger::AvailableNow => Some(self.queue_pending().await?),
            Trigger::Interval(_) => None,
        };
        loop {
            if options.max_batches.is_some_and(|max| done >= max) {
                return Ok(done);
            }
            let started = Instant::now();
            let (sources, lag) = self
                .plan_next(
                    &ends,
                    caps.as_ref(),
                    queue_left.as_ref(),
                    options.limits,
                    &avg_bytes,
                )
                .await?;
            let ranges_have_data = sources
                .values()
                .any(|s| s.partitions.values().any(|r| r.end > r.start));
            let has_data = ranges_have_data
                || sources
                    .values()
                    .any(|s| s.work_queue.as_ref().is_some_and(|q| q.pending > 0));
            let skipped_any = sources.values().any(|s| !s.skipped.is_empty());
            if !has_data && !skipped_any {
                match options.trigger {
                    Trigger::AvailableNow => return Ok(done),
                    Trigger::Interval(every) => {
                        tokio::time::sleep(every.max(Duration::from_millis(100))).await;
                        continue;
                    }
                }
            }
            let record = OffsetsRecord {
                format: records::FORMAT.into(),
                version: records::VERSION,
                batch: next,
                runner: runner.clone(),
                planned_ms: now_ms(),
                sources,
                sink: self.sink.marks().await?,
            };
            log.write_offsets(&record).await?;
            let (mut done_batch, bytes) = self
                .execute(&log, &meta, &runner, &record, false, lag, options)
                .await?;
            // A planned batch's time includes its planning.
            done_batch.elapsed = started.elapsed();
            avg_bytes.extend(bytes);
            if let Some(left) = &mut queue_left {
                for (table, read) in &done_batch.queue_reads {
                    if let Some(n) = left.get_mut(table) {
                        *n = n.saturating_sub(*read);
                    }
                }
            }
            done += 1;
            progress(&done_batch);
            ends = ends_of(&record);
            next += 1;
            // Unacknowledged messages count as pending, but those another reader holds (or
            // whose ack wait has not passed) cannot be read now: available-now stops when a
            // batch of only work queues found nothing.
            let queues_read: u64 = done_batch.queue_reads.values().sum();
            if matches!(options.trigger, Trigger::AvailableNow)
                && !ranges_have_data
                && queues_read == 0
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

    /// Commits the batch's end offsets to a consumer group; failures are logged, not fatal.
    async fn commit_to_group(&self, group: &str, record: &OffsetsRecord) {
        for s in &self.sources {
            let Some(ranges) = record.sources.get(&s.name.to_string()) else {
                continue;
            };
            let ends: Vec<(i32, i64)> =
                ranges.partitions.iter().map(|(p, r)| (*p, r.end)).collect();
            if let Err(e) = s.table.source().commit_offsets(group, &ends).await {
                log::warn!("batch {}: {e}", record.batch);
            }
        }
    }

    /// Runs `record`'s batch into the sink and commits it (checkpoint, then the consumer
    /// group if asked); returns its progress and the average message size per source topic.
    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        log: &CheckpointLog,
        meta: &Metadata,
        runner: &str,
        record: &OffsetsRecord,
        replay: bool,
        lag: i64,
        options: &RunOptions,
    ) -> Result<(BatchProgress, BTreeMap<String, f64>)> {
        let started = Instant::now();
        let (written, bytes, acks) = self.run_batch(meta, record, replay).await?;
        log.write_commit(&commit_record(record, runner, written, false))
            .await?;
        // Only now may the work queues forget the messages: a failure here redelivers them.
        let mut queue_reads = BTreeMap::new();
        for (table, acks) in acks {
            queue_reads.insert(table.clone(), acks.messages());
            if let Err(e) = acks.send_all().await {
                log::warn!(
                    "batch {}: {e}; the queue delivers those messages again",
                    record.batch
                );
            }
        }
        if let Some(group) = &options.commit_group {
            self.commit_to_group(group, record).await;
        }
        let progress = BatchProgress {
            batch: record.batch,
            replayed: replay,
            sources: record.sources.clone(),
            rows: written.rows,
            already_written: written.already_written,
            lag,
            queue_reads,
            elapsed: started.elapsed(),
        };
        Ok((progress, bytes))
    }

    /// Every source partition's high watermark now (the end of an available-now run).
    async fn high_watermarks(&self) -> Result<BTreeMap<String, BTreeMap<i32, i64>>> {
        let mut out = BTreeMap::new();
        for s in &self.sources {
            let source = s.table.source();
            if source.work_queue().is_some() {
                continue;
            }
            let partitions = source.partitions().await?;
            let marks = source.watermarks(&partitions).await?;
            out.insert(
                s.name.to_string(),
                partitions
                    .iter()
                    .zip(&marks)
                    .map(|(p, w)| (*p, w.high))
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Messages pending in each work-queue table now.
    async fn queue_pending(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for s in &self.sources {
            if let Some(queue) = s.table.source().work_queue() {
                out.insert(s.name.to_string(), queue.pending().await?);
            }
        }
        Ok(out)
    }

    /// Plans the next batch's ranges; returns them and the lag they leave.
    async fn plan_next(
        &self,
        ends: &BTreeMap<String, BTreeMap<i32, i64>>,
        caps: Option<&BTreeMap<String, BTreeMap<i32, i64>>>,
        queue_left: Option<&BTreeMap<String, u64>>,
        limits: Limits,
        avg_bytes: &BTreeMap<String, f64>,
    ) -> Result<(BTreeMap<String, SourceRanges>, i64)> {
        let mut out = BTreeMap::new();
        let mut lag = 0;
        for s in &self.sources {
            let name = s.name.to_string();
            let source = s.table.source();
            // Message sizes are measured per topic (the scans know topics, not table names).
            let avg = avg_bytes.get(source.topic()).copied();
            if let Some(queue) = source.work_queue() {
                let mut pending = queue.pending().await?;
                lag += pending as i64;
                if let Some(left) = queue_left.and_then(|l| l.get(&name)) {
                    pending = pending.min(*left);
                }
                let cap = super::batch_plan::messages_cap(limits, avg);
                out.insert(
                    name,
                    SourceRanges {
                        kind: source.kind().to_string(),
                        topic: source.topic().to_string(),
                        partitions: BTreeMap::new(),
                        skipped: BTreeMap::new(),
                        work_queue: Some(QueueRead {
                            consumer: queue.cursor().to_string(),
                            pending,
                            max_messages: cap,
                        }),
                    },
                );
                continue;
            }
            let scan = s.table.scan_options();
            let partitions = source.partitions().await?;
            let previous = ends.get(&name);
            // The first batch starts where the table's scan.startup.* says, resolved before the
            // watermarks are read (which only grow), so a message arriving in between cannot
            // put a start beyond its partition's end.
            let first_starts = match previous {
                Some(_) => None,
                None => {
                    let mut first = scan.clone();
                    first.bounded = BoundedMode::LatestOffset;
                    Some(resolve_ranges(source.as_ref(), &first, &partitions).await?)
                }
            };
            let marks = source.watermarks(&partitions).await?;
            // Partitions that appear later start at their earliest offset.
            let starts: BTreeMap<i32, i64> = match first_starts {
                Some(resolved) => resolved
                    .into_iter()
                    .map(|p| (p.partition, p.range.start))
                    .collect(),
                None => partitions
                    .iter()
                    .zip(&marks)
                    .map(|(p, w)| {
                        let from = previous.and_then(|prev| prev.get(p).copied());
                        (*p, from.unwrap_or(w.low))
                    })
                    .collect(),
            };
            let mut ranges = SourceRanges {
                kind: source.kind().to_string(),
                topic: source.topic().to_string(),
                partitions: BTreeMap::new(),
                skipped: BTreeMap::new(),
                work_queue: None,
            };
            for (p, w) in partitions.iter().zip(&marks) {
                // Partitions created after an available-now run started are not read.
                let cap = caps.map(|caps| {
                    caps.get(&name)
                        .and_then(|c| c.get(p))
                        .copied()
                        .unwrap_or(starts[p])
                });
                let plan = plan_partition(
                    source.topic(),
                    *p,
                    starts[p],
                    *w,
                    cap,
                    limits,
                    avg,
                    scan.fail_on_data_loss,
                )?;
                lag += w.high - plan.end;
                ranges.partitions.insert(
                    *p,
                    Range {
                        start: plan.start,
                        end: plan.end,
                    },
                );
                if plan.skipped > 0 {
                    ranges.skipped.insert(*p, plan.skipped);
                }
            }
            out.insert(name, ranges);
        }
        Ok((out, lag))
    }

    /// Runs one batch over exactly `record`'s ranges into the sink; returns what was written,
    /// the average message size read per source topic, and the acknowledgements each
    /// work-queue table keeps for after the commit.
    async fn run_batch(
        &self,
        meta: &Metadata,
        record: &OffsetsRecord,
        replay: bool,
    ) -> Result<
        (
            crate::sink::BatchWritten,
            BTreeMap<String, f64>,
            BTreeMap<String, Arc<DeferredAcks>>,
        ),
        TopicsError,
    > {
        let df_err = |e: DataFusionError| TopicsError::Sink {
            target: self.sink.describe(),
            detail: format!("batch {}: {e}", record.batch),
        };
        let mut acks = BTreeMap::new();
        for s in &self.sources {
            let name = s.name.to_string();
            let planned = record.sources.get(&name);
            let bounded: Arc<dyn TableProvider> = match planned.and_then(|r| r.work_queue.as_ref())
            {
                Some(queue) => {
                    let deferred = Arc::new(DeferredAcks::new());
                    let table = s
                        .table
                        .work_queue_batch(Arc::clone(&deferred), queue.max_messages)
                        .ok_or_else(|| {
                            plan_error(format!(
                                "batch {} read table {name} as a work queue, but it no \
                                     longer is one",
                                record.batch
                            ))
                        })?;
                    acks.insert(name.clone(), deferred);
                    Arc::new(table)
                }
                None => {
                    let ranges: BTreeMap<i32, (i64, i64)> = planned
                        .map(|r| {
                            r.partitions
                                .iter()
                                .map(|(p, r)| (*p, (r.start, r.end)))
                                .collect()
                        })
                        .unwrap_or_default();
                    Arc::new(s.table.bounded_to(&ranges))
                }
            };
            self.ctx.deregister_table(s.name.clone()).map_err(df_err)?;
            self.ctx
                .register_table(s.name.clone(), bounded)
                .map_err(df_err)?;
        }
        let plan = self
            .ctx
            .state()
            .statement_to_plan(self.insert.clone())
            .await
            .map_err(df_err)?;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(plan_error("the INSERT no longer plans as an insert"));
        };
        let input = Arc::unwrap_or_clone(dml.input);
        let physical = self
            .ctx
            .execute_logical_plan(input)
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
        Ok((written, average_message_bytes(&physical), acks))
    }
}

/// The commit record of `record`'s batch.
fn commit_record(
    record: &OffsetsRecord,
    runner: &str,
    written: crate::sink::BatchWritten,
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

/// Where each source partition's range in `record` starts: an abandoned batch's ranges are
/// read again from there.
fn starts_of(record: &OffsetsRecord) -> BTreeMap<String, BTreeMap<i32, i64>> {
    edges_of(record, |r| r.start)
}

/// Where each source partition's range in `record` ends: the next batch starts there.
fn ends_of(record: &OffsetsRecord) -> BTreeMap<String, BTreeMap<i32, i64>> {
    edges_of(record, |r| r.end)
}

/// One edge of every source partition's range in `record`, per table and partition.
fn edges_of(
    record: &OffsetsRecord,
    edge: impl Fn(&Range) -> i64,
) -> BTreeMap<String, BTreeMap<i32, i64>> {
    record
        .sources
        .iter()
        .map(|(t, s)| {
            let edges = s.partitions.iter().map(|(p, r)| (*p, edge(r))).collect();
            (t.clone(), edges)
        })
        .collect()
}

/// Average bytes per message each topic's scans read, from their metrics.
fn average_message_bytes(plan: &Arc<dyn ExecutionPlan>) -> BTreeMap<String, f64> {
    let mut totals: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<TopicScanExec>()
            && let Some(metrics) = node.metrics()
        {
            let entry = totals.entry(scan.topic().to_string()).or_default();
            entry.0 += metrics
                .sum_by_name("bytes_fetched")
                .map_or(0, |v| v.as_usize());
            entry.1 += metrics
                .sum_by_name("messages_fetched")
                .map_or(0, |v| v.as_usize());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    totals
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(t, (b, n))| (t, b as f64 / n as f64))
        .collect()
}

/// The topic tables a plan scans.
fn find_sources(plan: &LogicalPlan) -> Result<Vec<SourceTable>, DataFusionError> {
    let mut out: Vec<SourceTable> = Vec::new();
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = source_as_provider(&scan.source)?;
            if let Some(table) = provider.downcast_ref::<StreamingTableProvider>()
                && !out.iter().any(|s| s.name == scan.table_name)
            {
                out.push(SourceTable {
                    name: scan.table_name.clone(),
                    table: table.clone(),
                });
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(out)
}

/// The exactly-once sink for the INSERT's target table.
async fn sink_of(
    ctx: &SessionContext,
    dml: &DmlStatement,
) -> Result<Arc<dyn BatchSink>, DataFusionError> {
    let target = source_as_provider(&dml.target)?;
    let input_schema = Arc::new(dml.input.schema().as_arrow().clone());
    if let Some(table) = target.downcast_ref::<StreamingTableProvider>() {
        let writer = table
            .writer()
            .ok_or_else(|| plan_error(format!("table {} cannot be written to", dml.table_name)))?;
        let encoder =
            RowEncoder::try_new(&input_schema, table.value_count(), table.formats()).await?;
        return Ok(Arc::new(TopicBatchSink::new(
            Arc::clone(writer),
            Arc::clone(table.source()),
            encoder,
        )));
    }
    if let Some(listing) = target.downcast_ref::<ListingTable>() {
        let [path] = listing.table_paths().as_slice() else {
            return Err(plan_error("a file sink needs exactly one LOCATION").into());
        };
        let ext = listing.options().format.get_ext();
        let format = FileFormat::from_extension(&ext).ok_or_else(|| {
            plan_error(format!(
                "file sinks write parquet or json, not {ext} (table {})",
                dml.table_name
            ))
        })?;
        let store = ctx.runtime_env().object_store(path.object_store())?;
        return Ok(Arc::new(FileBatchSink::new(
            store,
            path.prefix().clone(),
            path.to_string(),
            format,
            listing.schema(),
        )));
    }
    Err(plan_error(format!(
        "the target {} is neither a Kafka or NATS table nor a Parquet or JSON table",
        dml.table_name
    ))
    .into())
}
