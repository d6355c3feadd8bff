//! An in-memory work queue over one partition of a [`MemoryTopic`]: readers share one cursor,
//! each message goes to one reader and counts as done once acknowledged; unacknowledged
//! messages return to the queue when their ack wait passes (at-least-once).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;

use super::topic::MemoryTopic;
use crate::error::Result;
use crate::source::{
    LogSource, QueueRead, QueueSource, RawBatch, RawBatchBuilder, RawBatchStream, ReadRequest,
};

#[derive(Debug, Default)]
struct Cursor {
    /// Next offset never delivered.
    next: i64,
    /// Delivered, not yet acknowledged: offset → redelivery deadline.
    in_flight: BTreeMap<i64, Instant>,
    /// Acknowledged offsets not yet passed by `next` in order (kept small).
    acked: BTreeSet<i64>,
    /// Offsets to deliver again (their ack wait passed).
    redeliver: VecDeque<i64>,
}

/// A work queue over partition 0 of a memory topic, with `readers` parallel readers.
#[derive(Clone)]
pub struct MemoryQueue {
    topic: MemoryTopic,
    cursor_name: String,
    readers: u32,
    ack_wait: Duration,
    cursor: Arc<Mutex<Cursor>>,
}

impl fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("topic", &self.topic.name())
            .field("readers", &self.readers)
            .finish()
    }
}

impl fmt::Display for MemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} work-queue={} readers={}",
            self.topic, self.cursor_name, self.readers
        )
    }
}

impl MemoryQueue {
    /// A queue over `topic` read by `readers` readers; messages not acknowledged within
    /// `ack_wait` are delivered again.
    pub fn new(topic: MemoryTopic, readers: u32, ack_wait: Duration) -> Self {
        Self {
            cursor_name: format!("{}-queue", topic.name()),
            topic,
            readers: readers.max(1),
            ack_wait,
            cursor: Arc::default(),
        }
    }

    /// Takes up to `max` messages for one reader: redeliveries first, then new ones.
    fn take(&self, max: usize) -> Result<Vec<(i64, super::topic::MemoryMessage)>> {
        let high = self.topic.messages(0, 0, i64::MAX)?;
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let expired: Vec<i64> = cursor
            .in_flight
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(o, _)| *o)
            .collect();
        for o in expired {
            cursor.in_flight.remove(&o);
            cursor.redeliver.push_back(o);
        }
        let mut out = Vec::new();
        let by_offset: BTreeMap<i64, &super::topic::MemoryMessage> =
            high.iter().map(|(o, m)| (*o, m)).collect();
        while out.len() < max {
            let offset = match cursor.redeliver.pop_front() {
                Some(o) => o,
                None => {
                    let next = cursor.next.max(high.first().map_or(0, |(o, _)| *o));
                    if !by_offset.contains_key(&next) {
                        break;
                    }
                    cursor.next = next + 1;
                    next
                }
            };
            if let Some(m) = by_offset.get(&offset) {
                cursor.in_flight.insert(offset, now + self.ack_wait);
                out.push((offset, (*m).clone()));
            }
        }
        Ok(out)
    }

    fn acknowledge(cursor: &Mutex<Cursor>, offsets: &[i64]) {
        let mut cursor = cursor.lock().unwrap_or_else(|e| e.into_inner());
        for o in offsets {
            if cursor.in_flight.remove(o).is_some() {
                cursor.acked.insert(*o);
            }
        }
        let next = cursor.next;
        cursor.acked.retain(|o| *o >= next);
    }
}

#[async_trait]
impl QueueSource for MemoryQueue {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn topic(&self) -> &str {
        self.topic.name()
    }

    fn cursor(&self) -> &str {
        &self.cursor_name
    }

    async fn readers(&self) -> Result<Vec<i32>> {
        Ok((0..self.readers as i32).collect())
    }

    async fn pending(&self) -> Result<u64> {
        let marks = self.topic.watermarks(&[0]).await?;
        let cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let undelivered = (marks[0].high - cursor.next.max(marks[0].low)).max(0) as u64;
        Ok(undelivered + cursor.in_flight.len() as u64 + cursor.redeliver.len() as u64)
    }

    fn read(&self, reader: i32, read: QueueRead, request: ReadRequest) -> RawBatchStream {
        let queue = self.clone();
        let max = match (request.max_messages, read.max_messages) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let state = (queue, read, max.unwrap_or(u64::MAX), Vec::<i64>::new());
        futures::stream::unfold(state, move |(queue, read, remaining, unacked)| async move {
            // Batches handed on without deferral are acknowledged when the next is asked for.
            if read.acks.is_none() && !unacked.is_empty() {
                MemoryQueue::acknowledge(&queue.cursor, &unacked);
            }
            let mut remaining = remaining;
            loop {
                if remaining == 0 {
                    return None;
                }
                let want = (request.batch_rows.max(1) as u64).min(remaining) as usize;
                let taken = match queue.take(want) {
                    Ok(t) => t,
                    Err(e) => return Some((Err(e), (queue, read, 0, Vec::new()))),
                };
                if taken.is_empty() {
                    if read.drain {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                remaining -= taken.len() as u64;
                let batch = build(reader, &taken, request);
                let offsets: Vec<i64> = taken.iter().map(|(o, _)| *o).collect();
                if let Some(deferred) = &read.acks {
                    let cursor = Arc::clone(&queue.cursor);
                    let acked = offsets.clone();
                    deferred.push(
                        offsets.len() as u64,
                        Box::new(move || {
                            Box::pin(async move {
                                MemoryQueue::acknowledge(&cursor, &acked);
                                Ok(())
                            })
                        }),
                    );
                    return Some((Ok(batch), (queue, read, remaining, Vec::new())));
                }
                return Some((Ok(batch), (queue, read, remaining, offsets)));
            }
        })
        .boxed()
    }
}

/// A raw batch of queue messages for `reader` (offsets are the topic's, so `_offset` tells
/// which message it was).
fn build(
    reader: i32,
    taken: &[(i64, super::topic::MemoryMessage)],
    request: ReadRequest,
) -> RawBatch {
    let mut builder = RawBatchBuilder::new(reader, request.needs, taken.len().max(1));
    for (offset, m) in taken {
        m.append_to(&mut builder, *offset);
    }
    builder.finish()
}
