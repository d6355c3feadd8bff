//! The embedding programs the README points to (`examples/`) run against the test brokers, so
//! they keep working. `cargo test` builds them beside this test binary.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::brokers;

/// `target/<profile>/examples/<name>`, found from this test binary's own path
/// (`target/<profile>/deps/it-…`).
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    profile_dir.join("examples").join(name)
}

fn run_example(name: &str) {
    let path = example(name);
    assert!(
        path.exists(),
        "{} was not built (cargo test builds examples; run the suite with cargo test)",
        path.display()
    );
    let out = Command::new(&path)
        .arg(&brokers().kafka)
        .env("NATS_URL", &brokers().nats)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "example {name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_example_runs() {
    run_example("demo");
}

#[test]
fn embedded_sql_example_runs() {
    run_example("embedded_sql");
}
