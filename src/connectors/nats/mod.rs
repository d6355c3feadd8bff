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
use crate::error::Result;
use crate::options::{OptionBag, OptionDecl, ScanOptions};
use crate::sink::MessageWriter;
use crate::source::{LogSource, TableSource};
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
        let config = options::parse_nats_settings(location, bag, scan)?;
        Ok(Arc::new(NatsTable::new(config, scan.create_topic)))
    }
}

/// One NATS table's connection.
#[derive(Debug)]
pub struct NatsTable {
    config: NatsConfig,
    create: bool,
    source: Arc<NatsSource>,
    writer: Arc<NatsWriter>,
}

impl NatsTable {
    /// The connection of a table with these settings (connects on first use); `create`
    /// creates missing streams.
    pub fn new(config: NatsConfig, create: bool) -> Self {
        Self {
            source: Arc::new(NatsSource::new(config.clone())),
            writer: Arc::new(NatsWriter::new(config.clone())),
            config,
            create,
        }
    }
}

#[async_trait]
impl ConnectorTable for NatsTable {
    fn topic(&self) -> &str {
        &self.config.stream
    }

    async fn create_if_missing(&self) -> Result<bool> {
        if self.create {
            create_stream_if_missing(&self.config).await
        } else {
            Ok(false)
        }
    }

    fn source(&self) -> Result<TableSource> {
        Ok(match &self.config.work_queue {
            Some(queue) => TableSource::Queue(Arc::new(NatsWorkQueue::new(
                Arc::clone(&self.source),
                queue.clone(),
            ))),
            None => TableSource::Log(self.log()?),
        })
    }

    fn log(&self) -> Result<Arc<dyn LogSource>> {
        Ok(Arc::clone(&self.source) as _)
    }

    fn writer(&self) -> Result<Arc<dyn MessageWriter>> {
        Ok(Arc::clone(&self.writer) as _)
    }

    fn dead_letter_writer(&self, destination: &str) -> Arc<dyn MessageWriter> {
        Arc::new(NatsWriter::on_subject(
            self.config.clone(),
            destination.to_string(),
        ))
    }
}
