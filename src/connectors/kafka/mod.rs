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
use crate::error::TopicsError;
use crate::options::{OptionBag, OptionDecl, ScanOptions};
use crate::sink::MessageWriter;
use crate::source::{LogCatalog, LogSet, LogSource, TableSource, TopicSelector};
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

impl KafkaTable {
    fn single_topic(&self, what: &str) -> Result<()> {
        match &self.settings.topics {
            TopicSelector::Named(names) if names.len() == 1 => Ok(()),
            selector => Err(TopicsError::plan(format!(
                "a Kafka table over several topics ({selector}) cannot be {what}; declare a table \
                 over the one topic for that"
            ))),
        }
    }
}

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
    catalog: Arc<KafkaCatalog>,
    writer: Arc<KafkaWriter>,
}

/// Opens the topics of a table over several topics (or a pattern): one source per topic, all
/// asking for metadata through one client.
struct KafkaCatalog {
    config: KafkaConfig,
    client: source::SharedClient,
}

impl std::fmt::Debug for KafkaCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCatalog")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl LogCatalog for KafkaCatalog {
    async fn topic_names(&self) -> Result<Vec<String>> {
        KafkaSource::sharing(self.config.clone(), Arc::clone(&self.client))
            .topic_names()
            .await
    }

    fn open(&self, topic: &str) -> Result<Arc<dyn LogSource>> {
        let mut config = self.config.clone();
        config.topic = topic.to_string();
        Ok(Arc::new(KafkaSource::sharing(
            config,
            Arc::clone(&self.client),
        )))
    }
}

impl KafkaTable {
    /// The connection of a table with these settings (connects on first use).
    pub fn new(settings: KafkaSettings) -> Self {
        let client = source::SharedClient::default();
        Self {
            catalog: Arc::new(KafkaCatalog {
                config: settings.config.clone(),
                client: Arc::clone(&client),
            }),
            source: Arc::new(KafkaSource::sharing(settings.config.clone(), client)),
            writer: Arc::new(
                KafkaWriter::new(settings.config.clone()).with_recovery(settings.recovery),
            ),
            settings,
        }
    }
}

#[async_trait]
impl ConnectorTable for KafkaTable {
    fn topics(&self) -> &TopicSelector {
        &self.settings.topics
    }

    async fn create_if_missing(&self) -> Result<bool> {
        let (Some(spec), TopicSelector::Named(names)) =
            (self.settings.create, &self.settings.topics)
        else {
            return Ok(false);
        };
        let mut created = false;
        for name in names {
            let mut config = self.settings.config.clone();
            config.topic = name.clone();
            created |= create_topic_if_missing(&config, spec).await?;
        }
        Ok(created)
    }

    fn source(&self) -> Result<TableSource> {
        Ok(TableSource::Log(match &self.settings.topics {
            TopicSelector::Named(names) if names.len() == 1 => {
                LogSet::single(Arc::clone(&self.source) as _)
            }
            selector => LogSet::new("kafka", selector.clone(), Arc::clone(&self.catalog) as _),
        }))
    }

    fn log(&self) -> Result<Arc<dyn LogSource>> {
        self.single_topic("read back as one log")?;
        Ok(Arc::clone(&self.source) as _)
    }

    fn writer(&self) -> Result<Arc<dyn MessageWriter>> {
        self.single_topic("written to")?;
        Ok(Arc::clone(&self.writer) as _)
    }

    fn dead_letter_writer(&self, destination: &str) -> Arc<dyn MessageWriter> {
        // Dead letters and late rows of every topic go to the one destination topic.
        let mut config = self.settings.config.clone();
        config.topic = destination.to_string();
        Arc::new(KafkaWriter::new(config))
    }
}
