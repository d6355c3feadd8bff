//! Reading one partition's offset range on a dedicated thread, batch by batch.
//!
//! The thread owns one librdkafka consumer assigned to a single partition (no group, no
//! commits) and sends [`RawBatch`]es through a small bounded channel: backpressure comes from
//! the channel, and dropping the stream closes it, which ends the thread within one poll
//! interval and releases the consumer. A consumer that read its range to the end is parked
//! in the [`consumer_pool`](super::consumer_pool) for the next read of the partition.

use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::Consumer;

use super::config::{ScanConsumer, ScanContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::config::KafkaConfig;
use super::consumer_pool::{self, PoolKey};
use crate::error::{Result, TopicsError};
use crate::source::{
    OffsetRange, RawBatch, RawBatchBuilder, RawBatchStream, ReadRequest, RunningGuard,
    batch_channel, receiver_stream,
};

/// How long a poll waits before checking whether the reader was cancelled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long buffered messages of a live stream may wait for more before being emitted.
const LINGER: Duration = Duration::from_millis(20);

/// Starts reading `range` of `partition`; see the module docs.
pub(super) fn read_partition(
    config: KafkaConfig,
    partition: i32,
    range: OffsetRange,
    request: ReadRequest,
) -> RawBatchStream {
    if range.is_empty() || request.max_messages == Some(0) {
        return futures::stream::empty().boxed();
    }
    let (tx, rx) = batch_channel();
    let name = format!("kafka-{}-{partition}", config.topic);
    let guard = RunningGuard::start(&config.topic);
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let mut consumer = None;
        let reusable = match run(&config, partition, range, request, &tx, &mut consumer) {
            Ok(reusable) => reusable,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                None
            }
        };
        // The scan sees the end first; librdkafka's teardown (about 100 ms) happens after.
        drop(tx);
        if let (Some(consumer), Some((key, next))) = (consumer, reusable) {
            consumer_pool::park(key, consumer, next);
        }
        drop(guard);
    });
    if let Err(e) = spawned {
        let err = TopicsError::Client {
            kind: "kafka",
            action: format!("starting a reader for partition {partition}"),
            detail: e.to_string(),
        };
        return futures::stream::once(async move { Err(err) }).boxed();
    }
    receiver_stream(rx)
}

/// Messages librdkafka may prefetch for an open range (its default is 100000).
const PREFETCH_OPEN: i64 = 10_000;

/// How long librdkafka waits before fetching for a partition whose queue was full (ms).
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Sends a finished batch; returns false when the receiver is gone (the scan was dropped).
fn emit(tx: &mpsc::Sender<Result<RawBatch>>, builder: &mut RawBatchBuilder) -> bool {
    !builder.has_news() || tx.blocking_send(Ok(builder.finish())).is_ok()
}

/// Reads into `tx`, keeping the consumer in `slot` so the caller can close the channel
/// before destroying it. Returns the consumer's pool key and next offset when it stopped
/// exactly where the next read of the partition would start (so it can be parked).
fn run(
    config: &KafkaConfig,
    partition: i32,
    range: OffsetRange,
    request: ReadRequest,
    tx: &mpsc::Sender<Result<RawBatch>>,
    slot: &mut Option<ScanConsumer>,
) -> Result<Option<(PoolKey, i64)>> {
    let topic = &config.topic;
    let action = || format!("reading {topic} partition {partition} range {range}");
    let mut client_config = config.consumer_config(None);
    let key = PoolKey::new(&client_config, topic, partition);
    // librdkafka prefetches up to 100000 messages past what was asked for. A closed range
    // needs none beyond its end, and every extra fetch costs the brokers a read.
    if config.properties.get("queued.min.messages").is_none() {
        let wanted = range.end.map_or(PREFETCH_OPEN, |end| {
            (end - range.start).clamp(1, PREFETCH_OPEN)
        });
        client_config.set("queued.min.messages", wanted.to_string());
    }
    // Once its queue holds queued.min.messages, librdkafka postpones the partition's next
    // fetch by fetch.queue.backoff.ms (default 1 s), however fast the queue drains: a scan of
    // 1M messages over 3 partitions took 20.5 s instead of 0.86 s. The queue drains within
    // milliseconds here, so look again soon.
    if config.properties.get("fetch.queue.backoff.ms").is_none() {
        client_config.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    }
    let consumer: &ScanConsumer = match consumer_pool::take(key, range.start) {
        // A parked consumer stopped at range.start; seeking there anyway drops what it
        // queued meanwhile, including a partition-end event from before the new messages
        // (librdkafka discards fetch results older than a seek).
        Some(parked) => {
            let consumer = slot.insert(parked);
            consumer
                .seek(
                    topic,
                    partition,
                    Offset::Offset(range.start),
                    config.timeout,
                )
                .map_err(|e| config.client_error(action(), e))?;
            consumer
        }
        None => {
            let consumer = slot.insert(
                client_config
                    .create_with_context(ScanContext)
                    .map_err(|e| config.client_error(action(), e))?,
            );
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition, Offset::Offset(range.start))
                .map_err(|e| config.client_error(action(), e))?;
            consumer
                .assign(&tpl)
                .map_err(|e| config.client_error(action(), e))?;
            consumer
        }
    };

    let mut builder = RawBatchBuilder::new(partition, request.needs, request.batch_rows.max(1));
    let mut remaining = request.max_messages.unwrap_or(u64::MAX);
    let mut next_offset = range.start;
    let mut first_buffered: Option<Instant> = None;

    loop {
        if tx.is_closed() {
            return Ok(None);
        }
        // Buffered rows wait at most LINGER for company, not a whole poll interval.
        let wait = first_buffered.map_or(POLL_INTERVAL, |t| {
            LINGER.saturating_sub(t.elapsed()).min(POLL_INTERVAL)
        });
        match consumer.poll(wait) {
            None => {
                if first_buffered.is_some_and(|t| t.elapsed() >= LINGER) {
                    first_buffered = None;
                    if !emit(tx, &mut builder) {
                        return Ok(None);
                    }
                }
            }
            Some(Ok(m)) => {
                let offset = m.offset();
                if range.end.is_some_and(|end| offset >= end) {
                    // A message past the range was taken from the queue: not reusable.
                    emit(tx, &mut builder);
                    return Ok(None);
                }
                builder.append(
                    offset,
                    m.timestamp().to_millis(),
                    m.key(),
                    m.payload(),
                    || {
                        m.headers()
                            .into_iter()
                            .flat_map(|h| h.iter())
                            .map(|h| (h.key, h.value))
                    },
                );
                next_offset = offset + 1;
                remaining -= 1;
                first_buffered.get_or_insert_with(Instant::now);
                let range_done = range.end.is_some_and(|end| next_offset >= end);
                if remaining == 0 || range_done {
                    // A closed range read to its end is what the next micro-batch continues
                    // from; nothing past it was taken from the queue. (A LIMIT's consumer is
                    // not kept: nothing says a later read starts where it stopped.)
                    let sent = emit(tx, &mut builder);
                    return Ok((sent && range_done).then_some((key, next_offset)));
                }
                if builder.is_full() {
                    first_buffered = None;
                    if !emit(tx, &mut builder) {
                        return Ok(None);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                // Caught up with the high watermark: every offset below it was delivered, and a
                // closed range never ends beyond the high watermark it was planned against.
                first_buffered = None;
                if !emit(tx, &mut builder) || range.end.is_some() {
                    return Ok(None);
                }
            }
            Some(Err(e)) if is_transient(&e) => {
                // librdkafka reconnects by itself; a live scan keeps waiting for the brokers.
                log::warn!("{}: {}", action(), config.properties.scrub(e.to_string()));
            }
            Some(Err(e)) if is_data_loss(&e) && !request.fail_on_data_loss => {
                // Retention removed offsets ahead of us: skip to the new start and count.
                let (low, _) = consumer
                    .fetch_watermarks(topic, partition, config.timeout)
                    .map_err(|e| config.client_error(action(), e))?;
                if low <= next_offset {
                    return Err(config.client_error(action(), e));
                }
                log::warn!(
                    "{}: offsets [{next_offset}, {low}) were removed; skipping them",
                    action()
                );
                builder.skip((low - next_offset) as u64);
                next_offset = low;
                if range.end.is_some_and(|end| next_offset >= end) {
                    emit(tx, &mut builder);
                    return Ok(None);
                }
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(topic, partition, Offset::Offset(low))
                    .map_err(|e| config.client_error(action(), e))?;
                consumer
                    .assign(&tpl)
                    .map_err(|e| config.client_error(action(), e))?;
            }
            Some(Err(e)) => {
                emit(tx, &mut builder);
                return Err(match e.rdkafka_error_code() {
                    Some(
                        RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset,
                    ) => TopicsError::DataLoss {
                        topic: topic.clone(),
                        partition,
                        offset: next_offset,
                        detail: config.properties.scrub(e.to_string()),
                    },
                    Some(
                        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
                    ) => TopicsError::UnknownTopic {
                        kind: "kafka",
                        topic: topic.clone(),
                        brokers: config.bootstrap_servers.clone(),
                    },
                    _ => config.client_error(format!("{} at offset {next_offset}", action()), e),
                });
            }
        }
    }
}

/// Errors meaning the offset to read no longer exists.
fn is_data_loss(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
    )
}

/// Connection-level errors librdkafka recovers from on its own.
fn is_transient(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
        )
    )
}
