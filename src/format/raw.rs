//! The `raw` (bytes) and `string` (UTF-8 text) formats: one column holding the whole message.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, RecordBatch, StringArray};
use arrow::datatypes::DataType;

use super::{DecodeError, Decoder, Encoder};
use crate::error::{Result, TopicsError};

/// Passes the bytes through as a `Binary` column.
pub(super) struct RawDecoder;

impl Decoder for RawDecoder {
    fn decode(&mut self, bytes: &BinaryArray) -> std::result::Result<Vec<ArrayRef>, DecodeError> {
        Ok(vec![Arc::new(bytes.clone())])
    }
}

/// Reinterprets the bytes as a `Utf8` column after validating them (no copy).
pub(super) struct StringDecoder;

impl Decoder for StringDecoder {
    fn decode(&mut self, bytes: &BinaryArray) -> std::result::Result<Vec<ArrayRef>, DecodeError> {
        match StringArray::try_from_binary(bytes.clone()) {
            Ok(strings) => Ok(vec![Arc::new(strings)]),
            Err(_) => {
                let (row, reason) = (0..bytes.len())
                    .filter(|&i| bytes.is_valid(i))
                    .find_map(|i| std::str::from_utf8(bytes.value(i)).err().map(|e| (i, e)))
                    .map_or((0, "invalid UTF-8".to_string()), |(i, e)| {
                        (i, format!("invalid UTF-8: {e}"))
                    });
                Err(DecodeError::bad(row, reason))
            }
        }
    }
}

/// Writes a binary or text column's bytes as they are.
pub(super) struct SingleColumnEncoder;

impl Encoder for SingleColumnEncoder {
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let rows = batch.num_rows();
        let Some(column) = batch.columns().first() else {
            return Ok(vec![None; rows]);
        };
        let bytes = |i: usize| -> Option<&[u8]> {
            if column.is_null(i) {
                return None;
            }
            Some(match column.data_type() {
                DataType::Utf8 => column.as_string::<i32>().value(i).as_bytes(),
                DataType::LargeUtf8 => column.as_string::<i64>().value(i).as_bytes(),
                DataType::Utf8View => column.as_string_view().value(i).as_bytes(),
                DataType::Binary => column.as_binary::<i32>().value(i),
                DataType::LargeBinary => column.as_binary::<i64>().value(i),
                DataType::BinaryView => column.as_binary_view().value(i),
                _ => return None,
            })
        };
        if !matches!(
            column.data_type(),
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
        ) {
            return Err(TopicsError::plan(format!(
                "column '{}' of type {} cannot be written as raw bytes or text",
                batch.schema().field(0).name(),
                column.data_type()
            )));
        }
        Ok((0..rows).map(|i| bytes(i).map(<[u8]>::to_vec)).collect())
    }
}
