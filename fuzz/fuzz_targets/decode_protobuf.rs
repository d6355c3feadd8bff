#![no_main]
//! The protobuf decoder on hostile messages (nested, repeated, map, enum, well-known
//! Timestamp), plain and Confluent-framed (message-index path).

mod common;

use std::sync::LazyLock;

use arrow::datatypes::Fields;
use datafusion_topics::format::Format;
use libfuzzer_sys::fuzz_target;

const PROTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/formats/reading.proto"
);

static PLAIN: LazyLock<Format> = LazyLock::new(|| {
    common::format(
        &[("format", "protobuf"), ("protobuf.schema-file", PROTO)],
        Fields::empty(),
        None,
    )
});

static FRAMED: LazyLock<Format> = LazyLock::new(|| {
    common::format(
        &[
            ("format", "protobuf"),
            ("protobuf.schema-file", PROTO),
            ("framing", "confluent"),
        ],
        Fields::empty(),
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
