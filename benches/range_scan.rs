//! Range-scan cost follows the range, not the topic.
//!
//! Scans 1000 offsets in the middle of a 10k-message topic and of a 1M-message topic, through
//! datafusion-topics and through a bare rdkafka consumer reading the same offsets, and prints
//! for each: median wall time and mean CPU time of this process (getrusage, every thread,
//! librdkafka's included). librdkafka's threads also burn CPU while they wait, in proportion to wall time, so the figure that isolates our cost is the CPU we
//! add on top of the bare consumer (ours − raw). Goal: its big/small ratio ≤ 1.5, and our wall
//! time within 10% of the bare consumer's.
//!
//! Run: `cargo bench --bench range_scan` (starts local brokers unless KAFKA_BOOTSTRAP and
//! NATS_URL are set). `RANGE_SCAN_BIG=200000` shrinks the big topic for a quick look.

use dft_test_support as harness;

#[path = "support/cpu.rs"]
mod cpu;

use std::time::{Duration, Instant};

use cpu::cpu_time;
use harness::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

const RUNS: usize = 15;
const RANGE: usize = 1000;

/// Median wall time and mean CPU time of `RUNS` runs (after one warm-up).
async fn measure<F, Fut>(mut run: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run().await;
    let mut walls = Vec::with_capacity(RUNS);
    let cpu_before = cpu_time();
    for _ in 0..RUNS {
        let t = Instant::now();
        run().await;
        walls.push(t.elapsed());
    }
    let cpu = (cpu_time() - cpu_before) / RUNS as u32;
    walls.sort();
    (walls[RUNS / 2], cpu)
}

async fn fill(messages: usize) -> String {
    let topic = create_topic("bench-range", 1).await;
    let payload = "x".repeat(180);
    for start in (0..messages).step_by(50_000) {
        let msgs: Vec<TestMessage> = (start..(start + 50_000).min(messages))
            .map(|i| TestMessage::value(0, format!("{{\"i\":{i},\"p\":\"{payload}\"}}")))
            .collect();
        produce(&topic, &msgs).await;
    }
    topic
}

/// Reads `[start, start + RANGE)` with a bare rdkafka consumer.
fn raw_read(topic: &str, start: i64) {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .set("group.id", "bench")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(start))
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut n = 0;
    while n < RANGE {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            assert!(m.offset() >= start);
            n += 1;
        }
    }
}

struct Figures {
    ours: (Duration, Duration),
    raw: (Duration, Duration),
}

async fn bench_topic(topic: &str, start: usize) -> Figures {
    let ctx = kafka_table(topic, no_columns(), &[]).await;
    let query = format!(
        "SELECT _offset, value FROM t WHERE _offset >= {start} AND _offset < {}",
        start + RANGE
    );
    let ours = measure(|| async {
        assert_eq!(rows(&sql(&ctx, &query).await), RANGE);
    })
    .await;
    let raw = measure(|| async {
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || raw_read(&topic, start as i64))
            .await
            .expect("raw read");
    })
    .await;
    Figures { ours, raw }
}

#[tokio::main]
async fn main() {
    let big: usize = std::env::var("RANGE_SCAN_BIG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let small = 10_000;
    eprintln!(
        "filling topics of {small} and {big} messages (~200 bytes) on {}",
        brokers().kafka
    );
    let t = Instant::now();
    let small_topic = fill(small).await;
    let big_topic = fill(big).await;
    eprintln!("filled in {:.1?}", t.elapsed());

    let s = bench_topic(&small_topic, small / 2).await;
    let b = bench_topic(&big_topic, big / 2).await;
    println!(
        "scan of {RANGE} offsets in the middle of the topic; wall = median of {RUNS}, cpu = mean per scan"
    );
    println!(
        "{:>12} | {:>12} {:>12} | {:>12} {:>12}",
        "topic", "ours wall", "ours cpu", "raw wall", "raw cpu"
    );
    for (n, f) in [(small, &s), (big, &b)] {
        println!(
            "{n:>12} | {:>12.2?} {:>12.2?} | {:>12.2?} {:>12.2?}",
            f.ours.0, f.ours.1, f.raw.0, f.raw.1
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let added = |f: &Figures| f.ours.1.saturating_sub(f.raw.1);
    println!(
        "cpu added by datafusion-topics per scan: small {:.2?}, big {:.2?}; big/small {:.2} (goal <= 1.5)",
        added(&s),
        added(&b),
        ratio(added(&b), added(&s).max(Duration::from_micros(1)))
    );
    println!(
        "big/small, our wall: {:.2} (raw consumer: {:.2}; the broker's fetch cost)",
        ratio(b.ours.0, s.ours.0),
        ratio(b.raw.0, s.raw.0)
    );
    println!(
        "ours/raw wall: small {:.2}, big {:.2}",
        ratio(s.ours.0, s.raw.0),
        ratio(b.ours.0, b.raw.0)
    );
}
