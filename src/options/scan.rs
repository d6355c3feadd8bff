//! The options every topic table takes, whatever its connector: formats and the schema
//! registry, the bad-message policy, where scans start and end, data loss, timestamp order.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Fields, Schema};

use super::bag::OptionBag;
use super::decl::OptionDecl;
pub use super::format::{key_format, value_format};
use super::values::{
    missing, parse_bool, parse_duration_allow_zero, parse_i64, parse_specific_offsets,
};
use crate::error::{Result, TopicsError};
use crate::format::{ErrorPolicy, FormatSpec, Side};
use crate::secret::REDACTED;

/// `schema-registry.url`
pub const REGISTRY_URL: OptionDecl = OptionDecl {
    key: "schema-registry.url",
    values: "http(s)://host:port of a Confluent-compatible schema registry",
    default: "",
    doc: "Resolves Confluent-framed schema ids (cached per table) and subjects.",
};
/// `schema-registry.user`
pub const REGISTRY_USER: OptionDecl = OptionDecl {
    key: "schema-registry.user",
    values: "user name (with schema-registry.password)",
    default: "",
    doc: "Basic authentication for the schema registry; the password is never printed.",
};
/// `schema-registry.password`
pub const REGISTRY_PASSWORD: OptionDecl = OptionDecl {
    key: "schema-registry.password",
    values: "password",
    default: "",
    doc: "Basic authentication password for the schema registry.",
};
/// `value.on-error`
pub const ON_ERROR: OptionDecl = OptionDecl {
    key: "value.on-error",
    values: "fail | skip | dead-letter",
    default: "fail",
    doc: "A message whose key or value cannot be decoded: fail the query (naming topic, partition, offset and why), leave it out (counted in the messages_bad metric), or keep it with null columns and the `_error` and `_raw` columns set.",
};
/// `value.dead-letter.topic`
pub const DEAD_LETTER_TOPIC: OptionDecl = OptionDecl {
    key: "value.dead-letter.topic",
    values: "topic (Kafka) or subject (NATS) on the same brokers",
    default: "",
    doc: "With value.on-error skip or dead-letter: also produce each bad message there, with headers dlt.topic, dlt.partition, dlt.offset and dlt.error (and key topic/partition/offset, so a repeat is recognisable).",
};
/// `value.json.infer-sample-size`
pub const JSON_INFER_SAMPLE: OptionDecl = OptionDecl {
    key: "value.json.infer-sample-size",
    values: "number of messages",
    default: "1000",
    doc: "With value.format json and no column list in CREATE EXTERNAL TABLE: how many of the newest messages (spread over the partitions) the columns are inferred from.",
};
/// `scan.startup.mode`
pub const STARTUP_MODE: OptionDecl = OptionDecl {
    key: "scan.startup.mode",
    values: "earliest-offset | latest-offset | group-offsets | timestamp | specific-offsets",
    default: "earliest-offset",
    doc: "Where each partition's scan starts.",
};
/// `scan.startup.timestamp-millis`
pub const STARTUP_TIMESTAMP: OptionDecl = OptionDecl {
    key: "scan.startup.timestamp-millis",
    values: "milliseconds since the epoch",
    default: "",
    doc: "Start at the first message at or after this time (with scan.startup.mode = timestamp).",
};
/// `scan.startup.specific-offsets`
pub const STARTUP_OFFSETS: OptionDecl = OptionDecl {
    key: "scan.startup.specific-offsets",
    values: "partition:0,offset:42;partition:1,offset:7",
    default: "",
    doc: "Start offsets per partition (with scan.startup.mode = specific-offsets); unlisted partitions start at the earliest offset.",
};
/// `scan.bounded.mode`
pub const BOUNDED_MODE: OptionDecl = OptionDecl {
    key: "scan.bounded.mode",
    values: "unbounded | latest-offset | timestamp | specific-offsets",
    default: "unbounded",
    doc: "Where each partition's scan ends: never (follow the log), at the high watermark when the query starts (a snapshot), at a time, or at given offsets.",
};
/// `scan.bounded.timestamp-millis`
pub const BOUNDED_TIMESTAMP: OptionDecl = OptionDecl {
    key: "scan.bounded.timestamp-millis",
    values: "milliseconds since the epoch",
    default: "",
    doc: "End before the first message at or after this time (with scan.bounded.mode = timestamp).",
};
/// `scan.bounded.specific-offsets`
pub const BOUNDED_OFFSETS: OptionDecl = OptionDecl {
    key: "scan.bounded.specific-offsets",
    values: "partition:0,offset:42;partition:1,offset:7",
    default: "",
    doc: "Exclusive end offsets per partition (with scan.bounded.mode = specific-offsets); unlisted partitions end at the high watermark when the query starts.",
};
/// `scan.fail-on-data-loss`
pub const FAIL_ON_DATA_LOSS: OptionDecl = OptionDecl {
    key: "scan.fail-on-data-loss",
    values: "true | false",
    default: "true",
    doc: "When offsets a scan needs were removed by retention (or purged), fail the query (true) or skip them and count them in the offsets_skipped metric (false).",
};
/// `scan.timestamp.max-skew`
pub const TIMESTAMP_MAX_SKEW: OptionDecl = OptionDecl {
    key: "scan.timestamp.max-skew",
    values: "duration such as 0s, 500ms, 30s",
    default: "unset (0 for log-append-time topics)",
    doc: "Declares that no message's timestamp is more than this much earlier than that of a message before it in its partition, so `_timestamp <` filters can end the scan.",
};

/// `topic.create`
pub const TOPIC_CREATE: OptionDecl = OptionDecl {
    key: "topic.create",
    values: "true | false",
    default: "false",
    doc: "Create the topic when the table is created and finds it missing (Kafka: with topic.partitions and topic.replication-factor; NATS: a stream capturing the subjects the partition mapping reads, or the stream's own name).",
};
/// `connect.timeout`
pub const CONNECT_TIMEOUT: OptionDecl = OptionDecl {
    key: "connect.timeout",
    values: "duration such as 500ms, 10s, 1m",
    default: "10s",
    doc: "How long connecting and each metadata request may wait for the brokers before the query fails.",
};

/// The options every topic table takes, in documentation order.
pub const SCAN_OPTIONS: &[&OptionDecl] = &[
    &value_format::FORMAT,
    &key_format::FORMAT,
    &value_format::AVRO_SCHEMA,
    &value_format::AVRO_SCHEMA_FILE,
    &value_format::AVRO_WRITER_SCHEMA,
    &value_format::AVRO_WRITER_SCHEMA_FILE,
    &value_format::PROTOBUF_SCHEMA_FILE,
    &value_format::PROTOBUF_MESSAGE,
    &value_format::CSV_DELIMITER,
    &value_format::CSV_QUOTE,
    &value_format::CSV_ESCAPE,
    &value_format::CSV_NULL_LITERAL,
    &value_format::FRAMING,
    &value_format::SUBJECT,
    &key_format::AVRO_SCHEMA,
    &key_format::AVRO_SCHEMA_FILE,
    &key_format::AVRO_WRITER_SCHEMA,
    &key_format::AVRO_WRITER_SCHEMA_FILE,
    &key_format::PROTOBUF_SCHEMA_FILE,
    &key_format::PROTOBUF_MESSAGE,
    &key_format::CSV_DELIMITER,
    &key_format::CSV_QUOTE,
    &key_format::CSV_ESCAPE,
    &key_format::CSV_NULL_LITERAL,
    &key_format::FRAMING,
    &key_format::SUBJECT,
    &REGISTRY_URL,
    &REGISTRY_USER,
    &REGISTRY_PASSWORD,
    &ON_ERROR,
    &DEAD_LETTER_TOPIC,
    &JSON_INFER_SAMPLE,
    &STARTUP_MODE,
    &STARTUP_TIMESTAMP,
    &STARTUP_OFFSETS,
    &BOUNDED_MODE,
    &BOUNDED_TIMESTAMP,
    &BOUNDED_OFFSETS,
    &FAIL_ON_DATA_LOSS,
    &TIMESTAMP_MAX_SKEW,
    &TOPIC_CREATE,
    &CONNECT_TIMEOUT,
    &super::watermark::COLUMN,
    &super::watermark::DELAY,
    &super::watermark::IDLE_TIMEOUT,
    &super::watermark::LATE_TOPIC,
    &super::topics::PATTERN,
    &super::topics::DISCOVERY_INTERVAL,
    &super::topics::SPARE_STREAMS,
    &super::topics::ON_DELETED,
    &super::topics::SPLIT_MAX_MESSAGES,
    &super::topics::SPLIT_MIN_PARTITIONS,
];

/// Where each partition's scan starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMode {
    /// The first available offset (low watermark).
    Earliest,
    /// The high watermark when the query starts: only new messages.
    Latest,
    /// The committed offsets of the table's consumer group ([`ScanOptions::group_id`]);
    /// earliest where none.
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

/// The connector-independent settings of one table.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The value format's options.
    pub value: FormatSpec,
    /// The key format's options.
    pub key: FormatSpec,
    /// The `_key` type declared in the DDL column list, if any.
    pub declared_key: Option<DataType>,
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
    /// The consumer group the table names (Kafka: `properties.group.id`), whose committed
    /// offsets `group-offsets` starts from.
    pub group_id: Option<String>,
    /// Declared bound on timestamp disorder within a partition (`scan.timestamp.max-skew`).
    pub timestamp_max_skew: Option<Duration>,
    /// Messages JSON schema inference samples (`value.json.infer-sample-size`).
    pub json_infer_sample: usize,
    /// Fail when offsets a scan needs were removed (`scan.fail-on-data-loss`, default true);
    /// otherwise skip them and count them in the `offsets_skipped` metric.
    pub fail_on_data_loss: bool,
    /// Create the topic when it is missing (`topic.create`).
    pub create_topic: bool,
    /// Bound on connecting and on each metadata request (`connect.timeout`).
    pub connect_timeout: Duration,
    /// Event time and watermark (`watermark.*`), when declared.
    pub watermark: Option<super::WatermarkSpec>,
    /// Topic pattern, live discovery and split settings.
    pub topics: super::TopicOptions,
}

/// Default of `connect.timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
            create_topic: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            watermark: None,
            topics: super::TopicOptions::default(),
        }
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> TopicsError {
    TopicsError::invalid_option(key, value, reason)
}

impl ScanOptions {
    /// Takes the connector-independent options from `bag`. `group` is the consumer group a
    /// connector took (`properties.group.id`), which `scan.startup.mode = group-offsets` needs.
    pub fn parse(bag: &mut OptionBag, value_schema: &Schema, group: Option<&str>) -> Result<Self> {
        let mut scan = ScanOptions::default();
        for (side, spec, all) in [
            (Side::Value, &mut scan.value, value_format::ALL),
            (Side::Key, &mut scan.key, key_format::ALL),
        ] {
            for (suffix, decl) in all {
                if let Some(value) = bag.take(decl)
                    && !spec.apply(suffix, decl.key, &value)?
                {
                    return Err(TopicsError::internal(format!(
                        "option '{}' is declared but the {} format parser does not take it",
                        decl.key,
                        side.name()
                    )));
                }
            }
        }
        if let Some(v) = bag.take(&ON_ERROR) {
            scan.on_error = ErrorPolicy::from_name(&v)
                .ok_or_else(|| invalid(ON_ERROR.key, &v, "expected fail, skip or dead-letter"))?;
        }
        scan.dead_letter_topic = bag.take(&DEAD_LETTER_TOPIC).map(|t| t.trim().to_string());
        if let Some(n) = bag.take_with(&JSON_INFER_SAMPLE, |key, value| {
            value
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
                })
        })? {
            scan.json_infer_sample = n;
        }
        if let Some(fail) = bag.take_with(&FAIL_ON_DATA_LOSS, parse_bool)? {
            scan.fail_on_data_loss = fail;
        }
        scan.timestamp_max_skew = bag.take_with(&TIMESTAMP_MAX_SKEW, parse_duration_allow_zero)?;
        scan.create_topic = bag.take_with(&TOPIC_CREATE, parse_bool)?.unwrap_or(false);
        if let Some(timeout) = bag.take_with(&CONNECT_TIMEOUT, super::values::parse_duration)? {
            scan.connect_timeout = timeout;
        }
        scan.watermark = super::WatermarkSpec::parse(bag)?;
        scan.topics = super::TopicOptions::parse(bag)?;
        scan.startup = parse_startup(bag, group)?;
        scan.group_id = group.map(str::to_string);
        scan.bounded = parse_bounded(bag)?;
        scan.registry = parse_registry(bag)?;
        if scan.dead_letter_topic.is_some() && scan.on_error == ErrorPolicy::Fail {
            return Err(TopicsError::OptionConflict {
                key: DEAD_LETTER_TOPIC.key.into(),
                reason: "needs 'value.on-error' skip or dead-letter (with fail the query stops at the first bad message)".into(),
            });
        }
        // Checks what can be checked without files or the registry; a JSON value without
        // columns is left for the caller to infer (CREATE EXTERNAL TABLE does).
        let has_registry = scan.registry.is_some();
        scan.value
            .check(Side::Value, value_schema.fields(), has_registry)?;
        let key_fields = declared_key_fields(scan.declared_key.as_ref());
        scan.key.check(Side::Key, &key_fields, has_registry)?;
        Ok(scan)
    }
}

fn parse_startup(bag: &mut OptionBag, group: Option<&str>) -> Result<StartupMode> {
    let mode = bag.take(&STARTUP_MODE).map(|m| m.to_ascii_lowercase());
    let ts = bag.take_with(&STARTUP_TIMESTAMP, parse_i64)?;
    let offsets = bag.take_with(&STARTUP_OFFSETS, parse_specific_offsets)?;
    let startup = match mode.as_deref() {
        None if offsets.is_some() => StartupMode::SpecificOffsets(Default::default()),
        None if ts.is_some() => StartupMode::Timestamp(0),
        None | Some("earliest-offset" | "earliest") => StartupMode::Earliest,
        Some("latest-offset" | "latest") => StartupMode::Latest,
        Some("group-offsets") => {
            if group.is_none() {
                return Err(missing(
                    "properties.group.id",
                    STARTUP_MODE.key,
                    "group-offsets",
                ));
            }
            StartupMode::GroupOffsets
        }
        Some("timestamp") => StartupMode::Timestamp(0),
        Some("specific-offsets") => StartupMode::SpecificOffsets(Default::default()),
        Some(other) => {
            return Err(invalid(
                STARTUP_MODE.key,
                other,
                "expected earliest-offset, latest-offset, group-offsets, timestamp or specific-offsets",
            ));
        }
    };
    Ok(match startup {
        StartupMode::Timestamp(_) => StartupMode::Timestamp(
            ts.ok_or_else(|| missing(STARTUP_TIMESTAMP.key, STARTUP_MODE.key, "timestamp"))?,
        ),
        StartupMode::SpecificOffsets(_) => {
            StartupMode::SpecificOffsets(offsets.ok_or_else(|| {
                missing(STARTUP_OFFSETS.key, STARTUP_MODE.key, "specific-offsets")
            })?)
        }
        other => {
            if ts.is_some() || offsets.is_some() {
                return Err(invalid(
                    STARTUP_MODE.key,
                    mode.as_deref().unwrap_or("earliest-offset"),
                    "a startup timestamp or specific offsets were given, but the mode does not use them",
                ));
            }
            other
        }
    })
}

fn parse_bounded(bag: &mut OptionBag) -> Result<BoundedMode> {
    let mode = bag.take(&BOUNDED_MODE).map(|m| m.to_ascii_lowercase());
    let ts = bag.take_with(&BOUNDED_TIMESTAMP, parse_i64)?;
    let offsets = bag.take_with(&BOUNDED_OFFSETS, parse_specific_offsets)?;
    let bounded = match mode.as_deref() {
        None if offsets.is_some() => BoundedMode::SpecificOffsets(Default::default()),
        None if ts.is_some() => BoundedMode::Timestamp(0),
        None | Some("unbounded") => BoundedMode::Unbounded,
        Some("latest-offset" | "latest" | "snapshot") => BoundedMode::LatestOffset,
        Some("timestamp") => BoundedMode::Timestamp(0),
        Some("specific-offsets") => BoundedMode::SpecificOffsets(Default::default()),
        Some(other) => {
            return Err(invalid(
                BOUNDED_MODE.key,
                other,
                "expected unbounded, latest-offset, timestamp or specific-offsets",
            ));
        }
    };
    Ok(match bounded {
        BoundedMode::Timestamp(_) => BoundedMode::Timestamp(
            ts.ok_or_else(|| missing(BOUNDED_TIMESTAMP.key, BOUNDED_MODE.key, "timestamp"))?,
        ),
        BoundedMode::SpecificOffsets(_) => {
            BoundedMode::SpecificOffsets(offsets.ok_or_else(|| {
                missing(BOUNDED_OFFSETS.key, BOUNDED_MODE.key, "specific-offsets")
            })?)
        }
        other => {
            if ts.is_some() || offsets.is_some() {
                return Err(invalid(
                    BOUNDED_MODE.key,
                    mode.as_deref().unwrap_or("unbounded"),
                    "a bounded timestamp or specific offsets were given, but the mode does not use them",
                ));
            }
            other
        }
    })
}

fn parse_registry(bag: &mut OptionBag) -> Result<Option<RegistryOptions>> {
    let url = bag.take(&REGISTRY_URL).map(|u| u.trim().to_string());
    let user = bag.take(&REGISTRY_USER);
    let password = bag.take(&REGISTRY_PASSWORD);
    match (url, user, password) {
        (None, None, None) => Ok(None),
        (None, _, _) => Err(TopicsError::OptionConflict {
            key: REGISTRY_USER.key.into(),
            reason: format!("needs '{}'", REGISTRY_URL.key),
        }),
        (Some(url), None, None) => Ok(Some(RegistryOptions { url, auth: None })),
        (Some(url), Some(user), Some(password)) => Ok(Some(RegistryOptions {
            url,
            auth: Some((user, password)),
        })),
        (Some(_), _, _) => Err(super::values::missing_pair(
            REGISTRY_USER.key,
            REGISTRY_PASSWORD.key,
        )),
    }
}

/// The fields a declared `_key` type gives its format: a struct's fields, or the one column
/// of a text or bytes key.
pub fn declared_key_fields(declared: Option<&DataType>) -> Fields {
    match declared {
        None => Fields::empty(),
        Some(DataType::Struct(fields)) => fields.clone(),
        Some(other) => Fields::from(vec![Field::new("value", other.clone(), true)]),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::options::options_from_pairs;

    fn parse(pairs: &[(&str, &str)]) -> Result<ScanOptions> {
        let map: HashMap<String, String> = options_from_pairs(pairs.iter().copied());
        let mut bag = OptionBag::new(&map);
        let scan = ScanOptions::parse(&mut bag, &Schema::empty(), None)?;
        bag.finish(SCAN_OPTIONS)?;
        Ok(scan)
    }

    #[test]
    fn defaults_and_modes() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.startup, StartupMode::Earliest);
        assert_eq!(o.bounded, BoundedMode::Unbounded);
        assert_eq!(o.value.kind, None);
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
            o.startup,
            StartupMode::SpecificOffsets([(0, 42), (1, 7)].into())
        );
        assert_eq!(o.bounded, BoundedMode::LatestOffset);
        let o = parse(&[
            ("scan.startup.mode", "timestamp"),
            ("scan.startup.timestamp-millis", "1700000000000"),
        ])
        .unwrap();
        assert_eq!(o.startup, StartupMode::Timestamp(1_700_000_000_000));
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
    }

    #[test]
    fn every_declared_format_option_is_parsed() {
        for (suffix, decl) in value_format::ALL.iter().chain(key_format::ALL) {
            let mut spec = FormatSpec::default();
            let value = match *suffix {
                "format" => "json",
                "framing" => "none",
                s if s.starts_with("csv.") && s != "csv.null-literal" => ";",
                _ => "x",
            };
            assert!(
                spec.apply(suffix, decl.key, value).unwrap(),
                "{} is declared but not parsed",
                decl.key
            );
        }
    }
}
