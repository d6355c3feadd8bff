//! Topic table schemas: the value columns of the format followed by the metadata columns the
//! connector declares, and the projection plan, the one place that decides which raw columns a
//! scan builds and how output batches are assembled.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, RecordBatchOptions, StringArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::error::{Result, TopicsError};
use crate::source::{ColumnNeeds, RawBatch, headers_data_type};

/// A metadata column every row carries besides its value columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataColumn {
    /// `_topic`: the topic (Kafka) or stream (NATS) name.
    Topic,
    /// `_partition`: the partition id.
    Partition,
    /// `_offset`: the Kafka offset or JetStream stream sequence.
    Offset,
    /// `_timestamp`: the message timestamp (UTC, milliseconds).
    Timestamp,
    /// `_key`: the message key bytes.
    Key,
    /// `_headers`: header name to bytes.
    Headers,
    /// `_subject`: the NATS subject.
    Subject,
    /// `_error`: why the message's key or value could not be decoded (`value.on-error` =
    /// `dead-letter` only; null for good messages).
    Error,
    /// `_raw`: the bytes that could not be decoded (`dead-letter` only).
    Raw,
}

/// The columns `value.on-error` = `dead-letter` adds.
pub const DEAD_LETTER_METADATA: &[MetadataColumn] = &[MetadataColumn::Error, MetadataColumn::Raw];

impl MetadataColumn {
    /// The column name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Topic => "_topic",
            Self::Partition => "_partition",
            Self::Offset => "_offset",
            Self::Timestamp => "_timestamp",
            Self::Key => "_key",
            Self::Headers => "_headers",
            Self::Subject => "_subject",
            Self::Error => "_error",
            Self::Raw => "_raw",
        }
    }

    /// The Arrow field. Every metadata column is nullable even though a scan always fills
    /// it: `INSERT INTO` leaves the columns it does not name NULL, and NULL there means "let
    /// the writer choose" (the partitioner picks `_partition`, the broker sets `_offset`).
    pub fn field(&self) -> Field {
        let dt = match self {
            Self::Topic | Self::Subject | Self::Error => DataType::Utf8,
            Self::Raw => DataType::Binary,
            Self::Partition => DataType::Int32,
            Self::Offset => DataType::Int64,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            Self::Key => DataType::Binary,
            Self::Headers => headers_data_type(),
        };
        Field::new(self.name(), dt, true)
    }
}

/// The full schema of a topic table: value columns, then metadata columns.
#[derive(Debug, Clone)]
pub struct TopicSchema {
    schema: SchemaRef,
    value_count: usize,
    metadata: Vec<MetadataColumn>,
    /// Whether decoding can find bad messages that a scan must see (to skip them, or to fill
    /// `_error`) even when it reads no value or key column.
    validate: Validation,
}

/// Which formats a scan decodes to find bad messages, beyond what it projects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validation {
    /// The value format can reject messages.
    pub value: bool,
    /// The key format can reject messages.
    pub key: bool,
    /// Every scan validates (`skip`); otherwise only scans reading `_error` or `_raw` do.
    pub always: bool,
}

impl TopicSchema {
    /// Combines value fields with metadata columns; a value column may not shadow one.
    /// `key_type` is the type of `_key` (bytes unless the key format decodes it).
    pub fn try_new(
        value_fields: Fields,
        metadata: &[MetadataColumn],
        key_type: DataType,
        validate: Validation,
    ) -> Result<Self> {
        if let Some(clash) = value_fields
            .iter()
            .find(|f| metadata.iter().any(|m| m.name() == f.name()))
        {
            return Err(TopicsError::InvalidSchema(format!(
                "value column '{}' has the name of a metadata column; rename it",
                clash.name()
            )));
        }
        let mut fields: Vec<Field> = value_fields.iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(metadata.iter().map(|m| match m {
            MetadataColumn::Key => Field::new(m.name(), key_type.clone(), true),
            _ => m.field(),
        }));
        Ok(Self {
            schema: Arc::new(Schema::new(fields)),
            value_count: value_fields.len(),
            metadata: metadata.to_vec(),
            validate,
        })
    }

    /// How many value columns precede the metadata columns.
    pub fn value_count(&self) -> usize {
        self.value_count
    }

    /// The Arrow schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Index of a metadata column in the schema, if the table has it.
    pub fn index_of(&self, column: MetadataColumn) -> Option<usize> {
        self.metadata
            .iter()
            .position(|m| *m == column)
            .map(|i| self.value_count + i)
    }

    /// Works out which raw columns and value columns a projection needs; with
    /// `whole_messages` (dead letters or late rows are produced) every raw column is read,
    /// since such a message is produced whole. `event_time` names the table's event-time
    /// column, which is then read (and decoded) whether projected or not.
    pub fn project(
        &self,
        projection: Option<&Vec<usize>>,
        whole_messages: bool,
        event_time: Option<&str>,
    ) -> Result<ProjectionPlan> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let mut needs = ColumnNeeds::default();
        let mut wanted_values = Vec::new();
        let mut metadata = Vec::new();
        for &i in &indices {
            if i < self.value_count {
                wanted_values.push(i);
            } else {
                let m = *self.metadata.get(i - self.value_count).ok_or_else(|| {
                    TopicsError::internal(format!("projection index {i} is out of range"))
                })?;
                metadata.push(m);
            }
        }
        let reads_errors = metadata
            .iter()
            .any(|m| matches!(m, MetadataColumn::Error | MetadataColumn::Raw));
        let validating = self.validate.always || reads_errors;
        // Validating decodes every value column: a message is only good if all of it is.
        let event_value = match event_time {
            None => None,
            Some(name) if name == MetadataColumn::Timestamp.name() => None,
            Some(name) => Some(self.event_time_index(name)?),
        };
        let value_indices: Vec<usize> = if validating && self.validate.value {
            (0..self.value_count).collect()
        } else {
            let mut v = wanted_values.clone();
            v.extend(event_value);
            v.sort_unstable();
            v.dedup();
            v
        };
        let event_time = match (event_time, event_value) {
            (None, _) => None,
            (Some(_), None) => {
                needs.timestamp = true;
                Some(EventTimeSource::Timestamp)
            }
            (Some(_), Some(k)) => Some(EventTimeSource::Value(
                value_indices.iter().position(|&v| v == k).unwrap_or(0),
            )),
        };
        let decode_key =
            metadata.contains(&MetadataColumn::Key) || (validating && self.validate.key);
        let mut columns = Vec::with_capacity(indices.len());
        for &i in &indices {
            if i < self.value_count {
                let at = value_indices.iter().position(|&v| v == i).unwrap_or(0);
                columns.push(OutputColumn::Value(at));
            } else {
                let m = self.metadata[i - self.value_count];
                match m {
                    MetadataColumn::Timestamp => needs.timestamp = true,
                    MetadataColumn::Key => needs.key = true,
                    MetadataColumn::Headers => needs.headers = true,
                    MetadataColumn::Subject => needs.subject = true,
                    MetadataColumn::Topic
                    | MetadataColumn::Partition
                    | MetadataColumn::Offset
                    | MetadataColumn::Error
                    | MetadataColumn::Raw => {}
                }
                columns.push(OutputColumn::Metadata(m));
            }
        }
        needs.value = !value_indices.is_empty() || (validating && self.validate.value);
        needs.key |= decode_key;
        let mut read = needs;
        if whole_messages {
            read.key = true;
            read.value = true;
            read.headers = true;
        }
        Ok(ProjectionPlan {
            output_schema: Arc::new(self.schema.project(&indices)?),
            value_schema: Arc::new(self.schema.project(&value_indices)?),
            columns,
            needs,
            read,
            decode_key,
            event_time,
        })
    }

    /// The index of the value column `name` holding event time; it must be a timestamp.
    pub fn event_time_index(&self, name: &str) -> Result<usize> {
        let found = self
            .schema
            .fields()
            .iter()
            .take(self.value_count)
            .position(|f| f.name() == name);
        match found {
            Some(i) if matches!(self.schema.field(i).data_type(), DataType::Timestamp(_, _)) => {
                Ok(i)
            }
            Some(i) => Err(TopicsError::invalid_option(
                "watermark.column",
                name,
                &format!(
                    "the event-time column must be a TIMESTAMP, not {}",
                    self.schema.field(i).data_type()
                ),
            )),
            None => Err(TopicsError::invalid_option(
                "watermark.column",
                name,
                &format!(
                    "the table has no such column; it has _timestamp and the value columns {}",
                    self.schema
                        .fields()
                        .iter()
                        .take(self.value_count)
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
}

/// Where a scan finds a row's event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTimeSource {
    /// The message timestamp (`_timestamp`).
    Timestamp,
    /// The i-th decoded value column (a TIMESTAMP).
    Value(usize),
}

/// Where one output column comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputColumn {
    /// The i-th decoded value column.
    Value(usize),
    /// A metadata column.
    Metadata(MetadataColumn),
}

/// What a scan must build for a projection, and how to assemble its output batches.
#[derive(Debug, Clone)]
pub struct ProjectionPlan {
    /// Schema of the batches the scan emits.
    pub output_schema: SchemaRef,
    /// The value columns to decode, in output order.
    pub value_schema: SchemaRef,
    /// Source of each output column.
    pub columns: Vec<OutputColumn>,
    /// Raw columns the output and the decoders need.
    pub needs: ColumnNeeds,
    /// Raw columns the reader builds: `needs`, plus the whole message when dead letters are
    /// produced.
    pub read: ColumnNeeds,
    /// Whether keys are decoded (for `_key`, or to find bad messages).
    pub decode_key: bool,
    /// Where the event time of each row is, when the table declares one.
    pub event_time: Option<EventTimeSource>,
}

/// A raw batch's decoded parts, ready to be assembled into output rows.
#[derive(Debug, Default)]
pub struct DecodedParts {
    /// The decoded value columns, in the plan's value-schema order.
    pub values: Vec<ArrayRef>,
    /// The `_key` column, when keys were decoded.
    pub key: Option<ArrayRef>,
    /// `_error` (null for good messages), when bad messages are kept.
    pub error: Option<ArrayRef>,
    /// `_raw` (the bytes that failed), when bad messages are kept.
    pub raw: Option<ArrayRef>,
}

impl ProjectionPlan {
    /// Builds an output batch from raw messages and their decoded value columns.
    pub fn assemble(
        &self,
        topic: &str,
        raw: &RawBatch,
        parts: &DecodedParts,
    ) -> Result<RecordBatch> {
        let n = raw.len();
        let missing = |c: MetadataColumn| {
            TopicsError::internal(format!("the source did not provide column {}", c.name()))
        };
        let columns = self
            .columns
            .iter()
            .map(|c| -> Result<ArrayRef> {
                Ok(match *c {
                    OutputColumn::Value(i) => Arc::clone(&parts.values[i]),
                    OutputColumn::Metadata(m) => match m {
                        MetadataColumn::Topic => {
                            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(topic, n)))
                        }
                        MetadataColumn::Partition => {
                            Arc::new(Int32Array::from(vec![raw.partition; n]))
                        }
                        MetadataColumn::Offset => Arc::new(raw.offsets.clone()),
                        MetadataColumn::Timestamp => {
                            Arc::new(raw.timestamps.clone().ok_or_else(|| missing(m))?)
                        }
                        MetadataColumn::Key => match &parts.key {
                            Some(key) => Arc::clone(key),
                            None => Arc::new(raw.keys.clone().ok_or_else(|| missing(m))?),
                        },
                        MetadataColumn::Error => match &parts.error {
                            Some(e) => Arc::clone(e),
                            None => arrow::array::new_null_array(&DataType::Utf8, n),
                        },
                        MetadataColumn::Raw => match &parts.raw {
                            Some(r) => Arc::clone(r),
                            None => arrow::array::new_null_array(&DataType::Binary, n),
                        },
                        MetadataColumn::Headers => {
                            Arc::new(raw.headers.clone().ok_or_else(|| missing(m))?)
                        }
                        MetadataColumn::Subject => {
                            Arc::new(raw.subjects.clone().ok_or_else(|| missing(m))?)
                        }
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &options,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA_METADATA: &[MetadataColumn] = &[
        MetadataColumn::Topic,
        MetadataColumn::Partition,
        MetadataColumn::Offset,
        MetadataColumn::Timestamp,
        MetadataColumn::Key,
        MetadataColumn::Headers,
    ];

    #[test]
    fn value_columns_first_then_metadata() {
        let t = TopicSchema::try_new(
            Fields::from(vec![Field::new("id", DataType::Int64, true)]),
            KAFKA_METADATA,
            DataType::Binary,
            Validation::default(),
        )
        .unwrap();
        let names: Vec<_> = t
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "_topic",
                "_partition",
                "_offset",
                "_timestamp",
                "_key",
                "_headers"
            ]
        );
        assert_eq!(t.index_of(MetadataColumn::Offset), Some(3));
        let p = t.project(Some(&vec![3, 0]), false, None).unwrap();
        assert_eq!(
            p.columns,
            vec![
                OutputColumn::Metadata(MetadataColumn::Offset),
                OutputColumn::Value(0)
            ]
        );
        assert!(p.needs.value && !p.needs.key && !p.needs.timestamp);
        let p = t.project(Some(&vec![]), false, None).unwrap();
        assert_eq!(p.needs, ColumnNeeds::default());
    }

    #[test]
    fn clash_with_metadata_is_rejected() {
        let err = TopicSchema::try_new(
            Fields::from(vec![Field::new("_offset", DataType::Int64, true)]),
            KAFKA_METADATA,
            DataType::Binary,
            Validation::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("_offset"));
    }
}
