//! Section 8 (with `--features distributed`): the decoding scan of section 1 over a
//! 4-partition topic in one process, and on two `datafusion-topics worker` processes of the
//! same machine. Two workers on two cores cannot be faster than one process using both; the
//! figure is the overhead of the distributed path (plan shipping, Arrow Flight transfer, a
//! second decode of nothing). CPU includes the workers' (from /proc).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use dft_test_support::process::{Ready, start};

use crate::common::*;
use crate::harness::*;
use crate::throughput::single_i64;

/// User + system CPU of process `pid` so far (Linux /proc), zero when unknown.
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

async fn table(ctx: &SessionContext, topic: &str) {
    let table = datafusion_topics::TopicTable::open(
        &location(topic),
        value_schema(),
        &opts(&[
            ("value.format", "json"),
            ("scan.bounded.mode", "latest-offset"),
        ]),
    )
    .await
    .expect("table");
    ctx.register_table("t", std::sync::Arc::new(table))
        .expect("register");
}

pub(crate) async fn distributed_scan(messages: u64, runs: usize) -> String {
    let topic = create_topic("e2e-dist", 4).await;
    eprintln!("producing {messages} messages to 4-partition kafka topic {topic}");
    fill_kafka_into(&topic, 4, messages, |i| {
        (payload(i, 1_700_000_000_000_000 + i), None)
    })
    .await;
    let workers: Vec<Service> = (0..2)
        .map(|i| {
            let log = run_dir().join(format!("e2e-worker-{i}.log"));
            start(
                "worker",
                &log,
                Ready::Listening,
                Duration::from_secs(60),
                |port| {
                    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datafusion-topics"));
                    cmd.args(["worker", "--listen", &format!("127.0.0.1:{port}")])
                        .env("KAFKA_BOOTSTRAP", &brokers().kafka);
                    cmd
                },
            )
        })
        .collect();
    let list: Vec<String> = workers
        .iter()
        .map(|w| format!("127.0.0.1:{}", w.port))
        .collect();
    let local = datafusion_topics::session_context();
    table(&local, &topic).await;
    let builder = datafusion_topics::session_state_builder(datafusion_topics::streaming_config());
    let state = datafusion_topics::distributed::with_workers(
        builder,
        datafusion_topics::distributed::parse_workers(&list.join(",")).unwrap(),
    )
    .build();
    let remote = SessionContext::new_with_state(state);
    table(&remote, &topic).await;
    let worker_cpu = || -> Duration {
        workers
            .iter()
            .filter_map(|w| w.pid())
            .map(process_cpu)
            .sum()
    };
    let n = messages as i64;
    // Warm up both (the workers open the table on their first task).
    assert_eq!(single_i64(&local, DECODE_QUERY).await, n);
    assert_eq!(single_i64(&remote, DECODE_QUERY).await, n);
    let mut rows: Vec<(&str, Vec<Duration>, Duration)> = vec![
        ("(a) one process", Vec::new(), Duration::ZERO),
        ("(b) two workers + coordinator", Vec::new(), Duration::ZERO),
    ];
    for run in 0..runs {
        for (i, ctx) in [&local, &remote].into_iter().enumerate() {
            let cpu = cpu_time() + worker_cpu();
            let t = Instant::now();
            assert_eq!(single_i64(ctx, DECODE_QUERY).await, n);
            let wall = t.elapsed();
            rows[i].1.push(wall);
            rows[i].2 += cpu_time() + worker_cpu() - cpu;
            eprintln!("  run {run}: {}: {wall:.2?}", rows[i].0);
        }
    }
    let mut out = String::new();
    writeln!(
        out,
        "8. Decoding scan of {messages} messages (4 partitions): one process vs two workers on this machine; wall = median of {runs}, cpu = mean per run (workers included)"
    )
    .unwrap();
    let mut medians = Vec::new();
    for (what, mut walls, cpu) in rows {
        walls.sort();
        let wall = walls[runs / 2];
        medians.push(wall);
        let cpu = cpu / runs as u32;
        writeln!(
            out,
            "  {what:<34} {wall:>10.2?} {:>12.0} msg/s {cpu:>10.2?} cpu {:>6.2} cpu-s/M msg",
            messages as f64 / wall.as_secs_f64(),
            cpu.as_secs_f64() / (messages as f64 / 1e6)
        )
        .unwrap();
    }
    writeln!(
        out,
        "  two workers / one process wall: {:.2}x",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    )
    .unwrap();
    out
}
