//! Scanning Kafka topics: exact message sets, ordering, snapshots, unbounded scans, LIMIT,
//! projection, EXPLAIN.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
use datafusion::physical_plan::{
    ExecutionPlanProperties, collect, execute_stream, execute_stream_partitioned,
};
use futures::StreamExt;

use crate::harness::*;

type Row = (
    i32,
    i64,
    Option<Vec<u8>>,
    Option<String>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn extract(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let part = b.column(0).as_primitive::<Int32Type>();
        let off = b.column(1).as_primitive::<Int64Type>();
        let key = b.column(2).as_binary::<i32>();
        let value = b.column(3).as_string::<i32>();
        let headers = b.column(4).as_map();
        for i in 0..b.num_rows() {
            let entries = headers.value(i);
            let names = entries.column(0).as_string::<i32>();
            let vals = entries.column(1).as_binary::<i32>();
            let hs = (0..entries.len())
                .map(|j| {
                    (
                        names.value(j).to_string(),
                        vals.is_valid(j).then(|| vals.value(j).to_vec()),
                    )
                })
                .collect();
            out.push((
                part.value(i),
                off.value(i),
                key.is_valid(i).then(|| key.value(i).to_vec()),
                value.is_valid(i).then(|| value.value(i).to_string()),
                hs,
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_returns_exactly_the_produced_messages_in_offset_order() {
    let topic = create_topic("exact", 3).await;
    let mut expected: Vec<Row> = Vec::new();
    let mut next_offset = [0i64; 3];
    // Three produce calls: several record batches per partition.
    for round in 0..3 {
        let mut msgs = Vec::new();
        for p in 0..3 {
            for i in 0..(3 + p as usize) {
                let n = round * 10 + i;
                let key = (n % 4 != 0).then(|| format!("k{p}-{n}").into_bytes());
                let value = (n % 5 != 1).then(|| format!("v{p}-{n}"));
                let headers = if n % 3 == 0 {
                    vec![
                        ("trace".to_string(), Some(format!("t{n}").into_bytes())),
                        ("empty".to_string(), None),
                    ]
                } else {
                    vec![]
                };
                msgs.push(TestMessage {
                    partition: p,
                    key: key.clone(),
                    value: value.clone().map(String::into_bytes),
                    headers: headers.clone(),
                    timestamp: None,
                });
                expected.push((p, next_offset[p as usize], key, value, headers));
                next_offset[p as usize] += 1;
            }
        }
        produce(&topic, &msgs).await;
    }

    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("value.format", "string"),
            ("scan.bounded.mode", "latest-offset"),
        ],
    )
    .await;
    let query = "SELECT _partition, _offset, _key, value, _headers FROM t";
    let mut got = extract(&sql(&ctx, query).await);
    got.sort_by_key(|r| (r.0, r.1));
    expected.sort_by_key(|r| (r.0, r.1));
    assert_eq!(got, expected);

    // One output partition per Kafka partition, each in contiguous offset order.
    let plan = physical_plan(&ctx, query).await;
    assert_eq!(plan.output_partitioning().partition_count(), 3);
    let streams = execute_stream_partitioned(plan, ctx.task_ctx()).unwrap();
    for stream in streams {
        let batches: Vec<RecordBatch> = stream.map(|b| b.unwrap()).collect().await;
        let rows = extract(&batches);
        let p = rows[0].0;
        assert!(
            rows.iter().all(|r| r.0 == p),
            "one Kafka partition per output partition"
        );
        let offsets: Vec<i64> = rows.iter().map(|r| r.1).collect();
        assert_eq!(offsets, (0..next_offset[p as usize]).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_scan_is_bounded_and_ignores_later_messages() {
    let topic = create_topic("snapshot", 3).await;
    produce(&topic, &json_messages(50, 3)).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let ctx = kafka_table(&topic, schema, &[("scan.bounded.mode", "latest-offset")]).await;

    let df = ctx
        .sql("SELECT count(*) AS n, sum(id) AS s FROM t")
        .await
        .unwrap();
    let plan = df.create_physical_plan().await.unwrap();
    assert!(!plan.boundedness().is_unbounded());
    produce(&topic, &json_messages(20, 3)).await; // after the query started
    let batches = collect(plan, ctx.task_ctx()).await.unwrap();
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        50
    );
    assert_eq!(
        batches[0].column(1).as_primitive::<Int64Type>().value(0),
        (0..50).sum::<i64>()
    );

    // GROUP BY and ORDER BY work on the bounded plan; a new query sees the new messages.
    let b = sql(
        &ctx,
        "SELECT _partition, count(*) FROM t GROUP BY _partition ORDER BY _partition",
    )
    .await;
    assert_eq!(
        sorted_rows(&b),
        vec![
            "|0|24|".to_string(),
            "|1|24|".to_string(),
            "|2|22|".to_string()
        ]
    );
    let b = sql(&ctx, "SELECT id FROM t ORDER BY id DESC LIMIT 1").await;
    assert_eq!(b[0].column(0).as_primitive::<Int64Type>().value(0), 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_scan_follows_the_log_and_limit_finishes() {
    let topic = create_topic("follow", 2).await;
    let first: Vec<TestMessage> = (0..5)
        .map(|i| TestMessage::value(i % 2, format!("a{i}")))
        .collect();
    produce(&topic, &first).await;
    let ctx = kafka_table(&topic, no_columns(), &[("value.format", "string")]).await;

    let plan = physical_plan(&ctx, "SELECT value FROM t").await;
    assert!(plan.boundedness().is_unbounded());
    let running = || datafusion_topics::source::running_readers(&topic);
    assert_eq!(running(), 0);
    let mut stream = execute_stream(plan, ctx.task_ctx()).unwrap();
    let mut seen = next_strings(&mut stream, 5).await;
    let later: Vec<TestMessage> = (0..3)
        .map(|i| TestMessage::value(i % 2, format!("b{i}")))
        .collect();
    produce(&topic, &later).await;
    seen.extend(next_strings(&mut stream, 3).await);
    seen.sort();
    assert_eq!(seen, ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"]);

    // Dropping the stream releases the partition readers promptly.
    assert_eq!(running(), 2, "one reader per partition");
    drop(stream);
    wait_for_readers_released(&topic, "drop").await;

    // LIMIT on an unbounded table returns n rows and finishes.
    let b = tokio::time::timeout(
        Duration::from_secs(30),
        sql(&ctx, "SELECT value FROM t LIMIT 3"),
    )
    .await
    .unwrap();
    assert_eq!(rows(&b), 3);
    // Once the LIMIT is satisfied the readers are released (partition 1 may still have been waiting).
    wait_for_readers_released(&topic, "LIMIT finished").await;
    let plan = physical_plan(&ctx, "SELECT value FROM t LIMIT 3").await;
    assert!(
        datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string()
            .contains("limit=3")
    );

    // A LIMIT larger than what exists waits for the missing rows, then finishes.
    let ctx2 = ctx.clone();
    let waiting = tokio::spawn(async move { sql(&ctx2, "SELECT value FROM t LIMIT 10").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "only 8 messages exist yet");
    produce(
        &topic,
        &[TestMessage::value(0, "c0"), TestMessage::value(1, "c1")],
    )
    .await;
    let b = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows(&b), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_builds_only_the_selected_columns() {
    let topic = create_topic("project", 2).await;
    produce(&topic, &json_messages(10, 2)).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let ctx = kafka_table(&topic, schema, &[("scan.bounded.mode", "latest-offset")]).await;

    let b = sql(&ctx, "SELECT name, _offset FROM t WHERE id = 7").await;
    assert_eq!(b[0].schema().fields().len(), 2);
    assert_eq!(sorted_rows(&b), vec!["|name-7|3|".to_string()]);

    let b = sql(&ctx, "SELECT * FROM t WHERE id = 2").await;
    let names: Vec<_> = b[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "_topic",
            "_partition",
            "_offset",
            "_timestamp",
            "_key",
            "_headers"
        ]
    );
    assert_eq!(b[0].column(2).as_string::<i32>().value(0), topic);

    let explain = sql(&ctx, "EXPLAIN SELECT _partition, _offset FROM t").await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&explain)
        .unwrap()
        .to_string();
    assert!(text.contains("projection=[_partition, _offset]"), "{text}");
    assert!(text.contains(&format!("/{topic}")), "{text}");
    assert!(
        text.contains("0: [0, 5)") && text.contains("1: [0, 5)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_format_and_secrets_stay_hidden() {
    let topic = create_topic("secret", 1).await;
    produce(&topic, &[TestMessage::value(0, vec![0u8, 159, 146, 150])]).await;
    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("scan.bounded.mode", "latest-offset"),
            ("kafka.sasl.username", "alice"),
            ("kafka.sasl.password", "hunter2-secret"),
        ],
    )
    .await;
    let b = sql(&ctx, "SELECT value FROM t").await;
    assert_eq!(
        b[0].column(0).as_binary::<i32>().value(0),
        &[0u8, 159, 146, 150]
    );
    let explain = sql(&ctx, "EXPLAIN VERBOSE SELECT * FROM t").await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&explain)
        .unwrap()
        .to_string();
    assert!(!text.contains("hunter2"), "{text}");
    let table = ctx.table_provider("t").await.unwrap();
    let debug = format!("{table:?}");
    assert!(
        debug.contains("alice") && !debug.contains("hunter2"),
        "{debug}"
    );
}
