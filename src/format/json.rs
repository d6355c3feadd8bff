//! The `json` value format: one JSON object per message, decoded by arrow-json's `Decoder`.
//!
//! Fast path: every message of a batch is pushed into one decoder and flushed once. Each push
//! is checked to have produced exactly one complete value, so syntax errors are attributed to
//! their message. Type errors only surface at flush; then (and only then) the batch is decoded
//! message by message to find the offending offset.

use arrow::array::{Array, ArrayRef, BinaryArray};
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use arrow::json::reader::Decoder;

use super::{DecodeContext, ValueDecoder, ValueFormat};
use crate::error::Result;

/// A tombstone (null value) decodes as an object with every column null.
const NULL_VALUE: &[u8] = b"{}";

/// Decodes JSON values into the projected columns.
pub(super) struct JsonDecoder {
    schema: SchemaRef,
    batch_rows: usize,
    decoder: Decoder,
}

impl JsonDecoder {
    /// A decoder for batches of up to `batch_rows` messages.
    pub(super) fn try_new(schema: SchemaRef, batch_rows: usize) -> Result<Self> {
        let decoder = Self::new_decoder(&schema, batch_rows)?;
        Ok(Self {
            schema,
            batch_rows,
            decoder,
        })
    }

    fn new_decoder(schema: &SchemaRef, batch_rows: usize) -> Result<Decoder> {
        // One more than a batch holds, so a push never stops short at the batch boundary.
        Ok(ReaderBuilder::new(schema.clone())
            .with_batch_size(batch_rows + 1)
            .build_decoder()?)
    }

    fn reset(&mut self) -> Result<()> {
        self.decoder = Self::new_decoder(&self.schema, self.batch_rows)?;
        Ok(())
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
            let bytes = value_bytes(values, i);
            match single.decode(bytes).and_then(|_| single.flush()) {
                Ok(_) => None,
                Err(e) => Some((i, e.to_string())),
            }
        })
    }
}

fn value_bytes(values: &BinaryArray, i: usize) -> &[u8] {
    if values.is_null(i) {
        NULL_VALUE
    } else {
        values.value(i)
    }
}

impl ValueDecoder for JsonDecoder {
    fn decode(&mut self, values: &BinaryArray, ctx: &DecodeContext<'_>) -> Result<Vec<ArrayRef>> {
        if values.len() > self.batch_rows {
            self.batch_rows = values.len();
            self.reset()?;
        }
        for i in 0..values.len() {
            if let Err(reason) = self.push(value_bytes(values, i)) {
                self.reset()?;
                return Err(ctx.error(i, ValueFormat::Json, reason));
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
                Err(ctx.error(row, ValueFormat::Json, reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn decode(values: Vec<Option<&[u8]>>) -> Result<Vec<ArrayRef>> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let mut d = JsonDecoder::try_new(schema, 16)?;
        let offsets = Int64Array::from_iter_values(100..100 + values.len() as i64);
        let values = BinaryArray::from(values);
        d.decode(
            &values,
            &DecodeContext {
                topic: "t",
                partition: 2,
                offsets: &offsets,
            },
        )
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
    fn errors_name_the_offset() {
        for (bad, why) in [
            (&br#"{"id":"#[..], "truncated"),
            (br#"{"id":1}{"id":2}"#, "more than one"),
            (b"   ", "empty"),
            (br#"{"id":"x"}"#, ""),
            (br#"{"id":1,]"#, ""),
        ] {
            let err = decode(vec![Some(br#"{"id":1}"#), Some(bad), Some(br#"{"id":2}"#)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("offset 101") && err.contains("partition 2") && err.contains("t"),
                "{err}"
            );
            assert!(err.contains(why), "{err}");
        }
    }
}
