//! Decoding a raw batch's keys and values under the table's bad-message policy: the step
//! between the source's raw messages and the assembled output rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, BinaryBuilder, StringBuilder, StructArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Fields};

use super::{DecodeContext, DecodeError, Decoder, ErrorPolicy, Format, Side, decode_with_policy};
use crate::error::{Result, TopicsError};
use crate::source::RawBatch;
use crate::table::{DecodedParts, ProjectionPlan, Validation};

/// A table's key and value formats and what it does with messages they cannot decode.
#[derive(Debug, Clone)]
pub struct TableFormats {
    /// The value format.
    pub value: Format,
    /// The key format.
    pub key: Format,
    /// The bad-message policy.
    pub on_error: ErrorPolicy,
    /// Where bad messages are also produced, if anywhere.
    pub dead_letter_topic: Option<String>,
}

impl TableFormats {
    /// Raw keys and values; bad messages cannot occur.
    pub fn raw() -> Self {
        Self {
            value: Format::raw(),
            key: Format::raw(),
            on_error: ErrorPolicy::Fail,
            dead_letter_topic: None,
        }
    }

    /// Which formats scans must decode to find bad messages they are asked to skip or show.
    pub fn validation(&self) -> Validation {
        let can_fail = |f: &Format| f.kind() != super::FormatKind::Raw;
        Validation {
            value: can_fail(&self.value),
            key: can_fail(&self.key),
            // Skipping, and sending dead letters, needs every message checked.
            always: self.on_error == ErrorPolicy::Skip || self.dead_letter_topic.is_some(),
        }
    }

    /// Looks up the writer schemas `raw` names that are not cached yet (Confluent framing),
    /// before the (synchronous) decoders meet them.
    pub async fn prefetch(&self, raw: &RawBatch) -> Result<()> {
        if let Some(values) = &raw.values {
            self.value.prefetch(values).await?;
        }
        if let Some(keys) = &raw.keys {
            self.key.prefetch(keys).await?;
        }
        Ok(())
    }

    /// A decoder for the raw batches of a scan with `plan`.
    pub fn batch_decoder(&self, plan: &ProjectionPlan, batch_rows: usize) -> Result<BatchDecoder> {
        let value = if plan.needs.value {
            Some(self.value.decoder(&plan.value_schema, batch_rows)?)
        } else {
            None
        };
        let key = if plan.decode_key && self.key.kind() != super::FormatKind::Raw {
            let all = Arc::new(arrow::datatypes::Schema::new(self.key.fields().clone()));
            Some(self.key.decoder(&all, batch_rows)?)
        } else {
            None
        };
        Ok(BatchDecoder {
            formats: self.clone(),
            value_fields: plan.value_schema.fields().clone(),
            value,
            key,
        })
    }
}

/// A message one of the formats rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage {
    /// Row in the raw batch.
    pub row: usize,
    /// Which part failed (the value is checked first).
    pub side: Side,
    /// The decoder's complaint.
    pub reason: String,
}

/// Decodes the keys and values of one partition's raw batches.
pub struct BatchDecoder {
    formats: TableFormats,
    value_fields: Fields,
    value: Option<Box<dyn Decoder>>,
    key: Option<Box<dyn Decoder>>,
}

impl BatchDecoder {
    /// Decodes `raw` from `topic`. Under `fail` the first bad message is an error naming its
    /// offset; otherwise bad rows come back null and listed.
    pub fn decode(
        &mut self,
        topic: &str,
        raw: &RawBatch,
        keep_errors: bool,
    ) -> Result<(DecodedParts, Vec<BadMessage>)> {
        let fail_fast = self.formats.on_error == ErrorPolicy::Fail;
        let mut bad: BTreeMap<usize, BadMessage> = BTreeMap::new();
        let mut parts = DecodedParts::default();
        let context = |side: Side, format: &Format| DecodeContext {
            topic,
            partition: raw.partition,
            offsets: &raw.offsets,
            side,
            kind: format.kind(),
        };
        if let (Some(decoder), Some(values)) = (self.value.as_mut(), &raw.values) {
            let decoded = run(decoder.as_mut(), values, &self.value_fields, fail_fast)
                .map_err(|e| into_error(e, &context(Side::Value, &self.formats.value)))?;
            parts.values = decoded.columns;
            for (row, reason) in decoded.bad {
                bad.insert(
                    row,
                    BadMessage {
                        row,
                        side: Side::Value,
                        reason,
                    },
                );
            }
        }
        if let (Some(decoder), Some(keys)) = (self.key.as_mut(), &raw.keys) {
            let fields = self.formats.key.fields().clone();
            let decoded = run(decoder.as_mut(), keys, &fields, fail_fast)
                .map_err(|e| into_error(e, &context(Side::Key, &self.formats.key)))?;
            let key_bad: Vec<usize> = decoded.bad.iter().map(|(r, _)| *r).collect();
            parts.key = Some(key_column(
                &self.formats.key,
                decoded.columns,
                keys,
                &key_bad,
            )?);
            for (row, reason) in decoded.bad {
                bad.entry(row).or_insert(BadMessage {
                    row,
                    side: Side::Key,
                    reason,
                });
            }
        }
        if keep_errors && !bad.is_empty() {
            let n = raw.len();
            let mut errors = StringBuilder::with_capacity(n, 0);
            let mut bytes = BinaryBuilder::with_capacity(n, 0);
            for row in 0..n {
                match bad.get(&row) {
                    Some(b) => {
                        errors.append_value(format!("{}: {}", b.side.name(), b.reason));
                        let source = match b.side {
                            Side::Value => raw.values.as_ref(),
                            Side::Key => raw.keys.as_ref(),
                        };
                        bytes.append_option(
                            source.filter(|a| a.is_valid(row)).map(|a| a.value(row)),
                        );
                    }
                    None => {
                        errors.append_null();
                        bytes.append_null();
                    }
                }
            }
            parts.error = Some(Arc::new(errors.finish()));
            parts.raw = Some(Arc::new(bytes.finish()));
        }
        Ok((parts, bad.into_values().collect()))
    }
}

fn run(
    decoder: &mut dyn Decoder,
    bytes: &BinaryArray,
    fields: &Fields,
    fail_fast: bool,
) -> std::result::Result<super::Decoded, DecodeError> {
    let decoded = decode_with_policy(decoder, bytes, fields, fail_fast)?;
    super::policy::check_rows(&decoded.columns, bytes.len())?;
    Ok(decoded)
}

fn into_error(e: DecodeError, context: &DecodeContext<'_>) -> TopicsError {
    match e {
        DecodeError::Bad { row, reason } => context.error(row, reason),
        DecodeError::Failed(e) => e,
    }
}

/// The `_key` column: the single column of raw and string keys, else a struct that is null
/// where the message has no key or its key is bad.
fn key_column(
    format: &Format,
    columns: Vec<ArrayRef>,
    keys: &BinaryArray,
    bad: &[usize],
) -> Result<ArrayRef> {
    if format.kind().is_single_column() {
        return columns
            .into_iter()
            .next()
            .ok_or_else(|| TopicsError::internal("the key decoder returned no column"));
    }
    let DataType::Struct(fields) = format.key_type() else {
        return Err(TopicsError::internal("the key type is not a struct"));
    };
    let valid: Vec<bool> = (0..keys.len())
        .map(|row| keys.is_valid(row) && bad.binary_search(&row).is_err())
        .collect();
    Ok(Arc::new(StructArray::try_new(
        fields,
        columns,
        Some(NullBuffer::from(valid)),
    )?))
}
