//! Writing messages to a Kafka topic with librdkafka's producer: every message is
//! acknowledged by the brokers (`acks=all`) before a write returns.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::OnceCell;

use super::encode::OutgoingMessage;
use super::{MessageWriter, Recovery};
use crate::error::Result;
use crate::source::kafka::KafkaConfig;

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
            .set("enable.idempotence", "false")
            .set(
                "message.timeout.ms",
                self.config.timeout.as_millis().max(1).to_string(),
            )
            .set("linger.ms", "5");
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
        "dft-id"
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
        })
    }

    async fn write(&self, messages: &[OutgoingMessage]) -> Result<u64> {
        let producer = self
            .producer
            .get_or_try_init(|| async { self.producer() })
            .await?;
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
}

impl KafkaWriter {
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
