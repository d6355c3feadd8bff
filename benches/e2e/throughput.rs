//! Sections 1 and 5: throughput of a bare client, `count(*)` and a decoding scan, Kafka and NATS.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::common::*;
use crate::harness::*;

/// One line of a throughput table.
pub(crate) struct Throughput {
    pub(crate) what: &'static str,
    pub(crate) wall: Duration,
    pub(crate) cpu: Duration,
}

/// Median wall time and mean CPU time of `runs` runs of each contender, interleaved (a, b, c,
/// a, b, c, …) so that drift in the broker's speed hits all alike. One warm-up run of the
/// first contender comes first.
pub(crate) type Contender = (&'static str, Box<dyn FnMut() -> BoxFuture<'static, ()>>);

pub(crate) async fn measure_interleaved(
    runs: usize,
    mut contenders: Vec<Contender>,
) -> Vec<Throughput> {
    (contenders[0].1)().await;
    let mut walls = vec![Vec::new(); contenders.len()];
    let mut cpus = vec![Duration::ZERO; contenders.len()];
    for run in 0..runs {
        for (i, (what, f)) in contenders.iter_mut().enumerate() {
            let cpu = cpu_time();
            let t = Instant::now();
            f().await;
            let wall = t.elapsed();
            cpus[i] += cpu_time() - cpu;
            walls[i].push(wall);
            eprintln!("  run {run}: {what}: {wall:.2?}");
        }
    }
    contenders
        .iter()
        .enumerate()
        .map(|(i, (what, _))| {
            walls[i].sort();
            Throughput {
                what,
                wall: walls[i][runs / 2],
                cpu: cpus[i] / runs as u32,
            }
        })
        .collect()
}

pub(crate) fn throughput_table(title: &str, messages: u64, rows: &[Throughput]) -> String {
    let mut out = String::new();
    let raw = &rows[0];
    writeln!(out, "{title}").unwrap();
    writeln!(
        out,
        "  {:<44} {:>10} {:>12} {:>10} {:>10} {:>12}",
        "", "wall", "msg/s", "wall/raw", "cpu", "cpu-s/M msg"
    )
    .unwrap();
    for r in rows {
        let per_m = r.cpu.as_secs_f64() / (messages as f64 / 1e6);
        writeln!(
            out,
            "  {:<44} {:>10.2?} {:>12.0} {:>10.2} {:>10.2?} {:>12.2}",
            r.what,
            r.wall,
            messages as f64 / r.wall.as_secs_f64(),
            r.wall.as_secs_f64() / raw.wall.as_secs_f64(),
            r.cpu,
            per_m
        )
        .unwrap();
    }
    let raw_cpu = raw.cpu.as_secs_f64() / (messages as f64 / 1e6);
    for r in &rows[1..] {
        let per_m = r.cpu.as_secs_f64() / (messages as f64 / 1e6);
        writeln!(
            out,
            "  {}: cpu added over raw {:.2} s/M msg ({:.2}x raw cpu)",
            r.what,
            per_m - raw_cpu,
            per_m / raw_cpu
        )
        .unwrap();
    }
    out
}

pub(crate) async fn single_i64(ctx: &SessionContext, query: &str) -> i64 {
    let b = sql(ctx, query).await;
    b[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// A bare consumer counting the `messages` messages of `topic` (`partitions` partitions).
pub(crate) fn raw_kafka_contender(
    what: &'static str,
    topic: &str,
    partitions: i32,
    messages: u64,
) -> Contender {
    let topic = topic.to_string();
    let raw = move || {
        let t = topic.clone();
        async move {
            let got = tokio::task::spawn_blocking(move || raw_kafka_count_of(&t, partitions))
                .await
                .unwrap();
            assert_eq!(got, messages);
        }
        .boxed()
    };
    (what, Box::new(raw))
}

// ---------------------------------------------------------------------------------------------
// Section 1: Kafka throughput

pub(crate) async fn kafka_throughput(topic: &str, messages: u64, runs: usize) -> String {
    let ctx = kafka_table(
        topic,
        value_schema(),
        &[
            ("value.format", "json"),
            ("scan.bounded.mode", "latest-offset"),
        ],
    )
    .await;
    let n = messages as i64;
    let rows = measure_interleaved(
        runs,
        with_queries(
            raw_kafka_contender(
                "(a) raw rdkafka BaseConsumer, 3 partitions",
                topic,
                PARTITIONS,
                messages,
            ),
            &ctx,
            n,
        ),
    )
    .await;
    throughput_table(
        &format!(
            "1. Kafka throughput: {messages} messages (~200 B JSON, 3 partitions); wall = median of {runs}, cpu = mean per run"
        ),
        messages,
        &rows,
    )
}

pub(crate) async fn nats_throughput(
    js: &jetstream::Context,
    stream: &str,
    messages: u64,
    runs: usize,
) -> String {
    let subjects = subject_list(stream);
    let ctx = nats_table(
        stream,
        value_schema(),
        &[
            ("value.format", "json"),
            ("nats.subjects", &subjects),
            ("scan.bounded.mode", "latest-offset"),
        ],
    )
    .await;
    let n = messages as i64;
    let (js1, s1) = (js.clone(), stream.to_string());
    let raw = move || {
        let (js, s) = (js1.clone(), s1.clone());
        async move { assert_eq!(raw_nats_count(&js, &s, n as u64).await, n as u64) }.boxed()
    };
    let rows = measure_interleaved(
        runs,
        with_queries(
            (
                "(a) raw async-nats ordered consumers (3 subj.)",
                Box::new(raw),
            ),
            &ctx,
            n,
        ),
    )
    .await;
    throughput_table(
        &format!(
            "5. NATS throughput: {messages} messages (~200 B JSON, 3 subject partitions); wall = median of {runs}, cpu = mean per run"
        ),
        messages,
        &rows,
    )
}

/// The bare client's contender followed by (b) `count(*)` and (c) the decoding scan over
/// table `t` of `ctx`, each checking that it saw `n` messages.
fn with_queries(raw: Contender, ctx: &SessionContext, n: i64) -> Vec<Contender> {
    let query = |name: &'static str, sql: &'static str| -> Contender {
        let ctx = ctx.clone();
        let run = move || {
            let c = ctx.clone();
            async move { assert_eq!(single_i64(&c, sql).await, n) }.boxed()
        };
        (name, Box::new(run))
    };
    vec![
        raw,
        query("(b) SELECT count(*) (snapshot)", COUNT_QUERY),
        query("(c) decoding scan (sum/distinct/max)", DECODE_QUERY),
    ]
}
