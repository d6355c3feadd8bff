//! The key of every per-partition figure: a partition of one topic. A table may read several
//! topics, so ranges, plans, EXPLAIN lines, metrics and checkpoint records are keyed by
//! (topic, partition), never by the partition number alone.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A partition of a topic (for NATS, of a stream). Ordered by topic, then partition.
///
/// Written as `topic/partition` (`orders/3`) in checkpoints and messages: neither Kafka topic
/// names nor NATS stream names may contain `/`, so the form is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic (or stream) the table's source reads.
    pub topic: Arc<str>,
    /// The partition id within the topic.
    pub partition: i32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

impl FromStr for TopicPartition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (topic, partition) = s
            .rsplit_once('/')
            .ok_or_else(|| format!("'{s}' is not topic/partition"))?;
        let partition = partition
            .parse()
            .map_err(|_| format!("'{s}': '{partition}' is not a partition number"))?;
        if topic.is_empty() {
            return Err(format!("'{s}' names no topic"));
        }
        Ok(Self::new(topic, partition))
    }
}

impl Serialize for TopicPartition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TopicPartition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn written_as_topic_slash_partition_and_read_back() {
        let tp = TopicPartition::new("orders.eu-1", 3);
        assert_eq!(tp.to_string(), "orders.eu-1/3");
        let map: BTreeMap<TopicPartition, i64> = [(tp.clone(), 7)].into();
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"{"orders.eu-1/3":7}"#);
        let back: BTreeMap<TopicPartition, i64> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, map);
        assert!("3".parse::<TopicPartition>().is_err());
        assert!("t/x".parse::<TopicPartition>().is_err());
        assert!(
            TopicPartition::new("a", 9) < TopicPartition::new("b", 0),
            "ordered by topic first"
        );
    }
}
