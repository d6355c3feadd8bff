//! A worker that dies or cannot be reached surfaces as a transport error from deep inside the
//! gRPC stack (`tcp connect error`, `h2 protocol error: … broken pipe`). The root of a
//! distributed plan says what happened in our terms: which workers the query ran on, and that
//! it stopped.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::StreamExt;
use url::Url;

/// The root of a distributed plan: its input's rows, its transport errors explained.
#[derive(Debug)]
pub(crate) struct WorkerErrorsExec {
    input: Arc<dyn ExecutionPlan>,
    workers: Vec<Url>,
}

impl WorkerErrorsExec {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>, workers: Vec<Url>) -> Self {
        Self { input, workers }
    }
}

/// True when `text` is a transport failure between the coordinator and a worker.
fn is_transport(text: &str) -> bool {
    [
        "tcp connect error",
        "h2 protocol error",
        "transport error",
        "broken pipe",
        "connection reset",
        "The service is currently unavailable",
        "Error connecting to Distributed DataFusion worker",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

fn explain(error: DataFusionError, workers: &[Url]) -> DataFusionError {
    let text = error.to_string();
    if !is_transport(&text) {
        return error;
    }
    let list: Vec<String> = workers.iter().map(ToString::to_string).collect();
    DataFusionError::Execution(format!(
        "a worker failed or could not be reached, so the query stopped (its workers: {}): \
         {text}",
        list.join(", ")
    ))
}

impl DisplayAs for WorkerErrorsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkerErrorsExec")
    }
}

impl ExecutionPlan for WorkerErrorsExec {
    fn name(&self) -> &str {
        "WorkerErrorsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
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
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => {
                Ok(Arc::new(Self::new(input, self.workers.clone())))
            }
            _ => Err(DataFusionError::Internal(
                "WorkerErrorsExec has one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let workers = self.workers.clone();
        let stream = self
            .input
            .execute(partition, context)
            .map_err(|e| explain(e, &workers))?;
        let schema = stream.schema();
        let mapped = stream.map(move |item| item.map_err(|e| explain(e, &workers)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_name_the_workers() {
        let workers = vec![Url::parse("http://127.0.0.1:7001").unwrap()];
        let e = explain(
            DataFusionError::External("h2 protocol error: broken pipe".into()),
            &workers,
        );
        assert!(
            e.to_string().contains("a worker failed")
                && e.to_string().contains("http://127.0.0.1:7001/"),
            "{e}"
        );
        let other = explain(DataFusionError::Plan("no such column".into()), &workers);
        assert!(!other.to_string().contains("worker"), "{other}");
    }
}
