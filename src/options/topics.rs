//! Which topics a table reads beyond its location (a pattern), how a live scan discovers
//! partitions and topics that appear after it was planned, and how bounded scans split big
//! partitions over several output partitions.

use std::time::Duration;

use regex::Regex;

use super::bag::OptionBag;
use super::decl::OptionDecl;
use super::values::{parse_count, parse_duration_allow_zero};
use crate::error::{Result, TopicsError};

/// `topic.pattern`
pub const PATTERN: OptionDecl = OptionDecl {
    key: "topic.pattern",
    values: "regular expression the whole topic (stream) name must match, such as orders-.*",
    default: "",
    doc: "Reads every topic whose name matches instead of the topics in LOCATION (which then names none: kafka:/// or kafka://host:port/). Live scans and continuous queries take in matching topics created later (from their earliest offset); `_topic` says which topic a row came from.",
};
/// `scan.discovery.interval`
pub const DISCOVERY_INTERVAL: OptionDecl = OptionDecl {
    key: "scan.discovery.interval",
    values: "duration such as 5s, 30s; 0s turns discovery off",
    default: "10s",
    doc: "How often an unbounded (live) scan asks the brokers for partitions added to its topics and, with topic.pattern, for new matching topics; they are read from their earliest offset. 10 s: one metadata request per table per interval costs nothing next to the reads, and a partition added by an operator shows up within seconds. Continuous queries look at every batch whatever this says.",
};
/// `scan.discovery.spare-streams`
pub const SPARE_STREAMS: OptionDecl = OptionDecl {
    key: "scan.discovery.spare-streams",
    values: "0 to 256",
    default: "4",
    doc: "Output partitions an unbounded scan keeps idle for discovered partitions: one partition each, then shared. Such a scan declares no `_offset` order (an ordered merge would wait for the idle spares). A table declaring WITH ORDER gets none: a partition that appears under its live scan fails the scan with a message, since joining an ordered stream would break the order. 0: every discovered partition fails the scan.",
};
/// `scan.discovery.on-deleted`
pub const ON_DELETED: OptionDecl = OptionDecl {
    key: "scan.discovery.on-deleted",
    values: "fail | end",
    default: "fail",
    doc: "A topic or partition deleted under a live scan: fail the query naming it, or end that partition's stream (the others go on).",
};
/// `scan.split.max-messages`
pub const SPLIT_MAX_MESSAGES: OptionDecl = OptionDecl {
    key: "scan.split.max-messages",
    values: "number of messages",
    default: "unset (no split)",
    doc: "Bounded scans (and continuous-query batches) read a partition's range in pieces of at most this many offsets, each its own output partition, so a backfill of a one-partition topic uses every core (Trino's messages per split). Split output partitions do not declare `_offset` order across pieces.",
};
/// `scan.split.min-partitions`
pub const SPLIT_MIN_PARTITIONS: OptionDecl = OptionDecl {
    key: "scan.split.min-partitions",
    values: "number, or auto (the session's target partitions)",
    default: "unset (no split)",
    doc: "Bounded scans split the biggest ranges until there are at least this many output partitions (Spark's minPartitions); pieces hold at least 10000 offsets.",
};

/// The default of `scan.discovery.interval`.
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);
/// The default of `scan.discovery.spare-streams`.
pub const DEFAULT_SPARE_STREAMS: usize = 4;
/// The smallest piece `scan.split.min-partitions` cuts.
pub const MIN_SPLIT_MESSAGES: u64 = 10_000;

/// What a live scan does when a topic or partition it reads is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDeleted {
    /// Fail the query, naming the topic and partition.
    #[default]
    Fail,
    /// End that partition's stream; the others go on.
    End,
}

/// How many output partitions a bounded scan should have (`scan.split.min-partitions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinPartitions {
    /// This many.
    Count(usize),
    /// The session's target partitions (its CPU count unless configured).
    Auto,
}

/// A table's topic pattern, discovery and split settings.
#[derive(Debug, Clone)]
pub struct TopicOptions {
    /// `topic.pattern`, anchored.
    pub pattern: Option<Regex>,
    /// `scan.discovery.interval` (`None`: off).
    pub discovery_interval: Option<Duration>,
    /// `scan.discovery.spare-streams`.
    pub spare_streams: usize,
    /// `scan.discovery.on-deleted`.
    pub on_deleted: OnDeleted,
    /// `scan.split.max-messages`.
    pub split_max_messages: Option<u64>,
    /// `scan.split.min-partitions`.
    pub split_min_partitions: Option<MinPartitions>,
}

impl Default for TopicOptions {
    fn default() -> Self {
        Self {
            pattern: None,
            discovery_interval: Some(DEFAULT_DISCOVERY_INTERVAL),
            spare_streams: DEFAULT_SPARE_STREAMS,
            on_deleted: OnDeleted::Fail,
            split_max_messages: None,
            split_min_partitions: None,
        }
    }
}

impl TopicOptions {
    /// Takes this file's options from `bag`.
    pub fn parse(bag: &mut OptionBag) -> Result<Self> {
        let mut out = Self::default();
        if let Some(p) = bag.take(&PATTERN) {
            out.pattern = Some(crate::source::parse_topic_pattern(p.trim())?);
        }
        if let Some(d) = bag.take_with(&DISCOVERY_INTERVAL, parse_duration_allow_zero)? {
            out.discovery_interval = (!d.is_zero()).then_some(d);
        }
        if let Some(n) = bag.take_with(&SPARE_STREAMS, |k, v| {
            if v.trim() == "0" {
                Ok(0)
            } else {
                parse_count(k, v, 256)
            }
        })? {
            out.spare_streams = n as usize;
        }
        if let Some(v) = bag.take(&ON_DELETED) {
            out.on_deleted = match v.trim().to_ascii_lowercase().as_str() {
                "fail" => OnDeleted::Fail,
                "end" => OnDeleted::End,
                _ => {
                    return Err(TopicsError::invalid_option(
                        ON_DELETED.key,
                        &v,
                        "expected fail or end",
                    ));
                }
            };
        }
        if let Some(n) = bag.take_with(&SPLIT_MAX_MESSAGES, |k, v| parse_count(k, v, i32::MAX))? {
            out.split_max_messages = Some(n as u64);
        }
        if let Some(v) = bag.take(&SPLIT_MIN_PARTITIONS) {
            out.split_min_partitions = Some(if v.trim().eq_ignore_ascii_case("auto") {
                MinPartitions::Auto
            } else {
                MinPartitions::Count(parse_count(SPLIT_MIN_PARTITIONS.key, &v, 4096)? as usize)
            });
        }
        Ok(out)
    }
}
