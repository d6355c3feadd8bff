//! Broker-free tests of the exactly-once topic sink: replays over in-memory topics, step by
//! step (the kill tests in tests/it run the same code against real brokers).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

use super::identity::identities;
use super::{BatchSink, BatchToWrite, RowEncoder, TopicBatchSink};
use crate::checkpoint::SinkMarks;
use crate::connectors::memory::{MemoryMessage, memory_topic};
use crate::options::options_from_pairs;
use crate::source::LogSource;
use crate::table::TopicTable;

/// A memory table with one `id` column, its exactly-once batch sink, and row builders.
struct SinkFixture {
    name: String,
    schema: SchemaRef,
    encoder: RowEncoder,
    sink: TopicBatchSink,
}

impl SinkFixture {
    async fn new(name: &str, options: &[(&str, &str)]) -> Self {
        let name = format!("{name}-{}", crate::checkpoint::new_id());
        memory_topic(&name, 2);
        let columns = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let mut pairs = vec![("value.format", "json")];
        pairs.extend_from_slice(options);
        let table = TopicTable::open(
            &format!("mem:///{name}"),
            columns,
            &options_from_pairs(pairs),
        )
        .await
        .unwrap();
        let schema = table.schema();
        let encoder = RowEncoder::try_new(&schema, 1, table.formats())
            .await
            .unwrap();
        let sink = TopicBatchSink::new(
            Arc::clone(table.writer().unwrap()),
            Arc::clone(table.log().unwrap()),
            encoder.clone(),
        );
        Self {
            name,
            schema,
            encoder,
            sink,
        }
    }

    /// Rows with these ids; with `partitioned`, `_partition` = id % 2, else NULL.
    fn rows(&self, ids: &[i64], partitioned: bool) -> RecordBatch {
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "id" => Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
                "_partition" if partitioned => Arc::new(Int32Array::from(
                    ids.iter().map(|i| (i % 2) as i32).collect::<Vec<_>>(),
                )),
                _ => new_null_array(f.data_type(), ids.len()),
            })
            .collect();
        RecordBatch::try_new(Arc::clone(&self.schema), columns).unwrap()
    }

    fn stream(&self, ids: &[i64], partitioned: bool) -> SendableRecordBatchStream {
        let batch = self.rows(ids, partitioned);
        Box::pin(RecordBatchStreamAdapter::new(
            batch.schema(),
            futures::stream::iter(vec![Ok(batch)]),
        ))
    }

    /// The ids in the output (with the partition each is in and its header count), sorted.
    async fn output(&self) -> Vec<(i64, i32, usize)> {
        let topic = memory_topic(&self.name, 2);
        let mut out = Vec::new();
        for p in topic.partitions().await.unwrap() {
            for (_, m) in topic.messages(p, 0, i64::MAX).unwrap() {
                let value: serde_json::Value =
                    serde_json::from_slice(m.value.as_deref().unwrap_or(b"{}")).unwrap();
                out.push((value["id"].as_i64().unwrap_or(-1), p, m.headers.len()));
            }
        }
        out.sort();
        out
    }
}

/// The sink's replay, step by step: an interrupted attempt wrote a prefix of one output
/// partition's messages; the replay writes exactly the rest, and refuses when another producer
/// wrote to the output meanwhile.
#[tokio::test]
async fn a_replayed_batch_writes_only_what_is_missing() {
    let f = SinkFixture::new("replay", &[]).await;
    let all: Vec<i64> = (0..100).collect();
    let marks = f.sink.marks().await.unwrap();

    // The first attempt wrote the first 20 of partition 0's messages, in the sink's order
    // (by identity), then died.
    let messages = f.encoder.encode(&f.rows(&all, true)).unwrap();
    let mut partition0: Vec<(String, i64)> = identities("q", 5, &messages)
        .into_iter()
        .zip(all.iter().copied())
        .filter(|(_, id)| id % 2 == 0)
        .collect();
    partition0.sort();
    let prefix: Vec<i64> = partition0.iter().take(20).map(|(_, id)| *id).collect();
    let first = f
        .sink
        .write_batch(
            &to_write(5, &marks, false),
            f.stream(&prefix, true),
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(first.rows, 20);

    let replay = f
        .sink
        .write_batch(&to_write(5, &marks, true), f.stream(&all, true), Vec::new())
        .await
        .unwrap();
    assert_eq!((replay.rows, replay.already_written), (100, 20));
    let out = f.output().await;
    assert_eq!(
        out.iter().map(|(id, p, _)| (*id, *p)).collect::<Vec<_>>(),
        all.iter()
            .map(|id| (*id, (id % 2) as i32))
            .collect::<Vec<_>>(),
        "every row once, in its partition"
    );

    // Another producer wrote to the output: a replay cannot tell its messages apart.
    memory_topic(&f.name, 2)
        .append(1, MemoryMessage::value("{}", 0))
        .unwrap();
    let more: Vec<i64> = (0..60).collect();
    let err = f
        .sink
        .write_batch(
            &to_write(5, &marks, true),
            f.stream(&more, true),
            Vec::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another producer"), "{err}");
}

/// With `'sink.recovery' 'identity-header'` every message carries its identity, so a replay
/// skips exactly what was written even when another producer shares the output topic.
#[tokio::test]
async fn identity_header_recovery_tolerates_other_producers() {
    let f = SinkFixture::new("identity", &[]).await;
    let sink = TopicBatchSink::new(
        Arc::new(IdentityWriter(memory_topic(&f.name, 2))),
        Arc::new(memory_topic(&f.name, 2)),
        f.encoder.clone(),
    );
    let marks = sink.marks().await.unwrap();
    let some: Vec<i64> = (0..100).step_by(3).collect();
    sink.write_batch(
        &to_write(9, &marks, false),
        f.stream(&some, false),
        Vec::new(),
    )
    .await
    .unwrap();
    memory_topic(&f.name, 2)
        .append(0, MemoryMessage::value(r#"{"id":-1}"#, 0))
        .unwrap();
    let all: Vec<i64> = (0..100).collect();
    let replay = sink
        .write_batch(
            &to_write(9, &marks, true),
            f.stream(&all, false),
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (replay.rows, replay.already_written),
        (100, some.len() as u64)
    );
    let out = f.output().await;
    let written: Vec<i64> = out
        .iter()
        .filter(|(_, _, h)| *h == 1)
        .map(|(id, _, _)| *id)
        .collect();
    assert_eq!(
        written, all,
        "every row exactly once, each with its identity header"
    );
}

/// A memory topic's writer with identity-header recovery (memory tables recover by position).
#[derive(Debug)]
struct IdentityWriter(crate::connectors::memory::MemoryTopic);

#[async_trait::async_trait]
impl super::MessageWriter for IdentityWriter {
    fn target(&self) -> String {
        self.0.target()
    }
    fn identity_header(&self) -> &'static str {
        super::IDENTITY_HEADER
    }
    fn recovery(&self) -> super::Recovery {
        super::Recovery::IdentityHeader
    }
    fn for_batches(&self) -> Arc<dyn super::MessageWriter> {
        Arc::new(IdentityWriter(self.0.clone()))
    }
    async fn write(&self, messages: &[super::OutgoingMessage]) -> crate::Result<u64> {
        self.0.write(messages).await
    }
}

/// Batch `batch` of query `q`, its ranges not needed by these sinks.
fn to_write(batch: u64, marks: &SinkMarks, replay: bool) -> BatchToWrite<'_> {
    static NO_SOURCES: BTreeMap<String, crate::checkpoint::SourceRanges> = BTreeMap::new();
    BatchToWrite {
        query_id: "q",
        batch,
        sources: &NO_SOURCES,
        marks,
        replay,
    }
}
