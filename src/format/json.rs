//! The `json` value format: one JSON object per message, decoded by arrow-json's `Decoder`.
//!
//! Fast path: every message of a batch is pushed into one decoder and flushed once. Each push
//! is checked to have produced exactly one complete value, so syntax errors are attributed to
//! their message. Type errors only surface at flush; then (and only then) the batch is decoded
//! message by message to find the offending offset.

use arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch};
use arrow::datatypes::{Fields, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use arrow::json::reader::Decoder as ArrowJsonDecoder;

use super::{DecodeError, Decoder, Encoder, Framing, confluent};
use crate::error::Result;

/// A tombstone (null value) decodes as an object with every column null.
const NULL_VALUE: &[u8] = b"{}";

/// Decodes JSON values into the projected columns.
pub(super) struct JsonDecoder {
    schema: SchemaRef,
    framing: Framing,
    batch_rows: usize,
    decoder: ArrowJsonDecoder,
}

impl JsonDecoder {
    /// A decoder for batches of up to `batch_rows` messages.
    pub(super) fn try_new(schema: SchemaRef, framing: Framing, batch_rows: usize) -> Result<Self> {
        let decoder = Self::new_decoder(&schema, batch_rows)?;
        Ok(Self {
            schema,
            framing,
            batch_rows,
            decoder,
        })
    }

    fn new_decoder(schema: &SchemaRef, batch_rows: usize) -> Result<ArrowJsonDecoder> {
        // One more than a batch holds, so a push never stops short at the batch boundary.
        Ok(ReaderBuilder::new(schema.clone())
            .with_batch_size(batch_rows + 1)
            .build_decoder()?)
    }

    fn reset(&mut self) -> Result<()> {
        self.decoder = Self::new_decoder(&self.schema, self.batch_rows)?;
        Ok(())
    }

    /// The JSON text of message `i`: without the Confluent header when framed.
    fn payload<'a>(
        &self,
        values: &'a BinaryArray,
        i: usize,
    ) -> std::result::Result<&'a [u8], String> {
        if values.is_null(i) {
            return Ok(NULL_VALUE);
        }
        match self.framing {
            Framing::None => Ok(values.value(i)),
            Framing::Confluent => confluent::split(values.value(i)).map(|(_, p)| p),
        }
    }

    /// Pushes one message; fails unless it holds exactly one complete JSON value.
    fn push(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        let before = self.decoder.len();
        let consumed = self.decoder.decode(bytes).map_err(|e| e.to_string())?;
        if self.decoder.has_partial_record() {
            return Err("truncated JSON value".into());
        }
        if consumed != bytes.len() || self.decoder.len() > before + 1 {
            return Err("more than one JSON value in one message".into());
        }
        if self.decoder.len() == before {
            return Err("empty message: no JSON value".into());
        }
        Ok(())
    }

    /// Finds the first message that fails on its own and explains why.
    fn locate_failure(&self, values: &BinaryArray) -> Option<(usize, String)> {
        (0..values.len()).find_map(|i| {
            let mut single = Self::new_decoder(&self.schema, 1).ok()?;
            let bytes = self.payload(values, i).ok()?;
            match single.decode(bytes).and_then(|_| single.flush()) {
                Ok(_) => None,
                Err(e) => Some((i, e.to_string())),
            }
        })
    }
}

impl Decoder for JsonDecoder {
    fn decode(&mut self, values: &BinaryArray) -> std::result::Result<Vec<ArrayRef>, DecodeError> {
        if values.len() > self.batch_rows {
            self.batch_rows = values.len();
            self.reset()?;
        }
        for i in 0..values.len() {
            let pushed = self.payload(values, i).and_then(|bytes| self.push(bytes));
            if let Err(reason) = pushed {
                self.reset()?;
                return Err(DecodeError::bad(i, reason));
            }
        }
        match self.decoder.flush() {
            Ok(Some(batch)) => Ok(batch.columns().to_vec()),
            Ok(None) => Ok(self
                .schema
                .fields()
                .iter()
                .map(|f| arrow::array::new_empty_array(f.data_type()))
                .collect()),
            Err(e) => {
                self.reset()?;
                let (row, reason) = self.locate_failure(values).unwrap_or((0, e.to_string()));
                Err(DecodeError::bad(row, reason))
            }
        }
    }
}

/// Writes each row as one JSON object.
pub(super) struct JsonEncoder {
    schema: SchemaRef,
}

impl JsonEncoder {
    /// An encoder for rows with the columns `fields`. Confluent-framed JSON is read, not
    /// written: its header names a JSON Schema in the registry, which a table does not have.
    pub(super) fn new(fields: Fields, framing: Framing) -> Result<Self> {
        if framing == Framing::Confluent {
            return Err(crate::error::TopicsError::plan(
                "INSERT cannot write JSON in the Confluent wire format (its header names a registered JSON Schema, which the table does not have); write to a table with value.framing 'none'",
            ));
        }
        Ok(Self {
            schema: std::sync::Arc::new(Schema::new(fields)),
        })
    }
}

impl Encoder for JsonEncoder {
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let rows = batch.num_rows();
        if self.schema.fields().is_empty() {
            return Ok(vec![Some(b"{}".to_vec()); rows]);
        }
        let projected = super::columns_by_name(batch, &self.schema)?;
        let mut buf = Vec::with_capacity(rows * 64);
        {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut buf);
            writer.write(&projected)?;
            writer.finish()?;
        }
        Ok(buf
            .split(|b| *b == b'\n')
            .take(rows)
            .map(|line| Some(line.to_vec()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn decode(values: Vec<Option<&[u8]>>) -> std::result::Result<Vec<ArrayRef>, String> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let mut d = JsonDecoder::try_new(schema, Framing::None, 16).unwrap();
        let values = BinaryArray::from(values);
        d.decode(&values).map_err(|e| match e {
            DecodeError::Bad { row, reason } => format!("row {row}: {reason}"),
            DecodeError::Failed(e) => e.to_string(),
        })
    }

    #[test]
    fn decodes_objects_and_tombstones() {
        let cols = decode(vec![
            Some(br#"{"id":1,"name":"a","extra":true}"#),
            None,
            Some(b" {\"id\":3} \n"),
        ])
        .unwrap();
        let ids = cols[0].as_any().downcast_ref::<Int64Array>().unwrap();
        let names = cols[1].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)]);
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            vec![Some("a"), None, None]
        );
    }

    #[test]
    fn errors_name_the_row() {
        for (bad, why) in [
            (&br#"{"id":"#[..], "truncated"),
            (br#"{"id":1}{"id":2}"#, "more than one"),
            (b"   ", "empty"),
            (br#"{"id":"x"}"#, ""),
            (br#"{"id":1,]"#, ""),
        ] {
            let err =
                decode(vec![Some(br#"{"id":1}"#), Some(bad), Some(br#"{"id":2}"#)]).unwrap_err();
            assert!(err.starts_with("row 1:"), "{err}");
            assert!(err.contains(why), "{err}");
        }
    }
}
