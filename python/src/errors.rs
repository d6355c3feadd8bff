//! Errors as Python exceptions: one class, `datafusion_topics.TopicsError`, whose message is
//! the crate's own (it names the topic, partition, offset or option, and never a secret: the
//! crate redacts those before an error is built).

use datafusion::error::DataFusionError;
use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    datafusion_topics,
    TopicsError,
    PyException,
    "An error from datafusion-topics: a bad option or location, a missing topic, a broker or \
     checkpoint failure. The message is the Rust crate's."
);

/// A DataFusion error (planning, execution, or a `TopicsError` inside it) as a Python
/// exception. A wrapped `TopicsError` is shown without DataFusion's "External error: " prefix.
pub fn df_err(e: DataFusionError) -> PyErr {
    match datafusion_topics::topics_error(&e) {
        Some(topics) => TopicsError::new_err(topics.to_string()),
        None => TopicsError::new_err(e.to_string()),
    }
}

/// The crate's own error as a Python exception.
pub fn topics_err(e: datafusion_topics::TopicsError) -> PyErr {
    TopicsError::new_err(e.to_string())
}
