#![no_main]
//! The JSON decoder on hostile messages (plain and Confluent-framed).

mod common;

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, Fields};
use datafusion_topics::format::Format;
use libfuzzer_sys::fuzz_target;

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new(
            "tags",
            DataType::List(std::sync::Arc::new(Field::new(
                "item",
                DataType::Utf8,
                true,
            ))),
            true,
        ),
        Field::new(
            "nested",
            DataType::Struct(Fields::from(vec![Field::new(
                "ok",
                DataType::Boolean,
                true,
            )])),
            true,
        ),
    ])
}

static PLAIN: LazyLock<Format> =
    LazyLock::new(|| common::format(&[("format", "json")], fields(), None));
static FRAMED: LazyLock<Format> = LazyLock::new(|| {
    common::format(
        &[("format", "json"), ("framing", "confluent")],
        fields(),
        None,
    )
});

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b, rest)) if b % 2 == 1 => common::run(&FRAMED, rest, false),
        Some((_, rest)) => common::run(&PLAIN, rest, true),
        None => {}
    }
});
