//! Bad input: each a clear error naming the thing that is wrong.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion_topics::{TableDefinition, TopicTable, TopicsError};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_is_named() {
    let name = unique_name("missing");
    let err = TopicTable::open(
        &location(&name),
        no_columns(),
        &opts(&[("connect.timeout", "5s")]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, TopicsError::UnknownTopic { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&name) && text.contains("does not exist"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_brokers_fail_within_the_timeout() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let location = format!("kafka://127.0.0.1:{port}/orders");
    let started = Instant::now();
    let err = TopicTable::open(&location, no_columns(), &opts(&[("connect.timeout", "1s")]))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(matches!(err, TopicsError::Unreachable { .. }), "{err:?}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("connect.timeout"),
        "{text}"
    );
    // Bounded: the configured 1 s plus client shutdown, far from a hang.
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_offsets_outside_the_partition_are_errors() {
    let topic = create_topic("range", 2).await;
    produce(&topic, &json_messages(10, 2)).await;
    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("scan.startup.specific-offsets", "partition:1,offset:99"),
            ("scan.bounded.mode", "latest-offset"),
        ],
    )
    .await;
    let err = sql_err(&ctx, "SELECT * FROM t").await;
    assert!(
        err.contains(&topic)
            && err.contains("partition 1")
            && err.contains("offset 99")
            && err.contains("[0, 5)"),
        "{err}"
    );

    // Below the low watermark: delete the first records of partition 0.
    delete_records(&topic, 0, 3).await;
    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("scan.startup.specific-offsets", "partition:0,offset:1"),
            ("scan.bounded.mode", "latest-offset"),
        ],
    )
    .await;
    let err = sql_err(&ctx, "SELECT * FROM t").await;
    assert!(
        err.contains("offset 1") && err.contains("[3, 5)") && err.contains("retention"),
        "{err}"
    );
}

async fn delete_records(topic: &str, partition: i32, before: i64) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(before))
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let result = admin
        .delete_records(&tpl, &opts)
        .await
        .expect("delete_records request");
    for elem in result.elements() {
        elem.error().expect("delete_records on the broker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_names_topic_partition_and_offset() {
    let topic = create_topic("badjson", 2).await;
    let mut msgs = json_messages(20, 2);
    msgs.push(TestMessage::value(1, r#"{"id": 99, "name": "#)); // partition 1, offset 10
    msgs.extend(json_messages(4, 2));
    produce(&topic, &msgs).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let ctx = kafka_table(&topic, schema, &[("scan.bounded.mode", "latest-offset")]).await;
    let err = sql_err(&ctx, "SELECT id, name FROM t").await;
    assert!(
        err.contains(&topic) && err.contains("partition 1") && err.contains("offset 10"),
        "{err}"
    );
    assert!(err.contains("json"), "{err}");
    // Columns that do not need the value still work.
    let b = sql(&ctx, "SELECT count(*) FROM t").await;
    assert_eq!(sorted_rows(&b), vec!["|25|".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_options_are_named() {
    let loc = location("orders");
    let err = TableDefinition::parse(
        &loc,
        no_columns(),
        &opts(&[("scan.startup.mod", "earliest-offset")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("scan.startup.mod") && err.contains("scan.startup.mode"),
        "{err}"
    );
    let err = TableDefinition::parse(
        &loc,
        no_columns(),
        &opts(&[("scan.bounded.mode", "forever")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("scan.bounded.mode") && err.contains("forever"),
        "{err}"
    );
    let err = TableDefinition::parse("kafka://nohost/orders", no_columns(), &opts(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("kafka://nohost/orders"), "{err}");
}
