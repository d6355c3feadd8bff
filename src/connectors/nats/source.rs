//! A JetStream stream (or family of streams) as a [`LogSource`]: partitions as the stream, as
//! filter subjects, or as streams `<name>-<i>`; each partition read by its own ordered,
//! ephemeral consumer.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, consumer, stream::Stream};
use async_trait::async_trait;

use super::config::{NatsConfig, NatsPartitioning, subject_matches};
use super::reader;
use crate::error::{Result, TopicsError};
use crate::source::{LogSource, OffsetRange, RawBatchStream, ReadRequest, Watermarks};

/// A JetStream stream (or family of streams) as a [`LogSource`]: settings plus a lazily opened
/// connection; offsets are stream sequence numbers.
pub struct NatsSource {
    config: NatsConfig,
    pub(super) client: Arc<tokio::sync::OnceCell<async_nats::Client>>,
    /// Partition id → filter subject, as listed by the last `partitions()` call.
    subjects: Mutex<BTreeMap<i32, String>>,
}

impl NatsSource {
    /// A source for the stream and servers in `config`.
    pub fn new(config: NatsConfig) -> Self {
        Self {
            config,
            client: Arc::new(tokio::sync::OnceCell::new()),
            subjects: Mutex::new(BTreeMap::new()),
        }
    }

    /// The connection settings.
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    /// A source for `stream` with the same settings, sharing this one's connection.
    pub(super) fn for_stream(&self, stream: &str) -> Self {
        let mut config = self.config.clone();
        config.stream = stream.to_string();
        Self {
            config,
            client: Arc::clone(&self.client),
            subjects: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every stream the server holds.
    pub(super) async fn stream_names(&self) -> Result<Vec<String>> {
        use futures::TryStreamExt;
        let js = self.context().await?;
        js.stream_names()
            .try_collect()
            .await
            .map_err(|e| TopicsError::Client {
                kind: "nats",
                action: format!("listing streams on {}", self.config.servers),
                detail: e.to_string(),
            })
    }

    pub(super) async fn context(&self) -> Result<jetstream::Context> {
        let client = self
            .client
            .get_or_try_init(|| connect(&self.config))
            .await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(self.config.timeout);
        Ok(js)
    }

    async fn stream(&self, partition: i32) -> Result<Stream> {
        get_stream(
            &self.context().await?,
            &self.config,
            &self.config.stream_of(partition),
        )
        .await
    }

    /// The filter subject of a partition (`None`: the whole stream).
    fn subject_of(&self, partition: i32) -> Result<Option<String>> {
        match &self.config.partitioning {
            NatsPartitioning::Stream | NatsPartitioning::Streams(_) => Ok(None),
            _ => {
                let subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
                subjects.get(&partition).cloned().map(Some).ok_or_else(|| {
                    self.config.client_error(
                        format!(
                            "reading partition {partition} of stream '{}'",
                            self.config.stream
                        ),
                        "no such partition (plan the scan again)",
                    )
                })
            }
        }
    }

    /// The first and last sequence of a partition (`None` when it holds no message).
    async fn bounds(&self, partition: i32) -> Result<Watermarks> {
        let stream = self.stream(partition).await?;
        let state = stream.cached_info().state.clone();
        let end_of_stream = state.last_sequence + 1;
        let Some(subject) = self.subject_of(partition)? else {
            let low = if state.messages == 0 {
                end_of_stream
            } else {
                state.first_sequence
            };
            return Ok(marks(low, end_of_stream));
        };
        let action = format!(
            "reading the bounds of subject '{subject}' in stream '{}'",
            self.config.stream
        );
        let first = stream
            .raw_message_builder()
            .next_by_subject(subject.clone())
            .sequence(state.first_sequence.max(1))
            .send()
            .await;
        let low = match first {
            Ok(m) => m.sequence,
            Err(e) if is_no_message(&e) => return Ok(marks(end_of_stream, end_of_stream)),
            Err(e) => return Err(self.config.client_error(&action, e)),
        };
        let last = stream
            .raw_message_builder()
            .last_by_subject(subject.clone())
            .send()
            .await;
        let high = match last {
            Ok(m) => m.sequence + 1,
            Err(e) if is_no_message(&e) => end_of_stream,
            Err(e) => return Err(self.config.client_error(&action, e)),
        };
        Ok(marks(low, high))
    }
}

/// Watermarks from unsigned stream sequences.
fn marks(low: u64, high: u64) -> Watermarks {
    Watermarks {
        low: low as i64,
        high: high as i64,
    }
}

fn is_no_message(e: &async_nats::jetstream::stream::RawMessageError) -> bool {
    matches!(
        e.kind(),
        async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound
    )
}

/// A JetStream context on a new connection, with the configured request timeout.
pub(crate) async fn connect_jetstream(config: &NatsConfig) -> Result<jetstream::Context> {
    let mut js = jetstream::new(connect(config).await?);
    js.set_timeout(config.timeout);
    Ok(js)
}

pub(super) async fn connect(config: &NatsConfig) -> Result<async_nats::Client> {
    crate::tls::install_crypto_provider();
    let mut opts = async_nats::ConnectOptions::new()
        .name("datafusion-topics")
        .connection_timeout(config.timeout)
        .request_timeout(Some(config.timeout));
    let auth = &config.auth;
    if let (Some(user), Some(password)) = (auth.get("user"), auth.get("password")) {
        opts = opts.user_and_password(user.to_string(), password.to_string());
    }
    if let Some(token) = auth.get("token") {
        opts = opts.token(token.to_string());
    }
    if let Some(seed) = auth.get("nkey-seed") {
        opts = opts.nkey(seed.to_string());
    }
    if let Some(path) = auth.get("creds-file") {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|e| TopicsError::InvalidOption {
                key: "nats.creds-file".into(),
                value: path.to_string(),
                reason: format!("cannot read the credentials file: {e}"),
            })?;
    }
    let tls = &config.tls;
    if let Some(ca) = &tls.ca_file {
        opts = opts.add_root_certificates(ca.into());
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        opts = opts.add_client_certificate(cert.into(), key.into());
    }
    if tls.required || tls.ca_file.is_some() || tls.cert_file.is_some() {
        opts = opts.require_tls(true);
    }
    let servers: Vec<String> = config.servers.split(',').map(str::to_string).collect();
    let action = "connecting";
    match tokio::time::timeout(config.timeout, opts.connect(servers)).await {
        Err(_) => Err(config.unreachable(action, "no answer")),
        Ok(Err(e)) => match e.kind() {
            async_nats::ConnectErrorKind::Authentication
            | async_nats::ConnectErrorKind::AuthorizationViolation => {
                Err(config.client_error("authenticating", e))
            }
            _ => Err(config.unreachable(action, e)),
        },
        Ok(Ok(client)) => Ok(client),
    }
}

pub(crate) async fn get_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
    name: &str,
) -> Result<Stream> {
    use async_nats::jetstream::context::GetStreamErrorKind;
    match js.get_stream(name).await {
        Ok(s) => Ok(s),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Err(config.unknown_stream(name))
            }
            GetStreamErrorKind::Request => {
                Err(config.unreachable(format!("looking up stream '{name}'"), e))
            }
            _ => Err(config.client_error(format!("looking up stream '{name}'"), e)),
        },
    }
}

impl fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for NatsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers = self
            .config
            .servers
            .replace("nats://", "")
            .replace("tls://", "");
        write!(f, "nats://{servers}/{}", self.config.stream)?;
        match &self.config.partitioning {
            NatsPartitioning::Stream => Ok(()),
            NatsPartitioning::Subjects(list) => write!(f, " subjects={}", list.join(",")),
            NatsPartitioning::SubjectWildcard(w) => write!(f, " subjects={w}"),
            NatsPartitioning::Streams(n) => {
                write!(f, " streams={}-0..{}", self.config.stream, n - 1)
            }
        }
    }
}

#[async_trait]
impl LogSource for NatsSource {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn topic(&self) -> &str {
        &self.config.stream
    }

    fn topic_of(&self, partition: i32) -> String {
        self.config.stream_of(partition)
    }

    async fn partitions(&self) -> Result<Vec<i32>> {
        let js = self.context().await?;
        let config = &self.config;
        let mapping: BTreeMap<i32, String> = match &config.partitioning {
            NatsPartitioning::Stream => {
                get_stream(&js, config, &config.stream).await?;
                return Ok(vec![0]);
            }
            NatsPartitioning::Streams(n) => {
                for p in 0..*n as i32 {
                    get_stream(&js, config, &config.stream_of(p)).await?;
                }
                return Ok((0..*n as i32).collect());
            }
            NatsPartitioning::Subjects(list) => {
                let stream = get_stream(&js, config, &config.stream).await?;
                let captured = &stream.cached_info().config.subjects;
                for s in list {
                    if !captured.iter().any(|c| subject_matches(c, s)) {
                        return Err(TopicsError::InvalidOption {
                            key: "nats.subjects".into(),
                            value: s.clone(),
                            reason: format!(
                                "stream '{}' does not capture this subject (its subjects: {})",
                                config.stream,
                                captured.join(", ")
                            ),
                        });
                    }
                }
                list.iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, s)| (i as i32, s))
                    .collect()
            }
            NatsPartitioning::SubjectWildcard(pattern) => {
                let stream = get_stream(&js, config, &config.stream).await?;
                let action = format!("listing subjects '{pattern}' of stream '{}'", config.stream);
                let info = stream
                    .info_with_subjects(pattern.as_str())
                    .await
                    .map_err(|e| config.client_error(&action, e))?;
                use futures::TryStreamExt;
                let mut subjects: Vec<String> = info
                    .map_ok(|(subject, _count)| subject)
                    .try_collect()
                    .await
                    .map_err(|e| config.client_error(&action, e))?;
                subjects.sort();
                if subjects.is_empty() {
                    // No message yet: fine when the stream captures the wildcard (the table is
                    // empty until one arrives), an error when it never can.
                    let captured = stream
                        .cached_info()
                        .config
                        .subjects
                        .iter()
                        .any(|s| subject_matches(s, pattern));
                    if !captured {
                        return Err(TopicsError::InvalidOption {
                            key: "nats.subjects".into(),
                            value: pattern.clone(),
                            reason: format!(
                                "stream '{}' does not capture these subjects (its subjects are {:?})",
                                config.stream,
                                stream.cached_info().config.subjects
                            ),
                        });
                    }
                }
                wildcard_partitions(pattern, subjects)
            }
        };
        let ids = mapping.keys().copied().collect();
        *self.subjects.lock().unwrap_or_else(|p| p.into_inner()) = mapping;
        Ok(ids)
    }

    async fn watermarks(&self, partitions: &[i32]) -> Result<Vec<Watermarks>> {
        let mut out = Vec::with_capacity(partitions.len());
        for &p in partitions {
            out.push(self.bounds(p).await?);
        }
        Ok(out)
    }

    async fn offsets_for_timestamp(
        &self,
        partitions: &[i32],
        timestamp_ms: i64,
    ) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let marks = self.bounds(p).await?;
            let stream = self.stream(p).await?;
            let subject = self.subject_of(p)?;
            let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(timestamp_ms) * 1_000_000,
            )
            .map_err(|e| TopicsError::InvalidOption {
                key: "_timestamp".into(),
                value: timestamp_ms.to_string(),
                reason: e.to_string(),
            })?;
            let action = format!(
                "looking up stream '{}' partition {p} by time",
                self.config.stream_of(p)
            );
            let first = reader::first_sequence_from(
                &stream,
                subject,
                consumer::DeliverPolicy::ByStartTime { start_time },
                self.config.timeout,
            )
            .await
            .map_err(|e| self.config.client_error(&action, e))?;
            out.push(first.map_or(marks.high, |s| s as i64));
        }
        Ok(out)
    }

    async fn timestamps_ordered(&self) -> Result<bool> {
        // JetStream stamps messages when it stores them: timestamps follow sequences.
        Ok(true)
    }

    fn read(&self, partition: i32, range: OffsetRange, request: ReadRequest) -> RawBatchStream {
        let subject = self.subject_of(partition);
        let stream_name = self.config.stream_of(partition);
        reader::read_partition(
            self.config.clone(),
            Arc::clone(&self.client),
            stream_name,
            partition,
            subject,
            range,
            request,
        )
    }
}

/// Numbers wildcard subjects: by their wildcard token when every one is a number, else in order.
fn wildcard_partitions(pattern: &str, subjects: Vec<String>) -> BTreeMap<i32, String> {
    let position = pattern.split('.').position(|t| t == "*");
    let numbered: Option<BTreeMap<i32, String>> = position.and_then(|pos| {
        subjects
            .iter()
            .map(|s| {
                s.split('.')
                    .nth(pos)
                    .and_then(|t| t.parse::<i32>().ok())
                    .map(|n| (n, s.clone()))
            })
            .collect()
    });
    match numbered {
        Some(map) if map.len() == subjects.len() => map,
        _ => subjects
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i as i32, s))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_subjects_take_their_number_as_partition() {
        let m = wildcard_partitions("orders.*", vec!["orders.10".into(), "orders.2".into()]);
        assert_eq!(
            m,
            BTreeMap::from([(2, "orders.2".to_string()), (10, "orders.10".to_string())])
        );
        let m = wildcard_partitions("orders.*", vec!["orders.a".into(), "orders.b".into()]);
        assert_eq!(
            m,
            BTreeMap::from([(0, "orders.a".to_string()), (1, "orders.b".to_string())])
        );
    }
}
