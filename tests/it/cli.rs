//! The `datafusion-topics` binary as a user drives it: the interactive shell streams rows of
//! an unbounded query as they arrive, Ctrl-C cancels that query and not the shell, and bad
//! options are reported with the key and the valid keys.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{TestMessage, brokers, create_topic, produce};

fn cli() -> Command {
    let b = brokers();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datafusion-topics"));
    cmd.env("KAFKA_BOOTSTRAP", &b.kafka)
        .env("NATS_URL", &b.nats)
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir());
    cmd
}

/// Waits for a line containing `needle` (lines arrive through `rx`), collecting all lines.
fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|l| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "no line containing {needle:?}; output so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_streams_an_unbounded_query_and_ctrl_c_cancels_only_the_query() {
    let topic = create_topic("cli-live", 1).await;
    let first: Vec<TestMessage> = (0..3)
        .map(|i| TestMessage::value(0, format!("first-{i}")))
        .collect();
    produce(&topic, &first).await;

    let mut child = cli()
        .arg("-q")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start datafusion-topics");
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    writeln!(
        stdin,
        "CREATE EXTERNAL TABLE live STORED AS KAFKA LOCATION 'kafka:///{topic}' OPTIONS ('value.format' 'string');"
    )
    .unwrap();
    writeln!(stdin, "SELECT value, _offset FROM live;").unwrap();
    stdin.flush().unwrap();

    let mut seen = Vec::new();
    wait_for(&rx, &mut seen, "first-2");
    // The query is still running: a message produced now appears too.
    produce(&topic, &[TestMessage::value(0, "later")]).await;
    wait_for(&rx, &mut seen, "later");

    // SIGINT (Ctrl-C) ends the running query; the shell answers the next statement.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    wait_for(&rx, &mut seen, "^C");
    writeln!(stdin, "SELECT 40 + 2 AS answer;").unwrap();
    writeln!(stdin, "\\q").unwrap();
    stdin.flush().unwrap();
    wait_for(&rx, &mut seen, "42");
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}\n{}", seen.join("\n"));
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("ERROR") || l.contains("rror:")),
        "{}",
        seen.join("\n")
    );
}

#[test]
fn a_misspelt_option_names_the_key_and_the_valid_ones() {
    let out = cli()
        .args([
            "-q",
            "-c",
            "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION 'kafka:///anything' OPTIONS ('scan.startup.mod' 'earliest-offset');",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("unknown option 'scan.startup.mod'"), "{text}");
    assert!(text.contains("scan.startup.mode"), "{text}");
}

#[test]
fn csv_output_and_information_schema() {
    let out = cli()
        .args([
            "-q",
            "--format",
            "csv",
            "-c",
            "CREATE EXTERNAL TABLE t (a BIGINT) STORED AS KAFKA LOCATION 'kafka:///cli_csv' OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '2');",
            "SELECT column_name FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position;",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("column_name\na\n_topic\n_partition\n_offset\n_timestamp\n_key\n_headers\n"),
        "{text}"
    );
}
