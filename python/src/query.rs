//! Continuous queries from Python: `INSERT INTO sink SELECT … FROM topic tables`, run as
//! checkpointed micro-batches with exactly-once output (the Rust `ContinuousQuery`, with the
//! options of `datafusion-topics run`).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::{Array, RecordBatch, StructArray};
use datafusion::arrow::ffi::to_ffi;
use pyo3::types::PyCapsule;
use tokio::sync::Notify;

use datafusion_topics::checkpoint::CheckpointLog;
use datafusion_topics::query::OutputMode;
use datafusion_topics::{
    BatchProgress, ContinuousQuery, Limits, RunOptions, Trigger, session_context,
};
use pyo3::prelude::*;

use crate::errors::{df_err, topics_err};
use crate::runtime::runtime;

/// A compiled continuous query (see `datafusion_topics.ContinuousQuery`).
#[pyclass(name = "ContinuousQuery", module = "datafusion_topics._native", frozen)]
pub struct PyContinuousQuery {
    query: Arc<ContinuousQuery>,
}

/// How often a running query looks for Ctrl-C (Python runs signal handlers only on the main
/// thread, when asked).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Why `run` returned.
enum Ended {
    Finished(datafusion_topics::Result<u64>),
    /// Ctrl-C: stopped between batches (or at once after a second Ctrl-C).
    Interrupted(PyErr),
    /// The `on_batch` callback raised.
    CallbackFailed(PyErr),
}

#[pymethods]
impl PyContinuousQuery {
    /// Runs the DDL statements of `sql` in a session of this module (`STORED AS KAFKA | NATS |
    /// MEMORY | PARQUET | JSON`) and compiles its one `INSERT INTO … SELECT`.
    #[staticmethod]
    fn from_sql(py: Python<'_>, sql: String) -> PyResult<Self> {
        let query = py
            .detach(|| runtime().block_on(ContinuousQuery::from_sql(session_context(), &sql)))
            .map_err(df_err)?;
        Ok(Self {
            query: Arc::new(query),
        })
    }

    /// What the query writes to.
    #[getter]
    fn sink(&self) -> String {
        self.query.sink()
    }

    /// Runs batches until the trigger says stop (`available-now`), `max_batches` is reached,
    /// an error, or Ctrl-C. Calls `on_batch(progress_dict, progress_line)` after each batch.
    #[pyo3(signature = (checkpoint, trigger, max_records_per_partition=None,
        max_bytes_per_partition=None, max_batches=None, commit_group=None, output_mode=None,
        on_batch=None))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        checkpoint: String,
        trigger: &str,
        max_records_per_partition: Option<u64>,
        max_bytes_per_partition: Option<u64>,
        max_batches: Option<u64>,
        commit_group: Option<String>,
        output_mode: Option<&str>,
        on_batch: Option<Py<PyAny>>,
    ) -> PyResult<u64> {
        let options = RunOptions {
            checkpoint,
            trigger: Trigger::from_str(trigger).map_err(topics_err)?,
            limits: Limits {
                max_records: max_records_per_partition,
                max_bytes: max_bytes_per_partition,
            },
            max_batches,
            commit_group,
            output_mode: output_mode
                .map(OutputMode::from_str)
                .transpose()
                .map_err(topics_err)?,
        };
        let query = Arc::clone(&self.query);
        let batches_done = AtomicU64::new(0);
        let callback_error: Mutex<Option<PyErr>> = Mutex::new(None);
        let callback_failed = AtomicBool::new(false);
        // Wakes the loop below as soon as a batch has committed, so a stop requested by
        // Ctrl-C happens before the runner plans the next one.
        let batch_ended = Notify::new();
        let on_progress = |progress: &BatchProgress| {
            batches_done.fetch_add(1, Ordering::SeqCst);
            batch_ended.notify_one();
            let Some(callback) = &on_batch else { return };
            Python::attach(|py| {
                if let Err(e) = call_back(py, callback, progress) {
                    if let Ok(mut slot) = callback_error.lock() {
                        slot.get_or_insert(e);
                    }
                    callback_failed.store(true, Ordering::SeqCst);
                }
            });
        };
        let ended = py.detach(|| {
            runtime().block_on(async {
                let work = query.run(&options, on_progress);
                tokio::pin!(work);
                // After a first Ctrl-C: the batch count to wait past (None = stop now).
                let mut interrupted: Option<(PyErr, Option<u64>)> = None;
                loop {
                    tokio::select! {
                        done = &mut work => return Ended::Finished(done),
                        _ = batch_ended.notified() => {}
                        _ = tokio::time::sleep(SIGNAL_CHECK) => {}
                    }
                    if callback_failed.load(Ordering::SeqCst) {
                        let e = callback_error.lock().ok().and_then(|mut e| e.take());
                        if let Some(e) = e {
                            return Ended::CallbackFailed(e);
                        }
                    }
                    let done = batches_done.load(Ordering::SeqCst);
                    if matches!(&interrupted, Some((_, after)) if after.is_none_or(|n| done > n))
                        && let Some((signal, _)) = interrupted
                    {
                        return Ended::Interrupted(signal);
                    }
                    if let Err(signal) = Python::attach(check_signals) {
                        if interrupted.is_some() {
                            // A second Ctrl-C: stop at once; the batch is replayed next run.
                            return Ended::Interrupted(signal);
                        }
                        let busy = batch_in_flight(&options.checkpoint).await;
                        interrupted = Some((signal, busy.then_some(done)));
                    }
                }
            })
        });
        match ended {
            Ended::Finished(done) => done.map_err(topics_err),
            Ended::Interrupted(e) | Ended::CallbackFailed(e) => Err(e),
        }
    }

    fn __repr__(&self) -> String {
        format!("ContinuousQuery(into {})", self.query.sink())
    }
}

/// Runs Python's signal handlers (a Ctrl-C raises `KeyboardInterrupt` here). Running a
/// statement first makes the interpreter notice a signal that arrived while the GIL was
/// released, as DataFusion's Python package does.
fn check_signals(py: Python<'_>) -> PyResult<()> {
    py.run(c"pass", None, None)?;
    py.check_signals()
}

/// Whether a batch is running: the checkpoint's newest batch has offsets but no commit yet. A
/// write of `offsets/N` may have started just before the query was last polled, so an idle
/// answer is confirmed once more a moment later (the query is not polled meanwhile). If the
/// checkpoint cannot be read, assume a batch is running, and wait for it.
async fn batch_in_flight(checkpoint: &str) -> bool {
    if uncommitted_batch(checkpoint).await {
        return true;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    uncommitted_batch(checkpoint).await
}

/// Whether the checkpoint's newest `offsets/N` lacks its `commits/N`.
async fn uncommitted_batch(checkpoint: &str) -> bool {
    let Ok(log) = CheckpointLog::open(checkpoint) else {
        return true;
    };
    match log.latest_offsets().await {
        Ok(None) => false,
        Ok(Some(n)) => !matches!(log.commit(n).await, Ok(Some(_))),
        Err(_) => true,
    }
}

/// Calls `on_batch` with the batch's progress as a dict (the JSON `--progress json` prints)
/// and its one-line text.
fn call_back(py: Python<'_>, callback: &Py<PyAny>, progress: &BatchProgress) -> PyResult<()> {
    let json = serde_json::to_string(progress)
        .map_err(|e| crate::errors::TopicsError::new_err(format!("batch progress: {e}")))?;
    let dict = py.import("json")?.call_method1("loads", (json,))?;
    callback.call1(py, (dict, progress.to_string()))?;
    Ok(())
}

/// Serves Prometheus metrics (offsets, lag, throughput, batch timings, state) of this
/// process's topic scans and continuous queries at `http://ADDR/metrics`, as
/// `datafusion-topics run --metrics-addr` does.
#[pyfunction]
pub fn serve_prometheus(addr: &str) -> PyResult<()> {
    let parsed: std::net::SocketAddr = addr.parse().map_err(|e| {
        crate::errors::TopicsError::new_err(format!(
            "invalid value \"{addr}\" for option 'metrics-addr': {e} (expected HOST:PORT such as \
             127.0.0.1:9464)"
        ))
    })?;
    let _entered = runtime().enter();
    datafusion_topics::observe::serve_prometheus(parsed).map_err(topics_err)
}

/// A record batch handed to Python through the Arrow PyCapsule interface
/// (`pyarrow.record_batch(obj)` reads it).
#[pyclass(name = "ArrowBatch", module = "datafusion_topics._native", frozen)]
pub struct PyArrowBatch {
    batch: RecordBatch,
}

#[pymethods]
impl PyArrowBatch {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        // The batch is offered as it is; a consumer casts it if it asked for another schema.
        let _ = requested_schema;
        let data = StructArray::from(self.batch.clone()).into_data();
        let (array, schema) =
            to_ffi(&data).map_err(|e| crate::errors::TopicsError::new_err(e.to_string()))?;
        Ok((
            PyCapsule::new_with_value(py, schema, c"arrow_schema")?,
            PyCapsule::new_with_value(py, array, c"arrow_array")?,
        ))
    }
}

/// The last `batches` batches of the checkpoint at `url`, one row each (the
/// `checkpoint_progress('URL')` table function and `datafusion-topics status`).
#[pyfunction]
#[pyo3(signature = (url, batches=datafusion_topics::observe::DEFAULT_BATCHES))]
pub fn checkpoint_progress(py: Python<'_>, url: String, batches: u64) -> PyResult<PyArrowBatch> {
    let batch = py
        .detach(|| {
            runtime().block_on(datafusion_topics::observe::checkpoint_progress(
                &url, batches,
            ))
        })
        .map_err(topics_err)?;
    Ok(PyArrowBatch { batch })
}
