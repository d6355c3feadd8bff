//! Dead letters: messages a scan could not decode, produced as they were (key, value,
//! headers) to a dead-letter destination (the connector's writer for it: a topic, or a
//! subject), with headers saying where they came from and why they failed.

use std::fmt;
use std::sync::Arc;

use arrow::array::Array;

use super::{MessageWriter, OutgoingMessage};
use crate::error::Result;
use crate::format::BadMessage;
use crate::source::RawBatch;

/// Produces bad messages to a dead-letter destination.
pub struct DeadLetters {
    writer: Arc<dyn MessageWriter>,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeadLetters({})", self.target())
    }
}

impl DeadLetters {
    /// Dead letters written by `writer` (a writer the connector made for the destination).
    pub fn new(writer: Arc<dyn MessageWriter>) -> Self {
        Self { writer }
    }

    /// Where dead letters go.
    pub fn target(&self) -> String {
        self.writer.target()
    }

    /// Produces the `bad` messages of `raw` (read from `topic`) and waits for the broker.
    /// The key and the identity header of a dead letter are `topic/partition/offset`, so a
    /// message that fails in two scans is recognisable as one (it collapses on a compacted
    /// topic, and a broker that deduplicates on the identity, as NATS does, keeps one).
    pub async fn send(&self, topic: &str, raw: &RawBatch, bad: &[BadMessage]) -> Result<()> {
        let messages: Vec<OutgoingMessage> = bad
            .iter()
            .map(|b| {
                let offset = raw.offsets.value(b.row);
                let origin = format!("{topic}/{}/{offset}", raw.partition);
                let mut headers = original_headers(raw, b.row);
                headers.extend([
                    ("dlt.topic".to_string(), topic.as_bytes().to_vec()),
                    (
                        "dlt.partition".to_string(),
                        raw.partition.to_string().into_bytes(),
                    ),
                    ("dlt.offset".to_string(), offset.to_string().into_bytes()),
                    (
                        "dlt.error".to_string(),
                        format!("{}: {}", b.side.name(), b.reason).into_bytes(),
                    ),
                ]);
                headers.push((
                    self.writer.identity_header().to_string(),
                    origin.clone().into_bytes(),
                ));
                if let Some(keys) = raw.keys.as_ref().filter(|k| k.is_valid(b.row)) {
                    headers.push(("dlt.key".to_string(), keys.value(b.row).to_vec()));
                }
                OutgoingMessage {
                    value: raw
                        .values
                        .as_ref()
                        .filter(|v| v.is_valid(b.row))
                        .map(|v| v.value(b.row).to_vec()),
                    key: Some(origin.into_bytes()),
                    partition: None,
                    timestamp: raw
                        .timestamps
                        .as_ref()
                        .filter(|t| t.is_valid(b.row))
                        .map(|t| t.value(b.row)),
                    headers,
                    subject: None,
                }
            })
            .collect();
        self.writer.write(&messages).await?;
        Ok(())
    }
}

/// The headers of message `row` of `raw`, as (name, bytes) pairs.
pub(super) fn original_headers(raw: &RawBatch, row: usize) -> Vec<(String, Vec<u8>)> {
    let Some(maps) = raw.headers.as_ref().filter(|m| m.is_valid(row)) else {
        return Vec::new();
    };
    let entries = maps.value(row);
    let names = entries
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>();
    let values = entries
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::BinaryArray>();
    match (names, values) {
        (Some(names), Some(values)) => (0..names.len())
            .map(|i| {
                (
                    names.value(i).to_string(),
                    if values.is_valid(i) {
                        values.value(i).to_vec()
                    } else {
                        Vec::new()
                    },
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}
