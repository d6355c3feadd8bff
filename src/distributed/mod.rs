//! Scale-out on [datafusion-distributed]: the same SQL, a topic's partitions read by several
//! worker processes.
//!
//! The coordinator plans as usual (offsets are resolved once, there); the distributed planner
//! then cuts the plan into stages, and a topic scan's stage runs as one task per worker, each
//! reading its own share of the partitions ([`tasks`]). Workers are Arrow Flight (tonic)
//! servers ([`serve_worker`], `datafusion-topics worker --listen ADDR`) that receive each task's
//! plan, scans encoded as their table's declaration plus the ranges to read ([`codec`]): plan
//! is data, the worker connects. Secret options never travel; workers read them from their
//! own environment.
//!
//! Only bounded scans go to workers; live scans, work queues and tables with a watermark are
//! refused with the reason. Continuous queries run each batch's reading and stateless
//! processing on the workers, while the checkpoint and the sink stay with the coordinator.
//!
//! [datafusion-distributed]: https://github.com/datafusion-contrib/datafusion-distributed

mod codec;
mod errors;
mod explain;
mod tasks;
mod worker;

use std::sync::Arc;

use datafusion::common::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use datafusion_distributed::{DistributedExt, SessionStateBuilderExt, WorkerResolver};
use url::Url;

use crate::error::{Result, TopicsError};

pub use codec::{TopicScanCodec, secret_env_var};
pub use tasks::{desired_task_count, route_to, scale_up};
pub use worker::serve_worker;

/// A fixed list of worker URLs.
#[derive(Debug, Clone)]
pub struct WorkerUrls(pub Vec<Url>);

impl WorkerResolver for WorkerUrls {
    fn get_urls(&self) -> std::result::Result<Vec<Url>, DataFusionError> {
        Ok(self.0.clone())
    }
}

/// Marks a session whose plans run on workers (continuous queries refuse what they cannot run
/// there).
#[derive(Debug, Clone)]
pub struct Workers(pub Vec<Url>);

/// Parses `--workers` (`http://host:port,host:port`; a URL without a scheme is `http://`).
pub fn parse_workers(list: &str) -> Result<Vec<Url>> {
    let urls: Vec<Url> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let full = if s.contains("://") {
                s.to_string()
            } else {
                format!("http://{s}")
            };
            Url::parse(&full).map_err(|e| TopicsError::InvalidOption {
                key: "--workers".into(),
                value: s.to_string(),
                reason: format!("not a worker URL: {e}"),
            })
        })
        .collect::<Result<_>>()?;
    if urls.is_empty() {
        return Err(TopicsError::InvalidOption {
            key: "--workers".into(),
            value: list.to_string(),
            reason: "expected host:port[,host:port…] of running workers".into(),
        });
    }
    Ok(urls)
}

/// `builder` with the distributed planner over `workers`: topic scans split over them, the
/// topic codec on the wire.
pub fn with_workers(builder: SessionStateBuilder, workers: Vec<Url>) -> SessionStateBuilder {
    let mut builder = builder;
    let config = builder.config().get_or_insert_with(SessionConfig::new);
    config.set_extension(Arc::new(Workers(workers.clone())));
    let mut builder = builder
        .with_distributed_worker_resolver(WorkerUrls(workers.clone()))
        .with_distributed_planner()
        .with_distributed_user_codec(TopicScanCodec)
        .with_distributed_desired_task_count_handler(desired_task_count)
        .with_distributed_scale_up_leaf_node_handler(scale_up)
        .with_distributed_route_tasks_handler(route_to(workers.clone()));
    if let Some(inner) = builder.query_planner().take() {
        builder =
            builder.with_query_planner(Arc::new(explain::ExplainOnWorkers { inner, workers }));
    }
    builder
}

/// The workers a session runs its plans on, if any.
pub fn workers_of(config: &SessionConfig) -> Option<Arc<Workers>> {
    config.get_extension::<Workers>()
}
