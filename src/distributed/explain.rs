//! The coordinator's query planner on top of datafusion-distributed's: `EXPLAIN` on a session
//! with workers shows the plan that runs (the distributed one, its stages and tasks, each
//! task's share of the partitions and the worker it goes to; DataFusion alone would show the
//! single-process plan, which never runs), and a distributed plan's transport errors say
//! that a worker failed.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::display::{PlanType, StringifiedPlan};
use datafusion::error::Result as DFResult;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::explain::ExplainExec;
use datafusion_distributed::{DistributedExec, display_plan_ascii};
use url::Url;

use super::errors::WorkerErrorsExec;

/// Wraps the distributed planner: `EXPLAIN`'s `physical_plan` is the distributed plan.
#[derive(Debug)]
pub(crate) struct ExplainOnWorkers {
    pub inner: Arc<dyn QueryPlanner + Send + Sync>,
    pub workers: Vec<Url>,
}

#[async_trait]
impl QueryPlanner for ExplainOnWorkers {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let out = self
            .inner
            .create_physical_plan(logical_plan, session)
            .await?;
        if out.is::<DistributedExec>() {
            return Ok(Arc::new(WorkerErrorsExec::new(out, self.workers.clone())));
        }
        let (LogicalPlan::Explain(explain), Some(exec)) =
            (logical_plan, out.downcast_ref::<ExplainExec>())
        else {
            return Ok(out);
        };
        let distributed = self
            .inner
            .create_physical_plan(&explain.plan, session)
            .await?;
        if !distributed.is::<DistributedExec>() {
            return Ok(out);
        }
        let mut text = display_plan_ascii(distributed.as_ref(), false);
        text.push_str(&super::tasks::routing_text(&self.workers));
        let plans: Vec<StringifiedPlan> = exec
            .stringified_plans()
            .iter()
            .map(|p| match p.plan_type {
                PlanType::FinalPhysicalPlan => {
                    StringifiedPlan::new(PlanType::FinalPhysicalPlan, text.clone())
                }
                _ => p.clone(),
            })
            .collect();
        Ok(Arc::new(ExplainExec::new(
            exec.schema(),
            plans,
            exec.verbose(),
        )))
    }
}
