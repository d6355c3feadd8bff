//! Reading one partition's sequence range with an ordered, ephemeral JetStream consumer.
//!
//! The consumer starts at the range's first sequence (no shared durable cursor, so parallel
//! partitions never duplicate each other) and the reader task sends [`RawBatch`]es through a
//! small bounded channel; dropping the stream ends the task and deletes the consumer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream::Stream};
use futures::StreamExt;
use tokio::sync::{OnceCell, mpsc};

use super::config::NatsConfig;
use super::source::{connect, get_stream};
use crate::error::{Result, TopicsError};
use crate::source::{
    OffsetRange, RawBatch, RawBatchBuilder, RawBatchStream, ReadRequest, RunningGuard,
    batch_channel, receiver_stream,
};

/// How long buffered messages of a live stream may wait for more before being emitted.
const LINGER: Duration = Duration::from_millis(50);
/// How often an idle reader checks that its stream still exists.
const STREAM_CHECK: Duration = Duration::from_secs(1);

/// Starts reading `range` of `partition` (see the module docs).
pub(super) fn read_partition(
    config: NatsConfig,
    client: Arc<OnceCell<async_nats::Client>>,
    stream_name: String,
    partition: i32,
    subject: Result<Option<String>>,
    range: OffsetRange,
    request: ReadRequest,
) -> RawBatchStream {
    if range.is_empty() || request.max_messages == Some(0) {
        return futures::stream::empty().boxed();
    }
    let (tx, rx) = batch_channel();
    let guard = RunningGuard::start(&stream_name);
    // Spawned on first poll, so `read` itself needs no runtime.
    let start = futures::stream::once(async move {
        tokio::spawn(async move {
            let _guard = guard;
            let result = async {
                let client = client.get_or_try_init(|| connect(&config)).await?.clone();
                let mut js = jetstream::new(client);
                js.set_timeout(config.timeout);
                let stream = get_stream(&js, &config, &stream_name).await?;
                run(
                    &config, &js, &stream, partition, subject?, range, request, &tx,
                )
                .await
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        receiver_stream(rx)
    });
    start.flatten().boxed()
}

/// The sequence of the first message a consumer with `policy` would deliver, if any.
pub(super) async fn first_sequence_from(
    stream: &Stream,
    subject: Option<String>,
    policy: consumer::DeliverPolicy,
    timeout: Duration,
) -> std::result::Result<Option<u64>, String> {
    let config = consumer::pull::OrderedConfig {
        filter_subject: subject.unwrap_or_default(),
        deliver_policy: policy,
        ..Default::default()
    };
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(|e| e.to_string())?;
    let _cleanup = DeleteOnDrop::new(stream, &consumer.cached_info().name);
    if consumer.cached_info().num_pending == 0 {
        return Ok(None);
    }
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, messages.next()).await {
        Ok(Some(Ok(m))) => Ok(Some(m.info().map_err(|e| e.to_string())?.stream_sequence)),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) | Err(_) => Ok(None),
    }
}

/// Deletes an ephemeral consumer once its read is over, however it ends. The server would
/// remove it only after 30 s of inactivity, and micro-batches create one per partition per
/// batch: thousands could pile up against the server's consumer limits.
struct DeleteOnDrop {
    stream: Stream,
    name: String,
}

impl DeleteOnDrop {
    fn new(stream: &Stream, name: &str) -> Self {
        Self {
            stream: stream.clone(),
            name: name.to_string(),
        }
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let stream = self.stream.clone();
        let name = std::mem::take(&mut self.name);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // An ordered consumer that reset itself has another name by now; the server
                // removes that one when it goes idle.
                if let Err(e) = stream.delete_consumer(&name).await {
                    log::debug!("deleting ephemeral consumer {name}: {e}");
                }
            });
        }
    }
}

async fn emit(tx: &mpsc::Sender<Result<RawBatch>>, builder: &mut RawBatchBuilder) -> bool {
    !builder.has_news() || tx.send(Ok(builder.finish())).await.is_ok()
}

#[allow(clippy::too_many_arguments)]
async fn run(
    config: &NatsConfig,
    js: &jetstream::Context,
    stream: &Stream,
    partition: i32,
    subject: Option<String>,
    range: OffsetRange,
    request: ReadRequest,
    tx: &mpsc::Sender<Result<RawBatch>>,
) -> Result<()> {
    let name = &stream.cached_info().config.name;
    let action = || format!("reading stream '{name}' partition {partition} range {range}");
    let mut builder = RawBatchBuilder::new(partition, request.needs, request.batch_rows.max(1));
    let mut range = range;
    let state = &stream.cached_info().state;
    if state.messages > 0 && range.start < state.first_sequence as i64 {
        let first = state.first_sequence as i64;
        if request.fail_on_data_loss {
            return Err(TopicsError::DataLoss {
                topic: name.clone(),
                partition,
                offset: range.start,
                detail: format!("the stream now starts at sequence {first}"),
            });
        }
        log::warn!(
            "{}: sequences [{}, {first}) were removed; skipping them",
            action(),
            range.start
        );
        builder.skip((first - range.start) as u64);
        range.start = first;
        if range.is_empty() {
            emit(tx, &mut builder).await;
            return Ok(());
        }
    }
    let consumer_config = consumer::pull::OrderedConfig {
        filter_subject: subject.unwrap_or_default(),
        deliver_policy: consumer::DeliverPolicy::ByStartSequence {
            start_sequence: range.start.max(1) as u64,
        },
        ..Default::default()
    };
    let consumer = stream
        .create_consumer(consumer_config)
        .await
        .map_err(|e| config.client_error(action(), e))?;
    let _cleanup = DeleteOnDrop::new(stream, &consumer.cached_info().name);
    // Nothing stored at or after the start: a closed range (which never ends beyond what was
    // stored when it was planned) is complete.
    if range.end.is_some() && consumer.cached_info().num_pending == 0 {
        emit(tx, &mut builder).await;
        return Ok(());
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| config.client_error(action(), e))?;
    let mut remaining = request.max_messages.unwrap_or(u64::MAX);
    let mut last_check = Instant::now();

    loop {
        let next = tokio::select! {
            _ = tx.closed() => return Ok(()),
            next = tokio::time::timeout(LINGER, messages.next()) => next,
        };
        let message = match next {
            Err(_) => {
                if !emit(tx, &mut builder).await {
                    return Ok(());
                }
                // Ordered consumers quietly recreate themselves; while idle, make sure the
                // stream still exists instead of waiting forever on a deleted one.
                if last_check.elapsed() >= STREAM_CHECK {
                    last_check = Instant::now();
                    get_stream(js, config, name).await.map_err(|e| match e {
                        TopicsError::UnknownTopic { .. } => TopicsError::Client {
                            kind: "nats",
                            action: action(),
                            detail: format!("stream '{name}' was deleted during the scan"),
                        },
                        other => other,
                    })?;
                }
                continue;
            }
            Ok(None) => {
                return Err(config.client_error(action(), "the consumer stopped delivering"));
            }
            Ok(Some(Err(e))) => {
                emit(tx, &mut builder).await;
                return Err(config.client_error(action(), e));
            }
            Ok(Some(Ok(m))) => m,
        };
        let info = message
            .info()
            .map_err(|e| config.client_error(action(), e))?;
        let seq = info.stream_sequence as i64;
        if range.end.is_some_and(|end| seq >= end) {
            emit(tx, &mut builder).await;
            return Ok(());
        }
        let ts = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
        let pending = info.pending;
        builder.append(seq, Some(ts), None, Some(&message.payload), || {
            let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
            if let Some(map) = &message.headers {
                for (name, values) in map.iter() {
                    headers.extend(values.iter().map(|v| (name.as_ref(), Some(v.as_ref()))));
                }
            }
            // NATS header maps are unordered; sorting keeps repeated reads identical.
            headers.sort_unstable();
            headers.into_iter()
        });
        builder.append_subject(&message.subject);
        remaining -= 1;
        let range_done = range.end.is_some_and(|end| seq + 1 >= end);
        // `pending == 0`: caught up with the stream; a closed range is then complete.
        if remaining == 0 || range_done || (pending == 0 && range.end.is_some()) {
            emit(tx, &mut builder).await;
            return Ok(());
        }
        if (builder.is_full() || pending == 0) && !emit(tx, &mut builder).await {
            return Ok(());
        }
    }
}
