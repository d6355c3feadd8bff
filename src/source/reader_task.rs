//! Plumbing shared by partition readers: the channel a reader task feeds, the stream the scan
//! polls, and a per-topic gauge of running readers.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::source::{RawBatch, RawBatchStream};

/// Partition readers currently running in this process, per topic (or stream).
static RUNNING: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// Number of partition readers of `topic` (each holding a broker consumer) running in this
/// process, for monitoring and leak checks: it drops back once scans finish or are dropped.
pub fn running_readers(topic: &str) -> usize {
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(topic)
        .copied()
        .unwrap_or(0)
}

/// Counts a running reader until dropped, however the reader ends.
pub(crate) struct RunningGuard(String);

impl RunningGuard {
    /// Counts one more reader of `topic`.
    pub(crate) fn start(topic: &str) -> Self {
        *RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(topic.to_string())
            .or_default() += 1;
        Self(topic.to_string())
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.0);
            }
        }
    }
}

/// The channel a reader sends batches through: small, so a slow scan holds the reader back.
#[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
pub(crate) fn batch_channel() -> (
    mpsc::Sender<Result<RawBatch>>,
    mpsc::Receiver<Result<RawBatch>>,
) {
    mpsc::channel(2)
}

/// The scan side of [`batch_channel`]; dropping it closes the channel and stops the reader.
#[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
pub(crate) fn receiver_stream(rx: mpsc::Receiver<Result<RawBatch>>) -> RawBatchStream {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}
