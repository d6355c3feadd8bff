//! Typed errors: each says what went wrong and where (topic, partition, offset, option, URL).

use std::time::Duration;

use datafusion::error::DataFusionError;

/// Result alias used throughout the crate.
pub type Result<T, E = TopicsError> = std::result::Result<T, E>;

/// Everything that can go wrong while planning or reading a topic table.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// An option key that this table type does not know.
    #[error("unknown option '{key}'; valid options are: {valid}")]
    UnknownOption {
        /// The key as the user wrote it.
        key: String,
        /// Comma-separated list of the accepted keys.
        valid: String,
    },

    /// An option whose value could not be parsed or is not allowed.
    #[error("invalid value {value:?} for option '{key}': {reason}")]
    InvalidOption {
        /// The option key.
        key: String,
        /// The offending value (already redacted when the key holds a secret).
        value: String,
        /// Why it was rejected and what is expected instead.
        reason: String,
    },

    /// An option that does not fit the other options (for example a CSV setting on an Avro
    /// table).
    #[error("option '{key}' {reason}")]
    OptionConflict {
        /// The option key.
        key: String,
        /// Why it does not fit.
        reason: String,
    },

    /// The schema registry could not be reached, refused a request, or sent something
    /// unusable.
    #[error("schema registry {url}: {detail}")]
    Registry {
        /// The registry URL, including the path asked for.
        url: String,
        /// What went wrong.
        detail: String,
    },

    /// A LOCATION that is not a valid `kafka://…/topic` (or `nats://…/stream`) URL.
    #[error("invalid location '{location}': {reason}")]
    InvalidLocation {
        /// The location string.
        location: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The declared value schema cannot be used (for example it shadows a metadata column).
    #[error("invalid schema: {0}")]
    InvalidSchema(String),

    /// A query or statement this crate cannot run as asked (a continuous query without an
    /// INSERT, a shape the runner cannot run incrementally, …); the message says what and
    /// how to change it. Reaches DataFusion as a planning error.
    #[error("{0}")]
    Plan(String),

    /// A broken invariant inside this crate: a bug, never the user's doing. Reaches DataFusion
    /// as an internal error.
    #[error("internal error in datafusion-topics: {0}")]
    Internal(String),

    /// The topic (or stream) does not exist on the broker.
    #[error("{kind} topic '{topic}' does not exist on {brokers}")]
    UnknownTopic {
        /// "kafka" or "nats".
        kind: &'static str,
        /// The topic or stream name.
        topic: String,
        /// Where we looked.
        brokers: String,
    },

    /// The brokers did not answer within the configured timeout.
    #[error(
        "{kind} brokers at {brokers} did not answer within {timeout:?} while {action}: {detail} (option 'connect.timeout' sets this limit)"
    )]
    Unreachable {
        /// "kafka" or "nats".
        kind: &'static str,
        /// The bootstrap servers or URL.
        brokers: String,
        /// The limit that expired.
        timeout: Duration,
        /// What we were doing.
        action: String,
        /// The client's own error text.
        detail: String,
    },

    /// A requested start or end offset lies outside what the partition holds.
    #[error(
        "offset {offset} for {topic} partition {partition} is out of range: the partition holds offsets [{low}, {high}){hint}"
    )]
    OffsetOutOfRange {
        /// Topic or stream name.
        topic: String,
        /// Partition id.
        partition: i32,
        /// The offending offset.
        offset: i64,
        /// First available offset.
        low: i64,
        /// Next offset to be written.
        high: i64,
        /// Extra advice.
        hint: String,
    },

    /// Offsets a scan needs were removed by retention (or compaction) before they could be read.
    #[error(
        "data loss in {topic} partition {partition}: offset {offset} is no longer available ({detail})"
    )]
    DataLoss {
        /// Topic or stream name.
        topic: String,
        /// Partition id.
        partition: i32,
        /// First offset that could not be read.
        offset: i64,
        /// Broker or client detail.
        detail: String,
    },

    /// A message value (or key) could not be decoded in the table's format.
    #[error(
        "cannot decode {what} of message at {topic} partition {partition} offset {offset} as {format}: {reason}"
    )]
    Decode {
        /// "value" or "key".
        what: &'static str,
        /// Topic or stream name.
        topic: String,
        /// Partition id.
        partition: i32,
        /// Offset of the bad message.
        offset: i64,
        /// The format name.
        format: String,
        /// The decoder's complaint.
        reason: String,
    },

    /// Any other client error, with what we were doing when it happened.
    #[error("{kind} error while {action}: {detail}")]
    Client {
        /// "kafka" or "nats".
        kind: &'static str,
        /// What we were doing, including topic/partition where relevant.
        action: String,
        /// The client's error text (secrets scrubbed).
        detail: String,
    },

    /// A checkpoint that cannot be read, written or trusted (malformed file, another query's
    /// checkpoint, object-store failure).
    #[error("checkpoint {url}: {detail}")]
    Checkpoint {
        /// The checkpoint location.
        url: String,
        /// What is wrong, naming the file where one is involved.
        detail: String,
    },

    /// Another runner wrote to the same checkpoint: this one must stop.
    #[error(
        "checkpoint {url}: {file} was already written by another runner ({detail}); two continuous queries cannot share a checkpoint, so this one stops"
    )]
    Fenced {
        /// The checkpoint location.
        url: String,
        /// The file whose put-if-absent failed.
        file: String,
        /// Who wrote it and when, if readable.
        detail: String,
    },

    /// Writing query results to a sink failed.
    #[error("sink {target}: {detail}")]
    Sink {
        /// Where the rows were going.
        target: String,
        /// What went wrong.
        detail: String,
    },

    /// An Arrow error while assembling batches.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// An error of the query engine while this crate ran part of a plan itself (the stages
    /// of a stateful batch).
    #[error(transparent)]
    DataFusion(Box<DataFusionError>),
}

impl From<DataFusionError> for TopicsError {
    fn from(e: DataFusionError) -> Self {
        // Our own errors come back as themselves.
        match e {
            DataFusionError::External(inner) => match inner.downcast::<TopicsError>() {
                Ok(ours) => *ours,
                Err(other) => Self::DataFusion(Box::new(DataFusionError::External(other))),
            },
            other => Self::DataFusion(Box::new(other)),
        }
    }
}

impl TopicsError {
    /// An invalid-option error; the value is hidden when the key names a secret.
    pub fn invalid_option(key: &str, value: &str, reason: &str) -> Self {
        Self::InvalidOption {
            key: key.to_string(),
            value: if crate::secret::is_secret_key(key) {
                crate::secret::REDACTED.to_string()
            } else {
                value.to_string()
            },
            reason: reason.to_string(),
        }
    }

    /// A planning error: a query or statement that cannot run as asked.
    pub fn plan(detail: impl Into<String>) -> Self {
        Self::Plan(detail.into())
    }

    /// An internal error: a broken invariant.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal(detail.into())
    }
}

impl From<TopicsError> for DataFusionError {
    /// Plan and internal errors become DataFusion's own kinds; every other error travels as
    /// `External`, so callers can downcast it back to a [`TopicsError`].
    fn from(e: TopicsError) -> Self {
        match e {
            TopicsError::Arrow(a) => DataFusionError::ArrowError(Box::new(a), None),
            TopicsError::DataFusion(inner) => *inner,
            TopicsError::Plan(detail) => DataFusionError::Plan(detail),
            TopicsError::Internal(detail) => {
                DataFusionError::Internal(format!("datafusion-topics: {detail}"))
            }
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// The [`TopicsError`] inside a DataFusion error, if there is one (directly or wrapped in
/// context), for messages that should show ours rather than DataFusion's wrapping.
pub fn topics_error(e: &DataFusionError) -> Option<&TopicsError> {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<TopicsError>(),
        DataFusionError::Context(_, inner) => topics_error(inner),
        DataFusionError::Shared(inner) => topics_error(inner),
        _ => None,
    }
}
