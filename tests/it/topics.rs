//! Tables over several topics (a list or a pattern) on Apache Kafka and NATS, live discovery of
//! partitions and topics created while a scan runs, topics deleted under a live scan, and
//! split scans of one big partition.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::prelude::SessionContext;
use datafusion_topics::TopicTable;
use rdkafka::admin::AdminOptions;

use crate::harness::*;

/// How long a live query may take to see what the test makes happen.
const LIMIT: Duration = Duration::from_secs(60);

fn id_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

/// A session with the table at `location` (Kafka brokers of the suite) registered as `t`.
async fn table_at(location: &str, pairs: &[(&str, &str)]) -> SessionContext {
    let mut all = vec![("value.format", "json")];
    all.extend_from_slice(pairs);
    let provider = TopicTable::open(location, id_schema(), &opts(&all))
        .await
        .unwrap_or_else(|e| panic!("{location}: {e}"));
    let ctx = datafusion_topics::session_context();
    ctx.register_table("t", Arc::new(provider)).unwrap();
    ctx
}

fn kafka(topics: &str) -> String {
    format!("kafka://{}/{topics}", brokers().kafka)
}

async fn ids(ctx: &SessionContext, query: &str) -> Vec<i64> {
    let mut out: Vec<i64> = sql(ctx, query)
        .await
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    out.sort_unstable();
    out
}

async fn explain(ctx: &SessionContext, query: &str) -> String {
    let batches = sql(ctx, &format!("EXPLAIN {query}")).await;
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

/// `{"id": i}` for each `i`, all to `partition`.
fn ids_to(partition: i32, ids: impl IntoIterator<Item = i64>) -> Vec<TestMessage> {
    ids.into_iter()
        .map(|i| TestMessage::value(partition, format!(r#"{{"id":{i}}}"#)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_and_a_pattern_of_kafka_topics_read_as_one_table() {
    let stem = unique_name("multi");
    let a = create_topic(&format!("{stem}-a"), 2).await;
    let b = create_topic(&format!("{stem}-b"), 1).await;
    let other = create_topic(&format!("{stem}x-c"), 1).await;
    produce(&a, &[ids_to(0, 0..50), ids_to(1, 50..100)].concat()).await;
    produce(&b, &ids_to(0, 1000..1010)).await;
    produce(&other, &ids_to(0, 5000..5005)).await;
    let bounded = [("scan.bounded.mode", "latest-offset")];
    let list = table_at(&kafka(&format!("{a},{b}")), &bounded).await;
    assert_eq!(
        ids(&list, "SELECT id FROM t").await,
        (0..100).chain(1000..1010).collect::<Vec<_>>()
    );
    // `_topic` says which topic; a filter on it reads only that topic.
    let per_topic = sql(
        &list,
        "SELECT _topic, count(*) FROM t GROUP BY _topic ORDER BY _topic",
    )
    .await;
    let counts: Vec<(String, i64)> = per_topic
        .iter()
        .flat_map(|batch| {
            let t = batch.column(0).as_string::<i32>();
            let n = batch.column(1).as_primitive::<Int64Type>();
            (0..batch.num_rows())
                .map(|i| (t.value(i).to_string(), n.value(i)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(counts, vec![(a.clone(), 100), (b.clone(), 10)]);
    let query = format!("SELECT id FROM t WHERE _topic = '{b}' AND _offset >= 5");
    let plan = explain(&list, &query).await;
    assert!(plan.contains(&format!("{b}/0: [5, 10)")), "{plan}");
    assert!(!plan.contains(&format!("{a}/")), "{plan}");
    assert_eq!(ids(&list, &query).await, (1005..1010).collect::<Vec<_>>());
    // The pattern's whole name must match: `{stem}x-c` is not read.
    let pattern = format!("{stem}-[ab]-.*");
    let by_pattern = table_at(
        &kafka(""),
        &[
            ("scan.bounded.mode", "latest-offset"),
            ("topic.pattern", &pattern),
        ],
    )
    .await;
    assert_eq!(
        ids(&by_pattern, "SELECT id FROM t").await,
        (0..100).chain(1000..1010).collect::<Vec<_>>()
    );
    // Bad input: a missing topic in the list, a pattern matching nothing, both at once.
    let missing = format!("{stem}-missing");
    let err = TopicTable::open(&kafka(&format!("{a},{missing}")), id_schema(), &opts(&[]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&missing), "{err}");
    let err = TopicTable::open(
        &kafka(""),
        id_schema(),
        &opts(&[("topic.pattern", &format!("{stem}-none-.*"))]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("topic.pattern") && err.contains("no topic"),
        "{err}"
    );
    let err = TopicTable::open(&kafka(&a), id_schema(), &opts(&[("topic.pattern", "x.*")]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("topic.pattern") && err.contains("names no topic"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_kafka_scan_reads_partitions_and_topics_created_while_it_runs() {
    // The issue's case: a live LIMIT waiting for a row that lands in a new partition.
    let topic = create_topic("grow-live", 1).await;
    produce(&topic, &ids_to(0, 0..10)).await;
    let ctx = table_at(&kafka(&topic), &[("scan.discovery.interval", "500ms")]).await;
    let running = spawn_query(
        &ctx,
        "SELECT _partition, id FROM t WHERE id >= 1000 LIMIT 1",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grow = rdkafka::admin::NewPartitions::new(&topic, 2);
    let added = admin()
        .create_partitions([&grow], &AdminOptions::new())
        .await
        .unwrap();
    assert!(added.iter().all(|r| r.is_ok()), "{added:?}");
    produce(&topic, &ids_to(1, [1000])).await;
    let got = within(LIMIT, "the row in the new partition", running)
        .await
        .unwrap()
        .unwrap();
    // (_partition, id): the first two columns as (INT, BIGINT) pairs.
    assert_eq!(partition_offsets(&got), vec![(1, 1000)]);
    // A topic created while a pattern scan runs is read from its first offset.
    let stem = unique_name("pattern-live");
    let first = create_topic(&format!("{stem}-0"), 1).await;
    produce(&first, &ids_to(0, 0..3)).await;
    let ctx = table_at(
        &kafka(""),
        &[
            ("topic.pattern", &format!("{stem}-[0-9]-.*")),
            ("scan.discovery.interval", "500ms"),
        ],
    )
    .await;
    let running = spawn_query(&ctx, "SELECT id, _topic FROM t WHERE id >= 1000 LIMIT 2");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = create_topic(&format!("{stem}-1"), 1).await;
    produce(&second, &ids_to(0, [1000, 1001])).await;
    let got = within(LIMIT, "the rows of the new topic", running)
        .await
        .unwrap()
        .unwrap();
    let topics: Vec<&str> = got
        .iter()
        .flat_map(|b| {
            let t = b.column(1).as_string::<i32>();
            (0..b.num_rows()).map(move |i| t.value(i))
        })
        .collect();
    assert_eq!(topics, vec![second.as_str(), second.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_topic_deleted_under_a_live_scan_fails_it_or_ends_its_partitions() {
    let keep = create_topic("deleted-keep", 1).await;
    let doomed = create_topic("deleted-doomed", 1).await;
    produce(&keep, &ids_to(0, 0..3)).await;
    produce(&doomed, &ids_to(0, 10..13)).await;
    let location = kafka(&format!("{keep},{doomed}"));
    let fails = table_at(&location, &[("scan.discovery.interval", "500ms")]).await;
    let ends = table_at(
        &location,
        &[
            ("scan.discovery.interval", "500ms"),
            ("scan.discovery.on-deleted", "end"),
        ],
    )
    .await;
    let failing = spawn_query(&fails, "SELECT id FROM t WHERE id >= 1000");
    let ending = spawn_query(&ends, "SELECT id FROM t WHERE id >= 1000 LIMIT 1");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deleted = admin()
        .delete_topics(
            &[doomed.as_str()],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    let err = within(LIMIT, "the failure", failing)
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{doomed}/0")) && err.contains("deleted"),
        "{err}"
    );
    // With `end` the other topic goes on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !ending.is_finished(),
        "the scan with on-deleted = end stopped"
    );
    produce(&keep, &ids_to(0, [1000])).await;
    let got = within(LIMIT, "the row of the kept topic", ending)
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<i64> = got
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert_eq!(ids, vec![1000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_scan_of_one_kafka_partition_reads_every_message_once() {
    let topic = create_topic("split", 1).await;
    produce(&topic, &ids_to(0, 0..3000)).await;
    let ctx = table_at(
        &kafka(&topic),
        &[
            ("scan.bounded.mode", "latest-offset"),
            ("scan.split.max-messages", "1000"),
        ],
    )
    .await;
    let plan = explain(&ctx, "SELECT id FROM t").await;
    assert!(
        plan.contains("partitions=[0: [0, 1000), 0: [1000, 2000), 0: [2000, 3000)]"),
        "{plan}"
    );
    assert_eq!(
        ids(&ctx, "SELECT id FROM t").await,
        (0..3000).collect::<Vec<_>>()
    );
    let ctx = table_at(
        &kafka(&topic),
        &[
            ("scan.bounded.mode", "latest-offset"),
            ("scan.split.min-partitions", "auto"),
        ],
    )
    .await;
    // 3000 offsets are below two 10 000-offset pieces: not split.
    let plan = explain(&ctx, "SELECT id FROM t").await;
    assert!(plan.contains("partitions=[0: [0, 3000)]"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_nats_streams_and_a_stream_pattern_read_as_one_table() {
    let js = jetstream().await;
    let stem = unique_name("MULTI").replace('-', "_");
    let (a, b) = (format!("{stem}_A"), format!("{stem}_B"));
    create_named_stream(&js, &a, &[&format!("{a}.x")]).await;
    create_named_stream(&js, &b, &[&format!("{b}.x")]).await;
    for i in 0..5 {
        publish(&js, &format!("{a}.x"), format!(r#"{{"id":{i}}}"#)).await;
        publish(&js, &format!("{b}.x"), format!(r#"{{"id":{}}}"#, 100 + i)).await;
    }
    let bounded = [("scan.bounded.mode", "latest-offset")];
    let list = table_at(&nats_location(&format!("{a},{b}")), &bounded).await;
    assert_eq!(
        ids(&list, "SELECT id FROM t").await,
        (0..5).chain(100..105).collect::<Vec<_>>()
    );
    let query = format!("SELECT id FROM t WHERE _topic = '{b}'");
    let plan = explain(&list, &query).await;
    assert!(
        plan.contains(&format!("{b}/0: [1, 6)")) && !plan.contains(&format!("{a}/")),
        "{plan}"
    );
    assert_eq!(ids(&list, &query).await, (100..105).collect::<Vec<_>>());
    let pattern_location = nats_location("");
    let by_pattern = table_at(
        &pattern_location,
        &[
            ("scan.bounded.mode", "latest-offset"),
            ("topic.pattern", &format!("{stem}_[AB]")),
        ],
    )
    .await;
    assert_eq!(ids(&by_pattern, "SELECT id FROM t").await.len(), 10);
    let err = TopicTable::open(
        &nats_location(&format!("{a},{b}")),
        id_schema(),
        &opts(&[
            ("nats.mode", "work-queue"),
            ("nats.work-queue.consumer", "c"),
        ]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("work queue") && err.contains("several"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_query_over_a_kafka_pattern_takes_in_new_topics_and_commits_each() {
    use datafusion_topics::query::{ContinuousQuery, Limits, RunOptions, Trigger};
    let stem = unique_name("cq-pattern");
    let first = create_topic(&format!("{stem}-a"), 2).await;
    produce(&first, &[ids_to(0, 0..30), ids_to(1, 30..40)].concat()).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let group = unique_name("cq-pattern-group");
    let query_text = format!(
        "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{}/'
           OPTIONS ('value.format' 'json', 'topic.pattern' '{stem}-[a-z]-.*');
         CREATE EXTERNAL TABLE output (id BIGINT, t VARCHAR) STORED AS JSON LOCATION '{}/';
         INSERT INTO output (id, t) SELECT id, _topic FROM input;",
        brokers().kafka,
        out_dir.display()
    );
    let query = ContinuousQuery::from_sql(datafusion_topics::session_context(), &query_text)
        .await
        .unwrap();
    let options = RunOptions {
        checkpoint: dir.path().join("checkpoint").to_str().unwrap().to_string(),
        trigger: Trigger::AvailableNow,
        limits: Limits {
            max_records: Some(15),
            max_bytes: None,
        },
        max_batches: None,
        commit_group: Some(group.clone()),
        output_mode: None,
    };
    query.run(&options, |_| {}).await.unwrap();
    // A topic created between runs is read from its start by the next batch.
    let second = create_topic(&format!("{stem}-b"), 1).await;
    produce(&second, &ids_to(0, 100..105)).await;
    let mut lines = Vec::new();
    query
        .run(&options, |p| lines.push(p.to_string()))
        .await
        .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{second}/0:[0,5)"))),
        "{lines:?}"
    );
    let ctx = datafusion_topics::session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE o (id BIGINT, t VARCHAR) STORED AS JSON LOCATION '{}/'",
            out_dir.display()
        ),
    )
    .await;
    assert_eq!(
        ids(&ctx, "SELECT id FROM o").await,
        (0..40).chain(100..105).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&ctx, &format!("SELECT id FROM o WHERE t = '{second}'")).await,
        (100..105).collect::<Vec<_>>()
    );
    // The consumer group holds each topic's ends, as Kafka's own tool shows.
    let groups = group_offsets(&brokers().kafka, &group);
    for (topic, partition, end) in [
        (&first, "0", "30"),
        (&first, "1", "10"),
        (&second, "0", "5"),
    ] {
        let key = (topic.to_string(), partition.to_string());
        let got = groups
            .get(&key)
            .unwrap_or_else(|| panic!("no line for {topic}/{partition}: {groups:?}"));
        assert_eq!(got.0, end, "{groups:?}");
    }
}
