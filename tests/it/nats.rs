//! NATS JetStream streams as tables: the three partition mappings, pushdown, start
//! positions, live scans and errors, against a real nats-server.

use std::collections::BTreeSet;
use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int32Type, Int64Type};
use datafusion::physical_plan::{ExecutionPlanProperties, execute_stream};

use crate::harness::*;

/// (partition, sequence, subject, value) rows of `SELECT _partition, _offset, _subject, value`.
async fn rows_of(
    ctx: &datafusion::prelude::SessionContext,
    filter: &str,
) -> Vec<(i32, i64, String, String)> {
    let b = sql(
        ctx,
        &format!("SELECT _partition, _offset, _subject, value FROM t {filter}"),
    )
    .await;
    let mut out = Vec::new();
    for batch in &b {
        let p = batch.column(0).as_primitive::<Int32Type>();
        let o = batch.column(1).as_primitive::<Int64Type>();
        let s = batch.column(2).as_string::<i32>();
        let v = batch.column(3).as_string::<i32>();
        for i in 0..batch.num_rows() {
            out.push((
                p.value(i),
                o.value(i),
                s.value(i).to_string(),
                v.value(i).to_string(),
            ));
        }
    }
    out.sort();
    out
}

const SNAPSHOT: (&str, &str) = ("scan.bounded.mode", "latest-offset");
const STRING: (&str, &str) = ("value.format", "string");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_is_one_partition() {
    let js = jetstream().await;
    let stream = create_stream(&js, "single", &[">"]).await;
    let mut expected = Vec::new();
    for i in 0..20 {
        let subject = format!("{stream}.{}", i % 3);
        let seq = publish(&js, &subject, format!("m{i}")).await;
        expected.push((0, seq as i64, subject, format!("m{i}")));
    }
    let ctx = nats_table(&stream, no_columns(), &[STRING, SNAPSHOT]).await;
    assert_eq!(rows_of(&ctx, "").await, expected);
    // Reading the same closed range twice yields the same messages.
    assert_eq!(rows_of(&ctx, "").await, expected);
    let b = sql(&ctx, "SELECT _topic, count(*) FROM t GROUP BY _topic").await;
    assert_eq!(sorted_rows(&b), vec![format!("|{stream}|20|")]);
}

async fn subject_partitioned_stream() -> (String, Vec<(i32, i64, String, String)>) {
    let js = jetstream().await;
    let stream = create_stream(&js, "orders", &["*"]).await;
    let mut expected = Vec::new();
    // Uneven interleaving: each subject's sequences have gaps.
    for i in 0..30 {
        let p = [0, 1, 2, 0, 0, 2][i % 6];
        let subject = format!("{stream}.{p}");
        let seq = publish(&js, &subject, format!("o{i}")).await;
        expected.push((p, seq as i64, subject, format!("o{i}")));
    }
    expected.sort();
    (stream, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_partitions_from_a_list_and_from_a_wildcard() {
    let (stream, expected) = subject_partitioned_stream().await;
    for subjects in [
        format!("{stream}.0,{stream}.1,{stream}.2"),
        format!("{stream}.*"),
    ] {
        let ctx = nats_table(
            &stream,
            no_columns(),
            &[STRING, SNAPSHOT, ("nats.subjects", &subjects)],
        )
        .await;
        let got = rows_of(&ctx, "").await;
        assert_eq!(got, expected, "{subjects}");
        // No message appears in two partitions.
        let seqs: BTreeSet<i64> = got.iter().map(|r| r.1).collect();
        assert_eq!(seqs.len(), got.len());
        let plan = physical_plan(&ctx, "SELECT * FROM t").await;
        assert_eq!(plan.output_partitioning().partition_count(), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushdown_on_sequences_and_times() {
    let (stream, expected) = subject_partitioned_stream().await;
    let wildcard = format!("{stream}.*");
    let ctx = nats_table(
        &stream,
        no_columns(),
        &[STRING, ("nats.subjects", &wildcard)],
    )
    .await;
    // An unbounded table bounded by the predicate.
    let from = expected[expected.len() / 2].1;
    let got = rows_of(
        &ctx,
        &format!("WHERE _partition = 0 AND _offset >= {from} AND _offset < 1000"),
    )
    .await;
    let want: Vec<_> = expected
        .iter()
        .filter(|r| r.0 == 0 && r.1 >= from)
        .cloned()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    let got = rows_of(&ctx, "WHERE _offset BETWEEN 5 AND 12").await;
    let want: Vec<_> = expected
        .iter()
        .filter(|r| (5..=12).contains(&r.1))
        .cloned()
        .collect();
    assert_eq!(got, want);

    // Time: JetStream stamps messages on store, so _timestamp filters are exact seeks.
    let js = jetstream().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = publish(&js, &format!("{stream}.1"), "late").await as i64;
    let snapshot = nats_table(
        &stream,
        no_columns(),
        &[STRING, SNAPSHOT, ("nats.subjects", &wildcard)],
    )
    .await;
    let got = rows_of(
        &snapshot,
        &format!("WHERE _timestamp >= to_timestamp_millis({cut})"),
    )
    .await;
    assert_eq!(
        got,
        vec![(1, late, format!("{stream}.1"), "late".to_string())]
    );
    let plan = physical_plan(
        &ctx,
        &format!("SELECT * FROM t WHERE _timestamp < to_timestamp_millis({cut})"),
    )
    .await;
    assert!(
        !plan.boundedness().is_unbounded(),
        "an upper time bound ends every partition"
    );
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(!text.contains("FilterExec"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn family_of_streams() {
    let js = jetstream().await;
    let prefix = unique_name("legacy").replace('-', "_");
    let mut expected = Vec::new();
    for p in 0..3 {
        let name = format!("{prefix}-{p}");
        let subject = format!("{prefix}.p{p}");
        create_named_stream(&js, &name, &[&subject]).await;
        for i in 0..(p + 2) {
            let seq = publish(&js, &subject, format!("s{p}-{i}")).await;
            expected.push((p, seq as i64, subject.clone(), format!("s{p}-{i}")));
        }
    }
    expected.sort();
    let ctx = nats_table(
        &prefix,
        no_columns(),
        &[
            STRING,
            SNAPSHOT,
            ("nats.partitioning", "streams"),
            ("nats.partitions", "3"),
        ],
    )
    .await;
    assert_eq!(rows_of(&ctx, "").await, expected);
    // `_topic` names each partition's own stream.
    let b = sql(
        &ctx,
        "SELECT _partition, _topic FROM t GROUP BY 1, 2 ORDER BY 1",
    )
    .await;
    let want: Vec<String> = (0..3).map(|p| format!("|{p}|{prefix}-{p}|")).collect();
    assert_eq!(sorted_rows(&b), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_positions_live_scans_and_limit() {
    let js = jetstream().await;
    let stream = create_stream(&js, "live", &["*"]).await;
    let (a, b) = (format!("{stream}.a"), format!("{stream}.b"));
    for i in 0..10 {
        publish(&js, &a, format!("old{i}")).await;
    }
    // Start by sequence.
    let ctx = nats_table(
        &stream,
        no_columns(),
        &[
            STRING,
            SNAPSHOT,
            ("scan.startup.specific-offsets", "partition:0,offset:8"),
        ],
    )
    .await;
    assert_eq!(
        rows_of(&ctx, "")
            .await
            .iter()
            .map(|r| r.1)
            .collect::<Vec<_>>(),
        vec![8, 9, 10]
    );

    // Latest + unbounded: only new messages, as they arrive.
    let ctx = nats_table(
        &stream,
        no_columns(),
        &[STRING, ("scan.startup.mode", "latest-offset")],
    )
    .await;
    let plan = physical_plan(&ctx, "SELECT value FROM t").await;
    assert!(plan.boundedness().is_unbounded());
    let mut live = execute_stream(plan, ctx.task_ctx()).unwrap();
    publish(&js, &b, "new1").await;
    publish(&js, &a, "new2").await;
    let mut seen = next_strings(&mut live, 2).await;
    seen.sort();
    assert_eq!(seen, ["new1", "new2"]);
    // Dropping the scan stops its reader (and so its consumer) promptly.
    assert_eq!(datafusion_topics::source::running_readers(&stream), 1);
    drop(live);
    wait_for_readers_released(&stream, "drop").await;

    // LIMIT on the unbounded table finishes.
    let ctx = nats_table(&stream, no_columns(), &[STRING]).await;
    let b = tokio::time::timeout(
        Duration::from_secs(30),
        sql(&ctx, "SELECT value FROM t LIMIT 4"),
    )
    .await
    .unwrap();
    assert_eq!(rows(&b), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_json_values() {
    let js = jetstream().await;
    let stream = create_stream(&js, "hdr", &["x"]).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("b-key", "2");
    headers.insert("a-key", "1");
    js.publish_with_headers(
        format!("{stream}.x"),
        headers,
        r#"{"id": 7, "name": "seven"}"#.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
        datafusion::arrow::datatypes::Field::new(
            "id",
            datafusion::arrow::datatypes::DataType::Int64,
            true,
        ),
        datafusion::arrow::datatypes::Field::new(
            "name",
            datafusion::arrow::datatypes::DataType::Utf8,
            true,
        ),
    ]));
    let ctx = nats_table(&stream, schema, &[SNAPSHOT]).await;
    let b = sql(&ctx, "SELECT id, name, _subject, _headers FROM t").await;
    assert_eq!(b[0].column(0).as_primitive::<Int64Type>().value(0), 7);
    let headers = b[0].column(3).as_map().value(0);
    let names = headers.column(0).as_string::<i32>();
    assert_eq!(
        (0..names.len()).map(|i| names.value(i)).collect::<Vec<_>>(),
        ["a-key", "b-key"]
    );
    assert!(headers.column(1).is_valid(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_errors_are_named() {
    let js = jetstream().await;
    // Unknown stream.
    let missing = unique_name("nostream").replace('-', "_");
    let err = nats_table_error(&nats_location(&missing), &[]).await;
    assert!(
        err.contains(&missing) && err.contains("does not exist"),
        "{err}"
    );

    // A subject the stream does not capture.
    let stream = create_stream(&js, "errs", &["*"]).await;
    let subject = format!("{stream}.a");
    publish(&js, &subject, "x").await;
    let err = nats_table_error(&nats_location(&stream), &[("nats.subjects", "other.1")]).await;
    assert!(
        err.contains("other.1") && err.contains(&format!("{stream}.*")),
        "{err}"
    );

    // Unreachable server: bounded by connect.timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let location = format!("nats://127.0.0.1:{port}/S");
    let err = nats_table_error(&location, &[("connect.timeout", "1s")]).await;
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));

    // A purged sequence: a start before the first available one is refused.
    for i in 0..5 {
        publish(&js, &subject, format!("y{i}")).await;
    }
    js.get_stream(&stream)
        .await
        .unwrap()
        .purge()
        .sequence(4)
        .await
        .unwrap();
    let ctx = nats_table(
        &stream,
        no_columns(),
        &[
            SNAPSHOT,
            ("scan.startup.specific-offsets", "partition:0,offset:2"),
        ],
    )
    .await;
    let err = sql_err(&ctx, "SELECT * FROM t").await;
    assert!(
        err.contains("offset 2") && err.contains("retention"),
        "{err}"
    );

    // The stream deleted while a live scan reads it.
    let ctx = nats_table(&stream, no_columns(), &[STRING]).await;
    let plan = physical_plan(&ctx, "SELECT value FROM t").await;
    let mut live = execute_stream(plan, ctx.task_ctx()).unwrap();
    next_strings(&mut live, 1).await;
    js.delete_stream(&stream).await.unwrap();
    use futures::StreamExt;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match live.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e.to_string(),
                None => break "ended".to_string(),
            }
        }
    })
    .await
    .expect("a deleted stream ends the scan instead of hanging");
    assert!(
        outcome.contains(&stream) || outcome.contains("ended"),
        "{outcome}"
    );
}

/// A second nats-server requiring credentials, on a free loopback port; killed on drop.
struct SecuredServer {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for SecuredServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server_binary() -> String {
    let cache = std::env::var("DFT_CACHE").unwrap_or_else(|_| {
        format!(
            "{}/.cache/datafusion-topics",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let cached = format!("{cache}/bin/nats-server");
    if std::path::Path::new(&cached).exists() {
        cached
    } else {
        "nats-server".to_string()
    }
}

fn start_secured(args: &[&str]) -> SecuredServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut child = std::process::Command::new(nats_server_binary())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start nats-server");
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = child.try_wait().unwrap().is_some();
        assert!(
            std::time::Instant::now() < deadline && !exited,
            "secured nats-server did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    SecuredServer {
        child,
        url,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_password_and_token_authentication() {
    for (server_args, good, bad) in [
        (
            vec!["--user", "alice", "--pass", "s3cret-pass"],
            vec![("nats.user", "alice"), ("nats.password", "s3cret-pass")],
            vec![("nats.user", "alice"), ("nats.password", "wrong-pass")],
        ),
        (
            vec!["--auth", "tok-123456"],
            vec![("nats.token", "tok-123456")],
            vec![("nats.token", "bad-token-999")],
        ),
    ] {
        let server = start_secured(&server_args);
        let mut connect = async_nats::ConnectOptions::new();
        connect = match good[0] {
            ("nats.token", t) => connect.token(t.to_string()),
            _ => connect.user_and_password(good[0].1.to_string(), good[1].1.to_string()),
        };
        let js = async_nats::jetstream::new(connect.connect(&server.url).await.unwrap());
        create_named_stream(&js, "SECURE", &["secure.x"]).await;
        publish(&js, "secure.x", "hello").await;

        let location = format!("{}/SECURE", server.url);
        let mut pairs = good.clone();
        pairs.extend([
            ("value.format", "string"),
            ("scan.bounded.mode", "latest-offset"),
        ]);
        let ctx = nats_table_at(&location, no_columns(), &pairs).await;
        let table = ctx.table_provider("t").await.unwrap();
        assert!(
            !format!("{table:?}").contains(good.last().unwrap().1),
            "secret in Debug output"
        );
        let b = sql(&ctx, "SELECT value FROM t").await;
        assert_eq!(b[0].column(0).as_string::<i32>().value(0), "hello");

        let mut pairs = bad.clone();
        pairs.push(("connect.timeout", "2s"));
        let err = nats_table_error(&location, &pairs).await;
        assert!(
            !err.contains(bad.last().unwrap().1),
            "secret in error: {err}"
        );
        assert!(
            err.contains("authenticat") || err.contains("uthorization"),
            "{err}"
        );
    }
}

/// A CA and a server certificate for 127.0.0.1, made with openssl in `dir`.
fn self_signed_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=dft-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_self_signed_certificate() {
    let certs = tempfile::tempdir().unwrap();
    self_signed_certificates(certs.path());
    let path = |f: &str| certs.path().join(f).to_string_lossy().to_string();
    let server = start_secured(&[
        "--tls",
        "--tlscert",
        &path("server.pem"),
        "--tlskey",
        &path("server.key"),
    ]);

    let client = async_nats::ConnectOptions::new()
        .add_root_certificates(path("ca.pem").into())
        .require_tls(true)
        .connect(&server.url)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    create_named_stream(&js, "TLS", &["tls.x"]).await;
    publish(&js, "tls.x", "over tls").await;

    let location = format!("{}/TLS", server.url);
    let ca = path("ca.pem");
    let pairs = [("nats.tls.ca-file", ca.as_str()), STRING, SNAPSHOT];
    let ctx = nats_table_at(&location, no_columns(), &pairs).await;
    let b = sql(&ctx, "SELECT value FROM t").await;
    assert_eq!(b[0].column(0).as_string::<i32>().value(0), "over tls");

    // Without trusting the CA the connection is refused, within the timeout.
    let pairs = [("nats.tls.required", "true"), ("connect.timeout", "3s")];
    let err = nats_table_error(&location, &pairs).await;
    assert!(err.contains(&server.url.replace("nats://", "")), "{err}");
    // A CA file that does not exist is named.
    let err = datafusion_topics::TableDefinition::parse(
        &location,
        no_columns(),
        &opts(&[("nats.tls.ca-file", "/nonexistent/ca.pem")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nats.tls.ca-file") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_authentication() {
    let user = nkeys::KeyPair::new_user();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let server = start_secured(&["-c", &conf.to_string_lossy()]);
    let seed = user.seed().unwrap();

    let client = async_nats::ConnectOptions::new()
        .nkey(seed.clone())
        .connect(&server.url)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    create_named_stream(&js, "NKEY", &["nkey.x"]).await;
    publish(&js, "nkey.x", "signed").await;

    let location = format!("{}/NKEY", server.url);
    let pairs = [("nats.nkey-seed", seed.as_str()), STRING, SNAPSHOT];
    let ctx = nats_table_at(&location, no_columns(), &pairs).await;
    let table = ctx.table_provider("t").await.unwrap();
    assert!(
        !format!("{table:?}").contains(&seed),
        "seed in Debug output"
    );
    let b = sql(&ctx, "SELECT value FROM t").await;
    assert_eq!(b[0].column(0).as_string::<i32>().value(0), "signed");

    // Another user's seed is refused, and the seed never shows in the error.
    let other = nkeys::KeyPair::new_user().seed().unwrap();
    let pairs = [
        ("nats.nkey-seed", other.as_str()),
        ("connect.timeout", "3s"),
    ];
    let err = nats_table_error(&location, &pairs).await;
    assert!(!err.contains(&other), "seed in error: {err}");
    assert!(
        err.contains("uthori") || err.contains("uthenticat"),
        "{err}"
    );
}

/// Each read's ephemeral consumer is deleted when the read ends (the server alone would keep
/// it 30 s, and micro-batches create one per partition per batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_consumers_are_deleted_when_reads_end() {
    let js = jetstream().await;
    let stream = create_stream(&js, "EPH", &["a", "b"]).await;
    for i in 0..10 {
        publish(
            &js,
            &format!("{stream}.{}", if i % 2 == 0 { "a" } else { "b" }),
            "x",
        )
        .await;
    }
    let subjects = format!("{stream}.a,{stream}.b");
    let pairs = [("nats.subjects", subjects.as_str()), STRING, SNAPSHOT];
    let ctx = nats_table(&stream, no_columns(), &pairs).await;
    for _ in 0..5 {
        assert_eq!(rows(&sql(&ctx, "SELECT value FROM t").await), 10);
        assert_eq!(rows(&sql(&ctx, "SELECT value FROM t LIMIT 1").await), 1);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut info = js.get_stream(&stream).await.unwrap();
        let consumers = info.info().await.unwrap().state.consumer_count;
        if consumers == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{consumers} consumers left behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A signed NATS JWT (header, claims, ed25519 signature by `issuer`).
fn signed_jwt(
    issuer: &nkeys::KeyPair,
    subject: &str,
    name: &str,
    nats: serde_json::Value,
) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{:X}", rand::random::<u128>()),
        "iat": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = format!("{header}.{}", b64.encode(claims.to_string()));
    let signature = issuer.sign(body.as_bytes()).unwrap();
    format!("{body}.{}", b64.encode(signature))
}

/// Decentralised (operator/JWT) authentication with a `.creds` file: a server trusting an
/// operator, an account with JetStream signed by it, and a user signed by the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creds_file_authentication() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = signed_jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = signed_jwt(
        &operator,
        &account.public_key(),
        "test-account",
        serde_json::json!({
            "limits": unlimited,
            "default_permissions": {"pub": {}, "sub": {}},
            "type": "account",
            "version": 2,
        }),
    );
    // JetStream needs a system account beside the operator.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = signed_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({"type": "account", "version": 2}),
    );
    let user_of = |user: &nkeys::KeyPair| {
        signed_jwt(
            &account,
            &user.public_key(),
            "test-user",
            serde_json::json!({
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                "type": "user", "version": 2,
            }),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("operator.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: \"{operator_jwt}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{ {acc}: \"{account_jwt}\", {sys}: \"{system_jwt}\" }}\n",
            acc = account.public_key(),
            sys = system.public_key(),
        ),
    )
    .unwrap();
    let server = start_secured(&["-c", &conf.to_string_lossy()]);
    let write_creds = |file: &str, user: &nkeys::KeyPair| {
        let path = dir.path().join(file);
        std::fs::write(
            &path,
            format!(
                "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
                 -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
                user_of(user),
                user.seed().unwrap()
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let creds = write_creds("user.creds", &user);

    let client = async_nats::ConnectOptions::with_credentials_file(&creds)
        .await
        .unwrap()
        .connect(&server.url)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    create_named_stream(&js, "CREDS", &["creds.x"]).await;
    publish(&js, "creds.x", "from a creds file").await;

    let location = format!("{}/CREDS", server.url);
    let pairs = [("nats.creds-file", creds.as_str()), STRING, SNAPSHOT];
    let ctx = nats_table_at(&location, no_columns(), &pairs).await;
    let b = sql(&ctx, "SELECT value FROM t").await;
    assert_eq!(
        b[0].column(0).as_string::<i32>().value(0),
        "from a creds file"
    );

    // A user the account never signed is refused; a missing file is named.
    let stranger = nkeys::KeyPair::new_user();
    let forged = {
        let jwt = signed_jwt(
            &stranger,
            &stranger.public_key(),
            "forged",
            serde_json::json!({"type": "user", "version": 2}),
        );
        let path = dir.path().join("forged.creds");
        std::fs::write(
            &path,
            format!(
                "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
                 -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
                stranger.seed().unwrap()
            ),
        )
        .unwrap();
        path.to_string_lossy().into_owned()
    };
    let pairs = [
        ("nats.creds-file", forged.as_str()),
        ("connect.timeout", "3s"),
    ];
    let err = nats_table_error(&location, &pairs).await;
    assert!(
        !err.contains(&stranger.seed().unwrap()),
        "seed in error: {err}"
    );
    assert!(
        err.contains("uthori") || err.contains("uthenticat"),
        "{err}"
    );
    let missing = dir.path().join("missing.creds");
    let pairs = [("nats.creds-file", missing.to_str().unwrap())];
    let err = datafusion_topics::TableDefinition::parse(&location, no_columns(), &opts(&pairs))
        .map(|_| ())
        .err()
        .map(|e| e.to_string());
    let err = match err {
        Some(e) => e,
        None => nats_table_error(&location, &pairs).await,
    };
    assert!(err.contains("nats.creds-file"), "{err}");
}

/// Sum of `offsets_skipped` over the topic scans of a plan.
fn skipped(plan: &std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> usize {
    let own = plan
        .downcast_ref::<datafusion_topics::TopicScanExec>()
        .and_then(|_| plan.metrics())
        .and_then(|m| m.sum_by_name("offsets_skipped"))
        .map_or(0, |v| v.as_usize());
    own + plan.children().into_iter().map(skipped).sum::<usize>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_sequences_fail_or_are_skipped_and_counted() {
    let js = jetstream().await;
    let stream = create_stream(&js, "loss", &["x"]).await;
    let subject = format!("{stream}.x");
    for i in 0..10 {
        publish(&js, &subject, format!("v{i}")).await;
    }
    let purge = |upto: u64| {
        let js = js.clone();
        let stream = stream.clone();
        async move {
            js.get_stream(&stream)
                .await
                .unwrap()
                .purge()
                .sequence(upto)
                .await
                .unwrap()
        }
    };

    // Removed before planning: skipped at planning and counted.
    purge(3).await; // sequences 1 and 2 are gone
    let lenient = [
        STRING,
        SNAPSHOT,
        ("scan.startup.specific-offsets", "partition:0,offset:1"),
        ("scan.fail-on-data-loss", "false"),
    ];
    let ctx = nats_table(&stream, no_columns(), &lenient).await;
    let plan = physical_plan(&ctx, "SELECT value FROM t").await;
    let b = datafusion::physical_plan::collect(std::sync::Arc::clone(&plan), ctx.task_ctx())
        .await
        .unwrap();
    assert_eq!(rows(&b), 8);
    assert_eq!(skipped(&plan), 2);

    // Removed after planning, before reading: the reader fails by default...
    let strict = nats_table(&stream, no_columns(), &[STRING, SNAPSHOT]).await;
    let strict_plan = physical_plan(&strict, "SELECT value FROM t").await;
    let lenient_ctx = nats_table(
        &stream,
        no_columns(),
        &[STRING, SNAPSHOT, ("scan.fail-on-data-loss", "false")],
    )
    .await;
    let lenient_plan = physical_plan(&lenient_ctx, "SELECT value FROM t").await;
    purge(6).await; // now 3, 4 and 5 are gone too
    let err = datafusion::physical_plan::collect(strict_plan, strict.task_ctx())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data loss") && err.contains("offset 3") && err.contains(&stream),
        "{err}"
    );
    // ...or skips and counts them.
    let b = datafusion::physical_plan::collect(
        std::sync::Arc::clone(&lenient_plan),
        lenient_ctx.task_ctx(),
    )
    .await
    .unwrap();
    assert_eq!(rows(&b), 5);
    assert_eq!(skipped(&lenient_plan), 3);
}
