//! Value formats: decoding message bytes into Arrow columns, batch by batch.

mod json;
mod raw;

use std::fmt;

use arrow::array::{ArrayRef, BinaryArray, Int64Array};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

use crate::error::{Result, TopicsError};

/// How message values become columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// One `value` column with the bytes as they are.
    Raw,
    /// One `value` column holding the bytes as UTF-8 text (invalid UTF-8 is a decode error).
    String,
    /// One JSON object per message, decoded into the declared columns (missing fields are null).
    Json,
}

impl ValueFormat {
    /// Parses a format name as used in `value.format`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "raw" | "bytes" => Some(Self::Raw),
            "string" | "text" => Some(Self::String),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The format name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::String => "string",
            Self::Json => "json",
        }
    }

    /// Checks that a declared value schema fits this format.
    pub fn check_schema(&self, declared: &Schema) -> Result<()> {
        let declares_only_value = |fits: fn(&DataType) -> bool| match declared.fields().as_ref() {
            [] => true,
            [one] => one.name() == "value" && fits(one.data_type()),
            _ => false,
        };
        match self {
            Self::Raw if !declares_only_value(|t| matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView)) => {
                Err(TopicsError::InvalidSchema(
                    "value.format 'raw' has a single column `value BYTEA`; declare only that, remove the column list, or use value.format 'json'".into(),
                ))
            }
            Self::String if !declares_only_value(|t| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)) => {
                Err(TopicsError::InvalidSchema(
                    "value.format 'string' has a single column `value VARCHAR`; declare only that, remove the column list, or use value.format 'json'".into(),
                ))
            }
            Self::Json if declared.fields().is_empty() => Err(TopicsError::InvalidSchema(
                "value.format 'json' needs the value columns: declare them, or let CREATE EXTERNAL TABLE infer them from a sample".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The value columns of a table with this format and declared schema.
    pub fn value_fields(&self, declared: &Schema) -> Fields {
        match self {
            Self::Raw => Fields::from(vec![Field::new("value", DataType::Binary, true)]),
            Self::String => Fields::from(vec![Field::new("value", DataType::Utf8, true)]),
            Self::Json => declared.fields().clone(),
        }
    }

    /// A decoder producing the columns of `projected` (a subset of the value fields) from
    /// batches of about `batch_rows` messages.
    pub fn decoder(
        &self,
        projected: SchemaRef,
        batch_rows: usize,
    ) -> Result<Box<dyn ValueDecoder>> {
        Ok(match self {
            Self::Raw => Box::new(raw::RawDecoder),
            Self::String => Box::new(raw::StringDecoder),
            Self::Json => Box::new(json::JsonDecoder::try_new(projected, batch_rows)?),
        })
    }
}

impl fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the values being decoded come from, so errors can name the message.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// Topic or stream.
    pub topic: &'a str,
    /// Partition id.
    pub partition: i32,
    /// Offsets of the messages, aligned with the values.
    pub offsets: &'a Int64Array,
}

impl DecodeContext<'_> {
    /// A decode error for the value at `row`.
    pub fn error(&self, row: usize, format: ValueFormat, reason: impl ToString) -> TopicsError {
        TopicsError::Decode {
            what: "value",
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offsets.value(row),
            format: format.name().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Turns a batch of message values into value columns (one row per message).
pub trait ValueDecoder: Send {
    /// Decodes `values` (null = tombstone) into the projected columns, in projection order.
    fn decode(&mut self, values: &BinaryArray, ctx: &DecodeContext<'_>) -> Result<Vec<ArrayRef>>;
}

pub(crate) fn single_column(a: ArrayRef) -> Vec<ArrayRef> {
    vec![a]
}

/// Infers JSON columns from sample values (each one JSON object); fails when none parses.
pub fn infer_json_schema(topic: &str, values: &[Vec<u8>]) -> Result<Schema> {
    let parsed: Vec<serde_json::Value> = values
        .iter()
        .filter_map(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .filter(serde_json::Value::is_object)
        .collect();
    if parsed.is_empty() {
        return Err(TopicsError::InvalidSchema(format!(
            "cannot infer JSON columns of '{topic}': none of the {} sampled messages is a JSON object; declare the columns",
            values.len()
        )));
    }
    Ok(arrow::json::reader::infer_json_schema_from_iterator(
        parsed.into_iter().map(Ok),
    )?)
}
