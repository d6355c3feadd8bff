//! Stateful continuous queries on Apache Kafka: windowed counts over 100k events out of order
//! (and a sprinkle of late ones) and keyed totals into a compacted topic (keys leaving the
//! result through HAVING as tombstones), each through four
//! SIGKILLs at random moments, equal to the batch answer; live and continuous windows that
//! close while a partition is idle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
use datafusion_topics::query::{ContinuousQuery, Limits, RunOptions, Trigger};
use datafusion_topics::session_context;
use rand::{Rng, SeedableRng};

use crate::continuous::{SERIAL, four_kills, seed};
use crate::harness::*;

const EVENTS: i64 = 100_000;
const MINUTE: i64 = 60_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Milliseconds of a timestamp column, whatever its unit.
fn millis(column: &dyn Array) -> Vec<i64> {
    let ms =
        datafusion::arrow::compute::cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))
            .unwrap();
    ms.as_primitive::<TimestampMillisecondType>()
        .values()
        .to_vec()
}

fn strings(column: &dyn Array) -> Vec<String> {
    let s = datafusion::arrow::compute::cast(column, &DataType::Utf8).unwrap();
    s.as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

fn i64s(column: &dyn Array) -> Vec<i64> {
    column.as_primitive::<Int64Type>().values().to_vec()
}

async fn sql_rows(sql: &str) -> Vec<RecordBatch> {
    let ctx = session_context();
    let mut out = Vec::new();
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        out = ctx.sql(statement).await.unwrap().collect().await.unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_counts_equal_the_batch_answer_across_kills() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let b = &brokers().kafka;
    let input = create_topic("sf-win-in", 3).await;
    let late_topic = create_topic("sf-win-late", 1).await;
    let output = create_topic("sf-win-out", 1).await;
    // Event i at 100 ms steps from four hours ago, up to 5 s out of order; every 2000th event
    // is five minutes older than its neighbours (late when it arrives).
    let base = (now_ms() - 4 * 3_600_000) / MINUTE * MINUTE;
    let mut events: Vec<(i32, i64, i64)> = Vec::new();
    for i in 0..EVENTS {
        let jitter = rng.random_range(-5_000..=5_000);
        let mut t = base + i * 100 + jitter;
        if i % 2_000 == 1_999 {
            t -= 5 * MINUTE;
        }
        events.push(((i % 3) as i32, t, i));
    }
    let mut messages: Vec<TestMessage> = events
        .iter()
        .map(|(p, t, v)| TestMessage {
            timestamp: Some(*t),
            ..TestMessage::value(*p, format!(r#"{{"v":{v}}}"#))
        })
        .collect();
    // One event per partition far past the data moves the watermark beyond every data window.
    let flush = base + EVENTS * 100 + 30 * MINUTE;
    for p in 0..3 {
        messages.push(TestMessage {
            timestamp: Some(flush),
            ..TestMessage::value(p, r#"{"v":-1}"#)
        });
    }
    produce(&input, &messages).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (v BIGINT) STORED AS KAFKA LOCATION 'kafka://{b}/{input}'
               OPTIONS ('value.format' 'json', 'watermark.column' '_timestamp',
                        'watermark.delay' '10s', 'watermark.late-topic' '{late_topic}');
             CREATE EXTERNAL TABLE output (w TIMESTAMP, n BIGINT, total BIGINT) STORED AS KAFKA
               LOCATION 'kafka://{b}/{output}' OPTIONS ('value.format' 'json');
             INSERT INTO output
               SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, count(*) AS n, sum(v) AS total
               FROM input GROUP BY 1;"
        ),
    )
    .unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let landed = four_kills(checkpoint.to_str().unwrap(), &file, seed);

    // The late rows, by their coordinates in the late topic's headers.
    let late = sql_rows(&format!(
        "CREATE EXTERNAL TABLE late STORED AS KAFKA LOCATION 'kafka://{b}/{late_topic}'
           OPTIONS ('scan.bounded.mode' 'latest-offset');
         SELECT CAST(_headers['late.partition'] AS VARCHAR), CAST(_headers['late.offset'] AS VARCHAR) FROM late"
    ))
    .await;
    let mut late_rows: BTreeSet<(i32, i64)> = BTreeSet::new();
    for batch in &late {
        for (p, o) in strings(batch.column(0))
            .into_iter()
            .zip(strings(batch.column(1)))
        {
            late_rows.insert((p.parse().unwrap(), o.parse().unwrap()));
        }
    }
    assert!(!late_rows.is_empty(), "seed {seed}: no late rows");
    // Offsets: partition p holds events p, p+3, … in order.
    let mut expected: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (i, (p, t, v)) in events.iter().enumerate() {
        let offset = (i / 3) as i64;
        if late_rows.contains(&(*p, offset)) {
            continue;
        }
        let e = expected.entry(t.div_euclid(MINUTE) * MINUTE).or_default();
        e.0 += 1;
        e.1 += v;
    }
    // Late rows are the ones five minutes old (with a 10 s delay, jitter alone is never late).
    assert!(
        late_rows.len() <= (EVENTS / 2_000) as usize,
        "seed {seed}: {} late",
        late_rows.len()
    );
    let written = sql_rows(&format!(
        "CREATE EXTERNAL TABLE out (w TIMESTAMP, n BIGINT, total BIGINT) STORED AS KAFKA
           LOCATION 'kafka://{b}/{output}' OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');
         SELECT w, n, total FROM out"
    ))
    .await;
    let mut got: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for batch in &written {
        let w = millis(batch.column(0));
        let n = i64s(batch.column(1));
        let total = i64s(batch.column(2));
        for i in 0..batch.num_rows() {
            if got.insert(w[i], (n[i], total[i])).is_some() {
                duplicates.push(w[i]);
            }
        }
    }
    assert!(
        duplicates.is_empty(),
        "seed {seed}: windows written twice: {duplicates:?}"
    );
    assert_eq!(got, expected, "seed {seed}: {landed} kills landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_totals_into_a_compacted_topic_are_exact_across_kills() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let b = &brokers().kafka;
    let input = create_topic("sf-key-in", 3).await;
    let output = create_topic_with("sf-key-out", 2, &[("cleanup.policy", "compact")]).await;
    let messages: Vec<TestMessage> = (0..EVENTS)
        .map(|i| {
            TestMessage::value(
                (i % 3) as i32,
                format!(r#"{{"customer":"c{}","v":{i}}}"#, i % 1000),
            )
        })
        .collect();
    produce(&input, &messages).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (customer VARCHAR, v BIGINT) STORED AS KAFKA
               LOCATION 'kafka://{b}/{input}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (customer VARCHAR, total BIGINT, n BIGINT, _key VARCHAR)
               STORED AS KAFKA LOCATION 'kafka://{b}/{output}' OPTIONS ('value.format' 'json');
             INSERT INTO output (customer, total, n, _key)
               SELECT customer, sum(v), count(*), customer AS k FROM input GROUP BY customer
               HAVING count(*) < 100 OR customer < 'c5';"
        ),
    )
    .unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let landed = four_kills(checkpoint.to_str().unwrap(), &file, seed);
    let latest = sql_rows(&format!(
        "CREATE EXTERNAL TABLE out (customer VARCHAR, total BIGINT, n BIGINT, _key VARCHAR) STORED AS KAFKA
           LOCATION 'kafka://{b}/{output}' OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');
         SELECT _key, total, n FROM out ORDER BY _partition, _offset"
    ))
    .await;
    let mut view: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for batch in &latest {
        let keys = strings(batch.column(0));
        let total = i64s(batch.column(1));
        let n = i64s(batch.column(2));
        for i in 0..batch.num_rows() {
            // A tombstone (no value: every column NULL) deletes its key, as compaction does.
            if batch.column(1).is_null(i) {
                view.remove(&keys[i]);
            } else {
                view.insert(keys[i].clone(), (total[i], n[i]));
            }
        }
    }
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..EVENTS {
        let e = expected.entry(format!("c{}", i % 1000)).or_default();
        e.0 += i;
        e.1 += 1;
    }
    // Every customer has 100 events: those from 'c5' on left the result with their last one.
    expected.retain(|customer, (_, n)| *n < 100 || customer.as_str() < "c5");
    assert_eq!(expected.len(), 445);
    assert_eq!(view, expected, "seed {seed}: {landed} kills landed");
}

/// 600 events one second apart in partition 0 of a two-partition topic, none in partition 1.
async fn one_busy_partition() -> String {
    let topic = create_topic("sf-idle", 2).await;
    let base = (now_ms() - 3_600_000) / MINUTE * MINUTE;
    let messages: Vec<TestMessage> = (0..600i64)
        .map(|i| TestMessage {
            timestamp: Some(base + i * 1_000),
            ..TestMessage::value(0, format!(r#"{{"id":{i}}}"#))
        })
        .collect();
    produce(&topic, &messages).await;
    topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_window_closes_while_a_partition_is_idle() {
    let topic = one_busy_partition().await;
    let ctx = session_context();
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE w (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{}/{topic}'
           OPTIONS ('value.format' 'json', 'watermark.column' '_timestamp',
                    'watermark.idle-timeout' '2s')",
        brokers().kafka
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let batches = tokio::time::timeout(
        Duration::from_secs(30),
        ctx.sql(
            "SELECT date_bin(INTERVAL '1 minute', _timestamp), count(*) FROM w GROUP BY 1 LIMIT 3",
        )
        .await
        .unwrap()
        .collect(),
    )
    .await
    .expect("the live windows never closed")
    .unwrap();
    let counts: Vec<i64> = batches.iter().flat_map(|b| i64s(b.column(1))).collect();
    assert_eq!(counts, vec![60, 60, 60], "after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_window_closes_while_a_partition_is_idle() {
    let topic = one_busy_partition().await;
    let b = &brokers().kafka;
    let output = create_topic("sf-idle-out", 1).await;
    let sql = format!(
        "CREATE EXTERNAL TABLE w (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{b}/{topic}'
           OPTIONS ('value.format' 'json', 'watermark.column' '_timestamp',
                    'watermark.idle-timeout' '1s');
         CREATE EXTERNAL TABLE output (w TIMESTAMP, n BIGINT) STORED AS KAFKA
           LOCATION 'kafka://{b}/{output}' OPTIONS ('value.format' 'json');
         INSERT INTO output SELECT date_bin(INTERVAL '1 minute', _timestamp), count(*) FROM w GROUP BY 1;"
    );
    let query = ContinuousQuery::from_sql(session_context(), &sql)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        checkpoint: dir.path().to_str().unwrap().to_string(),
        trigger: Trigger::Interval(Duration::from_millis(200)),
        limits: Limits::default(),
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = std::sync::Arc::clone(&lines);
    let running = tokio::spawn(async move {
        query
            .run(&options, move |p| seen.lock().unwrap().push(p.to_string()))
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let emitted: u64 = lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.split("emitted=").nth(1))
            .filter_map(|r| r.split(' ').next())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum();
        if emitted >= 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "windows did not close: {:?}",
            lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.abort();
    let written = sql_rows(&format!(
        "CREATE EXTERNAL TABLE out (w TIMESTAMP, n BIGINT) STORED AS KAFKA
           LOCATION 'kafka://{b}/{output}' OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');
         SELECT n FROM out"
    ))
    .await;
    let counts: Vec<i64> = written.iter().flat_map(|b| i64s(b.column(0))).collect();
    assert_eq!(counts, vec![60; 9], "{:?}", lines.lock().unwrap());
}

/// `sql-examples/continuous/windowed_counts.sql`, run as its header says: closed minutes land
/// once, the open minute stays in the checkpoint, and a click older than the watermark that
/// arrives on the next run goes to the late topic instead of reopening its minute.
#[test]
fn the_continuous_windowed_example_runs_as_documented() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let b = brokers().kafka.clone();
    let (input, output, late) = runtime.block_on(async {
        (
            create_topic("ex-clicks", 3).await,
            create_topic("ex-minutes", 1).await,
            create_topic("ex-late", 1).await,
        )
    });
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sql-examples/continuous/windowed_counts.sql"),
    )
    .unwrap()
    .replace("ex_clicks_stream", &input)
    .replace("ex_click_minutes", &output)
    .replace("ex_late_clicks", &late);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("windowed_counts.sql");
    std::fs::write(&file, text).unwrap();
    let checkpoint = dir.path().join("cp");
    let checkpoint = checkpoint.to_str().unwrap();
    let click = |p: i32, t: i64, page: &str| TestMessage {
        timestamp: Some(t),
        ..TestMessage::value(p, format!(r#"{{"page":"{page}"}}"#))
    };
    // Minutes 0..3 of two hours ago: minute m has m+1 clicks on "home" and one on "docs" per
    // partition; then one click per partition 20 s into minute 3 moves the watermark to 3m10s.
    let base = (now_ms() - 2 * 3_600_000) / MINUTE * MINUTE;
    let mut clicks = Vec::new();
    for p in 0..3 {
        for m in 0..3 {
            for k in 0..=m {
                clicks.push(click(p, base + m * MINUTE + k * 1_000, "home"));
            }
            clicks.push(click(p, base + m * MINUTE + 30_000, "docs"));
        }
        clicks.push(click(p, base + 3 * MINUTE + 20_000, "home"));
    }
    runtime.block_on(produce(&input, &clicks));
    let run = |what: &str| {
        let out = crate::continuous::run_cmd(checkpoint, &file, &["--trigger", "available-now"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: {}",
            crate::continuous::text_of(&out)
        );
    };
    run("first run");
    // A click in minute 1 is now 2m10s behind the watermark: late.
    runtime.block_on(produce(&input, &[click(1, base + MINUTE + 5_000, "home")]));
    run("second run");

    let written = runtime.block_on(sql_rows(&format!(
        "CREATE EXTERNAL TABLE out (minute TIMESTAMP, page VARCHAR, clicks BIGINT) STORED AS KAFKA
           LOCATION 'kafka://{b}/{output}' OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');
         SELECT minute, page, clicks FROM out ORDER BY minute, page"
    )));
    let mut got = Vec::new();
    for batch in &written {
        let minute = millis(batch.column(0));
        let page = strings(batch.column(1));
        let n = i64s(batch.column(2));
        for i in 0..batch.num_rows() {
            got.push(((minute[i] - base) / MINUTE, page[i].clone(), n[i]));
        }
    }
    let expected: Vec<(i64, String, i64)> = (0..3)
        .flat_map(|m| {
            [
                (m, "docs".to_string(), 3),
                (m, "home".to_string(), 3 * (m + 1)),
            ]
        })
        .collect();
    assert_eq!(got, expected);
    let late_rows = runtime.block_on(sql_rows(&format!(
        "CREATE EXTERNAL TABLE late STORED AS KAFKA LOCATION 'kafka://{b}/{late}'
           OPTIONS ('scan.bounded.mode' 'latest-offset');
         SELECT count(*) FROM late"
    )));
    assert_eq!(i64s(late_rows[0].column(0)), vec![1]);
}
