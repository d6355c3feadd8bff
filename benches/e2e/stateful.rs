//! Section 6: stateful continuous queries.
//!
//! (a) Throughput: `E2E_MESSAGES` messages whose create times step 60 ms apart (1M span about
//! 16.7 hours, 1000 messages per minute; round-robin over 3 partitions) run through each query
//! with the available-now trigger in batches of `E2E_SF_BATCH` offsets per partition (default
//! 50k): two stateless baselines (a filter that writes nothing, and a copy), a one-minute
//! windowed count, a keyed count over 10,007 users (update output into a keyed topic), and a
//! one-minute window per user. Per query: wall time, messages/s, CPU seconds per million
//! messages, rows written, median batch time, median checkpoint time per batch (state file +
//! `commits/N`), and the largest state (groups, bytes).
//!
//! (b) Window latency: messages produced at `E2E_RATE` per second for `E2E_SECONDS` into 3
//! partitions (create time = produce time) while a continuous query counts them in 500 ms
//! windows (`watermark.delay` 0); a consumer on the output records when each window's row
//! arrives. Latency = arrival − the window's end, which is when the watermark can first pass
//! the end (the next message on the slowest partition follows within 1/rate): the time from
//! the watermark passing a window's end to its row being in the sink.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion_topics::query::{ContinuousQuery, Limits, RunOptions, Trigger};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::common::*;
use crate::continuous::{paced, pct};
use crate::harness::*;

const STEP_MS: i64 = 60;

/// One query's figures.
struct Row {
    what: &'static str,
    rows: u64,
    tombstones: u64,
    wall: Duration,
    cpu: Duration,
    batches: usize,
    batch_ms: f64,
    checkpoint_ms: f64,
    state_groups: u64,
    state_bytes: u64,
}

fn now_ms() -> i64 {
    (now_us() / 1000) as i64
}

/// Produces `n` payloads with create times `STEP_MS` apart, ending an hour ago.
async fn fill_timed(topic: &str, n: u64) -> Duration {
    let base = now_ms() - 3_600_000 - n as i64 * STEP_MS;
    let base = base - base.rem_euclid(60_000);
    fill_kafka_with(topic, n, |i| {
        (payload(i, 0), Some(base + i as i64 * STEP_MS))
    })
    .await
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn run_query(
    what: &'static str,
    input: &str,
    output_columns: &str,
    insert: &str,
    per_batch: u64,
) -> Row {
    let k = &brokers().kafka;
    let output = create_topic("e2e-sf-out", PARTITIONS).await;
    let sql = format!(
        "CREATE EXTERNAL TABLE input ({COLUMNS_DDL}) STORED AS KAFKA LOCATION 'kafka://{k}/{input}'
           OPTIONS ('value.format' 'json', 'watermark.column' '_timestamp', 'watermark.delay' '5s');
         CREATE EXTERNAL TABLE output ({output_columns}) STORED AS KAFKA
           LOCATION 'kafka://{k}/{output}' OPTIONS ('value.format' 'json');
         {insert}"
    );
    let query = ContinuousQuery::from_sql(datafusion_topics::session_context(), &sql)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        checkpoint: dir.path().join("cp").to_str().unwrap().to_string(),
        trigger: Trigger::AvailableNow,
        limits: Limits {
            max_records: Some(per_batch),
            max_bytes: None,
        },
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    let mut row = Row {
        what,
        rows: 0,
        tombstones: 0,
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
        batches: 0,
        batch_ms: 0.0,
        checkpoint_ms: 0.0,
        state_groups: 0,
        state_bytes: 0,
    };
    let mut batch_ms = Vec::new();
    let mut checkpoint_ms = Vec::new();
    let cpu = cpu_time();
    let started = Instant::now();
    query
        .run(&options, |p| {
            row.rows += p.rows;
            row.tombstones += p.tombstones;
            batch_ms.push(p.elapsed.as_secs_f64() * 1000.0);
            checkpoint_ms.push(p.checkpoint_time.as_secs_f64() * 1000.0);
            if let Some(s) = &p.state {
                row.state_groups = row.state_groups.max(s.groups);
                row.state_bytes = row.state_bytes.max(s.bytes);
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    row.wall = started.elapsed();
    row.cpu = cpu_time() - cpu;
    row.batches = batch_ms.len();
    row.batch_ms = median(batch_ms);
    row.checkpoint_ms = median(checkpoint_ms);
    row
}

/// (a): the queries over one filled topic.
pub(crate) async fn stateful_throughput(messages: u64, per_batch: u64) -> String {
    let input = create_topic("e2e-sf-in", PARTITIONS).await;
    eprintln!("producing {messages} timed messages to {input}");
    let fill = fill_timed(&input, messages).await;
    let queries: [(&str, &str, &str); 5] = [
        (
            "stateless filter (writes nothing)",
            "id BIGINT, user VARCHAR, amount DOUBLE",
            "INSERT INTO output SELECT id, user, amount FROM input WHERE amount < 0;",
        ),
        (
            "stateless copy (3 columns)",
            "id BIGINT, user VARCHAR, amount DOUBLE",
            "INSERT INTO output SELECT id, user, amount FROM input;",
        ),
        (
            "1-minute windowed count + sum",
            "w TIMESTAMP, n BIGINT, total DOUBLE",
            "INSERT INTO output SELECT date_bin(INTERVAL '1 minute', _timestamp), count(*), sum(amount)
               FROM input GROUP BY 1;",
        ),
        (
            "keyed count + sum, 10007 users",
            "user VARCHAR, n BIGINT, total DOUBLE",
            "INSERT INTO output (user, n, total, _key) SELECT user, count(*), sum(amount), user AS k
               FROM input GROUP BY user;",
        ),
        (
            "1-minute window x user count",
            "w TIMESTAMP, user VARCHAR, n BIGINT",
            "INSERT INTO output SELECT date_bin(INTERVAL '1 minute', _timestamp), user, count(*)
               FROM input GROUP BY 1, 2;",
        ),
    ];
    let mut rows = Vec::new();
    for (what, columns, insert) in queries {
        eprintln!("  {what}");
        rows.push(run_query(what, &input, columns, insert, per_batch).await);
    }
    let mut out = format!(
        "6a. Stateful continuous queries over {messages} messages (1000 per minute of event time), \
         available-now in batches of {per_batch} offsets per partition (fill {fill:.1?})\n"
    );
    writeln!(
        out,
        "  {:<36} {:>8} {:>9} {:>7} {:>10} {:>9} {:>8} {:>8} {:>10} {:>8} {:>11}",
        "",
        "wall s",
        "msg/s",
        "× copy",
        "CPU s/1M",
        "rows out",
        "batches",
        "batch ms",
        "ckpt ms",
        "groups",
        "state bytes"
    )
    .unwrap();
    let copy_wall = rows
        .iter()
        .find(|r| r.what.starts_with("stateless copy"))
        .map_or(f64::NAN, |r| r.wall.as_secs_f64());
    for r in &rows {
        let tomb = if r.tombstones > 0 {
            format!(" (+{} tombstones)", r.tombstones)
        } else {
            String::new()
        };
        writeln!(
            out,
            "  {:<36} {:>8.2} {:>9.0} {:>7.2} {:>10.2} {:>9} {:>8} {:>8.1} {:>10.1} {:>8} {:>11}{tomb}",
            r.what,
            r.wall.as_secs_f64(),
            messages as f64 / r.wall.as_secs_f64(),
            r.wall.as_secs_f64() / copy_wall,
            r.cpu.as_secs_f64() * 1e6 / messages as f64,
            r.rows,
            r.batches,
            r.batch_ms,
            r.checkpoint_ms,
            r.state_groups,
            r.state_bytes,
        )
        .unwrap();
    }
    out.push_str(
        "  × copy = wall time / the stateless copy's; ckpt = median time writing the state file and commits/N;\n  \
         groups / state bytes = the largest state after a batch\n",
    );
    out
}

/// (b): watermark → sink latency of 500 ms windows at `rate` messages per second.
pub(crate) async fn window_latency(rate: u64, seconds: u64, trigger: Trigger) -> String {
    let k = brokers().kafka.clone();
    let input = create_topic("e2e-sf-live-in", PARTITIONS).await;
    let output = create_topic("e2e-sf-live-out", 1).await;
    let sql = format!(
        "CREATE EXTERNAL TABLE input ({COLUMNS_DDL}) STORED AS KAFKA LOCATION 'kafka://{k}/{input}'
           OPTIONS ('value.format' 'json', 'watermark.column' '_timestamp');
         CREATE EXTERNAL TABLE output (w_ms BIGINT, n BIGINT) STORED AS KAFKA
           LOCATION 'kafka://{k}/{output}' OPTIONS ('value.format' 'json');
         INSERT INTO output
           SELECT CAST(date_part('epoch', date_bin(INTERVAL '500 milliseconds', _timestamp)) * 1000 AS BIGINT), count(*)
           FROM input GROUP BY date_bin(INTERVAL '500 milliseconds', _timestamp);"
    );
    let query = ContinuousQuery::from_sql(datafusion_topics::session_context(), &sql)
        .await
        .expect("windowed continuous query");
    // Windows as they arrive: window start ms → (count, arrival µs).
    let arrived: Arc<Mutex<BTreeMap<i64, (i64, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &k)
            .set("group.id", "e2e-sf-latency")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&output, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).expect("assign");
        let arrived = Arc::clone(&arrived);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                    let m = m.expect("window row");
                    let now = now_us();
                    let v: serde_json::Value =
                        serde_json::from_slice(m.payload().unwrap_or_default()).expect("json");
                    let w = v["w_ms"].as_i64().expect("w_ms");
                    let n = v["n"].as_i64().expect("n");
                    arrived.lock().unwrap().insert(w, (n, now));
                }
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        checkpoint: dir.path().join("cp").to_str().unwrap().to_string(),
        trigger,
        limits: Limits::default(),
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    let batch_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let seen = Arc::clone(&batch_ms);
    let running = tokio::spawn(async move {
        query
            .run(&options, move |p| {
                seen.lock().unwrap().push(p.elapsed.as_secs_f64() * 1000.0)
            })
            .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started_ms = now_ms();
    let input2 = input.clone();
    let (sent, achieved) = paced(rate, seconds, |i| {
        let input = input2.clone();
        async move {
            let producer = producer_for_latency();
            let f = send_kafka(&producer, &input, (i % 3) as i32, payload(i, 0).as_bytes()).await;
            Some(tokio::spawn(await_delivery(f)))
        }
    })
    .await;
    let ended_ms = now_ms();
    // Windows ending before the last message's time close; wait for them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let last_closed = ended_ms - ended_ms.rem_euclid(500) - 500;
    while Instant::now() < deadline
        && !arrived
            .lock()
            .unwrap()
            .keys()
            .any(|w| *w >= last_closed - 500)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.abort();
    stop.store(true, Ordering::SeqCst);
    consumer.join().unwrap();
    let arrived = arrived.lock().unwrap().clone();
    let mut latencies: Vec<u64> = arrived
        .iter()
        .filter(|(w, _)| **w >= started_ms)
        .map(|(w, (_, at))| at.saturating_sub(((w + 500) * 1000) as u64))
        .collect();
    latencies.sort_unstable();
    if std::env::var("E2E_DEBUG").is_ok() {
        for (w, (n, at)) in &arrived {
            eprintln!(
                "window {} n={n} arrived {} ms after its end",
                w - started_ms,
                (*at as i64 / 1000) - (w + 500)
            );
        }
        eprintln!("produced from {started_ms} to {ended_ms}");
    }
    let counted: i64 = arrived.values().map(|(n, _)| n).sum();
    let batches = batch_ms.lock().unwrap().clone();
    let batch_count = batches.len();
    format!(
        "6b. Window latency: 500 ms windows, {rate} msg/s for {seconds} s (achieved {achieved:.0}), trigger {trigger}\n  \
         windows {} · rows counted in closed windows {counted} of {sent} sent (the rest in windows still open)\n  \
         window end → row in the sink: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n  \
         {batch_count} batches, median {:.1} ms each\n",
        latencies.len(),
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        pct(&latencies, 1.0),
        median(batches),
    )
}

/// One producer for the paced latency run (created once, cloned per send).
fn producer_for_latency() -> rdkafka::producer::FutureProducer {
    static PRODUCER: std::sync::OnceLock<rdkafka::producer::FutureProducer> =
        std::sync::OnceLock::new();
    PRODUCER.get_or_init(|| kafka_producer(1)).clone()
}
