//! Exactly-once micro-batches into a topic table: every message carries a deterministic
//! identity (a header, or its position in the partition); a replayed batch first reads back
//! what the interrupted attempt wrote (from the output positions recorded before the batch)
//! and writes only the rest. Where the identity header is one the broker deduplicates on
//! (NATS's `Nats-Msg-Id`), the server deduplicates within its window as well. With
//! transactions each batch also commits atomically (see [`Recovery::Transactional`]).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, BinaryArray, StringArray};
use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use super::batch::{BatchSink, BatchToWrite, BatchWritten};
use super::encode::OutgoingMessage;
use super::encode::RowEncoder;
use super::identity::{batch_prefix, fnv1a_128, identities};
use super::{MessageWriter, Recovery};
use crate::checkpoint::SinkMarks;
use crate::error::{Result, TopicsError};
use crate::source::{ColumnNeeds, LogSource, OffsetRange, ReadRequest};

/// A topic table as the sink of a continuous query.
#[derive(Debug)]
pub struct TopicBatchSink {
    writer: Arc<dyn MessageWriter>,
    source: Arc<dyn LogSource>,
    encoder: RowEncoder,
}

impl TopicBatchSink {
    /// Writes through `writer`, reads back through `source` (the same topic), encodes rows with
    /// `encoder`.
    pub fn new(
        writer: Arc<dyn MessageWriter>,
        source: Arc<dyn LogSource>,
        encoder: RowEncoder,
    ) -> Self {
        Self {
            writer: writer.for_batches(),
            source,
            encoder,
        }
    }

    fn fail(&self, detail: impl Into<String>) -> TopicsError {
        TopicsError::Sink {
            target: self.writer.target(),
            detail: detail.into(),
        }
    }

    /// Identities of batch `prefix` already in the output since `marks`.
    async fn written_since(&self, marks: &SinkMarks, prefix: &str) -> Result<HashSet<String>> {
        let header = self.writer.identity_header();
        let partitions = self.source.partitions().await?;
        let watermarks = self.source.watermarks(&partitions).await?;
        let mut found = HashSet::new();
        for (p, w) in partitions.iter().zip(&watermarks) {
            let from = marks.partitions.get(p).copied().unwrap_or(w.low).max(w.low);
            if from >= w.high {
                continue;
            }
            let request = ReadRequest {
                needs: ColumnNeeds {
                    headers: true,
                    ..Default::default()
                },
                batch_rows: 4096,
                max_messages: None,
                fail_on_data_loss: true,
            };
            let mut stream = self
                .source
                .read(*p, OffsetRange::closed(from, w.high), request);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                let Some(maps) = &batch.headers else { continue };
                for row in 0..maps.len() {
                    if !maps.is_valid(row) {
                        continue;
                    }
                    let entry = maps.value(row);
                    let names = entry.column(0).as_any().downcast_ref::<StringArray>();
                    let values = entry.column(1).as_any().downcast_ref::<BinaryArray>();
                    let (Some(names), Some(values)) = (names, values) else {
                        continue;
                    };
                    for i in 0..names.len() {
                        if names.value(i) == header
                            && let Ok(id) = std::str::from_utf8(values.value(i))
                            && id.starts_with(prefix)
                        {
                            found.insert(id.to_string());
                        }
                    }
                }
            }
        }
        Ok(found)
    }
}

impl TopicBatchSink {
    /// Orders the batch deterministically per output partition and, on replay, drops the
    /// prefix of each partition's list that the interrupted attempt already wrote.
    async fn positional(
        &self,
        batch: u64,
        marks: &SinkMarks,
        replay: bool,
        messages: Vec<OutgoingMessage>,
        ids: Vec<String>,
    ) -> Result<Vec<OutgoingMessage>> {
        let partitions: Vec<i32> = marks.partitions.keys().copied().collect();
        if partitions.is_empty() {
            return Err(self.fail("the output topic has no partitions"));
        }
        // Rows without a partition get one from their key (or identity): the same on replay.
        let mut keyed: Vec<(i32, String, OutgoingMessage)> = messages
            .into_iter()
            .zip(ids)
            .map(|(mut m, id)| {
                let p = m.partition.unwrap_or_else(|| {
                    let basis = m.key.as_deref().unwrap_or(id.as_bytes());
                    partitions[(fnv1a_128(&[basis]) % partitions.len() as u128) as usize]
                });
                m.partition = Some(p);
                (p, id, m)
            })
            .collect();
        keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        if !replay {
            return Ok(keyed.into_iter().map(|(_, _, m)| m).collect());
        }
        let now = self.source.watermarks(&partitions).await?;
        let mut out = Vec::with_capacity(keyed.len());
        for (p, w) in partitions.iter().zip(&now) {
            let mine: Vec<OutgoingMessage> = keyed
                .iter()
                .filter(|(q, _, _)| q == p)
                .map(|(_, _, m)| m.clone())
                .collect();
            let written = (w.high - marks.partitions[p]).max(0) as usize;
            if written > mine.len() {
                return Err(self.fail(format!(
                    "batch {batch}: output partition {p} gained {written} messages since the batch began \
                     but the batch writes {} there; another producer writes to the output topic, which \
                     positional recovery does not allow (use 'sink.recovery' 'identity-header')",
                    mine.len()
                )));
            }
            out.extend(mine.into_iter().skip(written));
        }
        Ok(out)
    }
}

#[async_trait]
impl BatchSink for TopicBatchSink {
    fn describe(&self) -> String {
        self.writer.target()
    }

    fn writes_tombstones(&self) -> bool {
        self.encoder.has_key()
    }

    async fn marks(&self) -> Result<SinkMarks> {
        let partitions = self.source.partitions().await?;
        let watermarks = self.source.watermarks(&partitions).await?;
        Ok(SinkMarks {
            kind: self.source.kind().to_string(),
            partitions: partitions
                .iter()
                .zip(&watermarks)
                .map(|(p, w)| (*p, w.high))
                .collect(),
        })
    }

    async fn write_batch(
        &self,
        to_write: &BatchToWrite<'_>,
        mut rows: SendableRecordBatchStream,
        retracted: Vec<arrow::array::RecordBatch>,
    ) -> Result<BatchWritten> {
        let BatchToWrite {
            query_id,
            batch,
            marks,
            replay,
            ..
        } = *to_write;
        let mut messages = Vec::new();
        while let Some(b) = rows.next().await {
            let b = b.map_err(|e| self.fail(format!("batch {batch}: the query failed: {e}")))?;
            messages.extend(self.encoder.encode(&b)?);
        }
        let rows_only = messages.len() as u64;
        if self.writes_tombstones() {
            // Keys that were in the result and are not any more: a tombstone each, after the
            // batch's rows (a deterministic order, so a replay writes the same messages).
            let mut seen: HashSet<Vec<u8>> =
                messages.iter().filter_map(|m| m.key.clone()).collect();
            for b in &retracted {
                for m in self.encoder.encode_tombstones(b)? {
                    if let Some(key) = &m.key
                        && seen.insert(key.clone())
                    {
                        messages.push(m);
                    }
                }
            }
        }
        let ids = identities(query_id, batch, &messages);
        let total = messages.len() as u64;
        self.writer.prepare_batches(query_id).await?;
        let pending = match self.writer.recovery() {
            Recovery::IdentityHeader | Recovery::Transactional => {
                let header = self.writer.identity_header();
                let already = if replay {
                    self.written_since(marks, &batch_prefix(query_id, batch))
                        .await?
                } else {
                    HashSet::new()
                };
                let mut pending = Vec::with_capacity(messages.len());
                for (mut m, id) in messages.into_iter().zip(ids) {
                    if !already.contains(&id) {
                        m.headers.push((header.to_string(), id.into_bytes()));
                        pending.push(m);
                    }
                }
                pending
            }
            Recovery::Positional => self.positional(batch, marks, replay, messages, ids).await?,
        };
        let skipped = total - pending.len() as u64;
        self.writer.write_batch(query_id, &pending).await?;
        Ok(BatchWritten {
            rows: rows_only,
            tombstones: total - rows_only,
            already_written: skipped,
        })
    }
}
