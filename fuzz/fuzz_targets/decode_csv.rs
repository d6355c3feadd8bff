#![no_main]
//! The CSV decoder on hostile records, default and custom dialects.

mod common;

use std::sync::LazyLock;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion_topics::format::Format;
use libfuzzer_sys::fuzz_target;

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ])
}

static DEFAULT: LazyLock<Format> =
    LazyLock::new(|| common::format(&[("format", "csv")], fields(), None));
static DIALECT: LazyLock<Format> = LazyLock::new(|| {
    common::format(
        &[
            ("format", "csv"),
            ("csv.delimiter", ";"),
            ("csv.quote", "'"),
            ("csv.escape", "\\"),
            ("csv.null-literal", "NULL"),
        ],
        fields(),
        None,
    )
});

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b, rest)) if b % 2 == 1 => common::run(&DIALECT, rest, true),
        Some((_, rest)) => common::run(&DEFAULT, rest, true),
        None => {}
    }
});
