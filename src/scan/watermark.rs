//! Event-time bookkeeping of one scan: the latest event time seen per partition, late rows,
//! and (for live queries) the watermark those imply as the scan runs.
//!
//! A partition's watermark is the latest event time it delivered minus the table's delay; the
//! table's watermark is the minimum over partitions that are not idle (a partition is idle once
//! it delivered no row for the idle timeout: it has caught up with its log), and never goes
//! back. When every partition is idle, the latest event time of all minus the delay is the
//! watermark, so the last windows close once the data stops.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::options::WatermarkSpec;
use crate::source::TopicPartition;

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    /// Latest event time delivered (ms), if any.
    max: Option<i64>,
    /// When the partition last delivered a row (or the scan opened it).
    last_rows: Instant,
}

#[derive(Debug, Default)]
struct TrackerState {
    partitions: BTreeMap<TopicPartition, PartitionClock>,
    watermark: Option<i64>,
    late: u64,
}

/// What a scan learns about event time, shared with whoever watches its watermark.
#[derive(Debug)]
pub struct EventTimeTracker {
    spec: WatermarkSpec,
    /// Rows older than this are late (a micro-batch: the watermark its predecessor left).
    fixed_late_before: Option<i64>,
    /// Late rows are those older than the live watermark (a live query).
    live: bool,
    state: Mutex<TrackerState>,
    advanced: Notify,
}

impl EventTimeTracker {
    /// A tracker for one micro-batch: rows older than `late_before` are late.
    pub fn for_batch(spec: WatermarkSpec, late_before: Option<i64>) -> Self {
        Self {
            spec,
            fixed_late_before: late_before,
            live: false,
            state: Mutex::default(),
            advanced: Notify::new(),
        }
    }

    /// A tracker for a live scan: rows older than the live watermark are late.
    pub fn live(spec: WatermarkSpec) -> Self {
        Self {
            spec,
            fixed_late_before: None,
            live: true,
            state: Mutex::default(),
            advanced: Notify::new(),
        }
    }

    /// The table's watermark settings.
    pub fn spec(&self) -> &WatermarkSpec {
        &self.spec
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `partition` among the scan's partitions from now on (silent ones included).
    pub(crate) fn register(&self, partition: &TopicPartition) {
        self.lock()
            .partitions
            .entry(partition.clone())
            .or_insert(PartitionClock {
                max: None,
                last_rows: Instant::now(),
            });
    }

    /// The bound below which a row is late now.
    pub(crate) fn late_before(&self) -> Option<i64> {
        if self.live {
            self.watermark_now()
        } else {
            self.fixed_late_before
        }
    }

    /// Records that `partition` delivered `rows` rows whose latest event time is `max`, and
    /// `late` of them were late.
    pub(crate) fn observe(
        &self,
        partition: &TopicPartition,
        rows: usize,
        max: Option<i64>,
        late: usize,
    ) {
        {
            let mut state = self.lock();
            state.late += late as u64;
            let clock = state
                .partitions
                .entry(partition.clone())
                .or_insert(PartitionClock {
                    max: None,
                    last_rows: Instant::now(),
                });
            if rows > 0 {
                clock.last_rows = Instant::now();
            }
            if let Some(m) = max {
                clock.max = Some(clock.max.map_or(m, |c| c.max(m)));
            }
        }
        self.advanced.notify_waiters();
    }

    /// The latest event time each partition delivered.
    pub fn partition_maxima(&self) -> BTreeMap<TopicPartition, i64> {
        self.lock()
            .partitions
            .iter()
            .filter_map(|(p, c)| c.max.map(|m| (p.clone(), m)))
            .collect()
    }

    /// Rows found late so far.
    pub fn late_rows(&self) -> u64 {
        self.lock().late
    }

    /// The watermark now (live scans): see the module docs. `None` until every partition that
    /// is not idle delivered an event time.
    pub fn watermark_now(&self) -> Option<i64> {
        let mut state = self.lock();
        let delay = self.spec.delay_ms();
        let idle_after = self.spec.idle_timeout;
        let active: Vec<&PartitionClock> = state
            .partitions
            .values()
            .filter(|c| c.last_rows.elapsed() < idle_after)
            .collect();
        let candidate = if active.is_empty() {
            state
                .partitions
                .values()
                .filter_map(|c| c.max)
                .max()
                .map(|m| m - delay)
        } else if active.iter().all(|c| c.max.is_some()) {
            active.iter().filter_map(|c| c.max).min().map(|m| m - delay)
        } else {
            None
        };
        if let Some(c) = candidate {
            state.watermark = Some(state.watermark.map_or(c, |w| w.max(c)));
        }
        state.watermark
    }

    /// Waits until a partition delivers rows or `timeout` passes (live window operators wake
    /// on either to look at the watermark again).
    pub async fn wait_for_progress(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.advanced.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(delay_ms: u64, idle_ms: u64) -> WatermarkSpec {
        WatermarkSpec {
            column: "_timestamp".into(),
            delay: Duration::from_millis(delay_ms),
            idle_timeout: Duration::from_millis(idle_ms),
            late_topic: None,
        }
    }

    #[test]
    fn the_slowest_active_partition_holds_the_watermark_until_it_idles() {
        let t = EventTimeTracker::live(spec(1_000, 100));
        let (p0, p1) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        t.register(&p0);
        t.register(&p1);
        t.observe(&p0, 5, Some(60_000), 0);
        // Partition 1 has delivered nothing yet: no watermark.
        assert_eq!(t.watermark_now(), None);
        t.observe(&p1, 2, Some(30_000), 0);
        assert_eq!(t.watermark_now(), Some(29_000));
        t.observe(&p1, 2, Some(10_000), 0);
        assert_eq!(t.watermark_now(), Some(29_000), "never goes back");
        // Partition 1 falls silent: after the idle timeout only partition 0 counts.
        std::thread::sleep(Duration::from_millis(150));
        t.observe(&p0, 1, Some(61_000), 0);
        assert_eq!(t.watermark_now(), Some(60_000));
        // Everything silent: the latest event time of all, minus the delay.
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(t.watermark_now(), Some(60_000));
        assert_eq!(t.partition_maxima(), [(p0, 61_000), (p1, 30_000)].into());
    }
}
