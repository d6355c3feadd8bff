//! Topic tables for DataFusion's Python package: a provider (`table(...)`) and the
//! `STORED AS KAFKA | NATS | MEMORY` factory, exported through `datafusion-ffi`.

use std::collections::HashMap;
use std::ffi::CStr;
use std::ptr::NonNull;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ffi::FFI_ArrowSchema;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::TableType;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_ffi::proto::logical_extension_codec::FFI_LogicalExtensionCodec;
use datafusion_ffi::table_provider::FFI_TableProvider;
use datafusion_ffi::table_provider_factory::FFI_TableProviderFactory;
use datafusion_topics::connector::{connector_for_location, connectors};
use datafusion_topics::{STREAMING_SETTINGS, TopicTable, TopicTableFactory, session_context};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyCapsuleMethods};

use crate::errors::{TopicsError, df_err, topics_err};
use crate::runtime::{InRuntime, handle, runtime};

/// A topic table whose planning runs inside this module's runtime (see [`crate::runtime`]).
/// Everything else is the inner provider's.
#[derive(Debug)]
struct RuntimeTable(Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for RuntimeTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.0.constraints()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.0.get_column_default(column)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        InRuntime::new(self.0.scan(state, projection, filters, limit)).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.0.statistics()
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        InRuntime::new(self.0.insert_into(state, input, insert_op)).await
    }
}

/// The crate's `STORED AS` factory, creating tables inside this module's runtime (topic
/// creation, JSON inference and the existence check talk to the brokers).
#[derive(Debug)]
struct RuntimeFactory;

#[async_trait]
impl TableProviderFactory for RuntimeFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> DFResult<Arc<dyn TableProvider>> {
        let table = InRuntime::new(TopicTableFactory.create(state, cmd)).await?;
        Ok(Arc::new(RuntimeTable(table)))
    }
}

/// The host's logical extension codec: the argument DataFusion's Python package passes to
/// `__datafusion_table_provider__` (a `SessionContext`, or the codec's capsule itself) and to
/// `__datafusion_table_provider_factory__` (the capsule).
fn host_codec(session: &Bound<'_, PyAny>) -> PyResult<FFI_LogicalExtensionCodec> {
    const NAME: &CStr = c"datafusion_logical_extension_codec";
    let attr = "__datafusion_logical_extension_codec__";
    let capsule = if session.hasattr(attr)? {
        session.getattr(attr)?.call0()?
    } else {
        session.clone()
    };
    let capsule = capsule.cast::<PyCapsule>().map_err(|_| {
        PyTypeError::new_err(
            "expected a datafusion SessionContext (datafusion>=55,<56) or its logical extension \
             codec capsule",
        )
    })?;
    let data: NonNull<FFI_LogicalExtensionCodec> = capsule.pointer_checked(Some(NAME))?.cast();
    // SAFETY: the capsule's name says it holds an FFI_LogicalExtensionCodec (datafusion's
    // Python package creates it so); it is cloned at once, while the capsule is alive.
    Ok(unsafe { data.as_ref() }.clone())
}

/// One topic table, ready for `SessionContext.register_table(name, table)` (it implements
/// `__datafusion_table_provider__`). Built by `datafusion_topics.table(...)`.
#[pyclass(name = "TopicTable", module = "datafusion_topics._native", frozen)]
pub struct PyTopicTable {
    table: Arc<dyn TableProvider>,
    location: String,
}

#[pymethods]
impl PyTopicTable {
    /// The table's columns (value columns and metadata columns), as a pyarrow-compatible
    /// schema capsule (`pyarrow.schema(table)` reads it).
    fn __arrow_c_schema__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        let schema = FFI_ArrowSchema::try_from(self.table.schema().as_ref())
            .map_err(|e| TopicsError::new_err(e.to_string()))?;
        PyCapsule::new_with_value(py, schema, c"arrow_schema")
    }

    fn __datafusion_table_provider__<'py>(
        &self,
        py: Python<'py>,
        session: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let codec = host_codec(&session)?;
        let provider = FFI_TableProvider::new_with_ffi_codec(
            Arc::new(RuntimeTable(Arc::clone(&self.table))),
            true,
            Some(handle()),
            codec,
        );
        PyCapsule::new_with_value(py, provider, c"datafusion_table_provider")
    }

    fn __repr__(&self) -> String {
        format!("TopicTable('{}')", self.location)
    }
}

/// The `STORED AS` factory for `SessionContext.register_table_factory(name, factory)`
/// (it implements `__datafusion_table_provider_factory__`).
#[pyclass(
    name = "TopicTableFactory",
    module = "datafusion_topics._native",
    frozen
)]
pub struct PyTopicTableFactory;

#[pymethods]
impl PyTopicTableFactory {
    #[new]
    fn new() -> Self {
        Self
    }

    fn __datafusion_table_provider_factory__<'py>(
        &self,
        py: Python<'py>,
        codec: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let codec = host_codec(&codec)?;
        let factory = FFI_TableProviderFactory::new_with_ffi_codec(
            Arc::new(RuntimeFactory),
            Some(handle()),
            codec,
        );
        PyCapsule::new_with_value(py, factory, c"datafusion_table_provider_factory")
    }
}

/// The `STORED AS` names this build has (`KAFKA`, `NATS`, `MEMORY`).
#[pyfunction]
pub fn connector_names() -> Vec<&'static str> {
    connectors().iter().map(|c| c.name()).collect()
}

/// The session settings topic tables want (`datafusion_topics::STREAMING_SETTINGS`).
#[pyfunction]
pub fn streaming_settings() -> Vec<(&'static str, &'static str)> {
    STREAMING_SETTINGS.to_vec()
}

/// A SQL string literal.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Opens the table at `location`. `columns` is a pyarrow schema (anything with
/// `__arrow_c_schema__`), a SQL column list (`"id BIGINT, amount DOUBLE"`), or None (JSON
/// columns inferred, raw formats' `value`). A SQL list or None goes through the same
/// `CREATE EXTERNAL TABLE` path as SQL, so metadata columns in the list and inference work
/// exactly as there.
#[pyfunction]
#[pyo3(signature = (location, columns=None, options=None))]
pub fn open_table(
    py: Python<'_>,
    location: String,
    columns: Option<Bound<'_, PyAny>>,
    options: Option<HashMap<String, String>>,
) -> PyResult<PyTopicTable> {
    let options = options.unwrap_or_default();
    enum Columns {
        Schema(SchemaRef),
        Sql(Option<String>),
    }
    let columns = match columns {
        None => Columns::Sql(None),
        Some(c) if c.is_none() => Columns::Sql(None),
        Some(c) => {
            if let Ok(sql) = c.extract::<String>() {
                Columns::Sql(Some(sql))
            } else if c.hasattr("__arrow_c_schema__")? {
                Columns::Schema(Arc::new(schema_from_capsule(&c)?))
            } else {
                return Err(PyTypeError::new_err(
                    "columns must be a pyarrow schema, a SQL column list such as \
                     'id BIGINT, amount DOUBLE', or None",
                ));
            }
        }
    };
    let table: Arc<dyn TableProvider> = match columns {
        Columns::Schema(schema) => {
            let open = TopicTable::open(&location, schema, &options);
            let table = py.detach(|| runtime().block_on(open)).map_err(topics_err)?;
            Arc::new(table)
        }
        Columns::Sql(sql) => {
            let connector = connector_for_location(&location).map_err(topics_err)?;
            let mut ddl = String::from("CREATE EXTERNAL TABLE t ");
            if let Some(sql) = sql.filter(|s| !s.trim().is_empty()) {
                ddl.push_str(&format!("({sql}) "));
            }
            ddl.push_str(&format!(
                "STORED AS {} LOCATION {}",
                connector.name(),
                quoted(&location)
            ));
            if !options.is_empty() {
                let mut pairs: Vec<_> = options.iter().collect();
                pairs.sort();
                let pairs: Vec<String> = pairs
                    .into_iter()
                    .map(|(k, v)| format!("{} {}", quoted(k), quoted(v)))
                    .collect();
                ddl.push_str(&format!(" OPTIONS ({})", pairs.join(", ")));
            }
            py.detach(|| {
                runtime().block_on(async {
                    let ctx = session_context();
                    ctx.sql(&ddl).await?;
                    ctx.table_provider("t").await
                })
            })
            .map_err(df_err)?
        }
    };
    Ok(PyTopicTable { table, location })
}

/// A schema from an object implementing the Arrow PyCapsule interface.
fn schema_from_capsule(obj: &Bound<'_, PyAny>) -> PyResult<Schema> {
    let capsule = obj.getattr("__arrow_c_schema__")?.call0()?;
    let capsule = capsule
        .cast::<PyCapsule>()
        .map_err(|_| PyTypeError::new_err("__arrow_c_schema__ did not return a capsule"))?;
    let data: NonNull<FFI_ArrowSchema> = capsule.pointer_checked(Some(c"arrow_schema"))?.cast();
    // SAFETY: an "arrow_schema" capsule holds an FFI_ArrowSchema (the Arrow PyCapsule
    // interface); it is only read, while the capsule is alive.
    let ffi = unsafe { data.as_ref() };
    Schema::try_from(ffi).map_err(|e| PyTypeError::new_err(format!("not an Arrow schema: {e}")))
}
