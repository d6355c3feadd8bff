//! NATS JetStream helpers for tests and benchmarks: unique streams, publishing.

use crate::{brokers, unique_name};

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
