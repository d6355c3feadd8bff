//! Round trips, presence, recursion, and hostile input for the protobuf conversion.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, LargeStringArray, ListArray, RecordBatch, StringArray,
    StringViewArray, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Field, Fields, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, SchemaRef,
    TimestampNanosecondType, UInt32Type, UInt64Type,
};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value};

use super::decode::*;
use super::encode::*;
use super::schema::*;
use arrow::array::{
    DictionaryArray, Int8Array, Int32Array, Int64Array, LargeListArray, TimestampMillisecondArray,
    TimestampNanosecondArray, UInt8Array, UInt64Array,
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
    let rows: Vec<Option<Vec<u8>>> = originals.iter().map(|m| Some(m.encode_to_vec())).collect();
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
