//! Broker-free tests of the continuous-query runner over in-memory topics: batches and rate
//! limits, triggers, replay of an interrupted batch, fencing, abandoned work-queue batches,
//! and data loss between batches.

use crate::source::TopicPartition;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{BatchProgress, ContinuousQuery, Limits, RunOptions, Trigger};
use crate::checkpoint::CheckpointLog;
use crate::connectors::memory::{MemoryMessage, memory_topic};
use crate::session::session_context;

fn name(prefix: &str) -> String {
    format!("{prefix}-{}", crate::checkpoint::new_id())
}

/// Input and output memory topics and a copy query between them.
struct Fixture {
    input: String,
    output: String,
    checkpoint: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(partitions: usize, messages: i64) -> Self {
        let input = name("in");
        let topic = memory_topic(&input, partitions);
        for i in 0..messages {
            topic
                .append(
                    (i % partitions as i64) as i32,
                    MemoryMessage::value(format!(r#"{{"id":{i}}}"#), i),
                )
                .unwrap();
        }
        let output = name("out");
        memory_topic(&output, 2);
        let dir = tempfile::tempdir().unwrap();
        Self {
            input,
            output,
            checkpoint: dir.path().join("cp").to_str().unwrap().to_string(),
            _dir: dir,
        }
    }

    fn sql(&self, input_options: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{}'
               OPTIONS ('value.format' 'json'{input_options});
             CREATE EXTERNAL TABLE output (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{}'
               OPTIONS ('value.format' 'json');
             INSERT INTO output (id) SELECT id FROM input;",
            self.input, self.output
        )
    }

    async fn query(&self, input_options: &str) -> ContinuousQuery {
        ContinuousQuery::from_sql(session_context(), &self.sql(input_options))
            .await
            .unwrap()
    }

    fn options(&self, trigger: Trigger, max_records: Option<u64>) -> RunOptions {
        RunOptions {
            checkpoint: self.checkpoint.clone(),
            trigger,
            limits: Limits {
                max_records,
                max_bytes: None,
            },
            max_batches: None,
            commit_group: None,
            output_mode: None,
        }
    }

    /// The ids in the output, sorted, duplicates kept.
    fn output_ids(&self) -> Vec<i64> {
        let topic = memory_topic(&self.output, 2);
        let mut ids: Vec<i64> = (0..2)
            .flat_map(|p| topic.messages(p, 0, i64::MAX).unwrap())
            .map(|(_, m)| {
                let v: Value = serde_json::from_slice(m.value.as_deref().unwrap()).unwrap();
                v["id"].as_i64().unwrap()
            })
            .collect();
        ids.sort_unstable();
        ids
    }
}

async fn run(query: &ContinuousQuery, options: &RunOptions) -> (crate::Result<u64>, Vec<String>) {
    let mut lines = Vec::new();
    let outcome = query
        .run(options, |p: &BatchProgress| lines.push(p.to_string()))
        .await;
    (outcome, lines)
}

#[tokio::test]
async fn available_now_runs_batches_under_the_rate_limit_then_stops() {
    let f = Fixture::new(2, 50);
    let query = f.query("").await;
    let (done, lines) = run(&query, &f.options(Trigger::AvailableNow, Some(10))).await;
    assert_eq!(done.unwrap(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("batch 0 input[0:[0,10) 1:[0,10)] rows=20 lag=30"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("batch 2 input[0:[20,25) 1:[20,25)] rows=10 lag=0"),
        "{lines:?}"
    );
    assert_eq!(f.output_ids(), (0..50).collect::<Vec<_>>());
    // Nothing new: no batch. New messages: one more batch, recorded in the checkpoint.
    let (done, _) = run(&query, &f.options(Trigger::AvailableNow, None)).await;
    assert_eq!(done.unwrap(), 0);
    memory_topic(&f.input, 2)
        .append(1, MemoryMessage::value(r#"{"id":50}"#, 0))
        .unwrap();
    let (done, lines) = run(&query, &f.options(Trigger::AvailableNow, None)).await;
    assert_eq!(done.unwrap(), 1);
    assert!(
        lines[0].starts_with("batch 3 input[0:[25,25) 1:[25,26)] rows=1"),
        "{lines:?}"
    );
    let log = CheckpointLog::open(&f.checkpoint).unwrap();
    assert_eq!(log.latest_commit().await.unwrap(), Some(3));
}

#[tokio::test]
async fn an_interval_trigger_runs_until_max_batches() {
    let f = Fixture::new(1, 30);
    let query = f.query("").await;
    let mut options = f.options(Trigger::Interval(Duration::from_millis(10)), Some(7));
    options.max_batches = Some(2);
    let (done, _) = run(&query, &options).await;
    assert_eq!(done.unwrap(), 2);
    assert_eq!(f.output_ids(), (0..14).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_interrupted_batch_is_replayed_with_its_ranges_and_written_once() {
    let f = Fixture::new(2, 40);
    let query = f.query("").await;
    let output = memory_topic(&f.output, 2);
    // The sink dies after 7 messages of batch 0.
    output.fail_writes_after(7);
    let (outcome, _) = run(&query, &f.options(Trigger::AvailableNow, Some(100))).await;
    let err = outcome.unwrap_err().to_string();
    assert!(err.contains("simulated crash"), "{err}");
    assert_eq!(f.output_ids().len(), 7);
    let log = CheckpointLog::open(&f.checkpoint).unwrap();
    assert_eq!(log.latest_offsets().await.unwrap(), Some(0));
    assert_eq!(log.latest_commit().await.unwrap(), None);
    // More input arrives; the replay still reads exactly batch 0's recorded ranges.
    memory_topic(&f.input, 2)
        .append(0, MemoryMessage::value(r#"{"id":40}"#, 0))
        .unwrap();
    output.fail_writes_after(-1);
    let (done, lines) = run(&query, &f.options(Trigger::AvailableNow, Some(100))).await;
    assert_eq!(done.unwrap(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("batch 0 (replay) input[0:[0,20) 1:[0,20)] rows=40 already_written=7"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("batch 1 input[0:[20,21) 1:[20,20)] rows=1"),
        "{lines:?}"
    );
    assert_eq!(f.output_ids(), (0..41).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_on_one_checkpoint_are_fenced_and_a_checkpoint_belongs_to_its_query() {
    let f = Fixture::new(1, 10);
    let first = f.query("").await;
    let second = f.query("").await;
    let options = f.options(Trigger::Interval(Duration::from_millis(5)), Some(3));
    // Input keeps arriving, so both runners keep planning batches; the first to find its
    // next offsets/N written by the other is fenced.
    let input = memory_topic(&f.input, 1);
    let feeding = tokio::spawn(async move {
        for i in 10..100_000 {
            input
                .append(0, MemoryMessage::value(format!(r#"{{"id":{i}}}"#), i))
                .unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            a = first.run(&options, |_| {}) => a,
            b = second.run(&options, |_| {}) => b,
        }
    })
    .await
    .expect("two runners shared a checkpoint for 30 s and neither was fenced");
    feeding.abort();
    let err = outcome.unwrap_err();
    assert!(matches!(err, crate::TopicsError::Fenced { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("already written by another runner"),
        "{err}"
    );
    // A checkpoint of another query is refused.
    let other_query = ContinuousQuery::from_sql(
        session_context(),
        &f.sql("")
            .replace("SELECT id FROM input", "SELECT id + 1 FROM input"),
    )
    .await
    .unwrap();
    let (outcome, _) = run(&other_query, &f.options(Trigger::AvailableNow, None)).await;
    assert!(
        outcome
            .unwrap_err()
            .to_string()
            .contains("belongs to another query")
    );
}

#[tokio::test]
async fn an_interrupted_work_queue_batch_is_abandoned_and_its_messages_come_back() {
    let f = Fixture::new(1, 30);
    let queue = ", 'memory.mode' 'work-queue', 'memory.work-queue.readers' '2', 'memory.work-queue.ack-wait' '200ms'";
    let query = f.query(queue).await;
    let output = memory_topic(&f.output, 2);
    output.fail_writes_after(5);
    let (outcome, _) = run(&query, &f.options(Trigger::AvailableNow, Some(8))).await;
    assert!(outcome.is_err());
    output.fail_writes_after(-1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (done, _) = run(&query, &f.options(Trigger::AvailableNow, Some(8))).await;
    assert!(done.unwrap() >= 2);
    let log = CheckpointLog::open(&f.checkpoint).unwrap();
    let first = log.commit(0).await.unwrap().unwrap();
    assert!(first.abandoned, "{first:?}");
    // At-least-once: every message is in the output; the abandoned batch's may be twice.
    let ids = f.output_ids();
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for id in ids {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn offsets_removed_between_batches_fail_or_are_skipped() {
    for fail in [true, false] {
        let f = Fixture::new(1, 100);
        let options = format!(", 'scan.fail-on-data-loss' '{fail}'");
        let query = f.query(&options).await;
        let mut first = f.options(Trigger::AvailableNow, Some(10));
        first.max_batches = Some(1);
        assert_eq!(run(&query, &first).await.0.unwrap(), 1);
        memory_topic(&f.input, 1).delete_before(0, 60).unwrap();
        let (outcome, _) = run(&query, &f.options(Trigger::AvailableNow, None)).await;
        if fail {
            let err = outcome.unwrap_err().to_string();
            assert!(err.contains("10..60") && err.contains(&f.input), "{err}");
        } else {
            outcome.unwrap();
            let log = CheckpointLog::open(&f.checkpoint).unwrap();
            let record = log.offsets(1).await.unwrap().unwrap();
            assert_eq!(
                record.sources["input"].skipped,
                [(TopicPartition::new(f.input.as_str(), 0), 50)].into()
            );
            assert_eq!(f.output_ids(), (0..10).chain(60..100).collect::<Vec<_>>());
        }
    }
}

/// A sink that keeps its rows and its positions together, as a database transaction would;
/// it can fail right after committing a batch (a crash before `commits/N`), and refuses to
/// be asked for a batch it committed.
#[derive(Debug, Default)]
struct PositionsSink {
    inner: std::sync::Mutex<PositionsSinkState>,
}

#[derive(Debug, Default)]
struct PositionsSinkState {
    ids: Vec<i64>,
    committed: Option<crate::sink::SinkCommitted>,
    fail_after_committing: Option<u64>,
}

#[async_trait::async_trait]
impl crate::sink::BatchSink for PositionsSink {
    fn describe(&self) -> String {
        "the test's own sink".into()
    }

    fn keeps_positions(&self) -> bool {
        true
    }

    async fn committed(&self) -> crate::Result<Option<crate::sink::SinkCommitted>> {
        Ok(self.inner.lock().unwrap().committed.clone())
    }

    async fn write_batch(
        &self,
        batch: &crate::sink::BatchToWrite<'_>,
        rows: datafusion::execution::SendableRecordBatchStream,
        _retracted: Vec<arrow::array::RecordBatch>,
    ) -> crate::Result<crate::sink::BatchWritten> {
        use arrow::array::AsArray;
        let batches: Vec<arrow::array::RecordBatch> =
            futures::TryStreamExt::try_collect(rows).await?;
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        let mut state = self.inner.lock().unwrap();
        if state
            .committed
            .as_ref()
            .is_some_and(|c| c.batch >= batch.batch)
        {
            return Err(crate::TopicsError::plan(format!(
                "asked to write batch {} again",
                batch.batch
            )));
        }
        let rows = ids.len() as u64;
        state.ids.extend(ids);
        state.committed = Some(crate::sink::SinkCommitted::ends_of(
            batch.batch,
            batch.sources,
        ));
        if state.fail_after_committing == Some(batch.batch) {
            return Err(crate::TopicsError::plan("crashed after committing"));
        }
        Ok(crate::sink::BatchWritten {
            rows,
            ..Default::default()
        })
    }
}

impl Fixture {
    async fn query_into(&self, sink: &std::sync::Arc<PositionsSink>) -> ContinuousQuery {
        let sql = format!(
            "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{}'
               OPTIONS ('value.format' 'json');
             SELECT id FROM input",
            self.input
        );
        let sink: std::sync::Arc<dyn crate::sink::BatchSink> = sink.clone();
        ContinuousQuery::from_sql_into(session_context(), &sql, sink)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_batch_in_a_sink_with_positions_is_never_written_twice() {
    let f = Fixture::new(2, 50);
    let sink = std::sync::Arc::new(PositionsSink::default());
    sink.inner.lock().unwrap().fail_after_committing = Some(1);
    let query = f.query_into(&sink).await;
    let options = f.options(Trigger::AvailableNow, Some(10));
    let (done, lines) = run(&query, &options).await;
    assert!(done.is_err(), "{lines:?}");
    sink.inner.lock().unwrap().fail_after_committing = None;

    // Batch 1 is in the sink but not committed in the checkpoint: run again for its figures,
    // never written again.
    let (done, lines) = run(&query, &options).await;
    assert_eq!(done.unwrap(), 2, "{lines:?}");
    assert!(
        lines[0]
            .starts_with("batch 1 (replay) input[0:[10,20) 1:[10,20)] rows=20 already_written=20"),
        "{lines:?}"
    );
    let mut ids = sink.inner.lock().unwrap().ids.clone();
    ids.sort_unstable();
    assert_eq!(ids, (0..50).collect::<Vec<_>>());

    // A new checkpoint: the sink's positions say where to go on, numbering included.
    let topic = memory_topic(&f.input, 2);
    for i in 50..60 {
        topic
            .append(
                (i % 2) as i32,
                MemoryMessage::value(format!(r#"{{"id":{i}}}"#), i),
            )
            .unwrap();
    }
    let mut fresh = f.options(Trigger::AvailableNow, Some(10));
    fresh.checkpoint.push_str("-fresh");
    let (done, lines) = run(&query, &fresh).await;
    assert_eq!(done.unwrap(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("batch 3 input[0:[25,30) 1:[25,30)] rows=10"),
        "{lines:?}"
    );
    let mut ids = sink.inner.lock().unwrap().ids.clone();
    ids.sort_unstable();
    assert_eq!(ids, (0..60).collect::<Vec<_>>());

    // The first checkpoint is now behind the sink: for a stateless query the sink wins.
    let (done, lines) = run(&query, &options).await;
    assert_eq!(done.unwrap(), 0, "{lines:?}");
}

#[tokio::test]
async fn a_stateful_query_cannot_start_from_a_sink_alone() {
    let f = Fixture::new(2, 10);
    let sink = std::sync::Arc::new(PositionsSink::default());
    sink.inner.lock().unwrap().committed = Some(crate::sink::SinkCommitted {
        batch: 4,
        ends: [(
            "input".to_string(),
            [
                (TopicPartition::new(f.input.as_str(), 0), 5),
                (TopicPartition::new(f.input.as_str(), 1), 5),
            ]
            .into(),
        )]
        .into(),
    });
    let sql = format!(
        "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{}'
           OPTIONS ('value.format' 'json');
         SELECT count(*) AS id FROM input",
        f.input
    );
    let own: std::sync::Arc<dyn crate::sink::BatchSink> = sink.clone();
    let query = ContinuousQuery::from_sql_into(session_context(), &sql, own)
        .await
        .unwrap();
    let (done, _) = run(&query, &f.options(Trigger::AvailableNow, None)).await;
    let err = done.unwrap_err().to_string();
    assert!(
        err.contains("keeps state") && err.contains("the test's own sink"),
        "{err}"
    );
}

#[tokio::test]
async fn a_pattern_table_takes_in_new_topics_between_batches_keyed_by_topic_and_partition() {
    let f = Fixture::new(2, 20);
    // The input table reads every topic named like the fixture's input, plus a suffix.
    let prefix = f.input.clone();
    let first = format!("{prefix}-a");
    let topic = memory_topic(&first, 1);
    for i in 0..5 {
        topic
            .append(
                0,
                MemoryMessage::value(format!(r#"{{"id":{}}}"#, 100 + i), i),
            )
            .unwrap();
    }
    let sql = format!(
        "CREATE EXTERNAL TABLE input (id BIGINT) STORED AS MEMORY LOCATION 'mem:///'
           OPTIONS ('value.format' 'json', 'topic.pattern' '{prefix}(-[a-z])?');
         CREATE EXTERNAL TABLE output (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{}'
           OPTIONS ('value.format' 'json');
         INSERT INTO output (id) SELECT id FROM input;",
        f.output
    );
    let query = ContinuousQuery::from_sql(session_context(), &sql)
        .await
        .unwrap();
    let (done, lines) = run(&query, &f.options(Trigger::AvailableNow, None)).await;
    assert_eq!(done.unwrap(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("{first}/0:[0,5)"))
            && lines[0].contains(&format!("{prefix}/1:[0,10)")),
        "{lines:?}"
    );
    // A topic created after the first batch is read from its start by the next one.
    let second = format!("{prefix}-b");
    memory_topic(&second, 1)
        .append(0, MemoryMessage::value(r#"{"id":200}"#, 0))
        .unwrap();
    let (done, lines) = run(&query, &f.options(Trigger::AvailableNow, None)).await;
    assert_eq!(done.unwrap(), 1, "{lines:?}");
    assert!(lines[0].contains(&format!("{second}/0:[0,1)")), "{lines:?}");
    let expected: Vec<i64> = (0..20).chain(100..105).chain([200]).collect();
    assert_eq!(f.output_ids(), expected);
    // The checkpoint keys every range by topic and partition.
    let log = CheckpointLog::open(&f.checkpoint).unwrap();
    let record = log.offsets(1).await.unwrap().unwrap();
    let keys: Vec<String> = record.sources["input"]
        .partitions
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        keys,
        vec![
            format!("{prefix}/0"),
            format!("{prefix}/1"),
            format!("{first}/0"),
            format!("{second}/0"),
        ]
    );
}

#[tokio::test]
async fn a_version_1_checkpoint_goes_on_where_it_stopped() {
    let f = Fixture::new(2, 20);
    let query = f.query("").await;
    let (done, _) = run(&query, &f.options(Trigger::AvailableNow, None)).await;
    assert_eq!(done.unwrap(), 1);
    // Rewrite the checkpoint as the previous version wrote it: partition numbers as keys.
    for dir in ["offsets", "commits"] {
        for entry in std::fs::read_dir(std::path::Path::new(&f.checkpoint).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let v1 = text
                .replace(&format!("\"{}/", f.input), "\"")
                .replace("\"version\": 2", "\"version\": 1");
            assert_ne!(v1, text);
            std::fs::write(&path, v1).unwrap();
        }
    }
    memory_topic(&f.input, 2)
        .append(0, MemoryMessage::value(r#"{"id":20}"#, 0))
        .unwrap();
    let (done, lines) = run(&query, &f.options(Trigger::AvailableNow, None)).await;
    assert_eq!(done.unwrap(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("batch 1 input[0:[10,11) 1:[10,10)]"),
        "{lines:?}"
    );
    assert_eq!(f.output_ids(), (0..21).collect::<Vec<_>>());
}

#[tokio::test]
async fn batches_split_over_several_output_partitions_write_every_row_once() {
    let f = Fixture::new(1, 100);
    let query = f.query(", 'scan.split.max-messages' '15'").await;
    let (done, lines) = run(&query, &f.options(Trigger::AvailableNow, Some(40))).await;
    assert_eq!(done.unwrap(), 3, "{lines:?}");
    assert_eq!(f.output_ids(), (0..100).collect::<Vec<_>>());
    // The batch records its ranges unsplit; the split is how they are read.
    assert!(lines[0].starts_with("batch 0 input[0:[0,40)]"), "{lines:?}");
    let plan = query
        .batch_plan(
            &CheckpointLog::open(&f.checkpoint)
                .unwrap()
                .offsets(0)
                .await
                .unwrap()
                .unwrap()
                .sources,
            None,
            None,
        )
        .await
        .unwrap();
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(
        shown.contains("partitions=[0: [0, 15), 0: [15, 30), 0: [30, 40)]"),
        "{shown}"
    );
}
