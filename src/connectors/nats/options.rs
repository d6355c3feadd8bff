//! The options only NATS tables take: partition mapping, work-queue mode, TLS, credentials.

use crate::error::{Result, TopicsError};
use crate::options::{
    BoundedMode, OptionBag, OptionDecl, ScanOptions, StartupMode, existing_file, missing,
    missing_pair, non_empty, parse_bool, parse_count, parse_duration,
};
use crate::source::TopicSelector;

use super::config::{
    NatsConfig, NatsPartitioning, QueueStart, WorkQueueConfig, parse_nats_location_with,
};

/// `nats.partitioning`
pub const PARTITIONING: OptionDecl = OptionDecl {
    key: "nats.partitioning",
    values: "stream | subject | streams",
    default: "stream",
    doc: "How partitions map onto JetStream: the whole stream is one partition; one partition per filter subject (nats.subjects); or the streams <name>-0 … <name>-<n-1> (nats.partitions).",
};
/// `nats.subjects`
pub const SUBJECTS: OptionDecl = OptionDecl {
    key: "nats.subjects",
    values: "subject list (a,b,c) or one wildcard (orders.*)",
    default: "",
    doc: "With nats.partitioning = subject: partition i reads the i-th subject; with a wildcard, one partition per matching subject (numbered by the wildcard token when it is a number, as {{partition(n, ...)}} transforms produce).",
};
/// `nats.partitions`
pub const PARTITIONS: OptionDecl = OptionDecl {
    key: "nats.partitions",
    values: "number of streams",
    default: "",
    doc: "With nats.partitioning = streams: how many streams <name>-0 … <name>-<n-1> there are.",
};
/// `nats.mode`
pub const MODE: OptionDecl = OptionDecl {
    key: "nats.mode",
    values: "ordered | work-queue",
    default: "ordered",
    doc: "ordered: each partition is read by its own ephemeral ordered consumer from the offsets the scan planned, so reads are repeatable and continuous queries exactly-once. work-queue: the table's readers pull from one durable consumer (nats.work-queue.consumer) shared with every process naming it, and acknowledge each message once used: at-least-once, no offset pushdown.",
};
/// `nats.work-queue.consumer`
pub const QUEUE_CONSUMER: OptionDecl = OptionDecl {
    key: "nats.work-queue.consumer",
    values: "durable consumer name (letters, digits, '-', '_')",
    default: "",
    doc: "With nats.mode = work-queue: the durable pull consumer, created when missing (starting where scan.startup.mode says: earliest, latest or timestamp). An existing one must pull, ack explicitly and filter on the table's subjects.",
};
/// `nats.work-queue.readers`
pub const QUEUE_READERS: OptionDecl = OptionDecl {
    key: "nats.work-queue.readers",
    values: "1 to 256",
    default: "1",
    doc: "Parallel readers of the consumer, one output partition each (`_partition` is the reader).",
};
/// `nats.work-queue.ack-wait`
pub const QUEUE_ACK_WAIT: OptionDecl = OptionDecl {
    key: "nats.work-queue.ack-wait",
    values: "duration such as 30s, 5m",
    default: "30s",
    doc: "How long the server waits for a message's acknowledgement before delivering it again; a micro-batch must commit within it. Used when the consumer is created.",
};
/// `nats.work-queue.max-ack-pending`
pub const QUEUE_MAX_ACK_PENDING: OptionDecl = OptionDecl {
    key: "nats.work-queue.max-ack-pending",
    values: "number",
    default: "65536",
    doc: "Most messages delivered but not yet acknowledged, over all readers: the most one micro-batch reads. Used when the consumer is created.",
};
/// `nats.tls.required`
pub const TLS_REQUIRED: OptionDecl = OptionDecl {
    key: "nats.tls.required",
    values: "true | false",
    default: "false (true for tls:// locations)",
    doc: "Require TLS.",
};
/// `nats.tls.ca-file`
pub const TLS_CA_FILE: OptionDecl = OptionDecl {
    key: "nats.tls.ca-file",
    values: "path to PEM",
    default: "",
    doc: "Certificate authorities to trust (for example a self-signed server's); implies TLS.",
};
/// `nats.tls.cert-file`
pub const TLS_CERT_FILE: OptionDecl = OptionDecl {
    key: "nats.tls.cert-file",
    values: "path to PEM",
    default: "",
    doc: "Client certificate for mutual TLS (with nats.tls.key-file).",
};
/// `nats.tls.key-file`
pub const TLS_KEY_FILE: OptionDecl = OptionDecl {
    key: "nats.tls.key-file",
    values: "path to PEM",
    default: "",
    doc: "Client private key for mutual TLS.",
};
/// `nats.user`
pub const USER: OptionDecl = OptionDecl {
    key: "nats.user",
    values: "user name",
    default: "",
    doc: "User for user/password authentication (with nats.password).",
};
/// `nats.password`
pub const PASSWORD: OptionDecl = OptionDecl {
    key: "nats.password",
    values: "password",
    default: "",
    doc: "Password (never printed).",
};
/// `nats.token`
pub const TOKEN: OptionDecl = OptionDecl {
    key: "nats.token",
    values: "token",
    default: "",
    doc: "Token authentication (never printed).",
};
/// `nats.creds-file`
pub const CREDS_FILE: OptionDecl = OptionDecl {
    key: "nats.creds-file",
    values: "path",
    default: "",
    doc: "Credentials file (JWT + nkey seed).",
};
/// `nats.nkey-seed`
pub const NKEY_SEED: OptionDecl = OptionDecl {
    key: "nats.nkey-seed",
    values: "nkey seed",
    default: "",
    doc: "NKey seed authentication (never printed).",
};

/// Every NATS-only option, in documentation order.
pub const NATS_OPTIONS: &[&OptionDecl] = &[
    &PARTITIONING,
    &SUBJECTS,
    &PARTITIONS,
    &MODE,
    &QUEUE_CONSUMER,
    &QUEUE_READERS,
    &QUEUE_ACK_WAIT,
    &QUEUE_MAX_ACK_PENDING,
    &TLS_REQUIRED,
    &TLS_CA_FILE,
    &TLS_CERT_FILE,
    &TLS_KEY_FILE,
    &USER,
    &PASSWORD,
    &TOKEN,
    &CREDS_FILE,
    &NKEY_SEED,
];

fn invalid(key: &str, value: &str, reason: &str) -> TopicsError {
    TopicsError::invalid_option(key, value, reason)
}

/// Parses the location and takes the NATS options from `bag` into connection settings;
/// `scan` holds the options every table takes.
pub fn parse_nats_settings(
    location: &str,
    bag: &mut OptionBag,
    scan: &ScanOptions,
) -> Result<(NatsConfig, TopicSelector)> {
    let pattern = scan.topics.pattern.clone();
    let (servers, streams) = parse_nats_location_with(location, pattern.is_some(), || {
        std::env::var(super::config::NATS_URL_ENV).ok()
    })?;
    let selector = match pattern {
        Some(re) => TopicSelector::Pattern(re),
        None => TopicSelector::Named(streams.clone()),
    };
    let mut nats = NatsConfig::new(servers, streams.first().cloned().unwrap_or_default());
    nats.timeout = scan.connect_timeout;
    if scan.key != crate::format::FormatSpec::default() {
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
    if let Some(required) = bag.take_with(&TLS_REQUIRED, parse_bool)? {
        nats.tls.required = required;
    }
    nats.tls.ca_file = bag.take_with(&TLS_CA_FILE, existing_file)?;
    nats.tls.cert_file = bag.take_with(&TLS_CERT_FILE, existing_file)?;
    nats.tls.key_file = bag.take_with(&TLS_KEY_FILE, existing_file)?;
    for decl in [&USER, &PASSWORD, &TOKEN, &CREDS_FILE, &NKEY_SEED] {
        if let Some(value) = bag.take_with(decl, non_empty)? {
            nats.auth.set(&decl.key["nats.".len()..], value);
        }
    }
    if nats.auth.get("user").is_some() != nats.auth.get("password").is_some() {
        return Err(missing_pair(USER.key, PASSWORD.key));
    }
    if nats.tls.cert_file.is_some() != nats.tls.key_file.is_some() {
        return Err(missing_pair(TLS_CERT_FILE.key, TLS_KEY_FILE.key));
    }
    nats.partitioning = parse_partitioning(bag)?;
    nats.work_queue = parse_work_queue(bag, &nats.partitioning, scan)?;
    let several = !matches!(&selector, TopicSelector::Named(n) if n.len() == 1);
    if several && nats.work_queue.is_some() {
        return Err(TopicsError::OptionConflict {
            key: MODE.key.into(),
            reason: format!("a work queue reads one stream; the table names several ({selector})"),
        });
    }
    if several && matches!(nats.partitioning, NatsPartitioning::Streams(_)) {
        return Err(TopicsError::OptionConflict {
            key: PARTITIONING.key.into(),
            reason: format!(
                "'streams' makes one table of the streams <name>-0 … <name>-<n-1>; list the \
                 streams in LOCATION or use topic.pattern instead of combining both ({selector})"
            ),
        });
    }
    Ok((nats, selector))
}

fn parse_partitioning(bag: &mut OptionBag) -> Result<NatsPartitioning> {
    let mapping = bag.take(&PARTITIONING).map(|m| m.to_ascii_lowercase());
    let subjects = bag.take_with(&SUBJECTS, non_empty)?;
    let count: Option<u32> = bag.take_with(&PARTITIONS, |key, value| {
        value
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| invalid(key, value, "expected a number of streams from 1 to 10000"))
    })?;
    let default = if subjects.is_some() {
        "subject"
    } else {
        "stream"
    };
    Ok(match mapping.as_deref().unwrap_or(default) {
        "stream" => NatsPartitioning::Stream,
        "subject" | "subjects" => {
            let list =
                subjects.ok_or_else(|| missing(SUBJECTS.key, PARTITIONING.key, "subject"))?;
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
                        SUBJECTS.key,
                        &list.join(","),
                        "give either one wildcard or a list of plain subjects",
                    ));
                }
                _ => NatsPartitioning::Subjects(list),
            }
        }
        "streams" => NatsPartitioning::Streams(
            count.ok_or_else(|| missing(PARTITIONS.key, PARTITIONING.key, "streams"))?,
        ),
        other => {
            return Err(invalid(
                PARTITIONING.key,
                other,
                "expected stream, subject or streams",
            ));
        }
    })
}

fn parse_work_queue(
    bag: &mut OptionBag,
    partitioning: &NatsPartitioning,
    scan: &ScanOptions,
) -> Result<Option<WorkQueueConfig>> {
    let mode = bag.take(&MODE).map(|m| m.trim().to_ascii_lowercase());
    let mut queue = WorkQueueConfig::new(String::new());
    let queue_key = bag
        .first_with_prefix("nats.work-queue.")
        .map(str::to_string);
    if let Some(consumer) = bag.take_with(&QUEUE_CONSUMER, non_empty)? {
        check_consumer_name(QUEUE_CONSUMER.key, &consumer)?;
        queue.consumer = consumer;
    }
    if let Some(n) = bag.take_with(&QUEUE_READERS, |k, v| parse_count(k, v, 256))? {
        queue.readers = n as u32;
    }
    if let Some(wait) = bag.take_with(&QUEUE_ACK_WAIT, parse_duration)? {
        queue.ack_wait = wait;
    }
    if let Some(n) = bag.take_with(&QUEUE_MAX_ACK_PENDING, |k, v| parse_count(k, v, i32::MAX))? {
        queue.max_ack_pending = i64::from(n);
    }
    match mode.as_deref().unwrap_or("ordered") {
        "ordered" => match queue_key {
            Some(key) => Err(TopicsError::OptionConflict {
                key,
                reason: "applies with 'nats.mode' = 'work-queue'".into(),
            }),
            None => Ok(None),
        },
        "work-queue" => work_queue_settings(queue, partitioning, scan).map(Some),
        other => Err(invalid(MODE.key, other, "expected ordered or work-queue")),
    }
}

/// Completes the work-queue settings from the partition mapping and the scan's start and end.
fn work_queue_settings(
    mut queue: WorkQueueConfig,
    partitioning: &NatsPartitioning,
    scan: &ScanOptions,
) -> Result<WorkQueueConfig> {
    if queue.consumer.is_empty() {
        return Err(missing(QUEUE_CONSUMER.key, MODE.key, "work-queue"));
    }
    if matches!(partitioning, NatsPartitioning::Streams(_)) {
        return Err(TopicsError::OptionConflict {
            key: PARTITIONING.key.into(),
            reason: "a work queue reads one stream through one consumer; 'streams' names several streams"
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
