//! Publishing messages to a NATS JetStream stream: every publish is acknowledged by the
//! stream before a write returns.

use std::collections::BTreeMap;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::OnceCell;

use super::config::{NatsConfig, NatsPartitioning};
use super::source::{connect_jetstream, get_stream};
use crate::error::{Result, TopicsError};
use crate::sink::{MessageWriter, OutgoingMessage, Recovery};

/// Acknowledgements awaited at once. Must stay below the JetStream context's own limit of
/// unacknowledged publishes (5000 in async-nats), or publishing waits for acks nobody polls.
const IN_FLIGHT: usize = 1_000;

/// Publishes to the table's stream; connects on the first write.
#[derive(Debug)]
pub struct NatsWriter {
    config: NatsConfig,
    /// The subject of messages that name none (a dead-letter subject); otherwise the
    /// partition's subject.
    subject: Option<String>,
    connection: OnceCell<(jetstream::Context, BTreeMap<i32, String>)>,
}

impl NatsWriter {
    /// A writer for the stream and servers of `config`.
    pub fn new(config: NatsConfig) -> Self {
        Self {
            config,
            subject: None,
            connection: OnceCell::new(),
        }
    }

    /// A writer that publishes messages naming no subject on `subject`.
    pub fn on_subject(config: NatsConfig, subject: String) -> Self {
        Self {
            subject: Some(subject),
            ..Self::new(config)
        }
    }

    /// Connects and works out the subject each partition publishes to when a row has no
    /// `_subject`.
    async fn connect(&self) -> Result<(jetstream::Context, BTreeMap<i32, String>)> {
        let js = connect_jetstream(&self.config).await?;
        let config = &self.config;
        let mut subjects = BTreeMap::new();
        match &config.partitioning {
            NatsPartitioning::Subjects(list) => {
                for (i, s) in list.iter().enumerate() {
                    subjects.insert(i as i32, s.clone());
                }
            }
            NatsPartitioning::SubjectWildcard(_) => {}
            NatsPartitioning::Stream => {
                if let Some(s) = single_subject(&js, config, &config.stream).await? {
                    subjects.insert(0, s);
                }
            }
            NatsPartitioning::Streams(n) => {
                for p in 0..*n as i32 {
                    if let Some(s) = single_subject(&js, config, &config.stream_of(p)).await? {
                        subjects.insert(p, s);
                    }
                }
            }
        }
        Ok((js, subjects))
    }

    fn subject_for(
        &self,
        message: &OutgoingMessage,
        defaults: &BTreeMap<i32, String>,
    ) -> Result<String> {
        if let Some(subject) = message.subject.as_ref().or(self.subject.as_ref()) {
            return Ok(subject.clone());
        }
        let partition = message.partition.unwrap_or(0);
        if let Some(s) = defaults.get(&partition) {
            return Ok(s.clone());
        }
        if let NatsPartitioning::SubjectWildcard(pattern) = &self.config.partitioning
            && pattern.split('.').filter(|t| *t == "*").count() == 1
            && !pattern.split('.').any(|t| t == ">")
        {
            return Ok(pattern
                .split('.')
                .map(|t| {
                    if t == "*" {
                        partition.to_string()
                    } else {
                        t.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("."));
        }
        Err(TopicsError::plan(format!(
            "cannot tell which subject of stream '{}' to publish a row of partition {partition} on: \
             give the row a _subject",
            self.config.stream
        )))
    }
}

/// The stream's only subject when it has exactly one without wildcards.
async fn single_subject(
    js: &jetstream::Context,
    config: &NatsConfig,
    stream: &str,
) -> Result<Option<String>> {
    let mut handle = get_stream(js, config, stream).await?;
    let info = handle
        .info()
        .await
        .map_err(|e| config.client_error(format!("reading stream '{stream}'"), e))?;
    Ok(match info.config.subjects.as_slice() {
        [one] if !one.split('.').any(|t| t == "*" || t == ">") => Some(one.clone()),
        _ => None,
    })
}

#[async_trait::async_trait]
impl MessageWriter for NatsWriter {
    fn target(&self) -> String {
        match &self.subject {
            Some(subject) => format!(
                "nats stream '{}' subject '{subject}' on {}",
                self.config.stream, self.config.servers
            ),
            None => format!(
                "nats stream '{}' on {}",
                self.config.stream, self.config.servers
            ),
        }
    }

    fn recovery(&self) -> Recovery {
        Recovery::IdentityHeader
    }

    fn for_batches(&self) -> std::sync::Arc<dyn MessageWriter> {
        std::sync::Arc::new(Self {
            subject: self.subject.clone(),
            ..Self::new(self.config.clone())
        })
    }

    fn identity_header(&self) -> &'static str {
        // JetStream deduplicates on it within the stream's duplicate window.
        "Nats-Msg-Id"
    }

    async fn write(&self, messages: &[OutgoingMessage]) -> Result<u64> {
        let (js, defaults) = self.connection.get_or_try_init(|| self.connect()).await?;
        let mut pending: FuturesUnordered<_> = FuturesUnordered::new();
        let mut written = 0u64;
        for message in messages {
            let subject = self.subject_for(message, defaults)?;
            let mut headers = HeaderMap::new();
            for (name, value) in &message.headers {
                let text = std::str::from_utf8(value).map_err(|_| TopicsError::Sink {
                    target: self.target(),
                    detail: format!(
                        "header '{name}' is not UTF-8 text, which NATS headers require"
                    ),
                })?;
                headers.append(name.as_str(), text);
            }
            let payload = message.value.clone().unwrap_or_default();
            let ack: PublishAckFuture = js
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|e| {
                    self.config
                        .client_error(format!("publishing on '{subject}'"), e)
                })?;
            pending.push(async move { (subject, ack.await) });
            if pending.len() >= IN_FLIGHT
                && let Some(done) = pending.next().await
            {
                self.settle(done)?;
                written += 1;
            }
        }
        while let Some(done) = pending.next().await {
            self.settle(done)?;
            written += 1;
        }
        Ok(written)
    }
}

impl NatsWriter {
    fn settle(
        &self,
        (subject, ack): (
            String,
            std::result::Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
        ),
    ) -> Result<()> {
        match ack {
            Ok(ack) if ack.stream.is_empty() => Err(self.config.client_error(
                format!("publishing on '{subject}'"),
                "no stream acknowledged the message",
            )),
            Ok(_) => Ok(()),
            Err(e) => {
                let hint = if matches!(
                    e.kind(),
                    jetstream::context::PublishErrorKind::StreamNotFound
                ) {
                    format!(
                        "no stream captures subject '{subject}' (stream '{}' must list it)",
                        self.config.stream
                    )
                } else {
                    e.to_string()
                };
                Err(self
                    .config
                    .client_error(format!("publishing on '{subject}'"), hint))
            }
        }
    }
}
