//! The scan `ExecutionPlan`: one output partition per source partition (or queue reader). It
//! holds only plain settings and ranges, computes its properties and displays itself; each
//! output partition's work is a [`PartitionStream`](super::stream).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::SortExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalSortExpr, create_ordering,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
};

use super::discovery::{Discovery, spare_stream, until_deleted};
use super::plan::PartitionScan;
use super::stream::{PartitionStream, StreamSettings};
use super::watermark::EventTimeTracker;
use crate::format::{ErrorPolicy, FormatKind, TableFormats};
use crate::sink::{DeadLetters, LateRows};
use crate::source::{LogSet, QueueRead, QueueSource, TopicPartition};
use crate::table::{MetadataColumn, OutputColumn, ProjectionPlan, ScanOrigin};

/// What a scan reads: planned ranges of a log, or readers of a queue.
#[derive(Debug, Clone)]
pub enum ScanInput {
    /// Output partition `i` reads `partitions[i]`.
    Log {
        /// The table's topics.
        source: LogSet,
        /// The planned ranges per partition.
        partitions: Vec<PartitionScan>,
    },
    /// Output partition `i` is reader `readers[i]` of the queue.
    Queue {
        /// The queue.
        source: Arc<dyn QueueSource>,
        /// Reader ids.
        readers: Vec<i32>,
        /// How each reader reads (drain or follow, cap, acknowledgements).
        read: QueueRead,
    },
}

impl ScanInput {
    fn output_partitions(&self) -> usize {
        match self {
            Self::Log { partitions, .. } => partitions.len(),
            Self::Queue { readers, .. } => readers.len(),
        }
    }

    fn is_bounded(&self) -> bool {
        match self {
            Self::Log { partitions, .. } => partitions.iter().all(PartitionScan::is_bounded),
            Self::Queue { read, .. } => read.drain,
        }
    }

    fn topic(&self) -> &str {
        match self {
            Self::Log { source, .. } => source.label(),
            Self::Queue { source, .. } => source.topic(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Log { source, .. } => source.kind(),
            Self::Queue { source, .. } => source.kind(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Log { source, .. } => source.to_string(),
            Self::Queue { source, .. } => source.to_string(),
        }
    }

    /// `0: [0, 10), 1: [5, ∞)` (`orders/0: …` when the table reads several topics) or
    /// `0: until drained, 1: until drained`.
    fn partitions_label(&self) -> String {
        match self {
            Self::Log { partitions, source } => partitions
                .iter()
                .map(|p| {
                    if source.is_single() {
                        p.to_string()
                    } else {
                        format!("{}/{p}", p.topic)
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            Self::Queue { readers, read, .. } => readers
                .iter()
                .map(|r| {
                    if read.drain {
                        format!("{r}: until drained")
                    } else {
                        format!("{r}: following")
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// What a scan read, counted as it reads: the figures micro-batches are planned by (average
/// message size) and report (rows, skipped offsets, bad messages).
#[derive(Debug, Default)]
pub struct ScanStatistics {
    messages: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    bad: AtomicU64,
    newest: std::sync::Mutex<std::collections::BTreeMap<TopicPartition, i64>>,
}

impl ScanStatistics {
    /// Messages read.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    /// Key, value and header bytes read.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Offsets skipped because they were removed (`scan.fail-on-data-loss = false`).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Messages that could not be decoded.
    pub fn bad(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }

    pub(super) fn add_read(&self, messages: usize, bytes: u64, skipped: u64) {
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.skipped.fetch_add(skipped, Ordering::Relaxed);
    }

    pub(super) fn add_bad(&self, bad: usize) {
        self.bad.fetch_add(bad as u64, Ordering::Relaxed);
    }

    /// Per partition (or work-queue reader), the newest message timestamp read (ms).
    pub fn newest_ms(&self) -> std::collections::BTreeMap<TopicPartition, i64> {
        self.newest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn note_newest(&self, partition: &TopicPartition, ms: i64) {
        let mut newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        match newest.get_mut(partition) {
            Some(entry) => *entry = (*entry).max(ms),
            None => {
                newest.insert(partition.clone(), ms);
            }
        }
    }
}

/// Scans a topic: output partition `i` reads the `i`-th planned partition (or queue reader).
///
/// The plan holds only settings and ranges; broker connections are opened in `execute`.
#[derive(Debug, Clone)]
pub struct TopicScanExec {
    input: ScanInput,
    formats: TableFormats,
    dead_letters: Option<Arc<DeadLetters>>,
    projection: ProjectionPlan,
    limit: Option<usize>,
    declared_order: Vec<Vec<SortExpr>>,
    fail_on_data_loss: bool,
    props: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    statistics: Arc<ScanStatistics>,
    event_time: Option<Arc<EventTimeTracker>>,
    late_rows: Option<Arc<LateRows>>,
    /// Live discovery of partitions and topics, with its spare output partitions.
    discovery: Option<Arc<Discovery>>,
    /// How another process runs the same scan (closed ranges of a declared table).
    origin: Option<Arc<ScanOrigin>>,
}

impl TopicScanExec {
    /// A scan of `input` producing the columns of `projection`, stopping after `limit` rows
    /// per partition.
    pub fn new(
        input: ScanInput,
        formats: TableFormats,
        projection: ProjectionPlan,
        limit: Option<usize>,
    ) -> Self {
        let props = Self::compute_properties(&projection, &input, limit, &[], 0);
        Self {
            input,
            formats,
            dead_letters: None,
            projection,
            limit,
            declared_order: Vec::new(),
            fail_on_data_loss: true,
            props: Arc::new(props),
            metrics: ExecutionPlanMetricsSet::new(),
            statistics: Arc::default(),
            event_time: None,
            late_rows: None,
            discovery: None,
            origin: None,
        }
    }

    /// Lets another process (a worker) rebuild this scan from `origin`.
    pub fn with_origin(mut self, origin: Option<Arc<ScanOrigin>>) -> Self {
        self.origin = origin;
        self
    }

    /// How another process runs this scan, when it can.
    pub fn origin(&self) -> Option<&Arc<ScanOrigin>> {
        self.origin.as_ref()
    }

    /// The same scan over `partitions` only (a worker's share of it).
    pub fn with_partitions(&self, partitions: Vec<PartitionScan>) -> Option<Self> {
        let ScanInput::Log { source, .. } = &self.input else {
            return None;
        };
        let mut exec = self.clone();
        exec.input = ScanInput::Log {
            source: source.clone(),
            partitions,
        };
        exec.metrics = ExecutionPlanMetricsSet::new();
        exec.statistics = Arc::default();
        Some(exec.with_declared_order(self.declared_order.clone()))
    }

    /// Reads partitions (and topics) that appear while the scan runs, through the discovery's
    /// spare output partitions, and watches for deleted ones.
    pub fn with_discovery(mut self, discovery: Option<Arc<Discovery>>) -> Self {
        self.discovery = discovery;
        self.props = Arc::new(Self::compute_properties(
            &self.projection,
            &self.input,
            self.limit,
            &self.declared_order,
            self.spares(),
        ));
        self
    }

    /// The live discovery, if the scan has one.
    pub fn discovery(&self) -> Option<&Arc<Discovery>> {
        self.discovery.as_ref()
    }

    fn spares(&self) -> usize {
        self.discovery.as_ref().map_or(0, |d| d.spare_count())
    }

    /// Tracks event time (the table declares a watermark) and applies its late-row rule;
    /// late rows go to `late_rows` when given.
    pub fn with_event_time(
        mut self,
        tracker: Arc<EventTimeTracker>,
        late_rows: Option<Arc<LateRows>>,
    ) -> Self {
        self.event_time = Some(tracker);
        self.late_rows = late_rows;
        self
    }

    /// The scan's event-time bookkeeping, when the table declares a watermark.
    pub fn event_time(&self) -> Option<&Arc<EventTimeTracker>> {
        self.event_time.as_ref()
    }

    /// Declares orderings that hold within each partition (`WITH ORDER` in the DDL), on top
    /// of the `_offset` order a scan of offset ranges always has.
    pub fn with_declared_order(mut self, order: Vec<Vec<SortExpr>>) -> Self {
        self.props = Arc::new(Self::compute_properties(
            &self.projection,
            &self.input,
            self.limit,
            &order,
            self.spares(),
        ));
        self.declared_order = order;
        self
    }

    /// Whether offsets removed while reading fail the scan (default) or are skipped and
    /// counted in the `offsets_skipped` metric.
    pub fn with_fail_on_data_loss(mut self, fail: bool) -> Self {
        self.fail_on_data_loss = fail;
        self
    }

    /// Also produces every bad message to a dead-letter topic.
    pub fn with_dead_letters(mut self, dead_letters: Option<Arc<DeadLetters>>) -> Self {
        self.dead_letters = dead_letters;
        self
    }

    /// What the scan reads.
    pub fn input(&self) -> &ScanInput {
        &self.input
    }

    /// The planned per-partition ranges of a log scan, in output-partition order (empty for a
    /// queue scan).
    pub fn scans(&self) -> &[PartitionScan] {
        match &self.input {
            ScanInput::Log { partitions, .. } => partitions,
            ScanInput::Queue { .. } => &[],
        }
    }

    /// The row limit per partition, if any.
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// The topic (or stream) this scan reads.
    pub fn topic(&self) -> &str {
        self.input.topic()
    }

    /// The source as shown in EXPLAIN (`kafka://host:port/topic`).
    pub fn source_name(&self) -> String {
        self.input.describe()
    }

    /// True when every partition's range has an end (or a limit caps it).
    pub fn is_bounded(&self) -> bool {
        !self.props.boundedness.is_unbounded()
    }

    /// What the scan has read so far (all partitions).
    pub fn statistics(&self) -> &Arc<ScanStatistics> {
        &self.statistics
    }

    fn compute_properties(
        projection: &ProjectionPlan,
        input: &ScanInput,
        limit: Option<usize>,
        declared_order: &[Vec<SortExpr>],
        spares: usize,
    ) -> PlanProperties {
        let schema = Arc::clone(&projection.output_schema);
        let mut eq = EquivalenceProperties::new(Arc::clone(&schema));
        // Columns the projection drops simply end the declared ordering there.
        if let Ok(orderings) = create_ordering(&schema, declared_order) {
            eq.add_orderings(orderings);
        }
        // Within one output partition of a range scan rows come in offset order (not from a
        // work queue, whose redeliveries come late). A scan with spare output partitions
        // declares no order: they are silent until a partition is discovered, and an ordered
        // merge would wait for them.
        let offsets_ordered = matches!(input, ScanInput::Log { .. }) && spares == 0;
        let offset_col = projection
            .columns
            .iter()
            .position(|c| *c == OutputColumn::Metadata(MetadataColumn::Offset))
            .filter(|_| offsets_ordered);
        if let Some(i) = offset_col {
            let expr: Arc<dyn PhysicalExpr> =
                Arc::new(Column::new(MetadataColumn::Offset.name(), i));
            if let Some(ordering) = LexOrdering::new(vec![PhysicalSortExpr::new_default(expr)]) {
                eq.add_orderings(vec![ordering]);
            }
        }
        let bounded = limit.is_some() || input.is_bounded();
        let boundedness = if bounded {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded {
                requires_infinite_memory: false,
            }
        };
        PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning((input.output_partitions() + spares).max(1)),
            EmissionType::Incremental,
            boundedness,
        )
    }

    /// `json`, or `key=avro value=json` when the key is decoded too; with the policy when it
    /// is not `fail`.
    fn format_label(&self) -> String {
        let mut label = if self.formats.key.kind() == FormatKind::Raw {
            self.formats.value.kind().to_string()
        } else {
            format!(
                "key={} value={}",
                self.formats.key.kind(),
                self.formats.value.kind()
            )
        };
        match self.formats.on_error {
            ErrorPolicy::Fail => {}
            ErrorPolicy::Skip => label.push_str(" on_error=skip"),
            ErrorPolicy::DeadLetter => label.push_str(" on_error=dead-letter"),
        }
        label
    }
}

impl DisplayAs for TopicScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let partitions = self.input.partitions_label();
        let names: Vec<&str> = self
            .projection
            .output_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if t == DisplayFormatType::TreeRender {
            // One `key=value` per line, without the brokers: the tree view is about the
            // shape of the read.
            writeln!(f, "{}={}", self.input.kind(), self.input.topic())?;
            writeln!(f, "format={}", self.format_label())?;
            writeln!(f, "partitions=[{partitions}]")?;
            write!(f, "projection=[{}]", names.join(", "))?;
            if let Some(limit) = self.limit {
                write!(f, "\nlimit={limit}")?;
            }
            return Ok(());
        }
        write!(
            f,
            "TopicScanExec: {}, format={}, partitions=[{partitions}]",
            self.input.describe(),
            self.format_label()
        )?;
        write!(f, ", projection=[{}]", names.join(", "))?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        if !self.fail_on_data_loss {
            f.write_str(", fail_on_data_loss=false")?;
        }
        if let Some(d) = &self.discovery {
            write!(
                f,
                ", discovery={:?} spare_partitions={}",
                d.interval(),
                d.spare_count()
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for TopicScanExec {
    fn name(&self) -> &str {
        "TopicScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DFResult<TreeNodeRecursion>,
    ) -> DFResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "TopicScanExec has no children".into(),
            ))
        }
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        let mut exec = self.clone();
        exec.limit = limit;
        exec.metrics = ExecutionPlanMetricsSet::new();
        exec.statistics = Arc::default();
        Some(Arc::new(
            exec.with_declared_order(self.declared_order.clone()),
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let schema = Arc::clone(&self.projection.output_schema);
        let planned = self.input.output_partitions();
        if partition >= planned + self.spares() {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        }
        if let Some(d) = &self.discovery {
            d.start();
        }
        let settings = StreamSettings {
            formats: self.formats.clone(),
            projection: self.projection.clone(),
            dead_letters: self.dead_letters.clone(),
            limit: self.limit,
            batch_rows: context.session_config().batch_size(),
            fail_on_data_loss: self.fail_on_data_loss,
            event_time: self.event_time.clone(),
            late_rows: self.late_rows.clone(),
        };
        let stream = if partition < planned {
            let stream = PartitionStream::open(
                &self.input,
                partition,
                partition,
                settings,
                &self.metrics,
                Arc::clone(&self.statistics),
            )?;
            match (&self.discovery, &self.input) {
                (Some(discovery), ScanInput::Log { partitions, .. }) => {
                    until_deleted(stream, partitions[partition].key(), Arc::clone(discovery))
                }
                _ => stream,
            }
        } else if let Some(discovery) = &self.discovery {
            // A spare output partition: reads what discovery hands it.
            let metrics = self.metrics.clone();
            let statistics = Arc::clone(&self.statistics);
            let set = discovery.set().clone();
            let d = Arc::clone(discovery);
            spare_stream(discovery.take_spare(partition - planned), move |scan| {
                let key = scan.key();
                let input = ScanInput::Log {
                    source: set.clone(),
                    partitions: vec![scan],
                };
                let stream = PartitionStream::open(
                    &input,
                    0,
                    partition,
                    settings.clone(),
                    &metrics,
                    Arc::clone(&statistics),
                )?;
                Ok(until_deleted(stream, key, Arc::clone(&d)))
            })
        } else {
            // Unreachable: output partitions beyond the planned ones are spares.
            futures::StreamExt::boxed(futures::stream::empty())
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
