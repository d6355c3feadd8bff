//! The physical optimizer rule that gives live windowed aggregations their watermark: an
//! aggregation over an unbounded input, grouped by `date_bin(…)` over the event-time column of
//! a table that declares a watermark, becomes a [`WatermarkWindowExec`].

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use super::window_exec::WatermarkWindowExec;
use crate::scan::{EventTimeTracker, TopicScanExec};
use crate::windows::find_window;

/// Replaces live windowed aggregations with [`WatermarkWindowExec`] (see the module docs).
#[derive(Debug, Default)]
pub struct WatermarkWindows;

impl PhysicalOptimizerRule for WatermarkWindows {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            Ok(match rewrite(&node)? {
                Some(replacement) => Transformed::new(replacement, true, TreeNodeRecursion::Jump),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "WatermarkWindows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The replacement of `node` when it is a live windowed aggregation.
fn rewrite(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(agg) = node.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    let template = match agg.mode() {
        AggregateMode::Single | AggregateMode::SinglePartitioned => agg.clone(),
        AggregateMode::Final | AggregateMode::FinalPartitioned => match find_partial(agg.input()) {
            Some(partial) => partial,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let input = Arc::clone(template.input());
    if !input.boundedness().is_unbounded() || template.group_expr().has_grouping_set() {
        return Ok(None);
    }
    let Some(tracker) = live_tracker(&input) else {
        return Ok(None);
    };
    let columns: BTreeSet<String> = [tracker.spec().column.clone()].into();
    let Some(window) = find_window(template.group_expr(), &columns)? else {
        return Ok(None);
    };
    Ok(Some(Arc::new(WatermarkWindowExec::new(
        input,
        template.group_expr().clone(),
        template.aggr_expr().to_vec(),
        template.filter_expr().to_vec(),
        window,
        tracker,
        agg.schema(),
    ))))
}

/// The Partial aggregate feeding a Final (through coalescing or merging nodes).
fn find_partial(plan: &Arc<dyn ExecutionPlan>) -> Option<AggregateExec> {
    if let Some(agg) = plan.downcast_ref::<AggregateExec>()
        && *agg.mode() == AggregateMode::Partial
    {
        return Some(agg.clone());
    }
    match plan.children().as_slice() {
        [only] => find_partial(only),
        _ => None,
    }
}

/// The event-time tracker of the (one) unbounded topic scan below `plan` that declares a
/// watermark.
fn live_tracker(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<EventTimeTracker>> {
    let mut found = None;
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<TopicScanExec>()
            && !scan.is_bounded()
            && let Some(tracker) = scan.event_time()
        {
            found = Some(Arc::clone(tracker));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
