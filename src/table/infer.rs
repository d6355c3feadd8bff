//! JSON columns inferred from a sample of the topic, for `CREATE EXTERNAL TABLE` without a
//! column list.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use futures::StreamExt;

use crate::error::Result;
use crate::format::{FormatKind, Side};
use crate::options::ScanOptions;
use crate::source::{ColumnNeeds, LogSource, OffsetRange, ReadRequest};

/// Infers the columns of JSON values and keys that were not declared, from a sample of `log`.
pub(crate) async fn infer_missing_columns(
    log: &dyn LogSource,
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
            Arc::new(infer_json_schema(log, scan.json_infer_sample, Side::Value).await?);
    }
    if scan.key.kind == Some(FormatKind::Json) && scan.declared_key.is_none() {
        let fields = infer_json_schema(log, scan.json_infer_sample, Side::Key)
            .await?
            .fields()
            .clone();
        scan.declared_key = Some(DataType::Struct(fields));
    }
    Ok(())
}

/// Infers JSON columns of the values (or keys) from the newest `sample` messages of the topic
/// (spread evenly over its partitions). Tombstones, messages without key and empty partitions
/// are skipped.
pub async fn infer_json_schema(log: &dyn LogSource, sample: usize, side: Side) -> Result<Schema> {
    let partitions = log.partitions().await?;
    let marks = log.watermarks(&partitions).await?;
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
        let mut stream = log.read(*p, range, request);
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
    crate::format::infer_json_schema(log.topic(), side, &samples)
}
