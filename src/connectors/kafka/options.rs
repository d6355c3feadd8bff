//! The options only Kafka tables take, and the `kafka://` location.

use crate::error::{Result, TopicsError};
use crate::options::{OptionBag, OptionDecl, ScanOptions, non_empty, parse_count};
use crate::sink::Recovery;
use crate::source::TopicSelector;

use super::admin::TopicCreation;
use super::config::KafkaConfig;

/// `sink.recovery`
pub const SINK_RECOVERY: OptionDecl = OptionDecl {
    key: "sink.recovery",
    values: "positional | identity-header | transactional",
    default: "positional",
    doc: "How a continuous query writing to this topic finds, after a crash, what an interrupted batch already wrote: by counting what each output partition gained (needs the query to be the topic's only producer); by a dft-id header on every message (other producers allowed; costs a header per message); or transactional: each batch is one Kafka transaction with dft-id headers, so read-committed consumers see whole batches once, never part of one.",
};
/// `topic.partitions`
pub const TOPIC_PARTITIONS: OptionDecl = OptionDecl {
    key: "topic.partitions",
    values: "number",
    default: "1",
    doc: "Partitions of a topic created by topic.create.",
};
/// `topic.replication-factor`
pub const TOPIC_REPLICATION: OptionDecl = OptionDecl {
    key: "topic.replication-factor",
    values: "number",
    default: "1",
    doc: "Replication factor of a topic created by topic.create.",
};
/// `properties.group.id`
pub const GROUP_ID: OptionDecl = OptionDecl {
    key: "properties.group.id",
    values: "consumer group id",
    default: "",
    doc: "Group whose committed offsets scan.startup.mode = group-offsets starts from, and the group.id clients present (for ACLs). Scans never join the group nor commit to it.",
};
/// `kafka.*`
pub const CLIENT_PROPERTIES: OptionDecl = OptionDecl {
    key: "kafka.*",
    values: "any librdkafka property",
    default: "",
    doc: "Passed to the client as is: security.protocol, sasl.* (PLAIN, SCRAM, GSSAPI/Kerberos, OAUTHBEARER with sasl.oauthbearer.method = oidc), ssl.*, fetch tuning, compression.type for INSERT (gzip, snappy, lz4, zstd), isolation.level (read_committed by default: aborted transactional messages are not rows; read_uncommitted shows them). Secrets are never printed.",
};
/// Every Kafka-only option, in documentation order.
pub const KAFKA_OPTIONS: &[&OptionDecl] = &[
    &SINK_RECOVERY,
    &TOPIC_PARTITIONS,
    &TOPIC_REPLICATION,
    &GROUP_ID,
    &CLIENT_PROPERTIES,
];

/// What a Kafka table's options say about the connection, topic creation and sinks.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Connection settings and the first topic (the only one of a one-topic table).
    pub config: KafkaConfig,
    /// The topics the table reads: the location's list, or `topic.pattern`.
    pub topics: TopicSelector,
    /// Create the topic when it is missing (`topic.create`), with these settings.
    pub create: Option<TopicCreation>,
    /// How continuous-query batches written to this topic recover (`sink.recovery`).
    pub recovery: Recovery,
}

impl KafkaSettings {
    /// Parses the location and takes the Kafka options from `bag`; `scan` holds the options
    /// every table takes (the group, the timeout, whether to create the topic).
    pub fn parse(location: &str, bag: &mut OptionBag, scan: &ScanOptions) -> Result<Self> {
        let pattern = scan.topics.pattern.clone();
        let (bootstrap, names) = parse_kafka_location_with(location, pattern.is_some(), || {
            std::env::var(KAFKA_BOOTSTRAP_ENV).ok()
        })?;
        let topics = match pattern {
            Some(re) => TopicSelector::Pattern(re),
            None => TopicSelector::Named(names.clone()),
        };
        let mut config = KafkaConfig::new(bootstrap, names.first().cloned().unwrap_or_default());
        config.group_id = scan.group_id.clone();
        config.timeout = scan.connect_timeout;
        for (property, value) in bag.take_family(&CLIENT_PROPERTIES) {
            config.set_property(&property, &value)?;
        }
        let recovery = match bag.take(&SINK_RECOVERY) {
            None => Recovery::Positional,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "positional" => Recovery::Positional,
                "identity-header" => Recovery::IdentityHeader,
                "transactional" => Recovery::Transactional,
                _ => {
                    return Err(TopicsError::invalid_option(
                        SINK_RECOVERY.key,
                        &v,
                        "expected positional, identity-header or transactional",
                    ));
                }
            },
        };
        let mut spec = TopicCreation {
            partitions: 1,
            replication: 1,
        };
        if let Some(n) = bag.take_with(&TOPIC_PARTITIONS, |k, v| parse_count(k, v, 100_000))? {
            spec.partitions = n;
        }
        if let Some(n) = bag.take_with(&TOPIC_REPLICATION, |k, v| {
            parse_count(k, v, i16::MAX as i32)
        })? {
            spec.replication = n;
        }
        Ok(Self {
            config,
            topics,
            create: scan.create_topic.then_some(spec),
            recovery,
        })
    }

    /// Takes `properties.group.id`.
    pub fn take_group(bag: &mut OptionBag) -> Result<Option<String>> {
        bag.take_with(&GROUP_ID, non_empty)
    }
}

/// The environment variable that supplies bootstrap servers to a `kafka:///topic` location.
pub const KAFKA_BOOTSTRAP_ENV: &str = "KAFKA_BOOTSTRAP";

/// Splits `kafka://h1:9092,h2:9092/topic` into bootstrap servers and topic (`a,b` for a table
/// over several topics); `kafka:///topic` takes the servers from the `KAFKA_BOOTSTRAP`
/// environment variable.
pub fn parse_kafka_location(location: &str) -> Result<(String, String)> {
    let (servers, topics) =
        parse_kafka_location_with(location, false, || std::env::var(KAFKA_BOOTSTRAP_ENV).ok())?;
    Ok((servers, topics.join(",")))
}

/// [`parse_kafka_location`] into the topic list (empty when `pattern` says the topics come
/// from `topic.pattern`), with the environment lookup supplied by the caller.
fn parse_kafka_location_with(
    location: &str,
    pattern: bool,
    servers_from_env: impl FnOnce() -> Option<String>,
) -> Result<(String, Vec<String>)> {
    let bad = |reason: &str| TopicsError::InvalidLocation {
        location: location.to_string(),
        reason: reason.to_string(),
    };
    let rest = location
        .strip_prefix("kafka://")
        .ok_or_else(|| bad("expected kafka://host:port[,host:port…]/topic[,topic…]"))?;
    let (servers, topics) = rest
        .split_once('/')
        .ok_or_else(|| bad("no topic: expected kafka://host:port/topic"))?;
    let topics = topics.trim_end_matches('/');
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
    if pattern {
        if !topics.is_empty() {
            return Err(bad(
                "with 'topic.pattern' the location names no topic (kafka:/// or kafka://host:port/)",
            ));
        }
        return Ok((servers.to_string(), Vec::new()));
    }
    if topics.is_empty() {
        return Err(bad("the topic name is empty"));
    }
    let mut names: Vec<String> = Vec::new();
    for topic in topics.split(',') {
        let topic = topic.trim();
        if topic.is_empty()
            || topic.len() > 249
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(bad(&format!(
                "'{topic}' is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)"
            )));
        }
        if names.iter().any(|n| n == topic) {
            return Err(bad(&format!("topic '{topic}' is named twice")));
        }
        names.push(topic.to_string());
    }
    Ok((servers.to_string(), names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::options_from_pairs;

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
        assert_eq!(
            parse_kafka_location("kafka://h:1/a,b.c").unwrap(),
            ("h:1".to_string(), "a,b.c".to_string())
        );
        for bad in ["kafka://h:1/a,,b", "kafka://h:1/a,a"] {
            assert!(parse_kafka_location(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_kafka_location_with("kafka://h:1/", true, || None).unwrap(),
            ("h:1".to_string(), vec![])
        );
        let err = parse_kafka_location_with("kafka://h:1/t", true, || None).unwrap_err();
        assert!(err.to_string().contains("topic.pattern"), "{err}");
        let err = parse_kafka_location_with("kafka:///t", false, || None).unwrap_err();
        assert!(
            err.to_string().contains("KAFKA_BOOTSTRAP is not set"),
            "{err}"
        );
        assert_eq!(
            parse_kafka_location_with("kafka:///t", false, || Some("h:1,h:2".into())).unwrap(),
            ("h:1,h:2".to_string(), vec!["t".to_string()])
        );
        assert!(parse_kafka_location_with("kafka:///t", false, || Some("h".into())).is_err());
    }

    #[test]
    fn options_name_themselves_in_errors() {
        let parse = |pairs: &[(&str, &str)]| {
            let map = options_from_pairs(pairs.iter().copied());
            let mut bag = OptionBag::new(&map);
            KafkaSettings::parse("kafka://h:1/t", &mut bag, &ScanOptions::default()).map(|_| bag)
        };
        let e = parse(&[("topic.partitions", "many")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("topic.partitions"), "{e}");
        let e = parse(&[("kafka.enable.auto.commit", "true")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.enable.auto.commit"), "{e}");
        let bag = parse(&[("kafka.fetch.max.bytes", "10"), ("topic.partitions", "3")]).unwrap();
        assert!(bag.finish(&[]).is_ok());
    }
}
