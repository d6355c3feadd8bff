//! Continuous queries under crashes: a child `datafusion-topics run` process copies 100k
//! messages into each sink kind and is killed with SIGKILL at random moments, then restarted;
//! the output must hold every input row exactly once. Plus fencing, the available-now
//! trigger with rate limits, and data-loss detection.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use datafusion_topics::session_context;
use rand::{Rng, SeedableRng};

use crate::harness::{brokers, create_topic, json_messages, produce, rows, sql, unique_name};

const INPUT: usize = 100_000;

/// The crash tests run one at a time: each pushes 100k messages through the brokers.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) fn run_cmd(checkpoint: &str, file: &Path, extra: &[&str]) -> Command {
    let b = brokers();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datafusion-topics"));
    cmd.arg("run")
        .arg("--checkpoint")
        .arg(checkpoint)
        .arg("-f")
        .arg(file)
        .args(extra)
        .env("KAFKA_BOOTSTRAP", &b.kafka)
        .env("NATS_URL", &b.nats)
        .env_remove("RUST_LOG");
    cmd
}

/// Batches planned in `checkpoint` so far (its `offsets/` files).
fn planned_batches(checkpoint: &str) -> usize {
    let dir = checkpoint.strip_prefix("file://").unwrap_or(checkpoint);
    std::fs::read_dir(Path::new(dir).join("offsets"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Runs the query with kills at random moments, then once more to the end; returns the
/// number of kills that landed while the child was running. Each kill waits until the run
/// has planned a random number (1 to 8) of further batches, then a random 0–40 ms more, so
/// kills land before, inside and between batches whatever the broker's speed.
pub(crate) fn run_with_kills(
    checkpoint: &str,
    file: &Path,
    kills: usize,
    seed: u64,
    after_kill: Duration,
) -> usize {
    let limits = [
        "--trigger",
        "once",
        "--max-records-per-partition",
        "1000",
        "-q",
    ];
    kill_and_restart(
        checkpoint,
        &|| run_cmd(checkpoint, file, &limits),
        kills,
        seed,
        after_kill,
    )
}

/// [`run_with_kills`] for any command that runs a continuous query over `checkpoint` to the
/// end of its input (available-now).
pub(crate) fn kill_and_restart(
    checkpoint: &str,
    command: &dyn Fn() -> Command,
    kills: usize,
    seed: u64,
    after_kill: Duration,
) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut landed = 0;
    for _ in 0..kills {
        let target = planned_batches(checkpoint) + rng.random_range(1..=8);
        let extra = Duration::from_millis(rng.random_range(0..40));
        let mut child = command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start datafusion-topics run");
        let deadline = Instant::now() + Duration::from_secs(60);
        while planned_batches(checkpoint) < target
            && child.try_wait().unwrap().is_none()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(extra);
        if child.try_wait().unwrap().is_none() {
            landed += 1;
        }
        let _ = child.kill(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("Error"),
            "seed {seed}: a run failed before its kill:\n{stderr}"
        );
        std::thread::sleep(after_kill);
    }
    let out = command().output().unwrap();
    assert!(
        out.status.success(),
        "seed {seed}: the final run failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    landed
}

/// [`run_with_kills`] with four kills, of which at least two must hit a running query.
pub(crate) fn four_kills(checkpoint: &str, file: &Path, seed: u64) -> usize {
    let landed = run_with_kills(checkpoint, file, 4, seed, Duration::ZERO);
    assert!(
        landed >= 2,
        "seed {seed}: only {landed} kills hit a running query"
    );
    landed
}

/// Writes `dir/query.sql`: the given `input` table, a JSON-files `output` table under
/// `dir/out/`, and `INSERT INTO output SELECT id FROM input`; returns the file.
fn json_copy_query(dir: &Path, input: &str) -> std::path::PathBuf {
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let file = dir.join("query.sql");
    std::fs::write(
        &file,
        format!(
            "{input};
             CREATE EXTERNAL TABLE output (id BIGINT) STORED AS JSON LOCATION '{}/';
             INSERT INTO output (id) SELECT id FROM input;",
            out_dir.display()
        ),
    )
    .unwrap();
    file
}

/// The DDL of table `input` over a topic of `{"id": …}` JSON messages.
fn json_input(topic: &str) -> String {
    format!(
        "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS KAFKA LOCATION 'kafka:///{topic}' OPTIONS ('value.format' 'json')"
    )
}

/// A child's stdout and stderr, as text.
pub(crate) fn text_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

async fn input_topic() -> String {
    let topic = create_topic("cq-in", 3).await;
    produce(&topic, &json_messages(INPUT, 3)).await;
    topic
}

/// Asserts that `ids` holds 0..INPUT exactly once each.
fn assert_exactly_once(ids: Vec<i64>, what: &str, seed: u64) {
    let mut counts: BTreeMap<i64, u32> = BTreeMap::new();
    for id in &ids {
        *counts.entry(*id).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let missing: Vec<i64> = (0..INPUT as i64)
        .filter(|i| !counts.contains_key(i))
        .take(5)
        .collect();
    assert!(
        duplicated.is_empty() && missing.is_empty() && ids.len() == INPUT,
        "seed {seed}: {what} holds {} rows; duplicated (id, times): {duplicated:?}; missing: {missing:?}",
        ids.len()
    );
}

fn ids_of(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column(0).as_primitive::<Int64Type>();
            (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

pub(crate) fn seed() -> u64 {
    std::env::var("DFT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sink_is_exactly_once_across_kills() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let input = input_topic().await;
    let output = unique_name("cq-out");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka:///{input}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka:///{output}'
               OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '2');
             INSERT INTO output (id, name, _partition) SELECT id, upper(name), CAST(id % 2 AS INT) FROM input;"
        ),
    )
    .unwrap();
    let checkpoint = dir.path().join("checkpoint");
    four_kills(checkpoint.to_str().unwrap(), &file, seed);

    let ctx = session_context();
    let b = brokers();
    sql(&ctx, &format!(
        "CREATE EXTERNAL TABLE out (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka://{}/{output}'
         OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')", b.kafka)).await;
    let batches = sql(&ctx, "SELECT id FROM out").await;
    assert_exactly_once(ids_of(&batches), "the output topic", seed);
    let wrong = sql(&ctx, "SELECT count(*) FROM out WHERE name <> upper(concat('name-', CAST(id AS VARCHAR))) OR _partition <> id % 2").await;
    assert_eq!(wrong[0].column(0).as_primitive::<Int64Type>().value(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_sink_is_exactly_once_across_kills() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let input = input_topic().await;
    let stream = unique_name("CQ").replace('-', "_");
    let subjects = stream.to_lowercase();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka:///{input}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (id BIGINT) STORED AS NATS LOCATION 'nats:///{stream}'
               OPTIONS ('value.format' 'json', 'nats.subjects' '{subjects}.*', 'topic.create' 'true');
             INSERT INTO output (id, _partition) SELECT id, CAST(id % 3 AS INT) FROM input;"
        ),
    )
    .unwrap();
    let checkpoint = dir.path().join("checkpoint");
    four_kills(checkpoint.to_str().unwrap(), &file, seed);

    let ctx = session_context();
    let b = brokers();
    sql(&ctx, &format!(
        "CREATE EXTERNAL TABLE out (id BIGINT) STORED AS NATS LOCATION '{}/{stream}'
         OPTIONS ('value.format' 'json', 'nats.subjects' '{subjects}.*', 'scan.bounded.mode' 'latest-offset')",
        b.nats)).await;
    let batches = sql(&ctx, "SELECT id FROM out").await;
    assert_exactly_once(ids_of(&batches), "the output stream", seed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_is_exactly_once_across_kills() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let input = input_topic().await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let file = dir.path().join("query.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka:///{input}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (id BIGINT, name VARCHAR, part INT) STORED AS PARQUET LOCATION '{}/';
             INSERT INTO output SELECT id, name, _partition FROM input;",
            out_dir.display()
        ),
    )
    .unwrap();
    let checkpoint = format!("file://{}", dir.path().join("checkpoint").display());
    four_kills(&checkpoint, &file, seed);

    let ctx = session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE out STORED AS PARQUET LOCATION '{}/'",
            out_dir.display()
        ),
    )
    .await;
    let batches = sql(&ctx, "SELECT id FROM out").await;
    assert_exactly_once(ids_of(&batches), "the parquet files", seed);
    // One file per batch, named by batch number.
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("part-") && n.ends_with(".parquet")),
        "{names:?}"
    );
}

/// `sink.recovery = transactional`: each batch is one Kafka transaction. After kills, a
/// read-committed scan holds every input exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_kafka_sink_is_exactly_once_across_kills() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let input = input_topic().await;
    let txn = brokers().kafka.clone();
    let output = unique_name("cq-txn");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("query.sql");
    std::fs::write(
        &file,
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka:///{input}' OPTIONS ('value.format' 'json');
             CREATE EXTERNAL TABLE output (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka://{txn}/{output}'
               OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3',
                        'sink.recovery' 'transactional');
             INSERT INTO output (id, name) SELECT id, name FROM input;"
        ),
    )
    .unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let landed = four_kills(checkpoint.to_str().unwrap(), &file, seed);

    let ctx = session_context();
    let table = |name: &str, isolation: &str| {
        format!(
            "CREATE EXTERNAL TABLE {name} (id BIGINT, name VARCHAR) STORED AS KAFKA LOCATION 'kafka://{txn}/{output}'
             OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset',
                      'kafka.isolation.level' '{isolation}')"
        )
    };
    sql(&ctx, &table("committed", "read_committed")).await;
    let batches = sql(&ctx, "SELECT id FROM committed").await;
    assert_exactly_once(ids_of(&batches), "the transactional output topic", seed);
    // Reading uncommitted data also shows what aborted transactions wrote.
    sql(&ctx, &table("everything", "read_uncommitted")).await;
    let all = rows(&sql(&ctx, "SELECT id FROM everything").await);
    eprintln!(
        "seed {seed}: {landed} kills landed; {} rows of aborted transactions",
        all - INPUT
    );
}

/// A NATS work queue is at-least-once: across kills every message reaches the sink, and the
/// messages of an interrupted batch may reach it twice (they return to the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queue_input_is_at_least_once_across_kills() {
    let _serial = SERIAL.lock().await;
    let seed = seed();
    let js = crate::harness::jetstream().await;
    let stream = crate::harness::create_stream(&js, "CQWQ", &["in"]).await;
    let ids = (0..INPUT).map(|i| format!("{{\"id\": {i}}}").into_bytes());
    crate::harness::publish_all(&js, &format!("{stream}.in"), ids).await;
    let dir = tempfile::tempdir().unwrap();
    let input = format!(
        "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS NATS LOCATION 'nats:///{stream}'
           OPTIONS ('value.format' 'json', 'nats.mode' 'work-queue',
                    'nats.work-queue.consumer' 'copy', 'nats.work-queue.readers' '2',
                    'nats.work-queue.ack-wait' '2s', 'nats.work-queue.max-ack-pending' '250')"
    );
    let file = json_copy_query(dir.path(), &input);
    let checkpoint = dir.path().join("checkpoint");
    let cp = checkpoint.to_str().unwrap();
    // A restarted run cannot pull the messages the killed one held until their ack wait
    // passes (its available-now run would end at once): wait that long after each kill.
    let landed = run_with_kills(cp, &file, 4, seed, Duration::from_millis(2200));
    assert!(
        landed >= 2,
        "seed {seed}: only {landed} kills hit a running query"
    );
    // Messages the last killed run held return after the ack wait; one more run reads them.
    std::thread::sleep(Duration::from_secs(3));
    let out = run_cmd(cp, &file, &["--trigger", "once", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "seed {seed}: {}", text_of(&out));

    let ctx = session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE written (id BIGINT) STORED AS JSON LOCATION '{}/out/'",
            dir.path().display()
        ),
    )
    .await;
    let ids = ids_of(&sql(&ctx, "SELECT id FROM written").await);
    let mut counts: BTreeMap<i64, u32> = BTreeMap::new();
    for id in &ids {
        *counts.entry(*id).or_default() += 1;
    }
    let missing: Vec<i64> = (0..INPUT as i64)
        .filter(|i| !counts.contains_key(i))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && counts.len() == INPUT,
        "seed {seed}: missing {missing:?}"
    );
    let abandoned = std::fs::read_dir(checkpoint.join("commits"))
        .unwrap()
        .filter(|e| {
            std::fs::read_to_string(e.as_ref().unwrap().path())
                .unwrap()
                .contains("\"abandoned\": true")
        })
        .count();
    eprintln!(
        "seed {seed}: {landed} kills landed, {abandoned} batches abandoned, {} duplicates",
        ids.len() - INPUT
    );
    let js = crate::harness::jetstream().await;
    let info = js
        .get_stream(&stream)
        .await
        .unwrap()
        .consumer_info("copy")
        .await
        .unwrap();
    assert_eq!(
        (info.num_pending, info.num_ack_pending),
        (0, 0),
        "seed {seed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_runner_on_the_same_checkpoint_is_fenced() {
    let topic = create_topic("cq-fence", 1).await;
    produce(&topic, &json_messages(50, 1)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = json_copy_query(dir.path(), &json_input(&topic));
    let checkpoint = dir.path().join("checkpoint");
    let cp = checkpoint.to_str().unwrap();
    // The first runner keeps going (interval trigger); the second one starts beside it. The
    // first of the two to find its next offsets/N written by the other stops, fenced; which
    // one that is depends on timing.
    let spawn = |trigger: &str| {
        run_cmd(
            cp,
            &file,
            &["--trigger", trigger, "--max-records-per-partition", "10"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let mut first = spawn("200ms");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !checkpoint.join("commits").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    produce(&topic, &json_messages(200, 1)).await;
    let mut second = spawn("100ms");
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut fenced, mut other) = loop {
        if first.try_wait().unwrap().is_some() {
            break (first, second);
        }
        if second.try_wait().unwrap().is_some() {
            break (second, first);
        }
        assert!(
            Instant::now() < deadline,
            "two runners shared the checkpoint for 60 s and neither was fenced"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = other.kill();
    let _ = other.wait();
    let mut text = String::new();
    std::io::Read::read_to_string(fenced.stderr.as_mut().unwrap(), &mut text).unwrap();
    assert!(!fenced.wait().unwrap().success(), "{text}");
    assert!(text.contains("already written by another runner"), "{text}");

    // A checkpoint of another query is refused.
    let other = dir.path().join("other.sql");
    std::fs::write(
        &other,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("SELECT id FROM input", "SELECT id + 1 FROM input"),
    )
    .unwrap();
    let out = run_cmd(cp, &other, &["--trigger", "once"])
        .output()
        .unwrap();
    let text = text_of(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("belongs to another query"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn available_now_honours_rate_limits_and_new_partitions_are_recorded() {
    let topic = create_topic("cq-avail", 2).await;
    produce(&topic, &json_messages(100, 2)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = json_copy_query(dir.path(), &json_input(&topic));
    let checkpoint = dir.path().join("checkpoint");
    let cp = checkpoint.to_str().unwrap();
    let group = unique_name("cq-group");
    let out = run_cmd(
        cp,
        &file,
        &[
            "--trigger",
            "once",
            "--max-records-per-partition",
            "20",
            "--commit-group",
            &group,
        ],
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The consumer group saw the progress: from its offsets, nothing is left to read.
    let ctx = session_context();
    sql(&ctx, &format!(
        "CREATE EXTERNAL TABLE from_group STORED AS KAFKA LOCATION 'kafka://{}/{topic}'
         OPTIONS ('scan.startup.mode' 'group-offsets', 'properties.group.id' '{group}', 'scan.bounded.mode' 'latest-offset')",
        brokers().kafka)).await;
    let left = sql(&ctx, "SELECT count(*) FROM from_group").await;
    assert_eq!(left[0].column(0).as_primitive::<Int64Type>().value(0), 0);
    // 50 per partition at 20 per batch: 3 batches, then it stops by itself.
    assert!(
        text.contains("batch 0 input[0:[0,20) 1:[0,20)] rows=40"),
        "{text}"
    );
    assert!(
        text.contains("batch 2 input[0:[40,50) 1:[40,50)] rows=20 lag=0"),
        "{text}"
    );
    assert!(text.contains("finished after 3 batch(es)"), "{text}");

    // Nothing new: the next available-now run writes no batch.
    let out = run_cmd(cp, &file, &["--trigger", "once"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("finished after 0 batch(es)"));

    // A partition added to the topic is read from its earliest offset, and recorded.
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers().kafka)
            .create()
            .unwrap();
    let grow = rdkafka::admin::NewPartitions::new(&topic, 3);
    let added = admin
        .create_partitions([&grow], &rdkafka::admin::AdminOptions::new())
        .await;
    if added.is_ok_and(|r| r.iter().all(|x| x.is_ok())) {
        produce(&topic, &json_messages(9, 3)).await;
        let out = run_cmd(cp, &file, &["--trigger", "once"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("batch 3 input[0:[50,53) 1:[50,53) 2:[0,3)] rows=9"),
            "{text}"
        );
        let record =
            std::fs::read_to_string(checkpoint.join("offsets/00000000000000000003.json")).unwrap();
        assert!(record.contains("/2\": {"), "{record}");
    } else {
        eprintln!("the broker cannot add partitions (CreatePartitions); skipped that part");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_on_s3() {
    let moto = dft_test_support::s3();
    let created = moto.http("PUT", "/dft-checkpoints");
    assert!(created.starts_with("HTTP/1.1 200"), "{created}");
    let topic = create_topic("cq-s3", 2).await;
    produce(&topic, &json_messages(60, 2)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = json_copy_query(dir.path(), &json_input(&topic));
    let s3 = |extra: &[&str]| {
        run_cmd("s3://dft-checkpoints/queries/copy", &file, extra)
            .envs(moto.env())
            .output()
            .unwrap()
    };
    let out = s3(&["--trigger", "once", "--max-records-per-partition", "10"]);
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("finished after 3 batch(es)"), "{text}");
    // The checkpoint lives in the bucket: a second run has nothing left to do.
    let out = s3(&["--trigger", "once"]);
    let text = text_of(&out);
    assert!(text.contains("finished after 0 batch(es)"), "{text}");
    let listing = moto.http("GET", "/dft-checkpoints?list-type=2&prefix=queries/copy/");
    for key in [
        "queries/copy/metadata",
        "queries/copy/offsets/00000000000000000002.json",
        "queries/copy/commits/00000000000000000002.json",
    ] {
        assert!(
            listing.contains(key),
            "{key} missing from the bucket:\n{listing}"
        );
    }
    // Conditional put works on S3 too: a second query on the same checkpoint is refused.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("SELECT id FROM input", "SELECT id * 2 FROM input"),
    )
    .unwrap();
    let out = s3(&["--trigger", "once"]);
    let text = text_of(&out);
    assert!(
        !out.status.success() && text.contains("belongs to another query"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_removed_before_they_were_read_fail_or_are_skipped() {
    use crate::harness::{create_stream, jetstream, publish};
    let js = jetstream().await;
    let stream = create_stream(&js, "CQLOSS", &["a"]).await;
    let subject = format!("{stream}.a");
    for i in 0..20 {
        publish(&js, &subject, format!(r#"{{"id":{i}}}"#)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let write_query = |fail: &str| {
        json_copy_query(
            dir.path(),
            &format!(
                "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS NATS LOCATION 'nats:///{stream}'
                   OPTIONS ('value.format' 'json', 'scan.fail-on-data-loss' '{fail}')"
            ),
        )
    };
    let file = write_query("true");
    let checkpoint = dir.path().join("checkpoint");
    let cp = checkpoint.to_str().unwrap();
    let out = run_cmd(cp, &file, &["--trigger", "once"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 20 more messages, then a purge removes them before the query reads them.
    for i in 20..40 {
        publish(&js, &subject, format!(r#"{{"id":{i}}}"#)).await;
    }
    js.get_stream(&stream).await.unwrap().purge().await.unwrap();
    publish(&js, &subject, r#"{"id":40}"#).await;

    let out = run_cmd(cp, &file, &["--trigger", "once"]).output().unwrap();
    let text = text_of(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("data loss") && text.contains("21..41"),
        "{text}"
    );

    write_query("false");
    let out = run_cmd(cp, &file, &["--trigger", "once"]).output().unwrap();
    let text = text_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rows=1"), "{text}");
    let record =
        std::fs::read_to_string(checkpoint.join("offsets/00000000000000000001.json")).unwrap();
    assert!(
        record.contains("\"skipped\"") && record.contains("/0\": 20"),
        "{record}"
    );
}

/// A partition that appears while a query runs (here: a new subject of a subject-partitioned
/// NATS stream) is read from its earliest offset and recorded in the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_partition_is_read_from_its_start_and_recorded() {
    use crate::harness::{create_named_stream, jetstream, publish};
    let js = jetstream().await;
    let stream = unique_name("CQNEW").replace('-', "_");
    let prefix = stream.to_lowercase();
    create_named_stream(&js, &stream, &[&format!("{prefix}.*")]).await;
    for (p, id) in [(0, 1), (1, 2), (0, 3)] {
        publish(&js, &format!("{prefix}.{p}"), format!(r#"{{"id":{id}}}"#)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = json_copy_query(
        dir.path(),
        &format!(
            "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS NATS LOCATION 'nats:///{stream}'
               OPTIONS ('value.format' 'json', 'nats.subjects' '{prefix}.*')"
        ),
    );
    let checkpoint = dir.path().join("checkpoint");
    let cp = checkpoint.to_str().unwrap();
    let out = run_cmd(cp, &file, &["--trigger", "once"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("batch 0 input[0:[1,4) 1:[2,3)] rows=3"),
        "{text}"
    );

    publish(&js, &format!("{prefix}.2"), r#"{"id":4}"#).await;
    publish(&js, &format!("{prefix}.1"), r#"{"id":5}"#).await;
    let out = run_cmd(cp, &file, &["--trigger", "once"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("batch 1 input[0:[4,4) 1:[3,6) 2:[4,5)] rows=2"),
        "{text}"
    );
    let record =
        std::fs::read_to_string(checkpoint.join("offsets/00000000000000000001.json")).unwrap();
    assert!(record.contains("/2\": {"), "{record}");
}
