//! Every `sql-examples/*.sql` file runs through the `datafusion-topics` binary against the live
//! brokers and must print exactly its `.out` file. Names starting with `ex_` / `EX_` are made
//! unique per run (so the files also pass against long-lived brokers) and mapped back in the
//! output, as are the broker addresses. `DFT_BLESS=1` rewrites the `.out` files.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::brokers;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sql-examples/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
}

/// Runs one example; returns its normalised output.
fn run(sql: &Path, run_id: &str) -> (String, String) {
    let b = brokers();
    let text = std::fs::read_to_string(sql).unwrap();
    let unique = text
        .replace("ex_", &format!("ex{run_id}_"))
        .replace("EX_", &format!("EX{run_id}_"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(sql.file_name().unwrap());
    std::fs::write(&file, unique).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_datafusion-topics"))
        .arg("-q")
        .arg("-f")
        .arg(&file)
        .env("KAFKA_BOOTSTRAP", &b.kafka)
        .env("NATS_URL", &b.nats)
        .env_remove("RUST_LOG")
        .current_dir(dir.path())
        .output()
        .expect("run datafusion-topics");
    assert!(
        out.status.success(),
        "{} exited with {}",
        sql.display(),
        out.status
    );
    let normalise = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .replace(&format!("ex{run_id}_"), "ex_")
            .replace(&format!("EX{run_id}_"), "EX_")
            .replace(&b.kafka, "$KAFKA_BOOTSTRAP")
            .replace(&b.nats, "$NATS_URL")
    };
    (normalise(&out.stdout), normalise(&out.stderr))
}

/// The output with runs of spaces and of `-` collapsed: unique names and broker addresses
/// change column widths, which is all they may change.
fn squeeze(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = '\0';
    for c in text.chars() {
        if !((c == ' ' || c == '-') && c == last) {
            out.push(c);
        }
        last = c;
    }
    out
}

#[test]
fn every_sql_example_prints_its_expected_output() {
    let bless = std::env::var("DFT_BLESS").is_ok_and(|v| v == "1");
    let run_id = format!(
        "{:05}{:04}",
        std::process::id() % 100_000,
        rand::random::<u16>() % 10_000
    );
    let files = examples();
    assert!(files.len() >= 5, "expected at least 5 sql-examples");
    let mut failures = Vec::new();
    for sql in files {
        let (stdout, stderr) = run(&sql, &run_id);
        let expected_path = sql.with_extension("out");
        if bless {
            std::fs::write(&expected_path, &stdout).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if !stderr.trim().is_empty() {
            failures.push(format!("{}: stderr is not empty:\n{stderr}", sql.display()));
        }
        if squeeze(&stdout) != squeeze(&expected) {
            failures.push(format!(
                "{}: output differs from {}\n--- expected\n{expected}\n--- actual\n{stdout}",
                sql.display(),
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
