//! Operating a continuous query: the Prometheus endpoint scraped during a real run and checked
//! against the checkpoint files, JSON progress lines, `datafusion-topics status` and the
//! `checkpoint_progress` table function on the same checkpoint, and the shell's progress bar
//! staying out of piped output.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
use datafusion_topics::checkpoint::{CommitRecord, OffsetsRecord};
use datafusion_topics::session_context;

use crate::harness::{brokers, create_topic, json_messages, process::free_port, produce, sql};

const MESSAGES: usize = 300;

fn cli() -> Command {
    let b = brokers();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datafusion-topics"));
    cmd.env("KAFKA_BOOTSTRAP", &b.kafka)
        .env("NATS_URL", &b.nats)
        .env_remove("RUST_LOG");
    cmd
}

/// `GET /metrics` from the endpoint: metric line (name and labels) → value.
fn scrape(port: u16) -> BTreeMap<String, f64> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .filter(|l| l.starts_with("dft_"))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the one line of `metric` whose labels contain every `labels` pair.
fn value(metrics: &BTreeMap<String, f64>, metric: &str, labels: &[&str]) -> f64 {
    let hits: Vec<f64> = metrics
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{metric}{{")) || k.as_str() == metric)
        .filter(|(k, _)| labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "{metric} {labels:?} in {metrics:#?}");
    hits[0]
}

fn records<T: serde::de::DeserializeOwned>(checkpoint: &Path, kind: &str) -> Vec<T> {
    let mut files: Vec<_> = std::fs::read_dir(checkpoint.join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_status_and_progress_agree_with_the_checkpoint() {
    let topic = create_topic("observe", 3).await;
    produce(&topic, &json_messages(MESSAGES, 3)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let file = dir.path().join("query.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS KAFKA LOCATION 'kafka:///{topic}'
               OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (id BIGINT) STORED AS JSON LOCATION '{}/';
             INSERT INTO output (id) SELECT id FROM input;",
            out.display()
        ),
    )
    .unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let port = free_port();
    let mut child = cli()
        .args(["run", "--checkpoint", checkpoint.to_str().unwrap(), "-f"])
        .arg(&file)
        .args(["--trigger", "100ms", "--max-records-per-partition", "30"])
        .args([
            "--progress",
            "json",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    // One JSON object per batch, until the topic is read.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut progress: Vec<serde_json::Value> = Vec::new();
    while Instant::now() < deadline {
        let line = lines.next().expect("the run ended early").unwrap();
        let p: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let caught_up = p["lag"] == 0;
        progress.push(p);
        if caught_up {
            break;
        }
    }
    let last = progress.last().unwrap();
    assert_eq!(last["lag"], 0, "{progress:#?}");
    assert!(last["elapsed_ms"].as_f64().unwrap() > 0.0, "{last}");
    let rows: u64 = progress.iter().map(|p| p["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, MESSAGES as u64);
    let read: u64 = progress
        .iter()
        .map(|p| p["read"][&topic]["messages"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(read, MESSAGES as u64, "{progress:#?}");

    // The endpoint says what the checkpoint says.
    let metrics = scrape(port);
    let offsets: Vec<OffsetsRecord> = records(&checkpoint, "offsets");
    let commits: Vec<CommitRecord> = records(&checkpoint, "commits");
    let newest = offsets.iter().max_by_key(|o| o.batch).unwrap();
    for (p, range) in &newest.sources["input"].partitions {
        let partition = format!("partition=\"{}\"", p.partition);
        assert_eq!(
            value(&metrics, "dft_source_committed_offset", &[&partition]),
            range.end_or_max() as f64
        );
        assert_eq!(
            value(&metrics, "dft_source_lag_messages", &[&partition]),
            0.0
        );
        assert_eq!(
            value(&metrics, "dft_source_high_watermark", &[&partition]),
            newest.sources["input"].high[p] as f64
        );
    }
    let committed: u64 = commits.iter().map(|c| c.rows).sum();
    assert_eq!(
        value(&metrics, "dft_sink_rows_written_total", &[]),
        committed as f64
    );
    assert_eq!(
        value(&metrics, "dft_batches_total", &["attempt=\"first\""]),
        commits.len() as f64
    );
    assert_eq!(
        value(&metrics, "dft_source_messages_read_total", &[&topic]),
        MESSAGES as f64
    );
    assert_eq!(
        value(&metrics, "dft_batch_duration_seconds_count", &[]),
        commits.len() as f64
    );

    // `status` and the table function read the same checkpoint while the query runs.
    let cp = checkpoint.to_str().unwrap();
    let status = cli()
        .args([
            "status",
            "--checkpoint",
            cp,
            "--batches",
            "1000",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8(status.stdout).unwrap();
    let csv: Vec<&str> = text.lines().collect();
    assert!(csv[0].starts_with("batch,status,planned_at,"), "{text}");
    assert!(
        csv.len() > commits.len(),
        "header and a line per batch: {text}"
    );
    let ctx = session_context();
    let batches = sql(
        &ctx,
        &format!(
            "SELECT count(*) AS n, sum(rows) AS rows, sum(offsets) AS offsets
             FROM checkpoint_progress('{cp}', 1000) WHERE status = 'committed'"
        ),
    )
    .await;
    let b = &batches[0];
    assert_eq!(
        b.column(0).as_primitive::<Int64Type>().value(0),
        commits.len() as i64
    );
    assert_eq!(b.column(1).as_primitive::<UInt64Type>().value(0), committed);
    assert_eq!(
        b.column(2).as_primitive::<Int64Type>().value(0),
        MESSAGES as i64
    );
    let _ = child.kill();
    let _ = child.wait();

    let err = ctx
        .sql(&format!(
            "SELECT * FROM checkpoint_progress('{}')",
            dir.path().join("nothing").display()
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no checkpoint here"), "{err}");
    let err = ctx
        .sql("SELECT * FROM checkpoint_progress(42)")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checkpoint_progress takes a checkpoint URL"),
        "{err}"
    );
}

/// A busy metrics address is refused before the query starts, naming the address.
#[test]
fn a_busy_metrics_address_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(&file, "SELECT 1").unwrap();
    let out = cli()
        .args(["run", "--checkpoint", dir.path().to_str().unwrap(), "-f"])
        .arg(&file)
        .args(["--metrics-addr", &addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&addr) && stderr.contains("metrics-addr"),
        "{stderr}"
    );
}

/// Piped output of a long bounded scan is the result alone: no progress bar on stdout or
/// stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_bar_stays_out_of_piped_output() {
    let topic = create_topic("observe-bar", 2).await;
    produce(&topic, &json_messages(20_000, 2)).await;
    let out = cli()
        .args(["-q", "--format", "csv", "-c"])
        .arg(format!(
            "CREATE EXTERNAL TABLE t (id BIGINT) STORED AS KAFKA LOCATION 'kafka:///{topic}'
               OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');"
        ))
        .arg("SELECT count(*) AS n, sum(id) AS s FROM t;")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("n,s\n20000,{}\n", (0..20_000i64).sum::<i64>())
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
