//! Stateful continuous queries: one aggregation whose partial state carries from batch to
//! batch on the checkpoint's object store.
//!
//! Each batch runs the aggregation's Partial stage over its rows, merges that with the state
//! the previous batch committed (`PartialReduce`), and then: in append mode (windows) emits
//! the windows the watermark has passed and keeps the open ones; in update mode emits every
//! group the batch changed (a file sink: all groups) and keeps all. The emitted groups go
//! through the Final stage and the operators above the aggregation (HAVING, projection) into
//! the sink; the kept groups are written to `state/N-<runner>.arrow` before `commits/N`. A replay
//! starts from the state committed by the batch before, so it emits the same rows.

pub(crate) mod shape;
#[cfg(test)]
mod tests;
pub(crate) mod watermark;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::{ExecutionPlan, collect, collect_partitioned};

use crate::error::{Result, TopicsError};
use crate::scan::TopicScanExec;
use shape::AggregateStages;
use watermark::PerPartition;

/// How a stateful query writes its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Each window's row once, when the watermark passes the window's end (Spark's and
    /// Flink's append mode). Needs a `GROUP BY date_bin(…)` over a table's event-time column.
    Append,
    /// After each batch, the new value of every group the batch changed (an upsert stream
    /// keyed by the group; to files, a snapshot of every group).
    Update,
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Append => "append",
            Self::Update => "update",
        })
    }
}

impl std::str::FromStr for OutputMode {
    type Err = TopicsError;

    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "append" => Ok(Self::Append),
            "update" => Ok(Self::Update),
            other => Err(TopicsError::invalid_option(
                "output-mode",
                other,
                "expected append or update",
            )),
        }
    }
}

/// What the sink receives in update mode: the changed groups, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutput {
    /// The groups a batch changed (an upsert stream).
    Changes,
    /// Every group after each batch (a snapshot per batch, for file sinks).
    Snapshot,
}

/// The outcome of the stateful part of one batch.
pub(crate) struct StatefulRun {
    /// The plan producing the batch's output rows.
    pub output: Arc<dyn ExecutionPlan>,
    /// The groups to keep for the next batch, with their schema.
    pub keep: Vec<RecordBatch>,
    pub state_schema: SchemaRef,
    /// Rows emitted (groups handed to the Final stage).
    pub emitted: u64,
    /// Rows found late in this batch.
    pub late_rows: u64,
    /// In update output with a HAVING: the plan producing what the output held before this
    /// batch for the groups it changed, so a sink can delete the keys that left the result.
    pub retracted: Option<Arc<dyn ExecutionPlan>>,
}

/// Runs the Partial and PartialReduce stages of `stages` over the batch and `previous` state
/// rows; `watermark_after` turns the batch's event-time maxima into the watermark after it.
pub(crate) async fn run_stages(
    plan: &Arc<dyn ExecutionPlan>,
    stages: &AggregateStages,
    mode: OutputMode,
    update: UpdateOutput,
    previous: Vec<RecordBatch>,
    task: Arc<TaskContext>,
    watermark_after: impl FnOnce(&PerPartition) -> Option<i64>,
) -> Result<StatefulRun> {
    let state_schema = stages.partial.schema();
    // Partition order, so a replay merges in the same order and computes the same values.
    let partial_plan: Arc<dyn ExecutionPlan> = Arc::clone(&stages.partial) as _;
    let partial: Vec<RecordBatch> =
        collect_partitioned(Arc::clone(&partial_plan), Arc::clone(&task))
            .await?
            .into_iter()
            .flatten()
            .filter(|b| b.num_rows() > 0)
            .collect();
    let (maxima_by_topic, late_rows) = event_times(&partial_plan);
    let watermark = watermark_after(&maxima_by_topic);
    let changed = group_keys(&partial, stages.group_count())?;
    // What the changed groups looked like before, when a HAVING may drop them now.
    let before: Option<Vec<RecordBatch>> = (mode == OutputMode::Update
        && update == UpdateOutput::Changes
        && stages.filtered_above)
        .then(|| {
            previous
                .iter()
                .map(|b| {
                    let b = RecordBatch::try_new(Arc::clone(&state_schema), b.columns().to_vec())?;
                    let mask = in_keys(&b, stages.group_count(), &changed)?;
                    Ok(filter_record_batch(&b, &mask)?)
                })
                .filter(|b: &Result<RecordBatch>| b.as_ref().map_or(true, |b| b.num_rows() > 0))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let mut inputs = partial;
    for batch in previous {
        inputs.push(RecordBatch::try_new(
            Arc::clone(&state_schema),
            batch.columns().to_vec(),
        )?);
    }
    let merged = if inputs.is_empty() {
        Vec::new()
    } else {
        let reduce = AggregateExec::try_new(
            AggregateMode::PartialReduce,
            stages.group_final.clone(),
            stages.aggr_exprs(),
            vec![None; stages.aggr_exprs().len()],
            MemorySourceConfig::try_new_exec(&[inputs], Arc::clone(&state_schema), None)?,
            stages.partial.input_schema(),
        )?;
        collect(Arc::new(reduce), Arc::clone(&task)).await?
    };
    let mut emit = Vec::new();
    let mut keep = Vec::new();
    for batch in merged {
        if batch.num_rows() == 0 {
            continue;
        }
        let closed = match (stages.window, watermark) {
            (Some(w), Some(wm)) => closed_windows(&batch, w.index, w.size_ms, wm)?,
            _ => BooleanArray::from(vec![false; batch.num_rows()]),
        };
        let (emit_mask, keep_mask) = match mode {
            OutputMode::Append => (closed.clone(), arrow::compute::not(&closed)?),
            OutputMode::Update => {
                let emit_mask = match update {
                    UpdateOutput::Snapshot => BooleanArray::from(vec![true; batch.num_rows()]),
                    UpdateOutput::Changes => in_keys(&batch, stages.group_count(), &changed)?,
                };
                // Windows the watermark passed will not change again: their state goes.
                (emit_mask, arrow::compute::not(&closed)?)
            }
        };
        emit.push(filter_record_batch(&batch, &emit_mask)?);
        keep.push(filter_record_batch(&batch, &keep_mask)?);
    }
    let emit: Vec<RecordBatch> = emit.into_iter().filter(|b| b.num_rows() > 0).collect();
    let keep: Vec<RecordBatch> = keep.into_iter().filter(|b| b.num_rows() > 0).collect();
    let emitted = emit.iter().map(|b| b.num_rows() as u64).sum();
    let output = replace_node(plan, &stages.target, final_stage(stages, emit)?)?;
    let retracted = match before {
        Some(rows) if !rows.is_empty() => Some(replace_node(
            plan,
            &stages.target,
            final_stage(stages, rows)?,
        )?),
        _ => None,
    };
    Ok(StatefulRun {
        output,
        keep,
        state_schema,
        emitted,
        late_rows,
        retracted,
    })
}

/// The Final stage of the aggregation over chosen state rows.
fn final_stage(stages: &AggregateStages, rows: Vec<RecordBatch>) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = stages.partial.schema();
    Ok(Arc::new(AggregateExec::try_new(
        AggregateMode::Final,
        stages.group_final.clone(),
        stages.aggr_exprs(),
        vec![None; stages.aggr_exprs().len()],
        MemorySourceConfig::try_new_exec(&[rows], schema, None)?,
        stages.partial.input_schema(),
    )?))
}

/// `plan` with `target` (found by identity) replaced by `replacement`.
fn replace_node(
    plan: &Arc<dyn ExecutionPlan>,
    target: &Arc<dyn ExecutionPlan>,
    replacement: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut replaced = false;
    let out = Arc::clone(plan)
        .transform_down(|node| {
            if Arc::ptr_eq(&node, target) {
                replaced = true;
                Ok(Transformed::new(
                    Arc::clone(&replacement),
                    true,
                    TreeNodeRecursion::Jump,
                ))
            } else {
                Ok(Transformed::no(node))
            }
        })?
        .data;
    if !replaced {
        return Err(TopicsError::internal(
            "the aggregate to replace is not in the batch's plan",
        ));
    }
    Ok(out)
}

/// The latest event time per topic and partition, and the late rows, the scans below `plan`
/// saw.
fn event_times(plan: &Arc<dyn ExecutionPlan>) -> (PerPartition, u64) {
    let mut maxima: PerPartition = BTreeMap::new();
    let mut late = 0;
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<TopicScanExec>()
            && let Some(tracker) = scan.event_time()
        {
            let entry = maxima.entry(scan.topic().to_string()).or_default();
            for (p, m) in tracker.partition_maxima() {
                let e = entry.entry(p).or_insert(m);
                *e = (*e).max(m);
            }
            late += tracker.late_rows();
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (maxima, late)
}

/// Maps per-topic maxima to the tables reading those topics.
pub(crate) fn by_table(maxima: &PerPartition, tables: &BTreeMap<String, String>) -> PerPartition {
    tables
        .iter()
        .filter_map(|(table, topic)| maxima.get(topic).map(|m| (table.clone(), m.clone())))
        .collect()
}

/// True for rows whose window (start in group column `index`, `size_ms` long) ended at or
/// before `watermark`.
fn closed_windows(
    batch: &RecordBatch,
    index: usize,
    size_ms: i64,
    watermark: i64,
) -> Result<BooleanArray> {
    let starts = arrow::compute::cast(
        batch.column(index),
        &DataType::Timestamp(TimeUnit::Millisecond, None),
    )?;
    let starts = starts.as_primitive::<TimestampMillisecondType>();
    Ok(starts
        .iter()
        .map(|s| Some(s.is_some_and(|s| s + size_ms <= watermark)))
        .collect())
}

/// The group keys (first `groups` columns) of `batches`, as comparable rows.
fn group_keys(batches: &[RecordBatch], groups: usize) -> Result<HashSet<Vec<u8>>> {
    let mut out = HashSet::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    if groups == 0 {
        // One global group.
        out.insert(Vec::new());
        return Ok(out);
    }
    let converter = key_converter(first, groups)?;
    for batch in batches {
        let rows = converter.convert_columns(&batch.columns()[..groups])?;
        out.extend(rows.iter().map(|r| r.as_ref().to_vec()));
    }
    Ok(out)
}

/// True for rows of `batch` whose group key is in `keys`.
fn in_keys(batch: &RecordBatch, groups: usize, keys: &HashSet<Vec<u8>>) -> Result<BooleanArray> {
    if groups == 0 {
        // One global group: it changed when the batch had any row.
        return Ok(BooleanArray::from(vec![!keys.is_empty(); batch.num_rows()]));
    }
    let converter = key_converter(batch, groups)?;
    let rows = converter.convert_columns(&batch.columns()[..groups])?;
    Ok(rows
        .iter()
        .map(|r| Some(keys.contains(r.as_ref())))
        .collect())
}

fn key_converter(batch: &RecordBatch, groups: usize) -> Result<RowConverter> {
    Ok(RowConverter::new(
        batch
            .columns()
            .iter()
            .take(groups)
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?)
}
