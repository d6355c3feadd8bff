//! Message formats: decoding key and value bytes into Arrow columns batch by batch, and
//! encoding rows back into bytes for `INSERT INTO`.
//!
//! A table has one [`Format`] for its values and one for its keys. Options describe them
//! ([`FormatSpec`]); resolving a spec reads schema files and asks the schema registry, and
//! yields the Arrow fields the format decodes into. Decoders report a bad message by its row
//! so the table's [`ErrorPolicy`] can fail, skip or keep it as a dead letter.

mod avro;
mod batch;
mod confluent;
mod csv;
mod json;
mod policy;
mod protobuf;
mod raw;
pub mod registry;
mod spec;

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

use crate::error::{Result, TopicsError};

pub use batch::{BadMessage, BatchDecoder, TableFormats};
pub use policy::{Decoded, ErrorPolicy, decode_with_policy};
pub use registry::SchemaRegistry;
pub use spec::{CsvOptions, FormatSpec, Framing, SchemaSource, Side};

/// The kinds of message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatKind {
    /// The bytes as they are (one `BYTEA` column).
    Raw,
    /// The bytes as UTF-8 text (one `VARCHAR` column); invalid UTF-8 is a bad message.
    String,
    /// One JSON object per message, decoded into the declared or inferred columns.
    Json,
    /// One CSV record per message, its fields in the order of the declared columns.
    Csv,
    /// One Avro datum per message (plain, or in the Confluent wire format).
    Avro,
    /// One protobuf message per message (plain, or in the Confluent wire format).
    Protobuf,
}

impl FormatKind {
    /// Every kind, in documentation order.
    pub const ALL: [FormatKind; 6] = [
        Self::Raw,
        Self::String,
        Self::Json,
        Self::Csv,
        Self::Avro,
        Self::Protobuf,
    ];

    /// Parses a format name as used in `value.format` and `key.format`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "raw" | "bytes" => Some(Self::Raw),
            "string" | "text" => Some(Self::String),
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            "avro" => Some(Self::Avro),
            "protobuf" | "proto" => Some(Self::Protobuf),
            _ => None,
        }
    }

    /// The format name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::String => "string",
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Avro => "avro",
            Self::Protobuf => "protobuf",
        }
    }

    /// True for the formats whose single column holds the whole message (raw, string).
    pub fn is_single_column(&self) -> bool {
        matches!(self, Self::Raw | Self::String)
    }
}

impl fmt::Display for FormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A resolved format: its kind, the Arrow fields it decodes into, and what its decoders and
/// encoders need (CSV dialect, Avro schemas, protobuf descriptor, schema registry).
#[derive(Clone)]
pub struct Format {
    kind: FormatKind,
    fields: Fields,
    detail: Arc<Detail>,
}

/// Format-specific state shared by the decoders and encoders of one table.
enum Detail {
    Plain,
    Json(Framing),
    Csv(CsvOptions),
    Avro(avro::AvroFormat),
    Protobuf(protobuf::ProtobufFormat),
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Format")
            .field("kind", &self.kind)
            .field("fields", &self.fields.len())
            .finish()
    }
}

impl Format {
    /// The raw format: one `value` column of bytes.
    pub fn raw() -> Self {
        Self::plain(FormatKind::Raw)
    }

    /// The string format: one `value` column of text.
    pub fn string() -> Self {
        Self::plain(FormatKind::String)
    }

    fn plain(kind: FormatKind) -> Self {
        let dt = if kind == FormatKind::Raw {
            DataType::Binary
        } else {
            DataType::Utf8
        };
        Self {
            kind,
            fields: Fields::from(vec![Field::new("value", dt, true)]),
            detail: Arc::new(Detail::Plain),
        }
    }

    /// JSON objects decoded into `fields` (plain JSON, no framing).
    pub fn json(fields: Fields) -> Self {
        Self {
            kind: FormatKind::Json,
            fields,
            detail: Arc::new(Detail::Json(Framing::None)),
        }
    }

    /// The kind of format.
    pub fn kind(&self) -> FormatKind {
        self.kind
    }

    /// The columns this format decodes into (for raw and string: one column named `value`).
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The type of a key column holding this format: the single column's type for raw and
    /// string, otherwise a struct of the fields.
    pub fn key_type(&self) -> DataType {
        if self.kind.is_single_column() {
            self.fields[0].data_type().clone()
        } else {
            DataType::Struct(self.fields.clone())
        }
    }

    /// A decoder producing the columns of `projected` (a subset of [`Self::fields`], matched
    /// by name) from batches of about `batch_rows` messages.
    pub fn decoder(&self, projected: &SchemaRef, batch_rows: usize) -> Result<Box<dyn Decoder>> {
        let all = Arc::new(Schema::new(self.fields.clone()));
        Ok(match (&*self.detail, self.kind) {
            (_, FormatKind::Raw) => Box::new(raw::RawDecoder),
            (_, FormatKind::String) => Box::new(raw::StringDecoder),
            (Detail::Json(framing), _) => Box::new(json::JsonDecoder::try_new(
                Arc::clone(projected),
                *framing,
                batch_rows,
            )?),
            (Detail::Csv(options), _) => Box::new(csv::CsvDecoder::try_new(
                all,
                projected,
                options.clone(),
                batch_rows,
            )?),
            (Detail::Avro(avro), _) => Box::new(avro.decoder(projected, batch_rows)?),
            (Detail::Protobuf(proto), _) => Box::new(proto.decoder(projected)?),
            (Detail::Plain, kind) => {
                return Err(TopicsError::internal(format!(
                    "format {kind} was not resolved"
                )));
            }
        })
    }

    /// An encoder turning rows with (a superset of) this format's columns into message bytes.
    /// With the Confluent wire format this registers the schema under the table's subject.
    pub async fn encoder(&self) -> Result<Box<dyn Encoder>> {
        Ok(match (&*self.detail, self.kind) {
            (_, FormatKind::Raw | FormatKind::String) => Box::new(raw::SingleColumnEncoder),
            (Detail::Json(framing), _) => {
                Box::new(json::JsonEncoder::new(self.fields.clone(), *framing)?)
            }
            (Detail::Csv(options), _) => {
                Box::new(csv::CsvEncoder::new(self.fields.clone(), options.clone()))
            }
            (Detail::Avro(avro), _) => Box::new(avro.encoder(&self.fields).await?),
            (Detail::Protobuf(proto), _) => Box::new(proto.encoder().await?),
            (Detail::Plain, kind) => {
                return Err(TopicsError::internal(format!(
                    "format {kind} was not resolved"
                )));
            }
        })
    }

    /// Looks up, before decoding, the writer schemas of `values` that the Confluent wire
    /// format names by id and that are not cached yet. A no-op for other formats.
    pub async fn prefetch(&self, values: &BinaryArray) -> Result<()> {
        match &*self.detail {
            Detail::Avro(avro) => avro.prefetch(values).await,
            _ => Ok(()),
        }
    }
}

/// A bad message (by its row in the batch) or a failure that is not about one message.
#[derive(Debug)]
pub enum DecodeError {
    /// The message at `row` cannot be decoded.
    Bad {
        /// Row of the message in the batch handed to the decoder.
        row: usize,
        /// The decoder's complaint.
        reason: String,
    },
    /// Decoding failed for a reason that is not the message's fault.
    Failed(TopicsError),
}

impl DecodeError {
    /// The message at `row` cannot be decoded because of `reason`.
    pub fn bad(row: usize, reason: impl ToString) -> Self {
        Self::Bad {
            row,
            reason: reason.to_string(),
        }
    }
}

impl From<TopicsError> for DecodeError {
    fn from(e: TopicsError) -> Self {
        Self::Failed(e)
    }
}

impl From<arrow::error::ArrowError> for DecodeError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::Failed(e.into())
    }
}

/// Turns a batch of message keys or values into columns (one row per message).
pub trait Decoder: Send {
    /// Decodes `bytes` (null = no key / tombstone: a row of nulls) into the projected
    /// columns, in projection order; the first bad message fails the whole call.
    fn decode(&mut self, bytes: &BinaryArray) -> std::result::Result<Vec<ArrayRef>, DecodeError>;
}

/// Turns rows into message bytes (one per row; `None` writes no key / a tombstone).
pub trait Encoder: Send + Sync {
    /// Encodes every row of `batch`, whose columns are the format's fields (by name).
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>>;
}

/// Spreads columns decoded from the non-null entries of `bytes` back over every row, with
/// nulls where `bytes` holds a tombstone (decoders that cannot decode "no bytes" skip them).
pub(crate) fn spread_over_tombstones(
    columns: &[ArrayRef],
    bytes: &BinaryArray,
) -> std::result::Result<Vec<ArrayRef>, DecodeError> {
    use arrow::array::Array;
    if bytes.null_count() == 0 {
        return Ok(columns.to_vec());
    }
    let mut next = 0u32;
    let positions: arrow::array::UInt32Array = (0..bytes.len())
        .map(|i| {
            bytes.is_valid(i).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    columns
        .iter()
        .map(|c| arrow::compute::take(c.as_ref(), &positions, None).map_err(Into::into))
        .collect()
}

/// The columns of `batch` named by `schema`, in its order (encoders find their columns by
/// name: the input may hold metadata columns too).
pub(crate) fn columns_by_name(batch: &RecordBatch, schema: &Schema) -> Result<RecordBatch> {
    let indices = schema
        .fields()
        .iter()
        .map(|f| batch.schema().index_of(f.name()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(batch.project(&indices)?)
}

/// Where a batch of keys or values came from, so decode errors can name the message.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// Topic or stream.
    pub topic: &'a str,
    /// Partition id.
    pub partition: i32,
    /// Offsets of the messages, aligned with the bytes.
    pub offsets: &'a arrow::array::Int64Array,
    /// Which part of the message: "key" or "value".
    pub side: Side,
    /// The format's kind.
    pub kind: FormatKind,
}

impl DecodeContext<'_> {
    /// The error naming the message at `row`.
    pub fn error(&self, row: usize, reason: impl ToString) -> TopicsError {
        TopicsError::Decode {
            what: self.side.name(),
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offsets.value(row),
            format: self.kind.name().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Infers JSON columns from sample messages (each one JSON object); fails when none parses.
pub fn infer_json_schema(topic: &str, side: Side, samples: &[Vec<u8>]) -> Result<Schema> {
    let parsed: Vec<serde_json::Value> = samples
        .iter()
        .filter_map(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .filter(serde_json::Value::is_object)
        .collect();
    if parsed.is_empty() {
        return Err(TopicsError::InvalidSchema(format!(
            "cannot infer the JSON {side} columns of '{topic}': none of the {} sampled messages has a JSON object as its {side}; declare the columns",
            samples.len(),
            side = side.name(),
        )));
    }
    Ok(arrow::json::reader::infer_json_schema_from_iterator(
        parsed.into_iter().map(Ok),
    )?)
}
