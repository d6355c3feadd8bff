//! Decoding cost per format, beside the bare library decoding the same bytes, so the ratio of
//! the two is our overhead (message attribution, framing, projection, tombstones, policy).
//!
//! Each benchmark decodes one batch of 8192 messages of about 200 bytes (the scan's default
//! batch): JSON (ours vs arrow-json's push decoder), Avro (ours vs arrow-avro's decoder on the
//! same datums), CSV (ours vs arrow-csv's decoder), protobuf (ours, into Arrow, vs
//! prost-reflect decoding the same messages into `DynamicMessage`s only), and raw (our raw
//! batch builder plus the raw format vs a bare `BinaryBuilder`).
//!
//! Run: `cargo bench --bench decode` (criterion prints time and throughput per benchmark;
//! `-- json` runs one group). The bench profile optimises the crates doing the decoding and
//! builds the rest like the dev profile (see Cargo.toml), so both sides of each ratio run the
//! same optimised code.

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, Float64Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion_topics::format::{Decoder, Format, FormatSpec, Side};
use datafusion_topics::source::{ColumnNeeds, RawBatchBuilder};

const N: usize = 8192;

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("user", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("currency", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("note", DataType::Utf8, true),
    ])
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(fields()))
}

/// The rows every format encodes: `N` orders.
fn rows() -> RecordBatch {
    let ids: Vec<i64> = (0..N as i64).map(|i| 1_000_000 + i).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("user-{i}")),
        )),
        Arc::new(Float64Array::from_iter_values(
            ids.iter().map(|i| *i as f64 / 100.0),
        )),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "EUR"))),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| ["DE", "FR", "NL"][*i as usize % 3]),
        )),
        Arc::new(BooleanArray::from_iter(
            ids.iter().map(|i| Some(i % 2 == 0)),
        )),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|i| {
            format!("order {i} for a customer who likes long notes on their parcels")
        }))),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

fn format(options: &[(&str, &str)], declared: Fields) -> Format {
    let mut spec = FormatSpec::default();
    for (k, v) in options {
        assert!(spec.apply(k, k, v).unwrap());
    }
    futures::executor::block_on(spec.resolve("bench", Side::Value, &declared, None)).unwrap()
}

/// Encodes the rows with our encoder for `format`.
fn messages(format: &Format) -> BinaryArray {
    let encoder = futures::executor::block_on(format.encoder()).unwrap();
    BinaryArray::from_iter(encoder.encode(&rows()).unwrap())
}

fn bytes_of(values: &BinaryArray) -> u64 {
    values.value_data().len() as u64
}

fn ours(c: &mut Criterion, group: &str, format: &Format, values: &BinaryArray) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(N as u64));
    let mut decoder: Box<dyn Decoder> = format.decoder(&schema_of(format), N).unwrap();
    g.bench_function(BenchmarkId::new("datafusion-topics", N), |b| {
        b.iter(|| black_box(decoder.decode(values).ok().unwrap()))
    });
    g.finish();
}

fn schema_of(format: &Format) -> SchemaRef {
    Arc::new(Schema::new(format.fields().clone()))
}

fn json(c: &mut Criterion) {
    let format = Format::json(fields());
    let values = messages(&format);
    println!(
        "json: {N} messages, {} bytes each on average",
        bytes_of(&values) / N as u64
    );
    ours(c, "json", &format, &values);
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::new("arrow-json", N), |b| {
        let mut decoder = arrow::json::ReaderBuilder::new(schema())
            .with_batch_size(N)
            .build_decoder()
            .unwrap();
        b.iter(|| {
            for v in values.iter().flatten() {
                decoder.decode(v).unwrap();
            }
            black_box(decoder.flush().unwrap())
        })
    });
    g.finish();
}

fn avro(c: &mut Criterion) {
    let format = format(&[("format", "avro")], fields());
    let values = messages(&format);
    ours(c, "avro", &format, &values);
    // The same datums behind single-object headers, as arrow-avro's decoder reads them.
    let avro_schema =
        arrow_avro::schema::AvroSchema::try_from(&Schema::new(format.fields().clone())).unwrap();
    let mut store = arrow_avro::schema::SchemaStore::new_with_type(
        arrow_avro::schema::FingerprintAlgorithm::Id,
    );
    store
        .set(arrow_avro::schema::Fingerprint::Id(7), avro_schema)
        .unwrap();
    let mut framed = Vec::new();
    for v in values.iter().flatten() {
        framed.extend_from_slice(&[0, 0, 0, 0, 7]);
        framed.extend_from_slice(v);
    }
    let mut g = c.benchmark_group("avro");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::new("arrow-avro", N), |b| {
        let mut decoder = arrow_avro::reader::ReaderBuilder::new()
            .with_writer_schema_store(store.clone())
            .with_batch_size(N)
            .build_decoder()
            .unwrap();
        b.iter(|| {
            let mut rest = &framed[..];
            while !rest.is_empty() {
                let used = decoder.decode(rest).unwrap();
                rest = &rest[used..];
            }
            black_box(decoder.flush().unwrap())
        })
    });
    g.finish();
}

fn csv(c: &mut Criterion) {
    let format = format(&[("format", "csv")], fields());
    let values = messages(&format);
    ours(c, "csv", &format, &values);
    let mut lines = Vec::new();
    for v in values.iter().flatten() {
        lines.extend_from_slice(v);
        lines.push(b'\n');
    }
    let mut g = c.benchmark_group("csv");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::new("arrow-csv", N), |b| {
        b.iter(|| {
            let mut decoder = arrow::csv::ReaderBuilder::new(schema())
                .with_batch_size(N)
                .build_decoder();
            let mut rest = &lines[..];
            while !rest.is_empty() {
                let used = decoder.decode(rest).unwrap();
                rest = &rest[used..];
            }
            black_box(decoder.flush().unwrap())
        })
    });
    g.finish();
}

const PROTO: &str = r#"
syntax = "proto3";
message Order {
  int64 id = 1; string user = 2; double amount = 3; string currency = 4;
  string country = 5; bool ok = 6; string note = 7;
}
"#;

fn protobuf(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.proto");
    std::fs::write(&path, PROTO).unwrap();
    let format = format(
        &[
            ("format", "protobuf"),
            ("protobuf.schema-file", path.to_str().unwrap()),
        ],
        Fields::empty(),
    );
    let values = messages(&format);
    ours(c, "protobuf", &format, &values);
    let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(
        protox::compile([&path], [dir.path()]).unwrap(),
    )
    .unwrap();
    let desc = pool.get_message_by_name("Order").unwrap();
    let mut g = c.benchmark_group("protobuf");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::new("prost-reflect (no Arrow)", N), |b| {
        b.iter(|| {
            for v in values.iter().flatten() {
                black_box(prost_reflect::DynamicMessage::decode(desc.clone(), v).unwrap());
            }
        })
    });
    g.finish();
}

fn raw(c: &mut Criterion) {
    let values = messages(&Format::json(fields()));
    let mut g = c.benchmark_group("raw");
    g.throughput(Throughput::Elements(N as u64));
    let needs = ColumnNeeds {
        value: true,
        ..Default::default()
    };
    let raw_format = Format::raw();
    let mut decoder = raw_format.decoder(&schema_of(&raw_format), N).unwrap();
    g.bench_function(BenchmarkId::new("datafusion-topics", N), |b| {
        b.iter(|| {
            let mut builder = RawBatchBuilder::new(0, needs, N);
            for (i, v) in values.iter().enumerate() {
                builder.append(i as i64, None, None, v, std::iter::empty);
            }
            let batch = builder.finish();
            black_box(decoder.decode(batch.values.as_ref().unwrap()).ok().unwrap())
        })
    });
    g.bench_function(BenchmarkId::new("BinaryBuilder", N), |b| {
        b.iter(|| {
            let mut builder = BinaryBuilder::with_capacity(N, N * 64);
            for v in values.iter() {
                builder.append_option(v);
            }
            black_box(builder.finish())
        })
    });
    g.finish();
}

criterion_group!(benches, json, avro, csv, protobuf, raw);
criterion_main!(benches);
