//! Late rows: messages whose event time was below the watermark when they arrived, produced
//! as they were to the table's `watermark.late-topic`, with headers saying where they came
//! from, their event time and the watermark they missed.

use std::fmt;
use std::sync::Arc;

use arrow::array::Array;

use super::{MessageWriter, OutgoingMessage};
use crate::error::Result;
use crate::source::RawBatch;

/// Produces late rows to a destination on the table's brokers.
pub struct LateRows {
    writer: Arc<dyn MessageWriter>,
}

impl fmt::Debug for LateRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LateRows({})", self.writer.target())
    }
}

impl LateRows {
    /// Late rows written by `writer` (a writer the connector made for the destination).
    pub fn new(writer: Arc<dyn MessageWriter>) -> Self {
        Self { writer }
    }

    /// Produces the messages at `rows` of `raw` (read from `topic`), each with its event time
    /// (ms), late against `watermark`, and waits for the broker. Key and identity are
    /// `topic/partition/offset`, so a row found late twice is recognisable as one.
    pub async fn send(
        &self,
        topic: &str,
        raw: &RawBatch,
        rows: &[(usize, i64)],
        watermark: i64,
    ) -> Result<()> {
        let messages: Vec<OutgoingMessage> = rows
            .iter()
            .map(|&(row, event_time)| {
                let offset = raw.offsets.value(row);
                let origin = format!("{topic}/{}/{offset}", raw.partition);
                let mut headers = super::dead_letter::original_headers(raw, row);
                headers.extend([
                    ("late.topic".to_string(), topic.as_bytes().to_vec()),
                    (
                        "late.partition".to_string(),
                        raw.partition.to_string().into_bytes(),
                    ),
                    ("late.offset".to_string(), offset.to_string().into_bytes()),
                    (
                        "late.event-time".to_string(),
                        event_time.to_string().into_bytes(),
                    ),
                    (
                        "late.watermark".to_string(),
                        watermark.to_string().into_bytes(),
                    ),
                    (
                        self.writer.identity_header().to_string(),
                        origin.clone().into_bytes(),
                    ),
                ]);
                OutgoingMessage {
                    value: raw
                        .values
                        .as_ref()
                        .filter(|v| v.is_valid(row))
                        .map(|v| v.value(row).to_vec()),
                    key: Some(origin.into_bytes()),
                    partition: None,
                    timestamp: raw
                        .timestamps
                        .as_ref()
                        .filter(|t| t.is_valid(row))
                        .map(|t| t.value(row)),
                    headers,
                    subject: None,
                }
            })
            .collect();
        self.writer.write(&messages).await?;
        Ok(())
    }
}
