//! What only a real Apache Kafka log shows: compressed record batches, records deleted before
//! and during a scan and between micro-batches, log-append-time timestamps, transactional
//! input (control records and aborted messages leave offset gaps), compacted topics, a
//! partition added while a continuous query runs, and consumer-group commits the broker's own
//! tooling sees.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_topics::query::{ContinuousQuery, Limits, RunOptions, Trigger};
use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::admin::AdminOptions;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::harness::*;

fn id_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

/// One `i64` from the first column of a one-row result.
async fn scalar(ctx: &SessionContext, query: &str) -> i64 {
    let batches = sql(ctx, query).await;
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// Deletes the records of `partition` below `before` (DeleteRecords).
async fn delete_records(topic: &str, partition: i32, before: i64) {
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Offset(before))
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let result = admin()
        .delete_records(&tpl, &opts)
        .await
        .expect("delete_records request");
    for elem in result.elements() {
        elem.error().expect("delete_records on the broker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_reads_and_writes() {
    for codec in ["zstd", "lz4", "snappy", "gzip"] {
        let topic = create_topic(&format!("codec-{codec}"), 2).await;
        let producer = producer_with(&[("compression.type", codec)]);
        produce_with(&producer, &topic, &json_messages(1000, 2)).await;
        // INSERT compresses too (the table passes kafka.* to its producer).
        let ctx = kafka_table(
            &topic,
            id_schema(),
            &[
                ("value.format", "json"),
                ("scan.bounded.mode", "latest-offset"),
                ("kafka.compression.type", codec),
            ],
        )
        .await;
        assert_eq!(
            scalar(&ctx, "SELECT count(*) FROM t").await,
            1000,
            "{codec}"
        );
        sql(&ctx, "INSERT INTO t (id) VALUES (5000), (5001)").await;
        let ctx = kafka_table(
            &topic,
            id_schema(),
            &[
                ("value.format", "json"),
                ("scan.bounded.mode", "latest-offset"),
            ],
        )
        .await;
        assert_eq!(
            scalar(&ctx, "SELECT sum(id) FROM t").await,
            (0..1000).sum::<i64>() + 10_001,
            "{codec}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_deleted_during_a_scan_fail_it_or_are_skipped_and_counted() {
    for fail in [true, false] {
        let topic = create_topic("deleted-mid-scan", 1).await;
        produce(&topic, &json_messages(100_000, 1)).await;
        // A small read-ahead, so the deletion lands ahead of what the reader fetched.
        let config = SessionConfig::new().with_batch_size(100);
        let ctx = SessionContext::new_with_state(
            datafusion_topics::session_state_builder(config).build(),
        );
        let table = datafusion_topics::TopicTable::open(
            &location(&topic),
            id_schema(),
            &opts(&[
                ("value.format", "json"),
                ("scan.bounded.mode", "latest-offset"),
                (
                    "scan.fail-on-data-loss",
                    if fail { "true" } else { "false" },
                ),
                ("kafka.queued.min.messages", "100"),
                ("kafka.max.partition.fetch.bytes", "8192"),
            ]),
        )
        .await
        .unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let mut stream = ctx
            .sql("SELECT _offset FROM t")
            .await
            .unwrap()
            .execute_stream()
            .await
            .unwrap();
        let mut offsets: Vec<i64> = Vec::new();
        let first = stream.next().await.unwrap().unwrap();
        offsets.extend(first.column(0).as_primitive::<Int64Type>().values().iter());
        delete_records(&topic, 0, 50_000).await;
        let mut error = None;
        while let Some(batch) = stream.next().await {
            match batch {
                Ok(b) => offsets.extend(b.column(0).as_primitive::<Int64Type>().values().iter()),
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        let gap = offsets
            .windows(2)
            .find(|w| w[1] != w[0] + 1)
            .map(|w| (w[0], w[1]));
        if fail {
            let err = error.expect("the scan must fail once records it needs are gone");
            assert!(
                err.contains(&topic) && err.contains("partition 0") && err.contains("data loss"),
                "{err}"
            );
            assert!(
                offsets.len() < 50_000,
                "read {} rows before failing",
                offsets.len()
            );
        } else {
            assert!(error.is_none(), "{error:?}");
            let (before, after) = gap.expect("a gap where the records were deleted");
            assert!(before < 50_000 && after == 50_000, "gap {before} → {after}");
            assert_eq!(*offsets.last().unwrap(), 99_999);
            assert_eq!(offsets.len() as i64, 100_000 - (after - before - 1));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_deleted_before_a_scan_are_skipped_and_counted_when_allowed() {
    let topic = create_topic("deleted-before", 1).await;
    produce(&topic, &json_messages(100, 1)).await;
    delete_records(&topic, 0, 40).await;
    let pairs = |fail: &'static str| {
        [
            ("value.format", "json"),
            ("scan.startup.mode", "specific-offsets"),
            ("scan.startup.specific-offsets", "partition:0,offset:10"),
            ("scan.bounded.mode", "latest-offset"),
            ("scan.fail-on-data-loss", fail),
        ]
    };
    let ctx = kafka_table(&topic, id_schema(), &pairs("true")).await;
    let err = sql_err(&ctx, "SELECT count(*) FROM t").await;
    assert!(
        err.contains(&topic) && err.contains("offset 10") && err.contains("[40, 100)"),
        "{err}"
    );
    let ctx = kafka_table(&topic, id_schema(), &pairs("false")).await;
    assert_eq!(scalar(&ctx, "SELECT count(*) FROM t").await, 60);
    let explain = sql(&ctx, "EXPLAIN ANALYZE SELECT count(*) FROM t").await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&explain)
        .unwrap()
        .to_string();
    assert!(text.contains("offsets_skipped=30"), "{text}");
}

/// Runs `query` (one INSERT … SELECT over `input`) to the end of what is there.
async fn run_available_now(
    sql_text: &str,
    checkpoint: &str,
    limits: Limits,
) -> datafusion_topics::Result<u64> {
    let query = ContinuousQuery::from_sql(datafusion_topics::session_context(), sql_text)
        .await
        .expect("the query plans");
    let options = RunOptions {
        checkpoint: checkpoint.to_string(),
        trigger: Trigger::AvailableNow,
        limits,
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    query.run(&options, |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_deleted_between_micro_batches_are_data_loss_naming_the_offsets() {
    for fail in [true, false] {
        let input = create_topic("deleted-between", 1).await;
        produce(&input, &json_messages(1000, 1)).await;
        let output = unique_name("deleted-between-out");
        let b = &brokers().kafka;
        let query = format!(
            "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{b}/{input}'
               OPTIONS ('value.format' 'json', 'scan.fail-on-data-loss' '{fail}');
             CREATE EXTERNAL TABLE output (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{b}/{output}'
               OPTIONS ('value.format' 'json', 'topic.create' 'true');
             INSERT INTO output (id) SELECT id FROM input;"
        );
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().to_str().unwrap();
        // One batch of 100, then the records up to 500 go.
        let first = ContinuousQuery::from_sql(datafusion_topics::session_context(), &query)
            .await
            .unwrap();
        let options = RunOptions {
            checkpoint: checkpoint.to_string(),
            trigger: Trigger::AvailableNow,
            limits: Limits {
                max_records: Some(100),
                max_bytes: None,
            },
            max_batches: Some(1),
            commit_group: None,
            output_mode: None,
        };
        assert_eq!(first.run(&options, |_| {}).await.unwrap(), 1);
        delete_records(&input, 0, 500).await;
        let result = run_available_now(&query, checkpoint, Limits::default()).await;
        if fail {
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains(&input) && err.contains("partition 0") && err.contains("100..500"),
                "{err}"
            );
        } else {
            result.unwrap();
            let record =
                std::fs::read_to_string(dir.path().join("offsets/00000000000000000001.json"))
                    .unwrap();
            assert!(
                record.contains("\"skipped\"") && record.contains("400"),
                "{record}"
            );
            let ctx = kafka_table(
                &output,
                id_schema(),
                &[
                    ("value.format", "json"),
                    ("scan.bounded.mode", "latest-offset"),
                ],
            )
            .await;
            assert_eq!(scalar(&ctx, "SELECT count(*) FROM t").await, 600);
            assert_eq!(
                scalar(&ctx, "SELECT min(id) FROM t WHERE id >= 100").await,
                500
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_upper_bounds_end_the_scan_exactly() {
    let topic = create_topic_with(
        "log-append",
        2,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    produce(&topic, &json_messages(100, 2)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let boundary = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(50)).await;
    produce(&topic, &json_messages(60, 2)).await;
    // No bounded mode: the upper bound on _timestamp alone makes the scan end, exactly.
    let ctx = kafka_table(&topic, id_schema(), &[("value.format", "json")]).await;
    let before =
        format!("SELECT count(*) FROM t WHERE _timestamp < to_timestamp_millis({boundary})");
    assert_eq!(scalar(&ctx, &before).await, 100);
    let after = format!(
        "SELECT count(*) FROM t WHERE _timestamp >= to_timestamp_millis({boundary}) AND _offset < 80"
    );
    assert_eq!(scalar(&ctx, &after).await, 60);
    let plan = physical_plan(&ctx, &before).await;
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(
        text.contains("0: [0, 50)") && text.contains("1: [0, 50)"),
        "{text}"
    );
}

/// A transactional producer on the test broker.
fn transactional_producer(id: &str) -> FutureProducer {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .set("transactional.id", id)
        .set("message.timeout.ms", "30000")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    producer
}

async fn send_in_transaction(
    producer: &FutureProducer,
    topic: &str,
    ids: std::ops::Range<i64>,
    commit: bool,
) {
    producer.begin_transaction().unwrap();
    for id in ids {
        let value = format!(r#"{{"id":{id}}}"#);
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    if commit {
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
    } else {
        producer.abort_transaction(Duration::from_secs(30)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_input_skips_aborted_messages_and_markers_end_ranges() {
    let topic = create_topic("txn-input", 1).await;
    let producer = transactional_producer(&unique_name("txn-input-producer"));
    // Offsets: 0–4 committed, 5 commit marker, 6–10 aborted, 11 abort marker, 12–16
    // committed, 17 commit marker.
    send_in_transaction(&producer, &topic, 0..5, true).await;
    send_in_transaction(&producer, &topic, 100..105, false).await;
    send_in_transaction(&producer, &topic, 5..10, true).await;
    let snapshot = [
        ("value.format", "json"),
        ("scan.bounded.mode", "latest-offset"),
    ];
    let ctx = kafka_table(&topic, id_schema(), &snapshot).await;
    // read_committed is the default: aborted messages are not rows; the scan ends although
    // its last offset (17) is a marker no message will ever fill.
    assert_eq!(scalar(&ctx, "SELECT count(*) FROM t").await, 10);
    assert_eq!(scalar(&ctx, "SELECT sum(id) FROM t").await, 45);
    // A range whose last offsets are markers and aborted messages ends too.
    assert_eq!(
        scalar(&ctx, "SELECT count(*) FROM t WHERE _offset < 12").await,
        5
    );
    assert_eq!(
        scalar(
            &ctx,
            "SELECT count(*) FROM t WHERE _offset >= 5 AND _offset < 12"
        )
        .await,
        0
    );
    // Consecutive ranges, each starting where the previous one ended (the second read of a
    // partition takes the consumer the first one parked): ranges ending on markers or
    // aborted messages still end, and no row is lost or read twice.
    let mut counts = Vec::new();
    for start in (0..18).step_by(3) {
        let query = format!(
            "SELECT count(*) FROM t WHERE _offset >= {start} AND _offset < {}",
            start + 3
        );
        counts.push(scalar(&ctx, &query).await);
    }
    assert_eq!(counts, [3, 2, 0, 0, 3, 2]);
    let uncommitted = kafka_table(
        &topic,
        id_schema(),
        &[
            ("value.format", "json"),
            ("scan.bounded.mode", "latest-offset"),
            ("kafka.isolation.level", "read_uncommitted"),
        ],
    )
    .await;
    assert_eq!(scalar(&uncommitted, "SELECT count(*) FROM t").await, 15);

    // An open transaction: a read-committed snapshot ends at the last stable offset instead
    // of waiting for the transaction to finish.
    producer.begin_transaction().unwrap();
    producer
        .send(
            FutureRecord::<(), _>::to(&topic)
                .partition(0)
                .payload("{\"id\":1000}"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let ctx = kafka_table(&topic, id_schema(), &snapshot).await;
    let started = Instant::now();
    assert_eq!(scalar(&ctx, "SELECT count(*) FROM t").await, 10);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    producer
        .commit_transaction(Duration::from_secs(30))
        .unwrap();
    let ctx = kafka_table(&topic, id_schema(), &snapshot).await;
    assert_eq!(scalar(&ctx, "SELECT count(*) FROM t").await, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_leave_gaps_that_ranges_step_over() {
    let topic = create_topic_with(
        "compacted",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "100"),
        ],
    )
    .await;
    // 20 keys written 50 times each; compaction keeps the last of each key.
    let mut messages = Vec::new();
    for round in 0..50 {
        for key in 0..20 {
            messages.push(TestMessage {
                partition: 0,
                key: Some(format!("k{key}").into_bytes()),
                value: Some(format!(r#"{{"id":{}}}"#, round * 100 + key).into_bytes()),
                ..Default::default()
            });
        }
    }
    produce(&topic, &messages).await;
    let snapshot = [
        ("value.format", "json"),
        ("scan.bounded.mode", "latest-offset"),
    ];
    // New segments roll with later messages; wait until the cleaner has compacted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        produce(
            &topic,
            &[TestMessage {
                partition: 0,
                key: Some(b"tick".to_vec()),
                value: Some(b"{\"id\":-1}".to_vec()),
                ..Default::default()
            }],
        )
        .await;
        let ctx = kafka_table(&topic, id_schema(), &snapshot).await;
        if scalar(&ctx, "SELECT count(*) FROM t WHERE _offset < 1000").await < 1000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log cleaner did not compact {topic} within 60 s"
        );
    }
    let ctx = kafka_table(&topic, id_schema(), &snapshot).await;
    // The last round survives whole; ranges ending on removed offsets still end.
    assert_eq!(
        scalar(
            &ctx,
            "SELECT count(*) FROM t WHERE _offset >= 980 AND _offset < 1000"
        )
        .await,
        20
    );
    assert_eq!(
        scalar(&ctx, "SELECT count(*) FROM t WHERE _offset < 500").await,
        0
    );
    let latest = sql(
        &ctx,
        "SELECT count(DISTINCT _key) FROM t WHERE _offset < 1000",
    )
    .await;
    assert_eq!(latest[0].column(0).as_primitive::<Int64Type>().value(0), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_added_while_a_continuous_query_runs_is_read_from_its_start() {
    let input = create_topic("grow-live", 2).await;
    produce(&input, &json_messages(100, 2)).await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let b = &brokers().kafka;
    let query_text = format!(
        "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{b}/{input}' OPTIONS ('value.format' 'json');
         CREATE EXTERNAL TABLE output (id BIGINT, p INT) STORED AS JSON LOCATION '{}/';
         INSERT INTO output (id, p) SELECT id, _partition FROM input;",
        out_dir.display()
    );
    let query = ContinuousQuery::from_sql(datafusion_topics::session_context(), &query_text)
        .await
        .unwrap();
    let options = RunOptions {
        checkpoint: dir.path().join("checkpoint").to_str().unwrap().to_string(),
        trigger: Trigger::Interval(Duration::from_millis(100)),
        limits: Limits::default(),
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    let partitions_read = Arc::new(std::sync::Mutex::new(BTreeMap::<i32, i64>::new()));
    let seen = Arc::clone(&partitions_read);
    let running = tokio::spawn(async move {
        query
            .run(&options, move |p| {
                let mut seen = seen.lock().unwrap();
                for ranges in p.sources.values() {
                    for (partition, r) in &ranges.partitions {
                        *seen.entry(partition.partition).or_default() += r.len() as i64;
                    }
                }
            })
            .await
    });
    let wait_for = |want: BTreeMap<i32, i64>| {
        let seen = Arc::clone(&partitions_read);
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while *seen.lock().unwrap() != want {
                assert!(
                    Instant::now() < deadline,
                    "read {:?}, want {want:?}",
                    seen.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for([(0, 50), (1, 50)].into()).await;
    let grow = rdkafka::admin::NewPartitions::new(&input, 3);
    let added = admin()
        .create_partitions([&grow], &AdminOptions::new())
        .await
        .unwrap();
    assert!(added.iter().all(|r| r.is_ok()), "{added:?}");
    produce(&input, &json_messages(30, 3)).await;
    wait_for([(0, 60), (1, 60), (2, 10)].into()).await;
    running.abort();
    let ctx = datafusion_topics::session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE o (id BIGINT, p INT) STORED AS JSON LOCATION '{}/'",
            out_dir.display()
        ),
    )
    .await;
    let per_partition = sql(&ctx, "SELECT p, count(*) FROM o GROUP BY p ORDER BY p").await;
    // (p, count): the first two columns as (INT, BIGINT) pairs, sorted by p.
    assert_eq!(
        partition_offsets(&per_partition),
        vec![(0, 60), (1, 60), (2, 10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commits_are_visible_to_kafkas_consumer_group_tool() {
    let input = create_topic("group-tool", 2).await;
    produce(&input, &json_messages(40, 2)).await;
    let output = unique_name("group-tool-out");
    let group = unique_name("dft-lag");
    let b = &brokers().kafka;
    let query_text = format!(
        "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{b}/{input}' OPTIONS ('value.format' 'json');
         CREATE EXTERNAL TABLE output (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{b}/{output}'
           OPTIONS ('value.format' 'json', 'topic.create' 'true');
         INSERT INTO output (id) SELECT id FROM input;"
    );
    let query = ContinuousQuery::from_sql(datafusion_topics::session_context(), &query_text)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        checkpoint: dir.path().to_str().unwrap().to_string(),
        trigger: Trigger::AvailableNow,
        limits: Limits::default(),
        max_batches: None,
        commit_group: Some(group.clone()),
        output_mode: None,
    };
    query.run(&options, |_| {}).await.unwrap();
    produce(&input, &json_messages(6, 2)).await;
    // 20 committed of 23 in each partition, lag 3.
    let groups = group_offsets(&brokers().kafka, &group);
    for partition in ["0", "1"] {
        let got = groups
            .get(&(input.clone(), partition.to_string()))
            .unwrap_or_else(|| panic!("no line for partition {partition}: {groups:?}"));
        assert_eq!(
            (got.0.as_str(), got.1.as_str(), got.2.as_str()),
            ("20", "23", "3"),
            "{groups:?}"
        );
    }
}
