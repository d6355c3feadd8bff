//! Broker-free tests of scans over in-memory topics: ranges from filters, LIMIT, snapshots,
//! the bad-message policies, dead letters, data loss and work queues.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;

use crate::connectors::memory::{MemoryMessage, memory_topic};
use crate::session::session_context;

/// A fresh topic name.
fn name(prefix: &str) -> String {
    format!("{prefix}-{}", crate::checkpoint::new_id())
}

/// A memory topic of `partitions` partitions holding `n` JSON messages `{"id": i}`, round robin.
fn topic_with(prefix: &str, partitions: usize, n: i64) -> String {
    let name = name(prefix);
    let topic = memory_topic(&name, partitions);
    for i in 0..n {
        topic
            .append(
                (i % partitions as i64) as i32,
                MemoryMessage::value(format!(r#"{{"id":{i}}}"#), 1_000 * i),
            )
            .unwrap();
    }
    name
}

pub(super) async fn ctx_with(topic: &str, options: &str) -> SessionContext {
    let ctx = session_context();
    let options = if options.is_empty() {
        String::new()
    } else {
        format!(", {options}")
    };
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE t (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{topic}' \
         OPTIONS ('value.format' 'json'{options})"
    ))
    .await
    .unwrap();
    ctx
}

pub(super) async fn collect(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

async fn error(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Err(e) => e.to_string(),
        Ok(df) => df.collect().await.unwrap_err().to_string(),
    }
}

pub(super) fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column(column)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    out.sort_unstable();
    out
}

async fn explain(ctx: &SessionContext, sql: &str) -> String {
    let batches = collect(ctx, &format!("EXPLAIN {sql}")).await;
    arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn filters_become_exact_ranges() {
    let topic = topic_with("ranges", 3, 60);
    let ctx = ctx_with(&topic, "").await;
    let sql = "SELECT id FROM t WHERE _partition = 1 AND _offset BETWEEN 3 AND 5";
    assert_eq!(ints(&collect(&ctx, sql).await, 0), vec![10, 13, 16]);
    let plan = explain(&ctx, sql).await;
    assert!(plan.contains("partitions=[1: [3, 6)]"), "{plan}");
    // Contradictions read nothing; an offset filter alone bounds an unbounded table.
    assert!(
        collect(&ctx, "SELECT id FROM t WHERE _offset < 2 AND _offset > 5")
            .await
            .is_empty()
    );
    assert_eq!(
        ints(
            &collect(&ctx, "SELECT count(*) FROM t WHERE _offset < 4").await,
            0
        ),
        vec![12]
    );
}

#[tokio::test]
async fn limit_ends_an_unbounded_scan_and_a_snapshot_ignores_later_messages() {
    let topic = topic_with("limit", 2, 20);
    let ctx = ctx_with(&topic, "").await;
    assert_eq!(
        ints(&collect(&ctx, "SELECT id FROM t LIMIT 4").await, 0).len(),
        4
    );
    // A snapshot's ranges are fixed when it is planned: a later message is not read.
    let snapshot = ctx_with(&topic, "'scan.bounded.mode' 'latest-offset'").await;
    let plan = snapshot
        .sql("SELECT count(*) FROM t")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    memory_topic(&topic, 2)
        .append(0, MemoryMessage::value(r#"{"id":99}"#, 0))
        .unwrap();
    let counted = datafusion::physical_plan::collect(plan, snapshot.task_ctx())
        .await
        .unwrap();
    assert_eq!(ints(&counted, 0), vec![20]);
    // Pipeline breakers on an unbounded table are refused with advice.
    let err = error(&ctx, "SELECT count(*) FROM t").await;
    assert!(
        err.contains("unbounded") && err.contains("scan.bounded.mode"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_messages_fail_are_skipped_or_become_dead_letters() {
    let topic = topic_with("bad", 1, 10);
    let t = memory_topic(&topic, 1);
    t.append(0, MemoryMessage::value("{not json", 0)).unwrap(); // offset 10
    t.append(0, MemoryMessage::value(r#"{"id":11}"#, 0))
        .unwrap();
    let snapshot = "'scan.bounded.mode' 'latest-offset'";
    let fail = ctx_with(&topic, snapshot).await;
    let err = error(&fail, "SELECT id FROM t").await;
    assert!(
        err.contains(&topic) && err.contains("partition 0") && err.contains("offset 10"),
        "{err}"
    );
    let skip = ctx_with(&topic, &format!("{snapshot}, 'value.on-error' 'skip'")).await;
    assert_eq!(ints(&collect(&skip, "SELECT id FROM t").await, 0).len(), 11);
    let analyzed = explain(&skip, "ANALYZE SELECT id FROM t").await;
    assert!(analyzed.contains("messages_bad=1"), "{analyzed}");
    let dlq = name("dlq");
    let dead = ctx_with(
        &topic,
        &format!("{snapshot}, 'value.on-error' 'dead-letter', 'value.dead-letter.topic' '{dlq}'"),
    )
    .await;
    let rows = collect(
        &dead,
        "SELECT _offset, _error FROM t WHERE _error IS NOT NULL",
    )
    .await;
    assert_eq!(ints(&rows, 0), vec![10]);
    let letters = memory_topic(&dlq, 1).messages(0, 0, i64::MAX).unwrap();
    assert_eq!(letters.len(), 1);
    let (_, letter) = &letters[0];
    assert_eq!(letter.value.as_deref(), Some(&b"{not json"[..]));
    let header = |k: &str| {
        letter
            .headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    };
    assert_eq!(header("dlt.offset").as_deref(), Some("10"));
    assert_eq!(header("dlt.topic").as_deref(), Some(topic.as_str()));
    assert!(header("dlt.error").is_some_and(|e| e.starts_with("value: ")));
}

#[tokio::test]
async fn removed_offsets_fail_the_scan_or_are_skipped_and_counted() {
    let topic = topic_with("loss", 1, 20);
    memory_topic(&topic, 1).delete_before(0, 8).unwrap();
    let from = "'scan.startup.specific-offsets' 'partition:0,offset:2', 'scan.bounded.mode' 'latest-offset'";
    let fail = ctx_with(&topic, from).await;
    let err = error(&fail, "SELECT id FROM t").await;
    assert!(err.contains("offset 2") && err.contains("[8, 20)"), "{err}");
    let skip = ctx_with(&topic, &format!("{from}, 'scan.fail-on-data-loss' 'false'")).await;
    assert_eq!(
        ints(&collect(&skip, "SELECT id FROM t").await, 0),
        (8..20).collect::<Vec<_>>()
    );
    let analyzed = explain(&skip, "ANALYZE SELECT id FROM t").await;
    assert!(analyzed.contains("offsets_skipped=6"), "{analyzed}");
}

#[tokio::test]
async fn a_work_queue_is_drained_by_its_readers() {
    let topic = topic_with("queue", 1, 30);
    let ctx = ctx_with(
        &topic,
        "'memory.mode' 'work-queue', 'memory.work-queue.readers' '3', 'scan.bounded.mode' 'latest-offset'",
    )
    .await;
    let plan = explain(&ctx, "SELECT id FROM t").await;
    assert!(
        plan.contains("0: until drained, 1: until drained, 2: until drained"),
        "{plan}"
    );
    assert_eq!(
        ints(&collect(&ctx, "SELECT id FROM t").await, 0),
        (0..30).collect::<Vec<_>>()
    );
    // Acknowledged: the queue is empty now.
    assert!(
        collect(&ctx, "SELECT id FROM t")
            .await
            .iter()
            .all(|b| b.num_rows() == 0)
    );
}
