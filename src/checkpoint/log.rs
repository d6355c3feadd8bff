//! The offsets/commits log on object storage, following Spark's contract: `offsets/N` is
//! written put-if-absent before batch N runs, `commits/N` after its output is in the sink. A
//! runner that finds `offsets/N` without `commits/N` replays batch N with the same ranges. A
//! put-if-absent that fails means another runner writes this checkpoint: fencing.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::{
    self, CommitRecord, FORMAT, Metadata, OLDEST_READABLE, OffsetsRecord, VERSION,
};
use super::store::{self, Location};
use crate::error::{Result, TopicsError};

/// Batches whose `offsets/` and `commits/` files a checkpoint keeps (Spark's
/// `minBatchesToRetain` default); older ones are deleted as batches commit.
pub const RETAINED_BATCHES: u64 = 100;

/// Batches whose `state/` files a checkpoint keeps: recovery reads only the last committed
/// one; a few more help to look back at what a query held.
pub const RETAINED_STATES: u64 = 3;

/// A checkpoint: where a continuous query records its progress.
#[derive(Debug, Clone)]
pub struct CheckpointLog {
    location: Location,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl CheckpointLog {
    /// Opens (without writing) the checkpoint at `url`.
    pub fn open(url: &str) -> Result<Self> {
        Ok(Self {
            location: store::open(url)?,
        })
    }

    /// The checkpoint's URL as given.
    pub fn url(&self) -> &str {
        &self.location.url
    }

    fn path(&self, name: &str) -> Path {
        self.location
            .root
            .parts()
            .chain(Path::from(name).parts())
            .collect()
    }

    fn file_name(kind: &str, batch: u64) -> String {
        format!("{kind}/{batch:020}.json")
    }

    fn error(&self, detail: impl Into<String>) -> TopicsError {
        TopicsError::Checkpoint {
            url: self.location.url.clone(),
            detail: detail.into(),
        }
    }

    /// Claims the checkpoint for `query` or checks that it already belongs to it; returns
    /// the metadata (with the stable query id).
    pub async fn claim(&self, query: &str) -> Result<Metadata> {
        let fresh = Metadata {
            format: FORMAT.to_string(),
            version: VERSION,
            query_id: new_id(),
            query: query.to_string(),
            created_ms: now_ms(),
        };
        let existing = match self.put_if_absent("metadata", &fresh).await? {
            true => return Ok(fresh),
            false => self
                .read::<Metadata>("metadata")
                .await?
                .ok_or_else(|| self.error("metadata vanished while it was being read"))?,
        };
        if normalise(&existing.query) != normalise(query) {
            return Err(self.error(format!(
                "it belongs to another query (created at {} ms): {:?}; use a new checkpoint for a different query",
                existing.created_ms, existing.query
            )));
        }
        Ok(existing)
    }

    /// The checkpoint's metadata (its query and id), if it was ever claimed.
    pub async fn metadata(&self) -> Result<Option<Metadata>> {
        self.read("metadata").await
    }

    /// The highest batch with an `offsets` file, if any.
    pub async fn latest_offsets(&self) -> Result<Option<u64>> {
        self.latest("offsets").await
    }

    /// The highest batch with a `commits` file, if any.
    pub async fn latest_commit(&self) -> Result<Option<u64>> {
        self.latest("commits").await
    }

    async fn latest(&self, kind: &str) -> Result<Option<u64>> {
        let prefix = self.path(kind);
        let listed: Vec<_> = self
            .location
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.error(format!("cannot list {kind}/: {e}")))?;
        let mut latest = None;
        for meta in listed {
            let name = meta.location.filename().unwrap_or_default();
            let Some(n) = name
                .strip_suffix(".json")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                return Err(self.error(format!(
                    "unexpected file {} in {kind}/ (not written by datafusion-topics)",
                    meta.location
                )));
            };
            latest = latest.max(Some(n));
        }
        Ok(latest)
    }

    /// Reads `offsets/N`.
    pub async fn offsets(&self, batch: u64) -> Result<Option<OffsetsRecord>> {
        let name = Self::file_name("offsets", batch);
        let Some(mut value) = self.read_value(&name).await? else {
            return Ok(None);
        };
        if version_of(&value) == 1 {
            records::migrate_offsets_v1(&mut value);
        }
        self.decode(&name, value).map(Some)
    }

    /// Reads `commits/N`.
    pub async fn commit(&self, batch: u64) -> Result<Option<CommitRecord>> {
        let name = Self::file_name("commits", batch);
        let Some(mut value) = self.read_value(&name).await? else {
            return Ok(None);
        };
        if version_of(&value) == 1 {
            // Version 1 state keys are partition numbers of each table's one topic, which
            // the batch's offsets file names.
            let offsets = self
                .read_value(&Self::file_name("offsets", batch))
                .await?
                .unwrap_or_default();
            records::migrate_commit_v1(&mut value, &records::source_topics(&offsets));
        }
        self.decode(&name, value).map(Some)
    }

    /// Writes `offsets/N` if absent; fails with [`TopicsError::Fenced`] if it exists.
    pub async fn write_offsets(&self, record: &OffsetsRecord) -> Result<()> {
        let name = Self::file_name("offsets", record.batch);
        if self.put_if_absent(&name, record).await? {
            return Ok(());
        }
        let other = self.offsets(record.batch).await.ok().flatten();
        Err(TopicsError::Fenced {
            url: self.location.url.clone(),
            file: name,
            detail: other
                .map(|o| format!("runner {} at {} ms", o.runner, o.planned_ms))
                .unwrap_or_else(|| "unreadable".into()),
        })
    }

    /// Writes `commits/N` if absent; fails with [`TopicsError::Fenced`] if it exists.
    pub async fn write_commit(&self, record: &CommitRecord) -> Result<()> {
        let name = Self::file_name("commits", record.batch);
        if self.put_if_absent(&name, record).await? {
            return Ok(());
        }
        let other = self.commit(record.batch).await.ok().flatten();
        Err(TopicsError::Fenced {
            url: self.location.url.clone(),
            file: name,
            detail: other
                .map(|o| format!("runner {} at {} ms", o.runner, o.committed_ms))
                .unwrap_or_else(|| "unreadable".into()),
        })
    }

    /// Writes the aggregate state after batch `batch` by `runner` (Arrow IPC, in a file of
    /// its own, so a fenced runner never overwrites the state a commit names); returns its
    /// name relative to the checkpoint and its size.
    pub async fn write_state(
        &self,
        batch: u64,
        runner: &str,
        schema: &arrow::datatypes::SchemaRef,
        rows: &[arrow::array::RecordBatch],
    ) -> Result<(String, u64)> {
        let name = format!("state/{batch:020}-{runner}.arrow");
        let mut bytes = Vec::new();
        {
            let mut writer = arrow::ipc::writer::FileWriter::try_new(&mut bytes, schema)
                .map_err(|e| self.error(format!("cannot encode {name}: {e}")))?;
            for batch in rows {
                writer
                    .write(batch)
                    .map_err(|e| self.error(format!("cannot encode {name}: {e}")))?;
            }
            writer
                .finish()
                .map_err(|e| self.error(format!("cannot encode {name}: {e}")))?;
        }
        let size = bytes.len() as u64;
        self.location
            .store
            .put(&self.path(&name), PutPayload::from(Bytes::from(bytes)))
            .await
            .map_err(|e| self.error(format!("cannot write {name}: {e}")))?;
        Ok((name, size))
    }

    /// Deletes what recovery can no longer need once batch `committed` is committed: the
    /// `offsets/` and `commits/` files of batches more than [`RETAINED_BATCHES`] before it,
    /// and the `state/` files of batches more than [`RETAINED_STATES`] before it (the
    /// committed batch's own state is always among those kept). Returns the files deleted.
    pub async fn purge(&self, committed: u64) -> Result<usize> {
        let mut deleted = 0;
        for (kind, keep) in [
            ("offsets", RETAINED_BATCHES),
            ("commits", RETAINED_BATCHES),
            ("state", RETAINED_STATES),
        ] {
            let Some(oldest_kept) = committed.checked_sub(keep) else {
                continue;
            };
            let listed: Vec<_> = self
                .location
                .store
                .list(Some(&self.path(kind)))
                .try_collect()
                .await
                .map_err(|e| self.error(format!("cannot list {kind}/: {e}")))?;
            for meta in listed {
                let name = meta.location.filename().unwrap_or_default();
                let batch = name
                    .split(['.', '-'])
                    .next()
                    .and_then(|n| n.parse::<u64>().ok());
                if batch.is_some_and(|b| b < oldest_kept) {
                    match self.location.store.delete(&meta.location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                        Err(e) => {
                            return Err(self.error(format!("cannot delete {}: {e}", meta.location)));
                        }
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// Reads a state file written by [`Self::write_state`].
    pub async fn read_state(&self, name: &str) -> Result<Vec<arrow::array::RecordBatch>> {
        let bytes = match self.location.store.get(&self.path(name)).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| self.error(format!("cannot read {name}: {e}")))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(self.error(format!(
                    "{name} is missing although a commit names it; the checkpoint was damaged"
                )));
            }
            Err(e) => return Err(self.error(format!("cannot read {name}: {e}"))),
        };
        let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
            .map_err(|e| {
                self.error(format!(
                    "{name} is not an Arrow IPC file ({e}); it was not written by datafusion-topics"
                ))
            })?;
        reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.error(format!("{name} is damaged: {e}")))
    }

    /// Writes `value` as pretty JSON unless the file exists; false when it existed.
    async fn put_if_absent<T: Serialize>(&self, name: &str, value: &T) -> Result<bool> {
        let mut json = serde_json::to_vec_pretty(value)
            .map_err(|e| self.error(format!("cannot encode {name}: {e}")))?;
        json.push(b'\n');
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .location
            .store
            .put_opts(
                &self.path(name),
                PutPayload::from(Bytes::from(json)),
                options,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.error(format!("cannot write {name}: {e}"))),
        }
    }

    /// Reads and checks one file; `None` when it does not exist.
    async fn read<T: DeserializeOwned + Serialize>(&self, name: &str) -> Result<Option<T>> {
        match self.read_value(name).await? {
            Some(value) => self.decode(name, value).map(Some),
            None => Ok(None),
        }
    }

    fn decode<T: DeserializeOwned>(&self, name: &str, value: serde_json::Value) -> Result<T> {
        serde_json::from_value(value).map_err(|e| self.error(format!("{name} is malformed: {e}")))
    }

    /// Reads one file and checks its format and version; `None` when it does not exist.
    async fn read_value(&self, name: &str) -> Result<Option<serde_json::Value>> {
        let bytes = match self.location.store.get(&self.path(name)).await {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| self.error(format!("cannot read {name}: {e}")))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error(format!("cannot read {name}: {e}"))),
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            self.error(format!(
                "{name} is not JSON ({e}); it was not written by datafusion-topics"
            ))
        })?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            _ => {
                return Err(self.error(format!(
                    "{name} lacks \"format\": \"{FORMAT}\"; it was not written by datafusion-topics"
                )));
            }
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if (OLDEST_READABLE as u64..=VERSION as u64).contains(&v) => {}
            other => {
                return Err(self.error(format!(
                    "{name} has version {other:?}; this build reads versions \
                     {OLDEST_READABLE} to {VERSION}"
                )));
            }
        }
        Ok(Some(value))
    }
}

fn version_of(value: &serde_json::Value) -> u64 {
    value.get("version").and_then(|v| v.as_u64()).unwrap_or(0)
}

/// Whitespace-insensitive form of a query, for ownership checks.
fn normalise(query: &str) -> String {
    query.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A random id (128 bits, hex).
pub fn new_id() -> String {
    let a: u64 = rand_u64();
    let b: u64 = rand_u64();
    format!("{a:016x}{b:016x}")
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::checkpoint::records::{SinkMarks, SourceRanges};
    use crate::source::OffsetRange;

    fn offsets(batch: u64, runner: &str) -> OffsetsRecord {
        let mut partitions = BTreeMap::new();
        partitions.insert(
            crate::source::TopicPartition::new("orders", 0),
            OffsetRange::closed(0, 10),
        );
        let mut sources = BTreeMap::new();
        sources.insert(
            "orders".to_string(),
            SourceRanges {
                kind: "memory".into(),
                topic: "orders".into(),
                partitions,
                skipped: BTreeMap::new(),
                work_queue: None,
                high: Default::default(),
            },
        );
        OffsetsRecord {
            format: FORMAT.into(),
            version: VERSION,
            batch,
            runner: runner.into(),
            planned_ms: 1,
            sources,
            sink: SinkMarks::default(),
            watermark: None,
            idle: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn offsets_commits_and_fencing() {
        let dir = tempfile::tempdir().unwrap();
        let log = CheckpointLog::open(dir.path().to_str().unwrap()).unwrap();
        let meta = log.claim("INSERT INTO a SELECT * FROM b").await.unwrap();
        let again = log.claim("INSERT INTO a\n  SELECT * FROM b").await.unwrap();
        assert_eq!(meta.query_id, again.query_id);
        let other = log
            .claim("INSERT INTO c SELECT * FROM b")
            .await
            .unwrap_err();
        assert!(other.to_string().contains("another query"), "{other}");

        assert_eq!(log.latest_offsets().await.unwrap(), None);
        log.write_offsets(&offsets(0, "r1")).await.unwrap();
        log.write_offsets(&offsets(1, "r1")).await.unwrap();
        assert_eq!(log.latest_offsets().await.unwrap(), Some(1));
        assert_eq!(log.offsets(1).await.unwrap(), Some(offsets(1, "r1")));
        let fenced = log.write_offsets(&offsets(1, "r2")).await.unwrap_err();
        assert!(matches!(fenced, TopicsError::Fenced { .. }), "{fenced}");
        assert!(fenced.to_string().contains("runner r1"), "{fenced}");

        let text =
            std::fs::read_to_string(dir.path().join("offsets/00000000000000000001.json")).unwrap();
        assert!(text.contains("\"start\": 0"), "{text}");
        assert!(text.contains(FORMAT), "{text}");
    }

    #[tokio::test]
    async fn files_written_by_someone_else_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = CheckpointLog::open(dir.path().to_str().unwrap()).unwrap();
        std::fs::create_dir_all(dir.path().join("offsets")).unwrap();
        std::fs::write(dir.path().join("offsets/00000000000000000000.json"), "{}").unwrap();
        let err = log.offsets(0).await.unwrap_err().to_string();
        assert!(err.contains("not written by datafusion-topics"), "{err}");
        std::fs::write(dir.path().join("offsets/notes.txt"), "hello").unwrap();
        let err = log.latest_offsets().await.unwrap_err().to_string();
        assert!(err.contains("unexpected file"), "{err}");
        std::fs::write(dir.path().join("metadata"), "garbage").unwrap();
        let err = log.claim("q").await.unwrap_err().to_string();
        assert!(err.contains("metadata is not JSON"), "{err}");
    }
}
