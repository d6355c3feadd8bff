//! Start positions: earliest, latest, specific offsets, timestamp, consumer-group offsets.

use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::harness::*;

/// (partition, offset) pairs a query returns, sorted.
async fn positions(ctx: &datafusion::prelude::SessionContext) -> Vec<(i32, i64)> {
    partition_offsets(&sql(ctx, "SELECT _partition, _offset FROM t").await)
}

fn all(partitions: i32, per_partition: i64, from: impl Fn(i32) -> i64) -> Vec<(i32, i64)> {
    (0..partitions)
        .flat_map(|p| (from(p)..per_partition).map(move |o| (p, o)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specific_offsets_and_earliest() {
    let topic = create_topic("specific", 3).await;
    produce(&topic, &json_messages(30, 3)).await; // 10 per partition
    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[("scan.bounded.mode", "latest-offset")],
    )
    .await;
    assert_eq!(positions(&ctx).await, all(3, 10, |_| 0));

    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:3;partition:1,offset:10",
            ),
            ("scan.bounded.mode", "latest-offset"),
        ],
    )
    .await;
    // Partition 1 starts at its high watermark (nothing), partition 2 (unlisted) at earliest.
    assert_eq!(
        positions(&ctx).await,
        all(3, 10, |p| [3, 10, 0][p as usize])
    );

    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("scan.bounded.mode", "specific-offsets"),
            ("scan.bounded.specific-offsets", "partition:2,offset:4"),
        ],
    )
    .await;
    let got = positions(&ctx).await;
    assert_eq!(got.iter().filter(|(p, _)| *p == 2).count(), 4);
    assert_eq!(got.len(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_start_reads_only_new_messages() {
    let topic = create_topic("latest", 2).await;
    produce(&topic, &json_messages(6, 2)).await;
    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("value.format", "string"),
            ("scan.startup.mode", "latest-offset"),
        ],
    )
    .await;
    let plan = physical_plan(&ctx, "SELECT value FROM t").await;
    let mut stream = execute_stream(plan, ctx.task_ctx()).unwrap();
    produce(
        &topic,
        &[
            TestMessage::value(0, "new-0"),
            TestMessage::value(1, "new-1"),
        ],
    )
    .await;
    let mut seen = next_strings(&mut stream, 2).await;
    seen.sort();
    assert_eq!(seen, ["new-0", "new-1"]);
    // Nothing else arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), stream.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_start_and_end() {
    let topic = create_topic("timestamp", 2).await;
    let base = 1_700_000_000_000i64;
    let msgs: Vec<TestMessage> = (0..20)
        .map(|i| TestMessage {
            timestamp: Some(base + i as i64 * 1000),
            ..TestMessage::value(i % 2, format!("m{i}"))
        })
        .collect();
    produce(&topic, &msgs).await;
    let ts = |i: i64| (base + i * 1000).to_string();
    let count_with = |pairs: Vec<(&'static str, String)>| {
        let topic = topic.clone();
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let ctx = kafka_table(&topic, no_columns(), &pairs).await;
            let b = sql(&ctx, "SELECT min(_timestamp), count(*) FROM t").await;
            let n = b[0].column(1).as_primitive::<Int64Type>().value(0);
            let min = b[0]
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
            (n, min.is_valid(0).then(|| min.value(0)))
        }
    };
    let bounded = ("scan.bounded.mode", "latest-offset".to_string());
    let start = |i: i64| {
        vec![
            ("scan.startup.mode", "timestamp".to_string()),
            ("scan.startup.timestamp-millis", ts(i)),
            bounded.clone(),
        ]
    };

    assert_eq!(count_with(start(7)).await, (13, Some(base + 7000)));
    // Between two messages: the first at or after.
    let mut between = start(7);
    between[1].1 = (base + 6500).to_string();
    assert_eq!(count_with(between).await, (13, Some(base + 7000)));
    assert_eq!(count_with(start(-5)).await, (20, Some(base)));
    // After the last message: nothing.
    assert_eq!(count_with(start(100)).await, (0, None));
    // End by timestamp.
    let end = vec![
        ("scan.bounded.mode", "timestamp".to_string()),
        ("scan.bounded.timestamp-millis", ts(5)),
    ];
    assert_eq!(count_with(end).await, (5, Some(base)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_start_where_the_group_committed() {
    let topic = create_topic("group", 3).await;
    produce(&topic, &json_messages(30, 3)).await;
    let group = unique_name("g");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(4))
        .unwrap();
    tpl.add_partition_offset(&topic, 1, Offset::Offset(9))
        .unwrap();
    tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
        .await
        .unwrap()
        .unwrap();

    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("scan.startup.mode", "group-offsets"),
            ("properties.group.id", &group),
            ("scan.bounded.mode", "latest-offset"),
        ],
    )
    .await;
    // Partition 2 has no committed offset: it starts at the earliest offset.
    assert_eq!(positions(&ctx).await, all(3, 10, |p| [4, 9, 0][p as usize]));
}
