//! Rows to messages: the value columns encoded in the table's value format, and the metadata
//! columns a writer understands (`_key`, `_partition`, `_timestamp`, `_headers`, `_subject`).

use arrow::array::{
    Array, AsArray, BinaryArray, Int32Array, MapArray, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Schema};

use crate::error::{Result, TopicsError};
use crate::format::ValueFormat;
use crate::schema::MetadataColumn;

/// One message to be written: value and key bytes, and where and how to write it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The encoded value; `None` writes a message without value (a Kafka tombstone).
    pub value: Option<Vec<u8>>,
    /// The message key (Kafka).
    pub key: Option<Vec<u8>>,
    /// The target partition; `None` lets the writer choose (Kafka's partitioner by key).
    pub partition: Option<i32>,
    /// The message timestamp in milliseconds (Kafka create time).
    pub timestamp: Option<i64>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The subject to publish on (NATS).
    pub subject: Option<String>,
}

/// Turns record batches of a topic table's schema into [`OutgoingMessage`]s.
#[derive(Debug, Clone)]
pub struct RowEncoder {
    format: ValueFormat,
    values: Vec<usize>,
    key: Option<usize>,
    partition: Option<usize>,
    timestamp: Option<usize>,
    headers: Option<usize>,
    subject: Option<usize>,
}

impl RowEncoder {
    /// An encoder for batches with `schema`: the first `value_count` fields are value columns,
    /// the others are metadata columns found by name.
    pub fn new(schema: &Schema, value_count: usize, format: ValueFormat) -> Self {
        let find = |column: MetadataColumn| schema.index_of(column.name()).ok();
        Self {
            format,
            values: (0..value_count).collect(),
            key: find(MetadataColumn::Key),
            partition: find(MetadataColumn::Partition),
            timestamp: find(MetadataColumn::Timestamp),
            headers: find(MetadataColumn::Headers),
            subject: find(MetadataColumn::Subject),
        }
    }

    /// Encodes every row of `batch`.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<OutgoingMessage>> {
        let rows = batch.num_rows();
        let mut out: Vec<OutgoingMessage> = vec![OutgoingMessage::default(); rows];
        for (row, value) in self.values(batch)?.into_iter().enumerate() {
            out[row].value = value;
        }
        if let Some(i) = self.key {
            let keys = binary(batch, i, "_key")?;
            for (row, m) in out.iter_mut().enumerate() {
                m.key = keys.is_valid(row).then(|| keys.value(row).to_vec());
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

    fn values(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let rows = batch.num_rows();
        match self.format {
            ValueFormat::Raw | ValueFormat::String => {
                let Some(&i) = self.values.first() else {
                    return Ok(vec![None; rows]);
                };
                let column = batch.column(i);
                Ok(match column.data_type() {
                    DataType::Utf8 => {
                        let a = column.as_string::<i32>();
                        (0..rows)
                            .map(|r| a.is_valid(r).then(|| a.value(r).as_bytes().to_vec()))
                            .collect()
                    }
                    _ => {
                        let a = binary(batch, i, "value")?;
                        (0..rows)
                            .map(|r| a.is_valid(r).then(|| a.value(r).to_vec()))
                            .collect()
                    }
                })
            }
            ValueFormat::Json => {
                if self.values.is_empty() {
                    return Ok(vec![Some(b"{}".to_vec()); rows]);
                }
                let projected = batch.project(&self.values)?;
                let mut buf = Vec::with_capacity(rows * 64);
                {
                    let mut writer = arrow::json::LineDelimitedWriter::new(&mut buf);
                    writer.write(&projected)?;
                    writer.finish()?;
                }
                let lines: Vec<Option<Vec<u8>>> = buf
                    .split(|b| *b == b'\n')
                    .take(rows)
                    .map(|line| Some(line.to_vec()))
                    .collect();
                debug_assert_eq!(lines.len(), rows);
                Ok(lines)
            }
        }
    }
}

fn typed<'a, T: 'static>(batch: &'a RecordBatch, i: usize, name: &str) -> Result<&'a T> {
    batch
        .column(i)
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| wrong_type(batch, i, name))
}

fn binary<'a>(batch: &'a RecordBatch, i: usize, name: &str) -> Result<&'a BinaryArray> {
    typed(batch, i, name)
}

fn wrong_type(batch: &RecordBatch, i: usize, name: &str) -> TopicsError {
    TopicsError::InvalidSchema(format!(
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
        .ok_or_else(|| TopicsError::InvalidSchema("_headers keys must be strings".into()))?;
    let values = entry
        .column(1)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| TopicsError::InvalidSchema("_headers values must be binary".into()))?;
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
    use crate::schema::{KAFKA_METADATA, TableSchema};

    #[test]
    fn json_rows_with_metadata() {
        let values = vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Float64, true),
        ];
        let table = TableSchema::try_new(values.into(), KAFKA_METADATA).unwrap();
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
        let encoder = RowEncoder::new(&batch.schema(), 2, ValueFormat::Json);
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
