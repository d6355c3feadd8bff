//! Your own sink, exactly once, against a real PostgreSQL: `examples/postgres_sink.rs` adds
//! each micro-batch's orders to per-customer totals and records the batch's offset ranges in
//! the same transaction. Killed with SIGKILL at random moments over 100k messages, the totals
//! count every order once and the offsets table matches the checkpoint; a new checkpoint
//! starts from the database's positions; a database behind the checkpoint is an error.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use datafusion_topics::checkpoint::OffsetsRecord;
use tokio_postgres::NoTls;

use crate::continuous::{SERIAL, kill_and_restart, seed};
use crate::examples::example;
use crate::harness::{TestMessage, brokers, create_topic, postgres, produce, unique_name};

const ORDERS: usize = 100_000;

/// Order `id`: customer `c{id % 97}`, amount `id % 1000`, partition `id % 3`.
fn orders(ids: std::ops::Range<usize>) -> Vec<TestMessage> {
    ids.map(|id| {
        TestMessage::value(
            (id % 3) as i32,
            format!(
                r#"{{"id":{id},"customer":"c{}","amount":{}}}"#,
                id % 97,
                id % 1000
            ),
        )
    })
    .collect()
}

/// Customer → (orders, amount) over order ids `ids`.
fn expected(ids: std::ops::Range<usize>) -> BTreeMap<String, (i64, i64)> {
    let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for id in ids {
        let t = totals.entry(format!("c{}", id % 97)).or_default();
        t.0 += 1;
        t.1 += (id % 1000) as i64;
    }
    totals
}

fn sink_cmd(topic: &str, checkpoint: &str, name: &str) -> Command {
    let path = example("postgres_sink");
    assert!(
        path.exists(),
        "{} was not built (cargo test builds examples; run the suite with cargo test)",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.args([&brokers().kafka, &postgres().url, topic, checkpoint, name])
        .env_remove("RUST_LOG");
    cmd
}

async fn client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&postgres().url, NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(connection);
    client
}

async fn totals(client: &tokio_postgres::Client, name: &str) -> BTreeMap<String, (i64, i64)> {
    client
        .query(
            &format!("SELECT customer, orders, amount FROM {name}_totals"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// Batch → (table, topic, partition) → (start, end), from the offsets table.
type Ranges = BTreeMap<i64, BTreeMap<(String, String, i32), (i64, i64)>>;

async fn offsets_table(client: &tokio_postgres::Client, name: &str) -> Ranges {
    let mut out = Ranges::new();
    for r in client
        .query(
            &format!(
                "SELECT batch, source, topic, part, start_offset, end_offset FROM {name}_offsets"
            ),
            &[],
        )
        .await
        .unwrap()
    {
        out.entry(r.get(0))
            .or_default()
            .insert((r.get(1), r.get(2), r.get(3)), (r.get(4), r.get(5)));
    }
    out
}

/// The same, from the checkpoint's `offsets/N` files.
fn checkpoint_offsets(checkpoint: &Path) -> Ranges {
    let mut out = Ranges::new();
    for entry in std::fs::read_dir(checkpoint.join("offsets")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let record: OffsetsRecord = serde_json::from_str(&text).unwrap();
        let ranges = out.entry(record.batch as i64).or_default();
        for (table, source) in record.sources {
            for (p, r) in source.partitions {
                ranges.insert(
                    (table.clone(), p.topic.to_string(), p.partition),
                    (r.start, r.end_or_max()),
                );
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_totals_and_offsets_are_exactly_once_across_kills() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let topic = create_topic("pg-orders", 3).await;
    produce(&topic, &orders(0..ORDERS)).await;
    let name = unique_name("own").replace('-', "_");
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let cp = checkpoint.to_str().unwrap();

    let landed = kill_and_restart(cp, &|| sink_cmd(&topic, cp, &name), 4, seed, Duration::ZERO);
    assert!(
        landed >= 2,
        "seed {seed}: only {landed} kills hit a running query"
    );

    let db = client().await;
    assert_eq!(
        totals(&db, &name).await,
        expected(0..ORDERS),
        "seed {seed}: every order counted once"
    );
    let recorded = offsets_table(&db, &name).await;
    assert_eq!(
        recorded,
        checkpoint_offsets(&checkpoint),
        "seed {seed}: the offsets table matches the checkpoint, batch by batch"
    );
    let batches: Vec<i64> = recorded.keys().copied().collect();
    assert_eq!(batches, (0..batches.len() as i64).collect::<Vec<_>>());

    // A new checkpoint: the database says where the query stands, so only new orders count.
    produce(&topic, &orders(ORDERS..ORDERS + 3000)).await;
    let fresh = dir.path().join("fresh");
    let out = sink_cmd(&topic, fresh.to_str().unwrap(), &name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(totals(&db, &name).await, expected(0..ORDERS + 3000));
    let first_new = *batches.last().unwrap() + 1;
    assert!(
        stdout.contains(&format!("batch {first_new} ")),
        "numbering goes on from the database's batch: {stdout}"
    );

    // The database loses its last batch (a restore from an older backup): the checkpoint is
    // ahead of it, and the run says so instead of guessing.
    db.execute(
        &format!(
            "DELETE FROM {name}_offsets WHERE batch = (SELECT max(batch) FROM {name}_offsets)"
        ),
        &[],
    )
    .await
    .unwrap();
    let out = sink_cmd(&topic, fresh.to_str().unwrap(), &name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("disagree") && stderr.contains(fresh.to_str().unwrap()),
        "{stderr}"
    );
}
