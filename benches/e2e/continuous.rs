//! Section 3: produce-to-sink latency of continuous queries at a fixed input rate.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use datafusion_topics::query::{ContinuousQuery, Limits, RunOptions, Trigger};
use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::common::*;
use crate::harness::*;

pub(crate) struct CqResult {
    pub(crate) what: String,
    pub(crate) rate: u64,
    pub(crate) sent: u64,
    pub(crate) achieved_rate: f64,
    pub(crate) received: u64,
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) steady_us: Vec<u64>,
    pub(crate) batches: usize,
    pub(crate) batch_ms_median: f64,
    pub(crate) rows_per_batch: f64,
    pub(crate) error: Option<String>,
}

pub(crate) fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub(crate) fn cq_table(title: &str, rows: &[CqResult]) -> String {
    let mut out = format!("{title}\n");
    writeln!(
        out,
        "  {:<34} {:>7} {:>9} {:>9} {:>9} | {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>7} {:>9} {:>9}",
        "",
        "rate",
        "achieved",
        "sent",
        "received",
        "p50 ms",
        "p99 ms",
        "p99.9",
        "max ms",
        "st. p50",
        "st. p99",
        "batches",
        "batch ms",
        "rows/bat"
    )
    .unwrap();
    for r in rows {
        let mut all = r.latencies_us.clone();
        all.sort_unstable();
        let mut st = r.steady_us.clone();
        st.sort_unstable();
        writeln!(
            out,
            "  {:<34} {:>7} {:>9.0} {:>9} {:>9} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>8.1} {:>8.1} | {:>7} {:>9.1} {:>9.0}",
            r.what,
            r.rate,
            r.achieved_rate,
            r.sent,
            r.received,
            pct(&all, 0.5),
            pct(&all, 0.99),
            pct(&all, 0.999),
            pct(&all, 1.0),
            pct(&st, 0.5),
            pct(&st, 0.99),
            r.batches,
            r.batch_ms_median,
            r.rows_per_batch
        )
        .unwrap();
        if let Some(e) = &r.error {
            writeln!(out, "    FAILED after {} batches: {e}", r.batches).unwrap();
        }
    }
    out.push_str(
        "  latency = sink consumer's receive time - the produce time carried in the message;\n  \
         st. = steady state, messages produced after the first 2 s; achieved = acknowledged produce rate\n",
    );
    out
}

/// Produces `rate` messages per second for `seconds` through `send`; returns (sent, rate
/// achieved including the wait for the last acknowledgement).
pub(crate) async fn paced<S, Fut>(rate: u64, seconds: u64, mut send: S) -> (u64, f64)
where
    S: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Option<tokio::task::JoinHandle<()>>>,
{
    let started = Instant::now();
    let total = rate * seconds;
    let mut acks: VecDeque<tokio::task::JoinHandle<()>> = VecDeque::new();
    let mut i = 0;
    let tick = Duration::from_millis(2);
    while i < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while i < due {
            if let Some(h) = send(i).await {
                acks.push_back(h);
            }
            i += 1;
        }
        while acks.front().is_some_and(|h| h.is_finished()) {
            acks.pop_front().unwrap().await.unwrap();
        }
        tokio::time::sleep(tick).await;
    }
    for h in acks {
        h.await.unwrap();
    }
    (total, total as f64 / started.elapsed().as_secs_f64())
}

/// Runs `query` while `produce` runs and a sink consumer records latencies; stops when the
/// consumer has seen everything produced or 60 s after the producer finished.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drive_cq<P, PF>(
    what: String,
    rate: u64,
    query: ContinuousQuery,
    trigger: Trigger,
    produce: P,
    latencies: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
    stop: Arc<AtomicBool>,
    start_us: u64,
) -> CqResult
where
    P: FnOnce() -> PF,
    PF: std::future::Future<Output = (u64, f64)> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        checkpoint: dir.path().join("checkpoint").to_str().unwrap().to_string(),
        trigger,
        limits: Limits {
            max_records: None,
            max_bytes: None,
        },
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    let mut batches: Vec<(u64, Duration)> = Vec::new();
    let mut error = None;
    let (sent, achieved) = {
        let run = query.run(&options, |p| batches.push((p.rows, p.elapsed)));
        tokio::pin!(run);
        // Let the runner start and idle on the empty source first.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut run).await;
        let producer = tokio::spawn(produce());
        let abort_producer = producer.abort_handle();
        let waiter = {
            let latencies = latencies.clone();
            async move {
                let (sent, achieved) = producer.await.unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                while (latencies.lock().unwrap().len() as u64) < sent && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (sent, achieved)
            }
        };
        tokio::select! {
            r = &mut run => {
                // Reported in the table (a failure of the crate, not of the bench).
                let e = format!("{r:?}");
                eprintln!("{what}: the continuous query ended: {e}");
                error = Some(e);
                abort_producer.abort();
                (0, f64::NAN)
            }
            r = waiter => r,
        }
    };
    stop.store(true, Ordering::SeqCst);
    let lat = latencies.lock().unwrap().clone();
    let steady_from = start_us + 2_000_000;
    let mut durations: Vec<Duration> = batches.iter().map(|b| b.1).collect();
    durations.sort();
    let batch_rows: u64 = batches.iter().map(|b| b.0).sum();
    CqResult {
        what,
        rate,
        sent,
        achieved_rate: achieved,
        received: lat.len() as u64,
        latencies_us: lat.iter().map(|l| l.1).collect(),
        steady_us: lat
            .iter()
            .filter(|l| l.0 >= steady_from)
            .map(|l| l.1)
            .collect(),
        batches: batches.len(),
        batch_ms_median: durations
            .get(durations.len() / 2)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        rows_per_batch: batch_rows as f64 / batches.len().max(1) as f64,
        error,
    }
}

/// A thread consuming the Kafka sink topic from the beginning, recording (produce time,
/// latency) per message.
pub(crate) fn kafka_latency_consumer(
    topic: String,
    latencies: Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .set("group.id", "e2e-latency")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                let m = m.expect("sink message");
                let now = now_us();
                let ts = ts_field(m.payload().unwrap_or_default()).expect("ts field");
                if ts == 0 {
                    continue; // a warm-up message
                }
                latencies.lock().unwrap().push((ts, now.saturating_sub(ts)));
            }
        }
    })
}

pub(crate) async fn cq_kafka(rate: u64, seconds: u64, trigger: Trigger) -> CqResult {
    let b = brokers();
    let input = create_topic("e2e-cq-in", PARTITIONS).await;
    let output = unique_name("e2e-cq-out");
    let sql = format!(
        "CREATE EXTERNAL TABLE input ({COLUMNS_DDL}) STORED AS KAFKA LOCATION 'kafka://{k}/{input}'
           OPTIONS ('value.format' 'json');
         CREATE EXTERNAL TABLE output ({COLUMNS_DDL}) STORED AS KAFKA LOCATION 'kafka://{k}/{output}'
           OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3');
         INSERT INTO output (id, user, amount, active, ts, note, _partition)
           SELECT id, user, amount, active, ts, note, _partition FROM input;",
        k = b.kafka
    );
    let query = ContinuousQuery::from_sql(datafusion_topics::session_context(), &sql)
        .await
        .expect("continuous query");
    // One message per partition before the runner starts: its first batch is then planned
    // over data (see the report on planning a first batch while messages arrive).
    let warm = kafka_producer(0);
    for p in 0..PARTITIONS {
        let f = send_kafka(&warm, &input, p, payload(0, 0).as_bytes()).await;
        await_delivery(f).await;
    }
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = kafka_latency_consumer(output.clone(), latencies.clone(), stop.clone());
    let produce = move || async move {
        let producer = kafka_producer(1);
        paced(rate, seconds, |i| {
            let producer = producer.clone();
            let input = input.clone();
            async move {
                let v = payload(i, now_us());
                let f = send_kafka(&producer, &input, (i % 3) as i32, v.as_bytes()).await;
                Some(tokio::spawn(await_delivery(f)))
            }
        })
        .await
    };
    let approx_start = now_us() + 2_000_000;
    let r = drive_cq(
        format!("Kafka -> Kafka, trigger {trigger}"),
        rate,
        query,
        trigger,
        produce,
        latencies,
        stop,
        approx_start,
    )
    .await;
    consumer.join().unwrap();
    r
}

pub(crate) async fn cq_nats(
    js: &jetstream::Context,
    rate: u64,
    seconds: u64,
    trigger: Trigger,
) -> CqResult {
    let b = brokers();
    let input = create_stream(js, "E2E_CQ_IN", &["0", "1", "2"]).await;
    let output = unique_name("E2E_CQ_OUT").replace('-', "_");
    let out_subjects = output.to_lowercase();
    let in_subjects = subject_list(&input);
    let sql = format!(
        "CREATE EXTERNAL TABLE input ({COLUMNS_DDL}) STORED AS NATS LOCATION '{n}/{input}'
           OPTIONS ('value.format' 'json', 'nats.subjects' '{in_subjects}');
         CREATE EXTERNAL TABLE output ({COLUMNS_DDL}) STORED AS NATS LOCATION '{n}/{output}'
           OPTIONS ('value.format' 'json', 'nats.subjects' '{out_subjects}.*', 'topic.create' 'true');
         INSERT INTO output (id, user, amount, active, ts, note, _partition)
           SELECT id, user, amount, active, ts, note, _partition FROM input;",
        n = b.nats
    );
    let query = ContinuousQuery::from_sql(datafusion_topics::session_context(), &sql)
        .await
        .expect("continuous query");
    // One message per subject before the runner starts: planning a first batch over an empty
    // subject while messages arrive on others fails (see the report).
    for p in 0..PARTITIONS {
        publish(js, &format!("{input}.{p}"), payload(0, 0)).await;
    }
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let stream = js.get_stream(&output).await.expect("output stream");
        let c = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .expect("sink consumer");
        let mut messages = c.messages().await.expect("sink messages");
        let latencies = latencies.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let Ok(next) =
                    tokio::time::timeout(Duration::from_millis(100), messages.next()).await
                else {
                    continue;
                };
                let m = next.expect("sink stream ended").expect("sink message");
                let now = now_us();
                let ts = ts_field(&m.payload).expect("ts field");
                if ts == 0 {
                    continue; // a warm-up message
                }
                latencies.lock().unwrap().push((ts, now.saturating_sub(ts)));
            }
        })
    };
    let js2 = js.clone();
    let produce = move || async move {
        paced(rate, seconds, |i| {
            let js = js2.clone();
            let subject = format!("{input}.{}", i % 3);
            async move {
                let ack = js
                    .publish(subject, payload(i, now_us()).into())
                    .await
                    .expect("publish");
                Some(tokio::spawn(async move {
                    ack.await.expect("publish ack");
                }))
            }
        })
        .await
    };
    let approx_start = now_us() + 2_000_000;
    let r = drive_cq(
        format!("NATS -> NATS, trigger {trigger}"),
        rate,
        query,
        trigger,
        produce,
        latencies,
        stop,
        approx_start,
    )
    .await;
    consumer.await.unwrap();
    r
}
