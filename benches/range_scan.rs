//! Range-scan cost follows the range, not the topic: times a 1k-offset range scan on a
//! 10k-message topic and on a 1M-message topic, and prints both and their ratio (goal ≤ 1.5).
//!
//! Run: `cargo bench --bench range_scan` (starts local brokers unless KAFKA_BOOTSTRAP and
//! NATS_URL are set). `RANGE_SCAN_BIG=200000` shrinks the big topic for a quick look.

#[path = "../tests/it/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::time::{Duration, Instant};

use harness::*;

const RUNS: usize = 25;

async fn fill(messages: usize) -> String {
    let topic = create_topic("bench-range", 1).await;
    let payload = "x".repeat(180);
    let chunk = 50_000;
    for start in (0..messages).step_by(chunk) {
        let msgs: Vec<TestMessage> = (start..(start + chunk).min(messages))
            .map(|i| TestMessage::value(0, format!("{{\"i\":{i},\"p\":\"{payload}\"}}")))
            .collect();
        produce(&topic, &msgs).await;
    }
    topic
}

/// Median wall time of the range query over `RUNS` runs (after one warm-up).
async fn time_range(topic: &str, start: usize) -> Duration {
    let ctx = kafka_table(topic, no_columns(), &[]).await;
    let query = format!(
        "SELECT _offset, value FROM t WHERE _offset >= {start} AND _offset < {}",
        start + 1000
    );
    let mut times = Vec::with_capacity(RUNS);
    for run in 0..=RUNS {
        let t = Instant::now();
        let batches = sql(&ctx, &query).await;
        let elapsed = t.elapsed();
        assert_eq!(rows(&batches), 1000);
        if run > 0 {
            times.push(elapsed);
        }
    }
    times.sort();
    times[RUNS / 2]
}

#[tokio::main]
async fn main() {
    let big: usize = std::env::var("RANGE_SCAN_BIG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let small = 10_000;
    eprintln!(
        "filling topics: {small} and {big} messages of ~200 bytes on {}",
        brokers().kafka
    );
    let t = Instant::now();
    let small_topic = fill(small).await;
    let big_topic = fill(big).await;
    eprintln!("filled in {:.1?}", t.elapsed());

    let small_time = time_range(&small_topic, small / 2).await;
    let big_time = time_range(&big_topic, big / 2).await;
    let ratio = big_time.as_secs_f64() / small_time.as_secs_f64();
    println!("range scan of 1000 offsets (median of {RUNS}):");
    println!("  {small:>9}-message topic: {small_time:>10.2?}");
    println!("  {big:>9}-message topic: {big_time:>10.2?}");
    println!("  ratio big/small: {ratio:.2} (goal <= 1.5)");
}
