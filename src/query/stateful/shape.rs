//! What a continuous query's physical plan asks of the runner: nothing across batches
//! (stateless), or one aggregation whose state must carry from batch to batch. Shapes the
//! runner cannot run incrementally are refused here, naming the operator.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::filter::FilterExec;

use crate::error::{Result, TopicsError};
use crate::scan::TopicScanExec;
pub(crate) use crate::windows::WindowColumn;
use crate::windows::find_window;

/// The one aggregation of a stateful query, split into the stages the runner runs itself.
#[derive(Debug, Clone)]
pub(crate) struct AggregateStages {
    /// Partial aggregation of the batch's rows (an output partition per input partition).
    pub partial: Arc<AggregateExec>,
    /// The plan's aggregate node (mode Single or Final), replaced by Final over chosen
    /// state rows when the batch's output is computed.
    pub target: Arc<dyn ExecutionPlan>,
    /// The group keys as columns of the state rows (Partial's `as_final`).
    pub group_final: PhysicalGroupBy,
    /// A window among the group keys, when grouped by `date_bin` over an event-time column.
    pub window: Option<WindowColumn>,
    /// A filter above the aggregation (HAVING): a group a batch changes may leave the result.
    pub filtered_above: bool,
}

impl AggregateStages {
    /// The aggregate functions (as Partial resolved them).
    pub fn aggr_exprs(&self) -> Vec<Arc<AggregateFunctionExpr>> {
        self.partial.aggr_expr().to_vec()
    }

    /// How many group columns precede the accumulator states in a state row.
    pub fn group_count(&self) -> usize {
        self.group_final.expr().len()
    }
}

/// What the runner must do across batches.
#[derive(Debug, Clone)]
pub(crate) enum Shape {
    /// Each batch's rows are the query's rows for that batch.
    Stateless,
    /// An aggregation whose state carries over.
    Aggregate(AggregateStages),
}

/// Operators that only make sense over all of an unbounded input, with the reason given.
fn refuse_above_stream(name: &str) -> Option<&'static str> {
    match name {
        "SortExec" | "SortPreservingMergeExec" => Some(
            "ORDER BY over a continuous query would sort each micro-batch on its own, not the \
             stream; drop the ORDER BY (order the sink's readers instead)",
        ),
        "GlobalLimitExec" | "LocalLimitExec" => Some(
            "LIMIT over a continuous query would cut each micro-batch, not the stream; drop the \
             LIMIT or bound the source table",
        ),
        "BoundedWindowAggExec" | "WindowAggExec" => Some(
            "window functions (OVER …) would restart in every micro-batch; use GROUP BY \
             date_bin(…) windows, which carry state across batches",
        ),
        _ => None,
    }
}

fn is_join(name: &str) -> bool {
    matches!(
        name,
        "HashJoinExec"
            | "NestedLoopJoinExec"
            | "SortMergeJoinExec"
            | "SymmetricHashJoinExec"
            | "CrossJoinExec"
    )
}

/// Whether `plan` reads one of the streaming source topics.
fn reads_stream(plan: &Arc<dyn ExecutionPlan>, streams: &BTreeSet<String>) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<TopicScanExec>()
            && streams.contains(scan.topic())
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn refused(operator: &str, why: &str) -> TopicsError {
    TopicsError::plan(format!(
        "this continuous query cannot run incrementally: {operator} {why}. Continuous queries \
         run stateless SELECTs (projections, filters, joins with bounded tables), and one \
         GROUP BY aggregation per query: windowed (GROUP BY date_bin(<interval>, <event-time \
         column>), …) with append output, or keyed with update output"
    ))
}

/// Classifies the physical plan of one batch. `streams` are the topics of the query's
/// streaming sources; `event_time_columns` the event-time columns their tables declare.
pub(crate) fn analyze(
    plan: &Arc<dyn ExecutionPlan>,
    streams: &BTreeSet<String>,
    event_time_columns: &BTreeSet<String>,
) -> Result<Shape> {
    let mut aggregates: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    check(plan, streams, &mut aggregates)?;
    // A Final over its Partial is one aggregation; the outermost node stands for it.
    let outermost: Vec<&Arc<dyn ExecutionPlan>> = aggregates
        .iter()
        .filter(|a| {
            a.downcast_ref::<AggregateExec>()
                .is_some_and(|agg| *agg.mode() != AggregateMode::Partial)
        })
        .collect();
    let target = match outermost.as_slice() {
        [] => return Ok(Shape::Stateless),
        [one] => Arc::clone(one),
        _ => {
            return Err(refused(
                "an aggregate over an aggregate",
                "(a GROUP BY over a GROUP BY) would need the inner result complete; chain \
                 two continuous queries through a topic instead",
            ));
        }
    };
    let agg = target
        .downcast_ref::<AggregateExec>()
        .ok_or_else(|| TopicsError::internal("an aggregate that is not an AggregateExec"))?;
    if agg.group_expr().has_grouping_set() {
        return Err(refused(
            "GROUPING SETS / ROLLUP / CUBE",
            "are not carried across batches",
        ));
    }
    let partial: Arc<AggregateExec> = match agg.mode() {
        AggregateMode::Single | AggregateMode::SinglePartitioned => {
            Arc::new(AggregateExec::try_new(
                AggregateMode::Partial,
                agg.group_expr().clone(),
                agg.aggr_expr().to_vec(),
                agg.filter_expr().to_vec(),
                Arc::clone(agg.input()),
                agg.input_schema(),
            )?)
        }
        AggregateMode::Final | AggregateMode::FinalPartitioned => find_partial(agg.input())
            .ok_or_else(|| {
                TopicsError::internal("a Final aggregate without its Partial below it")
            })?,
        other => {
            return Err(TopicsError::internal(format!(
                "an aggregate in mode {other:?} at the top of a query"
            )));
        }
    };
    let group_final = partial.group_expr().as_final();
    let window = find_window(partial.group_expr(), event_time_columns)?;
    let filtered_above = filter_above(plan, &target);
    Ok(Shape::Aggregate(AggregateStages {
        partial,
        target,
        group_final,
        window,
        filtered_above,
    }))
}

/// Walks the plan: refuses what cannot run incrementally and collects stream-fed aggregates.
fn check(
    plan: &Arc<dyn ExecutionPlan>,
    streams: &BTreeSet<String>,
    aggregates: &mut Vec<Arc<dyn ExecutionPlan>>,
) -> Result<()> {
    if !reads_stream(plan, streams) {
        return Ok(());
    }
    let name = plan.name();
    if let Some(why) = refuse_above_stream(name) {
        return Err(refused(name, why));
    }
    // A LIMIT the optimizer pushed into the scan.
    if plan
        .downcast_ref::<TopicScanExec>()
        .is_some_and(|scan| scan.limit().is_some())
        && let Some(why) = refuse_above_stream("GlobalLimitExec")
    {
        return Err(refused("LIMIT", why));
    }
    if is_join(name) {
        let fed = plan
            .children()
            .into_iter()
            .filter(|c| reads_stream(c, streams))
            .count();
        if fed > 1 {
            return Err(refused(
                name,
                "joins two streams; a stream joins bounded tables (files, or topic tables \
                 with 'scan.bounded.mode'), each batch against all of them",
            ));
        }
        let mut aggregate_below = false;
        let _ = plan.apply(|node| {
            if node.downcast_ref::<AggregateExec>().is_some() {
                aggregate_below = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if aggregate_below {
            return Err(refused(
                name,
                "above an aggregate would join each batch's partial results",
            ));
        }
    }
    if plan.downcast_ref::<AggregateExec>().is_some() {
        aggregates.push(Arc::clone(plan));
    }
    for child in plan.children() {
        check(child, streams, aggregates)?;
    }
    Ok(())
}

/// Whether a filter lies between `plan`'s root and `target`.
fn filter_above(plan: &Arc<dyn ExecutionPlan>, target: &Arc<dyn ExecutionPlan>) -> bool {
    if Arc::ptr_eq(plan, target) {
        return false;
    }
    plan.children().into_iter().any(|child| {
        contains(child, target)
            && (plan.downcast_ref::<FilterExec>().is_some() || filter_above(child, target))
    })
}

fn contains(plan: &Arc<dyn ExecutionPlan>, target: &Arc<dyn ExecutionPlan>) -> bool {
    Arc::ptr_eq(plan, target) || plan.children().into_iter().any(|c| contains(c, target))
}

/// The Partial aggregate feeding a Final (through coalescing or merging nodes).
fn find_partial(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<AggregateExec>> {
    if let Some(agg) = plan.downcast_ref::<AggregateExec>()
        && *agg.mode() == AggregateMode::Partial
    {
        return Some(Arc::new(agg.clone()));
    }
    match plan.children().as_slice() {
        [only] => find_partial(only),
        _ => None,
    }
}
