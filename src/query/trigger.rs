//! When a continuous query runs its next micro-batch.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::TopicsError;
use crate::options::parse_duration_allow_zero;

/// When micro-batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A batch every interval (at most; a batch that takes longer is followed at once). With
    /// nothing new, the runner waits and looks again.
    Interval(Duration),
    /// Process what exists when the run starts (in as many batches as the rate limits need),
    /// then stop: Spark's `availableNow`, `once` with rate limits honoured.
    AvailableNow,
}

impl FromStr for Trigger {
    type Err = TopicsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "once" | "available-now" | "availablenow" => Ok(Self::AvailableNow),
            other => parse_duration_allow_zero("trigger", other)
                .map(Self::Interval)
                .map_err(|_| TopicsError::InvalidOption {
                    key: "trigger".into(),
                    value: other.into(),
                    reason: "expected an interval such as 500ms, 10s, 1m, or once / available-now"
                        .into(),
                }),
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Interval(d) => write!(f, "every {d:?}"),
            Self::AvailableNow => f.write_str("available-now"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("once".parse::<Trigger>().unwrap(), Trigger::AvailableNow);
        assert_eq!(
            "500ms".parse::<Trigger>().unwrap(),
            Trigger::Interval(Duration::from_millis(500))
        );
        assert_eq!(
            "0s".parse::<Trigger>().unwrap(),
            Trigger::Interval(Duration::ZERO)
        );
        let err = "soon".parse::<Trigger>().unwrap_err().to_string();
        assert!(
            err.contains("'trigger'") && err.contains("available-now"),
            "{err}"
        );
    }
}
