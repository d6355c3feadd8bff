//! Event time and watermarks, declared per table: which column holds event time, how late an
//! event may be, and when a silent partition stops holding the watermark back.

use std::time::Duration;

use super::bag::OptionBag;
use super::decl::OptionDecl;
use super::values::{non_empty, parse_duration, parse_duration_allow_zero};
use crate::error::Result;

/// `watermark.column`
pub const COLUMN: OptionDecl = OptionDecl {
    key: "watermark.column",
    values: "_timestamp or a TIMESTAMP value column",
    default: "_timestamp when another watermark option is given",
    doc: "The event-time column. Declaring it gives the table a watermark: per partition the latest event time seen minus watermark.delay; the table's watermark is the minimum over partitions that are not idle, and never goes back. Windows close when it passes their end; rows older than it are late.",
};
/// `watermark.delay`
pub const DELAY: OptionDecl = OptionDecl {
    key: "watermark.delay",
    values: "duration such as 0s, 10s, 2m",
    default: "0s",
    doc: "How far out of order events may arrive within a partition (Flink's out-of-orderness, Spark's delay threshold).",
};
/// `watermark.idle-timeout`
pub const IDLE_TIMEOUT: OptionDecl = OptionDecl {
    key: "watermark.idle-timeout",
    values: "duration such as 5s, 1m",
    default: "30s",
    doc: "A partition that received nothing for this long (and so has caught up with its high watermark) stops holding the table's watermark back, so windows close while some partitions are silent.",
};
/// `watermark.late-topic`
pub const LATE_TOPIC: OptionDecl = OptionDecl {
    key: "watermark.late-topic",
    values: "topic (Kafka), subject (NATS) or topic (memory) on the same brokers",
    default: "",
    doc: "Where late rows go, as the original messages with headers late.topic, late.partition, late.offset, late.event-time and late.watermark. Without it late rows are counted (late_rows) and dropped.",
};

/// The default of `watermark.idle-timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A table's event time and watermark settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// The event-time column (`_timestamp` or a value column).
    pub column: String,
    /// Allowed out-of-orderness.
    pub delay: Duration,
    /// Silence after which a partition no longer holds the watermark back.
    pub idle_timeout: Duration,
    /// Where late rows are produced, if anywhere.
    pub late_topic: Option<String>,
}

impl WatermarkSpec {
    /// Takes the watermark options from `bag`; `None` when none is given.
    pub fn parse(bag: &mut OptionBag) -> Result<Option<Self>> {
        let column = bag.take_with(&COLUMN, non_empty)?;
        let delay = bag.take_with(&DELAY, parse_duration_allow_zero)?;
        let idle = bag.take_with(&IDLE_TIMEOUT, parse_duration)?;
        let late = bag.take_with(&LATE_TOPIC, non_empty)?;
        if column.is_none() && delay.is_none() && idle.is_none() && late.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            column: column.map_or_else(|| "_timestamp".to_string(), |c| c.trim().to_string()),
            delay: delay.unwrap_or_default(),
            idle_timeout: idle.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            late_topic: late.map(|t| t.trim().to_string()),
        }))
    }

    /// The delay in milliseconds.
    pub fn delay_ms(&self) -> i64 {
        self.delay.as_millis() as i64
    }
}
