//! `CREATE EXTERNAL TABLE … STORED AS <connector>`: the `TableProviderFactory` that turns DDL
//! into a [`TopicTable`], creating missing topics and inferring JSON columns from a sample
//! when none are declared.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::CreateExternalTable;

use super::definition::TableDefinition;
use super::infer::infer_missing_columns;
use super::{MetadataColumn, TopicTable};
use crate::connector::{connector_named, connectors};

/// Creates topic tables from `CREATE EXTERNAL TABLE … STORED AS KAFKA LOCATION 'kafka://…'`,
/// `… STORED AS NATS LOCATION 'nats://…/STREAM'` and every other registered connector.
#[derive(Debug, Default)]
pub struct TopicTableFactory;

#[async_trait]
impl TableProviderFactory for TopicTableFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> DFResult<Arc<dyn TableProvider>> {
        let names = || {
            connectors()
                .iter()
                .map(|c| format!("STORED AS {}", c.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let connector = connector_named(&cmd.file_type).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "STORED AS {} is not a topic table type; use one of: {}",
                cmd.file_type,
                names()
            ))
        })?;
        if !cmd.table_partition_cols.is_empty() {
            return Err(DataFusionError::Plan(
                "PARTITIONED BY does not apply to topic tables: partitions come from the topic"
                    .into(),
            ));
        }
        let location = match cmd.locations.as_slice() {
            [one] => one,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "a topic table needs exactly one LOCATION ({}://…), got {}",
                    connector.schemes().first().copied().unwrap_or_default(),
                    other.len()
                )));
            }
        };
        let metadata = connector.metadata_columns();
        // The column list may name metadata columns (so `WITH ORDER (_timestamp)` can refer to
        // them); their types come from the table, so they are not value columns.
        let value_fields: Vec<_> = cmd
            .schema
            .fields()
            .iter()
            .filter(|f| !metadata.iter().any(|m| m.name() == f.name()))
            .cloned()
            .collect();
        let declared: SchemaRef = Arc::new(Schema::new(value_fields));
        let mut definition =
            TableDefinition::parse_with(connector, location, declared, &cmd.options)?;
        // A declared `_key` type other than bytes says how keys decode (a STRUCT: json or csv
        // key fields; VARCHAR: text).
        definition.scan.declared_key = cmd
            .schema
            .fields()
            .iter()
            .find(|f| f.name() == MetadataColumn::Key.name())
            .map(|f| f.data_type().clone())
            .filter(|t| *t != DataType::Binary);
        definition.connection.create_if_missing().await?;
        // Columns are inferred from the (first) topic's messages.
        let log = match definition.connection.source()? {
            crate::source::TableSource::Log(set) => set.members().await?.into_iter().next(),
            crate::source::TableSource::Queue(_) => Some(definition.connection.log()?),
        };
        // Without a topic, the table's check below says why.
        if let Some(log) = log {
            infer_missing_columns(
                log.as_ref(),
                &mut definition.scan,
                &mut definition.value_schema,
            )
            .await?;
        }
        let table = TopicTable::from_definition(definition)
            .await?
            .with_order(cmd.order_exprs.clone());
        Ok(Arc::new(table))
    }
}
