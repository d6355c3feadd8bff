//! Typed, validated table options: the one documented list of keys and their parsing.
//!
//! Key names follow Flink's Kafka SQL connector where one exists. Client properties pass
//! through with a prefix: `kafka.<librdkafka property>`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};

use crate::error::{Result, TopicsError};
use crate::format::{ErrorPolicy, FormatSpec, Side};
use crate::secret::{REDACTED, is_secret_key};
use crate::sink::Recovery;
use crate::source::kafka::{KafkaConfig, TopicCreation};
use crate::source::nats::{
    NatsConfig, NatsPartitioning, QueueStart, WorkQueueConfig, parse_nats_location,
};

/// One documented table option: its key, accepted values, default and meaning.
#[derive(Debug, Clone, Copy)]
pub struct OptionDoc {
    /// The option key (a trailing `*` marks a prefix).
    pub key: &'static str,
    /// Accepted values.
    pub values: &'static str,
    /// Default when absent.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

/// Options every topic table accepts, whatever its source.
pub const SCAN_OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        key: "value.format",
        values: "raw | string | json | csv | avro | protobuf",
        default: "json with a column list, raw without",
        meaning: "How message values are decoded into columns (and encoded by INSERT).",
    },
    OptionDoc {
        key: "key.format",
        values: "raw | string | json | csv | avro | protobuf",
        default: "json when `_key` is declared as a STRUCT, string when declared VARCHAR, else raw",
        meaning: "How message keys are decoded into the `_key` column: bytes, text, or a struct of the key's fields.",
    },
    OptionDoc {
        key: "value.avro.schema",
        values: "Avro schema JSON (also key.avro.schema)",
        default: "",
        meaning: "The reader schema of an avro format; its fields are the columns. value.avro.schema-file reads it from a file.",
    },
    OptionDoc {
        key: "value.avro.schema-file",
        values: "path of an .avsc file (also key.avro.schema-file)",
        default: "",
        meaning: "The reader schema, from a file.",
    },
    OptionDoc {
        key: "value.avro.writer-schema",
        values: "Avro schema JSON, or value.avro.writer-schema-file (also key.…)",
        default: "the reader schema",
        meaning: "The schema plain (unframed) Avro messages were written with, when it differs from the reader schema; Avro schema resolution maps it to the reader's columns.",
    },
    OptionDoc {
        key: "value.avro.writer-schema-file",
        values: "path of an .avsc file (also key.…)",
        default: "",
        meaning: "The writer schema, from a file.",
    },
    OptionDoc {
        key: "value.protobuf.schema-file",
        values: "path of a .proto file or a compiled descriptor set (also key.…)",
        default: "",
        meaning: "The message types of a protobuf format; imports are looked up beside the file.",
    },
    OptionDoc {
        key: "value.protobuf.message",
        values: "fully qualified message name (also key.…)",
        default: "the first message of the file",
        meaning: "Which message type the messages hold.",
    },
    OptionDoc {
        key: "value.csv.delimiter",
        values: "one character (also value.csv.quote, value.csv.escape; key.csv.…)",
        default: ", (quote \", no escape: quotes are doubled)",
        meaning: "The CSV dialect; each message is one record whose fields are the declared columns in order.",
    },
    OptionDoc {
        key: "value.csv.quote",
        values: "one character",
        default: "\"",
        meaning: "CSV quote character.",
    },
    OptionDoc {
        key: "value.csv.escape",
        values: "one character",
        default: "none (quotes are doubled)",
        meaning: "CSV escape character inside quotes.",
    },
    OptionDoc {
        key: "value.csv.null-literal",
        values: "text (also key.csv.null-literal)",
        default: "the empty field",
        meaning: "The CSV field text that stands for NULL.",
    },
    OptionDoc {
        key: "value.framing",
        values: "none | confluent (also key.framing)",
        default: "confluent for avro and protobuf when schema-registry.url is set, else none",
        meaning: "Confluent's wire format: magic byte, 4-byte schema id (protobuf: message-index path), then the payload. Writer schemas are looked up by id, so schema changes mid-stream decode into the table's columns.",
    },
    OptionDoc {
        key: "value.subject",
        values: "registry subject (also key.subject)",
        default: "<topic>-value / <topic>-key",
        meaning: "The subject whose latest schema is the reader schema when no schema option is given, and under which INSERT registers the schema it writes.",
    },
    OptionDoc {
        key: "schema-registry.url",
        values: "http(s)://host:port of a Confluent-compatible schema registry",
        default: "",
        meaning: "Resolves Confluent-framed schema ids (cached per table) and subjects.",
    },
    OptionDoc {
        key: "schema-registry.user",
        values: "user name (with schema-registry.password)",
        default: "",
        meaning: "Basic authentication for the schema registry; the password is never printed.",
    },
    OptionDoc {
        key: "schema-registry.password",
        values: "password",
        default: "",
        meaning: "Basic authentication password for the schema registry.",
    },
    OptionDoc {
        key: "value.on-error",
        values: "fail | skip | dead-letter",
        default: "fail",
        meaning: "A message whose key or value cannot be decoded: fail the query (naming topic, partition, offset and why), leave it out (counted in the messages_bad metric), or keep it with null columns and the `_error` and `_raw` columns set.",
    },
    OptionDoc {
        key: "value.dead-letter.topic",
        values: "topic (Kafka) or subject (NATS) on the same brokers",
        default: "",
        meaning: "With value.on-error skip or dead-letter: also produce each bad message there, with headers dlt.topic, dlt.partition, dlt.offset and dlt.error (and key topic/partition/offset, so a repeat is recognisable).",
    },
    OptionDoc {
        key: "value.json.infer-sample-size",
        values: "number of messages",
        default: "1000",
        meaning: "With value.format json and no column list in CREATE EXTERNAL TABLE: how many of the newest messages (spread over the partitions) the columns are inferred from.",
    },
    OptionDoc {
        key: "scan.startup.mode",
        values: "earliest-offset | latest-offset | group-offsets | timestamp | specific-offsets",
        default: "earliest-offset",
        meaning: "Where each partition's scan starts.",
    },
    OptionDoc {
        key: "scan.startup.timestamp-millis",
        values: "milliseconds since the epoch",
        default: "",
        meaning: "Start at the first message at or after this time (with scan.startup.mode = timestamp).",
    },
    OptionDoc {
        key: "scan.startup.specific-offsets",
        values: "partition:0,offset:42;partition:1,offset:7",
        default: "",
        meaning: "Start offsets per partition (with scan.startup.mode = specific-offsets); unlisted partitions start at the earliest offset.",
    },
    OptionDoc {
        key: "scan.bounded.mode",
        values: "unbounded | latest-offset | timestamp | specific-offsets",
        default: "unbounded",
        meaning: "Where each partition's scan ends: never (follow the log), at the high watermark when the query starts (a snapshot), at a time, or at given offsets.",
    },
    OptionDoc {
        key: "scan.bounded.timestamp-millis",
        values: "milliseconds since the epoch",
        default: "",
        meaning: "End before the first message at or after this time (with scan.bounded.mode = timestamp).",
    },
    OptionDoc {
        key: "scan.bounded.specific-offsets",
        values: "partition:0,offset:42;partition:1,offset:7",
        default: "",
        meaning: "Exclusive end offsets per partition (with scan.bounded.mode = specific-offsets); unlisted partitions end at the high watermark when the query starts.",
    },
    OptionDoc {
        key: "scan.fail-on-data-loss",
        values: "true | false",
        default: "true",
        meaning: "When offsets a scan needs were removed by retention (or purged), fail the query (true) or skip them and count them in the offsets_skipped metric (false).",
    },
    OptionDoc {
        key: "scan.timestamp.max-skew",
        values: "duration such as 0s, 500ms, 30s",
        default: "unset (0 for log-append-time topics)",
        meaning: "Declares that no message's timestamp is more than this much earlier than that of a message before it in its partition, so `_timestamp <` filters can end the scan.",
    },
];

/// Options only Kafka tables accept (besides [`SCAN_OPTIONS`]).
pub const KAFKA_OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        key: "sink.recovery",
        values: "positional | identity-header | transactional",
        default: "positional",
        meaning: "How a continuous query writing to this topic finds, after a crash, what an interrupted batch already wrote: by counting what each output partition gained (needs the query to be the topic's only producer); by a dft-id header on every message (other producers allowed; costs a header per message); or transactional: each batch is one Kafka transaction (brokers with transactions only) with dft-id headers, so read-committed consumers see whole batches once, never part of one.",
    },
    OptionDoc {
        key: "topic.create",
        values: "true | false",
        default: "false",
        meaning: "Create the topic when CREATE EXTERNAL TABLE finds it missing (Kafka: with topic.partitions and topic.replication-factor; NATS: a stream capturing the subjects the partition mapping reads, or the stream's own name).",
    },
    OptionDoc {
        key: "topic.partitions",
        values: "number",
        default: "1",
        meaning: "Partitions of a topic created by topic.create.",
    },
    OptionDoc {
        key: "topic.replication-factor",
        values: "number",
        default: "1",
        meaning: "Replication factor of a topic created by topic.create.",
    },
    OptionDoc {
        key: "properties.group.id",
        values: "consumer group id",
        default: "",
        meaning: "Group whose committed offsets scan.startup.mode = group-offsets starts from, and the group.id clients present (for ACLs). Scans never join the group nor commit to it.",
    },
    OptionDoc {
        key: "kafka.*",
        values: "any librdkafka property",
        default: "",
        meaning: "Passed to the client as is (security.protocol, sasl.*, ssl.*, fetch tuning). Secrets are never printed.",
    },
    OptionDoc {
        key: "connect.timeout",
        values: "duration such as 500ms, 10s, 1m",
        default: "10s",
        meaning: "How long metadata requests may wait for the brokers before the query fails.",
    },
];

/// Options only NATS tables accept (besides [`SCAN_OPTIONS`]).
pub const NATS_OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        key: "topic.create",
        values: "true | false",
        default: "false",
        meaning: "Create the topic when CREATE EXTERNAL TABLE finds it missing (Kafka: with topic.partitions and topic.replication-factor; NATS: a stream capturing the subjects the partition mapping reads, or the stream's own name).",
    },
    OptionDoc {
        key: "nats.partitioning",
        values: "stream | subject | streams",
        default: "stream",
        meaning: "How partitions map onto JetStream: the whole stream is one partition; one partition per filter subject (nats.subjects); or the streams <name>-0 … <name>-<n-1> (nats.partitions).",
    },
    OptionDoc {
        key: "nats.subjects",
        values: "subject list (a,b,c) or one wildcard (orders.*)",
        default: "",
        meaning: "With nats.partitioning = subject: partition i reads the i-th subject; with a wildcard, one partition per matching subject (numbered by the wildcard token when it is a number, as {{partition(n, ...)}} transforms produce).",
    },
    OptionDoc {
        key: "nats.partitions",
        values: "number of streams",
        default: "",
        meaning: "With nats.partitioning = streams: how many streams <name>-0 … <name>-<n-1> there are.",
    },
    OptionDoc {
        key: "nats.mode",
        values: "ordered | work-queue",
        default: "ordered",
        meaning: "ordered: each partition is read by its own ephemeral ordered consumer from the offsets the scan planned, so reads are repeatable and continuous queries exactly-once. work-queue: the table's readers pull from one durable consumer (nats.work-queue.consumer) shared with every process naming it, and acknowledge each message once used: at-least-once, no offset pushdown.",
    },
    OptionDoc {
        key: "nats.work-queue.consumer",
        values: "durable consumer name (letters, digits, '-', '_')",
        default: "",
        meaning: "With nats.mode = work-queue: the durable pull consumer, created when missing (starting where scan.startup.mode says: earliest, latest or timestamp). An existing one must pull, ack explicitly and filter on the table's subjects.",
    },
    OptionDoc {
        key: "nats.work-queue.readers",
        values: "1 to 256",
        default: "1",
        meaning: "Parallel readers of the consumer, one output partition each (`_partition` is the reader).",
    },
    OptionDoc {
        key: "nats.work-queue.ack-wait",
        values: "duration such as 30s, 5m",
        default: "30s",
        meaning: "How long the server waits for a message's acknowledgement before delivering it again; a micro-batch must commit within it. Used when the consumer is created.",
    },
    OptionDoc {
        key: "nats.work-queue.max-ack-pending",
        values: "number",
        default: "65536",
        meaning: "Most messages delivered but not yet acknowledged, over all readers: the most one micro-batch reads. Used when the consumer is created.",
    },
    OptionDoc {
        key: "nats.tls.required",
        values: "true | false",
        default: "false (true for tls:// locations)",
        meaning: "Require TLS.",
    },
    OptionDoc {
        key: "nats.tls.ca-file",
        values: "path to PEM",
        default: "",
        meaning: "Certificate authorities to trust (for example a self-signed server's); implies TLS.",
    },
    OptionDoc {
        key: "nats.tls.cert-file",
        values: "path to PEM",
        default: "",
        meaning: "Client certificate for mutual TLS (with nats.tls.key-file).",
    },
    OptionDoc {
        key: "nats.tls.key-file",
        values: "path to PEM",
        default: "",
        meaning: "Client private key for mutual TLS.",
    },
    OptionDoc {
        key: "nats.user",
        values: "user name",
        default: "",
        meaning: "User for user/password authentication (with nats.password).",
    },
    OptionDoc {
        key: "nats.password",
        values: "password",
        default: "",
        meaning: "Password (never printed).",
    },
    OptionDoc {
        key: "nats.token",
        values: "token",
        default: "",
        meaning: "Token authentication (never printed).",
    },
    OptionDoc {
        key: "nats.creds-file",
        values: "path",
        default: "",
        meaning: "Credentials file (JWT + nkey seed).",
    },
    OptionDoc {
        key: "nats.nkey-seed",
        values: "nkey seed",
        default: "",
        meaning: "NKey seed authentication (never printed).",
    },
    OptionDoc {
        key: "connect.timeout",
        values: "duration such as 500ms, 10s, 1m",
        default: "10s",
        meaning: "How long metadata requests may wait for the brokers before the query fails.",
    },
];

/// Where each partition's scan starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMode {
    /// The first available offset (low watermark).
    Earliest,
    /// The high watermark when the query starts: only new messages.
    Latest,
    /// The committed offsets of a consumer group (`properties.group.id`); earliest where none.
    GroupOffsets,
    /// The first message whose timestamp is at or after this many milliseconds since the epoch.
    Timestamp(i64),
    /// Explicit offsets per partition; unlisted partitions start at the earliest offset.
    SpecificOffsets(BTreeMap<i32, i64>),
}

/// Where each partition's scan ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundedMode {
    /// Never: the scan follows the log.
    Unbounded,
    /// The high watermark when the query starts (a snapshot).
    LatestOffset,
    /// Before the first message whose timestamp is at or after this many milliseconds.
    Timestamp(i64),
    /// Explicit exclusive end offsets; unlisted partitions end at the high watermark.
    SpecificOffsets(BTreeMap<i32, i64>),
}

/// Source-independent scan settings of one table.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The value format's options.
    pub value: FormatSpec,
    /// The key format's options.
    pub key: FormatSpec,
    /// The `_key` type declared in the DDL column list, if any.
    pub declared_key: Option<arrow::datatypes::DataType>,
    /// What to do with messages that cannot be decoded (`value.on-error`).
    pub on_error: ErrorPolicy,
    /// Where bad messages are also produced (`value.dead-letter.topic`).
    pub dead_letter_topic: Option<String>,
    /// The schema registry (`schema-registry.*`).
    pub registry: Option<RegistryOptions>,
    /// Where partitions start.
    pub startup: StartupMode,
    /// Where partitions end.
    pub bounded: BoundedMode,
    /// Consumer group for group-offsets start.
    pub group_id: Option<String>,
    /// Declared bound on timestamp disorder within a partition (`scan.timestamp.max-skew`).
    pub timestamp_max_skew: Option<Duration>,
    /// Messages JSON schema inference samples (`value.json.infer-sample-size`).
    pub json_infer_sample: usize,
    /// Fail when offsets a scan needs were removed (`scan.fail-on-data-loss`, default true);
    /// otherwise skip them and count them in the `offsets_skipped` metric.
    pub fail_on_data_loss: bool,
    /// Restricts scans to these partitions (a continuous query's batch reads exactly the
    /// partitions it recorded, even if the topic gained some since).
    pub only_partitions: Option<BTreeSet<i32>>,
}

/// How to reach the schema registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Base URL.
    pub url: String,
    /// Basic-authentication user and password.
    pub auth: Option<(String, String)>,
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("url", &self.url)
            .field(
                "auth",
                &self.auth.as_ref().map(|(user, _)| (user, REDACTED)),
            )
            .finish()
    }
}

/// Default of `value.json.infer-sample-size`.
pub const DEFAULT_JSON_INFER_SAMPLE: usize = 1000;

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            value: FormatSpec::default(),
            key: FormatSpec::default(),
            declared_key: None,
            on_error: ErrorPolicy::Fail,
            dead_letter_topic: None,
            registry: None,
            startup: StartupMode::Earliest,
            bounded: BoundedMode::Unbounded,
            group_id: None,
            timestamp_max_skew: None,
            json_infer_sample: DEFAULT_JSON_INFER_SAMPLE,
            fail_on_data_loss: true,
            only_partitions: None,
        }
    }
}

/// A Kafka table: where the topic is, how to connect, and how to scan it.
#[derive(Debug, Clone)]
pub struct KafkaTableOptions {
    /// Connection settings and topic.
    pub kafka: KafkaConfig,
    /// Scan settings.
    pub scan: ScanOptions,
    /// The declared value schema (the DDL column list); empty for raw and string formats.
    pub value_schema: SchemaRef,
    /// Create the topic when it is missing (`topic.create`), with these settings.
    pub create: Option<TopicCreation>,
    /// How continuous-query batches written to this topic recover (`sink.recovery`).
    pub sink_recovery: Recovery,
}

impl KafkaTableOptions {
    /// Parses a `kafka://host:port[,host:port…]/topic` location and an options map.
    ///
    /// Keys may carry DataFusion's `format.` prefix (added to bare keys by `CREATE EXTERNAL
    /// TABLE`); it is ignored. `value_schema` is the declared column list (may be empty).
    pub fn parse(
        location: &str,
        value_schema: SchemaRef,
        options: &HashMap<String, String>,
    ) -> Result<Self> {
        let (bootstrap, topic) = parse_kafka_location(location)?;
        let mut kafka = KafkaConfig::new(bootstrap, topic);
        let mut group_id = None;
        let mut create = false;
        let mut sink_recovery = Recovery::Positional;
        let mut spec = TopicCreation {
            partitions: 1,
            replication: 1,
        };
        let mut scan =
            parse_scan_options(&value_schema, options, KAFKA_OPTIONS, &mut |key, value| {
                match key {
                    "topic.create" => create = parse_bool(key, value)?,
                    "topic.partitions" => spec.partitions = parse_count(key, value, 100_000)?,
                    "topic.replication-factor" => {
                        spec.replication = parse_count(key, value, i16::MAX as i32)?
                    }
                    "sink.recovery" => {
                        sink_recovery = match value.trim().to_ascii_lowercase().as_str() {
                            "positional" => Recovery::Positional,
                            "identity-header" => Recovery::IdentityHeader,
                            "transactional" => Recovery::Transactional,
                            _ => {
                                return Err(invalid(
                                    key,
                                    value,
                                    "expected positional, identity-header or transactional",
                                ));
                            }
                        }
                    }
                    "properties.group.id" => {
                        let group = non_empty(key, value)?;
                        kafka.group_id = Some(group.clone());
                        group_id = Some(group);
                    }
                    "connect.timeout" => kafka.timeout = parse_duration(key, value)?,
                    _ => match key.strip_prefix("kafka.") {
                        Some(prop) if !prop.is_empty() => kafka.set_property(prop, value)?,
                        _ => return Ok(false),
                    },
                }
                Ok(true)
            })?;
        scan.group_id = group_id;
        if scan.startup == StartupMode::GroupOffsets && scan.group_id.is_none() {
            return Err(missing(
                "properties.group.id",
                "scan.startup.mode",
                "group-offsets",
            ));
        }
        Ok(Self {
            kafka,
            scan,
            value_schema,
            create: create.then_some(spec),
            sink_recovery,
        })
    }

    /// Options for a topic with default settings and no declared columns (raw values).
    pub fn new(bootstrap: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            kafka: KafkaConfig::new(bootstrap.into(), topic.into()),
            scan: ScanOptions::default(),
            value_schema: Arc::new(Schema::empty()),
            create: None,
            sink_recovery: Recovery::Positional,
        }
    }
}

/// A NATS JetStream table: where the stream is, how to connect, and how to scan it.
#[derive(Debug, Clone)]
pub struct NatsTableOptions {
    /// Connection settings, stream and partition mapping.
    pub nats: NatsConfig,
    /// Scan settings.
    pub scan: ScanOptions,
    /// The declared value schema (the DDL column list); empty for raw and string formats.
    pub value_schema: SchemaRef,
    /// Create the stream when it is missing (`topic.create`).
    pub create: bool,
}

impl NatsTableOptions {
    /// Parses a `nats://host:port[,host:port…]/STREAM` location and an options map.
    pub fn parse(
        location: &str,
        value_schema: SchemaRef,
        options: &HashMap<String, String>,
    ) -> Result<Self> {
        let (servers, stream) = parse_nats_location(location)?;
        let mut nats = NatsConfig::new(servers, stream);
        let mut mapping: Option<String> = None;
        let mut subjects: Option<String> = None;
        let mut count: Option<u32> = None;
        let mut create = false;
        let mut mode: Option<String> = None;
        let mut queue = WorkQueueConfig::new(String::new());
        let mut queue_key: Option<String> = None;
        let scan = parse_scan_options(&value_schema, options, NATS_OPTIONS, &mut |key, value| {
            if key.starts_with("nats.work-queue.") {
                queue_key.get_or_insert_with(|| key.to_string());
            }
            match key {
                "nats.mode" => mode = Some(value.trim().to_ascii_lowercase()),
                "nats.work-queue.consumer" => {
                    queue.consumer = non_empty(key, value)?;
                    check_consumer_name(key, &queue.consumer)?;
                }
                "nats.work-queue.readers" => queue.readers = parse_count(key, value, 256)? as u32,
                "nats.work-queue.ack-wait" => queue.ack_wait = parse_duration(key, value)?,
                "nats.work-queue.max-ack-pending" => {
                    queue.max_ack_pending = i64::from(parse_count(key, value, i32::MAX)?)
                }
                "topic.create" => create = parse_bool(key, value)?,
                "connect.timeout" => nats.timeout = parse_duration(key, value)?,
                "nats.partitioning" => mapping = Some(value.to_ascii_lowercase()),
                "nats.subjects" => subjects = Some(non_empty(key, value)?),
                "nats.partitions" => {
                    count = Some(
                        value
                            .trim()
                            .parse()
                            .ok()
                            .filter(|n| (1..=10_000).contains(n))
                            .ok_or_else(|| {
                                invalid(key, value, "expected a number of streams from 1 to 10000")
                            })?,
                    )
                }
                "nats.tls.required" => nats.tls.required = parse_bool(key, value)?,
                "nats.tls.ca-file" => nats.tls.ca_file = Some(existing_file(key, value)?),
                "nats.tls.cert-file" => nats.tls.cert_file = Some(existing_file(key, value)?),
                "nats.tls.key-file" => nats.tls.key_file = Some(existing_file(key, value)?),
                "nats.user" | "nats.password" | "nats.token" | "nats.creds-file"
                | "nats.nkey-seed" => nats.auth.set(&key["nats.".len()..], non_empty(key, value)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if scan.key != FormatSpec::default() {
            return Err(TopicsError::OptionConflict {
                key: "key.*".into(),
                reason: "applies to Kafka tables: NATS messages have no key".into(),
            });
        }
        if scan.startup == StartupMode::GroupOffsets {
            return Err(invalid(
                "scan.startup.mode",
                "group-offsets",
                "NATS tables have no consumer-group offsets",
            ));
        }
        if nats.auth.get("user").is_some() != nats.auth.get("password").is_some() {
            return Err(missing_pair("nats.user", "nats.password"));
        }
        if nats.tls.cert_file.is_some() != nats.tls.key_file.is_some() {
            return Err(missing_pair("nats.tls.cert-file", "nats.tls.key-file"));
        }
        nats.partitioning = match mapping.as_deref().unwrap_or(if subjects.is_some() {
            "subject"
        } else {
            "stream"
        }) {
            "stream" => NatsPartitioning::Stream,
            "subject" | "subjects" => {
                let list = subjects
                    .ok_or_else(|| missing("nats.subjects", "nats.partitioning", "subject"))?;
                let list: Vec<String> = list
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                match list.as_slice() {
                    [one] if one.split('.').any(|t| t == "*" || t == ">") => {
                        NatsPartitioning::SubjectWildcard(one.clone())
                    }
                    _ if list.iter().any(|s| s.contains('*') || s.contains('>')) => {
                        return Err(invalid(
                            "nats.subjects",
                            &list.join(","),
                            "give either one wildcard or a list of plain subjects",
                        ));
                    }
                    _ => NatsPartitioning::Subjects(list),
                }
            }
            "streams" => NatsPartitioning::Streams(
                count.ok_or_else(|| missing("nats.partitions", "nats.partitioning", "streams"))?,
            ),
            other => {
                return Err(invalid(
                    "nats.partitioning",
                    other,
                    "expected stream, subject or streams",
                ));
            }
        };
        nats.work_queue = match mode.as_deref().unwrap_or("ordered") {
            "ordered" => {
                if let Some(key) = queue_key {
                    return Err(TopicsError::OptionConflict {
                        key,
                        reason: "applies with 'nats.mode' = 'work-queue'".into(),
                    });
                }
                None
            }
            "work-queue" => Some(work_queue_settings(queue, &nats.partitioning, &scan)?),
            other => {
                return Err(invalid(
                    "nats.mode",
                    other,
                    "expected ordered or work-queue",
                ));
            }
        };
        Ok(Self {
            nats,
            scan,
            value_schema,
            create,
        })
    }
}

/// Completes the work-queue settings from the partition mapping and the scan's start and end.
fn work_queue_settings(
    mut queue: WorkQueueConfig,
    partitioning: &NatsPartitioning,
    scan: &ScanOptions,
) -> Result<WorkQueueConfig> {
    if queue.consumer.is_empty() {
        return Err(missing(
            "nats.work-queue.consumer",
            "nats.mode",
            "work-queue",
        ));
    }
    if matches!(partitioning, NatsPartitioning::Streams(_)) {
        return Err(TopicsError::OptionConflict {
            key: "nats.partitioning".into(),
            reason: "a work queue reads one stream through one consumer;                      'streams' names several streams"
                .into(),
        });
    }
    queue.start = match &scan.startup {
        StartupMode::Earliest => QueueStart::All,
        StartupMode::Latest => QueueStart::New,
        StartupMode::Timestamp(ms) => QueueStart::Time(*ms),
        StartupMode::GroupOffsets | StartupMode::SpecificOffsets(_) => {
            return Err(invalid(
                "scan.startup.mode",
                "specific-offsets",
                "a work queue starts where its consumer is: use earliest, latest or timestamp \
                 (they apply when the consumer is created)",
            ));
        }
    };
    if !matches!(
        scan.bounded,
        BoundedMode::Unbounded | BoundedMode::LatestOffset
    ) {
        return Err(invalid(
            "scan.bounded.mode",
            "timestamp or specific-offsets",
            "a work queue has no offsets to end at: use unbounded, or latest-offset to read \
             what is pending and stop",
        ));
    }
    Ok(queue)
}

/// NATS consumer names: letters, digits, '-' and '_'.
fn check_consumer_name(key: &str, name: &str) -> Result<()> {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        Ok(())
    } else {
        Err(invalid(
            key,
            name,
            "a consumer name holds letters, digits, '-' and '_'",
        ))
    }
}

fn parse_count(key: &str, value: &str, max: i32) -> Result<i32> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| invalid(key, value, &format!("expected a number from 1 to {max}")))
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

fn existing_file(key: &str, value: &str) -> Result<String> {
    if std::path::Path::new(value).is_file() {
        Ok(value.to_string())
    } else {
        Err(invalid(key, value, "no such file"))
    }
}

fn missing_pair(a: &str, b: &str) -> TopicsError {
    TopicsError::InvalidOption {
        key: a.to_string(),
        value: String::new(),
        reason: format!("'{a}' and '{b}' go together"),
    }
}

/// A handler for the keys of one source type: returns false for a key it does not know.
pub type SourceKeys<'a> = dyn FnMut(&str, &str) -> Result<bool> + 'a;

/// Parses the source-independent options (format, start and end positions, schema
/// inference, timestamp skew), handing every other key to `source_keys`. Unknown keys fail
/// with the list of `docs`.
pub fn parse_scan_options(
    value_schema: &Schema,
    options: &HashMap<String, String>,
    docs: &[OptionDoc],
    source_keys: &mut SourceKeys<'_>,
) -> Result<ScanOptions> {
    let mut scan = ScanOptions::default();
    let mut registry_url: Option<String> = None;
    let mut registry_user: Option<String> = None;
    let mut registry_password: Option<String> = None;
    let mut startup_ts = None;
    let mut startup_offsets = None;
    let mut bounded_ts = None;
    let mut bounded_offsets = None;
    let mut startup_mode: Option<String> = None;
    let mut bounded_mode: Option<String> = None;

    let mut keys: Vec<_> = options.iter().collect();
    keys.sort();
    for (raw_key, value) in keys {
        let key = raw_key.strip_prefix("format.").unwrap_or(raw_key);
        match key {
            "schema-registry.url" => registry_url = Some(value.trim().to_string()),
            "schema-registry.user" => registry_user = Some(value.to_string()),
            "schema-registry.password" => registry_password = Some(value.to_string()),
            "value.on-error" => {
                scan.on_error = ErrorPolicy::from_name(value)
                    .ok_or_else(|| invalid(key, value, "expected fail, skip or dead-letter"))?
            }
            "value.dead-letter.topic" => scan.dead_letter_topic = Some(value.trim().to_string()),
            "scan.startup.mode" => startup_mode = Some(value.to_ascii_lowercase()),
            "scan.startup.timestamp-millis" => startup_ts = Some(parse_i64(key, value)?),
            "scan.startup.specific-offsets" => {
                startup_offsets = Some(parse_specific_offsets(key, value)?)
            }
            "scan.bounded.mode" => bounded_mode = Some(value.to_ascii_lowercase()),
            "scan.bounded.timestamp-millis" => bounded_ts = Some(parse_i64(key, value)?),
            "scan.bounded.specific-offsets" => {
                bounded_offsets = Some(parse_specific_offsets(key, value)?)
            }
            "value.json.infer-sample-size" => {
                scan.json_infer_sample = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            key,
                            value,
                            "expected a number of messages from 1 to 1000000",
                        )
                    })?
            }
            "scan.fail-on-data-loss" => scan.fail_on_data_loss = parse_bool(key, value)?,
            "scan.timestamp.max-skew" => {
                scan.timestamp_max_skew = Some(parse_duration_allow_zero(key, value)?)
            }
            _ => {
                let format_key = if let Some(rest) = key.strip_prefix("value.") {
                    scan.value.apply(rest, key, value)?
                } else if let Some(rest) = key.strip_prefix("key.") {
                    scan.key.apply(rest, key, value)?
                } else {
                    false
                };
                if !format_key && !source_keys(key, value)? {
                    return Err(TopicsError::UnknownOption {
                        key: key.to_string(),
                        valid: valid_keys(docs),
                    });
                }
            }
        }
    }
    scan.startup = match startup_mode.as_deref() {
        None if startup_offsets.is_some() => StartupMode::SpecificOffsets(Default::default()),
        None if startup_ts.is_some() => StartupMode::Timestamp(0),
        None | Some("earliest-offset" | "earliest") => StartupMode::Earliest,
        Some("latest-offset" | "latest") => StartupMode::Latest,
        Some("group-offsets") => StartupMode::GroupOffsets,
        Some("timestamp") => StartupMode::Timestamp(0),
        Some("specific-offsets") => StartupMode::SpecificOffsets(Default::default()),
        Some(other) => {
            return Err(invalid(
                "scan.startup.mode",
                other,
                "expected earliest-offset, latest-offset, group-offsets, timestamp or specific-offsets",
            ));
        }
    };
    match &mut scan.startup {
        StartupMode::Timestamp(ts) => {
            *ts = startup_ts.ok_or_else(|| {
                missing(
                    "scan.startup.timestamp-millis",
                    "scan.startup.mode",
                    "timestamp",
                )
            })?
        }
        StartupMode::SpecificOffsets(map) => {
            *map = startup_offsets.ok_or_else(|| {
                missing(
                    "scan.startup.specific-offsets",
                    "scan.startup.mode",
                    "specific-offsets",
                )
            })?
        }
        _ => {
            if startup_ts.is_some() || startup_offsets.is_some() {
                return Err(invalid(
                    "scan.startup.mode",
                    startup_mode.as_deref().unwrap_or("earliest-offset"),
                    "a startup timestamp or specific offsets were given, but the mode does not use them",
                ));
            }
        }
    }

    scan.bounded = match bounded_mode.as_deref() {
        None if bounded_offsets.is_some() => BoundedMode::SpecificOffsets(Default::default()),
        None if bounded_ts.is_some() => BoundedMode::Timestamp(0),
        None | Some("unbounded") => BoundedMode::Unbounded,
        Some("latest-offset" | "latest" | "snapshot") => BoundedMode::LatestOffset,
        Some("timestamp") => BoundedMode::Timestamp(0),
        Some("specific-offsets") => BoundedMode::SpecificOffsets(Default::default()),
        Some(other) => {
            return Err(invalid(
                "scan.bounded.mode",
                other,
                "expected unbounded, latest-offset, timestamp or specific-offsets",
            ));
        }
    };
    match &mut scan.bounded {
        BoundedMode::Timestamp(ts) => {
            *ts = bounded_ts.ok_or_else(|| {
                missing(
                    "scan.bounded.timestamp-millis",
                    "scan.bounded.mode",
                    "timestamp",
                )
            })?
        }
        BoundedMode::SpecificOffsets(map) => {
            *map = bounded_offsets.ok_or_else(|| {
                missing(
                    "scan.bounded.specific-offsets",
                    "scan.bounded.mode",
                    "specific-offsets",
                )
            })?
        }
        _ => {
            if bounded_ts.is_some() || bounded_offsets.is_some() {
                return Err(invalid(
                    "scan.bounded.mode",
                    bounded_mode.as_deref().unwrap_or("unbounded"),
                    "a bounded timestamp or specific offsets were given, but the mode does not use them",
                ));
            }
        }
    }

    scan.registry = match (registry_url, registry_user, registry_password) {
        (None, None, None) => None,
        (None, _, _) => {
            return Err(TopicsError::OptionConflict {
                key: "schema-registry.user".into(),
                reason: "needs 'schema-registry.url'".into(),
            });
        }
        (Some(url), None, None) => Some(RegistryOptions { url, auth: None }),
        (Some(url), Some(user), Some(password)) => Some(RegistryOptions {
            url,
            auth: Some((user, password)),
        }),
        (Some(_), _, _) => {
            return Err(missing_pair(
                "schema-registry.user",
                "schema-registry.password",
            ));
        }
    };
    if scan.dead_letter_topic.is_some() && scan.on_error == ErrorPolicy::Fail {
        return Err(TopicsError::OptionConflict {
            key: "value.dead-letter.topic".into(),
            reason: "needs 'value.on-error' skip or dead-letter (with fail the query stops at the first bad message)".into(),
        });
    }
    // Checks what can be checked without files or the registry; a JSON value without columns
    // is left for the caller to infer (CREATE EXTERNAL TABLE does).
    let has_registry = scan.registry.is_some();
    scan.value
        .check(Side::Value, value_schema.fields(), has_registry)?;
    let key_fields = declared_key_fields(scan.declared_key.as_ref());
    scan.key.check(Side::Key, &key_fields, has_registry)?;
    Ok(scan)
}

/// The fields a declared `_key` type gives its format: a struct's fields, or the one column
/// of a text or bytes key.
pub fn declared_key_fields(
    declared: Option<&arrow::datatypes::DataType>,
) -> arrow::datatypes::Fields {
    use arrow::datatypes::{DataType, Field, Fields};
    match declared {
        None => Fields::empty(),
        Some(DataType::Struct(fields)) => fields.clone(),
        Some(other) => Fields::from(vec![Field::new("value", other.clone(), true)]),
    }
}

/// The environment variable that supplies bootstrap servers to a `kafka:///topic` location.
pub const KAFKA_BOOTSTRAP_ENV: &str = "KAFKA_BOOTSTRAP";

/// Splits `kafka://h1:9092,h2:9092/topic` into bootstrap servers and topic; `kafka:///topic`
/// takes the servers from the `KAFKA_BOOTSTRAP` environment variable.
pub fn parse_kafka_location(location: &str) -> Result<(String, String)> {
    parse_kafka_location_with(location, || std::env::var(KAFKA_BOOTSTRAP_ENV).ok())
}

/// [`parse_kafka_location`] with the environment lookup supplied by the caller.
fn parse_kafka_location_with(
    location: &str,
    servers_from_env: impl FnOnce() -> Option<String>,
) -> Result<(String, String)> {
    let bad = |reason: &str| TopicsError::InvalidLocation {
        location: location.to_string(),
        reason: reason.to_string(),
    };
    let rest = location
        .strip_prefix("kafka://")
        .ok_or_else(|| bad("expected kafka://host:port[,host:port…]/topic"))?;
    let (servers, topic) = rest
        .split_once('/')
        .ok_or_else(|| bad("no topic: expected kafka://host:port/topic"))?;
    let topic = topic.trim_end_matches('/');
    let from_env;
    let servers = if servers.is_empty() {
        from_env = servers_from_env().ok_or_else(|| {
            bad(&format!(
                "no bootstrap servers before the topic, and {KAFKA_BOOTSTRAP_ENV} is not set \
                 (kafka:///topic takes the servers from it)"
            ))
        })?;
        from_env.trim()
    } else {
        servers
    };
    for server in servers.split(',') {
        let (host, port) = server
            .rsplit_once(':')
            .ok_or_else(|| bad(&format!("server '{server}' has no port")))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad(&format!("server '{server}' is not host:port")));
        }
    }
    if topic.is_empty() {
        return Err(bad("the topic name is empty"));
    }
    if topic.len() > 249
        || !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(bad(&format!(
            "'{topic}' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)"
        )));
    }
    Ok((servers.to_string(), topic.to_string()))
}

/// Parses `partition:0,offset:42;partition:1,offset:7`.
pub fn parse_specific_offsets(key: &str, value: &str) -> Result<BTreeMap<i32, i64>> {
    let mut out = BTreeMap::new();
    let expected = "expected 'partition:<p>,offset:<o>' entries separated by ';'";
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for part in entry.split(',').map(str::trim) {
            match part.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("partition", p)) => partition = p.parse::<i32>().ok().filter(|p| *p >= 0),
                Some(("offset", o)) => offset = o.parse::<i64>().ok().filter(|o| *o >= 0),
                _ => {
                    return Err(invalid(
                        key,
                        value,
                        &format!("bad entry '{entry}': {expected}"),
                    ));
                }
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) => {
                if out.insert(p, o).is_some() {
                    return Err(invalid(
                        key,
                        value,
                        &format!("partition {p} is listed twice"),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    key,
                    value,
                    &format!("bad entry '{entry}': {expected}"),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(invalid(key, value, expected));
    }
    Ok(out)
}

/// Parses a positive duration such as `250ms`, `10s` or `2m`.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    let d = parse_duration_allow_zero(key, value)?;
    if d.is_zero() {
        return Err(invalid(
            key,
            value,
            "the duration must be greater than zero",
        ));
    }
    Ok(d)
}

/// Parses a duration such as `0s`, `250ms`, `10s` or `2m`.
pub fn parse_duration_allow_zero(key: &str, value: &str) -> Result<Duration> {
    let v = value.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| invalid(key, value, "expected a duration such as 500ms, 10s or 2m"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        _ => {
            return Err(invalid(
                key,
                value,
                "expected a duration such as 500ms, 10s or 2m",
            ));
        }
    };
    Ok(d)
}

fn parse_i64(key: &str, value: &str) -> Result<i64> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "expected an integer"))
}

fn non_empty(key: &str, value: &str) -> Result<String> {
    if value.trim().is_empty() {
        Err(invalid(key, value, "must not be empty"))
    } else {
        Ok(value.to_string())
    }
}

/// An invalid-option error; the value is hidden when the key names a secret.
pub fn invalid(key: &str, value: &str, reason: &str) -> TopicsError {
    TopicsError::InvalidOption {
        key: key.to_string(),
        value: if is_secret_key(key) {
            REDACTED.to_string()
        } else {
            value.to_string()
        },
        reason: reason.to_string(),
    }
}

fn missing(key: &str, mode_key: &str, mode: &str) -> TopicsError {
    TopicsError::InvalidOption {
        key: key.to_string(),
        value: String::new(),
        reason: format!("required when '{mode_key}' is '{mode}'"),
    }
}

fn valid_keys(docs: &[OptionDoc]) -> String {
    SCAN_OPTIONS
        .iter()
        .chain(docs)
        .map(|d| d.key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds an options map from `(key, value)` pairs, for code that creates tables directly.
pub fn options_from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> HashMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<KafkaTableOptions> {
        KafkaTableOptions::parse(
            "kafka://127.0.0.1:9092/orders",
            Arc::new(Schema::empty()),
            &options_from_pairs(pairs.iter().copied()),
        )
    }

    #[test]
    fn every_option_is_in_the_readme_table() {
        let readme = include_str!("../README.md");
        for doc in SCAN_OPTIONS.iter().chain(KAFKA_OPTIONS).chain(NATS_OPTIONS) {
            let key = doc.key.trim_end_matches('*');
            let shown = key
                .strip_suffix('.')
                .map(|k| format!("`{k}.<"))
                .unwrap_or(format!("`{key}`"));
            assert!(
                readme.contains(&shown) || readme.contains(&format!("`{key}")),
                "README option tables lack {key}"
            );
        }
    }

    #[test]
    fn locations() {
        assert_eq!(
            parse_kafka_location("kafka://h1:9092,h2:9093/t.x-1").unwrap(),
            ("h1:9092,h2:9093".to_string(), "t.x-1".to_string())
        );
        for bad in [
            "http://h:1/t",
            "kafka://h:1",
            "kafka://h/t",
            "kafka://h:1/",
            "kafka://h:1/a b",
        ] {
            let err = parse_kafka_location(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
        let err = parse_kafka_location_with("kafka:///t", || None).unwrap_err();
        assert!(
            err.to_string().contains("KAFKA_BOOTSTRAP is not set"),
            "{err}"
        );
        assert_eq!(
            parse_kafka_location_with("kafka:///t", || Some("h:1,h:2".into())).unwrap(),
            ("h:1,h:2".to_string(), "t".to_string())
        );
        assert!(parse_kafka_location_with("kafka:///t", || Some("h".into())).is_err());
    }

    #[test]
    fn defaults_and_modes() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.scan.startup, StartupMode::Earliest);
        assert_eq!(o.scan.bounded, BoundedMode::Unbounded);
        assert_eq!(o.scan.value.kind, None);
        let o = parse(&[
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:42;partition:1,offset:7;",
            ),
            ("format.scan.bounded.mode", "latest-offset"),
        ])
        .unwrap();
        assert_eq!(
            o.scan.startup,
            StartupMode::SpecificOffsets([(0, 42), (1, 7)].into())
        );
        assert_eq!(o.scan.bounded, BoundedMode::LatestOffset);
        let o = parse(&[
            ("scan.startup.mode", "timestamp"),
            ("scan.startup.timestamp-millis", "1700000000000"),
        ])
        .unwrap();
        assert_eq!(o.scan.startup, StartupMode::Timestamp(1_700_000_000_000));
    }

    #[test]
    fn errors_name_the_option() {
        let e = parse(&[("scan.startup.mode", "sideways")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("scan.startup.mode") && e.contains("sideways"),
            "{e}"
        );
        let e = parse(&[("no.such", "1")]).unwrap_err().to_string();
        assert!(
            e.contains("no.such") && e.contains("scan.bounded.mode"),
            "{e}"
        );
        let e = parse(&[("scan.startup.mode", "timestamp")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("scan.startup.timestamp-millis"), "{e}");
        let e = parse(&[("scan.startup.mode", "group-offsets")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("properties.group.id"), "{e}");
        let e = parse(&[("scan.startup.specific-offsets", "partition:x,offset:1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("partition:x"), "{e}");
        let e = parse(&[("connect.timeout", "ten")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("connect.timeout"), "{e}");
        let e = parse(&[("kafka.enable.auto.commit", "true")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.enable.auto.commit"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("k", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("k", "3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("k", "2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("k", "0s").is_err());
        assert!(parse_duration("k", "5").is_err());
    }

    #[test]
    fn secret_values_never_echoed() {
        let e = invalid("sasl.password", "hunter2", "bad").to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
