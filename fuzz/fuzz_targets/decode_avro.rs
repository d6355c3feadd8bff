#![no_main]
//! The Avro decoder on hostile datums: plain (writer schema resolved against a newer reader
//! schema) and Confluent-framed with two writer schemas known to the registry cache.

mod common;

use std::sync::{Arc, LazyLock};

use arrow::datatypes::Fields;
use datafusion_topics::format::registry::{RegisteredSchema, SchemaType};
use datafusion_topics::format::{Format, SchemaRegistry};
use libfuzzer_sys::fuzz_target;

const V1: &str = include_str!("../../tests/fixtures/formats/order_v1.avsc");
const V2: &str = include_str!("../../tests/fixtures/formats/order_v2.avsc");

static PLAIN: LazyLock<Format> = LazyLock::new(|| {
    common::format(
        &[
            ("format", "avro"),
            ("avro.schema", V2),
            ("avro.writer-schema", V1),
        ],
        Fields::empty(),
        None,
    )
});

static FRAMED: LazyLock<Format> = LazyLock::new(|| {
    // Nothing listens there: ids 1 and 2 are preloaded, any other id is a bad message.
    let registry = Arc::new(
        SchemaRegistry::new(
            "http://127.0.0.1:9",
            None,
            std::time::Duration::from_millis(1),
        )
        .expect("registry"),
    );
    for (id, text) in [(1, V1), (2, V2)] {
        registry.preload(RegisteredSchema {
            id,
            schema_type: SchemaType::Avro,
            text: text.to_string(),
            references: Vec::new(),
        });
    }
    common::format(
        &[
            ("format", "avro"),
            ("avro.schema", V2),
            ("framing", "confluent"),
        ],
        Fields::empty(),
        Some(&registry),
    )
});

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((b, rest)) if b % 2 == 1 => common::run(&FRAMED, rest, false),
        Some((_, rest)) => common::run(&PLAIN, rest, true),
        None => {}
    }
});
