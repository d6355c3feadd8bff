//! How far the bounded scans running in this process have read: the shell draws a progress
//! bar from it during long scans. Each output partition of a bounded log scan holds a
//! [`ScanProgressGuard`] that adds its planned offsets and what it has read to process-wide
//! totals. A partition that finishes early leaves its share in them, so the totals describe
//! the whole query; they return to zero when the last running scan ends.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

static STREAMS: AtomicU64 = AtomicU64::new(0);
static READ: AtomicU64 = AtomicU64::new(0);
static TOTAL: AtomicU64 = AtomicU64::new(0);

/// The bounded scans running now, together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanProgress {
    /// Partition streams reading a bounded range.
    pub streams: u64,
    /// Offsets they have read (messages, and offsets skipped over).
    pub read: u64,
    /// Offsets they planned to read.
    pub total: u64,
}

/// What to do, synchronously, the moment the last running bounded scan ends.
static WHEN_DONE: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Runs `hook` whenever the last running bounded scan ends, before its query's result is
/// handed on: a progress display clears itself there, so it never mixes with the rows
/// printed next. Only the first hook registered in a process is kept.
pub fn when_scans_done(hook: impl Fn() + Send + Sync + 'static) {
    let _ = WHEN_DONE.set(Box::new(hook));
}

/// The bounded scans running in this process now.
pub fn scan_progress() -> ScanProgress {
    ScanProgress {
        streams: STREAMS.load(Ordering::Relaxed),
        read: READ.load(Ordering::Relaxed),
        total: TOTAL.load(Ordering::Relaxed),
    }
}

/// One bounded partition stream's share of [`scan_progress`], while it lives.
#[derive(Debug)]
pub(crate) struct ScanProgressGuard {
    total: u64,
    read: u64,
}

impl ScanProgressGuard {
    /// A stream that plans to read `total` offsets.
    pub(crate) fn start(total: u64) -> Self {
        STREAMS.fetch_add(1, Ordering::Relaxed);
        TOTAL.fetch_add(total, Ordering::Relaxed);
        Self { total, read: 0 }
    }

    /// The stream read `offsets` more offsets (never counted beyond its total).
    pub(crate) fn advance(&mut self, offsets: u64) {
        let n = offsets.min(self.total - self.read);
        self.read += n;
        READ.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for ScanProgressGuard {
    fn drop(&mut self) {
        if STREAMS.fetch_sub(1, Ordering::Relaxed) == 1 {
            READ.store(0, Ordering::Relaxed);
            TOTAL.store(0, Ordering::Relaxed);
            if let Some(hook) = WHEN_DONE.get() {
                hook();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_add_their_share_capped_at_their_total() {
        // Other tests in this process may scan at the same time: look at the guards only.
        let mut a = ScanProgressGuard::start(100);
        let mut b = ScanProgressGuard::start(50);
        a.advance(30);
        b.advance(80);
        assert_eq!((a.read, b.read), (30, 50));
        assert!(scan_progress().streams >= 2);
    }
}
