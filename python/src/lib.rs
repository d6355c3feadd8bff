//! `datafusion_topics._native`: the compiled half of the `datafusion_topics` Python package.
//!
//! Topic tables reach DataFusion's Python package (`datafusion` on PyPI) through
//! `datafusion-ffi`: a [`table::PyTopicTable`] exports an `FFI_TableProvider`
//! (`__datafusion_table_provider__`) and a [`table::PyTopicTableFactory`] an
//! `FFI_TableProviderFactory` (`__datafusion_table_provider_factory__`, what
//! `SessionContext.register_table_factory` takes for `STORED AS KAFKA | NATS`). The host's
//! tokio runtime lives in another shared library, so this module owns one ([`runtime`]) and
//! enters it wherever the host polls our futures: the Kafka and NATS clients need its reactor.
//! Continuous queries ([`query::PyContinuousQuery`]) run in this module's own
//! `SessionContext`, since a Rust session cannot be taken out of a Python one.
//!
//! The Python wrapper (`python/datafusion_topics/__init__.py`) is the documented API; the
//! names here are its building blocks.

use pyo3::prelude::*;

mod errors;
mod query;
mod runtime;
mod table;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TopicsError", m.py().get_type::<errors::TopicsError>())?;
    m.add_class::<table::PyTopicTable>()?;
    m.add_class::<table::PyTopicTableFactory>()?;
    m.add_class::<query::PyContinuousQuery>()?;
    m.add_function(wrap_pyfunction!(table::connector_names, m)?)?;
    m.add_function(wrap_pyfunction!(table::streaming_settings, m)?)?;
    m.add_function(wrap_pyfunction!(table::open_table, m)?)?;
    m.add_function(wrap_pyfunction!(query::serve_prometheus, m)?)?;
    m.add_function(wrap_pyfunction!(query::checkpoint_progress, m)?)?;
    m.add_class::<query::PyArrowBatch>()?;
    Ok(())
}
