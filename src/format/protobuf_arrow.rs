//! Conversion between protobuf messages and Apache Arrow columns, driven by runtime
//! ([`prost_reflect`]) descriptors.
//!
//! * [`message_fields`] gives the Arrow fields for a message type.
//! * [`ProtoDecoder`] decodes encoded messages straight into reusable Arrow builders.
//! * [`encode_rows`] turns each row of a [`RecordBatch`] back into an encoded message.
//!
//! # Type mapping
//!
//! | protobuf                                   | Arrow                                         |
//! |--------------------------------------------|-----------------------------------------------|
//! | `int32`, `sint32`, `sfixed32`              | `Int32`                                       |
//! | `int64`, `sint64`, `sfixed64`              | `Int64`                                       |
//! | `uint32`, `fixed32`                        | `UInt32`                                      |
//! | `uint64`, `fixed64`                        | `UInt64`                                      |
//! | `float` / `double`                         | `Float32` / `Float64`                         |
//! | `bool`                                     | `Boolean`                                     |
//! | `string` / `bytes`                         | `Utf8` / `Binary`                             |
//! | enum                                       | `Utf8` with the value's name (see below)      |
//! | message                                    | `Struct` of its fields, in declaration order  |
//! | `repeated T`                               | `List<T>`, item field `"item"` (nullable)     |
//! | `map<K, V>`                                | `Map`, entries `{"key" (non-null), "value"}`, unsorted |
//! | `google.protobuf.Timestamp`                | `Timestamp(Nanosecond, "UTC")`                |
//! | `google.protobuf.*Value` wrappers          | the wrapped scalar type, null when absent     |
//!
//! Every top-level and struct field is nullable. Other well-known types (`Duration`, `Struct`,
//! `Any`, ...) are treated as ordinary messages. A `oneof` contributes one column per member;
//! only the member that is set is non-null.
//!
//! # Presence
//!
//! Follows [`DynamicMessage::has_field`]: fields that track presence (proto2 singular fields,
//! proto3 `optional`, message-typed fields, oneof members) are null when absent; proto3
//! implicit-presence scalars read as their default (`0`, `""`, `false`, first enum value).
//! Repeated and map fields are never null in a decoded row (absent = empty). A tombstone row
//! (`append(None)`) is null in every column. Map entries are emitted sorted by key, so output is
//! deterministic. On encode a null column value leaves the field unset.
//!
//! # Enums
//!
//! Decoded as the value's name. A number with no name in the descriptor (open enums keep
//! unknown values) is written as its decimal text, e.g. `"42"`. On encode a string column may hold
//! either a value name or a decimal number; an integer column is taken as the enum number.
//!
//! # Recursive and very deep message types
//!
//! A message-typed field whose type already occurs on the path from the root message (a
//! recursive reference, direct or mutual), or that would be nested deeper than
//! [`MAX_NESTING_DEPTH`] message levels, is mapped to `Binary` holding the encoded sub-message
//! instead of a `Struct` (`List<Binary>` / map value `Binary` for repeated / map fields). Cutting at
//! the first recursion rather than unrolling N levels keeps schemas small: a type with two
//! self-references would otherwise grow as 2^N. [`encode_rows`] accepts such bytes back; they must
//! decode as the field's message type. As a further guard against pathological (non-recursive but
//! exponentially branching) schemas, a field that expands to more than [`MAX_SCHEMA_FIELDS`] Arrow
//! fields is rejected with an error naming the message type.
//!
//! # Hostile input
//!
//! Decoding never panics on malformed bytes: bad varints, lengths past the end of the buffer,
//! wrong wire types, stray end-group tags and nesting beyond prost's recursion limit (100) all
//! come back as `Err`, and a rejected message appends nothing. Memory is bounded by the input
//! size. Because Arrow `Utf8`/`Binary`/`List` arrays use 32-bit offsets, a decoder refuses
//! (with an error starting `batch full`) to buffer more input than it can safely turn into arrays
//! (at least `i32::MAX / 16` ≈ 128 MiB of message bytes per batch; see
//! [`ProtoDecoder::max_batch_bytes`]); call [`ProtoDecoder::finish`] before that.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BinaryViewArray, BooleanArray,
    BooleanBuilder, FixedSizeBinaryArray, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, LargeBinaryArray, LargeStringArray, ListArray, MapArray, PrimitiveArray,
    RecordBatch, StringArray, StringBuilder, StringViewArray, StructArray,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use prost::Message as _;
use prost::bytes::Bytes;
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value,
};

/// Maximum number of message levels (the root counts as one) expanded into nested `Struct`s;
/// deeper message-typed fields become `Binary` holding the encoded sub-message.
pub const MAX_NESTING_DEPTH: usize = 32;

/// Maximum number of Arrow fields (at every nesting level) one protobuf field may expand to.
pub const MAX_SCHEMA_FIELDS: usize = 100_000;

/// Name of the item field of list columns.
pub const LIST_ITEM_NAME: &str = "item";
/// Names of the entries struct and its key / value fields of map columns.
pub const MAP_ENTRIES_NAME: &str = "entries";
pub const MAP_KEY_NAME: &str = "key";
pub const MAP_VALUE_NAME: &str = "value";

/// Time zone of timestamp columns.
pub const TIMESTAMP_TZ: &str = "UTC";

const TIMESTAMP_TYPE: &str = "google.protobuf.Timestamp";
const WRAPPER_TYPES: [&str; 9] = [
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];

/// Lower bound of the assumed ratio "Arrow bytes / input bytes" used for the batch-size guard.
const MIN_EXPANSION: usize = 16;

// ---------------------------------------------------------------------------------------------
// Schema planning
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scalar {
    Bool,
    I32,
    I64,
    U32,
    U64,
    F32,
    F64,
    Str,
    Bytes,
}

impl Scalar {
    fn of(kind: &Kind) -> Option<Self> {
        Some(match kind {
            Kind::Bool => Self::Bool,
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Self::I32,
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Self::I64,
            Kind::Uint32 | Kind::Fixed32 => Self::U32,
            Kind::Uint64 | Kind::Fixed64 => Self::U64,
            Kind::Float => Self::F32,
            Kind::Double => Self::F64,
            Kind::String => Self::Str,
            Kind::Bytes => Self::Bytes,
            Kind::Message(_) | Kind::Enum(_) => return None,
        })
    }

    fn data_type(self) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::I32 => DataType::Int32,
            Self::I64 => DataType::Int64,
            Self::U32 => DataType::UInt32,
            Self::U64 => DataType::UInt64,
            Self::F32 => DataType::Float32,
            Self::F64 => DataType::Float64,
            Self::Str => DataType::Utf8,
            Self::Bytes => DataType::Binary,
        }
    }

    fn proto_name(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::I32 => "int32",
            Self::I64 => "int64",
            Self::U32 => "uint32",
            Self::U64 => "uint64",
            Self::F32 => "float",
            Self::F64 => "double",
            Self::Str => "string",
            Self::Bytes => "bytes",
        }
    }
}

/// How one protobuf field (or list item / map key / map value) maps to Arrow.
#[derive(Clone, Debug)]
enum Plan {
    Scalar(Scalar),
    Enum(EnumDescriptor),
    Timestamp(MessageDescriptor),
    Wrapper {
        desc: MessageDescriptor,
        value: FieldDescriptor,
        scalar: Scalar,
    },
    Message {
        desc: MessageDescriptor,
        fields: Vec<(FieldDescriptor, Plan)>,
        arrow: Fields,
    },
    /// Message kept as its encoded bytes (recursion / depth cap).
    Opaque(MessageDescriptor),
    List {
        item: FieldRef,
        elem: Box<Plan>,
    },
    Map {
        entries: FieldRef,
        entry_fields: Fields,
        key: Box<Plan>,
        value: Box<Plan>,
        value_field: FieldDescriptor,
    },
}

fn timestamp_data_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(TIMESTAMP_TZ.into()))
}

impl Plan {
    fn data_type(&self) -> DataType {
        match self {
            Plan::Scalar(s) | Plan::Wrapper { scalar: s, .. } => s.data_type(),
            Plan::Enum(_) => DataType::Utf8,
            Plan::Timestamp(_) => timestamp_data_type(),
            Plan::Message { arrow, .. } => DataType::Struct(arrow.clone()),
            Plan::Opaque(_) => DataType::Binary,
            Plan::List { item, .. } => DataType::List(item.clone()),
            Plan::Map { entries, .. } => DataType::Map(entries.clone(), false),
        }
    }

    fn describe(&self) -> String {
        match self {
            Plan::Scalar(s) => s.proto_name().to_owned(),
            Plan::Enum(e) => format!("enum {}", e.full_name()),
            Plan::Timestamp(m) | Plan::Opaque(m) => format!("message {}", m.full_name()),
            Plan::Wrapper { desc, .. } | Plan::Message { desc, .. } => {
                format!("message {}", desc.full_name())
            }
            Plan::List { elem, .. } => format!("repeated {}", elem.describe()),
            Plan::Map { key, value, .. } => {
                format!("map<{}, {}>", key.describe(), value.describe())
            }
        }
    }
}

/// Fields of a message in declaration order (prost-reflect iterates them by number).
fn declared_fields(desc: &MessageDescriptor) -> Vec<FieldDescriptor> {
    let by_number: Vec<FieldDescriptor> = desc.fields().collect();
    let mut out = Vec::with_capacity(by_number.len());
    for proto in &desc.descriptor_proto().field {
        let found = u32::try_from(proto.number())
            .ok()
            .and_then(|n| desc.get_field(n))
            .filter(|fd| {
                !out.iter()
                    .any(|o: &FieldDescriptor| o.number() == fd.number())
            });
        if let Some(fd) = found {
            out.push(fd);
        }
    }
    if out.len() == by_number.len() {
        out
    } else {
        by_number
    }
}

fn well_known(m: &MessageDescriptor) -> Option<Plan> {
    let name = m.full_name();
    if name == TIMESTAMP_TYPE {
        let secs = m.get_field(1)?;
        let nanos = m.get_field(2)?;
        let ok = matches!(secs.kind(), Kind::Int64)
            && matches!(nanos.kind(), Kind::Int32)
            && !secs.is_list()
            && !nanos.is_list();
        return ok.then(|| Plan::Timestamp(m.clone()));
    }
    if WRAPPER_TYPES.contains(&name) {
        let value = m.get_field(1)?;
        if value.is_list() || value.is_map() {
            return None;
        }
        let scalar = Scalar::of(&value.kind())?;
        return Some(Plan::Wrapper {
            desc: m.clone(),
            value,
            scalar,
        });
    }
    None
}

fn map_entry_fields(key: DataType, value: DataType) -> Fields {
    Fields::from(vec![
        Field::new(MAP_KEY_NAME, key, false),
        Field::new(MAP_VALUE_NAME, value, true),
    ])
}

struct Planner {
    /// Full names of the message types from the root down to the message being expanded.
    path: Vec<String>,
    /// Arrow fields produced so far.
    produced: usize,
}

impl Planner {
    fn new(root: &MessageDescriptor) -> Self {
        Planner {
            path: vec![root.full_name().to_owned()],
            produced: 0,
        }
    }

    fn message(
        &mut self,
        desc: &MessageDescriptor,
    ) -> Result<(Vec<(FieldDescriptor, Plan)>, Fields), String> {
        let mut plans = Vec::new();
        let mut arrow = Vec::new();
        for fd in declared_fields(desc) {
            self.produced += 1;
            if self.produced > MAX_SCHEMA_FIELDS {
                return Err(format!(
                    "message type {} expands to more than {MAX_SCHEMA_FIELDS} Arrow fields",
                    desc.full_name()
                ));
            }
            let plan = self.field(&fd)?;
            arrow.push(Field::new(fd.name(), plan.data_type(), true));
            plans.push((fd, plan));
        }
        Ok((plans, Fields::from(arrow)))
    }

    fn field(&mut self, fd: &FieldDescriptor) -> Result<Plan, String> {
        let kind = fd.kind();
        if fd.is_map() {
            let Kind::Message(entry) = &kind else {
                return Err(format!("map field {} has no entry message", fd.full_name()));
            };
            let key_field = entry.map_entry_key_field();
            let value_field = entry.map_entry_value_field();
            let key = self.element(&key_field.kind())?;
            let value = self.element(&value_field.kind())?;
            let entry_fields = map_entry_fields(key.data_type(), value.data_type());
            let entries = Field::new(
                MAP_ENTRIES_NAME,
                DataType::Struct(entry_fields.clone()),
                false,
            );
            Ok(Plan::Map {
                entries: Arc::new(entries),
                entry_fields,
                key: Box::new(key),
                value: Box::new(value),
                value_field,
            })
        } else if fd.is_list() {
            let elem = self.element(&kind)?;
            let item = Field::new(LIST_ITEM_NAME, elem.data_type(), true);
            Ok(Plan::List {
                item: Arc::new(item),
                elem: Box::new(elem),
            })
        } else {
            self.element(&kind)
        }
    }

    fn element(&mut self, kind: &Kind) -> Result<Plan, String> {
        match kind {
            Kind::Enum(e) => Ok(Plan::Enum(e.clone())),
            Kind::Message(m) => self.message_kind(m),
            other => match Scalar::of(other) {
                Some(s) => Ok(Plan::Scalar(s)),
                None => Err(format!("unsupported field kind {other:?}")),
            },
        }
    }

    fn message_kind(&mut self, m: &MessageDescriptor) -> Result<Plan, String> {
        if let Some(plan) = well_known(m) {
            return Ok(plan);
        }
        if self.path.len() >= MAX_NESTING_DEPTH || self.path.iter().any(|n| n == m.full_name()) {
            return Ok(Plan::Opaque(m.clone()));
        }
        self.path.push(m.full_name().to_owned());
        let res = self.message(m);
        self.path.pop();
        let (fields, arrow) = res?;
        Ok(Plan::Message {
            desc: m.clone(),
            fields,
            arrow,
        })
    }
}

/// Arrow fields (all nullable) for the fields of a protobuf message, in declaration order.
///
/// Never loops on recursive types (see the module docs); errors only for schemas that expand
/// to more than [`MAX_SCHEMA_FIELDS`] Arrow fields.
pub fn message_fields(desc: &MessageDescriptor) -> Result<Fields, String> {
    let mut arrow = Vec::new();
    for fd in declared_fields(desc) {
        let plan = Planner::new(desc).field(&fd)?;
        arrow.push(Field::new(fd.name(), plan.data_type(), true));
    }
    Ok(Fields::from(arrow))
}

// ---------------------------------------------------------------------------------------------
// Errors with a field path
// ---------------------------------------------------------------------------------------------

/// An error and the field path (innermost first) where it happened.
struct PathError {
    path: Vec<String>,
    reason: String,
}

impl PathError {
    fn new(reason: impl Into<String>) -> Self {
        PathError {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }

    /// `column 'a': reason` or `column 'a', field 'a.b[3].c': reason`.
    fn render(&self) -> String {
        let mut full = String::new();
        for seg in self.path.iter().rev() {
            if !full.is_empty() && !seg.starts_with('[') {
                full.push('.');
            }
            full.push_str(seg);
        }
        let column = self.path.last().map(String::as_str).unwrap_or("?");
        if self.path.len() > 1 {
            format!("column '{column}', field '{full}': {}", self.reason)
        } else {
            format!("column '{column}': {}", self.reason)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// A builder tree mirroring a [`Plan`].
enum Col {
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

struct StructCol {
    arrow: Fields,
    fields: Vec<(FieldDescriptor, Col)>,
    nulls: NullBufferBuilder,
    fallible: bool,
}

struct ListCol {
    item: FieldRef,
    child: Col,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

struct MapCol {
    entries: FieldRef,
    entry_fields: Fields,
    key: Col,
    value: Col,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

fn push_offset(offsets: &mut Vec<i32>, added: usize) {
    let last = offsets.last().copied().unwrap_or(0);
    // Cannot saturate: the decoder's byte budget keeps every child below i32::MAX elements.
    offsets.push(last.saturating_add(i32::try_from(added).unwrap_or(i32::MAX)));
}

/// Nanoseconds since the epoch of a `google.protobuf.Timestamp`.
fn timestamp_nanos(m: &DynamicMessage) -> Result<i64, String> {
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
    fn scalar(s: Scalar) -> Col {
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

    fn new(plan: &Plan) -> Col {
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
    fn fallible(&self) -> bool {
        match self {
            Col::Timestamp(_) => true,
            Col::Struct(s) => s.fallible,
            Col::List(l) => l.child.fallible(),
            Col::Map(m) => m.value.fallible(),
            _ => false,
        }
    }

    /// Upper bound of the Arrow bytes produced per input byte, for the batch-size guard.
    fn expansion(&self) -> usize {
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

    fn append_null(&mut self) {
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
    fn append_field(&mut self, msg: &DynamicMessage, fd: &FieldDescriptor) {
        if fd.supports_presence() && !msg.has_field(fd) {
            self.append_null();
        } else {
            self.append(&msg.get_field(fd));
        }
    }

    /// Appends one value. The value always matches the column (both come from the same
    /// descriptor); a mismatch would append null rather than panic.
    fn append(&mut self, v: &Value) {
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

    fn append_key(&mut self, k: &MapKey) {
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
    fn check(&self, v: &Value) -> Result<(), PathError> {
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

    fn finish(&mut self) -> ArrayRef {
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
            let fd = desc.get_field_by_name(f.name()).ok_or_else(|| {
                format!(
                    "column '{}': message {} has no field of that name",
                    f.name(),
                    desc.full_name()
                )
            })?;
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

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

enum IntCol {
    I8(PrimitiveArray<Int8Type>),
    I16(PrimitiveArray<Int16Type>),
    I32(PrimitiveArray<Int32Type>),
    I64(PrimitiveArray<Int64Type>),
    U8(PrimitiveArray<UInt8Type>),
    U16(PrimitiveArray<UInt16Type>),
    U32(PrimitiveArray<UInt32Type>),
    U64(PrimitiveArray<UInt64Type>),
}

impl IntCol {
    fn new(a: &ArrayRef) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Int8 => Self::I8(a.as_primitive_opt()?.clone()),
            DataType::Int16 => Self::I16(a.as_primitive_opt()?.clone()),
            DataType::Int32 => Self::I32(a.as_primitive_opt()?.clone()),
            DataType::Int64 => Self::I64(a.as_primitive_opt()?.clone()),
            DataType::UInt8 => Self::U8(a.as_primitive_opt()?.clone()),
            DataType::UInt16 => Self::U16(a.as_primitive_opt()?.clone()),
            DataType::UInt32 => Self::U32(a.as_primitive_opt()?.clone()),
            DataType::UInt64 => Self::U64(a.as_primitive_opt()?.clone()),
            _ => return None,
        })
    }

    fn get(&self, i: usize) -> i128 {
        match self {
            Self::I8(a) => a.value(i).into(),
            Self::I16(a) => a.value(i).into(),
            Self::I32(a) => a.value(i).into(),
            Self::I64(a) => a.value(i).into(),
            Self::U8(a) => a.value(i).into(),
            Self::U16(a) => a.value(i).into(),
            Self::U32(a) => a.value(i).into(),
            Self::U64(a) => a.value(i).into(),
        }
    }
}

enum FloatCol {
    F16(PrimitiveArray<Float16Type>),
    F32(PrimitiveArray<Float32Type>),
    F64(PrimitiveArray<Float64Type>),
}

impl FloatCol {
    fn new(a: &ArrayRef) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Float16 => Self::F16(a.as_primitive_opt()?.clone()),
            DataType::Float32 => Self::F32(a.as_primitive_opt()?.clone()),
            DataType::Float64 => Self::F64(a.as_primitive_opt()?.clone()),
            _ => return None,
        })
    }

    fn get(&self, i: usize) -> f64 {
        match self {
            Self::F16(a) => a.value(i).to_f64(),
            Self::F32(a) => a.value(i).into(),
            Self::F64(a) => a.value(i),
        }
    }
}

enum StrCol {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

impl StrCol {
    fn new(a: &ArrayRef) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Utf8 => Self::Utf8(a.as_string_opt()?.clone()),
            DataType::LargeUtf8 => Self::Large(a.as_string_opt()?.clone()),
            DataType::Utf8View => Self::View(a.as_string_view_opt()?.clone()),
            _ => return None,
        })
    }

    fn get(&self, i: usize) -> &str {
        match self {
            Self::Utf8(a) => a.value(i),
            Self::Large(a) => a.value(i),
            Self::View(a) => a.value(i),
        }
    }
}

enum BinCol {
    Bin(BinaryArray),
    Large(LargeBinaryArray),
    View(BinaryViewArray),
    Fixed(FixedSizeBinaryArray),
    Str(StrCol),
}

impl BinCol {
    fn new(a: &ArrayRef) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Binary => Self::Bin(a.as_binary_opt()?.clone()),
            DataType::LargeBinary => Self::Large(a.as_binary_opt()?.clone()),
            DataType::BinaryView => Self::View(a.as_binary_view_opt()?.clone()),
            DataType::FixedSizeBinary(_) => Self::Fixed(a.as_fixed_size_binary_opt()?.clone()),
            _ => Self::Str(StrCol::new(a)?),
        })
    }

    fn get(&self, i: usize) -> &[u8] {
        match self {
            Self::Bin(a) => a.value(i),
            Self::Large(a) => a.value(i),
            Self::View(a) => a.value(i),
            Self::Fixed(a) => a.value(i),
            Self::Str(s) => s.get(i).as_bytes(),
        }
    }
}

enum Offsets {
    I32(OffsetBuffer<i32>),
    I64(OffsetBuffer<i64>),
}

impl Offsets {
    fn range(&self, row: usize) -> std::ops::Range<usize> {
        fn at<T: Copy + TryInto<usize>>(o: &[T], i: usize) -> usize {
            o.get(i).and_then(|v| (*v).try_into().ok()).unwrap_or(0)
        }
        let (start, end) = match self {
            Offsets::I32(o) => (at(o, row), at(o, row + 1)),
            Offsets::I64(o) => (at(o, row), at(o, row + 1)),
        };
        start..end.max(start)
    }
}

/// Reads protobuf values out of one Arrow array, following a [`Plan`].
struct Enc {
    nulls: Option<NullBuffer>,
    kind: EncKind,
}

enum EncKind {
    /// `DataType::Null`: every value absent.
    Null,
    Int(IntCol, Scalar),
    Float(FloatCol, Scalar),
    Bool(BooleanArray),
    Str(StrCol),
    Bytes(BinCol),
    EnumName(StrCol, EnumDescriptor),
    EnumNumber(IntCol),
    Timestamp(ScalarBuffer<i64>, i64, MessageDescriptor),
    Wrapper(Box<Enc>, MessageDescriptor, FieldDescriptor),
    Message(MessageDescriptor, Vec<(FieldDescriptor, Enc)>),
    Opaque(BinCol, MessageDescriptor),
    List(Offsets, Box<Enc>),
    Map(Offsets, Box<Enc>, Box<Enc>, FieldDescriptor),
}

fn scalar_enc(s: Scalar, a: &ArrayRef) -> Option<EncKind> {
    Some(match s {
        Scalar::I32 | Scalar::I64 | Scalar::U32 | Scalar::U64 => EncKind::Int(IntCol::new(a)?, s),
        Scalar::F32 | Scalar::F64 => EncKind::Float(FloatCol::new(a)?, s),
        Scalar::Bool => EncKind::Bool(a.as_boolean_opt()?.clone()),
        Scalar::Str => EncKind::Str(StrCol::new(a)?),
        Scalar::Bytes => EncKind::Bytes(BinCol::new(a)?),
    })
}

fn timestamp_values(a: &ArrayRef) -> Option<(ScalarBuffer<i64>, i64)> {
    Some(match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => (
            a.as_primitive_opt::<TimestampSecondType>()?
                .values()
                .clone(),
            1,
        ),
        DataType::Timestamp(TimeUnit::Millisecond, _) => (
            a.as_primitive_opt::<TimestampMillisecondType>()?
                .values()
                .clone(),
            1_000,
        ),
        DataType::Timestamp(TimeUnit::Microsecond, _) => (
            a.as_primitive_opt::<TimestampMicrosecondType>()?
                .values()
                .clone(),
            1_000_000,
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => (
            a.as_primitive_opt::<TimestampNanosecondType>()?
                .values()
                .clone(),
            1_000_000_000,
        ),
        _ => return None,
    })
}

fn int_value(v: i128, s: Scalar) -> Result<Value, String> {
    let out = match s {
        Scalar::I32 => i32::try_from(v).ok().map(Value::I32),
        Scalar::I64 => i64::try_from(v).ok().map(Value::I64),
        Scalar::U32 => u32::try_from(v).ok().map(Value::U32),
        Scalar::U64 => u64::try_from(v).ok().map(Value::U64),
        _ => None,
    };
    out.ok_or_else(|| format!("value {v} does not fit in {}", s.proto_name()))
}

fn new_message_with(
    desc: &MessageDescriptor,
    fields: impl IntoIterator<Item = (u32, Value)>,
) -> Result<DynamicMessage, String> {
    let mut m = DynamicMessage::new(desc.clone());
    for (number, value) in fields {
        m.try_set_field_by_number(number, value)
            .map_err(|e| format!("cannot build {}: {e}", desc.full_name()))?;
    }
    Ok(m)
}

impl Enc {
    fn new(plan: &Plan, array: &ArrayRef) -> Result<Enc, PathError> {
        let array = match array.data_type() {
            DataType::Dictionary(_, value_type) => arrow::compute::cast(array, value_type)
                .map_err(|e| PathError::new(format!("cannot unpack dictionary: {e}")))?,
            _ => array.clone(),
        };
        let nulls = array.logical_nulls();
        let mismatch = || {
            PathError::new(format!(
                "Arrow type {} cannot be encoded as {}",
                array.data_type(),
                plan.describe()
            ))
        };
        if array.data_type() == &DataType::Null {
            return Ok(Enc {
                nulls,
                kind: EncKind::Null,
            });
        }
        let kind = match plan {
            Plan::Scalar(s) => scalar_enc(*s, &array).ok_or_else(mismatch)?,
            Plan::Enum(e) => {
                if let Some(c) = StrCol::new(&array) {
                    EncKind::EnumName(c, e.clone())
                } else if let Some(c) = IntCol::new(&array) {
                    EncKind::EnumNumber(c)
                } else {
                    return Err(mismatch());
                }
            }
            Plan::Timestamp(desc) => {
                let (values, per_sec) = timestamp_values(&array).ok_or_else(mismatch)?;
                EncKind::Timestamp(values, per_sec, desc.clone())
            }
            Plan::Wrapper {
                desc,
                value,
                scalar,
            } => {
                let inner = scalar_enc(*scalar, &array).ok_or_else(mismatch)?;
                EncKind::Wrapper(
                    Box::new(Enc {
                        nulls: None,
                        kind: inner,
                    }),
                    desc.clone(),
                    value.clone(),
                )
            }
            Plan::Message { desc, fields, .. } => {
                let s = array.as_struct_opt().ok_or_else(mismatch)?;
                let mut children = Vec::with_capacity(s.num_columns());
                for (f, child) in s.fields().iter().zip(s.columns()) {
                    let Some((fd, p)) = fields.iter().find(|(fd, _)| fd.name() == f.name()) else {
                        return Err(PathError::new(format!(
                            "message {} has no field of that name",
                            desc.full_name()
                        ))
                        .at(f.name()));
                    };
                    let enc = Enc::new(p, child).map_err(|e| e.at(f.name()))?;
                    children.push((fd.clone(), enc));
                }
                EncKind::Message(desc.clone(), children)
            }
            Plan::Opaque(desc) => {
                EncKind::Opaque(BinCol::new(&array).ok_or_else(mismatch)?, desc.clone())
            }
            Plan::List { elem, .. } => {
                let (offsets, values) = if let Some(l) = array.as_list_opt::<i32>() {
                    (Offsets::I32(l.offsets().clone()), l.values())
                } else if let Some(l) = array.as_list_opt::<i64>() {
                    (Offsets::I64(l.offsets().clone()), l.values())
                } else {
                    return Err(mismatch());
                };
                let child = Enc::new(elem, values).map_err(|e| e.at("[]"))?;
                EncKind::List(offsets, Box::new(child))
            }
            Plan::Map {
                key,
                value,
                value_field,
                ..
            } => {
                let m = array.as_map_opt().ok_or_else(mismatch)?;
                let k = Enc::new(key, m.keys()).map_err(|e| e.at("[key]"))?;
                let v = Enc::new(value, m.values()).map_err(|e| e.at("[value]"))?;
                EncKind::Map(
                    Offsets::I32(m.offsets().clone()),
                    Box::new(k),
                    Box::new(v),
                    value_field.clone(),
                )
            }
        };
        Ok(Enc { nulls, kind })
    }

    /// The protobuf value at index `i`, `None` if null.
    fn value(&self, i: usize) -> Result<Option<Value>, PathError> {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            return Ok(None);
        }
        let v = match &self.kind {
            EncKind::Null => return Ok(None),
            EncKind::Int(c, s) => int_value(c.get(i), *s).map_err(PathError::new)?,
            EncKind::Float(c, s) => {
                let v = c.get(i);
                if *s == Scalar::F32 {
                    Value::F32(v as f32)
                } else {
                    Value::F64(v)
                }
            }
            EncKind::Bool(a) => Value::Bool(a.value(i)),
            EncKind::Str(c) => Value::String(c.get(i).to_owned()),
            EncKind::Bytes(c) => Value::Bytes(Bytes::copy_from_slice(c.get(i))),
            EncKind::EnumName(c, e) => {
                let s = c.get(i);
                let number = match e.get_value_by_name(s) {
                    Some(ev) => ev.number(),
                    None => s.trim().parse::<i32>().map_err(|_| {
                        PathError::new(format!("'{s}' is not a value of enum {}", e.full_name()))
                    })?,
                };
                Value::EnumNumber(number)
            }
            EncKind::EnumNumber(c) => {
                let n = c.get(i);
                Value::EnumNumber(i32::try_from(n).map_err(|_| {
                    PathError::new(format!("enum number {n} does not fit in int32"))
                })?)
            }
            EncKind::Timestamp(values, per_sec, desc) => {
                let raw = values.get(i).copied().unwrap_or(0);
                let secs = raw.div_euclid(*per_sec);
                let frac = raw.rem_euclid(*per_sec) * (1_000_000_000 / *per_sec);
                let nanos = i32::try_from(frac).unwrap_or(0);
                let m = new_message_with(desc, [(1, Value::I64(secs)), (2, Value::I32(nanos))])
                    .map_err(PathError::new)?;
                Value::Message(m)
            }
            EncKind::Wrapper(inner, desc, fd) => match inner.value(i)? {
                None => return Ok(None),
                Some(v) => Value::Message(
                    new_message_with(desc, [(fd.number(), v)]).map_err(PathError::new)?,
                ),
            },
            EncKind::Message(desc, fields) => {
                let mut m = DynamicMessage::new(desc.clone());
                set_fields(&mut m, fields, i)?;
                Value::Message(m)
            }
            EncKind::Opaque(c, desc) => {
                let m = DynamicMessage::decode(desc.clone(), c.get(i)).map_err(|e| {
                    PathError::new(format!(
                        "bytes are not a valid {} message: {e}",
                        desc.full_name()
                    ))
                })?;
                Value::Message(m)
            }
            EncKind::List(offsets, child) => {
                let range = offsets.range(i);
                let mut items = Vec::with_capacity(range.len());
                for (n, j) in range.enumerate() {
                    let item = child.value(j).map_err(|e| e.at(format!("[{n}]")))?;
                    items.push(item.ok_or_else(|| {
                        PathError::new("repeated field cannot hold null elements")
                            .at(format!("[{n}]"))
                    })?);
                }
                Value::List(items)
            }
            EncKind::Map(offsets, keys, values, value_field) => {
                let range = offsets.range(i);
                let mut map = HashMap::with_capacity(range.len());
                for j in range {
                    let key = keys
                        .value(j)?
                        .and_then(Value::into_map_key)
                        .ok_or_else(|| PathError::new("map key is null"))?;
                    let value = match values.value(j).map_err(|e| e.at(format!("[{key:?}]")))? {
                        Some(v) => v,
                        None => Value::default_value_for_field(value_field),
                    };
                    map.insert(key, value);
                }
                Value::Map(map)
            }
        };
        Ok(Some(v))
    }
}

/// Sets the non-null fields of row `row` on `msg`.
fn set_fields(
    msg: &mut DynamicMessage,
    fields: &[(FieldDescriptor, Enc)],
    row: usize,
) -> Result<(), PathError> {
    for (fd, enc) in fields {
        let Some(v) = enc.value(row).map_err(|e| e.at(fd.name()))? else {
            continue;
        };
        if let Some(oneof) = fd.containing_oneof()
            && let Some(other) = oneof
                .fields()
                .find(|o| o.number() != fd.number() && msg.has_field(o))
        {
            return Err(PathError::new(format!(
                "oneof '{}' already has '{}' set; at most one member may be non-null",
                oneof.name(),
                other.name()
            ))
            .at(fd.name()));
        }
        msg.try_set_field(fd, v)
            .map_err(|e| PathError::new(e.to_string()).at(fd.name()))?;
    }
    Ok(())
}

/// Encodes each row of `batch` as one protobuf message of type `desc` (row `r` -> element `r`).
///
/// The batch's columns are matched to message fields by name (any subset, any order); nested
/// structs likewise may hold a subset of the sub-message's fields. Null values leave fields
/// unset. Besides the types [`message_fields`] produces, compatible types are accepted: any
/// integer type for integer fields (the value must fit), `Float16/32/64` for `float`/`double`,
/// `LargeUtf8`/`Utf8View` for strings, `LargeBinary`/`BinaryView`/`FixedSizeBinary`/strings for
/// bytes, strings (name or decimal number) or integers for enums, timestamps of any unit or time
/// zone for `Timestamp`, `LargeList` for repeated fields, dictionary-encoded arrays of any of
/// these, and `Null` arrays. Errors name the row, column and problem.
pub fn encode_rows(desc: &MessageDescriptor, batch: &RecordBatch) -> Result<Vec<Vec<u8>>, String> {
    let schema = batch.schema();
    let mut columns: Vec<(FieldDescriptor, Enc)> = Vec::with_capacity(batch.num_columns());
    for (f, array) in schema.fields().iter().zip(batch.columns()) {
        let fd = desc.get_field_by_name(f.name()).ok_or_else(|| {
            format!(
                "column '{}': message {} has no field of that name",
                f.name(),
                desc.full_name()
            )
        })?;
        if columns.iter().any(|(c, _)| c.number() == fd.number()) {
            return Err(format!("column '{}' appears more than once", f.name()));
        }
        let plan = Planner::new(desc)
            .field(&fd)
            .map_err(|e| format!("column '{}': {e}", f.name()))?;
        let enc = Enc::new(&plan, array).map_err(|e| e.at(f.name()).render())?;
        columns.push((fd, enc));
    }
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut msg = DynamicMessage::new(desc.clone());
        set_fields(&mut msg, &columns, row).map_err(|e| format!("row {row}, {}", e.render()))?;
        out.push(msg.encode_to_vec());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryArray, DictionaryArray, Int8Array, Int32Array, Int64Array, LargeListArray,
        LargeStringArray, StringViewArray, TimestampMillisecondArray, TimestampNanosecondArray,
        UInt8Array, UInt64Array,
    };
    use arrow::datatypes::Schema;
    use prost::encoding::{WireType, encode_key, encode_varint};
    use prost_reflect::DescriptorPool;
    use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
    use std::time::{Duration, Instant};

    struct Inline(String);

    impl FileResolver for Inline {
        fn open_file(&self, name: &str) -> Result<File, protox::Error> {
            if name == "test.proto" {
                File::from_source(name, &self.0)
            } else {
                Err(protox::Error::file_not_found(name))
            }
        }
    }

    fn compile(src: &str) -> DescriptorPool {
        let mut chain = ChainFileResolver::new();
        chain.add(Inline(src.to_owned()));
        chain.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(chain);
        compiler.open_file("test.proto").unwrap();
        compiler.descriptor_pool()
    }

    const PROTO: &str = r#"
        syntax = "proto3";
        package t;
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";

        enum Color { COLOR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }

        message Inner { string name = 1; int32 n = 2; }

        message All {
          string first_declared = 40;
          int32 i32 = 1;
          sint32 s32 = 2;
          sfixed32 sf32 = 3;
          int64 i64 = 4;
          sint64 s64 = 5;
          sfixed64 sf64 = 6;
          uint32 u32 = 7;
          fixed32 fx32 = 8;
          uint64 u64 = 9;
          fixed64 fx64 = 10;
          float fl = 11;
          double db = 12;
          bool b = 13;
          string s = 14;
          bytes by = 15;
          Color color = 16;
          Inner inner = 17;
          repeated int32 nums = 18;
          repeated Inner inners = 19;
          map<string, int64> counts = 20;
          oneof choice {
            string text = 21;
            int64 number = 22;
            Inner nested = 23;
          }
          optional int32 maybe = 24;
          google.protobuf.Timestamp ts = 25;
          google.protobuf.Int64Value wrapped = 26;
          google.protobuf.StringValue wrapped_s = 27;
          repeated Color colors = 28;
          map<int32, Inner> by_id = 29;
          repeated google.protobuf.Timestamp stamps = 30;
        }

        message Node {
          string label = 1;
          Node left = 2;
          Node right = 3;
          repeated Node children = 4;
        }

        message A { B b = 1; }
        message B { A a = 1; int32 x = 2; }
    "#;

    const FULL_ROW: &str = r#"
        first_declared: "fd"
        i32: -5 s32: -6 sf32: -7 i64: -8000000000 s64: -9 sf64: -10
        u32: 4000000000 fx32: 12 u64: 18000000000000000000 fx64: 14
        fl: 1.5 db: -2.25 b: true s: "héllo" by: "\x00\x01\xff"
        color: GREEN
        inner { name: "in" n: 3 }
        nums: [1, 2, 3]
        inners { name: "a" n: 1 } inners { name: "b" }
        counts { key: "c" value: 3 } counts { key: "a" value: 1 } counts { key: "b" value: -2 }
        nested { name: "nest" }
        maybe: 0
        ts { seconds: 1700000000 nanos: 123456789 }
        wrapped { value: 0 }
        wrapped_s { value: "w" }
        colors: [RED, GREEN]
        by_id { key: 7 value { name: "seven" } }
        stamps { seconds: -1 nanos: 500 } stamps {}
    "#;

    fn pool() -> DescriptorPool {
        compile(PROTO)
    }

    fn desc(pool: &DescriptorPool, name: &str) -> MessageDescriptor {
        pool.get_message_by_name(name).unwrap()
    }

    fn parse(desc: &MessageDescriptor, text: &str) -> DynamicMessage {
        let m = DynamicMessage::parse_text_format(desc.clone(), text).unwrap();
        // Normalize through the wire format so equality ignores representation details.
        DynamicMessage::decode(desc.clone(), m.encode_to_vec().as_slice()).unwrap()
    }

    fn full_schema(desc: &MessageDescriptor) -> SchemaRef {
        Arc::new(Schema::new(message_fields(desc).unwrap()))
    }

    fn decode_all(desc: &MessageDescriptor, rows: &[Option<Vec<u8>>]) -> RecordBatch {
        let schema = full_schema(desc);
        let mut dec = ProtoDecoder::try_new(desc.clone(), schema.clone()).unwrap();
        for r in rows {
            dec.append(r.as_deref()).unwrap();
        }
        assert_eq!(dec.len(), rows.len());
        let cols = dec.finish();
        assert_eq!(dec.len(), 0);
        RecordBatch::try_new(schema, cols).unwrap()
    }

    fn col<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
        batch.column_by_name(name).unwrap()
    }

    fn strings(a: &dyn Array) -> Vec<Option<String>> {
        a.as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect()
    }

    #[test]
    fn schema_mapping_and_declaration_order() {
        let pool = pool();
        let all = desc(&pool, "t.All");
        let fields = message_fields(&all).unwrap();
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(&names[..3], ["first_declared", "i32", "s32"]);
        assert_eq!(names.len(), 31);
        assert!(fields.iter().all(|f| f.is_nullable()));
        let ty = |n: &str| fields.find(n).unwrap().1.data_type().clone();
        assert_eq!(ty("sf32"), DataType::Int32);
        assert_eq!(ty("s64"), DataType::Int64);
        assert_eq!(ty("fx32"), DataType::UInt32);
        assert_eq!(ty("fx64"), DataType::UInt64);
        assert_eq!(ty("fl"), DataType::Float32);
        assert_eq!(ty("db"), DataType::Float64);
        assert_eq!(ty("b"), DataType::Boolean);
        assert_eq!(ty("by"), DataType::Binary);
        assert_eq!(ty("color"), DataType::Utf8);
        assert_eq!(ty("wrapped"), DataType::Int64);
        assert_eq!(ty("wrapped_s"), DataType::Utf8);
        assert_eq!(ty("ts"), timestamp_data_type());
        assert_eq!(
            ty("inner"),
            DataType::Struct(Fields::from(vec![
                Field::new("name", DataType::Utf8, true),
                Field::new("n", DataType::Int32, true),
            ]))
        );
        assert_eq!(
            ty("nums"),
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
        );
        let DataType::Map(entries, false) = ty("counts") else {
            panic!("counts is not an unsorted map")
        };
        assert_eq!(
            entries.data_type(),
            &DataType::Struct(map_entry_fields(DataType::Utf8, DataType::Int64))
        );
        assert!(!entries.is_nullable());
        for member in ["text", "number", "nested"] {
            assert!(names.contains(&member));
        }
    }

    #[test]
    fn round_trip_all_types() {
        let pool = pool();
        let all = desc(&pool, "t.All");
        let full = parse(&all, FULL_ROW);
        let empty = DynamicMessage::new(all.clone());
        let mut third = parse(&all, r#"number: 42 s: "third""#);
        third.set_field_by_name("color", Value::EnumNumber(99));
        let originals = [full, empty, third];
        let rows: Vec<Option<Vec<u8>>> =
            originals.iter().map(|m| Some(m.encode_to_vec())).collect();
        let batch = decode_all(&all, &rows);
        assert_eq!(batch.num_rows(), 3);

        // Scalars; proto3 implicit fields read as defaults when absent.
        assert_eq!(
            strings(col(&batch, "first_declared")),
            [Some("fd".into()), Some("".into()), Some("".into())]
        );
        let i32s = col(&batch, "i32").as_primitive::<Int32Type>();
        assert_eq!(
            i32s.iter().collect::<Vec<_>>(),
            [Some(-5), Some(0), Some(0)]
        );
        assert_eq!(col(&batch, "s32").as_primitive::<Int32Type>().value(0), -6);
        assert_eq!(col(&batch, "sf32").as_primitive::<Int32Type>().value(0), -7);
        assert_eq!(
            col(&batch, "i64").as_primitive::<Int64Type>().value(0),
            -8_000_000_000
        );
        assert_eq!(col(&batch, "s64").as_primitive::<Int64Type>().value(0), -9);
        assert_eq!(
            col(&batch, "sf64").as_primitive::<Int64Type>().value(0),
            -10
        );
        assert_eq!(
            col(&batch, "u32").as_primitive::<UInt32Type>().value(0),
            4_000_000_000
        );
        assert_eq!(
            col(&batch, "fx32").as_primitive::<UInt32Type>().value(0),
            12
        );
        assert_eq!(
            col(&batch, "u64").as_primitive::<UInt64Type>().value(0),
            18_000_000_000_000_000_000
        );
        assert_eq!(
            col(&batch, "fx64").as_primitive::<UInt64Type>().value(0),
            14
        );
        assert_eq!(
            col(&batch, "fl").as_primitive::<Float32Type>().value(0),
            1.5
        );
        assert_eq!(
            col(&batch, "db").as_primitive::<Float64Type>().value(0),
            -2.25
        );
        let bools = col(&batch, "b").as_boolean();
        assert!(bools.value(0) && !bools.value(1) && bools.is_valid(1));
        assert_eq!(col(&batch, "s").as_string::<i32>().value(0), "héllo");
        assert_eq!(
            col(&batch, "by").as_binary::<i32>().value(0),
            b"\x00\x01\xff"
        );

        // Enums: name, default name, unknown number as text.
        assert_eq!(
            strings(col(&batch, "color")),
            [
                Some("GREEN".into()),
                Some("COLOR_UNSPECIFIED".into()),
                Some("99".into())
            ]
        );

        // Nested message: present vs absent.
        let inner = col(&batch, "inner").as_struct();
        assert!(inner.is_valid(0) && inner.is_null(1) && inner.is_null(2));
        assert_eq!(
            inner
                .column_by_name("name")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "in"
        );
        assert_eq!(
            inner
                .column_by_name("n")
                .unwrap()
                .as_primitive::<Int32Type>()
                .value(0),
            3
        );

        // Repeated scalar and repeated message; absent repeated = empty, not null.
        let nums = col(&batch, "nums").as_list::<i32>();
        assert!(nums.is_valid(1) && nums.value_length(1) == 0);
        let first: Vec<_> = nums.value(0).as_primitive::<Int32Type>().iter().collect();
        assert_eq!(first, [Some(1), Some(2), Some(3)]);
        let inners = col(&batch, "inners").as_list::<i32>();
        let items = inners.value(0);
        let items = items.as_struct();
        assert_eq!(
            strings(items.column(0).as_ref()),
            [Some("a".into()), Some("b".into())]
        );
        assert_eq!(
            items
                .column(1)
                .as_primitive::<Int32Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(1), Some(0)]
        );

        // Map entries come out sorted by key.
        let counts = col(&batch, "counts").as_map();
        let e = counts.value(0);
        assert_eq!(
            strings(e.column(0).as_ref()),
            [Some("a".into()), Some("b".into()), Some("c".into())]
        );
        assert_eq!(
            e.column(1)
                .as_primitive::<Int64Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(1), Some(-2), Some(3)]
        );
        assert_eq!(counts.value_length(1), 0);
        let by_id = col(&batch, "by_id").as_map();
        assert_eq!(
            by_id
                .value(0)
                .column(0)
                .as_primitive::<Int32Type>()
                .value(0),
            7
        );

        // Oneof: only the set member is non-null.
        let text = col(&batch, "text");
        let number = col(&batch, "number").as_primitive::<Int64Type>();
        let nested = col(&batch, "nested");
        assert!(text.is_null(0) && number.is_null(0) && nested.is_valid(0));
        assert!(text.is_null(1) && number.is_null(1) && nested.is_null(1));
        assert!(text.is_null(2) && nested.is_null(2) && number.value(2) == 42);

        // proto3 `optional`: present with default value vs absent.
        let maybe = col(&batch, "maybe").as_primitive::<Int32Type>();
        assert_eq!(maybe.iter().collect::<Vec<_>>(), [Some(0), None, None]);

        // Timestamp and wrappers.
        let ts = col(&batch, "ts").as_primitive::<TimestampNanosecondType>();
        assert_eq!(
            ts.iter().collect::<Vec<_>>(),
            [Some(1_700_000_000_123_456_789), None, None]
        );
        let wrapped = col(&batch, "wrapped").as_primitive::<Int64Type>();
        assert_eq!(wrapped.iter().collect::<Vec<_>>(), [Some(0), None, None]);
        assert_eq!(
            strings(col(&batch, "wrapped_s")),
            [Some("w".into()), None, None]
        );
        let stamps = col(&batch, "stamps").as_list::<i32>();
        let s0: Vec<_> = stamps
            .value(0)
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .collect();
        assert_eq!(s0, [Some(-999_999_500), Some(0)]);
        let colors = col(&batch, "colors").as_list::<i32>();
        assert_eq!(
            strings(colors.value(0).as_ref()),
            [Some("RED".into()), Some("GREEN".into())]
        );

        // And back: every row re-encodes to an equal message.
        let encoded = encode_rows(&all, &batch).unwrap();
        assert_eq!(encoded.len(), 3);
        for (bytes, original) in encoded.iter().zip(&originals) {
            let back = DynamicMessage::decode(all.clone(), bytes.as_slice()).unwrap();
            assert_eq!(&back, original);
        }
        // The wrapper in row 0 is present but holds the default 0 (nothing on the wire
        // inside it); the non-null Some(0) above therefore really comes from message presence.
        assert!(
            !originals[0]
                .get_field_by_name("wrapped")
                .unwrap()
                .as_message()
                .unwrap()
                .fields()
                .any(|_| true)
        );
    }

    #[test]
    fn projection_subset_in_other_order() {
        let pool = pool();
        let all = desc(&pool, "t.All");
        let fields = message_fields(&all).unwrap();
        let pick = |n: &str| fields.find(n).unwrap().1.clone();
        let projected = Arc::new(Schema::new(vec![
            pick("ts"),
            pick("s"),
            pick("i32"),
            pick("inner"),
        ]));
        let mut dec = ProtoDecoder::try_new(all.clone(), projected.clone()).unwrap();
        dec.append(Some(&parse(&all, FULL_ROW).encode_to_vec()))
            .unwrap();
        let cols = dec.finish();
        assert_eq!(cols.len(), 4);
        let batch = RecordBatch::try_new(projected, cols).unwrap();
        assert_eq!(
            batch
                .column(0)
                .as_primitive::<TimestampNanosecondType>()
                .value(0),
            1_700_000_000_123_456_789
        );
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "héllo");
        assert_eq!(batch.column(2).as_primitive::<Int32Type>().value(0), -5);
        assert_eq!(batch.column(3).as_struct().num_columns(), 2);

        // Encoding a projected batch sets only those fields.
        let bytes = encode_rows(&all, &batch).unwrap();
        let back = DynamicMessage::decode(all.clone(), bytes[0].as_slice()).unwrap();
        assert_eq!(back.get_field_by_name("i32").unwrap().as_i32(), Some(-5));
        assert!(!back.has_field_by_name("nums") && !back.has_field_by_name("wrapped"));

        let bad_name = Arc::new(Schema::new(vec![Field::new("nope", DataType::Int32, true)]));
        let err = ProtoDecoder::try_new(all.clone(), bad_name).unwrap_err();
        assert!(err.contains("nope"), "{err}");
        let bad_type = Arc::new(Schema::new(vec![Field::new("i32", DataType::Int64, true)]));
        let err = ProtoDecoder::try_new(all.clone(), bad_type).unwrap_err();
        assert!(err.contains("i32") && err.contains("Int64"), "{err}");
    }

    #[test]
    fn tombstone_row_is_null_everywhere() {
        let pool = pool();
        let all = desc(&pool, "t.All");
        let good = parse(&all, FULL_ROW).encode_to_vec();
        let batch = decode_all(&all, &[Some(good), None]);
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            assert!(
                c.is_null(1),
                "column {} not null in tombstone row",
                f.name()
            );
            assert!(c.is_valid(0) || ["text", "number", "maybe"].contains(&f.name().as_str()));
        }
        // An all-null row encodes to the empty message.
        let encoded = encode_rows(&all, &batch).unwrap();
        assert!(encoded[1].is_empty());
    }

    fn varint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(v, &mut out);
        out
    }

    #[test]
    fn malformed_input_is_rejected_and_builders_stay_aligned() {
        let pool = pool();
        let all = desc(&pool, "t.All");
        let schema = full_schema(&all);
        let mut dec = ProtoDecoder::try_new(all.clone(), schema.clone()).unwrap();
        let good = parse(&all, FULL_ROW).encode_to_vec();
        dec.append(Some(&good)).unwrap();

        let mut huge_len = vec![0x72];
        huge_len.extend(varint(u64::MAX >> 1));
        let bad: Vec<(&str, Vec<u8>)> = vec![
            ("truncated string", vec![0x72, 0x05, b'a', b'b']),
            ("truncated full message", good[..good.len() - 1].to_vec()),
            ("unterminated varint", vec![0x08, 0x80]),
            (
                "overlong varint",
                [&[0x08][..], &[0xff; 10], &[0x01]].concat(),
            ),
            ("message field as varint", vec![0x88, 0x01, 0x05]),
            ("int32 as fixed32", vec![0x0d, 1, 2, 3, 4]),
            ("length beyond buffer", huge_len),
            ("stray end group", vec![0x0c]),
            ("field number zero", vec![0x00, 0x01]),
            ("invalid utf-8", vec![0x72, 0x02, 0xff, 0xfe]),
            ("broken map entry", vec![0xa2, 0x01, 0x02, 0x0a, 0x05]),
            ("truncated submessage", vec![0x8a, 0x01, 0x05, 0x0a]),
        ];
        for (what, bytes) in &bad {
            let before = dec.len();
            let res = dec.append(Some(bytes));
            assert!(res.is_err(), "{what} was accepted");
            assert_eq!(dec.len(), before, "{what} appended a row");
        }

        // Unknown fields are ignored.
        let mut with_unknown = parse(&all, r#"i32: 77"#).encode_to_vec();
        encode_key(999, WireType::Varint, &mut with_unknown);
        encode_varint(5, &mut with_unknown);
        encode_key(998, WireType::LengthDelimited, &mut with_unknown);
        encode_varint(3, &mut with_unknown);
        with_unknown.extend(b"xyz");
        dec.append(Some(&with_unknown)).unwrap();

        let cols = dec.finish();
        for c in &cols {
            assert_eq!(c.len(), 2);
        }
        let batch = RecordBatch::try_new(schema, cols).unwrap();
        let i32s = col(&batch, "i32").as_primitive::<Int32Type>();
        assert_eq!(i32s.iter().collect::<Vec<_>>(), [Some(-5), Some(77)]);
        assert!(col(&batch, "inner").is_null(1));
    }

    #[test]
    fn out_of_range_timestamp_is_rejected_without_appending() {
        let pool = pool();
        let all = desc(&pool, "t.All");
        let schema = full_schema(&all);
        let mut dec = ProtoDecoder::try_new(all.clone(), schema).unwrap();
        let far = parse(
            &all,
            "stamps { seconds: 1 } stamps { seconds: 253402300799 } i32: 1",
        );
        let err = dec.append(Some(&far.encode_to_vec())).unwrap_err();
        assert!(err.contains("stamps[1]") && err.contains("range"), "{err}");
        assert_eq!(dec.len(), 0);
        dec.append(Some(&parse(&all, "ts { seconds: 5 }").encode_to_vec()))
            .unwrap();
        let cols = dec.finish();
        assert!(cols.iter().all(|c| c.len() == 1));
    }

    fn nested_nodes(levels: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..levels {
            let mut outer = vec![0x12]; // Node.left
            encode_varint(bytes.len() as u64, &mut outer);
            outer.extend_from_slice(&bytes);
            bytes = outer;
        }
        bytes
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let pool = pool();
        let node = desc(&pool, "t.Node");
        let mut dec = ProtoDecoder::try_new(node.clone(), full_schema(&node)).unwrap();
        assert!(dec.append(Some(&nested_nodes(1000))).is_err());
        assert_eq!(dec.len(), 0);
        dec.append(Some(&nested_nodes(50))).unwrap();
        let cols = dec.finish();
        assert!(cols.iter().all(|c| c.len() == 1));
        assert!(cols[1].is_valid(0)); // `left` as encoded bytes
    }

    #[test]
    fn recursive_types_terminate_and_round_trip() {
        let pool = pool();
        let node = desc(&pool, "t.Node");
        let fields = message_fields(&node).unwrap();
        assert_eq!(fields[1].data_type(), &DataType::Binary);
        assert_eq!(fields[2].data_type(), &DataType::Binary);
        assert_eq!(
            fields[3].data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Binary, true)))
        );

        // Mutual recursion: A.b expands once, B.a is cut.
        let a = desc(&pool, "t.A");
        let DataType::Struct(b) = message_fields(&a).unwrap()[0].data_type().clone() else {
            panic!("A.b is not a struct")
        };
        assert_eq!(b[0].data_type(), &DataType::Binary);
        assert_eq!(b[1].data_type(), &DataType::Int32);

        let tree = parse(
            &node,
            r#"label: "root" left { label: "l" left { label: "ll" } } children { label: "c1" }"#,
        );
        let batch = decode_all(&node, &[Some(tree.encode_to_vec())]);
        let left = col(&batch, "left").as_binary::<i32>().value(0);
        let left = DynamicMessage::decode(node.clone(), left).unwrap();
        assert_eq!(left.get_field_by_name("label").unwrap().as_str(), Some("l"));
        assert!(col(&batch, "right").is_null(0));
        let back = encode_rows(&node, &batch).unwrap();
        assert_eq!(
            DynamicMessage::decode(node.clone(), back[0].as_slice()).unwrap(),
            tree
        );

        // Invalid bytes in a Binary-mapped message column are an encode error.
        let bad = RecordBatch::try_from_iter(vec![(
            "left",
            Arc::new(BinaryArray::from(vec![&b"\xff"[..]])) as ArrayRef,
        )])
        .unwrap();
        let err = encode_rows(&node, &bad).unwrap_err();
        assert!(err.contains("left") && err.contains("t.Node"), "{err}");
    }

    #[test]
    fn depth_cap_and_schema_size_cap() {
        // A chain of 40 distinct nested types: levels past MAX_NESTING_DEPTH become Binary.
        let mut src = String::from("syntax = \"proto3\"; package d;\n");
        for i in 0..40 {
            src.push_str(&format!(
                "message M{i} {{ M{} next = 1; int32 v = 2; }}\n",
                i + 1
            ));
        }
        src.push_str("message M40 { int32 v = 1; }\n");
        let pool = compile(&src);
        let start = Instant::now();
        let fields = message_fields(&desc(&pool, "d.M0")).unwrap();
        let mut depth = 0;
        let mut ty = fields[0].data_type().clone();
        while let DataType::Struct(f) = ty {
            depth += 1;
            ty = f[0].data_type().clone();
        }
        assert_eq!(depth, MAX_NESTING_DEPTH - 1);
        assert_eq!(ty, DataType::Binary);

        // Exponentially branching (non-recursive) types are refused, quickly.
        let mut src = String::from("syntax = \"proto3\"; package e;\n");
        for i in 0..24 {
            src.push_str(&format!(
                "message D{i} {{ D{0} a = 1; D{0} b = 2; }}\n",
                i + 1
            ));
        }
        src.push_str("message D24 { int32 x = 1; }\n");
        let pool = compile(&src);
        let err = message_fields(&desc(&pool, "e.D0")).unwrap_err();
        assert!(err.contains("e.D") && err.contains("Arrow fields"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn proto2_presence() {
        let pool = compile(
            r#"syntax = "proto2"; package p;
               message P { optional int32 a = 1; optional int32 d = 3 [default = 7];
                           optional string s = 4; repeated int32 r = 5; }"#,
        );
        let p = desc(&pool, "p.P");
        let rows = [
            Some(parse(&p, "").encode_to_vec()),
            Some(parse(&p, "a: 0 d: 7").encode_to_vec()),
        ];
        let batch = decode_all(&p, &rows);
        let a = col(&batch, "a").as_primitive::<Int32Type>();
        let d = col(&batch, "d").as_primitive::<Int32Type>();
        assert_eq!(a.iter().collect::<Vec<_>>(), [None, Some(0)]);
        assert_eq!(d.iter().collect::<Vec<_>>(), [None, Some(7)]);
        assert!(col(&batch, "s").is_null(0));
        assert!(col(&batch, "r").is_valid(0));
    }

    #[test]
    fn encode_accepts_compatible_types() {
        let pool = pool();
        let all = desc(&pool, "t.All");
        let inner = StructArray::try_new(
            Fields::from(vec![Field::new("n", DataType::Int8, true)]),
            vec![Arc::new(Int8Array::from(vec![4, 0])) as ArrayRef],
            Some(NullBuffer::from(vec![true, false])),
        )
        .unwrap();
        let nums = LargeListArray::from_iter_primitive::<Int16Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![]),
        ]);
        let text: DictionaryArray<Int32Type> = vec![Some("dict"), None].into_iter().collect();
        let batch = RecordBatch::try_from_iter(vec![
            ("i32", Arc::new(Int64Array::from(vec![7, -3])) as ArrayRef),
            ("s", Arc::new(LargeStringArray::from(vec![Some("x"), None]))),
            (
                "first_declared",
                Arc::new(StringViewArray::from(vec!["v", "w"])),
            ),
            ("color", Arc::new(StringArray::from(vec!["GREEN", "7"]))),
            (
                "ts",
                Arc::new(TimestampMillisecondArray::from(vec![1500, -1])),
            ),
            ("inner", Arc::new(inner)),
            ("nums", Arc::new(nums)),
            ("u32", Arc::new(UInt8Array::from(vec![Some(200), None]))),
            ("wrapped", Arc::new(Int32Array::from(vec![Some(5), None]))),
            ("u64", Arc::new(UInt64Array::from(vec![u64::MAX, 1]))),
            ("text", Arc::new(text)),
        ])
        .unwrap();
        let rows = encode_rows(&all, &batch).unwrap();
        let r0 = DynamicMessage::decode(all.clone(), rows[0].as_slice()).unwrap();
        let r1 = DynamicMessage::decode(all.clone(), rows[1].as_slice()).unwrap();
        let expected0 = parse(
            &all,
            r#"i32: 7 s: "x" first_declared: "v" color: GREEN ts { seconds: 1 nanos: 500000000 }
               inner { n: 4 } nums: [1, 2] u32: 200 wrapped { value: 5 } u64: 18446744073709551615
               text: "dict""#,
        );
        let mut expected1 = parse(
            &all,
            r#"i32: -3 first_declared: "w" ts { seconds: -1 nanos: 999000000 } u64: 1"#,
        );
        expected1.set_field_by_name("color", Value::EnumNumber(7));
        assert_eq!(r0, expected0);
        assert_eq!(r1, expected1);
    }

    fn encode_err(all: &MessageDescriptor, cols: Vec<(&str, ArrayRef)>) -> String {
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        encode_rows(all, &batch).unwrap_err()
    }

    #[test]
    fn encode_errors_name_column_and_problem() {
        let pool = pool();
        let all = desc(&pool, "t.All");
        let err = encode_err(
            &all,
            vec![("i32", Arc::new(Int64Array::from(vec![1, 1 << 40])))],
        );
        assert!(
            err.contains("row 1") && err.contains("'i32'") && err.contains("does not fit"),
            "{err}"
        );
        let err = encode_err(
            &all,
            vec![("color", Arc::new(StringArray::from(vec!["PURPLE"])))],
        );
        assert!(err.contains("'color'") && err.contains("PURPLE"), "{err}");
        let err = encode_err(&all, vec![("nope", Arc::new(Int32Array::from(vec![1])))]);
        assert!(err.contains("nope"), "{err}");
        let err = encode_err(&all, vec![("i32", Arc::new(StringArray::from(vec!["1"])))]);
        assert!(err.contains("'i32'") && err.contains("Utf8"), "{err}");
        let err = encode_err(
            &all,
            vec![
                ("text", Arc::new(StringArray::from(vec!["a"]))),
                ("number", Arc::new(Int64Array::from(vec![1]))),
            ],
        );
        assert!(err.contains("oneof") && err.contains("number"), "{err}");
        let with_null =
            ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), None])]);
        let err = encode_err(&all, vec![("nums", Arc::new(with_null))]);
        assert!(err.contains("nums[1]") && err.contains("null"), "{err}");
        let inner = StructArray::try_new(
            Fields::from(vec![Field::new("zzz", DataType::Int32, true)]),
            vec![Arc::new(Int32Array::from(vec![1])) as ArrayRef],
            None,
        )
        .unwrap();
        let err = encode_err(&all, vec![("inner", Arc::new(inner))]);
        assert!(err.contains("inner.zzz"), "{err}");
        let ns = TimestampNanosecondArray::from(vec![1]);
        assert!(
            encode_rows(
                &all,
                &RecordBatch::try_from_iter(vec![("ts", Arc::new(ns) as ArrayRef)]).unwrap()
            )
            .is_ok()
        );
    }
}
