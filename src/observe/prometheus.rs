//! A Prometheus endpoint for the metrics of [`record_batch`](super::record_batch).

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use super::metric_names::{ALL, Kind};
use crate::error::{Result, TopicsError};

/// Bucket bounds of the `_seconds` histograms: 1 ms to 2 min.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Installs a Prometheus recorder as the process's `metrics` recorder and serves its text
/// format at `http://ADDR/metrics` (any path answers) from the current Tokio runtime.
/// Fails when the address cannot be bound or another recorder is already installed.
pub fn serve_prometheus(addr: SocketAddr) -> Result<()> {
    let fail = |detail: String| TopicsError::InvalidOption {
        key: "metrics-addr".into(),
        value: addr.to_string(),
        reason: format!("cannot serve Prometheus metrics there: {detail}"),
    };
    // Bind first: the exporter's own listener reports a busy port only in its task.
    std::net::TcpListener::bind(addr).map_err(|e| fail(e.to_string()))?;
    let mut builder = PrometheusBuilder::new().with_http_listener(addr);
    for metric in ALL.iter().filter(|m| m.kind == Kind::Histogram) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(metric.name.to_string()), SECONDS_BUCKETS)
            .map_err(|e| fail(e.to_string()))?;
    }
    builder.install().map_err(|e| fail(e.to_string()))?;
    for metric in ALL {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Kind::Histogram => {
                metrics::describe_histogram!(metric.name, metrics::Unit::Seconds, metric.help)
            }
        }
    }
    Ok(())
}
