//! The topic table: a DataFusion `TableProvider` over any connector's topic, its `STORED AS`
//! factory, its schema, and JSON column inference.

mod definition;
mod factory;
mod infer;
mod insert;
mod origin;
mod schema;

use std::collections::{BTreeMap, HashMap};
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
use crate::format::{ErrorPolicy, SchemaRegistry, Side, TableFormats};
use crate::options::MinPartitions;
use crate::options::ScanOptions;
use crate::options::scan::declared_key_fields;
use crate::scan::pushdown::analyze;
use crate::scan::split::split_scans;
use crate::scan::{
    Discovery, EventTimeTracker, ScanBounds, ScanInput, TimestampOrder, TopicScanExec, plan_scan,
};
use crate::sink::{DeadLetters, LateRows, MessageWriter, RowEncoder, TopicSink};
use crate::source::{DeferredAcks, LogSource, OffsetRange, QueueRead, TableSource, TopicPartition};

pub use definition::TableDefinition;
pub use factory::TopicTableFactory;
pub use insert::complete_insert_columns;
pub use origin::{ScanOrigin, TableOrigin};
pub use schema::{
    DEAD_LETTER_METADATA, DecodedParts, EventTimeSource, MetadataColumn, OutputColumn,
    ProjectionPlan, TopicSchema, Validation,
};

/// A topic (Kafka topic, NATS JetStream stream, in-memory topic …) as a DataFusion table.
///
/// Columns are the value columns of the table's format followed by the metadata columns
/// (`_topic`, `_partition`, `_offset`, `_timestamp`, `_key`, `_headers`, …). Each scan plans
/// offset ranges per partition against the watermarks at query start, narrowed by filters on
/// `_partition`, `_offset` and `_timestamp`; the plan is unbounded unless every range ends.
#[derive(Debug, Clone)]
pub struct TopicTable {
    source: TableSource,
    scan: ScanOptions,
    formats: TableFormats,
    schema: TopicSchema,
    timestamps: TimestampOrder,
    order: Vec<Vec<SortExpr>>,
    writer: Option<Arc<dyn MessageWriter>>,
    log: Option<Arc<dyn LogSource>>,
    dead_letters: Option<Arc<DeadLetters>>,
    late_rows: Option<Arc<LateRows>>,
    /// A log table bound to exactly these ranges (a continuous query's micro-batch).
    bound: Option<Arc<BTreeMap<TopicPartition, OffsetRange>>>,
    /// A micro-batch's late-row bound: the watermark the previous batch left.
    late_before: Option<i64>,
    /// How the table was declared (location, options, columns), so a scan can be rebuilt
    /// elsewhere (a worker); `None` for tables built from a source in code.
    origin: Option<Arc<TableOrigin>>,
    /// A queue table read as one micro-batch: drained, capped, acknowledgements deferred.
    queue_batch: Option<QueueRead>,
}

/// The old name of [`TopicTable`].
#[deprecated(since = "0.2.0", note = "renamed to TopicTable")]
pub type StreamingTableProvider = TopicTable;

impl TopicTable {
    /// A table over the topic at `location` (`kafka://…/topic`, `nats://…/STREAM`,
    /// `mem:///name`) with declared value columns `value_schema` and `options` (see
    /// `docs/options.md`). Creates the topic when `topic.create` says so, resolves the formats
    /// (schema files, the schema registry) and checks that the topic exists within
    /// `connect.timeout`.
    pub async fn open(
        location: &str,
        value_schema: SchemaRef,
        options: &HashMap<String, String>,
    ) -> Result<Self> {
        let definition = TableDefinition::parse(location, value_schema, options)?;
        definition.connection.create_if_missing().await?;
        Self::from_definition(definition).await
    }

    /// The table a parsed definition describes (see [`TopicTable::open`]).
    pub async fn from_definition(definition: TableDefinition) -> Result<Self> {
        let TableDefinition {
            connector,
            connection,
            scan,
            value_schema,
            location,
            options,
        } = definition;
        let origin = TableOrigin {
            location,
            options,
            value_schema: Arc::clone(&value_schema),
            declared_key: scan.declared_key.clone(),
        };
        let source = connection.source()?;
        source.check().await?;
        let several = source.log().is_some_and(|set| !set.is_single());
        let ordered = match &source {
            TableSource::Log(log) => log.timestamps_ordered().await?,
            TableSource::Queue(_) => false,
        };
        let dead_letters = scan.dead_letter_topic.as_deref().map(|destination| {
            Arc::new(DeadLetters::new(connection.dead_letter_writer(destination)))
        });
        let late_rows = scan
            .watermark
            .as_ref()
            .and_then(|w| w.late_topic.as_deref())
            .map(|destination| Arc::new(LateRows::new(connection.dead_letter_writer(destination))));
        let mut table =
            Self::from_source(source, scan, value_schema, connector.metadata_columns()).await?;
        table.timestamps.ordered = ordered;
        if !several {
            table.writer = Some(connection.writer()?);
            table.log = Some(connection.log()?);
        }
        table.dead_letters = dead_letters;
        table.late_rows = late_rows;
        table.origin = Some(Arc::new(origin));
        Ok(table)
    }

    /// A read-only table over any source (a custom connector, or a source built in code).
    /// Resolves the key and value formats (reading schema files and asking the schema
    /// registry); does not contact the source (timestamps are taken as create-time unless
    /// `scan.timestamp.max-skew` is set).
    pub async fn from_source(
        source: TableSource,
        scan: ScanOptions,
        value_schema: SchemaRef,
        metadata: &[MetadataColumn],
    ) -> Result<Self> {
        let formats = resolve_formats(source.topic(), &scan, &value_schema).await?;
        let mut columns = metadata.to_vec();
        if scan.on_error == ErrorPolicy::DeadLetter {
            columns.extend_from_slice(DEAD_LETTER_METADATA);
        }
        let schema = TopicSchema::try_new(
            formats.value.fields().clone(),
            &columns,
            formats.key.key_type(),
            formats.validation(),
        )?;
        if let Some(spec) = &scan.watermark
            && spec.column != MetadataColumn::Timestamp.name()
        {
            schema.event_time_index(&spec.column)?;
        }
        let timestamps = TimestampOrder {
            ordered: false,
            max_skew_ms: scan.timestamp_max_skew.map(|d| d.as_millis() as i64),
        };
        Ok(Self {
            log: source
                .log()
                .filter(|set| set.is_single())
                .and_then(|set| set.member(set.label()).ok()),
            source,
            scan,
            formats,
            schema,
            timestamps,
            order: Vec::new(),
            writer: None,
            dead_letters: None,
            late_rows: None,
            bound: None,
            late_before: None,
            queue_batch: None,
            origin: None,
        })
    }

    /// Declares orderings that hold within each partition (DDL `WITH ORDER`), for example
    /// `_timestamp` on a log-append-time topic, so event-time windows stream.
    pub fn with_order(mut self, order: Vec<Vec<SortExpr>>) -> Self {
        self.order = order;
        self
    }

    /// Lets `INSERT INTO` write to the table through `writer`.
    pub fn with_writer(mut self, writer: Arc<dyn MessageWriter>) -> Self {
        self.writer = Some(writer);
        self
    }

    /// The same table restricted to exactly `ranges` ((topic, partition) → closed range): a bounded
    /// table, as one micro-batch of a continuous query reads it. Its scans neither read the
    /// watermarks nor the table's start and end positions. `None` for a queue table.
    pub fn with_ranges(&self, ranges: BTreeMap<TopicPartition, OffsetRange>) -> Option<Self> {
        if self.source.queue().is_some() {
            return None;
        }
        let mut table = self.clone();
        table.bound = Some(Arc::new(ranges));
        Some(table)
    }

    /// The same table with rows whose event time is below `watermark` late (dropped, counted
    /// and sent to the late topic): a micro-batch after one that left this watermark.
    pub fn with_late_before(mut self, watermark: Option<i64>) -> Self {
        self.late_before = watermark;
        self
    }

    /// One micro-batch of a queue table: each reader drains what is pending (at most
    /// `max_messages` each) and keeps the acknowledgements in `acks` for after the commit.
    /// `None` for a log table.
    pub fn queue_batch(&self, acks: Arc<DeferredAcks>, max_messages: Option<u64>) -> Option<Self> {
        self.source.queue()?;
        let mut table = self.clone();
        table.queue_batch = Some(QueueRead {
            drain: true,
            max_messages,
            acks: Some(acks),
        });
        Some(table)
    }

    /// The writer behind `INSERT INTO`, if the table has one.
    pub fn writer(&self) -> Option<&Arc<dyn MessageWriter>> {
        self.writer.as_ref()
    }

    /// The log behind the table (also for a queue table: the stream it is a queue over), for
    /// reading back what a sink wrote.
    pub fn log(&self) -> Option<&Arc<dyn LogSource>> {
        self.log.as_ref()
    }

    /// How many value columns precede the metadata columns.
    pub fn value_count(&self) -> usize {
        self.schema.value_count()
    }

    /// What the table reads.
    pub fn source(&self) -> &TableSource {
        &self.source
    }

    /// The table's options.
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

    /// The table's schema: value columns, then metadata columns.
    pub fn topic_schema(&self) -> &TopicSchema {
        &self.schema
    }

    /// How the table was declared, when it was declared by location and options (not built
    /// from a source in code).
    pub fn origin(&self) -> Option<&Arc<TableOrigin>> {
        self.origin.as_ref()
    }

    /// The scan of exactly `partitions` (planned elsewhere: a worker runs its share of a
    /// coordinator's plan), producing the columns `projection` selects, `limit` rows at most
    /// per partition.
    pub fn exec_over(
        &self,
        projection: Option<&Vec<usize>>,
        partitions: Vec<crate::scan::PartitionScan>,
        limit: Option<usize>,
    ) -> DFResult<TopicScanExec> {
        let Some(log) = self.source.log() else {
            return Err(DataFusionError::Plan(format!(
                "{} '{}' is a work queue: it has no offset ranges to read",
                self.source.kind(),
                self.source.topic()
            )));
        };
        let input = ScanInput::Log {
            source: log.clone(),
            partitions,
        };
        self.build_exec(projection, input, limit, None)
    }

    /// The scan exec of `input`, with the table's formats, order, policies and event time.
    fn build_exec(
        &self,
        projection: Option<&Vec<usize>>,
        input: ScanInput,
        limit: Option<usize>,
        discovery: Option<Arc<Discovery>>,
    ) -> DFResult<TopicScanExec> {
        let watermark = self.scan.watermark.as_ref();
        let plan = self.schema.project(
            projection,
            self.dead_letters.is_some() || self.late_rows.is_some(),
            watermark.map(|w| w.column.as_str()),
        )?;
        // A scan another process can run reads closed offset ranges of a declared table, with
        // no event time to agree on across processes.
        let portable = self.origin.is_some()
            && discovery.is_none()
            && watermark.is_none()
            && matches!(&input, ScanInput::Log { partitions, .. }
                if partitions.iter().all(|p| p.is_bounded()));
        let origin = self
            .origin
            .as_ref()
            .filter(|_| portable)
            .map(|table| ScanOrigin {
                table: Arc::clone(table),
                projection: projection.cloned(),
            });
        let mut exec = TopicScanExec::new(input, self.formats.clone(), plan, limit)
            .with_declared_order(self.order.clone())
            .with_fail_on_data_loss(self.scan.fail_on_data_loss)
            .with_dead_letters(self.dead_letters.clone())
            .with_discovery(discovery)
            .with_origin(origin.map(Arc::new));
        if let Some(spec) = watermark {
            // A micro-batch (bound ranges or a queue batch) judges lateness by the watermark its
            // predecessor left; a live scan by its own watermark as it runs.
            let tracker = if self.bound.is_some() || self.queue_batch.is_some() {
                EventTimeTracker::for_batch(spec.clone(), self.late_before)
            } else {
                EventTimeTracker::live(spec.clone())
            };
            exec = exec.with_event_time(Arc::new(tracker), self.late_rows.clone());
        }
        Ok(exec)
    }
}

#[async_trait]
impl TableProvider for TopicTable {
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
        if self.source.queue().is_some() {
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
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let mut discovery = None;
        let input = match &self.source {
            TableSource::Log(log) => {
                let bounds = match &self.bound {
                    Some(ranges) => ScanBounds::Bound(ranges),
                    None => ScanBounds::Table(&self.scan),
                };
                let planned = plan_scan(log, bounds, filters, self.timestamps).await?;
                let live = planned.partitions.iter().any(|p| !p.is_bounded());
                if live {
                    discovery = Discovery::new(
                        log,
                        &planned,
                        self.timestamps,
                        &self.scan.topics,
                        !self.order.is_empty(),
                    );
                }
                let topics = &self.scan.topics;
                let min_partitions = topics.split_min_partitions.map(|m| match m {
                    MinPartitions::Count(n) => n,
                    MinPartitions::Auto => state.config().target_partitions(),
                });
                ScanInput::Log {
                    source: log.clone(),
                    partitions: split_scans(
                        planned.partitions,
                        topics.split_max_messages,
                        min_partitions,
                    ),
                }
            }
            TableSource::Queue(queue) => ScanInput::Queue {
                readers: queue.readers().await?,
                source: Arc::clone(queue),
                read: self.queue_batch.clone().unwrap_or(QueueRead {
                    drain: self.scan.bounded != crate::options::BoundedMode::Unbounded,
                    max_messages: None,
                    acks: None,
                }),
            },
        };
        Ok(Arc::new(
            self.build_exec(projection, input, limit, discovery)?,
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
    let key_fields = declared_key_fields(scan.declared_key.as_ref());
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
