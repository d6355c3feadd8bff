//! Kafka topics through rdkafka: the connector (`STORED AS KAFKA`, `kafka://` locations), its
//! options, the topic as a log source, partition readers, the producer and topic creation.

mod admin;
mod config;
mod consumer_pool;
mod options;
mod reader;
mod source;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;

use crate::connector::{Connector, ConnectorTable};
use crate::error::Result;
use crate::options::{OptionBag, OptionDecl, ScanOptions};
use crate::sink::MessageWriter;
use crate::source::{LogSource, TableSource};
use crate::table::MetadataColumn;

pub use admin::{TopicCreation, create_topic_if_missing};
pub use config::KafkaConfig;
pub use options::{KAFKA_BOOTSTRAP_ENV, KafkaSettings, parse_kafka_location};
pub use source::KafkaSource;
pub use writer::KafkaWriter;

/// The metadata columns of a Kafka table, in schema order.
pub const KAFKA_METADATA: &[MetadataColumn] = &[
    MetadataColumn::Topic,
    MetadataColumn::Partition,
    MetadataColumn::Offset,
    MetadataColumn::Timestamp,
    MetadataColumn::Key,
    MetadataColumn::Headers,
];

/// `STORED AS KAFKA`: Kafka topics at `kafka://host:port[,host:port…]/topic`.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaConnector;

impl Connector for KafkaConnector {
    fn name(&self) -> &'static str {
        "KAFKA"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["kafka"]
    }

    fn metadata_columns(&self) -> &'static [MetadataColumn] {
        KAFKA_METADATA
    }

    fn options(&self) -> &'static [&'static OptionDecl] {
        options::KAFKA_OPTIONS
    }

    fn take_group(&self, bag: &mut OptionBag) -> Result<Option<String>> {
        KafkaSettings::take_group(bag)
    }

    fn configure(
        &self,
        location: &str,
        bag: &mut OptionBag,
        scan: &ScanOptions,
    ) -> Result<Arc<dyn ConnectorTable>> {
        let settings = KafkaSettings::parse(location, bag, scan)?;
        Ok(Arc::new(KafkaTable::new(settings)))
    }
}

/// One Kafka table's connection.
#[derive(Debug)]
pub struct KafkaTable {
    settings: KafkaSettings,
    source: Arc<KafkaSource>,
    writer: Arc<KafkaWriter>,
}

impl KafkaTable {
    /// The connection of a table with these settings (connects on first use).
    pub fn new(settings: KafkaSettings) -> Self {
        Self {
            source: Arc::new(KafkaSource::new(settings.config.clone())),
            writer: Arc::new(
                KafkaWriter::new(settings.config.clone()).with_recovery(settings.recovery),
            ),
            settings,
        }
    }
}

#[async_trait]
impl ConnectorTable for KafkaTable {
    fn topic(&self) -> &str {
        &self.settings.config.topic
    }

    async fn create_if_missing(&self) -> Result<bool> {
        match self.settings.create {
            Some(spec) => create_topic_if_missing(&self.settings.config, spec).await,
            None => Ok(false),
        }
    }

    fn source(&self) -> Result<TableSource> {
        Ok(TableSource::Log(self.log()?))
    }

    fn log(&self) -> Result<Arc<dyn LogSource>> {
        Ok(Arc::clone(&self.source) as _)
    }

    fn writer(&self) -> Result<Arc<dyn MessageWriter>> {
        Ok(Arc::clone(&self.writer) as _)
    }

    fn dead_letter_writer(&self, destination: &str) -> Arc<dyn MessageWriter> {
        let mut config = self.settings.config.clone();
        config.topic = destination.to_string();
        Arc::new(KafkaWriter::new(config))
    }
}
