//! Topics held in this process (`STORED AS MEMORY`, `mem:///name`): a third connector beside
//! the brokers, for broker-free tests and experiments. Topics are named and shared by every
//! table of the process that names them; they vanish with it.

mod queue;
mod topic;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;

use crate::connector::{Connector, ConnectorTable};
use crate::error::{Result, TopicsError};
use crate::options::{OptionBag, OptionDecl, ScanOptions, parse_count, parse_duration};
use crate::sink::MessageWriter;
use crate::source::{LogCatalog, LogSet, LogSource, TableSource, TopicSelector};
use crate::table::MetadataColumn;

pub use queue::MemoryQueue;
pub use topic::{MemoryMessage, MemoryTopic};

/// The metadata columns of a memory table, in schema order.
pub const MEMORY_METADATA: &[MetadataColumn] = &[
    MetadataColumn::Topic,
    MetadataColumn::Partition,
    MetadataColumn::Offset,
    MetadataColumn::Timestamp,
    MetadataColumn::Key,
    MetadataColumn::Headers,
];

/// `memory.partitions`
pub const PARTITIONS: OptionDecl = OptionDecl {
    key: "memory.partitions",
    values: "number",
    default: "1",
    doc: "Partitions of a topic created by topic.create.",
};
/// `memory.mode`
pub const MODE: OptionDecl = OptionDecl {
    key: "memory.mode",
    values: "log | work-queue",
    default: "log",
    doc: "log: read by offset ranges, like a Kafka topic. work-queue: partition 0 read through one shared cursor by memory.work-queue.readers readers, at-least-once.",
};
/// `memory.work-queue.readers`
pub const QUEUE_READERS: OptionDecl = OptionDecl {
    key: "memory.work-queue.readers",
    values: "1 to 256",
    default: "1",
    doc: "Parallel readers of a work-queue table.",
};
/// `memory.work-queue.ack-wait`
pub const QUEUE_ACK_WAIT: OptionDecl = OptionDecl {
    key: "memory.work-queue.ack-wait",
    values: "duration such as 1s",
    default: "30s",
    doc: "How long a delivered message waits for its acknowledgement before it is delivered again.",
};

const MEMORY_OPTIONS: &[&OptionDecl] = &[&PARTITIONS, &MODE, &QUEUE_READERS, &QUEUE_ACK_WAIT];

/// Every memory topic of the process, by name.
fn topics() -> &'static Mutex<HashMap<String, MemoryTopic>> {
    static TOPICS: OnceLock<Mutex<HashMap<String, MemoryTopic>>> = OnceLock::new();
    TOPICS.get_or_init(Default::default)
}

/// The memory topic called `name`, created with `partitions` partitions if it does not exist.
pub fn memory_topic(name: &str, partitions: usize) -> MemoryTopic {
    topics()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_string())
        .or_insert_with(|| MemoryTopic::new(name, partitions))
        .clone()
}

/// The memory topic called `name`, if it exists.
pub fn existing_memory_topic(name: &str) -> Option<MemoryTopic> {
    topics()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()
}

/// `STORED AS MEMORY`: topics of this process at `mem:///name`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryConnector;

#[derive(Debug, Clone)]
enum Mode {
    Log,
    Queue { readers: u32, ack_wait: Duration },
}

impl Connector for MemoryConnector {
    fn name(&self) -> &'static str {
        "MEMORY"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["mem"]
    }

    fn metadata_columns(&self) -> &'static [MetadataColumn] {
        MEMORY_METADATA
    }

    fn options(&self) -> &'static [&'static OptionDecl] {
        MEMORY_OPTIONS
    }

    fn configure(
        &self,
        location: &str,
        bag: &mut OptionBag,
        scan: &ScanOptions,
    ) -> Result<Arc<dyn ConnectorTable>> {
        let names = location
            .strip_prefix("mem://")
            .map(|rest| rest.trim_start_matches('/').trim_end_matches('/'))
            .filter(|n| !n.contains('/'))
            .ok_or_else(|| TopicsError::InvalidLocation {
                location: location.to_string(),
                reason: "expected mem:///name[,name…]".into(),
            })?;
        let topics = match &scan.topics.pattern {
            Some(re) if names.is_empty() => TopicSelector::Pattern(re.clone()),
            Some(_) => {
                return Err(TopicsError::InvalidLocation {
                    location: location.to_string(),
                    reason: "with 'topic.pattern' the location names no topic (mem:///)".into(),
                });
            }
            None => {
                let list: Vec<String> = names.split(',').map(|n| n.trim().to_string()).collect();
                if list.iter().any(String::is_empty) {
                    return Err(TopicsError::InvalidLocation {
                        location: location.to_string(),
                        reason: "expected mem:///name[,name…]".into(),
                    });
                }
                TopicSelector::Named(list)
            }
        };
        let name = match &topics {
            TopicSelector::Named(list) => list[0].clone(),
            TopicSelector::Pattern(_) => String::new(),
        };
        let partitions = bag
            .take_with(&PARTITIONS, |k, v| parse_count(k, v, 10_000))?
            .unwrap_or(1) as usize;
        let mode = match bag.take(&MODE).as_deref().map(str::trim) {
            None | Some("log") => Mode::Log,
            Some("work-queue") => Mode::Queue {
                readers: bag
                    .take_with(&QUEUE_READERS, |k, v| parse_count(k, v, 256))?
                    .unwrap_or(1) as u32,
                ack_wait: bag
                    .take_with(&QUEUE_ACK_WAIT, parse_duration)?
                    .unwrap_or(Duration::from_secs(30)),
            },
            Some(other) => {
                return Err(TopicsError::invalid_option(
                    MODE.key,
                    other,
                    "expected log or work-queue",
                ));
            }
        };
        if matches!(mode, Mode::Log)
            && let Some(key) = bag.first_with_prefix("memory.work-queue.")
        {
            return Err(TopicsError::OptionConflict {
                key: key.to_string(),
                reason: "applies with 'memory.mode' = 'work-queue'".into(),
            });
        }
        if !matches!(&topics, TopicSelector::Named(l) if l.len() == 1)
            && matches!(mode, Mode::Queue { .. })
        {
            return Err(TopicsError::OptionConflict {
                key: MODE.key.into(),
                reason: format!("a work queue reads one topic; the table names several ({topics})"),
            });
        }
        Ok(Arc::new(MemoryTable {
            name,
            topics,
            partitions,
            create: scan.create_topic,
            mode,
            topic: OnceLock::new(),
            queue: OnceLock::new(),
        }))
    }
}

/// One memory table's view of its topic.
#[derive(Debug)]
struct MemoryTable {
    name: String,
    topics: TopicSelector,
    partitions: usize,
    create: bool,
    mode: Mode,
    topic: OnceLock<MemoryTopic>,
    queue: OnceLock<MemoryQueue>,
}

/// Opens memory topics by name, for tables over several topics or a pattern.
#[derive(Debug)]
struct MemoryCatalog;

#[async_trait]
impl LogCatalog for MemoryCatalog {
    async fn topic_names(&self) -> Result<Vec<String>> {
        Ok(topics()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect())
    }

    fn open(&self, topic: &str) -> Result<Arc<dyn LogSource>> {
        existing_memory_topic(topic)
            .map(|t| Arc::new(t) as _)
            .ok_or_else(|| TopicsError::UnknownTopic {
                kind: "memory",
                topic: topic.to_string(),
                brokers: "this process".into(),
            })
    }
}

/// Removes the memory topic `name` (as deleting a topic would); readers of it see no more
/// partitions.
pub fn delete_memory_topic(name: &str) -> bool {
    let removed = topics()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(name);
    match removed {
        Some(topic) => {
            topic.mark_deleted();
            true
        }
        None => false,
    }
}

impl MemoryTable {
    fn single_topic(&self, what: &str) -> Result<()> {
        match &self.topics {
            TopicSelector::Named(names) if names.len() == 1 => Ok(()),
            selector => Err(TopicsError::plan(format!(
                "a memory table over several topics ({selector}) cannot be {what}"
            ))),
        }
    }

    fn topic_handle(&self) -> Result<MemoryTopic> {
        if let Some(t) = self.topic.get() {
            return Ok(t.clone());
        }
        let topic = existing_memory_topic(&self.name).ok_or_else(|| TopicsError::UnknownTopic {
            kind: "memory",
            topic: self.name.clone(),
            brokers: "this process".into(),
        })?;
        Ok(self.topic.get_or_init(|| topic).clone())
    }
}

#[async_trait]
impl ConnectorTable for MemoryTable {
    fn topics(&self) -> &TopicSelector {
        &self.topics
    }

    async fn create_if_missing(&self) -> Result<bool> {
        let TopicSelector::Named(names) = &self.topics else {
            return Ok(false);
        };
        let mut created = false;
        for name in names.iter().filter(|_| self.create) {
            if existing_memory_topic(name).is_none() {
                memory_topic(name, self.partitions);
                created = true;
            }
        }
        Ok(created)
    }

    fn source(&self) -> Result<TableSource> {
        if !matches!(&self.topics, TopicSelector::Named(l) if l.len() == 1) {
            return Ok(TableSource::Log(LogSet::new(
                "memory",
                self.topics.clone(),
                Arc::new(MemoryCatalog),
            )));
        }
        let topic = self.topic_handle()?;
        Ok(match &self.mode {
            Mode::Log => TableSource::Log(LogSet::single(Arc::new(topic))),
            Mode::Queue { readers, ack_wait } => TableSource::Queue(Arc::new(
                self.queue
                    .get_or_init(|| MemoryQueue::new(topic, *readers, *ack_wait))
                    .clone(),
            )),
        })
    }

    fn log(&self) -> Result<Arc<dyn LogSource>> {
        self.single_topic("read back as one log")?;
        Ok(Arc::new(self.topic_handle()?))
    }

    fn writer(&self) -> Result<Arc<dyn MessageWriter>> {
        self.single_topic("written to")?;
        Ok(Arc::new(self.topic_handle()?))
    }

    fn dead_letter_writer(&self, destination: &str) -> Arc<dyn MessageWriter> {
        Arc::new(memory_topic(destination, 1))
    }
}
