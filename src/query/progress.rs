//! What one micro-batch did, for progress lines and callers of the library API.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::checkpoint::SourceRanges;

/// What one batch did.
#[derive(Debug, Clone)]
pub struct BatchProgress {
    /// Batch number.
    pub batch: u64,
    /// True when this was the replay of a batch an earlier run did not commit.
    pub replayed: bool,
    /// The ranges read, per source table.
    pub sources: BTreeMap<String, SourceRanges>,
    /// Rows written to the sink (including those an earlier attempt already wrote).
    pub rows: u64,
    /// Rows an interrupted earlier attempt had already written.
    pub already_written: u64,
    /// Offsets still behind the high watermarks when the batch was planned (for work queues,
    /// the messages pending).
    pub lag: i64,
    /// Messages each work-queue table delivered to the batch (acknowledged after its commit).
    pub queue_reads: BTreeMap<String, u64>,
    /// Time the batch took.
    pub elapsed: Duration,
}

impl fmt::Display for BatchProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch {}", self.batch)?;
        if self.replayed {
            f.write_str(" (replay)")?;
        }
        for (table, s) in &self.sources {
            if let Some(q) = &s.work_queue {
                let read = self.queue_reads.get(table).copied().unwrap_or(0);
                write!(f, " {table}[queue {}: {read} read]", q.consumer)?;
                continue;
            }
            write!(f, " {table}[")?;
            for (i, (p, r)) in s.partitions.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{p}:[{},{})", r.start, r.end_or_max())?;
            }
            f.write_str("]")?;
        }
        write!(f, " rows={}", self.rows)?;
        if self.already_written > 0 {
            write!(f, " already_written={}", self.already_written)?;
        }
        write!(f, " lag={} in {:?}", self.lag, self.elapsed)
    }
}
