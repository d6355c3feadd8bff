//! The `raw` (bytes) and `string` (UTF-8 text) value formats.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, StringArray};

use super::{DecodeContext, ValueDecoder, ValueFormat, single_column};
use crate::error::Result;

/// Passes value bytes through as a `Binary` column.
pub(super) struct RawDecoder;

impl ValueDecoder for RawDecoder {
    fn decode(&mut self, values: &BinaryArray, _ctx: &DecodeContext<'_>) -> Result<Vec<ArrayRef>> {
        Ok(single_column(Arc::new(values.clone())))
    }
}

/// Reinterprets value bytes as a `Utf8` column after validating them (no copy).
pub(super) struct StringDecoder;

impl ValueDecoder for StringDecoder {
    fn decode(&mut self, values: &BinaryArray, ctx: &DecodeContext<'_>) -> Result<Vec<ArrayRef>> {
        match StringArray::try_from_binary(values.clone()) {
            Ok(strings) => Ok(single_column(Arc::new(strings))),
            Err(_) => {
                let row = (0..values.len())
                    .find(|&i| values.is_valid(i) && std::str::from_utf8(values.value(i)).is_err())
                    .unwrap_or(0);
                let reason = std::str::from_utf8(values.value(row))
                    .err()
                    .map_or_else(|| "invalid UTF-8".to_string(), |e| e.to_string());
                Err(ctx.error(row, ValueFormat::String, format!("invalid UTF-8: {reason}")))
            }
        }
    }
}
