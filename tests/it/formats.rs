//! Message formats against real brokers: each format's messages are produced by an encoder
//! independent of ours (hand-written CSV/JSON, apache-avro, prost-reflect), decoded through
//! SQL, and written back with INSERT; the bad-message policies on topics with a few corrupt
//! messages among thousands; the Confluent wire format through a replayed schema registry.

use datafusion::arrow::array::AsArray;
use datafusion::prelude::SessionContext;
use datafusion_topics::SchemaType;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, ReflectMessage, Value as PbValue};

use crate::harness::*;
use crate::registry_replay::RegistryReplay;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/formats");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

async fn ctx_with(ddl: &str) -> SessionContext {
    let ctx = datafusion_topics::session_context();
    sql(&ctx, ddl).await;
    ctx
}

/// The rows of a query as strings, in the order returned.
async fn lines(ctx: &SessionContext, query: &str) -> Vec<String> {
    let batches = sql(ctx, query).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    text.lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn keyed(partition: i32, key: &[u8], value: &[u8]) -> TestMessage {
    TestMessage {
        partition,
        key: Some(key.to_vec()),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_values_with_struct_and_text_keys() {
    let topic = create_topic("csv", 2).await;
    produce(
        &topic,
        &[
            keyed(0, b"eu,1", b"1;\"widget; large\";2.5;true"),
            keyed(1, b"us,2", b"2;gadget;NULL;false\n"),
            keyed(0, b"eu,3", b"3;\"say \"\"hi\"\"\";0.5;"),
            TestMessage {
                partition: 1,
                key: None,
                value: None,
                ..Default::default()
            },
        ],
    )
    .await;
    let ctx = ctx_with(&format!(
        "CREATE EXTERNAL TABLE t (id BIGINT, name VARCHAR, price DOUBLE, ok BOOLEAN, \
         _key STRUCT<region VARCHAR, shard INT>) STORED AS KAFKA LOCATION '{}' \
         OPTIONS ('value.format' 'csv', 'value.csv.delimiter' ';', 'value.csv.null-literal' 'NULL', \
         'key.format' 'csv', 'scan.bounded.mode' 'latest-offset')",
        location(&topic)
    ))
    .await;
    assert_eq!(
        lines(
            &ctx,
            "SELECT id, name, price, ok, _key['region'], _key['shard'] FROM t ORDER BY id NULLS LAST"
        )
        .await,
        vec![
            "1|widget; large|2.5|true|eu|1",
            "2|gadget||false|us|2",
            "3|say \"hi\"|0.5||eu|3",
            "|||||",
        ]
    );
    // The same topic with text keys.
    let ctx = ctx_with(&format!(
        "CREATE EXTERNAL TABLE t (_key VARCHAR) STORED AS KAFKA LOCATION '{}' \
         OPTIONS ('scan.bounded.mode' 'latest-offset')",
        location(&topic)
    ))
    .await;
    assert_eq!(
        lines(
            &ctx,
            "SELECT _key FROM t WHERE _key IS NOT NULL ORDER BY _key"
        )
        .await,
        vec!["eu,1", "eu,3", "us,2"]
    );
}

fn avro_schema(file: &str) -> apache_avro::Schema {
    apache_avro::Schema::parse_str(&std::fs::read_to_string(fixture(file)).unwrap()).unwrap()
}

/// An Order datum written with schema v1 (`id`, `name`).
fn order_v1(id: i64) -> Vec<u8> {
    use apache_avro::types::Record;
    let schema = avro_schema("order_v1.avsc");
    let mut r = Record::new(&schema).unwrap();
    r.put("id", id);
    r.put("name", format!("order-{id}"));
    apache_avro::to_avro_datum(&schema, r).unwrap()
}

/// An Order datum written with schema v2 (adds `amount`, `tags`, nullable `customer`).
fn order_v2(id: i64) -> Vec<u8> {
    use apache_avro::types::{Record, Value};
    let schema = avro_schema("order_v2.avsc");
    let mut r = Record::new(&schema).unwrap();
    r.put("id", id);
    r.put("name", format!("order-{id}"));
    r.put("amount", id as f64 * 1.5);
    r.put(
        "tags",
        Value::Array(vec![
            Value::String("a".into()),
            Value::String(format!("t{id}")),
        ]),
    );
    let customer = if id % 2 == 0 {
        Value::Union(
            1,
            Box::new(Value::Record(vec![
                ("name".into(), Value::String(format!("c{id}"))),
                ("vip".into(), Value::Boolean(id % 4 == 0)),
            ])),
        )
    } else {
        Value::Union(0, Box::new(Value::Null))
    };
    r.put("customer", customer);
    apache_avro::to_avro_datum(&schema, r).unwrap()
}

fn confluent(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_plain_resolves_the_writer_schema_against_the_reader_schema() {
    let topic = create_topic("avro-plain", 1).await;
    let messages: Vec<_> = (0..3).map(|i| TestMessage::value(0, order_v1(i))).collect();
    produce(&topic, &messages).await;
    let ctx = ctx_with(&format!(
        "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
         OPTIONS ('value.format' 'avro', 'value.avro.schema-file' '{}', \
         'value.avro.writer-schema-file' '{}', 'scan.bounded.mode' 'latest-offset')",
        location(&topic),
        fixture("order_v2.avsc"),
        fixture("order_v1.avsc")
    ))
    .await;
    // Fields v1 lacks take the reader schema's defaults; the nullable record is null.
    assert_eq!(
        lines(
            &ctx,
            "SELECT id, name, amount, tags, customer FROM t ORDER BY id"
        )
        .await,
        vec![
            "0|order-0|0.0|[]|",
            "1|order-1|0.0|[]|",
            "2|order-2|0.0|[]|"
        ]
    );
    // Reading the data with the newer schema as the writer fails with the offset named.
    let ctx = ctx_with(&format!(
        "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
         OPTIONS ('value.format' 'avro', 'value.avro.schema-file' '{}', 'scan.bounded.mode' 'latest-offset')",
        location(&topic),
        fixture("order_v2.avsc"),
    ))
    .await;
    let err = sql_err(&ctx, "SELECT * FROM t").await;
    assert!(
        err.contains(&format!("{topic} partition 0 offset 0")) && err.contains("as avro"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_confluent_framing_through_the_schema_registry() {
    let registry = RegistryReplay::start().await;
    let text = |f: &str| std::fs::read_to_string(fixture(f)).unwrap();
    let v1 = registry
        .register("orders-value", SchemaType::Avro, &text("order_v1.avsc"))
        .await;
    let v2 = registry
        .register("orders-value", SchemaType::Avro, &text("order_v2.avsc"))
        .await;
    let topic = create_topic("avro-sr", 2).await;
    let mut messages = Vec::new();
    for i in 0..200i64 {
        // Written by two producer generations, with schemas v1 and v2.
        let value = if i < 100 {
            confluent(v1, &order_v1(i))
        } else {
            confluent(v2, &order_v2(i))
        };
        messages.push(TestMessage::value((i % 2) as i32, value));
    }
    // An id the registry does not know, and bytes that are not framed.
    messages.push(TestMessage::value(0, confluent(99, &order_v1(999))));
    messages.push(TestMessage::value(1, b"{\"id\": 1000}".to_vec()));
    produce(&topic, &messages).await;
    let ddl = |policy: &str| {
        format!(
            "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
             OPTIONS ('value.format' 'avro', 'schema-registry.url' '{}', \
             'value.subject' 'orders-value', 'value.on-error' '{policy}', \
             'scan.bounded.mode' 'latest-offset')",
            location(&topic),
            registry.url
        )
    };
    let ctx = ctx_with(&ddl("dead-letter")).await;
    // The reader schema is the subject's latest version (v2).
    let summary = lines(
        &ctx,
        "SELECT count(*), count(_error), sum(id), sum(amount), count(customer), \
         sum(array_length(tags)) FROM t",
    )
    .await;
    let v2_ids: Vec<i64> = (100..200).collect();
    let expected_amount: f64 = v2_ids.iter().map(|i| *i as f64 * 1.5).sum();
    assert_eq!(
        summary,
        vec![format!(
            "202|2|{}|{expected_amount:?}|50|200",
            (0..200i64).sum::<i64>(),
        )]
    );
    let errors = lines(
        &ctx,
        "SELECT _partition, _error, _raw IS NOT NULL FROM t WHERE _error IS NOT NULL ORDER BY _partition",
    )
    .await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("schema id 99 is not in the schema registry"),
        "{errors:?}"
    );
    assert!(errors[1].contains("magic byte is 123"), "{errors:?}");
    assert_eq!(
        lines(
            &ctx,
            "SELECT customer['name'], customer['vip'] FROM t WHERE id = 104"
        )
        .await,
        vec!["c104|true"]
    );
    // INSERT registers the table's schema (the registry answers with its id, 2) and frames
    // every message with it; reading back decodes them with the rest.
    sql(
        &ctx,
        "INSERT INTO t (id, name, amount, tags, customer) VALUES \
         (5000, 'written', 9.5, ['x'], named_struct('name', 'w', 'vip', true))",
    )
    .await;
    let ctx = ctx_with(&ddl("skip")).await;
    assert_eq!(
        lines(&ctx, "SELECT count(*), max(id) FROM t").await,
        vec!["201|5000"]
    );
    assert_eq!(
        lines(
            &ctx,
            "SELECT name, amount, tags, customer['name'] FROM t WHERE id = 5000"
        )
        .await,
        vec!["written|9.5|[x]|w"]
    );
    if let Some(requests) = registry.requests() {
        assert!(
            requests.contains(&"GET /schemas/ids/1".to_string())
                && requests.contains(&"GET /schemas/ids/99".to_string())
                && requests.contains(&"POST /subjects/orders-value/versions".to_string()),
            "{requests:?}"
        );
        // Each id is asked for once per table (three tables here), whichever partition
        // meets it first.
        let asked_for_1 = requests
            .iter()
            .filter(|r| *r == "GET /schemas/ids/1")
            .count();
        assert!(asked_for_1 <= 2, "{requests:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_errors_name_the_registry_and_subject() {
    let registry = RegistryReplay::start().await;
    let topic = create_topic("sr-missing", 1).await;
    let ctx = datafusion_topics::session_context();
    let err = sql_err(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
             OPTIONS ('value.format' 'avro', 'schema-registry.url' '{}', 'value.subject' 'missing-value')",
            location(&topic),
            registry.url
        ),
    )
    .await;
    assert!(
        err.contains("/subjects/missing-value/versions/latest")
            && err.contains("Subject 'missing-value' not found"),
        "{err}"
    );
    // Nothing listens on this port: the error comes within the timeout and names the URL.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = sql_err(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
             OPTIONS ('value.format' 'avro', 'schema-registry.url' 'http://127.0.0.1:{dead}')",
            location(&topic),
        ),
    )
    .await;
    assert!(err.contains(&format!("127.0.0.1:{dead}")), "{err}");
    let err = sql_err(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
             OPTIONS ('value.format' 'avro', 'value.framing' 'confluent')",
            location(&topic),
        ),
    )
    .await;
    assert!(err.contains("schema-registry.url"), "{err}");
}

fn reading_pool() -> DescriptorPool {
    let fds = protox::compile([fixture("reading.proto")], [FIXTURES]).unwrap();
    DescriptorPool::from_file_descriptor_set(fds).unwrap()
}

/// A Reading encoded by prost-reflect.
fn reading(pool: &DescriptorPool, id: i64) -> Vec<u8> {
    use prost::Message;
    let desc = pool.get_message_by_name("sensors.Reading").unwrap();
    let mut m = DynamicMessage::new(desc.clone());
    m.set_field_by_name("id", PbValue::I64(id));
    m.set_field_by_name("sensor", PbValue::String(format!("s{}", id % 3)));
    m.set_field_by_name("value", PbValue::F64(id as f64 / 4.0));
    if id % 2 == 0 {
        m.set_field_by_name("unit", PbValue::String("C".into()));
    }
    let loc_desc = pool.get_message_by_name("sensors.Location").unwrap();
    let mut loc = DynamicMessage::new(loc_desc);
    loc.set_field_by_name("lat", PbValue::F64(52.5));
    loc.set_field_by_name("lon", PbValue::F64(id as f64));
    m.set_field_by_name("location", PbValue::Message(loc));
    m.set_field_by_name(
        "samples",
        PbValue::List((0..(id % 4) as i32).map(PbValue::I32).collect()),
    );
    let mut labels = std::collections::HashMap::new();
    labels.insert(
        MapKey::String("site".into()),
        PbValue::String(format!("site-{}", id % 2)),
    );
    m.set_field_by_name("labels", PbValue::Map(labels));
    m.set_field_by_name(
        "status",
        PbValue::EnumNumber(if id % 5 == 0 { 2 } else { 1 }),
    );
    let ts_desc = pool
        .get_message_by_name("google.protobuf.Timestamp")
        .unwrap();
    let mut ts = DynamicMessage::new(ts_desc);
    ts.set_field_by_name("seconds", PbValue::I64(1_700_000_000 + id));
    ts.set_field_by_name("nanos", PbValue::I32(0));
    m.set_field_by_name("taken_at", PbValue::Message(ts));
    let _ = m.descriptor();
    m.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_from_a_proto_file_and_from_the_registry() {
    let pool = reading_pool();
    let topic = create_topic("proto", 2).await;
    let messages: Vec<_> = (0..50)
        .map(|i| TestMessage::value((i % 2) as i32, reading(&pool, i)))
        .collect();
    produce(&topic, &messages).await;
    let ctx = ctx_with(&format!(
        "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
         OPTIONS ('value.format' 'protobuf', 'value.protobuf.schema-file' '{}', \
         'value.protobuf.message' 'sensors.Reading', 'scan.bounded.mode' 'latest-offset')",
        location(&topic),
        fixture("reading.proto")
    ))
    .await;
    assert_eq!(
        lines(
            &ctx,
            "SELECT id, sensor, value, unit, location['lon'], samples, labels['site'], status, \
             CAST(taken_at AS VARCHAR) FROM t WHERE id IN (4, 5) ORDER BY id"
        )
        .await,
        vec![
            "4|s1|1.0|C|4.0|[]|site-0|STATUS_OK|2023-11-14T22:13:24Z",
            "5|s2|1.25||5.0|[0]|site-1|STATUS_FAULTY|2023-11-14T22:13:25Z",
        ]
    );
    assert_eq!(
        lines(
            &ctx,
            "SELECT count(*), count(unit), sum(cardinality(samples)) FROM t"
        )
        .await,
        vec!["50|25|73"]
    );
    // Through the registry: the subject's latest schema (compiled from its .proto source,
    // with the well-known import) and Confluent framing with message-index path [0].
    let registry = RegistryReplay::start().await;
    let proto_text = std::fs::read_to_string(fixture("reading.proto")).unwrap();
    let id = registry
        .register("readings-value", SchemaType::Protobuf, &proto_text)
        .await;
    let header: Vec<u8> = [&[0u8][..], &id.to_be_bytes(), &[0]].concat();
    let framed_topic = create_topic("proto-sr", 1).await;
    let framed: Vec<_> = (0..10)
        .map(|i| {
            let mut v = header.clone();
            v.extend(reading(&pool, i));
            TestMessage::value(0, v)
        })
        .collect();
    produce(&framed_topic, &framed).await;
    // A snapshot table: declared again after the INSERT to see what it wrote.
    let table = format!(
        "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
         OPTIONS ('value.format' 'protobuf', 'schema-registry.url' '{}', \
         'value.subject' 'readings-value', 'scan.bounded.mode' 'latest-offset')",
        location(&framed_topic),
        registry.url
    );
    let ctx = ctx_with(&table).await;
    assert_eq!(
        lines(
            &ctx,
            "SELECT count(*), sum(id), max(location['lon']) FROM t"
        )
        .await,
        vec!["10|45|9.0"]
    );
    sql(
        &ctx,
        "INSERT INTO t (id, sensor, value) VALUES (77, 'new', 1.5)",
    )
    .await;
    let ctx = ctx_with(&table).await;
    assert_eq!(
        lines(
            &ctx,
            "SELECT sensor, value, unit, status FROM t WHERE id = 77"
        )
        .await,
        vec!["new|1.5||STATUS_UNKNOWN"]
    );
    // The written message is framed with the registry's id for the subject and path [0].
    let raw = ctx_with(&format!(
        "CREATE EXTERNAL TABLE r STORED AS KAFKA LOCATION '{}' OPTIONS ('scan.bounded.mode' 'latest-offset')",
        location(&framed_topic)
    ))
    .await;
    let batches = sql(&raw, "SELECT value FROM r WHERE _offset = 10").await;
    let value = batches[0].column(0).as_binary::<i32>().value(0).to_vec();
    assert_eq!(&value[..6], &header[..]);
}

/// `n` JSON messages with a corrupt one at each of `bad` (indexes), round-robin over 3
/// partitions.
fn json_with_corruption(n: usize, bad: &[usize]) -> Vec<TestMessage> {
    (0..n)
        .map(|i| {
            let value = if bad.contains(&i) {
                match i % 3 {
                    0 => b"{\"id\": 1, \"name\": ".to_vec(),
                    1 => b"\xff\xfe not json".to_vec(),
                    _ => format!("{{\"id\": \"not a number {i}\"}}").into_bytes(),
                }
            } else {
                format!(r#"{{"id":{i},"name":"n{i}"}}"#).into_bytes()
            };
            TestMessage::value((i % 3) as i32, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_message_policies_fail_skip_and_dead_letter() {
    let topic = create_topic("policy", 3).await;
    let bad = [17usize, 1000, 1001, 2345, 2999];
    produce(&topic, &json_with_corruption(3000, &bad)).await;
    let table = |policy: &str, extra: &str| {
        format!(
            "CREATE EXTERNAL TABLE t (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION '{}' \
             OPTIONS ('value.on-error' '{policy}', 'scan.bounded.mode' 'latest-offset'{extra})",
            location(&topic)
        )
    };
    // fail: the error names topic, partition, offset and the decoder's complaint.
    let ctx = ctx_with(&table("fail", "")).await;
    let err = sql_err(&ctx, "SELECT id FROM t WHERE _partition = 2").await;
    assert!(
        err.contains(&format!("{topic} partition 2 offset 5")) && err.contains("as json"),
        "{err}"
    );
    // skip: every good message, none of the bad, and the count in the metrics.
    let ctx = ctx_with(&table("skip", "")).await;
    let good: i64 = (0..3000i64).filter(|i| !bad.contains(&(*i as usize))).sum();
    assert_eq!(
        lines(&ctx, "SELECT count(*), sum(id) FROM t").await,
        vec![format!("2995|{good}")]
    );
    // Even a query reading no value column leaves bad messages out.
    assert_eq!(
        lines(&ctx, "SELECT count(_offset) FROM t").await,
        vec!["2995"]
    );
    let explain = lines(&ctx, "EXPLAIN ANALYZE SELECT count(*) FROM t")
        .await
        .join("\n");
    assert!(explain.contains("messages_bad=5"), "{explain}");
    // dead-letter: bad messages stay as rows with `_error` and `_raw`; also produced to a
    // dead-letter topic with where they came from.
    let dlt = create_topic("policy-dlt", 1).await;
    let ctx = ctx_with(&table(
        "dead-letter",
        &format!(", 'value.dead-letter.topic' '{dlt}'"),
    ))
    .await;
    assert_eq!(
        lines(&ctx, "SELECT count(*), count(id), count(_error) FROM t").await,
        vec!["3000|2995|5"]
    );
    let expected: Vec<(i32, usize)> = {
        let mut e: Vec<_> = bad.iter().map(|i| ((i % 3) as i32, i / 3)).collect();
        e.sort();
        e
    };
    let letters = ctx_with(&format!(
        "CREATE EXTERNAL TABLE d STORED AS KAFKA LOCATION '{}' OPTIONS ('value.format' 'string', 'scan.bounded.mode' 'latest-offset')",
        location(&dlt)
    ))
    .await;
    let dead = lines(
        &letters,
        "SELECT arrow_cast(_key, 'Utf8'), arrow_cast(_headers['dlt.offset'], 'Utf8'), \
         arrow_cast(_headers['dlt.error'], 'Utf8') LIKE 'value: %' FROM d ORDER BY 1",
    )
    .await;
    let mut want: Vec<String> = expected
        .iter()
        .map(|(p, o)| format!("{topic}/{p}/{o}|{o}|true"))
        .collect();
    want.sort();
    // One scan sent each bad message once; every scan that meets one sends it again, with
    // the same key.
    assert_eq!(dead, want);
    let errors = lines(
        &ctx,
        "SELECT _partition, _offset, id, _error FROM t WHERE _error IS NOT NULL ORDER BY _partition, _offset",
    )
    .await;
    assert_eq!(errors.len(), 5);
    for (row, (p, o)) in errors.iter().zip(&expected) {
        assert!(row.starts_with(&format!("{p}|{o}||value: ")), "{row}");
    }
    let raw = sql(
        &ctx,
        "SELECT _raw FROM t WHERE _offset = 5 AND _partition = 2",
    )
    .await;
    assert_eq!(
        raw[0].column(0).as_binary::<i32>().value(0),
        b"{\"id\": \"not a number 17\"}"
    );
}

/// One INSERT round trip: DDL columns, options, the columns inserted and their values.
struct InsertCase {
    name: &'static str,
    columns: &'static str,
    options: String,
    insert: &'static str,
    values: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_encodes_rows_in_every_format() {
    let proto = fixture("reading.proto");
    let avro = fixture("order_v2.avsc");
    let cases = vec![
        InsertCase {
            name: "json",
            columns: "(id BIGINT, name VARCHAR, _key STRUCT<k BIGINT>)",
            options: "'value.format' 'json', 'key.format' 'json'".into(),
            insert: "id, name, _key",
            values: "(1, 'a', named_struct('k', 10)), (2, NULL, NULL)",
        },
        InsertCase {
            name: "csv",
            columns: "(id BIGINT, name VARCHAR, _key STRUCT<region VARCHAR, n INT>)",
            options: "'value.format' 'csv', 'value.csv.delimiter' '|', 'key.format' 'csv'".into(),
            insert: "id, name, _key",
            values: "(1, 'a|b', named_struct('region', 'eu', 'n', 1)), (2, NULL, NULL)",
        },
        InsertCase {
            name: "avro-key",
            columns: "(id BIGINT, _key STRUCT<k BIGINT, region VARCHAR>)",
            options: "'value.format' 'json', 'key.format' 'avro'".into(),
            insert: "id, _key",
            values: "(1, named_struct('k', 7, 'region', 'eu')), (2, NULL)",
        },
        InsertCase {
            name: "protobuf-key",
            columns: "(id BIGINT)",
            options: format!(
                "'value.format' 'json', 'key.format' 'protobuf', 'key.protobuf.schema-file' '{}'",
                fixture("key.proto")
            ),
            insert: "id, _key",
            values: "(1, named_struct('site', 'eu', 'shard', 3)), (2, NULL)",
        },
        InsertCase {
            name: "avro-declared",
            columns: "(id BIGINT, name VARCHAR)",
            options: "'value.format' 'avro'".into(),
            insert: "id, name",
            values: "(1, 'a'), (2, NULL)",
        },
        InsertCase {
            name: "avro-file",
            columns: "",
            options: format!("'value.format' 'avro', 'value.avro.schema-file' '{avro}'"),
            insert: "id, name, amount, tags, customer",
            values: "(1, 'a', 0.5, ['x', 'y'], named_struct('name', 'n', 'vip', false)), \
                     (2, 'b', 1.0, [], NULL)",
        },
        InsertCase {
            name: "protobuf",
            columns: "",
            options: format!("'value.format' 'protobuf', 'value.protobuf.schema-file' '{proto}'"),
            insert: "id, sensor, value, unit, location, samples, status",
            values: "(1, 's', 0.5, 'C', named_struct('lat', 1.0, 'lon', 2.0), [1, 2], 'STATUS_FAULTY'), \
                     (2, '', 0.0, NULL, NULL, [], 'STATUS_UNKNOWN')",
        },
        InsertCase {
            name: "string",
            columns: "",
            options: "'value.format' 'string', 'key.format' 'string'".into(),
            insert: "value, _key",
            values: "('hello', 'k'), (NULL, NULL)",
        },
        InsertCase {
            name: "raw",
            columns: "",
            options: "'value.format' 'raw'".into(),
            insert: "value",
            values: "(X'00ff'), (NULL)",
        },
    ];
    for case in cases {
        let topic = unique_name(&format!("insert-{}", case.name));
        let ctx = ctx_with(&format!(
            "CREATE EXTERNAL TABLE t {} STORED AS KAFKA LOCATION '{}' \
             OPTIONS ({}, 'topic.create' 'true', 'scan.bounded.mode' 'latest-offset')",
            case.columns,
            location(&topic),
            case.options
        ))
        .await;
        sql(
            &ctx,
            &format!("INSERT INTO t ({}) VALUES {}", case.insert, case.values),
        )
        .await;
        let n = case.insert.split(',').count();
        let numbered: Vec<String> = (1..=n).map(|i| format!("column{i}")).collect();
        let inserted = lines(
            &ctx,
            &format!(
                "SELECT {} FROM (VALUES {}) ORDER BY 1 NULLS LAST",
                numbered.join(", "),
                case.values
            ),
        )
        .await;
        let read = lines(
            &ctx,
            &format!("SELECT {} FROM t ORDER BY 1 NULLS LAST", case.insert),
        )
        .await;
        assert_eq!(read, inserted, "{}", case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_streams_decode_and_dead_letter_alike() {
    let js = jetstream().await;
    let stream = create_stream(&js, "FMT", &["in", "dlt"]).await;
    for i in 0..100 {
        let body = if i == 42 {
            "7,oops,x".to_string()
        } else {
            format!("{i},n{i},{}", i * 2)
        };
        publish(&js, &format!("{stream}.in"), body).await;
    }
    let ctx = ctx_with(&format!(
        "CREATE EXTERNAL TABLE t (id BIGINT, name VARCHAR, twice BIGINT) STORED AS NATS LOCATION '{}' \
         OPTIONS ('value.format' 'csv', 'value.on-error' 'dead-letter', 'nats.subjects' '{stream}.in', \
         'value.dead-letter.topic' '{stream}.dlt', 'scan.bounded.mode' 'latest-offset')",
        nats_location(&stream)
    ))
    .await;
    let twice: i64 = (0..100i64).filter(|i| *i != 42).map(|i| i * 2).sum();
    assert_eq!(
        lines(
            &ctx,
            "SELECT count(*), count(id), sum(twice), count(_error) FROM t"
        )
        .await,
        vec![format!("100|99|{twice}|1")]
    );
    let error = lines(
        &ctx,
        "SELECT _offset, _error FROM t WHERE _error IS NOT NULL",
    )
    .await;
    assert!(
        error[0].starts_with("43|value: ") && error[0].contains('x'),
        "{error:?}"
    );
    let dead = ctx_with(&format!(
        "CREATE EXTERNAL TABLE d STORED AS NATS LOCATION '{}' \
         OPTIONS ('value.format' 'string', 'nats.subjects' '{stream}.dlt', 'scan.bounded.mode' 'latest-offset')",
        nats_location(&stream)
    ))
    .await;
    assert_eq!(
        lines(
            &dead,
            "SELECT value, arrow_cast(_headers['dlt.offset'], 'Utf8') FROM d"
        )
        .await,
        vec!["7,oops,x|43"]
    );
}
