//! A Kafka topic as a [`LogSource`] through rdkafka (bundled librdkafka): metadata calls and
//! partition reads.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::config::{KafkaConfig, ScanConsumer, ScanContext};
use super::reader;
use crate::error::{Result, TopicsError};
use crate::source::{LogSource, OffsetRange, RawBatchStream, ReadRequest, Watermarks};

/// A Kafka topic as a [`LogSource`]: holds settings only and connects on demand.
pub struct KafkaSource {
    config: KafkaConfig,
    /// One lazily created client for metadata requests, reused across plans (and shared by
    /// the topics of one table).
    metadata_client: SharedClient,
}

/// A lazily created metadata client, shared by the sources of one table's topics.
pub(super) type SharedClient = Arc<Mutex<Option<Arc<ScanConsumer>>>>;

impl KafkaSource {
    /// A source for the topic and brokers in `config`.
    pub fn new(config: KafkaConfig) -> Self {
        Self::sharing(config, SharedClient::default())
    }

    /// A source for `config`'s topic that asks for metadata through `client` (created on
    /// first use, with `config`'s settings).
    pub(super) fn sharing(config: KafkaConfig, client: SharedClient) -> Self {
        Self {
            config,
            metadata_client: client,
        }
    }

    /// Every topic on the brokers but internal ones (`__consumer_offsets`, …).
    pub(super) async fn topic_names(&self) -> Result<Vec<String>> {
        self.blocking("listing topics", |client, config| {
            let metadata = client
                .fetch_metadata(None, config.timeout)
                .map_err(|e| Self::classify(&config, "listing topics", e))?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
                .map(|t| t.name().to_string())
                .collect())
        })
        .await
    }

    /// The connection settings.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    fn client(&self) -> Result<Arc<ScanConsumer>> {
        let mut guard = self
            .metadata_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = guard.as_ref() {
            return Ok(Arc::clone(c));
        }
        let consumer: ScanConsumer = self
            .config
            .consumer_config(None)
            .create_with_context(ScanContext)
            .map_err(|e| self.config.client_error("creating a metadata client", e))?;
        let consumer = Arc::new(consumer);
        *guard = Some(Arc::clone(&consumer));
        Ok(consumer)
    }

    /// Runs a blocking librdkafka call on the blocking thread pool.
    async fn blocking<T, F>(&self, action: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<ScanConsumer>, KafkaConfig) -> Result<T> + Send + 'static,
    {
        let client = self.client()?;
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || f(client, config))
            .await
            .map_err(|e| self.config.client_error(action, e))?
    }

    /// Maps a client error to a typed one: unreachable brokers, unknown topic, or generic.
    fn classify(config: &KafkaConfig, action: &str, err: KafkaError) -> TopicsError {
        match err.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::RequestTimedOut,
            ) => config.unreachable(action, err),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                unknown_topic(config)
            }
            _ => config.client_error(action, err),
        }
    }
}

/// A client that speaks for consumer group `group` (to read or commit its offsets).
fn group_consumer(config: &KafkaConfig, group: &str, action: &str) -> Result<ScanConsumer> {
    config
        .consumer_config(Some(group))
        .create_with_context(ScanContext)
        .map_err(|e| config.client_error(action, e))
}

fn unknown_topic(config: &KafkaConfig) -> TopicsError {
    TopicsError::UnknownTopic {
        kind: "kafka",
        topic: config.topic.clone(),
        brokers: config.bootstrap_servers.clone(),
    }
}

impl fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for KafkaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kafka://{}/{}",
            self.config.bootstrap_servers, self.config.topic
        )
    }
}

#[async_trait]
impl LogSource for KafkaSource {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn topic(&self) -> &str {
        &self.config.topic
    }

    async fn partitions(&self) -> Result<Vec<i32>> {
        let action = format!("listing partitions of topic '{}'", self.config.topic);
        self.blocking(&action.clone(), move |client, config| {
            let deadline = Instant::now() + config.timeout;
            loop {
                let metadata = client
                    .fetch_metadata(Some(&config.topic), config.timeout)
                    .map_err(|e| Self::classify(&config, &action, e))?;
                let topic = metadata.topics().iter().find(|t| t.name() == config.topic);
                let Some(topic) = topic else {
                    return Err(unknown_topic(&config));
                };
                match topic.error() {
                    None if !topic.partitions().is_empty() => {
                        let mut ids: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
                        ids.sort_unstable();
                        return Ok(ids);
                    }
                    Some(code) => {
                        let code = RDKafkaErrorCode::from(code);
                        let retriable = matches!(code, RDKafkaErrorCode::LeaderNotAvailable);
                        if !retriable || Instant::now() >= deadline {
                            return Err(Self::classify(
                                &config,
                                &action,
                                KafkaError::MetadataFetch(code),
                            ));
                        }
                    }
                    None if Instant::now() >= deadline => return Err(unknown_topic(&config)),
                    None => {}
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
    }

    async fn watermarks(&self, partitions: &[i32]) -> Result<Vec<Watermarks>> {
        let partitions = partitions.to_vec();
        self.blocking("fetching watermarks", move |client, config| {
            partitions
                .iter()
                .map(|&p| {
                    let action = format!("fetching watermarks of {} partition {p}", config.topic);
                    client
                        .fetch_watermarks(&config.topic, p, config.timeout)
                        .map(|(low, high)| Watermarks { low, high })
                        .map_err(|e| Self::classify(&config, &action, e))
                })
                .collect()
        })
        .await
    }

    async fn offsets_for_timestamp(
        &self,
        partitions: &[i32],
        timestamp_ms: i64,
    ) -> Result<Vec<i64>> {
        let watermarks = self.watermarks(partitions).await?;
        let partitions = partitions.to_vec();
        self.blocking(
            "looking up offsets for a timestamp",
            move |client, config| {
                let action = format!(
                    "looking up offsets of topic '{}' for timestamp {timestamp_ms}",
                    config.topic
                );
                let mut tpl = TopicPartitionList::new();
                for &p in &partitions {
                    tpl.add_partition_offset(&config.topic, p, Offset::Offset(timestamp_ms))
                        .map_err(|e| config.client_error(&action, e))?;
                }
                let answer = client
                    .offsets_for_times(tpl, config.timeout)
                    .map_err(|e| Self::classify(&config, &action, e))?;
                let mut out = Vec::with_capacity(partitions.len());
                for (&p, w) in partitions.iter().zip(&watermarks) {
                    let elem = answer.find_partition(&config.topic, p).ok_or_else(|| {
                        config.client_error(&action, format!("no answer for partition {p}"))
                    })?;
                    if elem.error().is_err() {
                        return Err(config
                            .client_error(&action, format!("partition {p}: {:?}", elem.error())));
                    }
                    // No message at or after the time: the answer is "end" (-1).
                    let offset = match elem.offset() {
                        Offset::Offset(o) if o >= 0 => o.clamp(w.low, w.high),
                        _ => w.high,
                    };
                    out.push(offset);
                }
                Ok(out)
            },
        )
        .await
    }

    async fn timestamps_ordered(&self) -> Result<bool> {
        use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
        use rdkafka::client::DefaultClientContext;
        let action = format!("reading the configuration of topic '{}'", self.config.topic);
        let admin: AdminClient<DefaultClientContext> = self
            .config
            .base_config()
            .create()
            .map_err(|e| self.config.client_error(&action, e))?;
        let opts = AdminOptions::new().request_timeout(Some(self.config.timeout));
        let answer = admin
            .describe_configs([&ResourceSpecifier::Topic(&self.config.topic)], &opts)
            .await;
        // Brokers that cannot describe topic configs (or deny it by ACL) are treated as
        // create-time: timestamp filters then stay inexact unless scan.timestamp.max-skew says.
        let ordered = match answer.as_deref() {
            Ok([Ok(resource)]) => resource
                .get("message.timestamp.type")
                .and_then(|e| e.value.as_deref())
                .is_some_and(|v| v == "LogAppendTime"),
            other => {
                log::debug!("{action}: {other:?}; assuming create-time timestamps");
                false
            }
        };
        Ok(ordered)
    }

    async fn committed_offsets(&self, group: &str, partitions: &[i32]) -> Result<Vec<Option<i64>>> {
        let partitions = partitions.to_vec();
        let group = group.to_string();
        self.blocking("reading committed offsets", move |_, config| {
            let action = format!(
                "reading committed offsets of group '{group}' for topic '{}'",
                config.topic
            );
            let consumer = group_consumer(&config, &group, &action)?;
            let mut tpl = TopicPartitionList::new();
            for &p in &partitions {
                tpl.add_partition(&config.topic, p);
            }
            let answer = consumer
                .committed_offsets(tpl, config.timeout)
                .map_err(|e| Self::classify(&config, &action, e))?;
            Ok(partitions
                .iter()
                .map(
                    |&p| match answer.find_partition(&config.topic, p).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) if o >= 0 => Some(o),
                        _ => None,
                    },
                )
                .collect())
        })
        .await
    }

    async fn commit_offsets(&self, group: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let offsets = offsets.to_vec();
        let group = group.to_string();
        self.blocking("committing offsets", move |_, config| {
            let action = format!(
                "committing offsets of group '{group}' for topic '{}'",
                config.topic
            );
            let consumer = group_consumer(&config, &group, &action)?;
            let mut tpl = TopicPartitionList::new();
            for (p, offset) in &offsets {
                tpl.add_partition_offset(&config.topic, *p, Offset::Offset(*offset))
                    .map_err(|e| config.client_error(&action, e))?;
            }
            consumer
                .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
                .map_err(|e| Self::classify(&config, &action, e))
        })
        .await
    }

    fn read(&self, partition: i32, range: OffsetRange, request: ReadRequest) -> RawBatchStream {
        reader::read_partition(self.config.clone(), partition, range, request)
    }
}
