//! Broker-free tests of tables over several topics and patterns, `_topic` pushdown, live
//! discovery of partitions and topics, deleted topics under a live scan, and split scans.

use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int32Type;
use datafusion::prelude::SessionContext;

use crate::connectors::memory::{MemoryMessage, delete_memory_topic, memory_topic};
use crate::session::session_context;
use dft_test_support::{spawn_query, within};

/// How long a live query may take to see what the test makes happen.
const LIMIT: Duration = Duration::from_secs(10);

/// A fresh topic name starting with `prefix`.
fn name(prefix: &str) -> String {
    format!("{prefix}-{}", crate::checkpoint::new_id())
}

/// Appends `{"id": i}` for each `i` in `ids` to `partition` of `topic`.
fn append(topic: &str, partition: i32, ids: impl IntoIterator<Item = i64>) {
    let t = memory_topic(topic, 1);
    for i in ids {
        t.append(
            partition,
            MemoryMessage::value(format!(r#"{{"id":{i}}}"#), i),
        )
        .unwrap();
    }
}

/// A session with table `t` over the memory topics at `location`, `options` after a comma.
async fn table(location: &str, options: &str) -> SessionContext {
    let topics = location.trim_start_matches("mem:///");
    super::tests::ctx_with(topics, options.trim_start_matches(", ")).await
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    super::tests::collect(ctx, sql).await
}

async fn text(ctx: &SessionContext, sql: &str) -> String {
    arrow::util::pretty::pretty_format_batches(&rows(ctx, sql).await)
        .unwrap()
        .to_string()
}

fn ids(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    super::tests::ints(batches, column)
}

#[tokio::test]
async fn a_table_over_a_list_of_topics_reads_each_and_pushes_topic_filters_down() {
    let (a, b) = (name("list-a"), name("list-b"));
    memory_topic(&a, 2);
    memory_topic(&b, 1);
    append(&a, 0, 0..5);
    append(&a, 1, 5..8);
    append(&b, 0, 100..110);
    let ctx = table(
        &format!("mem:///{a},{b}"),
        ", 'scan.bounded.mode' 'latest-offset'",
    )
    .await;
    assert_eq!(
        ids(&rows(&ctx, "SELECT id FROM t").await, 0),
        (0..8).chain(100..110).collect::<Vec<_>>()
    );
    let counts = text(
        &ctx,
        "SELECT _topic = (SELECT min(_topic) FROM t) AS first, count(*) AS n FROM t GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert!(
        counts.contains("| false | 10 |") && counts.contains("| true  | 8  |"),
        "{counts}"
    );
    // Only b's partition is planned for `_topic = b`; every line names its topic.
    let sql = format!("SELECT id FROM t WHERE _topic = '{b}'");
    let plan = text(&ctx, &format!("EXPLAIN {sql}")).await;
    assert!(plan.contains(&format!("{b}/0: [0, 10)")), "{plan}");
    assert!(!plan.contains(&format!("{a}/")), "{plan}");
    assert_eq!(
        ids(&rows(&ctx, &sql).await, 0),
        (100..110).collect::<Vec<_>>()
    );
    let sql = format!("SELECT id FROM t WHERE _topic = '{a}' AND _partition = 1");
    assert_eq!(ids(&rows(&ctx, &sql).await, 0), vec![5, 6, 7]);
    // Topic-level filters DataFusion keeps (NOT IN) still give the right rows.
    let sql = format!("SELECT id FROM t WHERE _topic NOT IN ('{a}')");
    assert_eq!(
        ids(&rows(&ctx, &sql).await, 0),
        (100..110).collect::<Vec<_>>()
    );
    // A table over several topics is read-only and refuses per-partition offsets.
    let err = ctx
        .sql("INSERT INTO t (id) VALUES (1)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("without a writer") || err.contains("several topics"),
        "{err}"
    );
    let err = session_context()
        .sql(&format!(
            "CREATE EXTERNAL TABLE u (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{a},{b}' \
             OPTIONS ('value.format' 'json', 'scan.startup.specific-offsets' 'partition:0,offset:1')"
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("several topics") && err.contains("specific-offsets"),
        "{err}"
    );
    let missing = name("list-missing");
    let err = session_context()
        .sql(&format!(
            "CREATE EXTERNAL TABLE u (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{a},{missing}' \
             OPTIONS ('value.format' 'json')"
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&missing), "{err}");
}

#[tokio::test]
async fn a_pattern_reads_every_matching_topic_including_later_ones() {
    let prefix = name("pat");
    let (x, y) = (format!("{prefix}-x"), format!("{prefix}-y"));
    memory_topic(&x, 1);
    append(&x, 0, 0..3);
    // Not matched: the whole name must match.
    let other = format!("{prefix}-x-other-suffix.z");
    memory_topic(&other, 1);
    append(&other, 0, 50..60);
    let ctx = table(
        "mem:///",
        &format!(", 'topic.pattern' '{prefix}-[a-z]', 'scan.bounded.mode' 'latest-offset'"),
    )
    .await;
    assert_eq!(ids(&rows(&ctx, "SELECT id FROM t").await, 0), vec![0, 1, 2]);
    let plan = text(&ctx, "EXPLAIN SELECT id FROM t").await;
    assert!(
        plan.contains(&format!("memory topics matching '{prefix}-[a-z]'"))
            && plan.contains(&format!("{x}/0: [0, 3)")),
        "{plan}"
    );
    // A topic created later is read by the next query.
    memory_topic(&y, 1);
    append(&y, 0, 10..12);
    assert_eq!(
        ids(&rows(&ctx, "SELECT id FROM t").await, 0),
        vec![0, 1, 2, 10, 11]
    );
    let bad = session_context()
        .sql(&format!(
            "CREATE EXTERNAL TABLE u (id BIGINT) STORED AS MEMORY LOCATION 'mem:///' \
             OPTIONS ('value.format' 'json', 'topic.pattern' '{prefix}-nothing-[0-9]')"
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("topic.pattern") && bad.contains("no topic"),
        "{bad}"
    );
    let bad = session_context()
        .sql(
            "CREATE EXTERNAL TABLE u (id BIGINT) STORED AS MEMORY LOCATION 'mem:///' \
             OPTIONS ('value.format' 'json', 'topic.pattern' 'a(')",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("topic.pattern") && bad.contains("regular expression"),
        "{bad}"
    );
}

#[tokio::test]
async fn a_live_scan_reads_a_partition_added_while_it_runs() {
    let topic = name("grow");
    memory_topic(&topic, 1);
    append(&topic, 0, 0..5);
    let ctx = table(
        &format!("mem:///{topic}"),
        ", 'scan.discovery.interval' '50ms'",
    )
    .await;
    let sql = "SELECT _partition, id FROM t WHERE id >= 1000 LIMIT 1";
    let plan = text(&ctx, &format!("EXPLAIN {sql}")).await;
    assert!(plan.contains("discovery=50ms spare_partitions=4"), "{plan}");
    let running = spawn_query(&ctx, sql);
    tokio::time::sleep(Duration::from_millis(100)).await;
    memory_topic(&topic, 1).add_partitions(2);
    append(&topic, 1, [1000]);
    let got = within(LIMIT, "reading the new partition", running)
        .await
        .unwrap()
        .unwrap();
    let partition = got
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int32Type>().value(0));
    assert_eq!(partition, Some(1));
}

#[tokio::test]
async fn a_live_pattern_scan_reads_a_topic_created_while_it_runs() {
    let prefix = name("live-pat");
    let first = format!("{prefix}-0");
    memory_topic(&first, 1);
    append(&first, 0, 0..3);
    let ctx = table(
        "mem:///",
        &format!(", 'topic.pattern' '{prefix}-[0-9]+', 'scan.discovery.interval' '50ms'"),
    )
    .await;
    let running = spawn_query(&ctx, "SELECT _topic, id FROM t WHERE id >= 1000 LIMIT 1");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = format!("{prefix}-1");
    memory_topic(&second, 1);
    append(&second, 0, [1000]);
    let got = within(LIMIT, "reading the new topic", running)
        .await
        .unwrap()
        .unwrap();
    let topics: Vec<String> = got
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(topics, vec![second]);
}

#[tokio::test]
async fn spares_are_shared_once_taken_and_an_ordered_table_refuses_new_partitions() {
    let topic = name("spares");
    memory_topic(&topic, 1);
    let ctx = table(
        &format!("mem:///{topic}"),
        ", 'scan.discovery.interval' '50ms', 'scan.discovery.spare-streams' '1'",
    )
    .await;
    // `_offset` is projected, but a scan with spares declares no order: two new partitions
    // share the one spare.
    let running = spawn_query(&ctx, "SELECT _offset, id FROM t WHERE id >= 1000 LIMIT 2");
    tokio::time::sleep(Duration::from_millis(100)).await;
    memory_topic(&topic, 1).add_partitions(3);
    append(&topic, 1, [1000]);
    append(&topic, 2, [1001]);
    let got = within(LIMIT, "both new partitions", running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&got, 1), vec![1000, 1001]);

    // WITH ORDER: no spares, and a new partition fails the live scan, saying why.
    let topic = name("ordered");
    memory_topic(&topic, 1);
    let ctx = session_context();
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE t (id BIGINT, _timestamp TIMESTAMP) STORED AS MEMORY \
         WITH ORDER (_timestamp ASC) LOCATION 'mem:///{topic}' \
         OPTIONS ('value.format' 'json', 'scan.discovery.interval' '50ms')"
    ))
    .await
    .unwrap();
    let plan = text(&ctx, "EXPLAIN SELECT id FROM t").await;
    assert!(plan.contains("spare_partitions=0"), "{plan}");
    let running = spawn_query(&ctx, "SELECT id FROM t");
    tokio::time::sleep(Duration::from_millis(100)).await;
    memory_topic(&topic, 1).add_partitions(2);
    let err = within(LIMIT, "the error", running)
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{topic}/1"))
            && err.contains("WITH ORDER")
            && err.contains("run the query again"),
        "{err}"
    );
}

#[tokio::test]
async fn a_topic_deleted_under_a_live_scan_fails_it_or_ends_its_partitions() {
    let (a, b) = (name("del-a"), name("del-b"));
    memory_topic(&a, 1);
    memory_topic(&b, 1);
    append(&a, 0, 0..3);
    append(&b, 0, 10..13);
    let fails = table(
        &format!("mem:///{a},{b}"),
        ", 'scan.discovery.interval' '50ms'",
    )
    .await;
    let ends = table(
        &format!("mem:///{a},{b}"),
        ", 'scan.discovery.interval' '50ms', 'scan.discovery.on-deleted' 'end'",
    )
    .await;
    let failing = spawn_query(&fails, "SELECT id FROM t WHERE id >= 1000");
    let ending = spawn_query(&ends, "SELECT id FROM t WHERE id >= 1000 LIMIT 1");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(delete_memory_topic(&b));
    let err = within(LIMIT, "the failure", failing)
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{b}/0")) && err.contains("deleted") && err.contains("on-deleted"),
        "{err}"
    );
    // With `end`, the other topic goes on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&a, 0, [1000]);
    let got = within(LIMIT, "the row from the other topic", ending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&got, 0), vec![1000]);
}

#[tokio::test]
async fn split_scans_read_exactly_the_unsplit_rows_over_several_output_partitions() {
    let topic = name("split");
    memory_topic(&topic, 1);
    append(&topic, 0, 0..100);
    let ctx = table(
        &format!("mem:///{topic}"),
        ", 'scan.bounded.mode' 'latest-offset', 'scan.split.max-messages' '30'",
    )
    .await;
    let plan = text(&ctx, "EXPLAIN SELECT id FROM t").await;
    assert!(
        plan.contains("partitions=[0: [0, 30), 0: [30, 60), 0: [60, 90), 0: [90, 100)]"),
        "{plan}"
    );
    assert_eq!(
        ids(&rows(&ctx, "SELECT id FROM t").await, 0),
        (0..100).collect::<Vec<_>>()
    );
    let sql = "SELECT id FROM t WHERE _offset >= 25 AND _offset < 65";
    assert_eq!(ids(&rows(&ctx, sql).await, 0), (25..65).collect::<Vec<_>>());
    let counted = text(
        &ctx,
        "SELECT count(*) AS n, count(DISTINCT _offset) AS d FROM t",
    )
    .await;
    assert!(counted.contains("| 100 | 100 |"), "{counted}");
    // A live scan is never split.
    let live = table(
        &format!("mem:///{topic}"),
        ", 'scan.split.max-messages' '30', 'scan.discovery.interval' '0s'",
    )
    .await;
    let plan = text(&live, "EXPLAIN SELECT id FROM t").await;
    assert!(plan.contains("partitions=[0: [0, ∞)]"), "{plan}");
}
