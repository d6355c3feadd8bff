//! Rows to messages: the value columns encoded in the table's value format, and the metadata
//! columns a writer understands (`_key`, `_partition`, `_timestamp`, `_headers`, `_subject`).

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryArray, Int32Array, MapArray, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Schema};

use crate::error::{Result, TopicsError};
use crate::format::{Encoder, TableFormats};
use crate::table::MetadataColumn;

/// One message to be written: value and key bytes, and where and how to write it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The encoded value; `None` writes a message without value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// The message key.
    pub key: Option<Vec<u8>>,
    /// The target partition; `None` lets the writer choose (by key, as its partitioner does).
    pub partition: Option<i32>,
    /// The message timestamp in milliseconds (create time).
    pub timestamp: Option<i64>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The subject to publish on, for connectors whose tables declare `_subject`.
    pub subject: Option<String>,
}

/// Turns record batches of a topic table's schema into [`OutgoingMessage`]s.
#[derive(Clone)]
pub struct RowEncoder {
    value: Arc<dyn Encoder>,
    key: Arc<dyn Encoder>,
    value_names: Vec<String>,
    key_index: Option<usize>,
    partition: Option<usize>,
    timestamp: Option<usize>,
    headers: Option<usize>,
    subject: Option<usize>,
}

impl std::fmt::Debug for RowEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowEncoder")
            .field("values", &self.value_names)
            .finish()
    }
}

impl RowEncoder {
    /// An encoder for batches with `schema`: the first `value_count` fields are value columns
    /// encoded in the table's value format; `_key` is encoded in its key format; the other
    /// metadata columns are found by name. With the Confluent wire format this registers the
    /// schemas it writes.
    pub async fn try_new(
        schema: &Schema,
        value_count: usize,
        formats: &TableFormats,
    ) -> Result<Self> {
        let find = |column: MetadataColumn| schema.index_of(column.name()).ok();
        Ok(Self {
            value: Arc::from(formats.value.encoder().await?),
            key: Arc::from(formats.key.encoder().await?),
            value_names: schema
                .fields()
                .iter()
                .take(value_count)
                .map(|f| f.name().clone())
                .collect(),
            key_index: find(MetadataColumn::Key),
            partition: find(MetadataColumn::Partition),
            timestamp: find(MetadataColumn::Timestamp),
            headers: find(MetadataColumn::Headers),
            subject: find(MetadataColumn::Subject),
        })
    }

    /// Whether rows carry a `_key` column (what a tombstone needs).
    pub fn has_key(&self) -> bool {
        self.key_index.is_some()
    }

    /// Tombstones for the rows of `batch`: each row's key, partition, timestamp and headers,
    /// and no value.
    pub fn encode_tombstones(&self, batch: &RecordBatch) -> Result<Vec<OutgoingMessage>> {
        let mut out = self.encode(batch)?;
        for m in &mut out {
            m.value = None;
        }
        Ok(out)
    }

    /// Encodes every row of `batch`.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<OutgoingMessage>> {
        let rows = batch.num_rows();
        let mut out: Vec<OutgoingMessage> = vec![OutgoingMessage::default(); rows];
        let value_indices = self
            .value_names
            .iter()
            .map(|name| batch.schema().index_of(name))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let values = self.value.encode(&batch.project(&value_indices)?)?;
        for (m, value) in out.iter_mut().zip(values) {
            m.value = value;
        }
        if let Some(i) = self.key_index {
            let column = batch.column(i);
            let keys = match column.data_type() {
                DataType::Struct(_) => {
                    let structs = column.as_struct();
                    let fields = Arc::new(Schema::new(structs.fields().clone()));
                    let encoded = self
                        .key
                        .encode(&RecordBatch::try_new(fields, structs.columns().to_vec())?)?;
                    encoded
                        .into_iter()
                        .enumerate()
                        .map(|(row, k)| k.filter(|_| structs.is_valid(row)))
                        .collect()
                }
                _ => {
                    let field = batch.schema().field(i).clone();
                    let one = RecordBatch::try_new(
                        Arc::new(Schema::new(vec![field])),
                        vec![Arc::clone(column)],
                    )?;
                    self.key.encode(&one)?
                }
            };
            for (m, key) in out.iter_mut().zip(keys) {
                m.key = key;
            }
        }
        if let Some(i) = self.partition {
            let parts: &Int32Array = typed(batch, i, "_partition")?;
            for (row, m) in out.iter_mut().enumerate() {
                m.partition = parts.is_valid(row).then(|| parts.value(row));
            }
        }
        if let Some(i) = self.timestamp {
            let ts: &TimestampMillisecondArray = typed(batch, i, "_timestamp")?;
            for (row, m) in out.iter_mut().enumerate() {
                m.timestamp = ts.is_valid(row).then(|| ts.value(row));
            }
        }
        if let Some(i) = self.headers {
            let maps: &MapArray = typed(batch, i, "_headers")?;
            for (row, m) in out.iter_mut().enumerate() {
                if maps.is_valid(row) {
                    m.headers = headers_of(maps, row)?;
                }
            }
        }
        if let Some(i) = self.subject {
            let subjects: &StringArray = typed(batch, i, "_subject")?;
            for (row, m) in out.iter_mut().enumerate() {
                m.subject = subjects
                    .is_valid(row)
                    .then(|| subjects.value(row).to_string());
            }
        }
        Ok(out)
    }
}

fn typed<'a, T: 'static>(batch: &'a RecordBatch, i: usize, name: &str) -> Result<&'a T> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| wrong_type(batch, i, name))
}

fn wrong_type(batch: &RecordBatch, i: usize, name: &str) -> TopicsError {
    TopicsError::plan(format!(
        "column '{name}' has type {} where a message is written; cast it to the table's type",
        batch.column(i).data_type()
    ))
}

fn headers_of(maps: &MapArray, row: usize) -> Result<Vec<(String, Vec<u8>)>> {
    let entry = maps.value(row);
    let names = entry
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| TopicsError::plan("_headers keys must be strings"))?;
    let values = entry
        .column(1)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| TopicsError::plan("_headers values must be binary"))?;
    Ok((0..entry.len())
        .map(|i| {
            let value = if values.is_valid(i) {
                values.value(i).to_vec()
            } else {
                Vec::new()
            };
            (names.value(i).to_string(), value)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int64Array};
    use arrow::datatypes::Field;

    use super::*;
    use crate::table::{MetadataColumn as M, TopicSchema};

    #[test]
    fn json_rows_with_metadata() {
        let values = vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Float64, true),
        ];
        let table = TopicSchema::try_new(
            values.clone().into(),
            &[
                M::Topic,
                M::Partition,
                M::Offset,
                M::Timestamp,
                M::Key,
                M::Headers,
            ],
            DataType::Binary,
            Default::default(),
        )
        .unwrap();
        let schema = Arc::clone(table.schema());
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "id" => Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
                "amount" => Arc::new(Float64Array::from(vec![2.5, 3.0])),
                "_key" => Arc::new(BinaryArray::from(vec![Some(&b"k"[..]), None])),
                "_partition" => Arc::new(Int32Array::from(vec![Some(2), None])),
                _ => arrow::array::new_null_array(f.data_type(), 2),
            })
            .collect();
        let nullable = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(nullable, columns).unwrap();
        let formats = TableFormats {
            value: crate::format::Format::json(values.into()),
            ..TableFormats::raw()
        };
        let encoder =
            futures::executor::block_on(RowEncoder::try_new(&batch.schema(), 2, &formats)).unwrap();
        let out = encoder.encode(&batch).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].value.as_deref(),
            Some(&br#"{"id":1,"amount":2.5}"#[..])
        );
        assert_eq!(out[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out[0].partition, Some(2));
        assert_eq!(out[1].value.as_deref(), Some(&br#"{"amount":3.0}"#[..]));
        assert_eq!(out[1].key, None);
        assert_eq!(out[1].partition, None);
        assert!(out[1].headers.is_empty());
    }
}
