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
use crate::format::{FormatKind, Side};
use crate::options::{KafkaTableOptions, NatsTableOptions, ScanOptions};
use crate::provider::StreamingTableProvider;
use crate::schema::{KAFKA_METADATA, MetadataColumn, NATS_METADATA};
use crate::source::kafka::{KafkaSource, create_topic_if_missing};
use crate::source::nats::{NatsSource, create_stream_if_missing};
use crate::source::{ColumnNeeds, OffsetRange, ReadRequest, Source};

/// `STORED AS KAFKA`.
pub const KAFKA: &str = "KAFKA";
/// `STORED AS NATS`.
pub const NATS: &str = "NATS";

/// Creates topic tables from `CREATE EXTERNAL TABLE … STORED AS KAFKA LOCATION 'kafka://…'`
/// and `… STORED AS NATS LOCATION 'nats://…/STREAM'`.
#[derive(Debug, Default)]
pub struct TopicTableFactory;

#[async_trait]
impl TableProviderFactory for TopicTableFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> DFResult<Arc<dyn TableProvider>> {
        let kind = cmd.file_type.to_ascii_uppercase();
        let metadata = match kind.as_str() {
            KAFKA => KAFKA_METADATA,
            NATS => NATS_METADATA,
            _ => {
                return Err(DataFusionError::Plan(format!(
                    "STORED AS {} is not a topic table type; use STORED AS KAFKA or STORED AS NATS",
                    cmd.file_type
                )));
            }
        };
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
                    "a topic table needs exactly one LOCATION ('kafka://host:port/topic' or 'nats://host:port/STREAM'), got {}",
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
            .filter(|f| !metadata.iter().any(|m| m.name() == f.name()))
            .cloned()
            .collect();
        let declared: SchemaRef = Arc::new(Schema::new(value_fields));
        // A declared `_key` type other than bytes says how keys decode (a STRUCT: json or csv
        // key fields; VARCHAR: text).
        let declared_key = cmd
            .schema
            .fields()
            .iter()
            .find(|f| f.name() == MetadataColumn::Key.name())
            .map(|f| f.data_type().clone())
            .filter(|t| *t != arrow::datatypes::DataType::Binary);
        let table = if kind == KAFKA {
            let mut parsed = KafkaTableOptions::parse(location, declared, &cmd.options)?;
            parsed.scan.declared_key = declared_key;
            if let Some(spec) = parsed.create {
                create_topic_if_missing(&parsed.kafka, spec).await?;
            }
            let source = KafkaSource::new(parsed.kafka.clone());
            infer_missing_columns(&source, &mut parsed.scan, &mut parsed.value_schema).await?;
            StreamingTableProvider::try_new_kafka(parsed).await?
        } else {
            let mut parsed = NatsTableOptions::parse(location, declared, &cmd.options)?;
            parsed.scan.declared_key = declared_key;
            if parsed.create {
                create_stream_if_missing(&parsed.nats).await?;
            }
            let source = NatsSource::new(parsed.nats.clone());
            infer_missing_columns(&source, &mut parsed.scan, &mut parsed.value_schema).await?;
            StreamingTableProvider::try_new_nats(parsed).await?
        };
        let table = table.with_order(cmd.order_exprs.clone());
        Ok(Arc::new(table))
    }
}

/// Infers the columns of JSON values and keys that were not declared, from a sample.
async fn infer_missing_columns(
    source: &dyn Source,
    scan: &mut ScanOptions,
    value_schema: &mut SchemaRef,
) -> Result<()> {
    if scan
        .value
        .kind_or_default(value_schema.fields(), Side::Value)
        == FormatKind::Json
        && value_schema.fields().is_empty()
    {
        *value_schema =
            Arc::new(infer_json_schema(source, scan.json_infer_sample, Side::Value).await?);
    }
    if scan.key.kind == Some(FormatKind::Json) && scan.declared_key.is_none() {
        let fields = infer_json_schema(source, scan.json_infer_sample, Side::Key)
            .await?
            .fields()
            .clone();
        scan.declared_key = Some(arrow::datatypes::DataType::Struct(fields));
    }
    Ok(())
}

/// Infers JSON columns of the values (or keys) from the newest `sample` messages of the topic
/// (spread evenly over its partitions). Tombstones, messages without key and empty partitions
/// are skipped.
pub async fn infer_json_schema(source: &dyn Source, sample: usize, side: Side) -> Result<Schema> {
    let partitions = source.partitions().await?;
    let marks = source.watermarks(&partitions).await?;
    let per_partition = sample.div_ceil(partitions.len().max(1)) as i64;
    let request = ReadRequest {
        needs: ColumnNeeds {
            value: side == Side::Value,
            key: side == Side::Key,
            ..Default::default()
        },
        batch_rows: 1024,
        max_messages: None,
        fail_on_data_loss: false,
    };
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for (p, w) in partitions.iter().zip(&marks) {
        let range = OffsetRange::closed((w.high - per_partition).max(w.low), w.high);
        let mut stream = source.read(*p, range, request);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let bytes = match side {
                Side::Value => batch.values,
                Side::Key => batch.keys,
            };
            if let Some(v) = &bytes {
                samples.extend(v.iter().flatten().map(<[u8]>::to_vec));
            }
        }
    }
    crate::format::infer_json_schema(source.topic(), side, &samples)
}
