//! `CREATE EXTERNAL TABLE … STORED AS KAFKA`: the `TableProviderFactory` that turns DDL into
//! a [`StreamingTableProvider`], inferring JSON columns from a sample when none are declared.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::CreateExternalTable;
use futures::StreamExt;

use crate::error::Result;
use crate::format::ValueFormat;
use crate::options::KafkaTableOptions;
use crate::provider::StreamingTableProvider;
use crate::schema::KAFKA_METADATA;
use crate::source::kafka::KafkaSource;
use crate::source::{ColumnNeeds, OffsetRange, ReadRequest, Source};

/// The `STORED AS` names this factory serves.
pub const KAFKA: &str = "KAFKA";

/// Creates topic tables from `CREATE EXTERNAL TABLE … STORED AS KAFKA LOCATION 'kafka://…'`.
#[derive(Debug, Default)]
pub struct TopicTableFactory;

#[async_trait]
impl TableProviderFactory for TopicTableFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> DFResult<Arc<dyn TableProvider>> {
        if !cmd.file_type.eq_ignore_ascii_case(KAFKA) {
            return Err(DataFusionError::Plan(format!(
                "STORED AS {} is not a topic table type; use STORED AS KAFKA",
                cmd.file_type
            )));
        }
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
                    "a topic table needs exactly one LOCATION 'kafka://host:port/topic', got {}",
                    other.len()
                )));
            }
        };
        // The column list may name metadata columns (so `WITH ORDER (_timestamp)` can refer to
        // them); their types come from the table, so they are not value columns.
        let value_fields: Vec<_> = cmd
            .schema
            .fields()
            .iter()
            .filter(|f| !KAFKA_METADATA.iter().any(|m| m.name() == f.name()))
            .cloned()
            .collect();
        let declared: SchemaRef = Arc::new(Schema::new(value_fields));
        let mut parsed = KafkaTableOptions::parse(location, declared, &cmd.options)?;
        if parsed.scan.value_format == ValueFormat::Json && parsed.value_schema.fields().is_empty()
        {
            let source = KafkaSource::new(parsed.kafka.clone());
            parsed.value_schema =
                Arc::new(infer_json_schema(&source, parsed.scan.json_infer_sample).await?);
        }
        let table = StreamingTableProvider::try_new_kafka(parsed)
            .await?
            .with_order(cmd.order_exprs.clone());
        Ok(Arc::new(table))
    }
}

/// Infers JSON value columns from the newest `sample` messages of the topic (spread evenly
/// over its partitions). Tombstones and empty partitions are skipped.
pub async fn infer_json_schema(source: &dyn Source, sample: usize) -> Result<Schema> {
    let partitions = source.partitions().await?;
    let marks = source.watermarks(&partitions).await?;
    let per_partition = sample.div_ceil(partitions.len().max(1)) as i64;
    let request = ReadRequest {
        needs: ColumnNeeds {
            value: true,
            ..Default::default()
        },
        batch_rows: 1024,
        max_messages: None,
    };
    let mut values: Vec<Vec<u8>> = Vec::new();
    for (p, w) in partitions.iter().zip(&marks) {
        let range = OffsetRange::closed((w.high - per_partition).max(w.low), w.high);
        let mut stream = source.read(*p, range, request);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if let Some(v) = &batch.values {
                values.extend(v.iter().flatten().map(<[u8]>::to_vec));
            }
        }
    }
    crate::format::infer_json_schema(source.topic(), &values)
}
