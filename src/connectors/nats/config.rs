//! NATS connection settings, authentication and partition mapping.

use std::time::Duration;

use crate::error::{Result, TopicsError};
use crate::secret::ClientProperties;

/// How the partitions of a table map onto JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsPartitioning {
    /// The whole stream is partition 0.
    Stream,
    /// Partition `i` is the `i`-th of these filter subjects (an explicit list).
    Subjects(Vec<String>),
    /// One partition per subject of the stream matching this wildcard. When the subjects'
    /// wildcard tokens are all numbers (`orders.0` … `orders.7`, as `{{partition(8, …)}}`
    /// subject transforms produce), the number is the partition id; otherwise partitions are
    /// numbered in sorted subject order.
    SubjectWildcard(String),
    /// Partition `i` is the stream `<name>-<i>`, for `i` in `0..count` (the legacy layout of
    /// the NATS Spark connector).
    Streams(u32),
}

/// Where a work queue's durable consumer starts when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStart {
    /// Every message the stream holds (`scan.startup.mode = earliest`).
    All,
    /// Messages stored after the consumer was created (`latest`).
    New,
    /// Messages stored at or after this time, in ms since the epoch (`timestamp`).
    Time(i64),
}

/// Work-queue mode: a durable pull consumer shared by the table's readers (and by every
/// process that names it), each message acknowledged once read, at-least-once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkQueueConfig {
    /// The durable consumer's name (created when missing).
    pub consumer: String,
    /// Parallel readers, one output partition each.
    pub readers: u32,
    /// How long the server waits for an acknowledgement before redelivering.
    pub ack_wait: Duration,
    /// Most messages delivered and not yet acknowledged, over all readers of the consumer;
    /// also the most one micro-batch can read.
    pub max_ack_pending: i64,
    /// Where a newly created consumer starts.
    pub start: QueueStart,
}

impl WorkQueueConfig {
    /// Settings for the durable consumer `consumer`: one reader, 30 s ack wait, 65536
    /// unacknowledged messages, starting at the earliest message.
    pub fn new(consumer: String) -> Self {
        Self {
            consumer,
            readers: 1,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 65_536,
            start: QueueStart::All,
        }
    }
}

/// TLS settings for the NATS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// Require TLS (also implied by a `tls://` location or any file below).
    pub required: bool,
    /// PEM file of the certificate authorities to trust (for self-signed servers).
    pub ca_file: Option<String>,
    /// Client certificate (PEM) for mutual TLS, with `key_file`.
    pub cert_file: Option<String>,
    /// Client private key (PEM) for mutual TLS.
    pub key_file: Option<String>,
}

/// Where a JetStream stream lives and how to connect.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Comma-separated server URLs (`nats://host:port`).
    pub servers: String,
    /// The stream name (for [`NatsPartitioning::Streams`], the prefix before `-<i>`).
    pub stream: String,
    /// Partition mapping.
    pub partitioning: NatsPartitioning,
    /// Credentials: `user`, `password`, `token`, `creds-file`, `nkey-seed` (never printed).
    pub auth: ClientProperties,
    /// Upper bound for connecting and for each JetStream request.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: NatsTls,
    /// Work-queue mode (`nats.mode = work-queue`); `None` reads ordered ranges.
    pub work_queue: Option<WorkQueueConfig>,
}

impl NatsConfig {
    /// Settings for `stream` on `servers`, one partition, no credentials, 10 s timeout.
    pub fn new(servers: String, stream: String) -> Self {
        Self {
            tls: NatsTls {
                required: servers_use_tls(&servers),
                ..Default::default()
            },
            servers,
            stream,
            partitioning: NatsPartitioning::Stream,
            auth: ClientProperties::new(),
            timeout: Duration::from_secs(10),
            work_queue: None,
        }
    }

    /// The stream holding `partition` (differs per partition only for the `streams` mapping).
    pub fn stream_of(&self, partition: i32) -> String {
        match self.partitioning {
            NatsPartitioning::Streams(_) => format!("{}-{partition}", self.stream),
            _ => self.stream.clone(),
        }
    }

    /// Wraps a client error with what we were doing; secrets are scrubbed from the text.
    pub(crate) fn client_error(
        &self,
        action: impl Into<String>,
        err: impl ToString,
    ) -> TopicsError {
        TopicsError::Client {
            kind: "nats",
            action: action.into(),
            detail: self.auth.scrub(err.to_string()),
        }
    }

    /// The error for a server that did not answer in time.
    pub(crate) fn unreachable(&self, action: impl Into<String>, err: impl ToString) -> TopicsError {
        TopicsError::Unreachable {
            kind: "nats",
            brokers: self.servers.clone(),
            timeout: self.timeout,
            action: action.into(),
            detail: self.auth.scrub(err.to_string()),
        }
    }

    /// The error for a stream that does not exist.
    pub(crate) fn unknown_stream(&self, stream: &str) -> TopicsError {
        TopicsError::UnknownTopic {
            kind: "nats",
            topic: stream.to_string(),
            brokers: self.servers.clone(),
        }
    }
}

fn servers_use_tls(servers: &str) -> bool {
    servers.split(',').any(|s| s.starts_with("tls://"))
}

/// The environment variable that supplies server URLs to a `nats:///STREAM` location.
pub const NATS_URL_ENV: &str = "NATS_URL";

fn check_stream_name(stream: &str) -> std::result::Result<(), String> {
    if stream.is_empty()
        || !stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(format!(
            "'{stream}' is not a valid JetStream stream name (letters, digits, '-', '_')"
        ));
    }
    Ok(())
}

/// Splits `nats://h1:4222[,h2:4222]/STREAM` into server URLs and stream name (`A,B` for a
/// table over several streams); `nats:///STREAM` takes the server URLs from the `NATS_URL`
/// environment variable.
pub fn parse_nats_location(location: &str) -> Result<(String, String)> {
    let (servers, streams) =
        parse_nats_location_with(location, false, || std::env::var(NATS_URL_ENV).ok())?;
    Ok((servers, streams.join(",")))
}

/// [`parse_nats_location`] into the stream list (empty when `pattern` says the streams come
/// from `topic.pattern`), with the environment lookup supplied by the caller.
pub(super) fn parse_nats_location_with(
    location: &str,
    pattern: bool,
    servers_from_env: impl FnOnce() -> Option<String>,
) -> Result<(String, Vec<String>)> {
    let bad = |reason: &str| TopicsError::InvalidLocation {
        location: location.to_string(),
        reason: reason.to_string(),
    };
    let (scheme, rest) = location
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "nats" | "tls"))
        .ok_or_else(|| bad("expected nats://host:port[,host:port…]/STREAM[,STREAM…]"))?;
    let (servers, streams) = rest
        .split_once('/')
        .ok_or_else(|| bad("no stream: expected nats://host:port/STREAM"))?;
    let streams = streams.trim_end_matches('/');
    let names: Vec<String> = if pattern {
        if !streams.is_empty() {
            return Err(bad(
                "with 'topic.pattern' the location names no stream (nats:/// or nats://host:port/)",
            ));
        }
        Vec::new()
    } else {
        let mut names: Vec<String> = Vec::new();
        for stream in streams.split(',') {
            let stream = stream.trim();
            check_stream_name(stream).map_err(|r| bad(&r))?;
            if names.iter().any(|n| n == stream) {
                return Err(bad(&format!("stream '{stream}' is named twice")));
            }
            names.push(stream.to_string());
        }
        names
    };
    if servers.is_empty() {
        // `nats:///STREAM`: the server URLs come from the environment, scheme included.
        let urls = servers_from_env().ok_or_else(|| {
            bad(&format!(
                "no server before the stream, and {NATS_URL_ENV} is not set \
                 (nats:///STREAM takes the servers from it)"
            ))
        })?;
        return Ok((urls.trim().to_string(), names));
    }
    let urls: Vec<String> = servers
        .split(',')
        .map(|s| format!("{scheme}://{s}"))
        .collect();
    Ok((urls.join(","), names))
}

/// True when `subject` matches the NATS subject pattern (`*` one token, `>` the rest).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_subjects() {
        assert_eq!(
            parse_nats_location("nats://127.0.0.1:4222,h:4223/ORDERS").unwrap(),
            (
                "nats://127.0.0.1:4222,nats://h:4223".to_string(),
                "ORDERS".to_string()
            )
        );
        assert!(parse_nats_location("nats://h:1/").is_err());
        assert!(parse_nats_location("kafka://h:1/x").is_err());
        assert!(parse_nats_location("nats://h:1/a.b").is_err());
        assert_eq!(
            parse_nats_location("nats://h:1/A,B").unwrap(),
            ("nats://h:1".to_string(), "A,B".to_string())
        );
        assert!(parse_nats_location("nats://h:1/A,A").is_err());
        assert!(parse_nats_location_with("nats://h:1/A", true, || None).is_err());
        let err = parse_nats_location_with("nats:///S", false, || None).unwrap_err();
        assert!(err.to_string().contains("NATS_URL is not set"), "{err}");
        assert_eq!(
            parse_nats_location_with("nats:///S", false, || Some("nats://h:1".into()))
                .map(|(s, n)| (s, n.join(",")))
                .unwrap(),
            ("nats://h:1".to_string(), "S".to_string())
        );
        assert!(
            parse_nats_location_with("nats:///a.b", false, || Some("nats://h:1".into())).is_err()
        );
        assert!(subject_matches("orders.*", "orders.1"));
        assert!(!subject_matches("orders.*", "orders.1.x"));
        assert!(subject_matches("orders.>", "orders.1.x"));
        assert!(!subject_matches("orders.>", "orders"));
        assert!(subject_matches("a.b", "a.b"));
    }
}
