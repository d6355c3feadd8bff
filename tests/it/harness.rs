//! Real brokers for the integration tests: taken from `KAFKA_BOOTSTRAP` / `NATS_URL`, or
//! started once per test process by `scripts/start-brokers.sh` on free loopback ports (a
//! watchdog stops them when this process exits, however it exits).

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use datafusion_topics::{KafkaTableOptions, StreamingTableProvider};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// Addresses of the brokers the suite talks to.
pub struct Brokers {
    pub kafka: String,
    #[allow(dead_code)]
    pub nats: String,
    /// True when the brokers came from KAFKA_BOOTSTRAP / NATS_URL (e.g. Apache Kafka in Docker).
    pub external: bool,
    /// A Kafka-API broker with transactions (tansu has none): KAFKA_TXN_BOOTSTRAP, the
    /// noida-db the start script runs, or an external KAFKA_BOOTSTRAP (Apache Kafka).
    #[allow(dead_code)]
    pub kafka_txn: Option<String>,
}

impl Brokers {
    /// The transactional Kafka broker; panics with what to do when there is none.
    #[allow(dead_code)]
    pub fn kafka_txn(&self) -> &str {
        self.kafka_txn.as_deref().expect(
            "no Kafka broker with transactions: set KAFKA_TXN_BOOTSTRAP, or run \
             scripts/install-brokers.sh (installs noida-db) and let the tests start brokers",
        )
    }
}

/// The brokers, started on first use.
pub fn brokers() -> &'static Brokers {
    static BROKERS: OnceLock<Brokers> = OnceLock::new();
    BROKERS.get_or_init(|| {
        if let (Ok(kafka), Ok(nats)) = (std::env::var("KAFKA_BOOTSTRAP"), std::env::var("NATS_URL"))
        {
            let local = std::env::var("DFT_LOCAL_BROKERS").is_ok_and(|v| v == "1");
            let kafka_txn = std::env::var("KAFKA_TXN_BOOTSTRAP")
                .ok()
                .or_else(|| (!local).then(|| kafka.clone()));
            return Brokers {
                kafka,
                nats,
                external: !local,
                kafka_txn,
            };
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/start-brokers.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/start-brokers.sh");
        assert!(
            out.status.success(),
            "scripts/start-brokers.sh failed (run scripts/install-brokers.sh first?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Brokers {
            kafka: env
                .get("KAFKA_BOOTSTRAP")
                .expect("KAFKA_BOOTSTRAP from start-brokers.sh")
                .clone(),
            nats: env
                .get("NATS_URL")
                .expect("NATS_URL from start-brokers.sh")
                .clone(),
            external: false,
            kafka_txn: env.get("KAFKA_TXN_BOOTSTRAP").cloned(),
        }
    })
}

/// A topic name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a topic with `partitions` partitions and returns its name.
pub async fn create_topic(prefix: &str, partitions: i32) -> String {
    let name = unique_name(prefix);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
    name
}

/// One message to produce.
#[derive(Debug, Clone, Default)]
pub struct TestMessage {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl TestMessage {
    pub fn value(partition: i32, value: impl Into<Vec<u8>>) -> Self {
        Self {
            partition,
            value: Some(value.into()),
            ..Default::default()
        }
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// Produces messages (each call is flushed, so separate calls make separate record batches).
pub async fn produce(topic: &str, messages: &[TestMessage]) {
    let producer = producer();
    let mut pending = Vec::with_capacity(messages.len());
    for m in messages {
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(m.partition);
        if let Some(k) = &m.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &m.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(ts) = m.timestamp {
            rec = rec.timestamp(ts);
        }
        if !m.headers.is_empty() {
            let mut h = OwnedHeaders::new();
            for (k, v) in &m.headers {
                h = h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            rec = rec.headers(h);
        }
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err((e, r)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "produce: {e}"
                    );
                    rec = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for f in pending {
        f.await
            .expect("delivery canceled")
            .map_err(|(e, _)| e)
            .expect("delivery failed");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
}

/// `n` JSON messages `{"id": i, "name": "name-i"}` spread round-robin over `partitions`.
pub fn json_messages(n: usize, partitions: i32) -> Vec<TestMessage> {
    (0..n)
        .map(|i| {
            TestMessage::value(
                i as i32 % partitions,
                format!(r#"{{"id":{i},"name":"name-{i}"}}"#),
            )
        })
        .collect()
}

/// Option map from pairs.
pub fn opts(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `kafka://` location of a topic on the test broker.
pub fn location(topic: &str) -> String {
    format!("kafka://{}/{topic}", brokers().kafka)
}

/// A session with `topic` registered as table `t`.
pub async fn kafka_table(
    topic: &str,
    value_schema: SchemaRef,
    pairs: &[(&str, &str)],
) -> SessionContext {
    let options =
        KafkaTableOptions::parse(&location(topic), value_schema, &opts(pairs)).expect("options");
    let provider = StreamingTableProvider::try_new_kafka(options)
        .await
        .expect("provider");
    let ctx = datafusion_topics::session_context();
    ctx.register_table("t", Arc::new(provider))
        .expect("register");
    ctx
}

/// An empty value schema (raw and string formats).
pub fn no_columns() -> SchemaRef {
    Arc::new(Schema::empty())
}

/// Runs a query to completion.
pub async fn sql(ctx: &SessionContext, query: &str) -> Vec<RecordBatch> {
    ctx.sql(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Runs a query that must fail and returns its error text.
pub async fn sql_err(ctx: &SessionContext, query: &str) -> String {
    match ctx.sql(query).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Err(e) => e.to_string(),
            Ok(b) => panic!(
                "{query} succeeded with {} rows, expected an error",
                rows(&b)
            ),
        },
    }
}

pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Formats batches as a sorted list of row strings, for set comparisons.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let text = datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>().join("|"))
        .collect();
    lines.sort();
    lines
}

/// The (`_partition`, `_offset`) pairs of batches whose first two columns are those, sorted.
pub fn partition_offsets(batches: &[RecordBatch]) -> Vec<(i32, i64)> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Int32Type, Int64Type};
    let mut out: Vec<(i32, i64)> = batches
        .iter()
        .flat_map(|b| {
            let p = b.column(0).as_primitive::<Int32Type>().clone();
            let o = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| (p.value(i), o.value(i)))
        })
        .collect();
    out.sort();
    out
}

/// Reads string values (first column) from a live stream until `want` arrived (30 s at most).
pub async fn next_strings(
    stream: &mut datafusion::execution::SendableRecordBatchStream,
    want: usize,
) -> Vec<String> {
    use datafusion::arrow::array::AsArray;
    use futures::StreamExt;
    let mut values = Vec::new();
    while values.len() < want {
        let batch = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("rows did not arrive within 30 s")
            .expect("stream ended")
            .expect("stream error");
        let col = batch.column(0).as_string::<i32>();
        values.extend((0..batch.num_rows()).map(|i| col.value(i).to_string()));
    }
    values
}

/// A JetStream context on the test NATS server.
pub async fn jetstream() -> async_nats::jetstream::Context {
    let client = async_nats::connect(&brokers().nats)
        .await
        .expect("connect to nats");
    async_nats::jetstream::new(client)
}

/// Creates a uniquely named stream capturing `<name>.<suffix>` for each suffix (so streams
/// of different tests and runs never overlap) and returns its name.
pub async fn create_stream(
    js: &async_nats::jetstream::Context,
    prefix: &str,
    suffixes: &[&str],
) -> String {
    let name = unique_name(prefix).replace('-', "_");
    let subjects: Vec<String> = suffixes.iter().map(|s| format!("{name}.{s}")).collect();
    let subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();
    create_named_stream(js, &name, &subjects).await;
    name
}

/// Creates a stream with exactly this name.
pub async fn create_named_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    subjects: &[&str],
) {
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("creating stream {name}: {e}"));
}

/// Publishes and waits for the stream's acknowledgement; returns the stream sequence.
pub async fn publish(
    js: &async_nats::jetstream::Context,
    subject: &str,
    payload: impl Into<Vec<u8>>,
) -> u64 {
    let payload: Vec<u8> = payload.into();
    js.publish(subject.to_string(), payload.into())
        .await
        .expect("publish")
        .await
        .expect("publish ack")
        .sequence
}

/// Publishes every payload to `subject`, keeping at most 1000 acknowledgements in flight
/// (async-nats blocks a publish beyond 5000 pending ones).
pub async fn publish_all(
    js: &async_nats::jetstream::Context,
    subject: &str,
    payloads: impl IntoIterator<Item = Vec<u8>>,
) {
    let mut acks = Vec::with_capacity(1000);
    for payload in payloads {
        acks.push(
            js.publish(subject.to_string(), payload.into())
                .await
                .expect("publish"),
        );
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.expect("publish ack");
            }
        }
    }
    for ack in acks {
        ack.await.expect("publish ack");
    }
}

/// The `nats://` location of a stream on the test server.
pub fn nats_location(stream: &str) -> String {
    format!("{}/{stream}", brokers().nats)
}

/// A session with a NATS stream registered as table `t`.
pub async fn nats_table(
    stream: &str,
    value_schema: SchemaRef,
    pairs: &[(&str, &str)],
) -> SessionContext {
    nats_table_at(&nats_location(stream), value_schema, pairs).await
}

/// A session with the NATS stream at `location` (any server) registered as table `t`.
pub async fn nats_table_at(
    location: &str,
    value_schema: SchemaRef,
    pairs: &[(&str, &str)],
) -> SessionContext {
    let options = datafusion_topics::NatsTableOptions::parse(location, value_schema, &opts(pairs))
        .expect("options");
    let provider = StreamingTableProvider::try_new_nats(options)
        .await
        .expect("provider");
    let ctx = datafusion_topics::session_context();
    ctx.register_table("t", Arc::new(provider))
        .expect("register");
    ctx
}

/// The error creating a NATS table at `location` gives.
pub async fn nats_table_error(location: &str, pairs: &[(&str, &str)]) -> String {
    let options = datafusion_topics::NatsTableOptions::parse(location, no_columns(), &opts(pairs))
        .expect("options");
    StreamingTableProvider::try_new_nats(options)
        .await
        .expect_err("creating the table should fail")
        .to_string()
}

/// The physical plan of a query.
pub async fn physical_plan(
    ctx: &SessionContext,
    query: &str,
) -> Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    ctx.sql(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Waits (10 s at most) until no partition reader of `topic` runs any more.
pub async fn wait_for_readers_released(topic: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while datafusion_topics::source::running_readers(topic) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "readers still running after {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
