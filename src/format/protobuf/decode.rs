//! Decoding protobuf messages straight into reusable Arrow builders.

use std::sync::Arc;

use super::schema::*;
use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, ListArray, MapArray, StringBuilder, StructArray, TimestampNanosecondBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{FieldRef, Fields, SchemaRef};
use prost::Message as _;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, MapKey, MessageDescriptor, Value,
};
// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A builder tree mirroring a [`Plan`].
pub(super) enum Col {
    Bool(BooleanBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Str(StringBuilder),
    Bytes(BinaryBuilder),
    Enum(EnumDescriptor, StringBuilder),
    Timestamp(TimestampNanosecondBuilder),
    Wrapper(FieldDescriptor, Box<Col>),
    Opaque(BinaryBuilder),
    Struct(Box<StructCol>),
    List(Box<ListCol>),
    Map(Box<MapCol>),
}

pub(super) struct StructCol {
    arrow: Fields,
    fields: Vec<(FieldDescriptor, Col)>,
    nulls: NullBufferBuilder,
    fallible: bool,
}

pub(super) struct ListCol {
    item: FieldRef,
    child: Col,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

pub(super) struct MapCol {
    entries: FieldRef,
    entry_fields: Fields,
    key: Col,
    value: Col,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

pub(super) fn push_offset(offsets: &mut Vec<i32>, added: usize) {
    let last = offsets.last().copied().unwrap_or(0);
    // Cannot saturate: the decoder's byte budget keeps every child below i32::MAX elements.
    offsets.push(last.saturating_add(i32::try_from(added).unwrap_or(i32::MAX)));
}

/// Nanoseconds since the epoch of a `google.protobuf.Timestamp`.
pub(super) fn timestamp_nanos(m: &DynamicMessage) -> Result<i64, String> {
    let secs = match m.get_field_by_number(1).as_deref() {
        Some(Value::I64(s)) => *s,
        _ => 0,
    };
    let nanos = match m.get_field_by_number(2).as_deref() {
        Some(Value::I32(n)) => *n,
        _ => 0,
    };
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(i64::from(nanos)))
        .ok_or_else(|| {
            format!(
                "timestamp (seconds {secs}, nanos {nanos}) is outside the range of \
                 Timestamp(Nanosecond) (years 1677..2262)"
            )
        })
}

impl Col {
    pub(super) fn scalar(s: Scalar) -> Col {
        match s {
            Scalar::Bool => Col::Bool(BooleanBuilder::new()),
            Scalar::I32 => Col::I32(Int32Builder::new()),
            Scalar::I64 => Col::I64(Int64Builder::new()),
            Scalar::U32 => Col::U32(UInt32Builder::new()),
            Scalar::U64 => Col::U64(UInt64Builder::new()),
            Scalar::F32 => Col::F32(Float32Builder::new()),
            Scalar::F64 => Col::F64(Float64Builder::new()),
            Scalar::Str => Col::Str(StringBuilder::new()),
            Scalar::Bytes => Col::Bytes(BinaryBuilder::new()),
        }
    }

    pub(super) fn new(plan: &Plan) -> Col {
        match plan {
            Plan::Scalar(s) => Col::scalar(*s),
            Plan::Enum(e) => Col::Enum(e.clone(), StringBuilder::new()),
            Plan::Timestamp(_) => {
                Col::Timestamp(TimestampNanosecondBuilder::new().with_timezone(TIMESTAMP_TZ))
            }
            Plan::Wrapper { value, scalar, .. } => {
                Col::Wrapper(value.clone(), Box::new(Col::scalar(*scalar)))
            }
            Plan::Message { fields, arrow, .. } => {
                let fields: Vec<(FieldDescriptor, Col)> = fields
                    .iter()
                    .map(|(fd, p)| (fd.clone(), Col::new(p)))
                    .collect();
                let fallible = fields.iter().any(|(_, c)| c.fallible());
                Col::Struct(Box::new(StructCol {
                    arrow: arrow.clone(),
                    fields,
                    nulls: NullBufferBuilder::new(0),
                    fallible,
                }))
            }
            Plan::Opaque(_) => Col::Opaque(BinaryBuilder::new()),
            Plan::List { item, elem } => Col::List(Box::new(ListCol {
                item: item.clone(),
                child: Col::new(elem),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
            })),
            Plan::Map {
                entries,
                entry_fields,
                key,
                value,
                ..
            } => Col::Map(Box::new(MapCol {
                entries: entries.clone(),
                entry_fields: entry_fields.clone(),
                key: Col::new(key),
                value: Col::new(value),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
            })),
        }
    }

    /// Whether appending a value of this column can fail (out-of-range timestamps).
    pub(super) fn fallible(&self) -> bool {
        match self {
            Col::Timestamp(_) => true,
            Col::Struct(s) => s.fallible,
            Col::List(l) => l.child.fallible(),
            Col::Map(m) => m.value.fallible(),
            _ => false,
        }
    }

    /// Upper bound of the Arrow bytes produced per input byte, for the batch-size guard.
    pub(super) fn expansion(&self) -> usize {
        match self {
            // Unknown enum numbers are written as up to 11 characters.
            Col::Enum(e, _) => e
                .values()
                .map(|v| v.name().len())
                .max()
                .unwrap_or(0)
                .max(11),
            Col::Wrapper(_, inner) => inner.expansion(),
            Col::Struct(s) => s
                .fields
                .iter()
                .map(|(_, c)| c.expansion())
                .max()
                .unwrap_or(0),
            Col::List(l) => l.child.expansion(),
            Col::Map(m) => m.key.expansion().max(m.value.expansion()),
            _ => 0,
        }
    }

    pub(super) fn append_null(&mut self) {
        match self {
            Col::Bool(b) => b.append_null(),
            Col::I32(b) => b.append_null(),
            Col::I64(b) => b.append_null(),
            Col::U32(b) => b.append_null(),
            Col::U64(b) => b.append_null(),
            Col::F32(b) => b.append_null(),
            Col::F64(b) => b.append_null(),
            Col::Str(b) | Col::Enum(_, b) => b.append_null(),
            Col::Bytes(b) | Col::Opaque(b) => b.append_null(),
            Col::Timestamp(b) => b.append_null(),
            Col::Wrapper(_, inner) => inner.append_null(),
            Col::Struct(s) => {
                s.nulls.append_null();
                for (_, c) in &mut s.fields {
                    c.append_null();
                }
            }
            Col::List(l) => {
                push_offset(&mut l.offsets, 0);
                l.nulls.append_null();
            }
            Col::Map(m) => {
                push_offset(&mut m.offsets, 0);
                m.nulls.append_null();
            }
        }
    }

    /// Appends field `fd` of `msg`: null if it tracks presence and is absent.
    pub(super) fn append_field(&mut self, msg: &DynamicMessage, fd: &FieldDescriptor) {
        if fd.supports_presence() && !msg.has_field(fd) {
            self.append_null();
        } else {
            self.append(&msg.get_field(fd));
        }
    }

    /// Appends one value. The value always matches the column (both come from the same
    /// descriptor); a mismatch would append null rather than panic.
    pub(super) fn append(&mut self, v: &Value) {
        match (self, v) {
            (Col::Bool(b), Value::Bool(x)) => b.append_value(*x),
            (Col::I32(b), Value::I32(x)) => b.append_value(*x),
            (Col::I64(b), Value::I64(x)) => b.append_value(*x),
            (Col::U32(b), Value::U32(x)) => b.append_value(*x),
            (Col::U64(b), Value::U64(x)) => b.append_value(*x),
            (Col::F32(b), Value::F32(x)) => b.append_value(*x),
            (Col::F64(b), Value::F64(x)) => b.append_value(*x),
            (Col::Str(b), Value::String(s)) => b.append_value(s),
            (Col::Bytes(b), Value::Bytes(x)) => b.append_value(x),
            (Col::Enum(e, b), Value::EnumNumber(n)) => match e.get_value(*n) {
                Some(ev) => b.append_value(ev.name()),
                None => b.append_value(n.to_string()),
            },
            // Out-of-range timestamps are rejected by `check` before anything is appended.
            (Col::Timestamp(b), Value::Message(m)) => b.append_option(timestamp_nanos(m).ok()),
            (Col::Wrapper(fd, inner), Value::Message(m)) => inner.append(&m.get_field(fd)),
            (Col::Opaque(b), Value::Message(m)) => b.append_value(m.encode_to_vec()),
            (Col::Struct(s), Value::Message(m)) => {
                s.nulls.append_non_null();
                for (fd, c) in &mut s.fields {
                    c.append_field(m, fd);
                }
            }
            (Col::List(l), Value::List(items)) => {
                for item in items {
                    l.child.append(item);
                }
                push_offset(&mut l.offsets, items.len());
                l.nulls.append_non_null();
            }
            (Col::Map(mc), Value::Map(entries)) => {
                let mut sorted: Vec<(&MapKey, &Value)> = entries.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (k, v) in sorted {
                    mc.key.append_key(k);
                    mc.value.append(v);
                }
                push_offset(&mut mc.offsets, entries.len());
                mc.nulls.append_non_null();
            }
            (col, _) => col.append_null(),
        }
    }

    pub(super) fn append_key(&mut self, k: &MapKey) {
        match (self, k) {
            (Col::Str(b), MapKey::String(s)) => b.append_value(s),
            (Col::I32(b), MapKey::I32(x)) => b.append_value(*x),
            (Col::I64(b), MapKey::I64(x)) => b.append_value(*x),
            (Col::U32(b), MapKey::U32(x)) => b.append_value(*x),
            (Col::U64(b), MapKey::U64(x)) => b.append_value(*x),
            (Col::Bool(b), MapKey::Bool(x)) => b.append_value(*x),
            (col, k) => col.append(&Value::from(k.clone())),
        }
    }

    /// Fails if appending `v` would fail; called only when `self.fallible()`.
    pub(super) fn check(&self, v: &Value) -> Result<(), PathError> {
        match (self, v) {
            (Col::Timestamp(_), Value::Message(m)) => {
                timestamp_nanos(m).map(|_| ()).map_err(PathError::new)
            }
            (Col::Struct(s), Value::Message(m)) => {
                for (fd, c) in &s.fields {
                    if c.fallible() && (!fd.supports_presence() || m.has_field(fd)) {
                        c.check(&m.get_field(fd)).map_err(|e| e.at(fd.name()))?;
                    }
                }
                Ok(())
            }
            (Col::List(l), Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    l.child.check(item).map_err(|e| e.at(format!("[{i}]")))?;
                }
                Ok(())
            }
            (Col::Map(mc), Value::Map(entries)) => {
                for (k, v) in entries {
                    mc.value.check(v).map_err(|e| e.at(format!("[{k:?}]")))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Bool(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::U32(b) => Arc::new(b.finish()),
            Col::U64(b) => Arc::new(b.finish()),
            Col::F32(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Str(b) | Col::Enum(_, b) => Arc::new(b.finish()),
            Col::Bytes(b) | Col::Opaque(b) => Arc::new(b.finish()),
            Col::Timestamp(b) => Arc::new(b.finish()),
            Col::Wrapper(_, inner) => inner.finish(),
            Col::Struct(s) => {
                let len = s.nulls.len();
                let nulls = s.nulls.finish();
                let children = s.fields.iter_mut().map(|(_, c)| c.finish()).collect();
                // Invariant (not input-dependent): every child got exactly one entry per row.
                let array = StructArray::try_new_with_length(s.arrow.clone(), children, nulls, len)
                    .unwrap_or_else(|e| panic!("protobuf_arrow: struct builder invariant: {e}"));
                Arc::new(array)
            }
            Col::List(l) => {
                let offsets = std::mem::replace(&mut l.offsets, vec![0]);
                let values = l.child.finish();
                Arc::new(ListArray::new(
                    l.item.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    values,
                    l.nulls.finish(),
                ))
            }
            Col::Map(m) => {
                let offsets = std::mem::replace(&mut m.offsets, vec![0]);
                let keys = m.key.finish();
                let values = m.value.finish();
                let entries = StructArray::new(m.entry_fields.clone(), vec![keys, values], None);
                Arc::new(MapArray::new(
                    m.entries.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    entries,
                    m.nulls.finish(),
                    false,
                ))
            }
        }
    }
}

/// Decodes protobuf-encoded messages into Arrow columns, reusing its builders across messages
/// and batches.
pub struct ProtoDecoder {
    desc: MessageDescriptor,
    columns: Vec<(FieldDescriptor, Col)>,
    rows: usize,
    bytes: usize,
    max_bytes: usize,
}

impl std::fmt::Debug for ProtoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtoDecoder")
            .field("message", &self.desc.full_name())
            .field("columns", &self.columns.len())
            .field("rows", &self.rows)
            .finish()
    }
}

impl ProtoDecoder {
    /// `desc` is the message type; `projected` lists the top-level columns to build (a subset of
    /// [`message_fields`]`(desc)`, matched by name, types must be equal, in the order given).
    /// Fields not projected are skipped.
    pub fn try_new(desc: MessageDescriptor, projected: SchemaRef) -> Result<Self, String> {
        let mut columns = Vec::with_capacity(projected.fields().len());
        let mut expansion = MIN_EXPANSION;
        for f in projected.fields() {
            let fd = field_named(&desc, f.name())?;
            let plan = Planner::new(&desc)
                .field(&fd)
                .map_err(|e| format!("column '{}': {e}", f.name()))?;
            let expected = plan.data_type();
            if &expected != f.data_type() {
                return Err(format!(
                    "column '{}': projected type {} differs from the field's Arrow type {expected}",
                    f.name(),
                    f.data_type()
                ));
            }
            let col = Col::new(&plan);
            expansion = expansion.max(col.expansion());
            columns.push((fd, col));
        }
        Ok(ProtoDecoder {
            desc,
            columns,
            rows: 0,
            bytes: 0,
            max_bytes: i32::MAX as usize / expansion,
        })
    }

    /// Appends one message. `None` (a tombstone) appends a row with every column null.
    /// On a malformed message returns `Err(reason)` and appends nothing, so all builders stay
    /// row-aligned. Also fails (appending nothing) when the batch would exceed
    /// [`Self::max_batch_bytes`] of input; the error then starts with `batch full`.
    pub fn append(&mut self, bytes: Option<&[u8]>) -> Result<(), String> {
        let Some(bytes) = bytes else {
            for (_, c) in &mut self.columns {
                c.append_null();
            }
            self.rows += 1;
            return Ok(());
        };
        let total = self.bytes.saturating_add(bytes.len());
        if total > self.max_bytes {
            return Err(format!(
                "batch full: {} buffered + {} new message bytes exceed the per-batch limit of {} \
                 bytes; call finish() first",
                self.bytes,
                bytes.len(),
                self.max_bytes
            ));
        }
        let msg = DynamicMessage::decode(self.desc.clone(), bytes)
            .map_err(|e| format!("malformed {} message: {e}", self.desc.full_name()))?;
        for (fd, c) in &self.columns {
            if c.fallible() && (!fd.supports_presence() || msg.has_field(fd)) {
                c.check(&msg.get_field(fd))
                    .map_err(|e| e.at(fd.name()).render())?;
            }
        }
        for (fd, c) in &mut self.columns {
            c.append_field(&msg, fd);
        }
        self.bytes = total;
        self.rows += 1;
        Ok(())
    }

    /// Number of rows appended since the last [`Self::finish`].
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Takes the built columns (in projected order) and resets the decoder for the next batch.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        self.bytes = 0;
        self.columns.iter_mut().map(|(_, c)| c.finish()).collect()
    }
}
