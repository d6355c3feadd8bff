//! Filters on _partition / _offset / _timestamp pushed into offset ranges, LIMIT pushdown,
//! bounded plans from predicates, and the scan metrics that prove what was read.

use std::sync::Arc;
use std::time::Duration;

use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, collect, displayable};
use datafusion::prelude::SessionContext;
use datafusion_topics::TopicScanExec;
use tokio::sync::OnceCell;

use crate::harness::*;

const BIG: usize = 100_000;

/// A 3-partition topic of 100k short messages, made once for the whole test process.
async fn big_topic() -> &'static str {
    static TOPIC: OnceCell<String> = OnceCell::const_new();
    TOPIC
        .get_or_init(|| async {
            let topic = create_topic("big", 3).await;
            let msgs: Vec<TestMessage> = (0..BIG)
                .map(|i| TestMessage::value((i % 3) as i32, format!("m{i}")))
                .collect();
            for chunk in msgs.chunks(20_000) {
                produce(&topic, chunk).await;
            }
            topic
        })
        .await
}

/// Runs a query and returns (partition, offset) pairs, the plan, and messages fetched.
async fn run(
    ctx: &SessionContext,
    query: &str,
) -> (Vec<(i32, i64)>, Arc<dyn ExecutionPlan>, usize) {
    let plan = physical_plan(ctx, query).await;
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    let pairs = partition_offsets(&batches);
    let fetched = fetched(&plan);
    (pairs, plan, fetched)
}

/// Sum of the `messages_fetched` metric over the topic scans of a plan.
fn fetched(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut total = 0;
    if plan.downcast_ref::<TopicScanExec>().is_some() {
        total += plan
            .metrics()
            .and_then(|m| m.sum_by_name("messages_fetched"))
            .map_or(0, |v| v.as_usize());
    }
    for child in plan.children() {
        total += fetched(child);
    }
    total
}

fn scan_of(plan: &Arc<dyn ExecutionPlan>) -> Option<&TopicScanExec> {
    plan.downcast_ref::<TopicScanExec>()
        .or_else(|| plan.children().into_iter().find_map(scan_of))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_range_reads_only_the_range() {
    let topic = big_topic().await;
    let ctx = kafka_table(topic, no_columns(), &[]).await; // an unbounded table
    let (pairs, plan, fetched) =
        run(&ctx, "SELECT _partition, _offset FROM t WHERE _partition = 1 AND _offset >= 5000 AND _offset < 6000").await;
    assert_eq!(pairs, (5000..6000).map(|o| (1, o)).collect::<Vec<_>>());
    assert!(
        !plan.boundedness().is_unbounded(),
        "every selected partition has an end"
    );
    assert_eq!(fetched, 1000, "cost follows the range, not the topic");
    let text = displayable(plan.as_ref()).indent(true).to_string();
    assert!(text.contains("partitions=[1: [5000, 6000)]"), "{text}");
    assert!(
        !text.contains("FilterExec"),
        "exact filters leave no FilterExec: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn or_of_per_partition_ranges_and_in_lists() {
    let topic = big_topic().await;
    let ctx = kafka_table(topic, no_columns(), &[]).await;
    let (pairs, plan, fetched) = run(
        &ctx,
        "SELECT _partition, _offset FROM t \
         WHERE (_partition = 0 AND _offset >= 100 AND _offset < 200) OR (_partition = 2 AND _offset < 50)",
    )
    .await;
    let expected: Vec<(i32, i64)> = (100..200)
        .map(|o| (0, o))
        .chain((0..50).map(|o| (2, o)))
        .collect();
    assert_eq!(pairs, expected);
    assert_eq!(fetched, 150);
    assert_eq!(
        scan_of(&plan).unwrap().scans().len(),
        2,
        "partition 1 is not read at all"
    );

    let (pairs, _, fetched) = run(
        &ctx,
        "SELECT _partition, _offset FROM t WHERE _partition IN (0, 2) AND _offset IN (7, 1, 30000)",
    )
    .await;
    assert_eq!(
        pairs,
        vec![(0, 1), (0, 7), (0, 30000), (2, 1), (2, 7), (2, 30000)]
    );
    assert_eq!(fetched, 6);

    let (pairs, _, _) = run(
        &ctx,
        "SELECT _partition, _offset FROM t WHERE _offset BETWEEN 10 AND 12 AND _partition <> 1",
    )
    .await;
    assert_eq!(
        pairs,
        vec![(0, 10), (0, 11), (0, 12), (2, 10), (2, 11), (2, 12)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradiction_reads_nothing() {
    let topic = big_topic().await;
    let ctx = kafka_table(topic, no_columns(), &[]).await;
    let (pairs, plan, fetched) = run(
        &ctx,
        "SELECT _partition, _offset FROM t WHERE _offset < 5 AND _offset > 10",
    )
    .await;
    assert!(pairs.is_empty());
    assert_eq!(fetched, 0);
    assert!(scan_of(&plan).unwrap().scans().is_empty());
    let (pairs, _, _) = run(
        &ctx,
        "SELECT _partition, _offset FROM t WHERE _partition = 7",
    )
    .await;
    assert!(pairs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicates_bound_an_unbounded_table_and_unbounded_aggregates_explain_themselves() {
    let topic = big_topic().await;
    let ctx = kafka_table(topic, no_columns(), &[]).await;
    let b = sql(&ctx, "SELECT _partition, count(*) FROM t WHERE _offset < 1000 GROUP BY _partition ORDER BY _partition").await;
    assert_eq!(
        sorted_rows(&b),
        vec![
            "|0|1000|".to_string(),
            "|1|1000|".to_string(),
            "|2|1000|".to_string()
        ]
    );

    let err = sql_err(&ctx, "SELECT count(*) FROM t").await;
    assert!(
        err.contains("unbounded") && err.contains("scan.bounded.mode") && err.contains("_offset"),
        "{err}"
    );
    assert!(err.contains(topic), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_stops_reading_early() {
    let topic = big_topic().await;
    let ctx = kafka_table(
        topic,
        no_columns(),
        &[("scan.bounded.mode", "latest-offset")],
    )
    .await;
    let (pairs, plan, fetched) = run(&ctx, "SELECT _partition, _offset FROM t LIMIT 10").await;
    assert_eq!(pairs.len(), 10);
    assert!(
        fetched <= 30,
        "each partition stops at the limit, fetched {fetched}"
    );
    assert_eq!(scan_of(&plan).unwrap().limit(), Some(10));

    // Exact filters keep LIMIT pushdown alive.
    let (pairs, plan, fetched) = run(
        &ctx,
        "SELECT _partition, _offset FROM t WHERE _partition = 2 AND _offset >= 500 LIMIT 5",
    )
    .await;
    assert_eq!(pairs, (500..505).map(|o| (2, o)).collect::<Vec<_>>());
    assert_eq!(fetched, 5);
    assert_eq!(scan_of(&plan).unwrap().limit(), Some(5));

    // Unbounded table: LIMIT finishes too, reading only what it needs.
    let ctx = kafka_table(topic, no_columns(), &[]).await;
    let (pairs, _, fetched) = tokio::time::timeout(
        Duration::from_secs(30),
        run(
            &ctx,
            "SELECT _partition, _offset FROM t WHERE _offset >= 90 LIMIT 4",
        ),
    )
    .await
    .unwrap();
    assert_eq!(pairs.len(), 4);
    assert!(fetched <= 12, "fetched {fetched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_shows_ranges_and_metrics() {
    let topic = big_topic().await;
    let ctx = kafka_table(topic, no_columns(), &[("value.format", "string")]).await;
    let b = sql(
        &ctx,
        "EXPLAIN ANALYZE SELECT value FROM t WHERE _partition = 0 AND _offset < 100",
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&b)
        .unwrap()
        .to_string();
    for needle in [
        "partitions=[0: [0, 100)]",
        "messages_fetched=100",
        "bytes_fetched=",
        "decode_time=",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_lower_bound_seeks_and_returns_exactly_the_later_rows() {
    let topic = create_topic("tsfilter", 2).await;
    let base = 1_600_000_000_000i64;
    // Create times mostly increase, with a few late (out-of-order) messages.
    let mut msgs = Vec::new();
    for i in 0..400i64 {
        let ts = if i % 50 == 49 {
            base + (i - 30) * 1000
        } else {
            base + i * 1000
        };
        msgs.push(TestMessage {
            timestamp: Some(ts),
            ..TestMessage::value((i % 2) as i32, format!("m{i}"))
        });
    }
    produce(&topic, &msgs).await;
    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[("scan.bounded.mode", "latest-offset")],
    )
    .await;
    let cutoff = base + 300 * 1000;
    let query = format!(
        "SELECT _partition, _offset FROM t WHERE _timestamp >= to_timestamp_millis({cutoff})"
    );
    let (pairs, _, fetched) = run(&ctx, &query).await;
    let mut expected: Vec<(i32, i64)> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| m.timestamp.unwrap() >= cutoff)
        .map(|(i, m)| (m.partition, (i / 2) as i64))
        .collect();
    expected.sort();
    assert_eq!(pairs, expected);
    assert!(
        fetched < 150,
        "the scan seeks to the timestamp instead of reading all 400 (fetched {fetched})"
    );

    // An upper bound with a declared skew ends the scan; the result stays exact.
    let ctx = kafka_table(
        &topic,
        no_columns(),
        &[
            ("scan.bounded.mode", "latest-offset"),
            ("scan.timestamp.max-skew", "40s"),
        ],
    )
    .await;
    let hi = base + 100 * 1000;
    let (pairs, _, fetched) = run(
        &ctx,
        &format!("SELECT _partition, _offset FROM t WHERE _timestamp < to_timestamp_millis({hi})"),
    )
    .await;
    let mut expected: Vec<(i32, i64)> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| m.timestamp.unwrap() < hi)
        .map(|(i, m)| (m.partition, (i / 2) as i64))
        .collect();
    expected.sort();
    assert_eq!(pairs, expected);
    assert!(
        fetched < 200,
        "the upper bound ended the scan (fetched {fetched})"
    );
}
