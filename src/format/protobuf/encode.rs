//! Encoding rows of Arrow columns as protobuf messages.

use std::collections::HashMap;

use super::schema::*;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, FixedSizeBinaryArray,
    LargeBinaryArray, LargeStringArray, PrimitiveArray, RecordBatch, StringArray, StringViewArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use prost::Message as _;
use prost::bytes::Bytes;
use prost_reflect::{DynamicMessage, EnumDescriptor, FieldDescriptor, MessageDescriptor, Value};
// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

pub(super) enum IntCol {
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
    pub(super) fn new(a: &ArrayRef) -> Option<Self> {
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

    pub(super) fn get(&self, i: usize) -> i128 {
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

pub(super) enum FloatCol {
    F16(PrimitiveArray<Float16Type>),
    F32(PrimitiveArray<Float32Type>),
    F64(PrimitiveArray<Float64Type>),
}

impl FloatCol {
    pub(super) fn new(a: &ArrayRef) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Float16 => Self::F16(a.as_primitive_opt()?.clone()),
            DataType::Float32 => Self::F32(a.as_primitive_opt()?.clone()),
            DataType::Float64 => Self::F64(a.as_primitive_opt()?.clone()),
            _ => return None,
        })
    }

    pub(super) fn get(&self, i: usize) -> f64 {
        match self {
            Self::F16(a) => a.value(i).to_f64(),
            Self::F32(a) => a.value(i).into(),
            Self::F64(a) => a.value(i),
        }
    }
}

pub(super) enum StrCol {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

impl StrCol {
    pub(super) fn new(a: &ArrayRef) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Utf8 => Self::Utf8(a.as_string_opt()?.clone()),
            DataType::LargeUtf8 => Self::Large(a.as_string_opt()?.clone()),
            DataType::Utf8View => Self::View(a.as_string_view_opt()?.clone()),
            _ => return None,
        })
    }

    pub(super) fn get(&self, i: usize) -> &str {
        match self {
            Self::Utf8(a) => a.value(i),
            Self::Large(a) => a.value(i),
            Self::View(a) => a.value(i),
        }
    }
}

pub(super) enum BinCol {
    Bin(BinaryArray),
    Large(LargeBinaryArray),
    View(BinaryViewArray),
    Fixed(FixedSizeBinaryArray),
    Str(StrCol),
}

impl BinCol {
    pub(super) fn new(a: &ArrayRef) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Binary => Self::Bin(a.as_binary_opt()?.clone()),
            DataType::LargeBinary => Self::Large(a.as_binary_opt()?.clone()),
            DataType::BinaryView => Self::View(a.as_binary_view_opt()?.clone()),
            DataType::FixedSizeBinary(_) => Self::Fixed(a.as_fixed_size_binary_opt()?.clone()),
            _ => Self::Str(StrCol::new(a)?),
        })
    }

    pub(super) fn get(&self, i: usize) -> &[u8] {
        match self {
            Self::Bin(a) => a.value(i),
            Self::Large(a) => a.value(i),
            Self::View(a) => a.value(i),
            Self::Fixed(a) => a.value(i),
            Self::Str(s) => s.get(i).as_bytes(),
        }
    }
}

pub(super) enum Offsets {
    I32(OffsetBuffer<i32>),
    I64(OffsetBuffer<i64>),
}

impl Offsets {
    pub(super) fn range(&self, row: usize) -> std::ops::Range<usize> {
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
pub(super) struct Enc {
    nulls: Option<NullBuffer>,
    kind: EncKind,
}

pub(super) enum EncKind {
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

pub(super) fn scalar_enc(s: Scalar, a: &ArrayRef) -> Option<EncKind> {
    Some(match s {
        Scalar::I32 | Scalar::I64 | Scalar::U32 | Scalar::U64 => EncKind::Int(IntCol::new(a)?, s),
        Scalar::F32 | Scalar::F64 => EncKind::Float(FloatCol::new(a)?, s),
        Scalar::Bool => EncKind::Bool(a.as_boolean_opt()?.clone()),
        Scalar::Str => EncKind::Str(StrCol::new(a)?),
        Scalar::Bytes => EncKind::Bytes(BinCol::new(a)?),
    })
}

pub(super) fn timestamp_values(a: &ArrayRef) -> Option<(ScalarBuffer<i64>, i64)> {
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

pub(super) fn int_value(v: i128, s: Scalar) -> Result<Value, String> {
    let out = match s {
        Scalar::I32 => i32::try_from(v).ok().map(Value::I32),
        Scalar::I64 => i64::try_from(v).ok().map(Value::I64),
        Scalar::U32 => u32::try_from(v).ok().map(Value::U32),
        Scalar::U64 => u64::try_from(v).ok().map(Value::U64),
        _ => None,
    };
    out.ok_or_else(|| format!("value {v} does not fit in {}", s.proto_name()))
}

pub(super) fn new_message_with(
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
    pub(super) fn new(plan: &Plan, array: &ArrayRef) -> Result<Enc, PathError> {
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
    pub(super) fn value(&self, i: usize) -> Result<Option<Value>, PathError> {
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
pub(super) fn set_fields(
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
        let fd = field_named(desc, f.name())?;
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
