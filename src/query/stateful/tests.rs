//! Broker-free tests of stateful continuous queries over in-memory topics: windows emitted
//! once when the watermark passes their end, equal to the batch answer; keyed totals in update
//! output; late rows; replays from committed state; refused shapes.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use datafusion::prelude::SessionContext;

use crate::connectors::memory::{MemoryMessage, memory_topic};
use crate::query::{ContinuousQuery, Limits, OutputMode, RunOptions, Trigger};
use crate::session::session_context;

fn name(prefix: &str) -> String {
    format!("{prefix}-{}", crate::checkpoint::new_id())
}

const MINUTE: i64 = 60_000;

/// An input topic of events `(partition, event time ms, customer, amount)`.
fn input_with(events: &[(i32, i64, impl AsRef<str>, i64)], partitions: usize) -> String {
    let input = name("events");
    let topic = memory_topic(&input, partitions);
    for (p, t, customer, amount) in events {
        let customer = customer.as_ref();
        topic
            .append(
                *p,
                MemoryMessage::value(
                    format!(r#"{{"customer":"{customer}","amount":{amount}}}"#),
                    *t,
                ),
            )
            .unwrap();
    }
    input
}

fn input_ddl(input: &str, options: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE input (customer VARCHAR, amount BIGINT) STORED AS MEMORY
           LOCATION 'mem:///{input}' OPTIONS ('value.format' 'json'{options});"
    )
}

struct Run {
    query: ContinuousQuery,
    checkpoint: String,
    output: String,
    _dir: tempfile::TempDir,
}

impl Run {
    async fn new(input: &str, input_options: &str, output_columns: &str, select: &str) -> Self {
        let output = name("out");
        memory_topic(&output, 1);
        let sql = format!(
            "{}
             CREATE EXTERNAL TABLE output ({output_columns}) STORED AS MEMORY
               LOCATION 'mem:///{output}' OPTIONS ('value.format' 'json');
             INSERT INTO output {select};",
            input_ddl(input, input_options)
        );
        let dir = tempfile::tempdir().unwrap();
        Self {
            query: ContinuousQuery::from_sql(session_context(), &sql)
                .await
                .unwrap(),
            checkpoint: dir.path().join("cp").to_str().unwrap().to_string(),
            output,
            _dir: dir,
        }
    }

    async fn run(&self, max_records: u64) -> Vec<String> {
        let options = RunOptions {
            checkpoint: self.checkpoint.clone(),
            trigger: Trigger::AvailableNow,
            limits: Limits {
                max_records: Some(max_records),
                max_bytes: None,
            },
            max_batches: None,
            commit_group: None,
            output_mode: None,
        };
        let mut lines = Vec::new();
        self.query
            .run(&options, |p| lines.push(p.to_string()))
            .await
            .unwrap();
        lines
    }

    /// The output rows, through SQL over the output topic.
    async fn output(&self, columns: &str, select: &str) -> Vec<RecordBatch> {
        let ctx = session_context();
        ctx.sql(&format!(
            "CREATE EXTERNAL TABLE o ({columns}) STORED AS MEMORY LOCATION 'mem:///{}'
               OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')",
            self.output
        ))
        .await
        .unwrap();
        collect(&ctx, select).await
    }
}

async fn collect(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

/// (window start ms, count) pairs of a two-column result.
fn windows(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = batches
        .iter()
        .flat_map(|b| {
            let w = arrow::compute::cast(
                b.column(0),
                &arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Millisecond,
                    None,
                ),
            )
            .unwrap();
            let w = w.as_primitive::<TimestampMillisecondType>().clone();
            let n = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| (w.value(i), n.value(i)))
        })
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test]
async fn windows_are_emitted_once_when_the_watermark_passes_their_end() {
    // Two partitions, an event every 10 s for 5 minutes, a little out of order within 20 s.
    let mut events = Vec::new();
    for i in 0..30i64 {
        let t = i * 10_000 + if i % 3 == 0 { 15_000 } else { 0 };
        events.push(((i % 2) as i32, t, "c", 1));
    }
    let input = input_with(&events, 2);
    let run = Run::new(
        &input,
        ", 'watermark.column' '_timestamp', 'watermark.delay' '20s'",
        "w TIMESTAMP, n BIGINT",
        "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, count(*) AS n FROM input GROUP BY 1",
    )
    .await;
    let lines = run.run(4).await;
    assert!(lines.iter().any(|l| l.contains("watermark=")), "{lines:?}");
    let emitted = windows(
        &run.output("w TIMESTAMP, n BIGINT", "SELECT w, n FROM o")
            .await,
    );
    // The batch answer, for the windows that closed: the watermark ends at the slower
    // partition's latest event time (partition 0: event 28 at 280 s) minus 20 s = 260 s.
    let watermark = 280_000 - 20_000;
    assert!(
        lines
            .last()
            .unwrap()
            .contains("watermark=1970-01-01T00:04:20Z"),
        "{lines:?}"
    );
    let ctx = session_context();
    ctx.sql(&input_ddl(&input, ", 'scan.bounded.mode' 'latest-offset'"))
        .await
        .unwrap();
    let expected: Vec<(i64, i64)> = windows(
        &collect(
            &ctx,
            "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, count(*) FROM input GROUP BY 1",
        )
        .await,
    )
    .into_iter()
    .filter(|(w, _)| w + MINUTE <= watermark)
    .collect();
    assert_eq!(emitted, expected, "{lines:?}");
    assert_eq!(expected.len(), 4);
}

#[tokio::test]
async fn hopping_windows_are_emitted_once_each_and_equal_the_batch_answer() {
    // Three partitions, an event every 7 s for 10 minutes, out of order within 20 s; windows
    // of 2 minutes every 30 s, and of 50 s every 20 s (a size that is not a multiple).
    let mut events = Vec::new();
    for i in 0..86i64 {
        let t = i * 7_000 + if i % 4 == 0 { 18_000 } else { 0 };
        events.push(((i % 3) as i32, t, if i % 2 == 0 { "a" } else { "b" }, i));
    }
    let input = input_with(&events, 3);
    for (slide, size, size_ms) in [
        ("30 seconds", "2 minutes", 2 * MINUTE),
        ("20 seconds", "50 seconds", 50_000),
    ] {
        let hop = format!("hop(INTERVAL '{slide}', INTERVAL '{size}', _timestamp)");
        let run = Run::new(
            &input,
            ", 'watermark.column' '_timestamp', 'watermark.delay' '20s'",
            "w TIMESTAMP, n BIGINT",
            &format!("SELECT {hop} AS w, count(*) AS n FROM input GROUP BY 1"),
        )
        .await;
        let lines = run.run(5).await;
        let emitted = windows(
            &run.output("w TIMESTAMP, n BIGINT", "SELECT w, n FROM o")
                .await,
        );
        let watermark = lines
            .last()
            .and_then(|l| l.split("watermark=").nth(1))
            .and_then(|w| w.split(' ').next())
            .map(|w| {
                arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(w).unwrap()
                    / 1_000_000
            })
            .unwrap_or_else(|| panic!("no watermark in {lines:?}"));
        let ctx = session_context();
        ctx.sql(&input_ddl(&input, ", 'scan.bounded.mode' 'latest-offset'"))
            .await
            .unwrap();
        let batch = windows(
            &collect(
                &ctx,
                &format!("SELECT {hop} AS w, count(*) FROM input GROUP BY 1"),
            )
            .await,
        );
        // The batch answer counted by hand: every window [s, s + size) with s a multiple of
        // the slide that contains an event.
        let slide_ms = batch[1].0 - batch[0].0;
        let mut by_hand = std::collections::BTreeMap::<i64, i64>::new();
        for (_, t, _, _) in &events {
            let mut s = t.div_euclid(slide_ms) * slide_ms;
            while s + size_ms > *t {
                *by_hand.entry(s).or_default() += 1;
                s -= slide_ms;
            }
        }
        assert_eq!(batch, by_hand.into_iter().collect::<Vec<_>>(), "{hop}");
        let expected: Vec<(i64, i64)> = batch
            .into_iter()
            .filter(|(w, _)| w + size_ms <= watermark)
            .collect();
        assert!(expected.len() > 10, "{hop}: {expected:?}");
        assert_eq!(emitted, expected, "{hop}: {lines:?}");
    }
}

#[tokio::test]
async fn any_aggregate_carries_its_partial_state_across_batches() {
    let mut events = Vec::new();
    for i in 0..90i64 {
        let customer = ["a", "b", "c", "d"][(i % 4) as usize];
        events.push(((i % 3) as i32, i * 3_000, customer, (i * 37) % 101));
    }
    let input = input_with(&events, 3);
    let aggregates = "count(*) AS n, sum(amount) AS s, avg(amount) AS mean, min(amount) AS lo, \
                      max(amount) AS hi, approx_distinct(customer) AS customers, \
                      round(stddev(amount), 6) AS sd, approx_percentile_cont(amount, 0.5) AS median, \
                      array_length(array_agg(amount)) AS listed, bool_and(amount > 3) AS all_big";
    let columns = "w TIMESTAMP, n BIGINT, s BIGINT, mean DOUBLE, lo BIGINT, hi BIGINT, \
                   customers BIGINT, sd DOUBLE, median DOUBLE, listed BIGINT, all_big BOOLEAN";
    // The window start as seconds: the output column has no time zone, date_bin's has UTC.
    let shown = "to_unixtime(w) AS w, n, s, mean, lo, hi, customers, sd, median, listed, all_big";
    let select = format!(
        "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, {aggregates} FROM input GROUP BY 1"
    );
    let run = Run::new(
        &input,
        ", 'watermark.column' '_timestamp'",
        columns,
        &select,
    )
    .await;
    let lines = run.run(7).await;
    let emitted = run
        .output(columns, &format!("SELECT {shown} FROM o ORDER BY w"))
        .await;
    let ctx = session_context();
    ctx.sql(&input_ddl(&input, ", 'scan.bounded.mode' 'latest-offset'"))
        .await
        .unwrap();
    // The batch answer for the windows that closed (all but the last: the watermark is the
    // latest event time of the slowest partition).
    let batch = collect(
        &ctx,
        &format!(
            "SELECT {shown} FROM ({select})
             WHERE w < (SELECT max(date_bin(INTERVAL '1 minute', _timestamp)) FROM input) ORDER BY w"
        ),
    )
    .await;
    let text = |b: &[RecordBatch]| {
        let b: Vec<RecordBatch> = b
            .iter()
            .map(|b| {
                let cols = b
                    .columns()
                    .iter()
                    .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap())
                    .collect();
                let fields: Vec<arrow::datatypes::Field> = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| {
                        arrow::datatypes::Field::new(
                            f.name(),
                            arrow::datatypes::DataType::Utf8,
                            true,
                        )
                    })
                    .collect();
                RecordBatch::try_new(
                    std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
                    cols,
                )
                .unwrap()
            })
            .collect();
        arrow::util::pretty::pretty_format_batches(&b)
            .unwrap()
            .to_string()
    };
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(text(&emitted), text(&batch), "{lines:?}");
}

#[tokio::test]
async fn distinct_counts_carry_their_sets_across_batches() {
    let mut events = Vec::new();
    for i in 0..90i64 {
        events.push((
            (i % 3) as i32,
            i * 3_000,
            ["a", "b", "c", "d", "e"][(i % 5) as usize],
            i % 4,
        ));
    }
    let input = input_with(&events, 3);
    for aggregates in [
        "count(DISTINCT customer) AS n, count(DISTINCT amount) AS m",
        "count(DISTINCT customer) AS n, count(*) AS m",
        "count(DISTINCT customer) AS n, count(DISTINCT customer) * 2 AS m",
    ] {
        let select = format!(
            "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, {aggregates} FROM input GROUP BY 1"
        );
        let run = Run::new(
            &input,
            ", 'watermark.column' '_timestamp'",
            "w TIMESTAMP, n BIGINT, m BIGINT",
            &select,
        )
        .await;
        run.run(7).await;
        let shown = "to_unixtime(w) AS w, n, m";
        let emitted = run
            .output(
                "w TIMESTAMP, n BIGINT, m BIGINT",
                &format!("SELECT {shown} FROM o ORDER BY w"),
            )
            .await;
        let ctx = session_context();
        ctx.sql(&input_ddl(&input, ", 'scan.bounded.mode' 'latest-offset'"))
            .await
            .unwrap();
        let batch = collect(
            &ctx,
            &format!(
                "SELECT {shown} FROM ({select}) WHERE w < to_timestamp_seconds(240) ORDER BY w"
            ),
        )
        .await;
        assert_eq!(
            arrow::util::pretty::pretty_format_batches(&emitted)
                .unwrap()
                .to_string(),
            arrow::util::pretty::pretty_format_batches(&batch)
                .unwrap()
                .to_string(),
            "{aggregates}"
        );
    }
}

#[tokio::test]
async fn hop_outside_a_group_by_is_refused() {
    let input = input_with(&[(0, 1_000, "a", 1)], 1);
    let ctx = session_context();
    ctx.sql(&input_ddl(&input, ", 'scan.bounded.mode' 'latest-offset'"))
        .await
        .unwrap();
    for sql in [
        "SELECT hop(INTERVAL '1 minute', INTERVAL '5 minutes', _timestamp) FROM input",
        "SELECT count(*) FROM input GROUP BY hop(INTERVAL '1 minute', INTERVAL '5 minutes', _timestamp) + INTERVAL '1 second'",
    ] {
        let err = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(
            err.to_string().contains("can only be a GROUP BY key"),
            "{sql}: {err}"
        );
    }
    for (sql, says) in [
        (
            "GROUP BY hop(INTERVAL '1 month', INTERVAL '2 months', _timestamp)",
            "fixed interval",
        ),
        (
            "GROUP BY hop(INTERVAL '1 second', INTERVAL '1 hour', _timestamp)",
            "3600 windows",
        ),
        (
            "GROUP BY hop(INTERVAL '0 seconds', INTERVAL '1 hour', _timestamp)",
            "longer than zero",
        ),
        (
            "GROUP BY hop(INTERVAL '1 minute', INTERVAL '5 minutes', customer)",
            "event time",
        ),
    ] {
        let err = match ctx.sql(&format!("SELECT count(*) FROM input {sql}")).await {
            Ok(df) => df.collect().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(err.to_string().contains(says), "{sql}: {err}");
    }
}

/// A string column as `Utf8`, whatever string type the engine chose.
fn strings(column: &arrow::array::ArrayRef) -> arrow::array::StringArray {
    arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
        .unwrap()
        .as_string::<i32>()
        .clone()
}

/// The latest row per key in an upsert stream's topic (one partition, offset order).
async fn latest_per_key(run: &Run) -> Vec<(String, i64, i64)> {
    let rows = run
        .output(
            "customer VARCHAR, total BIGINT, n BIGINT",
            "SELECT customer, total, n, _offset FROM o ORDER BY _offset",
        )
        .await;
    let mut latest = std::collections::BTreeMap::new();
    for b in &rows {
        let c = strings(b.column(0));
        let t = b.column(1).as_primitive::<Int64Type>();
        let n = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            latest.insert(c.value(i).to_string(), (t.value(i), n.value(i)));
        }
    }
    latest.into_iter().map(|(c, (t, n))| (c, t, n)).collect()
}

#[tokio::test]
async fn a_key_that_leaves_the_result_through_having_becomes_a_tombstone() {
    let input = input_with(
        &[
            (0, 1, "a", 50),
            (0, 2, "b", 120),
            (0, 3, "c", 10),
            (0, 4, "a", 60),
            (0, 5, "c", 5),
        ],
        1,
    );
    let run = Run::new(
        &input,
        "",
        "customer VARCHAR, total BIGINT, _key VARCHAR",
        "(customer, total, _key) SELECT customer, sum(amount) AS total, customer AS _key
         FROM input GROUP BY customer HAVING sum(amount) < 100",
    )
    .await;
    // One event per batch.
    let lines = run.run(1).await;
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines[3].contains("rows=0 tombstones=1"), "{lines:?}");
    let written: Vec<(String, Option<String>)> = memory_topic(&run.output, 1)
        .messages(0, 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, m)| {
            (
                String::from_utf8(m.key.unwrap()).unwrap(),
                m.value.map(|v| String::from_utf8(v).unwrap()),
            )
        })
        .collect();
    // b never entered the result (no tombstone); a left it when its total reached 110.
    let key = |k: &str| k.to_string();
    assert_eq!(
        written,
        vec![
            (key("a"), Some(r#"{"customer":"a","total":50}"#.to_string())),
            (key("c"), Some(r#"{"customer":"c","total":10}"#.to_string())),
            (key("a"), None),
            (key("c"), Some(r#"{"customer":"c","total":15}"#.to_string())),
        ],
        "{lines:?}"
    );
}

#[tokio::test]
async fn having_in_update_output_needs_a_key_for_its_tombstones() {
    let input = input_with(&[(0, 1, "a", 50)], 1);
    let run = Run::new(
        &input,
        "",
        "customer VARCHAR, total BIGINT",
        "SELECT customer, sum(amount) AS total FROM input GROUP BY customer HAVING sum(amount) < 100",
    )
    .await;
    let err = run
        .query
        .output_mode(None)
        .expect_err("update output with HAVING and no _key");
    assert!(err.to_string().contains("AS _key"), "{err}");
}

#[tokio::test]
async fn old_checkpoint_files_are_purged_and_the_query_goes_on() {
    let events: Vec<(i32, i64, String, i64)> = (0..125i64)
        .map(|i| (0, i, format!("c{}", i % 5), 1))
        .collect();
    let input = input_with(&events, 1);
    let run = Run::new(
        &input,
        "",
        "customer VARCHAR, total BIGINT, n BIGINT",
        "SELECT customer, sum(amount) AS total, count(*) AS n FROM input GROUP BY customer",
    )
    .await;
    assert_eq!(run.run(1).await.len(), 125);
    let count = |kind: &str| {
        std::fs::read_dir(format!("{}/{kind}", run.checkpoint))
            .unwrap()
            .count()
    };
    // Purged after batch 120: offsets and commits from batch 20 on, state from 117 on.
    assert_eq!(
        (count("offsets"), count("commits"), count("state")),
        (105, 105, 8)
    );
    memory_topic(&input, 1)
        .append(
            0,
            MemoryMessage::value(r#"{"customer":"c0","amount":1}"#, 200),
        )
        .unwrap();
    assert_eq!(run.run(1).await.len(), 1);
    let totals: Vec<(String, i64, i64)> = latest_per_key(&run).await;
    assert_eq!(totals[0], ("c0".to_string(), 26, 26));
    assert!(
        totals[1..].iter().all(|(_, t, n)| *t == 25 && *n == 25),
        "{totals:?}"
    );
}

#[tokio::test]
async fn keyed_aggregates_write_the_changed_keys_after_each_batch() {
    let events: Vec<(i32, i64, String, i64)> = (0..60i64)
        .map(|i| ((i % 3) as i32, i * 1000, format!("c{}", i % 7), i))
        .collect();
    let input = input_with(&events, 3);
    // No column list: the SELECT fills the value columns.
    let run = Run::new(
        &input,
        "",
        "customer VARCHAR, total BIGINT, n BIGINT",
        "SELECT customer, sum(amount) AS total, count(*) AS n FROM input GROUP BY customer",
    )
    .await;
    let lines = run.run(4).await;
    assert_eq!(lines.len(), 5, "{lines:?}");
    // Each batch wrote only the keys it changed: 12 events over 7 keys change 7, 6, … keys.
    let written: u64 = lines
        .iter()
        .map(|l| {
            l.split("rows=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(written < 60 && written > 7, "{lines:?}");
    let ctx = session_context();
    ctx.sql(&input_ddl(&input, ", 'scan.bounded.mode' 'latest-offset'"))
        .await
        .unwrap();
    let truth = collect(
        &ctx,
        "SELECT customer, sum(amount), count(*) FROM input GROUP BY customer ORDER BY customer",
    )
    .await;
    let mut expected = Vec::new();
    for b in &truth {
        let c = strings(b.column(0));
        let t = b.column(1).as_primitive::<Int64Type>();
        let n = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            expected.push((c.value(i).to_string(), t.value(i), n.value(i)));
        }
    }
    assert_eq!(latest_per_key(&run).await, expected);
    // More events for one key: the next batch writes that key only, with its new total.
    memory_topic(&input, 3)
        .append(
            0,
            MemoryMessage::value(r#"{"customer":"c3","amount":1000}"#, 99_000),
        )
        .unwrap();
    let lines = run.run(100).await;
    assert!(lines[0].contains("rows=1 "), "{lines:?}");
}

#[tokio::test]
async fn late_rows_are_counted_dropped_and_sent_to_the_late_topic() {
    let late_topic = name("late");
    memory_topic(&late_topic, 1);
    let input = input_with(
        &[
            (0, 10_000, "a", 1),
            (0, 70_000, "a", 1),
            (0, 130_000, "a", 1),
        ],
        1,
    );
    let run = Run::new(
        &input,
        &format!(", 'watermark.column' '_timestamp', 'watermark.late-topic' '{late_topic}'"),
        "w TIMESTAMP, n BIGINT",
        "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, count(*) AS n FROM input GROUP BY 1",
    )
    .await;
    let lines = run.run(100).await;
    assert!(
        lines[0].contains("watermark=1970-01-01T00:02:10Z"),
        "{lines:?}"
    );
    // An event of the first minute arrives after that window was written: it is late.
    memory_topic(&input, 1)
        .append(
            0,
            MemoryMessage::value(r#"{"customer":"b","amount":1}"#, 20_000),
        )
        .unwrap();
    memory_topic(&input, 1)
        .append(
            0,
            MemoryMessage::value(r#"{"customer":"b","amount":1}"#, 190_000),
        )
        .unwrap();
    let lines = run.run(100).await;
    assert!(lines[0].contains("late=1"), "{lines:?}");
    let emitted = windows(
        &run.output("w TIMESTAMP, n BIGINT", "SELECT w, n FROM o")
            .await,
    );
    assert_eq!(emitted, vec![(0, 1), (MINUTE, 1), (2 * MINUTE, 1)]);
    let late = memory_topic(&late_topic, 1)
        .messages(0, 0, i64::MAX)
        .unwrap();
    assert_eq!(late.len(), 1);
    let header = |k: &str| {
        late[0]
            .1
            .headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| String::from_utf8_lossy(v).to_string())
    };
    assert_eq!(header("late.offset").as_deref(), Some("3"));
    assert_eq!(header("late.event-time").as_deref(), Some("20000"));
    assert_eq!(header("late.watermark").as_deref(), Some("130000"));
}

#[tokio::test]
async fn a_replayed_stateful_batch_starts_from_the_committed_state_and_writes_once() {
    let events: Vec<(i32, i64, &str, i64)> = (0..40i64).map(|i| (0, i * 6_000, "x", 1)).collect();
    let input = input_with(&events, 1);
    let run = Run::new(
        &input,
        ", 'watermark.column' '_timestamp'",
        "w TIMESTAMP, n BIGINT",
        "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, count(*) AS n FROM input GROUP BY 1",
    )
    .await;
    run.run(15).await;
    let before = windows(
        &run.output("w TIMESTAMP, n BIGINT", "SELECT w, n FROM o")
            .await,
    );
    assert_eq!(before, vec![(0, 10), (MINUTE, 10), (2 * MINUTE, 10)]);
    // More events; the sink dies after the first row of the next batch.
    let topic = memory_topic(&input, 1);
    for i in 40..80i64 {
        topic
            .append(
                0,
                MemoryMessage::value(r#"{"customer":"x","amount":1}"#, i * 6_000),
            )
            .unwrap();
    }
    let output = memory_topic(&run.output, 1);
    output.fail_writes_after(1);
    let options = RunOptions {
        checkpoint: run.checkpoint.clone(),
        trigger: Trigger::AvailableNow,
        limits: Limits {
            max_records: Some(100),
            max_bytes: None,
        },
        max_batches: None,
        commit_group: None,
        output_mode: Some(OutputMode::Append),
    };
    assert!(run.query.run(&options, |_| {}).await.is_err());
    output.fail_writes_after(-1);
    let lines = run.run(100).await;
    assert!(
        lines[0].contains("(replay)") && lines[0].contains("already_written=1"),
        "{lines:?}"
    );
    let after = windows(
        &run.output("w TIMESTAMP, n BIGINT", "SELECT w, n FROM o")
            .await,
    );
    let expected: Vec<(i64, i64)> = (0..7).map(|m| (m * MINUTE, 10)).collect();
    assert_eq!(after, expected, "{lines:?}");
}

#[tokio::test]
async fn shapes_that_cannot_run_incrementally_are_refused_naming_the_operator() {
    let input = input_with(&[(0, 0, "a", 1)], 1);
    let snapshot = name("dim");
    memory_topic(&snapshot, 1);
    let other = input_with(&[(0, 0, "a", 1)], 1);
    let cases: Vec<(String, &str)> = vec![
        ("SELECT customer, amount FROM input ORDER BY amount".into(), "SortExec"),
        ("SELECT customer, amount FROM input LIMIT 5".into(), "LIMIT"),
        (
            "SELECT customer, sum(amount) OVER (PARTITION BY customer ORDER BY _offset) FROM input".into(),
            "window functions",
        ),
        (
            "SELECT customer, count(*) FROM (SELECT customer, count(*) AS c FROM input GROUP BY customer) GROUP BY customer".into(),
            "an aggregate over an aggregate",
        ),
        (
            "SELECT i.customer, i.amount FROM input i JOIN (SELECT * FROM mem_other) o ON i.customer = o.customer".to_string(),
            "joins two streams",
        ),
    ];
    for (select, operator) in cases {
        let sql = format!(
            "{}
             CREATE EXTERNAL TABLE mem_other (customer VARCHAR, amount BIGINT) STORED AS MEMORY
               LOCATION 'mem:///{other}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (customer VARCHAR, amount BIGINT) STORED AS MEMORY
               LOCATION 'mem:///{snapshot}' OPTIONS ('value.format' 'json');
             INSERT INTO output {select};",
            input_ddl(&input, "")
        );
        let err = match ContinuousQuery::from_sql(session_context(), &sql).await {
            Ok(_) => panic!("{select} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(operator) && err.contains("cannot run incrementally"),
            "{select}: {err}"
        );
    }
    // Append output needs a window over an event-time column.
    let run = Run::new(
        &input,
        "",
        "customer VARCHAR, n BIGINT",
        "SELECT customer, count(*) FROM input GROUP BY customer",
    )
    .await;
    let err = run
        .query
        .output_mode(Some(OutputMode::Append))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("append output") && err.contains("watermark.column"),
        "{err}"
    );
    // An INSERT whose SELECT fits neither the value columns nor all columns says what to do.
    let sql = format!(
        "{}
         CREATE EXTERNAL TABLE output (customer VARCHAR, amount BIGINT) STORED AS MEMORY
           LOCATION 'mem:///{snapshot}' OPTIONS ('value.format' 'json');
         INSERT INTO output SELECT customer FROM input;",
        input_ddl(&input, "")
    );
    let err = ContinuousQuery::from_sql(session_context(), &sql)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("value column(s) (customer, amount)") && err.contains("_key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stream_joins_a_topic_snapshot_each_batch() {
    let input = input_with(&[(0, 0, "a", 1), (0, 1_000, "b", 2), (0, 2_000, "a", 3)], 1);
    let customers = name("customers");
    let dim = memory_topic(&customers, 1);
    dim.append(0, MemoryMessage::value(r#"{"id":"a","region":"north"}"#, 0))
        .unwrap();
    dim.append(0, MemoryMessage::value(r#"{"id":"b","region":"south"}"#, 0))
        .unwrap();
    let output = name("joined");
    memory_topic(&output, 1);
    let sql = format!(
        "{}
         CREATE EXTERNAL TABLE customers (id VARCHAR, region VARCHAR) STORED AS MEMORY
           LOCATION 'mem:///{customers}'
           OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');
         CREATE EXTERNAL TABLE output (region VARCHAR, amount BIGINT) STORED AS MEMORY
           LOCATION 'mem:///{output}' OPTIONS ('value.format' 'json');
         INSERT INTO output SELECT c.region, i.amount FROM input i JOIN customers c ON i.customer = c.id;",
        input_ddl(&input, "")
    );
    let query = ContinuousQuery::from_sql(session_context(), &sql)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        checkpoint: dir.path().to_str().unwrap().to_string(),
        trigger: Trigger::AvailableNow,
        limits: Limits::default(),
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    assert_eq!(query.run(&options, |_| {}).await.unwrap(), 1);
    // A new customer joins later events; the snapshot is read again for each batch.
    dim.append(0, MemoryMessage::value(r#"{"id":"c","region":"east"}"#, 0))
        .unwrap();
    memory_topic(&input, 1)
        .append(
            0,
            MemoryMessage::value(r#"{"customer":"c","amount":4}"#, 3_000),
        )
        .unwrap();
    let mut lines = Vec::new();
    query
        .run(&options, |p| lines.push(p.to_string()))
        .await
        .unwrap();
    assert!(lines[0].contains("customers[0:[0,3)]"), "{lines:?}");
    let written: Vec<String> = memory_topic(&output, 1)
        .messages(0, 0, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, m)| String::from_utf8(m.value.unwrap()).unwrap())
        .collect();
    assert_eq!(
        written,
        vec![
            r#"{"region":"north","amount":1}"#,
            r#"{"region":"south","amount":2}"#,
            r#"{"region":"north","amount":3}"#,
            r#"{"region":"east","amount":4}"#,
        ]
    );
}

#[tokio::test]
async fn windows_waiting_for_an_idle_partition_close_without_new_data() {
    let events: Vec<(i32, i64, &str, i64)> = (0..180i64).map(|i| (0, i * 1_000, "x", 1)).collect();
    let input = input_with(&events, 2);
    let run = Run::new(
        &input,
        ", 'watermark.column' '_timestamp', 'watermark.idle-timeout' '300ms'",
        "w TIMESTAMP, n BIGINT",
        "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, count(*) AS n FROM input GROUP BY 1",
    )
    .await;
    // Partition 1 has never delivered: it holds the watermark back.
    let lines = run.run(1_000).await;
    assert!(lines[0].contains("watermark=none"), "{lines:?}");
    // Once it has been idle for the timeout, a batch without data moves the watermark on.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let lines = run.run(1_000).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("watermark=1970-01-01T00:02:59Z"),
        "{lines:?}"
    );
    let emitted = windows(
        &run.output("w TIMESTAMP, n BIGINT", "SELECT w, n FROM o")
            .await,
    );
    assert_eq!(emitted, vec![(0, 60), (MINUTE, 60)]);
}
