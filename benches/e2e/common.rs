//! Shared pieces of the end-to-end benchmark: environment knobs, process counters, the test
//! payload and schema, producing, and the bare-client readers each ratio divides by.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::*;

pub(crate) const PARTITIONS: i32 = 3;

pub(crate) fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

pub(crate) fn section_enabled(name: &str) -> bool {
    match std::env::var("E2E_ONLY") {
        Ok(only) => only.split(',').any(|s| s.trim() == name),
        Err(_) => true,
    }
}

pub(crate) use crate::cpu::cpu_time;

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Resident set size of this process now, in bytes.
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// Peak RSS (VmHWM) since the process started or since [`reset_peak_rss`].
pub(crate) fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false when not permitted.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(crate) const NOTE: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \
                    incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis \
                    nostrud exercitation ullamco laboris";

/// A JSON object of about 200 bytes with six fields of mixed types.
pub(crate) fn payload(i: u64, ts_us: u64) -> String {
    let note = &NOTE[(i % 40) as usize..][..90];
    format!(
        r#"{{"id":{i},"user":"user-{:05}","amount":{}.{:02},"active":{},"ts":{ts_us},"note":"{note}"}}"#,
        i % 10007,
        (i * 37) % 100_000,
        i % 100,
        i.is_multiple_of(3),
    )
}

pub(crate) fn value_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("user", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("active", DataType::Boolean, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

pub(crate) const COLUMNS_DDL: &str =
    "id BIGINT, user VARCHAR, amount DOUBLE, active BOOLEAN, ts BIGINT, note VARCHAR";
pub(crate) const COUNT_QUERY: &str = "SELECT count(*) FROM t";
/// Needs every value column decoded.
pub(crate) const DECODE_QUERY: &str = "SELECT count(id), sum(amount), count(DISTINCT user), \
     sum(CASE WHEN active THEN 1 ELSE 0 END), max(ts), max(note) FROM t";
pub(crate) const SELECT_ALL_VALUES: &str = "SELECT id, user, amount, active, ts, note FROM t";

/// The partition subjects of a stream made by `create_stream(js, _, &["0", "1", "2"])`.
pub(crate) fn subject_list(stream: &str) -> String {
    (0..PARTITIONS)
        .map(|p| format!("{stream}.{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Extracts the `"ts":<digits>` field of a JSON message.
pub(crate) fn ts_field(bytes: &[u8]) -> Option<u64> {
    let key = b"\"ts\":";
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit());
    let mut n = 0u64;
    let mut any = false;
    for d in digits {
        n = n * 10 + u64::from(d - b'0');
        any = true;
    }
    any.then_some(n)
}

pub(crate) fn kafka_producer(linger_ms: u32) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer")
}

/// Sends one record, waiting while librdkafka's queue is full.
pub(crate) async fn send_kafka(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    value: &[u8],
) -> rdkafka::producer::DeliveryFuture {
    send_kafka_at(producer, topic, partition, value, None).await
}

/// [`send_kafka`] with the message's create time (ms since the epoch) set.
pub(crate) async fn send_kafka_at(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    value: &[u8],
    timestamp_ms: Option<i64>,
) -> rdkafka::producer::DeliveryFuture {
    loop {
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).partition(partition).payload(value);
        if let Some(t) = timestamp_ms {
            rec = rec.timestamp(t);
        }
        match producer.send_result(rec) {
            Ok(f) => return f,
            Err((e, _)) => {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "produce: {e}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
}

pub(crate) async fn await_delivery(f: rdkafka::producer::DeliveryFuture) {
    f.await
        .expect("delivery canceled")
        .map_err(|(e, _)| e)
        .expect("delivery failed");
}

/// Produces `n` payloads round-robin over the partitions; returns the time it took.
pub(crate) async fn fill_kafka(topic: &str, n: u64) -> Duration {
    fill_kafka_into(topic, PARTITIONS, n, |i| {
        (payload(i, 1_700_000_000_000_000 + i), None)
    })
    .await
}

/// Produces `n` messages round-robin over the [`PARTITIONS`] partitions, message `i` being
/// `message(i)`'s payload and create time (ms; `None`: now); returns the time it took.
pub(crate) async fn fill_kafka_with(
    topic: &str,
    n: u64,
    message: impl Fn(u64) -> (String, Option<i64>),
) -> Duration {
    fill_kafka_into(topic, PARTITIONS, n, message).await
}

/// [`fill_kafka_with`] over `partitions` partitions.
pub(crate) async fn fill_kafka_into(
    topic: &str,
    partitions: i32,
    n: u64,
    message: impl Fn(u64) -> (String, Option<i64>),
) -> Duration {
    let started = Instant::now();
    let producer = kafka_producer(20);
    let mut pending = VecDeque::new();
    for i in 0..n {
        let (value, timestamp) = message(i);
        let f = send_kafka_at(
            &producer,
            topic,
            (i % partitions as u64) as i32,
            value.as_bytes(),
            timestamp,
        )
        .await;
        pending.push_back(f);
        if pending.len() >= 100_000 {
            for f in pending.drain(..50_000) {
                await_delivery(f).await;
            }
        }
    }
    for f in pending {
        await_delivery(f).await;
    }
    started.elapsed()
}

/// A bare consumer (no commits) on the test Kafka broker.
fn raw_consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", &brokers().kafka)
        .set("group.id", "e2e-raw")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// The (low, high) watermarks of a partition.
fn raw_watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> (i64, i64) {
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks")
}

/// Assigns every partition of `topic` from its offset in `starts` and polls until `n`
/// messages arrived.
fn raw_read(consumer: &BaseConsumer, topic: &str, starts: &[i64], n: u64) {
    let mut tpl = TopicPartitionList::new();
    for (p, start) in (0..PARTITIONS).zip(starts) {
        tpl.add_partition_offset(topic, p, Offset::Offset(*start))
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = 0;
    while got < n {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m.expect("message");
            got += 1;
        }
    }
}

/// Counts every message of `topic` (`partitions` partitions) up to its current high
/// watermarks with one bare consumer.
pub(crate) fn raw_kafka_count_of(topic: &str, partitions: i32) -> u64 {
    let consumer = raw_consumer();
    let marks: Vec<(i64, i64)> = (0..partitions)
        .map(|p| raw_watermarks(&consumer, topic, p))
        .collect();
    let total = marks.iter().map(|(low, high)| (high - low) as u64).sum();
    let starts: Vec<i64> = marks.iter().map(|(low, _)| *low).collect();
    raw_read(&consumer, topic, &starts, total);
    total
}

/// Reads the first `n` messages of `topic` (every partition from offset 0) with a new bare
/// consumer: what a `LIMIT n` over existing data costs the broker and the client.
pub(crate) fn raw_kafka_first(topic: &str, n: usize) {
    raw_read(&raw_consumer(), topic, &[0; PARTITIONS as usize], n as u64);
}

/// Reads the next `n` messages written to `topic` (every partition from its end) with a new
/// bare consumer; returns when the `n`th arrived.
pub(crate) fn raw_kafka_tail(topic: &str, n: usize) -> Instant {
    let consumer = raw_consumer();
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| raw_watermarks(&consumer, topic, p).1)
        .collect();
    raw_read(&consumer, topic, &ends, n as u64);
    Instant::now()
}

// ---------------------------------------------------------------------------------------------
// NATS

/// Publishes `n` payloads round-robin over `<stream>.0..2`, awaiting acknowledgements in
/// windows; returns the time it took.
pub(crate) async fn fill_nats(stream: &str, n: u64) -> Duration {
    // The default context allows 5000 acknowledgements in flight; the windows below need more.
    let client = async_nats::connect(&brokers().nats)
        .await
        .expect("connect to nats");
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(50_000)
        .build(client);
    let started = Instant::now();
    let subjects: Vec<String> = (0..PARTITIONS).map(|p| format!("{stream}.{p}")).collect();
    let mut acks = VecDeque::new();
    for i in 0..n {
        let ack = js
            .publish(
                subjects[(i % PARTITIONS as u64) as usize].clone(),
                payload(i, 1_700_000_000_000_000 + i).into(),
            )
            .await
            .expect("publish");
        acks.push_back(ack);
        if acks.len() >= 20_000 {
            for a in acks.drain(..10_000) {
                a.await.expect("publish ack");
            }
        }
        if i > 0 && i.is_multiple_of(1_000_000) {
            eprintln!("  published {i} in {:.1?}", started.elapsed());
        }
    }
    for a in acks {
        a.await.expect("publish ack");
    }
    started.elapsed()
}

/// Counts every message of the stream with one ordered consumer per subject, concurrently.
pub(crate) async fn raw_nats_count(js: &jetstream::Context, stream: &str, expected: u64) -> u64 {
    let s = js.get_stream(stream).await.expect("stream");
    let mut readers = Vec::new();
    for p in 0..PARTITIONS as u64 {
        let want = expected / PARTITIONS as u64 + u64::from(p < expected % PARTITIONS as u64);
        let c = s
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: format!("{stream}.{p}"),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .expect("ordered consumer");
        readers.push(tokio::spawn(async move {
            let mut messages = c.messages().await.expect("messages");
            let mut n = 0u64;
            while n < want {
                messages.next().await.expect("ended").expect("message");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for r in readers {
        total += r.await.unwrap();
    }
    total
}
