//! A worker process: a datafusion-distributed Arrow Flight server whose sessions decode topic
//! scans and read their partitions.

use std::net::SocketAddr;

use datafusion_distributed::{DistributedExt, Worker, WorkerQueryContext};

use super::codec::TopicScanCodec;
use crate::error::{Result, TopicsError};

/// Serves as a worker on `addr` until the process ends (or the server fails). The address must
/// be free; a busy one is an error naming it.
pub async fn serve_worker(addr: SocketAddr) -> Result<()> {
    // Fail now, naming the address, rather than inside the server.
    let listener = std::net::TcpListener::bind(addr).map_err(|e| TopicsError::InvalidOption {
        key: "--listen".into(),
        value: addr.to_string(),
        reason: format!("cannot listen there: {e}"),
    })?;
    drop(listener);
    let worker = Worker::from_session_builder(|ctx: WorkerQueryContext| async move {
        Ok(ctx
            .builder
            .with_distributed_user_codec(TopicScanCodec)
            .build())
    });
    log::info!("datafusion-topics worker listening on {addr}");
    tonic::transport::Server::builder()
        .add_service(worker.into_worker_server())
        .serve(addr)
        .await
        .map_err(|e| TopicsError::Client {
            kind: "worker",
            action: format!("serving on {addr}"),
            detail: e.to_string(),
        })
}
