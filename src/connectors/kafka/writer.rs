//! Writing messages to a Kafka topic with librdkafka's producer: every message is
//! acknowledged by the brokers (`acks=all`) before a write returns. With
//! `sink.recovery = transactional`, each continuous-query batch is one Kafka transaction.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::OnceCell;

use super::config::KafkaConfig;
use crate::error::{Result, TopicsError};
use crate::sink::{MessageWriter, OutgoingMessage, Recovery};

/// The least time transaction calls (init, commit, abort) may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Deliveries awaited at once; bounds the memory held by pending acknowledgements.
const IN_FLIGHT: usize = 10_000;

/// Produces messages to the table's topic; connects on the first write.
pub struct KafkaWriter {
    config: KafkaConfig,
    producer: OnceCell<Arc<FutureProducer>>,
    /// One request in flight per connection and no retries: each partition receives the
    /// messages in the order given, each at most once (a failure fails the write).
    ordered: bool,
    /// How continuous-query batches recover (`sink.recovery`).
    recovery: Recovery,
    /// With transactions: the query whose transactional id the producer was created with.
    transactional_query: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for KafkaWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaWriter")
            .field("config", &self.config)
            .field("connected", &self.producer.initialized())
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl KafkaWriter {
    /// A writer for the topic and brokers of `config`.
    pub fn new(config: KafkaConfig) -> Self {
        Self {
            config,
            producer: OnceCell::new(),
            ordered: false,
            recovery: Recovery::Positional,
            transactional_query: std::sync::OnceLock::new(),
        }
    }

    /// Sets how continuous-query batches written through this writer recover.
    pub fn with_recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    fn producer(&self) -> Result<Arc<FutureProducer>> {
        let mut cfg = self.config.base_config();
        cfg.set("acks", "all")
            .set(
                "message.timeout.ms",
                self.config.timeout.as_millis().max(1).to_string(),
            )
            .set("linger.ms", "5");
        if let Some(query) = self.transactional_query.get() {
            // Idempotent and ordered by librdkafka itself; the id is stable per query and
            // topic, so a restarted runner fences the producer it replaces.
            cfg.set(
                "transactional.id",
                transactional_id(query, &self.config.topic),
            )
            .set("enable.idempotence", "true");
            return cfg.create::<FutureProducer>().map(Arc::new).map_err(|e| {
                self.config
                    .client_error("creating a transactional producer", e)
            });
        }
        cfg.set("enable.idempotence", "false");
        if self.ordered {
            cfg.set("max.in.flight.requests.per.connection", "1")
                .set("message.send.max.retries", "0");
        }
        cfg.create::<FutureProducer>()
            .map(Arc::new)
            .map_err(|e| self.config.client_error("creating a producer", e))
    }
}

#[async_trait::async_trait]
impl MessageWriter for KafkaWriter {
    fn target(&self) -> String {
        format!(
            "kafka topic '{}' on {}",
            self.config.topic, self.config.bootstrap_servers
        )
    }

    fn identity_header(&self) -> &'static str {
        crate::sink::IDENTITY_HEADER
    }

    fn recovery(&self) -> Recovery {
        self.recovery
    }

    fn for_batches(&self) -> Arc<dyn MessageWriter> {
        Arc::new(Self {
            config: self.config.clone(),
            producer: OnceCell::new(),
            ordered: true,
            recovery: self.recovery,
            transactional_query: std::sync::OnceLock::new(),
        })
    }

    async fn write(&self, messages: &[OutgoingMessage]) -> Result<u64> {
        let producer = self
            .producer
            .get_or_try_init(|| async { self.producer() })
            .await?;
        self.produce_all(producer, messages).await
    }

    async fn prepare_batches(&self, query_id: &str) -> Result<()> {
        if self.recovery == Recovery::Transactional {
            self.transactional_producer(query_id).await?;
        }
        Ok(())
    }

    async fn write_batch(&self, query_id: &str, messages: &[OutgoingMessage]) -> Result<u64> {
        if self.recovery != Recovery::Transactional {
            return self.write(messages).await;
        }
        let producer = Arc::clone(self.transactional_producer(query_id).await?);
        producer
            .begin_transaction()
            .map_err(|e| self.transaction_error("beginning a transaction", e))?;
        let written = match self.produce_all(&producer, messages).await {
            Ok(n) => n,
            Err(e) => {
                self.abort(&producer).await;
                return Err(e);
            }
        };
        let committing = Arc::clone(&producer);
        let committed =
            tokio::task::spawn_blocking(move || committing.commit_transaction(TRANSACTION_TIMEOUT))
                .await
                .map_err(|e| self.transaction_error("committing a transaction", e))?;
        if let Err(e) = committed {
            self.abort(&producer).await;
            return Err(self.transaction_error("committing a transaction", e));
        }
        Ok(written)
    }
}

/// The transactional id of query `query_id` writing to `topic`.
fn transactional_id(query_id: &str, topic: &str) -> String {
    format!("datafusion-topics-{query_id}-{topic}")
}

impl KafkaWriter {
    /// The producer of query `query_id`'s transactions, initialised (which fences earlier
    /// producers of the same query and aborts what they left open).
    async fn transactional_producer(&self, query_id: &str) -> Result<&Arc<FutureProducer>> {
        let first = self
            .transactional_query
            .get_or_init(|| query_id.to_string());
        if first != query_id {
            return Err(TopicsError::Sink {
                target: self.target(),
                detail: format!(
                    "one writer serves one query's transactions ({first}), not also {query_id}"
                ),
            });
        }
        self.producer
            .get_or_try_init(|| async {
                let producer = self.producer()?;
                let init = Arc::clone(&producer);
                tokio::task::spawn_blocking(move || init.init_transactions(TRANSACTION_TIMEOUT))
                    .await
                    .map_err(|e| self.transaction_error("initialising transactions", e))?
                    .map_err(|e| self.transaction_error("initialising transactions", e))?;
                Ok(producer)
            })
            .await
    }

    /// Aborts the open transaction after a failure; a failed abort is logged (the next
    /// writer's initialisation aborts it anyway).
    async fn abort(&self, producer: &Arc<FutureProducer>) {
        let aborting = Arc::clone(producer);
        let aborted =
            tokio::task::spawn_blocking(move || aborting.abort_transaction(TRANSACTION_TIMEOUT))
                .await;
        if !matches!(aborted, Ok(Ok(()))) {
            log::warn!("{}: aborting the failed transaction failed", self.target());
        }
    }

    fn transaction_error(&self, action: &str, err: impl std::fmt::Display) -> TopicsError {
        let detail = err.to_string();
        let hint = if detail.contains("not supported") || detail.contains("NotSupported") {
            "; sink.recovery = transactional needs brokers with Kafka transactions \
             (use positional or identity-header on others)"
        } else {
            ""
        };
        self.config.client_error(
            format!("{action} for topic '{}'", self.config.topic),
            format!("{detail}{hint}"),
        )
    }

    /// Produces every message and waits for all acknowledgements.
    async fn produce_all(
        &self,
        producer: &Arc<FutureProducer>,
        messages: &[OutgoingMessage],
    ) -> Result<u64> {
        let topic = self.config.topic.as_str();
        let mut pending = FuturesUnordered::new();
        let mut written = 0u64;
        for message in messages {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if let Some(value) = &message.value {
                record = record.payload(value.as_slice());
            }
            if let Some(key) = &message.key {
                record = record.key(key.as_slice());
            }
            if let Some(p) = message.partition {
                record = record.partition(p);
            }
            if let Some(ts) = message.timestamp {
                record = record.timestamp(ts);
            }
            if !message.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
                for (name, value) in &message.headers {
                    headers = headers.insert(Header {
                        key: name,
                        value: Some(value.as_slice()),
                    });
                }
                record = record.headers(headers);
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        match pending.next().await {
                            Some(done) => {
                                self.settle(done, message.partition)?;
                                written += 1;
                            }
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((err, _)) => return Err(self.failed(err, message.partition)),
                }
            }
            if pending.len() >= IN_FLIGHT
                && let Some(done) = pending.next().await
            {
                self.settle(done, message.partition)?;
                written += 1;
            }
        }
        while let Some(done) = pending.next().await {
            self.settle(done, None)?;
            written += 1;
        }
        Ok(written)
    }

    fn settle(
        &self,
        done: std::result::Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
        partition: Option<i32>,
    ) -> Result<()> {
        match done {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((err, message))) => Err(self.failed(err, Some(message.partition()))),
            Err(_) => Err(self.failed(KafkaError::Canceled, partition)),
        }
    }

    fn failed(&self, err: KafkaError, partition: Option<i32>) -> crate::error::TopicsError {
        let place = match partition {
            Some(p) if p >= 0 => format!("partition {p} of topic '{}'", self.config.topic),
            _ => format!("topic '{}'", self.config.topic),
        };
        self.config.client_error(format!("writing to {place}"), err)
    }
}
