//! Protobuf message types as Arrow columns: the type mapping shared by the decoder and the
//! encoder.
//!
//! Conversion between protobuf messages and Apache Arrow columns, driven by runtime
//! ([`prost_reflect`]) descriptors.
//!
//! * [`message_fields`] gives the Arrow fields for a message type.
//! * [`ProtoDecoder`](super::decode::ProtoDecoder) decodes encoded messages straight into reusable Arrow builders.
//! * [`encode_rows`](super::encode::encode_rows) turns each row of a `RecordBatch` back into an encoded message.
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
//! Follows `DynamicMessage::has_field`: fields that track presence (proto2 singular fields,
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
//! self-references would otherwise grow as 2^N. [`encode_rows`](super::encode::encode_rows) accepts such bytes back; they must
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
//! `ProtoDecoder`); call `ProtoDecoder::finish` before that.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};
use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

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

pub(super) const TIMESTAMP_TYPE: &str = "google.protobuf.Timestamp";
pub(super) const WRAPPER_TYPES: [&str; 9] = [
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
pub(super) const MIN_EXPANSION: usize = 16;

// ---------------------------------------------------------------------------------------------
// Schema planning
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scalar {
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
    pub(super) fn of(kind: &Kind) -> Option<Self> {
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

    pub(super) fn data_type(self) -> DataType {
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

    pub(super) fn proto_name(self) -> &'static str {
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
pub(super) enum Plan {
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

pub(super) fn timestamp_data_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(TIMESTAMP_TZ.into()))
}

impl Plan {
    pub(super) fn data_type(&self) -> DataType {
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

    pub(super) fn describe(&self) -> String {
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
pub(super) fn declared_fields(desc: &MessageDescriptor) -> Vec<FieldDescriptor> {
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

pub(super) fn well_known(m: &MessageDescriptor) -> Option<Plan> {
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

pub(super) fn map_entry_fields(key: DataType, value: DataType) -> Fields {
    Fields::from(vec![
        Field::new(MAP_KEY_NAME, key, false),
        Field::new(MAP_VALUE_NAME, value, true),
    ])
}

pub(super) struct Planner {
    /// Full names of the message types from the root down to the message being expanded.
    path: Vec<String>,
    /// Arrow fields produced so far.
    produced: usize,
}

impl Planner {
    pub(super) fn new(root: &MessageDescriptor) -> Self {
        Planner {
            path: vec![root.full_name().to_owned()],
            produced: 0,
        }
    }

    pub(super) fn message(
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

    pub(super) fn field(&mut self, fd: &FieldDescriptor) -> Result<Plan, String> {
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

    pub(super) fn element(&mut self, kind: &Kind) -> Result<Plan, String> {
        match kind {
            Kind::Enum(e) => Ok(Plan::Enum(e.clone())),
            Kind::Message(m) => self.message_kind(m),
            other => match Scalar::of(other) {
                Some(s) => Ok(Plan::Scalar(s)),
                None => Err(format!("unsupported field kind {other:?}")),
            },
        }
    }

    pub(super) fn message_kind(&mut self, m: &MessageDescriptor) -> Result<Plan, String> {
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

/// The field of `desc` that a column named `name` holds.
pub(super) fn field_named(desc: &MessageDescriptor, name: &str) -> Result<FieldDescriptor, String> {
    desc.get_field_by_name(name).ok_or_else(|| {
        format!(
            "column '{name}': message {} has no field of that name",
            desc.full_name()
        )
    })
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
pub(super) struct PathError {
    path: Vec<String>,
    reason: String,
}

impl PathError {
    pub(super) fn new(reason: impl Into<String>) -> Self {
        PathError {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    pub(super) fn at(mut self, segment: impl Into<String>) -> Self {
        self.path.push(segment.into());
        self
    }

    /// `column 'a': reason` or `column 'a', field 'a.b[3].c': reason`.
    pub(super) fn render(&self) -> String {
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
