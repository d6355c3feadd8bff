//! One output partition of a scan: reads raw batches (one range after the other, or one queue
//! reader), decodes them with its own decoder, sends bad messages to the dead-letter
//! destination, leaves them out (`skip`) and stops at the LIMIT, dropping the reader (and so
//! releasing its consumer) once satisfied.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, Time,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::exec::{ScanInput, ScanStatistics};
use super::watermark::EventTimeTracker;
use crate::format::{BatchDecoder, ErrorPolicy, TableFormats};
use crate::sink::{DeadLetters, LateRows};
use crate::source::{RawBatch, RawBatchStream, ReadRequest, TopicPartition};
use crate::table::{DecodedParts, EventTimeSource, MetadataColumn, OutputColumn, ProjectionPlan};

/// What every output partition of one scan shares.
#[derive(Clone)]
pub(super) struct StreamSettings {
    pub formats: TableFormats,
    pub projection: ProjectionPlan,
    pub dead_letters: Option<Arc<DeadLetters>>,
    pub limit: Option<usize>,
    pub batch_rows: usize,
    pub fail_on_data_loss: bool,
    /// Event-time bookkeeping and the late-row rule, when the table declares event time.
    pub event_time: Option<Arc<EventTimeTracker>>,
    /// Where late rows go (`watermark.late-topic`), if anywhere.
    pub late_rows: Option<Arc<LateRows>>,
}

/// Per-partition scan metrics shown by EXPLAIN ANALYZE.
struct ScanMetrics {
    messages: Count,
    bytes: Count,
    decode_time: Time,
    skipped: Count,
    bad: Count,
    late: Count,
}

impl ScanMetrics {
    fn new(set: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        Self {
            messages: MetricBuilder::new(set).counter("messages_fetched", partition),
            bytes: MetricBuilder::new(set).counter("bytes_fetched", partition),
            decode_time: MetricBuilder::new(set).subset_time("decode_time", partition),
            skipped: MetricBuilder::new(set).counter("offsets_skipped", partition),
            bad: MetricBuilder::new(set).counter("messages_bad", partition),
            late: MetricBuilder::new(set).counter("late_rows", partition),
        }
    }
}

/// The state of one output partition's stream.
pub(super) struct PartitionStream {
    raw: RawBatchStream,
    decoder: BatchDecoder,
    settings: StreamSettings,
    topic: Arc<str>,
    /// The (topic, partition) or (topic, reader) this stream reads, for per-partition figures.
    key: TopicPartition,
    keep_errors: bool,
    skipping: bool,
    remaining: usize,
    metrics: ScanMetrics,
    baseline: BaselineMetrics,
    statistics: Arc<ScanStatistics>,
    /// This stream's share of the process's bounded-scan progress (closed ranges only).
    progress: Option<crate::observe::ScanProgressGuard>,
}

impl PartitionStream {
    /// Opens the stream of `input`'s `partition`-th partition scan (or queue reader), which
    /// is output partition `output` of the scan (for its metrics).
    pub(super) fn open(
        input: &ScanInput,
        partition: usize,
        output: usize,
        settings: StreamSettings,
        metrics: &ExecutionPlanMetricsSet,
        statistics: Arc<ScanStatistics>,
    ) -> DFResult<BoxStream<'static, DFResult<RecordBatch>>> {
        let skipping = settings.formats.on_error == ErrorPolicy::Skip;
        let request = ReadRequest {
            needs: settings.projection.read,
            batch_rows: settings.batch_rows,
            // Skipped messages do not count towards a limit, so the reader cannot stop early.
            max_messages: settings.limit.filter(|_| !skipping).map(|l| l as u64),
            fail_on_data_loss: settings.fail_on_data_loss,
        };
        let scan_metrics = ScanMetrics::new(metrics, output);
        let mut progress = None;
        let (raw, topic, key): (RawBatchStream, Arc<str>, TopicPartition) = match input {
            ScanInput::Log { source, partitions } => {
                let scan = partitions[partition].clone();
                let key = scan.key();
                if let Some(tracker) = &settings.event_time {
                    tracker.register(&key);
                }
                if scan.ranges.iter().all(|r| r.end.is_some()) {
                    let total = scan
                        .ranges
                        .iter()
                        .map(|r| r.end_or_max() - r.start)
                        .sum::<i64>();
                    progress = Some(crate::observe::ScanProgressGuard::start(total.max(0) as u64));
                }
                scan_metrics.skipped.add(scan.skipped as usize);
                statistics.add_read(0, 0, scan.skipped);
                let source = source.member(&scan.topic)?;
                let topic = Arc::from(source.topic_of(scan.partition));
                // Ranges are read one after the other; the next reader opens when the
                // previous one ends.
                let id = scan.partition;
                let raw = futures::stream::iter(scan.ranges)
                    .flat_map(move |range| source.read(id, range, request))
                    .boxed();
                (raw, topic, key)
            }
            ScanInput::Queue {
                source,
                readers,
                read,
            } => {
                let key = TopicPartition::new(source.topic(), readers[partition]);
                if let Some(tracker) = &settings.event_time {
                    tracker.register(&key);
                }
                (
                    source.read(readers[partition], read.clone(), request),
                    Arc::from(source.topic()),
                    key,
                )
            }
        };
        let decoder = settings
            .formats
            .batch_decoder(&settings.projection, request.batch_rows)?;
        let keep_errors = settings.projection.columns.iter().any(|c| {
            matches!(
                c,
                OutputColumn::Metadata(MetadataColumn::Error | MetadataColumn::Raw)
            )
        });
        let state = Self {
            raw,
            decoder,
            remaining: settings.limit.unwrap_or(usize::MAX),
            settings,
            topic,
            key,
            keep_errors,
            skipping,
            metrics: scan_metrics,
            baseline: BaselineMetrics::new(metrics, output),
            statistics,
            progress,
        };
        Ok(futures::stream::unfold(state, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        })
        .boxed())
    }

    /// The next output batch; `None` once the ranges ended or the LIMIT is reached.
    async fn next(&mut self) -> Option<DFResult<RecordBatch>> {
        if self.remaining == 0 {
            return None;
        }
        let outcome = match self.raw.next().await? {
            Ok(raw) => self.process(raw).await,
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(batch) => {
                let batch = batch.slice(0, batch.num_rows().min(self.remaining));
                self.remaining -= batch.num_rows();
                self.baseline.record_output(batch.num_rows());
                Some(Ok(batch))
            }
            Err(e) => {
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }

    /// Decodes one raw batch into output rows, applying the bad-message policy.
    async fn process(&mut self, raw: RawBatch) -> DFResult<RecordBatch> {
        self.metrics.messages.add(raw.len());
        self.metrics.bytes.add(raw.bytes as usize);
        self.metrics.skipped.add(raw.skipped as usize);
        self.statistics.add_read(raw.len(), raw.bytes, raw.skipped);
        crate::observe::record_scan_read(&self.key.topic, raw.len(), raw.bytes);
        if let Some(progress) = &mut self.progress {
            progress.advance(raw.len() as u64 + raw.skipped);
        }
        if let Some(ms) = raw.newest_ms {
            self.statistics.note_newest(&self.key, ms);
        }
        self.settings.formats.prefetch(&raw).await?;
        let (parts, bad) = {
            let _timer = self.metrics.decode_time.timer();
            self.decoder.decode(&self.topic, &raw, self.keep_errors)?
        };
        self.metrics.bad.add(bad.len());
        self.statistics.add_bad(bad.len());
        if let Some(dead_letters) = &self.settings.dead_letters
            && !bad.is_empty()
        {
            dead_letters.send(&self.topic, &raw, &bad).await?;
        }
        let batch = self
            .settings
            .projection
            .assemble(&self.topic, &raw, &parts)?;
        let mut dropped: Vec<usize> = Vec::new();
        if self.skipping {
            dropped.extend(bad.iter().map(|b| b.row));
        }
        dropped.extend(self.event_time(&raw, &parts).await?);
        if dropped.is_empty() {
            return Ok(batch);
        }
        dropped.sort_unstable();
        let keep: BooleanArray = (0..raw.len())
            .map(|row| Some(dropped.binary_search(&row).is_err()))
            .collect();
        arrow::compute::filter_record_batch(&batch, &keep)
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
    }

    /// Tracks the batch's event times and returns the rows that are late (counted, and
    /// produced to the table's late topic when it has one).
    async fn event_time(&mut self, raw: &RawBatch, parts: &DecodedParts) -> DFResult<Vec<usize>> {
        let (Some(tracker), Some(source)) = (
            &self.settings.event_time,
            self.settings.projection.event_time,
        ) else {
            return Ok(Vec::new());
        };
        let times = event_times(source, raw, parts)?;
        // The bound is taken before this batch is observed: a batch never makes its own
        // rows late.
        let late_before = tracker.late_before();
        let mut max: Option<i64> = None;
        let mut late: Vec<(usize, i64)> = Vec::new();
        for (row, t) in times.iter().enumerate() {
            let Some(t) = *t else { continue };
            max = Some(max.map_or(t, |m| m.max(t)));
            if late_before.is_some_and(|w| t < w) {
                late.push((row, t));
            }
        }
        tracker.observe(&self.key, raw.len(), max, late.len());
        self.metrics.late.add(late.len());
        if let (Some(writer), Some(watermark), false) =
            (&self.settings.late_rows, late_before, late.is_empty())
        {
            writer.send(&self.topic, raw, &late, watermark).await?;
        }
        Ok(late.into_iter().map(|(row, _)| row).collect())
    }
}

/// The event time of every row, in milliseconds (`None` where the column is null).
fn event_times(
    source: EventTimeSource,
    raw: &RawBatch,
    parts: &DecodedParts,
) -> DFResult<Vec<Option<i64>>> {
    use arrow::array::{AsArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
    match source {
        EventTimeSource::Timestamp => {
            let ts: &TimestampMillisecondArray = raw.timestamps.as_ref().ok_or_else(|| {
                DataFusionError::Internal("the scan did not read _timestamp".into())
            })?;
            Ok(ts.iter().collect())
        }
        EventTimeSource::Value(i) => {
            let column = parts.values.get(i).ok_or_else(|| {
                DataFusionError::Internal("the scan did not decode the event-time column".into())
            })?;
            let ms =
                arrow::compute::cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            Ok(ms
                .as_primitive::<TimestampMillisecondType>()
                .iter()
                .collect())
        }
    }
}
