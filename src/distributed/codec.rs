//! The scan on the wire: a [`TopicScanExec`] travels to a worker as its table's declaration
//! (location, options, columns) and the ranges it reads — plain data — and the worker opens
//! the table itself. Secret options never travel: the worker takes each from its own
//! environment (`DFT_SECRET_<KEY>`), and fails naming the option and the variable when one is
//! missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::scan::{PartitionScan, TopicScanExec};
use crate::secret::is_secret_key;
use crate::source::OffsetRange;
use crate::table::{TableDefinition, TopicTable};

/// Encodes and decodes topic scans for datafusion-distributed: register it on the coordinator
/// and on every worker (`with_workers` and `serve_worker` do).
#[derive(Debug, Default, Clone, Copy)]
pub struct TopicScanCodec;

/// The version of the encoded form; a worker refuses another.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct EncodedScan {
    version: u32,
    table: EncodedTable,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
    partitions: Vec<EncodedPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct EncodedTable {
    location: String,
    /// Every option but the secret ones, sorted.
    options: Vec<(String, String)>,
    /// The secret options' keys: the worker takes their values from its environment.
    secret_keys: Vec<String>,
    /// The value columns (datafusion-proto's schema message).
    value_schema: Vec<u8>,
    /// The declared `_key` type, as the one field of a schema message.
    declared_key: Option<Vec<u8>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EncodedPartition {
    topic: String,
    partition: i32,
    ranges: Vec<OffsetRange>,
    skipped: u64,
}

/// The environment variable a worker reads a secret option from: `DFT_SECRET_` and the key
/// in upper case with every other character than a letter or digit as `_`
/// (`kafka.sasl.password` → `DFT_SECRET_KAFKA_SASL_PASSWORD`).
pub fn secret_env_var(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("DFT_SECRET_{name}")
}

fn error(detail: impl Into<String>) -> DataFusionError {
    DataFusionError::Plan(detail.into())
}

fn schema_bytes(schema: &Schema) -> DFResult<Vec<u8>> {
    let proto: datafusion_proto::protobuf::Schema = schema.try_into()?;
    Ok(proto.encode_to_vec())
}

fn schema_from(bytes: &[u8]) -> DFResult<Schema> {
    let proto = datafusion_proto::protobuf::Schema::decode(bytes)
        .map_err(|e| error(format!("a worker received a malformed schema: {e}")))?;
    Ok((&proto).try_into()?)
}

impl EncodedScan {
    fn of(scan: &TopicScanExec) -> DFResult<Self> {
        let Some(origin) = scan.origin() else {
            return Err(error(format!(
                "the scan of {} cannot run on a worker: only bounded scans of tables declared by \
                 location and options, without a watermark, can (live scans, work queues, \
                 tables with event time and tables built from a source in code run in one \
                 process)",
                scan.topic()
            )));
        };
        let table = &origin.table;
        let mut options: Vec<(String, String)> = Vec::new();
        let mut secret_keys: Vec<String> = Vec::new();
        for (k, v) in &table.options {
            if is_secret_key(k) {
                secret_keys.push(k.clone());
            } else {
                options.push((k.clone(), v.clone()));
            }
        }
        options.sort();
        secret_keys.sort();
        let declared_key = table
            .declared_key
            .as_ref()
            .map(|t| schema_bytes(&Schema::new(vec![Field::new("_key", t.clone(), true)])))
            .transpose()?;
        Ok(Self {
            version: VERSION,
            table: EncodedTable {
                location: table.location.clone(),
                options,
                secret_keys,
                value_schema: schema_bytes(&table.value_schema)?,
                declared_key,
            },
            projection: origin.projection.clone(),
            limit: scan.limit(),
            partitions: scan
                .scans()
                .iter()
                .map(|p| EncodedPartition {
                    topic: p.topic.to_string(),
                    partition: p.partition,
                    ranges: p.ranges.clone(),
                    skipped: p.skipped,
                })
                .collect(),
        })
    }
}

impl EncodedTable {
    /// The options with each secret taken from this process's environment.
    fn options_here(&self) -> DFResult<HashMap<String, String>> {
        let mut options: HashMap<String, String> = self.options.iter().cloned().collect();
        for key in &self.secret_keys {
            let var = secret_env_var(key);
            let value = std::env::var(&var).map_err(|_| {
                error(format!(
                    "table {} needs option '{key}', a secret the coordinator does not send; set \
                     {var} in this worker's environment",
                    self.location
                ))
            })?;
            options.insert(key.clone(), value);
        }
        Ok(options)
    }

    async fn open(&self) -> DFResult<TopicTable> {
        let schema = Arc::new(schema_from(&self.value_schema)?);
        let mut definition = TableDefinition::parse(&self.location, schema, &self.options_here()?)?;
        definition.scan.declared_key = match &self.declared_key {
            Some(bytes) => {
                let schema = schema_from(bytes)?;
                Some(schema.field(0).data_type().clone())
            }
            None => None::<DataType>,
        };
        Ok(TopicTable::from_definition(definition).await?)
    }
}

/// Tables this worker opened, by their encoded declaration: each micro-batch of a continuous
/// query ships the same table, and opening one resolves its formats and checks the topic.
fn opened() -> &'static Mutex<HashMap<EncodedTable, Arc<TopicTable>>> {
    static OPENED: OnceLock<Mutex<HashMap<EncodedTable, Arc<TopicTable>>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

fn table_for(encoded: &EncodedTable) -> DFResult<Arc<TopicTable>> {
    if let Some(t) = opened()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(encoded)
    {
        return Ok(Arc::clone(t));
    }
    // Decoding is synchronous and opening a table is not: the worker's runtime has several
    // threads, so this one may block on it.
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| error("a topic scan is decoded outside a Tokio runtime"))?;
    let table = Arc::new(tokio::task::block_in_place(|| {
        runtime.block_on(encoded.open())
    })?);
    opened()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(encoded.clone(), Arc::clone(&table));
    Ok(table)
}

impl PhysicalExtensionCodec for TopicScanCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if !inputs.is_empty() {
            return Err(error("a topic scan has no inputs"));
        }
        let encoded: EncodedScan = serde_json::from_slice(buf)
            .map_err(|e| error(format!("a worker received a malformed topic scan: {e}")))?;
        if encoded.version != VERSION {
            return Err(error(format!(
                "a worker of version {} received a topic scan encoded as version {}; run the \
                 same datafusion-topics version on the coordinator and the workers",
                VERSION, encoded.version
            )));
        }
        let table = table_for(&encoded.table)?;
        let partitions = encoded
            .partitions
            .into_iter()
            .map(|p| PartitionScan {
                topic: p.topic.into(),
                partition: p.partition,
                ranges: p.ranges,
                skipped: p.skipped,
            })
            .collect();
        Ok(Arc::new(table.exec_over(
            encoded.projection.as_ref(),
            partitions,
            encoded.limit,
        )?))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DFResult<()> {
        let Some(scan) = node.downcast_ref::<TopicScanExec>() else {
            return Err(error(format!(
                "the topic codec cannot encode {}",
                node.name()
            )));
        };
        let encoded = EncodedScan::of(scan)?;
        serde_json::to_writer(buf, &encoded)
            .map_err(|e| error(format!("encoding the scan of {}: {e}", scan.topic())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_variables_are_named_after_the_option() {
        assert_eq!(
            secret_env_var("kafka.sasl.password"),
            "DFT_SECRET_KAFKA_SASL_PASSWORD"
        );
        assert_eq!(
            secret_env_var("schema-registry.password"),
            "DFT_SECRET_SCHEMA_REGISTRY_PASSWORD"
        );
    }
}
