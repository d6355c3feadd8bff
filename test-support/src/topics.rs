//! Kafka helpers for tests and benchmarks: unique topics, producing messages.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::brokers;

/// A name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An admin client for the test brokers.
pub fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .create()
        .expect("admin client")
}

/// Creates a topic with `partitions` partitions and returns its name.
pub async fn create_topic(prefix: &str, partitions: i32) -> String {
    create_topic_with(prefix, partitions, &[]).await
}

/// Creates a topic with `partitions` partitions and topic configs (`cleanup.policy`,
/// `message.timestamp.type`, `segment.bytes` …) and returns its name.
pub async fn create_topic_with(prefix: &str, partitions: i32, configs: &[(&str, &str)]) -> String {
    let name = unique_name(prefix);
    let mut topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin()
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
    /// Target partition.
    pub partition: i32,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (None: a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Create time in ms (None: now).
    pub timestamp: Option<i64>,
}

impl TestMessage {
    /// A message with only a value.
    pub fn value(partition: i32, value: impl Into<Vec<u8>>) -> Self {
        Self {
            partition,
            value: Some(value.into()),
            ..Default::default()
        }
    }
}

/// A producer for the test brokers with extra client properties (`compression.type` …).
pub fn producer_with(properties: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &brokers().kafka)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in properties {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

/// A producer for the test brokers.
pub fn producer() -> FutureProducer {
    producer_with(&[])
}

/// Produces messages (each call is flushed, so separate calls make separate record batches).
pub async fn produce(topic: &str, messages: &[TestMessage]) {
    produce_with(&producer(), topic, messages).await
}

/// Produces messages through `producer` and waits until every one is acknowledged.
pub async fn produce_with(producer: &FutureProducer, topic: &str, messages: &[TestMessage]) {
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
