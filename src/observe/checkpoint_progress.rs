//! Recent batches of a checkpoint as a table: `datafusion-topics status --checkpoint URL`
//! prints it, and `SELECT * FROM checkpoint_progress('URL')` queries it. Both read the same
//! files the runner writes (`offsets/N`, `commits/N`), so they work while the query runs.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::checkpoint::{CheckpointLog, CommitRecord, OffsetsRecord};
use crate::error::{Result, TopicsError};

/// Batches shown when no count is given.
pub const DEFAULT_BATCHES: u64 = 20;

/// The columns, one row per batch (newest last).
pub fn progress_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("batch", DataType::UInt64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("planned_at", ts(), false),
        Field::new("committed_at", ts(), true),
        Field::new("duration_ms", DataType::Int64, true),
        Field::new("ranges", DataType::Utf8, false),
        Field::new("offsets", DataType::Int64, false),
        Field::new("rows", DataType::UInt64, true),
        Field::new("already_written", DataType::UInt64, true),
        Field::new("lag", DataType::Int64, true),
        Field::new("state_groups", DataType::UInt64, true),
        Field::new("state_bytes", DataType::UInt64, true),
        Field::new("watermark", ts(), true),
        Field::new("late_rows", DataType::UInt64, true),
        Field::new("replayable", DataType::Boolean, false),
        Field::new("runner", DataType::Utf8, false),
    ]))
}

/// The last `batches` batches of the checkpoint at `url` (those still on it: purging keeps
/// the last 100), one row each.
pub async fn checkpoint_progress(url: &str, batches: u64) -> Result<RecordBatch> {
    let log = CheckpointLog::open(url)?;
    if log.metadata().await?.is_none() {
        return Err(TopicsError::Checkpoint {
            url: url.to_string(),
            detail: "no checkpoint here (no metadata file): check the URL".into(),
        });
    }
    let mut rows: Vec<(OffsetsRecord, Option<CommitRecord>)> = Vec::new();
    if let Some(last) = log.latest_offsets().await? {
        // Purging keeps the last RETAINED_BATCHES batches (and one in flight): do not ask the
        // store for files that cannot be there.
        let batches = batches.min(crate::checkpoint::RETAINED_BATCHES + 1);
        for n in last.saturating_sub(batches.saturating_sub(1))..=last {
            if let Some(offsets) = log.offsets(n).await? {
                let commit = log.commit(n).await?;
                rows.push((offsets, commit));
            }
        }
    }
    to_batch(&rows)
}

fn to_batch(rows: &[(OffsetsRecord, Option<CommitRecord>)]) -> Result<RecordBatch> {
    let commit = |i: usize| rows[i].1.as_ref();
    let state = |i: usize| commit(i).and_then(|c| c.state.as_ref());
    let n = rows.len();
    let col_u64 = |f: &dyn Fn(usize) -> Option<u64>| -> ArrayRef {
        Arc::new((0..n).map(f).collect::<UInt64Array>())
    };
    let ts = |f: &dyn Fn(usize) -> Option<i64>| -> ArrayRef {
        Arc::new(
            (0..n)
                .map(f)
                .collect::<TimestampMillisecondArray>()
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.0.batch).collect::<UInt64Array>()),
        Arc::new(
            (0..n)
                .map(|i| match commit(i) {
                    Some(c) if c.abandoned => "abandoned",
                    Some(_) => "committed",
                    None => "in flight",
                })
                .map(Some)
                .collect::<StringArray>(),
        ),
        ts(&|i| Some(rows[i].0.planned_ms)),
        ts(&|i| commit(i).map(|c| c.committed_ms)),
        Arc::new(
            (0..n)
                .map(|i| commit(i).map(|c| c.committed_ms - rows[i].0.planned_ms))
                .collect::<Int64Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| Some(crate::query::ranges_text(&r.0.sources)))
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| {
                    Some(
                        r.0.sources
                            .values()
                            .flat_map(|s| s.partitions.values())
                            .map(|r| r.end_or_max() - r.start)
                            .sum::<i64>(),
                    )
                })
                .collect::<Int64Array>(),
        ),
        col_u64(&|i| commit(i).map(|c| c.rows)),
        col_u64(&|i| commit(i).map(|c| c.already_written)),
        Arc::new(
            rows.iter()
                .map(|r| {
                    let recorded = r.0.sources.values().any(|s| !s.high.is_empty());
                    recorded.then(|| r.0.sources.values().map(|s| s.lag()).sum::<i64>())
                })
                .collect::<Int64Array>(),
        ),
        col_u64(&|i| state(i).map(|s| s.rows)),
        col_u64(&|i| state(i).map(|s| s.bytes)),
        ts(&|i| state(i).and_then(|s| s.watermark)),
        col_u64(&|i| state(i).map(|s| s.late_rows)),
        Arc::new(
            (0..n)
                .map(|i| Some(commit(i).is_none()))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.0.runner.as_str()))
                .collect::<StringArray>(),
        ),
    ];
    Ok(RecordBatch::try_new(progress_schema(), columns)?)
}

/// `checkpoint_progress('URL' [, batches])`: the checkpoint's recent batches as a table
/// (see [`checkpoint_progress`]), read when the query runs.
#[derive(Debug, Default)]
pub struct CheckpointProgressFunc;

impl TableFunctionImpl for CheckpointProgressFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let usage = || {
            DataFusionError::Plan(
                "checkpoint_progress takes a checkpoint URL and optionally how many recent \
                 batches to show: checkpoint_progress('s3://bucket/checkpoints/orders', 50)"
                    .into(),
            )
        };
        let url = match args.exprs().first() {
            Some(Expr::Literal(ScalarValue::Utf8(Some(url)), _))
            | Some(Expr::Literal(ScalarValue::Utf8View(Some(url)), _))
            | Some(Expr::Literal(ScalarValue::LargeUtf8(Some(url)), _)) => url.clone(),
            _ => return Err(usage()),
        };
        let batches = match args.exprs().get(1) {
            None => DEFAULT_BATCHES,
            Some(Expr::Literal(ScalarValue::Int64(Some(n)), _)) if *n > 0 => *n as u64,
            Some(_) => return Err(usage()),
        };
        if args.exprs().len() > 2 {
            return Err(usage());
        }
        Ok(Arc::new(CheckpointProgressTable { url, batches }))
    }
}

/// The table [`CheckpointProgressFunc`] returns: the checkpoint is read by each scan.
#[derive(Debug)]
struct CheckpointProgressTable {
    url: String,
    batches: u64,
}

#[async_trait]
impl TableProvider for CheckpointProgressTable {
    fn schema(&self) -> SchemaRef {
        progress_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let batch = checkpoint_progress(&self.url, self.batches).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            progress_schema(),
            projection.cloned(),
        )?)
    }
}
