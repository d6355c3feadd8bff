//! End-to-end figures on live brokers: throughput, query latency, continuous-query latency and
//! memory.
//!
//! 1. **Kafka throughput.** Produces `E2E_MESSAGES` (default 1M) JSON messages of about 200
//!    bytes (six fields: integers, a double, a boolean, text) to a 3-partition topic, then
//!    times, `E2E_RUNS` times each (median wall time, mean CPU time of this process from
//!    getrusage, every thread included): (a) a bare rdkafka consumer counting every message
//!    (the physical limit), (b) `SELECT count(*)` over a snapshot table
//!    (`'scan.bounded.mode' 'latest-offset'`), (c) a scan that decodes every JSON field into
//!    typed columns (sums, a distinct count, maxima). Prints messages/s, the wall ratios to (a)
//!    and CPU-seconds per million messages; CPU per million messages isolates our cost from
//!    the broker's.
//! 2. **`SELECT * FROM t LIMIT 10` latency** on an unbounded table: (i) over a topic that
//!    already holds data (default start, `earliest-offset`): the query's wall time; (ii) on an
//!    empty live tail (`'scan.startup.mode' 'latest-offset'`): the query waits, 10 messages are
//!    produced, and the figure is the time from the 10th produce acknowledgement to the end of
//!    the query. Kafka and NATS. Goal: ≤ 100 ms.
//! 3. **Continuous-query latency**: the micro-batch runner (library API, trigger interval
//!    `E2E_TRIGGER_MS`, default 0 = back to back) copies a topic into a sink table while
//!    messages are produced at `E2E_RATE` per second (default 10000) for `E2E_SECONDS`
//!    (default 20), each carrying its produce time; a consumer on the sink measures now −
//!    produce time per output message. Kafka → Kafka at the rate and at `E2E_SLOW_RATE`
//!    (default 2000), and NATS → NATS at the rate. Goal: p99 < 100 ms at
//!    10k msg/s.
//! 4. **Memory over a long scan**: RSS of this process sampled every 100 ms while a
//!    `SELECT` of every value column streams through `E2E_RSS_MESSAGES` (default 10M) messages
//!    of a NATS stream (and the Kafka topic of section 1); RSS at 10%, 50%, 90% and 100% of the
//!    rows, and the peak (VmHWM, reset before the scan). Goal: flat.
//! 5. **NATS throughput**: (a)–(c) of section 1 over a 3-subject JetStream stream of
//!    `E2E_MESSAGES`, the bare figure being three async-nats ordered consumers counting.
//! 6. **Stateful continuous queries** (see `stateful.rs`): windowed and keyed aggregations
//!    over `E2E_MESSAGES` timed messages beside stateless queries over the same input
//!    (throughput, checkpoint time per batch, state size), and the latency from the watermark
//!    passing a window's end to the window's row in the sink at `E2E_RATE`.
//!
//! 7. **Split scans** (see `split.rs`): a one-partition topic of `E2E_MESSAGES` decoded
//!    unsplit, with `scan.split.min-partitions` `auto` and in four pieces, beside a bare
//!    consumer.
//!
//! 8. **Distributed** (see `distributed.rs`, with `--features distributed`): the decoding scan
//!    over a 4-partition topic in one process and on two local workers.
//!
//! Run: `cargo bench --bench e2e` (starts local brokers unless KAFKA_BOOTSTRAP and NATS_URL are
//! set). A quick look: `E2E_MESSAGES=100000 E2E_RSS_MESSAGES=500000 E2E_SECONDS=5 cargo bench
//! --bench e2e`. `E2E_ONLY=kafka,latency,cq,rss,nats,sf,split,dist` runs some sections only.

use dft_test_support as harness;

#[path = "../support/cpu.rs"]
mod cpu;

mod common;
mod continuous;
#[cfg(feature = "distributed")]
mod distributed;
mod latency;
mod memory;
mod split;
mod stateful;
mod throughput;

use std::time::Duration;

use datafusion_topics::query::Trigger;
use harness::*;

use common::*;
use continuous::*;
use latency::*;
use memory::*;
use split::*;
use stateful::*;
use throughput::*;

#[tokio::main]
async fn main() {
    let messages = env_or("E2E_MESSAGES", 1_000_000);
    let rss_messages = env_or("E2E_RSS_MESSAGES", 10_000_000);
    let rate = env_or("E2E_RATE", 10_000);
    let slow_rate = env_or("E2E_SLOW_RATE", 2_000);
    let seconds = env_or("E2E_SECONDS", 20);
    let runs = env_or("E2E_RUNS", 3) as usize;
    let latency_runs = env_or("E2E_LATENCY_RUNS", 10) as usize;
    let trigger = Trigger::Interval(Duration::from_millis(env_or("E2E_TRIGGER_MS", 0)));
    let b = brokers();
    let header = format!(
        "cargo bench --bench e2e: E2E_MESSAGES={messages} E2E_RSS_MESSAGES={rss_messages} E2E_RATE={rate} \
         E2E_SLOW_RATE={slow_rate} E2E_SECONDS={seconds} E2E_RUNS={runs} E2E_LATENCY_RUNS={latency_runs} \
         trigger {trigger}; kafka {} (external: {}), nats {}; {} cpus",
        b.kafka,
        b.external_kafka,
        b.nats,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    eprintln!("{header}");
    let mut report: Vec<String> = Vec::new();
    let js = jetstream().await;

    let mut kafka_topic = None;
    if section_enabled("kafka") || section_enabled("latency") || section_enabled("rss") {
        let topic = create_topic("e2e-data", PARTITIONS).await;
        eprintln!("producing {messages} messages to kafka topic {topic}");
        let took = fill_kafka(&topic, messages).await;
        report.push(format!(
            "Kafka fill: {messages} messages in {took:.1?} ({:.0} msg/s produced)\n",
            messages as f64 / took.as_secs_f64()
        ));
        eprintln!("{}", report.last().unwrap());
        kafka_topic = Some(topic);
    }
    let mut nats_stream = None;
    if section_enabled("nats") || section_enabled("latency") {
        let stream = create_stream(&js, "E2E_DATA", &["0", "1", "2"]).await;
        eprintln!("publishing {messages} messages to nats stream {stream}");
        let took = fill_nats(&stream, messages).await;
        report.push(format!(
            "NATS fill: {messages} messages in {took:.1?} ({:.0} msg/s published)\n",
            messages as f64 / took.as_secs_f64()
        ));
        eprintln!("{}", report.last().unwrap());
        nats_stream = Some(stream);
    }

    if section_enabled("kafka") {
        eprintln!("section 1: kafka throughput");
        let t = kafka_throughput(kafka_topic.as_ref().unwrap(), messages, runs).await;
        eprintln!("{t}");
        report.push(t);
    }

    if section_enabled("latency") {
        eprintln!("section 2: LIMIT 10 latency");
        let mut rows = kafka_latency(kafka_topic.as_ref().unwrap(), latency_runs).await;
        rows.extend(nats_latency(&js, nats_stream.as_ref().unwrap(), latency_runs).await);
        let t = latency_table(
            "2. SELECT * FROM t LIMIT 10 on an unbounded table (goal <= 100 ms)",
            &rows,
        );
        eprintln!("{t}");
        report.push(t);
    }

    if section_enabled("cq") {
        eprintln!("section 3: continuous-query latency");
        let mut rows = Vec::new();
        for r in [rate, slow_rate] {
            eprintln!("  kafka -> kafka at {r} msg/s");
            rows.push(cq_kafka(r, seconds, trigger).await);
        }
        eprintln!("  nats -> nats at {rate} msg/s");
        rows.push(cq_nats(&js, rate, seconds, trigger).await);
        let t = cq_table(
            &format!(
                "3. Continuous query produce -> sink latency, {seconds} s of paced producing (goal p99 < 100 ms at 10k msg/s)"
            ),
            &rows,
        );
        eprintln!("{t}");
        report.push(t);
    }

    if section_enabled("rss") {
        eprintln!("section 4: RSS over long scans");
        let mut rows = Vec::new();
        let ctx = kafka_table(
            kafka_topic.as_ref().unwrap(),
            value_schema(),
            &[
                ("value.format", "json"),
                ("scan.bounded.mode", "latest-offset"),
            ],
        )
        .await;
        rows.push(rss_scan(format!("Kafka, {messages} msgs"), &ctx, messages).await);
        drop(ctx);
        let stream = create_stream(&js, "E2E_RSS", &["0", "1", "2"]).await;
        eprintln!("publishing {rss_messages} messages to nats stream {stream}");
        let took = fill_nats(&stream, rss_messages).await;
        report.push(format!(
            "NATS fill: {rss_messages} messages in {took:.1?} ({:.0} msg/s published)\n",
            rss_messages as f64 / took.as_secs_f64()
        ));
        eprintln!("{}", report.last().unwrap());
        let subjects = subject_list(&stream);
        let ctx = nats_table(
            &stream,
            value_schema(),
            &[
                ("value.format", "json"),
                ("nats.subjects", &subjects),
                ("scan.bounded.mode", "latest-offset"),
            ],
        )
        .await;
        rows.push(rss_scan(format!("NATS, {rss_messages} msgs"), &ctx, rss_messages).await);
        drop(ctx);
        js.delete_stream(&stream).await.expect("delete stream");
        let t = rss_table(&rows);
        eprintln!("{t}");
        report.push(t);
    }

    if section_enabled("nats") {
        eprintln!("section 5: nats throughput");
        let t = nats_throughput(&js, nats_stream.as_ref().unwrap(), messages, runs).await;
        eprintln!("{t}");
        report.push(t);
    }

    if section_enabled("sf") {
        eprintln!("section 6: stateful continuous queries");
        let t = stateful_throughput(messages, env_or("E2E_SF_BATCH", 50_000)).await;
        eprintln!("{t}");
        report.push(t);
        let t = window_latency(rate, seconds, trigger).await;
        eprintln!("{t}");
        report.push(t);
    }

    if section_enabled("split") {
        eprintln!("section 7: split scans of one partition");
        let t = split_scan(messages, runs).await;
        eprintln!("{t}");
        report.push(t);
    }

    #[cfg(feature = "distributed")]
    if section_enabled("dist") {
        eprintln!("section 8: one process vs two workers");
        let t = distributed::distributed_scan(messages, runs).await;
        eprintln!("{t}");
        report.push(t);
    }

    println!("{header}");
    for t in report {
        println!("{t}");
    }
}
