//! An in-memory topic: partitions of messages in offset order, readable by ranges like a
//! broker's log (with retention by [`MemoryTopic::delete_before`]) and writable like one.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Notify;

use crate::error::{Result, TopicsError};
use crate::sink::{MessageWriter, OutgoingMessage, Recovery};
use crate::source::{
    LogSource, OffsetRange, RawBatchBuilder, RawBatchStream, ReadRequest, RunningGuard, Watermarks,
};

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemoryMessage {
    /// Create time in milliseconds since the epoch.
    pub timestamp: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (None: a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// A subject, for tables that declare `_subject`.
    pub subject: Option<String>,
}

impl MemoryMessage {
    /// Appends this message, stored at `offset`, to a raw batch being built.
    pub(super) fn append_to(&self, builder: &mut RawBatchBuilder, offset: i64) {
        builder.append(
            offset,
            Some(self.timestamp),
            self.key.as_deref(),
            self.value.as_deref(),
            || {
                self.headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
            },
        );
        if let Some(subject) = &self.subject {
            builder.append_subject(subject);
        }
    }

    /// A message with only a value, stamped `timestamp`.
    pub fn value(value: impl Into<Vec<u8>>, timestamp: i64) -> Self {
        Self {
            timestamp,
            value: Some(value.into()),
            ..Default::default()
        }
    }
}

#[derive(Debug, Default)]
struct Partition {
    /// Offset of `messages[0]` (the low watermark).
    first: i64,
    messages: VecDeque<MemoryMessage>,
}

impl Partition {
    fn high(&self) -> i64 {
        self.first + self.messages.len() as i64
    }
}

/// A topic held in this process: a log source and a message writer at once, so broker-free
/// tests can run scans, INSERTs and continuous queries (with exactly-once sinks) over it.
/// Cloning gives another handle to the same topic.
#[derive(Clone)]
pub struct MemoryTopic {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// Partitions may be added (to exercise discovery), never removed.
    partitions: std::sync::RwLock<Vec<Arc<Mutex<Partition>>>>,
    appended: Notify,
    /// Set once the topic is deleted (`delete_memory_topic`): metadata calls then fail.
    deleted: std::sync::atomic::AtomicBool,
    /// Writes left before writing fails (negative: never), to simulate a crash mid-batch.
    #[cfg(test)]
    write_budget: std::sync::atomic::AtomicI64,
}

impl fmt::Debug for MemoryTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTopic")
            .field("name", &self.inner.name)
            .field("partitions", &self.inner.count())
            .finish()
    }
}

impl fmt::Display for MemoryTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mem:///{}", self.inner.name)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A partition, locked.
struct Locked(Arc<Mutex<Partition>>);

impl Locked {
    fn lock(&self) -> std::sync::MutexGuard<'_, Partition> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn partition(&self, p: i32) -> Result<Locked> {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(p)
            .ok()
            .and_then(|i| partitions.get(i))
            .map(|m| Locked(Arc::clone(m)))
            .ok_or_else(|| TopicsError::Client {
                kind: "memory",
                action: format!("reading topic '{}'", self.name),
                detail: format!("no partition {p} (it has {})", partitions.len()),
            })
    }

    fn count(&self) -> usize {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl MemoryTopic {
    /// An empty topic with `partitions` partitions (at least one).
    pub fn new(name: impl Into<String>, partitions: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                partitions: std::sync::RwLock::new(
                    (0..partitions.max(1)).map(|_| Arc::default()).collect(),
                ),
                appended: Notify::new(),
                deleted: std::sync::atomic::AtomicBool::new(false),
                #[cfg(test)]
                write_budget: std::sync::atomic::AtomicI64::new(-1),
            }),
        }
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many partitions it has.
    pub fn partition_count(&self) -> usize {
        self.inner.count()
    }

    /// Marks the topic deleted: metadata calls fail as for a missing topic (its readers are
    /// not interrupted, as a broker's would not be at once).
    pub(super) fn mark_deleted(&self) {
        self.inner
            .deleted
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Adds partitions until there are `count` (as Kafka's CreatePartitions does).
    pub fn add_partitions(&self, count: usize) {
        let mut partitions = self
            .inner
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        while partitions.len() < count {
            partitions.push(Arc::default());
        }
        drop(partitions);
        self.inner.appended.notify_waiters();
    }

    /// Appends `message` to `partition`; returns its offset.
    pub fn append(&self, partition: i32, message: MemoryMessage) -> Result<i64> {
        let offset = {
            let locked = self.inner.partition(partition)?;
            let mut p = locked.lock();
            p.messages.push_back(message);
            p.high() - 1
        };
        self.inner.appended.notify_waiters();
        Ok(offset)
    }

    /// Removes the messages of `partition` below `offset`, as retention would.
    pub fn delete_before(&self, partition: i32, offset: i64) -> Result<()> {
        let locked = self.inner.partition(partition)?;
        let mut p = locked.lock();
        let to = offset.min(p.high());
        while p.first < to {
            p.messages.pop_front();
            p.first += 1;
        }
        Ok(())
    }

    /// Copies the messages of `partition` in `[start, end)` (clamped to what it holds).
    pub fn messages(
        &self,
        partition: i32,
        start: i64,
        end: i64,
    ) -> Result<Vec<(i64, MemoryMessage)>> {
        let locked = self.inner.partition(partition)?;
        let p = locked.lock();
        let from = start.max(p.first);
        let to = end.min(p.high());
        Ok((from..to)
            .map(|o| (o, p.messages[(o - p.first) as usize].clone()))
            .collect())
    }

    /// Makes writes fail after `messages` more messages (negative: never fail), as if the
    /// writer died mid-batch.
    #[cfg(test)]
    pub(crate) fn fail_writes_after(&self, messages: i64) {
        self.inner
            .write_budget
            .store(messages, std::sync::atomic::Ordering::SeqCst);
    }

    fn marks(&self, partition: i32) -> Result<Watermarks> {
        let locked = self.inner.partition(partition)?;
        let p = locked.lock();
        Ok(Watermarks {
            low: p.first,
            high: p.high(),
        })
    }
}

#[async_trait]
impl LogSource for MemoryTopic {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn topic(&self) -> &str {
        &self.inner.name
    }

    async fn partitions(&self) -> Result<Vec<i32>> {
        if self.inner.deleted.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(TopicsError::UnknownTopic {
                kind: "memory",
                topic: self.inner.name.clone(),
                brokers: "this process".into(),
            });
        }
        Ok((0..self.inner.count() as i32).collect())
    }

    async fn watermarks(&self, partitions: &[i32]) -> Result<Vec<Watermarks>> {
        partitions.iter().map(|p| self.marks(*p)).collect()
    }

    async fn offsets_for_timestamp(
        &self,
        partitions: &[i32],
        timestamp_ms: i64,
    ) -> Result<Vec<i64>> {
        partitions
            .iter()
            .map(|&p| {
                let locked = self.inner.partition(p)?;
                let part = locked.lock();
                Ok(part
                    .messages
                    .iter()
                    .position(|m| m.timestamp >= timestamp_ms)
                    .map_or(part.high(), |i| part.first + i as i64))
            })
            .collect()
    }

    fn read(&self, partition: i32, range: OffsetRange, request: ReadRequest) -> RawBatchStream {
        let reader = MemoryReader {
            topic: self.clone(),
            partition,
            next: range.start,
            end: range.end,
            request,
            remaining: request.max_messages.unwrap_or(u64::MAX),
            _guard: RunningGuard::start(&self.inner.name),
        };
        futures::stream::unfold(reader, |mut reader| async move {
            let item = reader.next_batch().await?;
            Some((item, reader))
        })
        .boxed()
    }
}

/// One partition read in progress.
struct MemoryReader {
    topic: MemoryTopic,
    partition: i32,
    next: i64,
    end: Option<i64>,
    request: ReadRequest,
    remaining: u64,
    _guard: RunningGuard,
}

impl MemoryReader {
    fn done(&self) -> bool {
        self.remaining == 0 || self.end.is_some_and(|end| self.next >= end)
    }

    /// The next batch, waiting for messages on an open range; `None` once the range ended.
    async fn next_batch(&mut self) -> Option<Result<crate::source::RawBatch>> {
        loop {
            if self.done() {
                return None;
            }
            let notified = self.topic.inner.appended.notified();
            let mut builder = RawBatchBuilder::new(
                self.partition,
                self.request.needs,
                self.request.batch_rows.max(1),
            );
            {
                let locked = match self.topic.inner.partition(self.partition) {
                    Ok(p) => p,
                    Err(e) => {
                        self.remaining = 0;
                        return Some(Err(e));
                    }
                };
                let p = locked.lock();
                if self.next < p.first {
                    if self.request.fail_on_data_loss {
                        self.remaining = 0;
                        return Some(Err(TopicsError::DataLoss {
                            topic: self.topic.inner.name.clone(),
                            partition: self.partition,
                            offset: self.next,
                            detail: format!("offsets [{}, {}) were removed", self.next, p.first),
                        }));
                    }
                    builder.skip((p.first - self.next) as u64);
                    self.next = p.first;
                }
                let stop = self.end.unwrap_or(i64::MAX).min(p.high());
                while self.next < stop && !builder.is_full() && self.remaining > 0 {
                    p.messages[(self.next - p.first) as usize].append_to(&mut builder, self.next);
                    self.next += 1;
                    self.remaining -= 1;
                }
                // A closed range never ends beyond what the partition held when it was
                // planned, so an end beyond the high watermark is a range over offsets
                // that were never written: it ends where the partition ends.
                if self.end.is_some_and(|end| end > p.high()) && self.next >= p.high() {
                    self.end = Some(self.next);
                }
            }
            if builder.has_news() {
                return Some(Ok(builder.finish()));
            }
            if self.done() {
                return None;
            }
            // Open range, caught up: wait for an append (or look again shortly).
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
}

#[async_trait]
impl MessageWriter for MemoryTopic {
    fn target(&self) -> String {
        format!("memory topic '{}'", self.inner.name)
    }

    fn identity_header(&self) -> &'static str {
        crate::sink::IDENTITY_HEADER
    }

    fn recovery(&self) -> Recovery {
        Recovery::Positional
    }

    fn for_batches(&self) -> Arc<dyn MessageWriter> {
        Arc::new(self.clone())
    }

    async fn write(&self, messages: &[OutgoingMessage]) -> Result<u64> {
        let count = self.inner.count() as u128;
        for m in messages {
            #[cfg(test)]
            {
                use std::sync::atomic::Ordering;
                let left = self.inner.write_budget.load(Ordering::SeqCst);
                if left == 0 {
                    return Err(TopicsError::Sink {
                        target: self.target(),
                        detail: "writes fail (simulated crash)".into(),
                    });
                }
                if left > 0 {
                    self.inner.write_budget.store(left - 1, Ordering::SeqCst);
                }
            }
            let partition = match (m.partition, &m.key) {
                (Some(p), _) => p,
                (None, Some(key)) => (crate::sink::identity::fnv1a_128(&[key]) % count) as i32,
                (None, None) => 0,
            };
            self.append(
                partition,
                MemoryMessage {
                    timestamp: m.timestamp.unwrap_or_else(now_ms),
                    key: m.key.clone(),
                    value: m.value.clone(),
                    headers: m.headers.clone(),
                    subject: m.subject.clone(),
                },
            )?;
        }
        Ok(messages.len() as u64)
    }
}
