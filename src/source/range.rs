//! The one representation of "a half-open range of offsets in one partition", used by
//! pushdown, scan planning, micro-batch planning, checkpoints and readers alike.

use std::fmt::{self, Display};

use serde::{Deserialize, Serialize};

/// A half-open range of offsets `[start, end)` in one partition; `end = None` follows the log.
///
/// Serialised as `{"start": 0, "end": 10}` (the checkpoint's format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OffsetRange {
    /// First offset to read.
    pub start: i64,
    /// Exclusive end, or `None` for an open (unbounded) range.
    pub end: Option<i64>,
}

impl OffsetRange {
    /// A closed range `[start, end)`.
    pub fn closed(start: i64, end: i64) -> Self {
        Self {
            start,
            end: Some(end),
        }
    }

    /// An open range `[start, ∞)`.
    pub fn open(start: i64) -> Self {
        Self { start, end: None }
    }

    /// True when the range is closed and holds no offset.
    pub fn is_empty(&self) -> bool {
        matches!(self.end, Some(end) if end <= self.start)
    }

    /// True when the range has an end.
    pub fn is_closed(&self) -> bool {
        self.end.is_some()
    }

    /// How many offsets a closed range spans (0 for an open one).
    pub fn len(&self) -> u64 {
        self.end.map_or(0, |end| (end - self.start).max(0) as u64)
    }

    /// The exclusive end, with an open range's as `i64::MAX`.
    pub fn end_or_max(&self) -> i64 {
        self.end.unwrap_or(i64::MAX)
    }
}

impl Display for OffsetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end {
            Some(end) => write!(f, "[{}, {})", self.start, end),
            None => write!(f, "[{}, ∞)", self.start),
        }
    }
}

/// What a partition holds: the first available offset and the next offset to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// First available offset (the low watermark).
    pub low: i64,
    /// Next offset to be written (the high watermark; for read-committed Kafka reads, the
    /// last stable offset).
    pub high: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_form_and_display() {
        let r = OffsetRange::closed(3, 10);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"start":3,"end":10}"#
        );
        assert_eq!(
            serde_json::from_str::<OffsetRange>(r#"{"start":3,"end":10}"#).unwrap(),
            r
        );
        assert_eq!(r.to_string(), "[3, 10)");
        assert_eq!(OffsetRange::open(4).to_string(), "[4, ∞)");
        assert_eq!(r.len(), 7);
        assert!(OffsetRange::closed(5, 5).is_empty());
        assert!(!OffsetRange::open(5).is_empty());
    }
}
