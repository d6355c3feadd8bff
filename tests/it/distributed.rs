//! Scale-out on datafusion-distributed: a coordinator (this process, or a `run` child) and two
//! `datafusion-topics worker` processes on loopback, a 4-partition topic. Queries give the
//! single-process answers; each worker reads its own partitions (EXPLAIN says which, their
//! metrics count them); a dead worker is a clear error, and a continuous query whose worker
//! dies mid-run writes nothing twice once it runs again.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_topics::distributed::{parse_workers, with_workers};
use datafusion_topics::session_state_builder;
use dft_test_support::process::{Ready, free_port, start};

use crate::continuous::run_cmd;
use crate::harness::*;

/// A `datafusion-topics worker` on a free loopback port, with its metrics endpoint.
struct WorkerProcess {
    service: Service,
    metrics: u16,
}

impl WorkerProcess {
    fn start(name: &str) -> Self {
        let metrics = free_port();
        let log = run_dir().join(format!("{name}-{}.log", unique_name("worker")));
        let b = brokers();
        let service = start(
            name,
            &log,
            Ready::Listening,
            Duration::from_secs(60),
            |port| {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_datafusion-topics"));
                cmd.args(["worker", "--listen", &format!("127.0.0.1:{port}")])
                    .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
                    .env("KAFKA_BOOTSTRAP", &b.kafka)
                    .env("NATS_URL", &b.nats);
                cmd
            },
        );
        Self { service, metrics }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.service.port)
    }

    /// Messages this worker's scans read from `topic` (its Prometheus counter).
    fn messages_read(&self, topic: &str) -> u64 {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics)).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let prefix = format!("dft_scan_messages_read_total{{topic=\"{topic}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
    }
}

fn coordinator(workers: &[&WorkerProcess]) -> SessionContext {
    let list: Vec<String> = workers.iter().map(|w| w.addr()).collect();
    let builder: SessionStateBuilder = session_state_builder(datafusion_topics::streaming_config());
    let state = with_workers(builder, parse_workers(&list.join(",")).unwrap()).build();
    SessionContext::new_with_state(state)
}

async fn declare(ctx: &SessionContext, orders: &str, customers: &str) {
    let b = &brokers().kafka;
    sql(
        ctx,
        &format!(
            "CREATE EXTERNAL TABLE orders (id BIGINT, name VARCHAR) STORED AS KAFKA \
             LOCATION 'kafka://{b}/{orders}' \
             OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')"
        ),
    )
    .await;
    sql(
        ctx,
        &format!(
            "CREATE EXTERNAL TABLE customers (id BIGINT, name VARCHAR) STORED AS KAFKA \
             LOCATION 'kafka://{b}/{customers}' \
             OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')"
        ),
    )
    .await;
    sql(
        ctx,
        &format!(
            "CREATE EXTERNAL TABLE live (id BIGINT) STORED AS KAFKA LOCATION 'kafka://{b}/{orders}' \
             OPTIONS ('value.format' 'json')"
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_answer_as_one_process_each_reading_its_partitions() {
    let orders = create_topic("dist-orders", 4).await;
    produce(&orders, &json_messages(4000, 4)).await;
    let customers = create_topic("dist-customers", 1).await;
    produce(&customers, &json_messages(50, 1)).await;
    let (w1, w2) = (
        WorkerProcess::start("worker-1"),
        WorkerProcess::start("worker-2"),
    );
    let local = datafusion_topics::session_context();
    declare(&local, &orders, &customers).await;
    let remote = coordinator(&[&w1, &w2]);
    declare(&remote, &orders, &customers).await;

    for query in [
        "SELECT count(*), sum(id), min(name), max(name) FROM orders",
        "SELECT _partition, count(*), sum(id) FROM orders GROUP BY _partition ORDER BY 1",
        "SELECT _partition, count(*) FROM orders WHERE _offset >= 100 AND _offset < 250 \
         GROUP BY _partition ORDER BY 1",
        "SELECT o.id, c.name FROM orders o JOIN customers c ON o.id = c.id ORDER BY o.id",
        "SELECT id, name FROM orders ORDER BY id DESC LIMIT 5",
        "SELECT count(DISTINCT name) FROM orders WHERE id % 7 = 0",
    ] {
        assert_eq!(
            sorted_rows(&sql(&remote, query).await),
            sorted_rows(&sql(&local, query).await),
            "{query}"
        );
    }

    // EXPLAIN shows the distributed plan: each task's partitions and its worker.
    let plan = explain(&remote, "SELECT count(*) FROM orders").await;
    assert!(plan.contains("DistributedExec"), "{plan}");
    assert!(
        plan.contains(&format!(
            "t0: TopicScanExec: kafka://{}/{orders}",
            brokers().kafka
        )) && plan.contains("partitions=[0: [0, 1000), 2: [0, 1000)]")
            && plan.contains("partitions=[1: [0, 1000), 3: [0, 1000)]"),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("t0 → http://{}/", w1.addr()))
            && plan.contains(&format!("t1 → http://{}/", w2.addr())),
        "{plan}"
    );
    // Both workers read, and between them every message the queries asked for.
    let (read1, read2) = (w1.messages_read(&orders), w2.messages_read(&orders));
    assert!(
        read1 > 0 && read2 > 0,
        "worker 1 read {read1}, worker 2 read {read2}"
    );

    // What cannot run on workers is refused with the reason.
    let err = sql_err(&remote, "SELECT * FROM live LIMIT 1").await;
    assert!(
        err.contains("live scan") && err.contains("--workers"),
        "{err}"
    );

    // A dead worker: a clear error naming it.
    w2.service.stop();
    let err = sql_err(&remote, "SELECT count(*) FROM orders").await;
    assert!(
        err.contains("a worker failed or could not be reached") && err.contains(&w2.addr()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_query_on_workers_writes_nothing_twice_when_a_worker_dies() {
    const MESSAGES: usize = 20_000;
    let input = create_topic("dist-cq-in", 4).await;
    produce(&input, &json_messages(MESSAGES, 4)).await;
    let output = unique_name("dist-cq-out");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.sql");
    let b = &brokers().kafka;
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT, name VARCHAR) STORED AS KAFKA \
               LOCATION 'kafka://{b}/{input}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (id BIGINT, name VARCHAR) STORED AS KAFKA \
               LOCATION 'kafka://{b}/{output}' \
               OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '2');
             INSERT INTO output SELECT id, upper(name) FROM input WHERE id % 2 = 0;"
        ),
    )
    .unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let checkpoint = checkpoint.to_str().unwrap();
    let (w1, w2) = (
        WorkerProcess::start("cq-worker-1"),
        WorkerProcess::start("cq-worker-2"),
    );
    let workers = format!("{},{}", w1.addr(), w2.addr());
    let limits = ["--trigger", "once", "--max-records-per-partition", "250"];
    let child = run_cmd(checkpoint, &file, &limits)
        .args(["--workers", &workers])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill a worker once a few batches went through.
    let deadline = Instant::now() + Duration::from_secs(60);
    while batches_planned(checkpoint) < 4 {
        assert!(Instant::now() < deadline, "the run planned no batches");
        std::thread::sleep(Duration::from_millis(10));
    }
    w2.service.stop();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run went on without its worker");
    assert!(
        stderr.contains("a worker failed or could not be reached") && stderr.contains(&w2.addr()),
        "{stderr}"
    );
    // Again, on a new worker set: the interrupted batch is replayed, nothing written twice.
    let w3 = WorkerProcess::start("cq-worker-3");
    let workers = format!("{},{}", w1.addr(), w3.addr());
    let out = run_cmd(checkpoint, &file, &limits)
        .args(["--workers", &workers])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ctx = datafusion_topics::session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE o (id BIGINT, name VARCHAR) STORED AS KAFKA \
             LOCATION 'kafka://{b}/{output}' \
             OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')"
        ),
    )
    .await;
    let counts = sorted_rows(
        &sql(
            &ctx,
            "SELECT count(*), count(DISTINCT id), min(name) FROM o",
        )
        .await,
    );
    assert_eq!(
        counts,
        vec![format!("|{}|{}|NAME-0|", MESSAGES / 2, MESSAGES / 2)],
        "every even id exactly once"
    );
    assert!(w3.messages_read(&input) > 0);

    // A continuous aggregate cannot run on workers: refused, saying why.
    let aggregate = dir.path().join("aggregate.sql");
    std::fs::write(
        &aggregate,
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS KAFKA \
               LOCATION 'kafka://{b}/{input}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE totals (n BIGINT) STORED AS KAFKA \
               LOCATION 'kafka://{b}/{output}-totals' OPTIONS ('value.format' 'json', 'topic.create' 'true');
             INSERT INTO totals SELECT count(*) FROM input GROUP BY id % 3;"
        ),
    )
    .unwrap();
    let out = run_cmd(
        dir.path().join("cp2").to_str().unwrap(),
        &aggregate,
        &["--trigger", "once", "--workers", &workers],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot run on workers"),
        "{stderr}"
    );
}

fn batches_planned(checkpoint: &str) -> usize {
    std::fs::read_dir(Path::new(checkpoint).join("offsets"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The plan column of an EXPLAIN, every row.
async fn explain(ctx: &SessionContext, query: &str) -> String {
    sql(ctx, &format!("EXPLAIN {query}"))
        .await
        .iter()
        .flat_map(|b| {
            let plans = b.column(1).as_string::<i32>();
            (0..b.num_rows())
                .map(|i| plans.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
