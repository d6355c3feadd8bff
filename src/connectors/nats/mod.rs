//! NATS JetStream through async-nats: the connector (`STORED AS NATS`, `nats://` and `tls://`
//! locations), its options, streams as log sources (partitions as the stream, as filter
//! subjects, or as a family of streams), work queues, the publisher and stream creation.

mod admin;
mod config;
mod options;
mod reader;
mod source;
mod work_queue;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;

use crate::connector::{Connector, ConnectorTable};
use crate::error::{Result, TopicsError};
use crate::options::{OptionBag, OptionDecl, ScanOptions};
use crate::sink::MessageWriter;
use crate::source::{LogCatalog, LogSet, LogSource, TableSource, TopicSelector};
use crate::table::MetadataColumn;

pub use admin::create_stream_if_missing;
pub use config::{
    NatsConfig, NatsPartitioning, NatsTls, QueueStart, WorkQueueConfig, parse_nats_location,
    subject_matches,
};
pub use source::NatsSource;
pub use work_queue::NatsWorkQueue;
pub use writer::NatsWriter;

/// The metadata columns of a NATS JetStream table, in schema order.
pub const NATS_METADATA: &[MetadataColumn] = &[
    MetadataColumn::Topic,
    MetadataColumn::Partition,
    MetadataColumn::Offset,
    MetadataColumn::Timestamp,
    MetadataColumn::Subject,
    MetadataColumn::Headers,
];

/// `STORED AS NATS`: JetStream streams at `nats://host:port[,host:port…]/STREAM` (or `tls://`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsConnector;

impl Connector for NatsConnector {
    fn name(&self) -> &'static str {
        "NATS"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["nats", "tls"]
    }

    fn metadata_columns(&self) -> &'static [MetadataColumn] {
        NATS_METADATA
    }

    fn options(&self) -> &'static [&'static OptionDecl] {
        options::NATS_OPTIONS
    }

    fn configure(
        &self,
        location: &str,
        bag: &mut OptionBag,
        scan: &ScanOptions,
    ) -> Result<Arc<dyn ConnectorTable>> {
        let (config, streams) = options::parse_nats_settings(location, bag, scan)?;
        Ok(Arc::new(
            NatsTable::new(config, scan.create_topic).with_streams(streams),
        ))
    }
}

/// One NATS table's connection.
#[derive(Debug)]
pub struct NatsTable {
    config: NatsConfig,
    streams: TopicSelector,
    create: bool,
    source: Arc<NatsSource>,
    writer: Arc<NatsWriter>,
}

/// Opens the streams of a table over several streams (or a pattern), all through one
/// connection.
#[derive(Debug)]
struct NatsCatalog {
    source: Arc<NatsSource>,
}

#[async_trait]
impl LogCatalog for NatsCatalog {
    async fn topic_names(&self) -> Result<Vec<String>> {
        self.source.stream_names().await
    }

    fn open(&self, topic: &str) -> Result<Arc<dyn LogSource>> {
        Ok(Arc::new(self.source.for_stream(topic)))
    }
}

impl NatsTable {
    /// The connection of a table with these settings (connects on first use); `create`
    /// creates missing streams.
    pub fn new(config: NatsConfig, create: bool) -> Self {
        Self {
            source: Arc::new(NatsSource::new(config.clone())),
            writer: Arc::new(NatsWriter::new(config.clone())),
            streams: TopicSelector::Named(vec![config.stream.clone()]),
            config,
            create,
        }
    }

    /// The same table over `streams` (a list, or a pattern).
    pub fn with_streams(mut self, streams: TopicSelector) -> Self {
        self.streams = streams;
        self
    }

    fn single_stream(&self, what: &str) -> Result<()> {
        match &self.streams {
            TopicSelector::Named(names) if names.len() == 1 => Ok(()),
            selector => Err(TopicsError::plan(format!(
                "a NATS table over several streams ({selector}) cannot be {what}; declare a \
                 table over the one stream for that"
            ))),
        }
    }
}

#[async_trait]
impl ConnectorTable for NatsTable {
    fn topics(&self) -> &TopicSelector {
        &self.streams
    }

    async fn create_if_missing(&self) -> Result<bool> {
        let TopicSelector::Named(names) = &self.streams else {
            return Ok(false);
        };
        let mut created = false;
        if self.create {
            for name in names {
                let mut config = self.config.clone();
                config.stream = name.clone();
                created |= create_stream_if_missing(&config).await?;
            }
        }
        Ok(created)
    }

    fn source(&self) -> Result<TableSource> {
        Ok(match &self.config.work_queue {
            Some(queue) => TableSource::Queue(Arc::new(NatsWorkQueue::new(
                Arc::clone(&self.source),
                queue.clone(),
            ))),
            None => TableSource::Log(match &self.streams {
                TopicSelector::Named(names) if names.len() == 1 => {
                    LogSet::single(Arc::clone(&self.source) as _)
                }
                selector => LogSet::new(
                    "nats",
                    selector.clone(),
                    Arc::new(NatsCatalog {
                        source: Arc::clone(&self.source),
                    }),
                ),
            }),
        })
    }

    fn log(&self) -> Result<Arc<dyn LogSource>> {
        self.single_stream("read back as one log")?;
        Ok(Arc::clone(&self.source) as _)
    }

    fn writer(&self) -> Result<Arc<dyn MessageWriter>> {
        self.single_stream("written to")?;
        Ok(Arc::clone(&self.writer) as _)
    }

    fn dead_letter_writer(&self, destination: &str) -> Arc<dyn MessageWriter> {
        Arc::new(NatsWriter::on_subject(
            self.config.clone(),
            destination.to_string(),
        ))
    }
}
