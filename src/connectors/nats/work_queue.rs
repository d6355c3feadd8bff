//! Work-queue mode (`nats.mode = work-queue`): the table's readers pull from one durable
//! JetStream consumer, shared with every other process that names it, and acknowledge each
//! message once it was used. At-least-once: a message not acknowledged within the ack wait
//! (a reader that died, a batch that failed) is delivered again.
//!
//! Outside a continuous query a reader acknowledges a batch when the scan asks for the next
//! one (so the operators above it consumed it) or when the scan ends; a batch the scan never
//! finished with, as after a `LIMIT`, returns to the queue after the ack wait. Inside a
//! continuous query the acknowledgements wait in [`DeferredAcks`] until the batch that read
//! the messages is committed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Subject;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::config::{NatsConfig, NatsPartitioning, QueueStart, WorkQueueConfig};
use super::source::{NatsSource, get_stream};
use crate::error::{Result, TopicsError};
use crate::source::{
    DeferredAcks, LogSource, QueueRead, QueueSource, RawBatch, RawBatchBuilder, RawBatchStream,
    ReadRequest, RunningGuard,
};

/// How long an open (following) read waits in one pull request before asking again.
const PULL_WAIT: Duration = Duration::from_millis(200);

/// What readers do with the acknowledgements of the messages they hand on.
#[derive(Clone)]
enum Acks {
    /// Sent when the scan asks for the next batch, or ends.
    OnNextBatch,
    /// Kept for the caller, which sends them after its commit.
    Deferred(Arc<DeferredAcks>),
}

/// A JetStream stream read as a work queue through a durable pull consumer (see the module
/// docs); partitions are the parallel readers.
pub struct NatsWorkQueue {
    source: Arc<NatsSource>,
    queue: WorkQueueConfig,
    acks: Acks,
    max_messages: Option<u64>,
}

impl NatsWorkQueue {
    /// A work queue over the stream of `source` with the settings `queue`.
    pub fn new(source: Arc<NatsSource>, queue: WorkQueueConfig) -> Self {
        Self {
            source,
            queue,
            acks: Acks::OnNextBatch,
            max_messages: None,
        }
    }

    fn config(&self) -> &NatsConfig {
        self.source.config()
    }

    /// The subjects the consumer filters on (empty: the whole stream).
    fn filters(&self) -> Vec<String> {
        match &self.config().partitioning {
            NatsPartitioning::Subjects(list) => list.clone(),
            NatsPartitioning::SubjectWildcard(w) => vec![w.clone()],
            NatsPartitioning::Stream | NatsPartitioning::Streams(_) => Vec::new(),
        }
    }

    fn action(&self) -> String {
        format!(
            "opening work-queue consumer '{}' of stream '{}'",
            self.queue.consumer,
            self.config().stream
        )
    }

    /// The durable consumer, created when missing; an existing one must be a pull consumer
    /// with explicit acknowledgements and the table's filter subjects.
    async fn consumer(&self) -> Result<PullConsumer> {
        let config = self.config();
        let js = self.source.context().await?;
        let stream = get_stream(&js, config, &config.stream).await?;
        let name = &self.queue.consumer;
        let mut filters = self.filters();
        filters.sort();
        match stream.consumer_info(name).await {
            Ok(info) => {
                let c = &info.config;
                let mut theirs = c.filter_subjects.clone();
                if !c.filter_subject.is_empty() {
                    theirs.push(c.filter_subject.clone());
                }
                theirs.sort();
                let problem = if c.deliver_subject.is_some() {
                    Some("it is a push consumer; work queues pull".to_string())
                } else if c.ack_policy != AckPolicy::Explicit {
                    Some(format!(
                        "its ack policy is {:?}; work queues need explicit acknowledgements",
                        c.ack_policy
                    ))
                } else if theirs != filters {
                    Some(format!(
                        "it filters on {theirs:?} but the table reads {filters:?}; \
                         name another consumer or delete this one"
                    ))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(TopicsError::InvalidOption {
                        key: "nats.work-queue.consumer".into(),
                        value: name.clone(),
                        reason: format!(
                            "consumer '{name}' of stream '{}': {problem}",
                            config.stream
                        ),
                    });
                }
                stream
                    .get_consumer(name)
                    .await
                    .map_err(|e| config.client_error(self.action(), e))
            }
            Err(e) if matches!(e.kind(), ConsumerInfoErrorKind::NotFound) => {
                let deliver_policy = match self.queue.start {
                    QueueStart::All => DeliverPolicy::All,
                    QueueStart::New => DeliverPolicy::New,
                    QueueStart::Time(ms) => DeliverPolicy::ByStartTime {
                        start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                            i128::from(ms) * 1_000_000,
                        )
                        .map_err(|e| TopicsError::InvalidOption {
                            key: "scan.startup.timestamp-millis".into(),
                            value: ms.to_string(),
                            reason: e.to_string(),
                        })?,
                    },
                };
                let (filter_subject, filter_subjects) = match filters.as_slice() {
                    [one] => (one.clone(), Vec::new()),
                    _ => (String::new(), filters),
                };
                stream
                    .create_consumer(consumer::pull::Config {
                        durable_name: Some(name.clone()),
                        deliver_policy,
                        ack_policy: AckPolicy::Explicit,
                        ack_wait: self.queue.ack_wait,
                        max_ack_pending: self.queue.max_ack_pending,
                        filter_subject,
                        filter_subjects,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| config.client_error(self.action(), e))
            }
            Err(e) => Err(match e.kind() {
                ConsumerInfoErrorKind::TimedOut | ConsumerInfoErrorKind::Request => {
                    config.unreachable(self.action(), e)
                }
                _ => config.client_error(self.action(), e),
            }),
        }
    }
}

impl fmt::Debug for NatsWorkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsWorkQueue")
            .field("source", &self.source)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for NatsWorkQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} work-queue={} readers={}",
            self.source, self.queue.consumer, self.queue.readers
        )
    }
}

#[async_trait]
impl QueueSource for NatsWorkQueue {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn topic(&self) -> &str {
        &self.config().stream
    }

    fn cursor(&self) -> &str {
        &self.queue.consumer
    }

    async fn readers(&self) -> Result<Vec<i32>> {
        // The stream and its subjects must exist, as for ordered reads.
        self.source.partitions().await?;
        self.consumer().await?;
        Ok((0..self.queue.readers as i32).collect())
    }

    async fn pending(&self) -> Result<u64> {
        let consumer = self.consumer().await?;
        let info = consumer.cached_info();
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    fn read(&self, reader: i32, read: QueueRead, request: ReadRequest) -> RawBatchStream {
        let max = match (request.max_messages, read.max_messages) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if max == Some(0) {
            return futures::stream::empty().boxed();
        }
        let (tx, rx) = mpsc::channel(2);
        let guard = RunningGuard::start(QueueSource::topic(self));
        let acks = match read.acks {
            Some(deferred) => Acks::Deferred(deferred),
            None => Acks::OnNextBatch,
        };
        let this = Self {
            source: Arc::clone(&self.source),
            queue: self.queue.clone(),
            acks: acks.clone(),
            max_messages: max,
        };
        let drain = read.drain;
        let client = Arc::clone(&self.source.client);
        let start = futures::stream::once(async move {
            tokio::spawn(async move {
                let _guard = guard;
                if let Err(e) = this.pull(reader, drain, request, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
            acknowledging(rx, acks, client)
        });
        start.flatten().boxed()
    }
}

/// A batch of messages and the reply subjects that acknowledge them.
type Pulled = Result<(RawBatch, Vec<Subject>)>;

impl NatsWorkQueue {
    /// Pulls batches into `tx` until drained (when `drain`), the cap, or the scan drops it.
    async fn pull(
        &self,
        partition: i32,
        drain: bool,
        request: ReadRequest,
        tx: &mpsc::Sender<Pulled>,
    ) -> Result<()> {
        let config = self.config();
        let consumer = self.consumer().await?;
        let action = || {
            format!(
                "reading work queue '{}' of stream '{}' (reader {partition})",
                self.queue.consumer, config.stream
            )
        };
        let mut remaining = self.max_messages.unwrap_or(u64::MAX);
        // Readers together never ask for more than the consumer lets out unacknowledged: the
        // server would hold such a request until acknowledgements free room.
        let share =
            (self.queue.max_ack_pending.max(1) as u64 / u64::from(self.queue.readers)).max(1);
        let batch_rows = (request.batch_rows.max(1) as u64).min(share);
        while remaining > 0 {
            let want = remaining.min(batch_rows) as usize;
            let pulled = if drain {
                // Returns at once when nothing is pending; the expiry bounds a request the
                // server holds because the consumer has no room left.
                consumer
                    .fetch()
                    .max_messages(want)
                    .expires(PULL_WAIT)
                    .messages()
                    .await
            } else {
                consumer
                    .batch()
                    .max_messages(want)
                    .expires(PULL_WAIT)
                    .messages()
                    .await
            };
            let mut messages = pulled.map_err(|e| config.client_error(action(), e))?;
            let mut builder = RawBatchBuilder::new(partition, request.needs, want);
            let mut replies = Vec::with_capacity(want);
            let mut full = false;
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => return Ok(()),
                    next = messages.next() => next,
                };
                let message = match next {
                    None => break,
                    Some(Ok(m)) => m,
                    // The consumer has as many unacknowledged messages as it allows: what this
                    // reader holds must be acknowledged first.
                    Some(Err(e)) if e.to_string().contains("MaxAckPending") => {
                        full = true;
                        break;
                    }
                    Some(Err(e)) => return Err(config.client_error(action(), e)),
                };
                let info = message
                    .info()
                    .map_err(|e| config.client_error(action(), e))?;
                let seq = info.stream_sequence as i64;
                let ts = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
                builder.append(seq, Some(ts), None, Some(&message.payload), || {
                    let mut headers: Vec<(&str, Option<&[u8]>)> = Vec::new();
                    if let Some(map) = &message.headers {
                        for (name, values) in map.iter() {
                            headers
                                .extend(values.iter().map(|v| (name.as_ref(), Some(v.as_ref()))));
                        }
                    }
                    headers.sort_unstable();
                    headers.into_iter()
                });
                builder.append_subject(&message.subject);
                if let Some(reply) = &message.reply {
                    replies.push(reply.clone());
                }
            }
            let got = replies.len() as u64;
            if got > 0 && tx.send(Ok((builder.finish(), replies))).await.is_err() {
                return Ok(());
            }
            remaining = remaining.saturating_sub(got);
            if got > 0 && !full {
                continue;
            }
            // Nothing came, or the consumer has no room for more unacknowledged messages.
            // A micro-batch (deferred acknowledgements) is then as big as it can be; a scan
            // that acknowledges as it goes waits for room while undelivered messages remain,
            // and a drain ends when none does.
            if drain {
                if matches!(self.acks, Acks::Deferred(_)) {
                    return Ok(());
                }
                let mut consumer = consumer.clone();
                let undelivered = consumer
                    .info()
                    .await
                    .map_err(|e| config.client_error(action(), e))?
                    .num_pending;
                if undelivered == 0 {
                    return Ok(());
                }
            }
            if got == 0 {
                tokio::time::sleep(PULL_WAIT / 4).await;
            }
        }
        Ok(())
    }
}

/// The scan side of a work-queue reader: hands on batches and acknowledges each one as the
/// acks mode says.
fn acknowledging(
    rx: mpsc::Receiver<Pulled>,
    acks: Acks,
    client: Arc<tokio::sync::OnceCell<async_nats::Client>>,
) -> RawBatchStream {
    struct State {
        rx: mpsc::Receiver<Pulled>,
        held: Vec<Subject>,
        acks: Acks,
        client: Arc<tokio::sync::OnceCell<async_nats::Client>>,
    }
    let state = State {
        rx,
        held: Vec::new(),
        acks,
        client,
    };
    futures::stream::unfold(state, |mut s| async move {
        // The scan asked for more (or for the end): the batch it was given before is done
        // with.
        if !s.held.is_empty()
            && let Err(e) = send_acks(s.client.get(), std::mem::take(&mut s.held)).await
        {
            return Some((Err(e), s));
        }
        let item = s.rx.recv().await?;
        let item = item.map(|(batch, replies)| {
            match &s.acks {
                Acks::OnNextBatch => s.held = replies,
                Acks::Deferred(deferred) => {
                    let client = s.client.get().cloned();
                    deferred.push(
                        replies.len() as u64,
                        Box::new(move || Box::pin(send_acks_owned(client, replies))),
                    );
                }
            }
            batch
        });
        Some((item, s))
    })
    .boxed()
}

async fn send_acks(client: Option<&async_nats::Client>, replies: Vec<Subject>) -> Result<()> {
    send_acks_owned(client.cloned(), replies).await
}

/// Acknowledges messages by publishing `+ACK` to their reply subjects.
async fn send_acks_owned(client: Option<async_nats::Client>, replies: Vec<Subject>) -> Result<()> {
    let Some(client) = client else {
        return Ok(());
    };
    let failed = |e: &dyn std::fmt::Display| TopicsError::Client {
        kind: "nats",
        action: format!("acknowledging {} work-queue messages", replies.len()),
        detail: e.to_string(),
    };
    for reply in &replies {
        client
            .publish(reply.clone(), bytes::Bytes::from_static(b"+ACK"))
            .await
            .map_err(|e| failed(&e))?;
    }
    client.flush().await.map_err(|e| failed(&e))
}
