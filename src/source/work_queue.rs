//! Sources read through a shared, acknowledged cursor (a work queue) instead of by offset
//! ranges: several readers pull from one durable consumer, and every message is acknowledged
//! once whoever read it is done with it. Delivery is at-least-once: a message that is not
//! acknowledged in time goes back to the queue.
//!
//! A scan of a work-queue table has one output partition per reader. A closed range
//! ([`OffsetRange::drain`]) reads until the queue has nothing pending; an open range follows it.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::error::Result;
use crate::source::Source;

/// Sends the acknowledgements of some messages.
pub type AckSender = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;

/// Acknowledgements a work-queue read handed to its caller instead of sending them: a
/// continuous query sends them only after it committed the batch that read the messages.
#[derive(Default)]
pub struct DeferredAcks {
    pending: Mutex<Vec<AckSender>>,
    messages: AtomicU64,
}

impl fmt::Debug for DeferredAcks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredAcks")
            .field("messages", &self.messages())
            .finish()
    }
}

impl DeferredAcks {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the acknowledgement of `messages` messages for [`Self::send_all`].
    pub fn push(&self, messages: u64, send: AckSender) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(send);
    }

    /// How many messages wait for their acknowledgement.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Sends every kept acknowledgement; returns how many messages were acknowledged. After
    /// an error the rest are not sent, and the queue redelivers those messages.
    pub async fn send_all(&self) -> Result<u64> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for send in pending {
            send().await?;
        }
        Ok(self.messages.swap(0, Ordering::Relaxed))
    }
}

/// A source whose partitions are readers of one shared, acknowledged cursor.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// The name of the shared cursor (for NATS, the durable consumer).
    fn cursor(&self) -> &str;

    /// Messages not yet acknowledged: waiting for delivery, or delivered and waiting for
    /// their acknowledgement (they return to the queue when their ack wait passes).
    async fn pending(&self) -> Result<u64>;

    /// A copy of the source whose reads keep their acknowledgements in `acks` instead of
    /// sending them, and whose readers each stop after `max_messages` when set.
    fn deferring_acks(&self, acks: Arc<DeferredAcks>, max_messages: Option<u64>)
    -> Arc<dyn Source>;
}
