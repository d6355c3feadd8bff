//! Kafka connection settings and the librdkafka client configurations built from them.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext};

use crate::error::{Result, TopicsError};
use crate::secret::ClientProperties;

/// librdkafka properties the scan manages itself, with the reason shown when a user sets one.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    (
        "bootstrap.servers",
        "the brokers come from LOCATION 'kafka://host:port/topic'",
    ),
    (
        "group.id",
        "use 'properties.group.id'; scans assign partitions and never join a group",
    ),
    (
        "enable.auto.commit",
        "scans never commit offsets; progress lives in the checkpoint",
    ),
    ("enable.auto.offset.store", "scans never store offsets"),
    (
        "auto.offset.reset",
        "missing offsets are reported as data loss instead of silently skipped",
    ),
    (
        "enable.partition.eof",
        "the scan uses end-of-partition events to finish bounded ranges",
    ),
];

/// Where a Kafka topic lives and how to connect to its brokers.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// The topic name.
    pub topic: String,
    /// librdkafka properties passed through (security, SASL, SSL, fetch tuning).
    pub properties: ClientProperties,
    /// Upper bound for each metadata request (partitions, watermarks, offsets for times).
    pub timeout: Duration,
    /// The `group.id` clients present (librdkafka needs one to assign partitions; brokers may
    /// check it against ACLs). Scans never join the group nor commit to it.
    pub group_id: Option<String>,
}

/// The `group.id` used when the table names none.
pub const DEFAULT_GROUP_ID: &str = "datafusion-topics";

impl KafkaConfig {
    /// Settings for `topic` on `bootstrap_servers` with a 10 s metadata timeout.
    pub fn new(bootstrap_servers: String, topic: String) -> Self {
        Self {
            bootstrap_servers,
            topic,
            properties: ClientProperties::new(),
            timeout: Duration::from_secs(10),
            group_id: None,
        }
    }

    /// Sets a librdkafka property; properties the scan manages itself are refused.
    pub fn set_property(&mut self, key: &str, value: &str) -> Result<()> {
        if let Some((_, why)) = MANAGED_PROPERTIES.iter().find(|(k, _)| *k == key) {
            return Err(TopicsError::invalid_option(
                &format!("kafka.{key}"),
                value,
                &format!("cannot be set: {why}"),
            ));
        }
        self.properties.set(key, value);
        Ok(())
    }

    /// Configuration shared by every client: the brokers and the user's properties.
    pub(crate) fn base_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("client.id", "datafusion-topics");
        for (k, v) in self.properties.iter() {
            cfg.set(k, v);
        }
        cfg.set("bootstrap.servers", &self.bootstrap_servers);
        cfg
    }

    /// Configuration for a consumer that reads assigned partitions (no subscription, no
    /// commits); `group` overrides the table's group id.
    pub(crate) fn consumer_config(&self, group: Option<&str>) -> ClientConfig {
        let mut cfg = self.base_config();
        cfg.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "true");
        let group = group
            .or(self.group_id.as_deref())
            .unwrap_or(DEFAULT_GROUP_ID);
        cfg.set("group.id", group);
        cfg
    }

    /// Wraps a client error with what we were doing; secret values are scrubbed from the text.
    pub(crate) fn client_error(
        &self,
        action: impl Into<String>,
        err: impl ToString,
    ) -> TopicsError {
        TopicsError::Client {
            kind: "kafka",
            action: action.into(),
            detail: self.properties.scrub(err.to_string()),
        }
    }

    /// An error for brokers that did not answer in time.
    pub(crate) fn unreachable(&self, action: impl Into<String>, err: impl ToString) -> TopicsError {
        TopicsError::Unreachable {
            kind: "kafka",
            brokers: self.bootstrap_servers.clone(),
            timeout: self.timeout,
            action: action.into(),
            detail: self.properties.scrub(err.to_string()),
        }
    }
}

/// Client context of our consumers: end-of-partition events are how bounded reads finish, so
/// librdkafka's reports of them are logged at debug level instead of as errors.
pub(crate) struct ScanContext;

impl ClientContext for ScanContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            log::debug!("librdkafka: {error}: {reason}");
        } else {
            log::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for ScanContext {}

/// The consumer type every Kafka read and metadata request uses.
pub(crate) type ScanConsumer = BaseConsumer<ScanContext>;
