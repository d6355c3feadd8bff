//! Exactly-once micro-batches into Parquet or JSON files on object storage: batch N becomes
//! the one object `part-<N>.<ext>` under the table's location, written in one atomic put, so a
//! replayed batch replaces a partial or complete earlier attempt instead of adding to it.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::batch::{BatchSink, BatchToWrite, BatchWritten};
use crate::checkpoint::SinkMarks;
use crate::error::{Result, TopicsError};

/// File formats the file sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet (zstd-compressed).
    Parquet,
    /// Newline-delimited JSON.
    Json,
}

impl FileFormat {
    /// Picks the format from a file extension (`parquet`, `json`).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.trim_start_matches('.') {
            "parquet" => Some(Self::Parquet),
            "json" | "ndjson" => Some(Self::Json),
            _ => None,
        }
    }

    fn extension(&self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Json => "json",
        }
    }
}

/// A directory of files on object storage as the sink of a continuous query.
#[derive(Debug)]
pub struct FileBatchSink {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    format: FileFormat,
    schema: SchemaRef,
}

impl FileBatchSink {
    /// Writes `format` files of `schema` under `prefix` of `store` (`url` names it).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        url: String,
        format: FileFormat,
        schema: SchemaRef,
    ) -> Self {
        Self {
            store,
            prefix,
            url,
            format,
            schema,
        }
    }

    /// The object name of batch `batch`.
    pub fn object_of(&self, batch: u64) -> Path {
        self.prefix
            .parts()
            .chain(Path::from(format!("part-{batch:020}.{}", self.format.extension())).parts())
            .collect()
    }

    fn fail(&self, detail: impl Into<String>) -> TopicsError {
        TopicsError::Sink {
            target: self.url.clone(),
            detail: detail.into(),
        }
    }

    fn encode(&self, batches: &[arrow::array::RecordBatch]) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        match self.format {
            FileFormat::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                let mut writer = parquet::arrow::ArrowWriter::try_new(
                    &mut buf,
                    Arc::clone(&self.schema),
                    Some(props),
                )
                .map_err(|e| self.fail(e.to_string()))?;
                for b in batches {
                    writer.write(b).map_err(|e| self.fail(e.to_string()))?;
                }
                writer.close().map_err(|e| self.fail(e.to_string()))?;
            }
            FileFormat::Json => {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut buf);
                for b in batches {
                    writer.write(b)?;
                }
                writer.finish()?;
            }
        }
        Ok(buf)
    }
}

#[async_trait]
impl BatchSink for FileBatchSink {
    fn describe(&self) -> String {
        format!("{} files under {}", self.format.extension(), self.url)
    }

    fn update_output(&self) -> crate::query::UpdateOutput {
        // A file per batch: each holds every group, so the newest file is the result.
        crate::query::UpdateOutput::Snapshot
    }

    async fn marks(&self) -> Result<SinkMarks> {
        Ok(SinkMarks {
            kind: "files".into(),
            partitions: Default::default(),
        })
    }

    async fn write_batch(
        &self,
        to_write: &BatchToWrite<'_>,
        mut rows: SendableRecordBatchStream,
        _retracted: Vec<arrow::array::RecordBatch>,
    ) -> Result<BatchWritten> {
        let batch = to_write.batch;
        // A file batch is a snapshot of every group (UpdateOutput::Snapshot): a group that
        // left the result is simply absent, so retracted rows need no file of their own.
        let mut batches = Vec::new();
        let mut count = 0u64;
        while let Some(b) = rows.next().await {
            let b = b.map_err(|e| self.fail(format!("batch {batch}: the query failed: {e}")))?;
            count += b.num_rows() as u64;
            // The file has the table's schema; the query's batches may differ in nullability.
            batches.push(arrow::array::RecordBatch::try_new(
                Arc::clone(&self.schema),
                b.columns().to_vec(),
            )?);
        }
        if count > 0 {
            let bytes = self.encode(&batches)?;
            let object = self.object_of(batch);
            self.store
                .put(&object, PutPayload::from(Bytes::from(bytes)))
                .await
                .map_err(|e| self.fail(format!("cannot write {object}: {e}")))?;
        }
        Ok(BatchWritten {
            rows: count,
            already_written: 0,
            tombstones: 0,
        })
    }
}
