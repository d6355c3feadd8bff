//! How a table and a scan of it were declared: plain data from which another process (a
//! datafusion-distributed worker) opens the same table and runs the same scan.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};

use crate::secret::{REDACTED, is_secret_key};

/// A table as declared: its location, options and columns.
#[derive(Clone)]
pub struct TableOrigin {
    /// The location as written (`kafka://host:port/topic`, `nats:///STREAM`, …).
    pub location: String,
    /// The options as written, secrets included (they are never shown: see the `Debug`
    /// output, and never shipped to workers, which take them from their own environment).
    pub options: HashMap<String, String>,
    /// The value columns, inferred ones included.
    pub value_schema: SchemaRef,
    /// The declared `_key` type, when the column list gave one.
    pub declared_key: Option<DataType>,
}

impl fmt::Debug for TableOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let options: std::collections::BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_key(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("TableOrigin")
            .field("location", &self.location)
            .field("options", &options)
            .field("value_schema", &self.value_schema)
            .field("declared_key", &self.declared_key)
            .finish()
    }
}

/// A scan another process can run: the table's origin and the columns the scan projects. Only
/// scans of closed offset ranges of a declared table without event time have one.
#[derive(Debug, Clone)]
pub struct ScanOrigin {
    /// The table.
    pub table: Arc<TableOrigin>,
    /// The table columns the scan produces (`None`: all).
    pub projection: Option<Vec<usize>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let origin = TableOrigin {
            location: "kafka:///t".into(),
            options: [
                ("kafka.sasl.password".to_string(), "hunter2".to_string()),
                ("value.format".to_string(), "json".to_string()),
            ]
            .into(),
            value_schema: Arc::new(arrow::datatypes::Schema::empty()),
            declared_key: None,
        };
        let shown = format!("{origin:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("json"),
            "{shown}"
        );
    }
}
