//! How the distributed planner splits a topic scan: one task per worker at most, each reading
//! its own partitions (round robin), and which scans may not be split at all.

use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedLeafExec, RouteTasksEvent,
    RouteTasksEventResponse, ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse,
};
use url::Url;

use crate::scan::{PartitionScan, ScanInput, TopicScanExec};

/// How many tasks a topic scan wants: one per partition it reads (the planner caps it at the
/// number of workers). A scan that cannot run elsewhere fails the plan, saying why: it would
/// otherwise be shipped to a worker anyway.
pub fn desired_task_count(
    event: DesiredTaskCountEvent<'_>,
) -> Option<DFResult<DesiredTaskCountEventResponse>> {
    let scan = event.plan.downcast_ref::<TopicScanExec>()?;
    if scan.origin().is_none() {
        return Some(Err(DataFusionError::Plan(format!(
            "the scan of {} cannot run on workers: {}; run this query without --workers",
            scan.topic(),
            why_local(scan)
        ))));
    }
    let reading = scan
        .scans()
        .iter()
        .filter(|p| p.ranges.iter().any(|r| !r.is_empty()))
        .count();
    Some(Ok(DesiredTaskCountEventResponse::desired(reading.max(1))))
}

fn why_local(scan: &TopicScanExec) -> &'static str {
    if scan.scans().iter().any(|p| !p.is_bounded()) || scan.discovery().is_some() {
        "it follows the log (a live scan), and workers run bounded plans only (declare the \
         table with 'scan.bounded.mode', or give the scan an end with an _offset or \
         _timestamp filter)"
    } else if scan.event_time().is_some() {
        "its table declares a watermark, whose late-row rule needs every partition in one \
         process"
    } else if matches!(scan.input(), ScanInput::Queue { .. }) {
        "it reads a work queue, whose acknowledgements belong to the coordinator"
    } else {
        "its table was built from a source in code, not declared by location and options"
    }
}

/// Splits a topic scan over `task_count` tasks: partition `i` goes to task `i % task_count`,
/// and every task gets as many output partitions (an empty one reads nothing), as the
/// planner requires.
pub fn scale_up(event: ScaleUpLeafNodeEvent<'_>) -> Option<DFResult<ScaleUpLeafNodeEventResponse>> {
    let scan = event.plan.downcast_ref::<TopicScanExec>()?;
    let tasks = event.task_count.max(1);
    let mut shares: Vec<Vec<PartitionScan>> = vec![Vec::new(); tasks];
    for (i, p) in scan.scans().iter().enumerate() {
        shares[i % tasks].push(p.clone());
    }
    let width = shares.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut variants: Vec<Arc<dyn ExecutionPlan>> = Vec::with_capacity(tasks);
    for mut share in shares {
        while share.len() < width {
            let filler = scan.scans().first().map(|p| PartitionScan {
                topic: Arc::clone(&p.topic),
                partition: p.partition,
                ranges: Vec::new(),
                skipped: 0,
            });
            match filler {
                Some(f) => share.push(f),
                None => break,
            }
        }
        match scan.with_partitions(share) {
            Some(v) => variants.push(Arc::new(v)),
            None => {
                return Some(Err(DataFusionError::Internal(
                    "a work-queue scan reached the distributed planner".into(),
                )));
            }
        }
    }
    Some(
        DistributedLeafExec::try_new(Arc::clone(event.plan), variants)
            .map(|leaf| ScaleUpLeafNodeEventResponse::new(Arc::new(leaf))),
    )
}

/// Sends the tasks of a stage that reads topics to the workers in order (task `i` to worker
/// `i % n`), so EXPLAIN can say which worker reads which partitions; other stages are left
/// to datafusion-distributed's own routing.
pub fn route_to(
    workers: Vec<Url>,
) -> impl Fn(RouteTasksEvent<'_>) -> Option<DFResult<RouteTasksEventResponse>> + Send + Sync + 'static
{
    move |event| {
        if workers.is_empty() || !reads_topics(event.plan) {
            return None;
        }
        Some(Ok(RouteTasksEventResponse::new(
            (0..event.task_count)
                .map(|i| workers[i % workers.len()].clone())
                .collect(),
        )))
    }
}

fn reads_topics(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.exists(|node| {
        Ok(node.downcast_ref::<TopicScanExec>().is_some()
            || node
                .downcast_ref::<DistributedLeafExec>()
                .is_some_and(|leaf| leaf.original().downcast_ref::<TopicScanExec>().is_some()))
    })
    .unwrap_or(false)
}

/// The routing rule as EXPLAIN prints it below the plan.
pub(crate) fn routing_text(workers: &[Url]) -> String {
    let pairs: Vec<String> = workers
        .iter()
        .enumerate()
        .map(|(i, url)| format!("t{i} → {url}"))
        .collect();
    format!(
        "\nworkers of stages that read topics (task i → worker i mod {}): {}\n",
        workers.len(),
        pairs.join(", ")
    )
}
