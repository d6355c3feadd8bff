//! `StreamingTableProvider`: a topic (or stream) as an unbounded DataFusion table.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, SortExpr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::error::Result;
use crate::exec::TopicScanExec;
use crate::format::{ErrorPolicy, SchemaRegistry, Side, TableFormats};
use crate::options::{BoundedMode, KafkaTableOptions, NatsTableOptions, ScanOptions, StartupMode};
use crate::planner::{TimestampOrder, plan_scan, plan_work_queue_scan};
use crate::pushdown::analyze;
use crate::schema::{
    DEAD_LETTER_METADATA, KAFKA_METADATA, MetadataColumn, NATS_METADATA, TableSchema,
};
use crate::sink::{DeadLetters, KafkaWriter, MessageWriter, NatsWriter, RowEncoder, TopicSink};
use crate::source::kafka::KafkaSource;
use crate::source::nats::{NatsSource, NatsWorkQueue};
use crate::source::{DeferredAcks, Source};

/// A Kafka topic or NATS JetStream stream as a DataFusion table.
///
/// Columns are the value columns of the table's format followed by the metadata columns
/// (`_topic`, `_partition`, `_offset`, `_timestamp`, `_key`, `_headers`). Each scan plans
/// offset ranges per partition against the watermarks at query start, narrowed by filters on
/// `_partition`, `_offset` and `_timestamp`; the plan is unbounded unless every range ends.
#[derive(Debug, Clone)]
pub struct StreamingTableProvider {
    source: Arc<dyn Source>,
    scan: ScanOptions,
    formats: TableFormats,
    schema: TableSchema,
    timestamps: TimestampOrder,
    order: Vec<Vec<SortExpr>>,
    writer: Option<Arc<dyn MessageWriter>>,
    dead_letters: Option<Arc<DeadLetters>>,
}

impl StreamingTableProvider {
    /// A table over any source. Resolves the key and value formats (reading schema files and
    /// asking the schema registry); does not contact the brokers (timestamps are taken as
    /// create-time unless `scan.timestamp.max-skew` is set).
    pub async fn try_new(
        source: Arc<dyn Source>,
        scan: ScanOptions,
        value_schema: SchemaRef,
        metadata: &[MetadataColumn],
    ) -> Result<Self> {
        let formats = resolve_formats(source.topic(), &scan, &value_schema).await?;
        let mut columns = metadata.to_vec();
        if scan.on_error == ErrorPolicy::DeadLetter {
            columns.extend_from_slice(DEAD_LETTER_METADATA);
        }
        let schema = TableSchema::try_new(
            formats.value.fields().clone(),
            &columns,
            formats.key.key_type(),
            formats.validation(),
        )?;
        let timestamps = TimestampOrder {
            ordered: false,
            max_skew_ms: scan.timestamp_max_skew.map(|d| d.as_millis() as i64),
        };
        Ok(Self {
            source,
            scan,
            formats,
            schema,
            timestamps,
            order: Vec::new(),
            writer: None,
            dead_letters: None,
        })
    }

    /// A Kafka table; checks that the topic exists (within the connect timeout) and whether
    /// it uses log-append time.
    pub async fn try_new_kafka(options: KafkaTableOptions) -> Result<Self> {
        let writer =
            Arc::new(KafkaWriter::new(options.kafka.clone()).with_recovery(options.sink_recovery));
        let dead_letters = options.scan.dead_letter_topic.as_ref().map(|topic| {
            let mut config = options.kafka.clone();
            config.topic = topic.clone();
            let writer: Arc<dyn MessageWriter> = Arc::new(KafkaWriter::new(config));
            Arc::new(DeadLetters::new(writer, None))
        });
        let source: Arc<dyn Source> = Arc::new(KafkaSource::new(options.kafka));
        source.partitions().await?;
        let ordered = source.timestamps_ordered().await?;
        let mut table = Self::try_new(source, options.scan, options.value_schema, KAFKA_METADATA)
            .await?
            .with_writer(writer);
        table.timestamps.ordered = ordered;
        table.dead_letters = dead_letters;
        Ok(table)
    }

    /// Declares orderings that hold within each partition (DDL `WITH ORDER`), for example
    /// `_timestamp` on a log-append-time topic, so event-time windows stream.
    pub fn with_order(mut self, order: Vec<Vec<SortExpr>>) -> Self {
        self.order = order;
        self
    }

    /// A NATS JetStream table; checks that the stream (and its partition subjects) exist
    /// within the connect timeout.
    pub async fn try_new_nats(options: NatsTableOptions) -> Result<Self> {
        let writer = Arc::new(NatsWriter::new(options.nats.clone()));
        let dead_letters = options.scan.dead_letter_topic.as_ref().map(|subject| {
            let writer: Arc<dyn MessageWriter> = Arc::clone(&writer) as _;
            Arc::new(DeadLetters::new(writer, Some(subject.clone())))
        });
        let source: Arc<dyn Source> = if options.nats.work_queue.is_some() {
            Arc::new(NatsWorkQueue::new(NatsSource::new(options.nats))?)
        } else {
            Arc::new(NatsSource::new(options.nats))
        };
        source.partitions().await?;
        let ordered = source.timestamps_ordered().await?;
        let mut table = Self::try_new(source, options.scan, options.value_schema, NATS_METADATA)
            .await?
            .with_writer(writer);
        table.timestamps.ordered = ordered;
        table.dead_letters = dead_letters;
        Ok(table)
    }

    /// Lets `INSERT INTO` write to the table through `writer`.
    pub fn with_writer(mut self, writer: Arc<dyn MessageWriter>) -> Self {
        self.writer = Some(writer);
        self
    }

    /// The same table restricted to exactly `ranges` (partition → `[start, end)`): a bounded
    /// table, as one micro-batch of a continuous query reads it.
    pub fn bounded_to(&self, ranges: &BTreeMap<i32, (i64, i64)>) -> Self {
        let mut table = self.clone();
        table.scan.startup =
            StartupMode::SpecificOffsets(ranges.iter().map(|(p, r)| (*p, r.0)).collect());
        table.scan.bounded =
            BoundedMode::SpecificOffsets(ranges.iter().map(|(p, r)| (*p, r.1)).collect());
        table.scan.only_partitions = Some(ranges.keys().copied().collect());
        table
    }

    /// One micro-batch of a work-queue table: each reader drains what is pending (at most
    /// `max_messages` each) and keeps the acknowledgements in `acks` for after the commit.
    /// `None` for tables read by offset ranges.
    pub fn work_queue_batch(
        &self,
        acks: Arc<DeferredAcks>,
        max_messages: Option<u64>,
    ) -> Option<Self> {
        let queue = self.source.work_queue()?;
        let mut table = self.clone();
        table.source = queue.deferring_acks(acks, max_messages);
        table.scan.bounded = BoundedMode::LatestOffset;
        Some(table)
    }

    /// The writer behind `INSERT INTO`, if the table has one.
    pub fn writer(&self) -> Option<&Arc<dyn MessageWriter>> {
        self.writer.as_ref()
    }

    /// How many value columns precede the metadata columns.
    pub fn value_count(&self) -> usize {
        self.schema.value_count()
    }

    /// The source this table reads.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// The scan settings.
    pub fn scan_options(&self) -> &ScanOptions {
        &self.scan
    }

    /// The resolved key and value formats and the bad-message policy.
    pub fn formats(&self) -> &TableFormats {
        &self.formats
    }

    /// How `_timestamp` relates to offsets in this table.
    pub fn timestamp_order(&self) -> TimestampOrder {
        self.timestamps
    }
}

#[async_trait]
impl TableProvider for StreamingTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.schema.schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        if self.source.work_queue().is_some() {
            // A work queue has no offsets to narrow: every filter runs on the rows read.
            return Ok(vec![
                TableProviderFilterPushDown::Unsupported;
                filters.len()
            ]);
        }
        Ok(filters
            .iter()
            .map(|f| {
                let a = analyze(f, self.timestamps.ordered);
                if a.exact {
                    TableProviderFilterPushDown::Exact
                } else if a.selection.is_all() {
                    TableProviderFilterPushDown::Unsupported
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let projection = self.schema.project(projection)?;
        let scans = if self.source.work_queue().is_some() {
            plan_work_queue_scan(self.source.as_ref(), &self.scan).await?
        } else {
            plan_scan(self.source.as_ref(), &self.scan, filters, self.timestamps).await?
        };
        let exec = TopicScanExec::new(
            Arc::clone(&self.source),
            self.formats.clone(),
            projection,
            scans,
            limit,
        );
        Ok(Arc::new(
            exec.with_declared_order(self.order.clone())
                .with_fail_on_data_loss(self.scan.fail_on_data_loss)
                .with_dead_letters(self.dead_letters.clone()),
        ))
    }

    /// `INSERT INTO`: encodes rows in the table's value format and writes them, at least once.
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let target = format!("{} '{}'", self.source.kind(), self.source.topic());
        let Some(writer) = &self.writer else {
            return Err(DataFusionError::Plan(format!(
                "{target} was registered without a writer, so it cannot be inserted into"
            )));
        };
        if op != InsertOp::Append {
            return Err(DataFusionError::Plan(format!(
                "{target} is an append-only log: only INSERT INTO (append) is possible, not {op}"
            )));
        }
        let encoder =
            RowEncoder::try_new(&input.schema(), self.schema.value_count(), &self.formats).await?;
        let sink = TopicSink::new(self.schema(), encoder, Arc::clone(writer));
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }
}

/// Resolves a table's key and value formats from its options and declared columns.
async fn resolve_formats(
    topic: &str,
    scan: &ScanOptions,
    value_schema: &SchemaRef,
) -> Result<TableFormats> {
    let registry = match &scan.registry {
        Some(r) => Some(Arc::new(SchemaRegistry::new(
            &r.url,
            r.auth.clone(),
            std::time::Duration::from_secs(10),
        )?)),
        None => None,
    };
    let value = scan
        .value
        .resolve(topic, Side::Value, value_schema.fields(), registry.as_ref())
        .await?;
    let key_fields = crate::options::declared_key_fields(scan.declared_key.as_ref());
    let key = scan
        .key
        .resolve(topic, Side::Key, &key_fields, registry.as_ref())
        .await?;
    Ok(TableFormats {
        value,
        key,
        on_error: scan.on_error,
        dead_letter_topic: scan.dead_letter_topic.clone(),
    })
}
