//! Acknowledgements of work-queue reads: sent by the reader once used, or deferred until the
//! continuous-query batch that read the messages is committed.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;

use crate::error::Result;

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

/// How one queue reader reads.
#[derive(Debug, Clone, Default)]
pub struct QueueRead {
    /// Stop once the queue has nothing pending (a bounded read); otherwise follow it.
    pub drain: bool,
    /// Stop after this many messages.
    pub max_messages: Option<u64>,
    /// Where acknowledgements go: kept here for the caller to send after its commit, or
    /// (`None`) sent by the reader once the scan asks for the next batch or ends.
    pub acks: Option<Arc<DeferredAcks>>,
}
