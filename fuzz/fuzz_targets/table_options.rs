#![no_main]
//! Option and location parsing: Kafka and NATS locations and every option key, with
//! arbitrary values (and arbitrary keys), must give a table or a clear error, never a panic.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion_topics::TableDefinition;
use datafusion_topics::connectors::kafka::parse_kafka_location;
use datafusion_topics::connectors::nats::parse_nats_location;
use libfuzzer_sys::fuzz_target;

const KEYS: &[&str] = &[
    "value.format",
    "key.format",
    "value.avro.schema",
    "value.avro.writer-schema",
    "value.protobuf.message",
    "value.csv.delimiter",
    "value.csv.quote",
    "value.csv.escape",
    "value.csv.null-literal",
    "value.framing",
    "key.framing",
    "value.subject",
    "schema-registry.url",
    "schema-registry.user",
    "schema-registry.password",
    "value.on-error",
    "value.dead-letter.topic",
    "value.json.infer-sample-size",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.startup.specific-offsets",
    "scan.bounded.mode",
    "scan.bounded.timestamp-millis",
    "scan.bounded.specific-offsets",
    "scan.fail-on-data-loss",
    "scan.timestamp.max-skew",
    "connect.timeout",
    "sink.recovery",
    "topic.create",
    "topic.partitions",
    "topic.replication-factor",
    "properties.group.id",
    "kafka.fetch.max.bytes",
    "kafka.bootstrap.servers",
    "nats.partitioning",
    "nats.subjects",
    "nats.partitions",
    "nats.tls.required",
    "nats.user",
    "nats.password",
    "nats.token",
    "format.value.format",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let location = parts.next().unwrap_or_default();
    let _ = parse_kafka_location(location);
    let _ = parse_nats_location(location);
    let mut options = HashMap::new();
    let mut rest: Vec<&str> = parts.collect();
    while rest.len() >= 2 {
        let value = rest.pop().unwrap_or_default();
        let key = rest.pop().unwrap_or_default();
        // A key byte picks a known key, so values meet the parsers behind them.
        let key = match key.as_bytes().first() {
            Some(b) if (*b as usize) < KEYS.len() * 4 => KEYS[*b as usize % KEYS.len()].to_string(),
            _ => key.to_string(),
        };
        options.insert(key, value.to_string());
    }
    let columns = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    for schema in [columns, Arc::new(Schema::empty())] {
        let _ = TableDefinition::parse(
            &format!("kafka://127.0.0.1:9/{location}"),
            schema.clone(),
            &options,
        );
        let _ =
            TableDefinition::parse(&format!("nats://127.0.0.1:9/{location}"), schema, &options);
    }
});
