//! NATS work-queue mode (`nats.mode = work-queue`): readers sharing one durable consumer,
//! acknowledgements once a scan used a batch, a continuous query acknowledging only after its
//! commit, and an interrupted batch abandoned and its messages delivered again.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int32Type, Int64Type};
use datafusion_topics::checkpoint::{CheckpointLog, OffsetsRecord};
use datafusion_topics::query::{ContinuousQuery, Limits, RunOptions, Trigger};
use futures::StreamExt;

use crate::harness::*;

/// A stream capturing `<name>.in` holding `{"id": i}` for i in `0..n`; returns its name.
async fn id_stream(js: &async_nats::jetstream::Context, n: usize) -> String {
    let stream = create_stream(js, "WQ", &["in", "other"]).await;
    publish_ids(js, &stream, 0..n).await;
    stream
}

/// Publishes `{"id": i}` to `<stream>.in` for each i.
async fn publish_ids(
    js: &async_nats::jetstream::Context,
    stream: &str,
    ids: std::ops::Range<usize>,
) {
    let payloads = ids.map(|i| format!("{{\"id\": {i}}}").into_bytes());
    publish_all(js, &format!("{stream}.in"), payloads).await;
}

/// The options of a work-queue table on `consumer`.
fn queue_options<'a>(consumer: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("value.format", "json"),
        ("nats.mode", "work-queue"),
        ("nats.work-queue.consumer", consumer),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

fn id_schema() -> datafusion::arrow::datatypes::SchemaRef {
    std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "id",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
    ]))
}

fn ids_of(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<i64> {
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let a = b.column(0).as_primitive::<Int64Type>();
            (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// (messages not yet delivered, delivered but not acknowledged) of a consumer.
async fn consumer_state(
    js: &async_nats::jetstream::Context,
    stream: &str,
    name: &str,
) -> (u64, usize) {
    let info = js
        .get_stream(stream)
        .await
        .unwrap()
        .consumer_info(name)
        .await
        .unwrap();
    (info.num_pending, info.num_ack_pending)
}

const DRAIN: (&str, &str) = ("scan.bounded.mode", "latest-offset");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_share_one_consumer_and_acknowledge_what_they_used() {
    let js = jetstream().await;
    let stream = id_stream(&js, 3000).await;
    let pairs = queue_options("etl", &[("nats.work-queue.readers", "3"), DRAIN]);
    let ctx = nats_table(&stream, id_schema(), &pairs).await;

    let plan = physical_plan(&ctx, "SELECT id FROM t").await;
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(
        shown.contains("work-queue=etl readers=3") && shown.contains("0: until drained"),
        "{shown}"
    );

    // Redeliveries arrive after later messages: the scan claims no `_offset` order, so an
    // ORDER BY sorts.
    let plan = physical_plan(&ctx, "SELECT id FROM t ORDER BY _offset").await;
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(shown.contains("SortExec"), "{shown}");

    // Three readers, one cursor: every message once, none twice.
    let batches = sql(&ctx, "SELECT id, _partition FROM t").await;
    let ids = ids_of(&batches);
    assert_eq!(ids, (0..3000).collect::<Vec<i64>>());
    let readers: std::collections::BTreeSet<i32> = batches
        .iter()
        .flat_map(|b| {
            let p = b.column(1).as_primitive::<Int32Type>();
            (0..p.len()).map(|i| p.value(i)).collect::<Vec<_>>()
        })
        .collect();
    assert!(readers.iter().all(|r| (0..3).contains(r)), "{readers:?}");
    assert_eq!(consumer_state(&js, &stream, "etl").await, (0, 0));

    // Used messages are gone from the queue; a filter on `_offset` is applied to the rows
    // read, not pushed into a cursor that has no offsets.
    publish_ids(&js, &stream, 3000..3010).await;
    let batches = sql(&ctx, "SELECT id FROM t WHERE _offset > 3005").await;
    assert_eq!(ids_of(&batches), vec![3005, 3006, 3007, 3008, 3009]);
    assert_eq!(rows(&sql(&ctx, "SELECT id FROM t").await), 0);

    // Another table (as another process would) naming the same consumer shares the cursor.
    publish_ids(&js, &stream, 3010..3020).await;
    let other = nats_table(&stream, id_schema(), &queue_options("etl", &[DRAIN])).await;
    assert_eq!(
        ids_of(&sql(&other, "SELECT id FROM t").await),
        (3010..3020).collect::<Vec<i64>>()
    );
    assert_eq!(rows(&sql(&ctx, "SELECT id FROM t").await), 0);

    // A different consumer starts from the beginning of the stream.
    let fresh = nats_table(&stream, id_schema(), &queue_options("audit", &[DRAIN])).await;
    assert_eq!(rows(&sql(&fresh, "SELECT id FROM t").await), 3020);
    wait_for_readers_released(&stream, "the work-queue scans").await;
}

/// Readers never ask for more than the consumer lets out unacknowledged (the server would
/// hold such a pull); a plain scan acknowledges as it goes, so it drains past that limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_reads_past_the_consumers_unacknowledged_limit() {
    let js = jetstream().await;
    let stream = id_stream(&js, 2000).await;
    let pairs = queue_options(
        "small",
        &[
            ("nats.work-queue.readers", "2"),
            ("nats.work-queue.max-ack-pending", "100"),
            DRAIN,
        ],
    );
    let ctx = nats_table(&stream, id_schema(), &pairs).await;
    let started = std::time::Instant::now();
    let ids = ids_of(&sql(&ctx, "SELECT id FROM t").await);
    assert_eq!(ids, (0..2000).collect::<Vec<i64>>());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "draining took {:?}",
        started.elapsed()
    );
    assert_eq!(consumer_state(&js, &stream, "small").await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_scan_follows_the_queue_and_acknowledges_each_batch_it_used() {
    let js = jetstream().await;
    let stream = id_stream(&js, 5).await;
    let pairs = queue_options("live", &[]);
    let ctx = nats_table(&stream, id_schema(), &pairs).await;
    let plan = physical_plan(&ctx, "SELECT id FROM t").await;
    let mut out = datafusion::physical_plan::execute_stream(plan, ctx.task_ctx()).unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut published = false;
    while seen.len() < 10 {
        assert!(std::time::Instant::now() < deadline, "saw only {seen:?}");
        let batch = tokio::time::timeout(Duration::from_secs(10), out.next())
            .await
            .expect("a batch in time")
            .expect("the stream goes on")
            .unwrap();
        seen.extend(ids_of(&[batch]));
        if !published {
            publish_ids(&js, &stream, 5..10).await;
            published = true;
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<i64>>());
    // Asking for the next batch acknowledged the ones before it; the last one handed on is
    // held until the scan asks again or ends.
    let (pending, unacked) = consumer_state(&js, &stream, "live").await;
    assert_eq!(pending, 0);
    assert!(unacked <= 5, "{unacked} unacknowledged");
    drop(out);
    wait_for_readers_released(&stream, "dropping the live scan").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_options_and_consumers_that_do_not_fit_are_refused() {
    let js = jetstream().await;
    let stream = id_stream(&js, 1).await;
    let location = nats_location(&stream);
    let parse = |pairs: &[(&str, &str)]| {
        datafusion_topics::TableDefinition::parse(&location, id_schema(), &opts(pairs))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let err = parse(&[("nats.mode", "work-queue")]);
    assert!(err.contains("nats.work-queue.consumer"), "{err}");
    let err = parse(&[("nats.work-queue.readers", "2")]);
    assert!(err.contains("nats.mode"), "{err}");
    let err = parse(&queue_options(
        "c",
        &[("nats.partitioning", "streams"), ("nats.partitions", "2")],
    ));
    assert!(err.contains("nats.partitioning"), "{err}");
    let err = parse(&queue_options(
        "c",
        &[
            ("scan.startup.mode", "specific-offsets"),
            ("scan.startup.specific-offsets", "partition:0,offset:3"),
        ],
    ));
    assert!(err.contains("scan.startup.mode"), "{err}");
    let err = parse(&queue_options(
        "c",
        &[
            ("scan.bounded.mode", "timestamp"),
            ("scan.bounded.timestamp-millis", "5"),
        ],
    ));
    assert!(err.contains("scan.bounded.mode"), "{err}");
    let err = parse(&queue_options("bad.name", &[]));
    assert!(err.contains("nats.work-queue.consumer"), "{err}");
    let err = parse(&[("nats.mode", "balanced")]);
    assert!(err.contains("ordered or work-queue"), "{err}");

    // An existing consumer that filters on other subjects is not silently reused.
    let subject = format!("{stream}.other");
    js.get_stream(&stream)
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("theirs".into()),
            filter_subject: subject,
            ..Default::default()
        })
        .await
        .unwrap();
    let err = nats_table_error(&location, &queue_options("theirs", &[])).await;
    assert!(
        err.contains("theirs") && err.contains("filters on"),
        "{err}"
    );
    // A push consumer cannot be pulled from.
    js.get_stream(&stream)
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::push::Config {
            durable_name: Some("pushed".into()),
            deliver_subject: "somewhere".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = nats_table_error(&location, &queue_options("pushed", &[])).await;
    assert!(err.contains("push consumer"), "{err}");
}

/// A session holding the work-queue table `input` and a JSON-files table `output` under
/// `dir/out`, and the continuous query copying one into the other.
async fn queue_to_files(stream: &str, dir: &std::path::Path, ack_wait: &str) -> ContinuousQuery {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let sql = format!(
        "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS NATS LOCATION '{}'
           OPTIONS ('value.format' 'json', 'nats.mode' 'work-queue',
                    'nats.work-queue.consumer' 'cq', 'nats.work-queue.readers' '2',
                    'nats.work-queue.ack-wait' '{ack_wait}');
         CREATE EXTERNAL TABLE output (id BIGINT) STORED AS JSON LOCATION '{}/';
         INSERT INTO output SELECT id FROM input;",
        nats_location(stream),
        out.display()
    );
    ContinuousQuery::from_sql(datafusion_topics::session_context(), &sql)
        .await
        .expect("the continuous query")
}

/// Every id the file sink under `dir/out` holds, sorted (duplicates kept).
async fn file_ids(dir: &std::path::Path) -> Vec<i64> {
    let ctx = datafusion_topics::session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE written (id BIGINT) STORED AS JSON LOCATION '{}/out/'",
            dir.display()
        ),
    )
    .await;
    ids_of(&sql(&ctx, "SELECT id FROM written").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_query_acknowledges_after_its_commit_and_abandons_an_interrupted_batch() {
    let js = jetstream().await;
    let stream = id_stream(&js, 1000).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let query = queue_to_files(&stream, dir.path(), "1s").await;
    let options = RunOptions {
        checkpoint: checkpoint.to_str().unwrap().to_string(),
        trigger: Trigger::AvailableNow,
        limits: Limits {
            max_records: Some(300),
            max_bytes: None,
        },
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    let mut lines = Vec::new();
    let batches = query
        .run(&options, |p| lines.push(p.to_string()))
        .await
        .unwrap();
    // Two readers of at most 300 each: 600 per batch. (A third, empty batch runs when the
    // server had not yet counted the last acknowledgements when it was planned.)
    assert!((2..=3).contains(&batches), "{lines:?}");
    assert!(
        lines[0].contains("input[queue cq: 600 read] rows=600"),
        "{lines:?}"
    );
    assert_eq!(file_ids(dir.path()).await, (0..1000).collect::<Vec<i64>>());
    assert_eq!(consumer_state(&js, &stream, "cq").await, (0, 0));
    let log = CheckpointLog::open(options.checkpoint.as_str()).unwrap();
    let first = log.offsets(0).await.unwrap().unwrap();
    let read = first.sources["input"].work_queue.as_ref().unwrap();
    assert_eq!(
        (read.consumer.as_str(), read.max_messages),
        ("cq", Some(300))
    );

    // A runner that dies mid-batch: it planned the next batch and took 100 messages it never
    // acknowledged.
    publish_ids(&js, &stream, 1000..1200).await;
    let mut planned: OffsetsRecord = first.clone();
    planned.batch = batches;
    log.write_offsets(&planned).await.unwrap();
    let consumer: PullConsumer = js
        .get_stream(&stream)
        .await
        .unwrap()
        .get_consumer("cq")
        .await
        .unwrap();
    let mut taken = consumer.fetch().max_messages(100).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = taken.next().await {
        m.unwrap();
        n += 1;
    }
    assert_eq!(n, 100);

    // The restart abandons that batch (its messages cannot be read again by number) and goes on;
    // the 100 come back after the ack wait and are read by a later batch.
    let query = queue_to_files(&stream, dir.path(), "1s").await;
    let interval = RunOptions {
        trigger: Trigger::Interval(Duration::from_millis(200)),
        max_batches: Some(1),
        ..options.clone()
    };
    let mut read = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while read < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "read only {read} of 200"
        );
        query
            .run(&interval, |p| read += p.queue_reads.values().sum::<u64>())
            .await
            .unwrap();
    }
    let commit = log.commit(batches).await.unwrap().unwrap();
    assert!(commit.abandoned && commit.rows == 0, "{commit:?}");
    let ids = file_ids(dir.path()).await;
    let mut counts: BTreeMap<i64, u32> = BTreeMap::new();
    for id in ids {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), 1200, "every message at least once");
    assert!(
        counts.values().all(|n| *n == 1),
        "no batch wrote twice here"
    );
    assert_eq!(consumer_state(&js, &stream, "cq").await, (0, 0));
}
