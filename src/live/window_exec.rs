//! The operator behind live windowed aggregations: it folds each input batch into partial
//! aggregate states, and whenever the watermark passes the end of windows, merges their states
//! and emits them (in window order) through the Final stage; open windows stay in memory
//! (bounded by open windows × keys). When the input ends, every window is emitted.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, collect,
};
use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};

use crate::scan::EventTimeTracker;
use crate::windows::WindowColumn;

/// How often a waiting window operator looks at the watermark again (a silent partition turns
/// idle by the clock, not by an event).
const TICK: Duration = Duration::from_millis(200);

/// Folded partial states are merged once this many batches of them pile up.
const COMPACT_AFTER: usize = 32;

/// A windowed aggregation over an unbounded input whose windows close by the watermark.
#[derive(Debug, Clone)]
pub struct WatermarkWindowExec {
    input: Arc<dyn ExecutionPlan>,
    group_by: PhysicalGroupBy,
    aggr_exprs: Vec<Arc<AggregateFunctionExpr>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    window: WindowColumn,
    tracker: Arc<EventTimeTracker>,
    schema: SchemaRef,
    props: Arc<PlanProperties>,
}

impl WatermarkWindowExec {
    /// The aggregation `group_by` / `aggr_exprs` (with their `filters`) over `input`, whose
    /// window is group key `window` and whose watermark `tracker` follows; `schema` is the
    /// aggregation's output schema.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        group_by: PhysicalGroupBy,
        aggr_exprs: Vec<Arc<AggregateFunctionExpr>>,
        filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
        window: WindowColumn,
        tracker: Arc<EventTimeTracker>,
        schema: SchemaRef,
    ) -> Self {
        let boundedness = match input.boundedness() {
            Boundedness::Bounded => Boundedness::Bounded,
            Boundedness::Unbounded { .. } => Boundedness::Unbounded {
                requires_infinite_memory: false,
            },
        };
        let props = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            boundedness,
        );
        Self {
            input,
            group_by,
            aggr_exprs,
            filters,
            window,
            tracker,
            schema,
            props: Arc::new(props),
        }
    }

    /// The window among the group keys.
    pub fn window(&self) -> WindowColumn {
        self.window
    }
}

impl DisplayAs for WatermarkWindowExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = self.tracker.spec();
        write!(
            f,
            "WatermarkWindowExec: window={}ms on {}, delay={:?}, idle-timeout={:?}, gby=[{}], aggr=[{}]",
            self.window.size_ms,
            spec.column,
            spec.delay,
            spec.idle_timeout,
            self.group_by
                .expr()
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.aggr_exprs
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl ExecutionPlan for WatermarkWindowExec {
    fn name(&self) -> &str {
        "WatermarkWindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let [input] = children.as_slice() else {
            return Err(DataFusionError::Internal(
                "WatermarkWindowExec has one child".into(),
            ));
        };
        Ok(Arc::new(Self::new(
            Arc::clone(input),
            self.group_by.clone(),
            self.aggr_exprs.clone(),
            self.filters.clone(),
            self.window,
            Arc::clone(&self.tracker),
            Arc::clone(&self.schema),
        )))
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "WatermarkWindowExec has one output partition, not {partition}"
            )));
        }
        let mut inputs = SelectAll::new();
        for p in 0..self.input.output_partitioning().partition_count() {
            inputs.push(self.input.execute(p, Arc::clone(&context))?);
        }
        let state = Windows {
            stages: Arc::new(Stages {
                exec: self.clone(),
                context,
            }),
            inputs: inputs.boxed(),
            pending: Vec::new(),
            states: Vec::new(),
            input_done: false,
            emitted_to: None,
            finished: false,
        };
        let stream = futures::stream::unfold(state, |mut w| async move {
            let item = w.next().await?;
            Some((item, w))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

/// The aggregation stages an execution runs over rows it holds.
struct Stages {
    exec: WatermarkWindowExec,
    context: Arc<TaskContext>,
}

/// The running state of one execution.
struct Windows {
    stages: Arc<Stages>,
    inputs: BoxStream<'static, DFResult<RecordBatch>>,
    /// Input rows not folded yet.
    pending: Vec<RecordBatch>,
    /// Partial states of the open windows (possibly several rows per group).
    states: Vec<RecordBatch>,
    input_done: bool,
    /// The watermark up to which windows were emitted.
    emitted_to: Option<i64>,
    finished: bool,
}

impl Windows {
    /// The next batch of closed windows; `None` once the input ended and all was emitted.
    async fn next(&mut self) -> Option<DFResult<RecordBatch>> {
        loop {
            if self.finished {
                return None;
            }
            if !self.input_done {
                tokio::select! {
                    item = self.inputs.next() => match item {
                        Some(Ok(batch)) if batch.num_rows() > 0 => self.pending.push(batch),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            self.finished = true;
                            return Some(Err(e));
                        }
                        None => self.input_done = true,
                    },
                    _ = self.stages.exec.tracker.wait_for_progress(TICK) => {}
                }
            }
            match self.step().await {
                Ok(Some(batch)) => return Some(Ok(batch)),
                Ok(None) if self.input_done => {
                    self.finished = true;
                    return None;
                }
                Ok(None) => {}
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Folds pending rows and emits the windows the watermark closed (all of them once the
    /// input ended).
    async fn step(&mut self) -> DFResult<Option<RecordBatch>> {
        if !self.pending.is_empty() {
            let rows = std::mem::take(&mut self.pending);
            let folded = self.stages.partial(rows).await?;
            self.states.extend(folded);
            if self.states.len() > COMPACT_AFTER {
                self.states = self.reduce().await?;
            }
        }
        let watermark = if self.input_done {
            Some(i64::MAX)
        } else {
            self.stages.exec.tracker.watermark_now()
        };
        let Some(watermark) = watermark else {
            return Ok(None);
        };
        if self.emitted_to.is_some_and(|w| w >= watermark) || self.states.is_empty() {
            return Ok(None);
        }
        self.emitted_to = Some(watermark);
        let merged = self.reduce().await?;
        let mut closed = Vec::new();
        let mut open = Vec::new();
        for batch in merged {
            let mask = self.stages.closed(&batch, watermark)?;
            closed.push(filter_record_batch(&batch, &mask)?);
            open.push(filter_record_batch(&batch, &arrow::compute::not(&mask)?)?);
        }
        self.states = open.into_iter().filter(|b| b.num_rows() > 0).collect();
        let closed: Vec<RecordBatch> = closed.into_iter().filter(|b| b.num_rows() > 0).collect();
        if closed.is_empty() {
            return Ok(None);
        }
        let finals = self.stages.stage(AggregateMode::Final, closed).await?;
        let all = arrow::compute::concat_batches(&self.stages.exec.schema, &finals)?;
        if all.num_rows() == 0 {
            return Ok(None);
        }
        // Windows leave in the order they start, so a LIMIT above takes the first ones.
        let order =
            arrow::compute::sort_to_indices(all.column(self.stages.exec.window.index), None, None)?;
        Ok(Some(arrow::compute::take_record_batch(&all, &order)?))
    }

    /// Merges the open windows' states into one row per group.
    async fn reduce(&mut self) -> DFResult<Vec<RecordBatch>> {
        let states = std::mem::take(&mut self.states);
        self.stages
            .stage(AggregateMode::PartialReduce, states)
            .await
    }
}

impl Stages {
    fn state_schema(&self) -> DFResult<SchemaRef> {
        Ok(self.partial_plan(Vec::new())?.schema())
    }

    fn partial_plan(&self, rows: Vec<RecordBatch>) -> DFResult<Arc<dyn ExecutionPlan>> {
        let input_schema = self.exec.input.schema();
        Ok(Arc::new(AggregateExec::try_new(
            AggregateMode::Partial,
            self.exec.group_by.clone(),
            self.exec.aggr_exprs.clone(),
            self.exec.filters.clone(),
            MemorySourceConfig::try_new_exec(&[rows], Arc::clone(&input_schema), None)?,
            input_schema,
        )?))
    }

    async fn partial(&self, rows: Vec<RecordBatch>) -> DFResult<Vec<RecordBatch>> {
        collect(self.partial_plan(rows)?, Arc::clone(&self.context)).await
    }

    /// A merge stage (PartialReduce or Final) over state rows.
    async fn stage(
        &self,
        mode: AggregateMode,
        states: Vec<RecordBatch>,
    ) -> DFResult<Vec<RecordBatch>> {
        let state_schema = self.state_schema()?;
        let exec = AggregateExec::try_new(
            mode,
            self.exec.group_by.as_final(),
            self.exec.aggr_exprs.clone(),
            vec![None; self.exec.aggr_exprs.len()],
            MemorySourceConfig::try_new_exec(&[states], state_schema, None)?,
            self.exec.input.schema(),
        )?;
        collect(Arc::new(exec), Arc::clone(&self.context)).await
    }

    /// True for state rows whose window ended at or before `watermark`.
    fn closed(&self, batch: &RecordBatch, watermark: i64) -> DFResult<BooleanArray> {
        let starts = arrow::compute::cast(
            batch.column(self.exec.window.index),
            &DataType::Timestamp(TimeUnit::Millisecond, None),
        )?;
        let size = self.exec.window.size_ms;
        Ok(starts
            .as_primitive::<TimestampMillisecondType>()
            .iter()
            .map(|s| Some(s.is_none_or(|s| s.saturating_add(size) <= watermark)))
            .collect())
    }
}
