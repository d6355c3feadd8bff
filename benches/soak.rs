//! Soak test of exactly-once continuous queries (not part of the test suite): a
//! `datafusion-topics run` child copies SOAK_MESSAGES (default 1M) messages from a 3-partition
//! Kafka topic into a Kafka topic, is killed with SIGKILL SOAK_KILLS (default 20) times at
//! random moments and restarted each time, then runs to the end. The output must hold every
//! input exactly once. Prints produce time, run time, kills that hit a running batch, batches
//! replayed and throughput.
//!
//! Run: `cargo bench --bench soak` (starts local brokers unless KAFKA_BOOTSTRAP and NATS_URL
//! are set). `SOAK_SEED` repeats a run's kill schedule.

use dft_test_support as harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion_topics::session_context;
use harness::*;
use rand::{Rng, SeedableRng};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let messages = env_or("SOAK_MESSAGES", 1_000_000) as usize;
    let kills = env_or("SOAK_KILLS", 20);
    let seed = env_or("SOAK_SEED", rand::random::<u32>() as u64);
    let b = brokers();
    println!(
        "soak: {messages} messages, {kills} kills, seed {seed}, kafka {}",
        b.kafka
    );

    let input = create_topic("soak-in", 3).await;
    let output = unique_name("soak-out");
    let started = Instant::now();
    for chunk in json_messages(messages, 3).chunks(100_000) {
        produce(&input, chunk).await;
    }
    let produce_time = started.elapsed();
    println!("produced in {produce_time:?}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka:///{input}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka:///{output}'
               OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3');
             INSERT INTO output (id, name, _partition) SELECT id, name, _partition FROM input;"
        ),
    )
    .unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let run = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_datafusion-topics"));
        cmd.args([
            "run",
            "--trigger",
            "once",
            "--max-records-per-partition",
            "20000",
            "-q",
        ])
        .arg("--checkpoint")
        .arg(&checkpoint)
        .arg("-f")
        .arg(&file)
        .env("KAFKA_BOOTSTRAP", &b.kafka)
        .env("NATS_URL", &b.nats);
        cmd
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut landed = 0;
    for _ in 0..kills {
        let mut child = run().stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(300..4000)));
        if child.try_wait().unwrap().is_none() {
            landed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let last = run().output().unwrap();
    assert!(
        last.status.success(),
        "final run failed: {}",
        String::from_utf8_lossy(&last.stderr)
    );
    let run_time = started.elapsed();

    let mut replays = 0;
    let mut batches = 0;
    for entry in std::fs::read_dir(checkpoint.join("commits")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        batches += 1;
        if !text.contains("\"already_written\": 0") {
            replays += 1;
        }
    }

    let ctx = session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE out (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{}/{output}'
         OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')",
            b.kafka
        ),
    )
    .await;
    let counts = sql(
        &ctx,
        "SELECT count(*), count(DISTINCT id), min(id), max(id) FROM out",
    )
    .await;
    let row: Vec<i64> = (0..4)
        .map(|i| counts[0].column(i).as_primitive::<Int64Type>().value(0))
        .collect();
    let exact = row == [messages as i64, messages as i64, 0, messages as i64 - 1];
    println!(
        "run: {run_time:?} for {messages} messages ({:.0} msg/s including restarts); {landed}/{kills} kills hit a running query; \
         {batches} batches, {replays} resumed a partly written batch",
        messages as f64 / run_time.as_secs_f64()
    );
    println!(
        "output: {} rows, {} distinct ids in [{}, {}]: {}",
        row[0],
        row[1],
        row[2],
        row[3],
        if exact {
            "exactly once"
        } else {
            "NOT EXACTLY ONCE"
        }
    );
    assert!(exact, "seed {seed}");
}
