//! Session setup for topic tables: the `STORED AS KAFKA | NATS` factory, and a physical optimizer
//! rule that turns DataFusion's bare "pipeline breaking" rejection of unbounded scans into
//! advice on how to bound the query.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::connector::connectors;
use crate::scan::TopicScanExec;
use crate::table::TopicTableFactory;

/// Rejects, with advice, a plan that needs all of an unbounded topic scan's input.
#[derive(Debug, Default)]
pub struct BoundTheScanHint;

impl BoundTheScanHint {
    /// The first operator (bottom-up) that must see all of its unbounded input.
    fn find_breaker(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        if let Some(found) = plan.children().into_iter().find_map(Self::find_breaker) {
            return Some(found);
        }
        let breaks = match plan.boundedness() {
            Boundedness::Unbounded {
                requires_infinite_memory,
            } => requires_infinite_memory || plan.pipeline_behavior() == EmissionType::Final,
            Boundedness::Bounded => false,
        };
        breaks.then(|| Arc::clone(plan))
    }

    /// The unbounded topic scans below `plan`, as `source` strings.
    fn unbounded_scans(plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
        let mut out = Vec::new();
        let _ = plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<TopicScanExec>()
                && !scan.is_bounded()
            {
                out.push(scan.source_name());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        out
    }
}

impl PhysicalOptimizerRule for BoundTheScanHint {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(breaker) = Self::find_breaker(&plan) else {
            return Ok(plan);
        };
        let scans = Self::unbounded_scans(&breaker);
        if scans.is_empty() {
            return Ok(plan);
        }
        Err(DataFusionError::Plan(format!(
            "{} needs all of its input before it can produce a row, but the scan of {} is unbounded \
             (it follows the log and never ends). Bound the scan with one of: a filter on _offset \
             (WHERE _offset < 1000) or _partition and _offset together; an upper bound on _timestamp \
             (for log-append-time topics, or with the table option 'scan.timestamp.max-skew'); a LIMIT \
             in a subquery (SELECT … FROM (SELECT * FROM t LIMIT 1000)); or the table option \
             'scan.bounded.mode' = 'latest-offset' to read what exists when the query starts.",
            breaker.name(),
            scans.join(", ")
        )))
    }

    fn name(&self) -> &str {
        "BoundTheScanHint"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// DataFusion's default session with `STORED AS <connector>` registered for every connector
/// (`KAFKA`, `NATS`, `MEMORY`), hopping windows (`GROUP BY hop(<slide>, <size>, <event
/// time>)`, [`HoppingWindows`](crate::windows::HoppingWindows)), live windowed aggregations over watermarked tables
/// ([`WatermarkWindows`](crate::live::WatermarkWindows)), [`BoundTheScanHint`] placed
/// before the sanity check, and the `checkpoint_progress('URL')` table function
/// ([`CheckpointProgressFunc`](crate::observe::CheckpointProgressFunc)).
pub fn session_state_builder(config: SessionConfig) -> SessionStateBuilder {
    let mut rules = PhysicalOptimizer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "SanityCheckPlan")
        .unwrap_or(rules.len());
    rules.insert(at, Arc::new(BoundTheScanHint));
    rules.insert(at, Arc::new(crate::live::WatermarkWindows));
    let mut builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rules(rules)
        .with_analyzer_rule(Arc::new(crate::windows::HoppingWindows));
    builder
        .scalar_functions()
        .get_or_insert_with(Vec::new)
        .extend(crate::windows::functions());
    for connector in connectors() {
        builder =
            builder.with_table_factory(connector.name().to_string(), Arc::new(TopicTableFactory));
    }
    let mut table_functions: std::collections::HashMap<_, _> =
        datafusion::execution::SessionStateDefaults::default_table_functions()
            .into_iter()
            .map(|f| (f.name().to_string(), f))
            .collect();
    table_functions.insert(
        "checkpoint_progress".to_string(),
        Arc::new(datafusion::catalog::TableFunction::new(
            "checkpoint_progress".to_string(),
            Arc::new(crate::observe::CheckpointProgressFunc),
        )),
    );
    builder.with_table_functions(table_functions)
}

/// DataFusion's default configuration adjusted for unbounded topic scans: round-robin
/// repartitioning is off, because splitting an ordered unbounded stream by batches leaves
/// order-preserving merges waiting on inputs that may never receive a batch (an event-time
/// window over a one-partition topic would never close).
///
/// Hash repartitioning of aggregations is off too: over an ordered unbounded input it splits
/// each window's groups across partitions, so a window is emitted only once every partition
/// saw a later key, and `LIMIT n` on a streaming aggregate returns whichever windows closed
/// first rather than the first `n`.
pub fn streaming_config() -> SessionConfig {
    STREAMING_SETTINGS
        .iter()
        .fold(SessionConfig::new(), |config, (key, value)| {
            config.set_str(key, value)
        })
}

/// The settings [`streaming_config`] changes from DataFusion's defaults.
pub const STREAMING_SETTINGS: &[(&str, &str)] = &[
    (
        "datafusion.optimizer.enable_round_robin_repartition",
        "false",
    ),
    ("datafusion.optimizer.repartition_aggregations", "false"),
];

/// A `SessionContext` set up for topic tables: [`streaming_config`] and
/// [`session_state_builder`].
pub fn session_context() -> SessionContext {
    SessionContext::new_with_state(session_state_builder(streaming_config()).build())
}
