//! The scan `ExecutionPlan`: one output partition per source partition, each reading its
//! planned offset range, decoding values and attaching metadata columns.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::SortExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalSortExpr, create_ordering,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
};
use futures::StreamExt;

use crate::format::{ErrorPolicy, FormatKind, TableFormats};
use crate::planner::PartitionScan;
use crate::schema::{MetadataColumn, OutputColumn, ProjectionPlan};
use crate::sink::DeadLetters;
use crate::source::{RawBatch, ReadRequest, Source};

/// Scans planned offset ranges of a topic: output partition `i` reads `scans[i]`.
///
/// The plan holds only settings and ranges; broker connections are opened in `execute`.
#[derive(Debug, Clone)]
pub struct TopicScanExec {
    source: Arc<dyn Source>,
    formats: TableFormats,
    dead_letters: Option<Arc<DeadLetters>>,
    projection: ProjectionPlan,
    scans: Vec<PartitionScan>,
    limit: Option<usize>,
    declared_order: Vec<Vec<SortExpr>>,
    fail_on_data_loss: bool,
    props: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl TopicScanExec {
    /// A scan of `scans` producing the columns of `projection`, stopping after `limit` rows per partition.
    pub fn new(
        source: Arc<dyn Source>,
        formats: TableFormats,
        projection: ProjectionPlan,
        scans: Vec<PartitionScan>,
        limit: Option<usize>,
    ) -> Self {
        let offsets_ordered = source.work_queue().is_none();
        let props = Self::compute_properties(&projection, &scans, limit, &[], offsets_ordered);
        Self {
            source,
            formats,
            dead_letters: None,
            projection,
            scans,
            limit,
            declared_order: Vec::new(),
            fail_on_data_loss: true,
            props: Arc::new(props),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Declares orderings that hold within each partition (`WITH ORDER` in the DDL), on top
    /// of the `_offset` order a scan of offset ranges always has.
    pub fn with_declared_order(mut self, order: Vec<Vec<SortExpr>>) -> Self {
        self.props = Arc::new(Self::compute_properties(
            &self.projection,
            &self.scans,
            self.limit,
            &order,
            self.source.work_queue().is_none(),
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

    /// The planned per-partition ranges, in output-partition order.
    pub fn scans(&self) -> &[PartitionScan] {
        &self.scans
    }

    /// The row limit per partition, if any.
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// The topic (or stream) this scan reads.
    pub fn topic(&self) -> &str {
        self.source.topic()
    }

    /// The source as shown in EXPLAIN (`kafka://host:port/topic`).
    pub fn source_name(&self) -> String {
        self.source.to_string()
    }

    /// True when every partition's range has an end (or a limit caps it).
    pub fn is_bounded(&self) -> bool {
        !self.props.boundedness.is_unbounded()
    }

    fn compute_properties(
        projection: &ProjectionPlan,
        scans: &[PartitionScan],
        limit: Option<usize>,
        declared_order: &[Vec<SortExpr>],
        offsets_ordered: bool,
    ) -> PlanProperties {
        let schema = Arc::clone(&projection.output_schema);
        let mut eq = EquivalenceProperties::new(Arc::clone(&schema));
        // Columns the projection drops simply end the declared ordering there.
        if let Ok(orderings) = create_ordering(&schema, declared_order) {
            eq.add_orderings(orderings);
        }
        // Within one output partition of a range scan rows come in offset order (not from a
        // work queue, whose redeliveries come late).
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
        let bounded = limit.is_some() || scans.iter().all(PartitionScan::is_bounded);
        let boundedness = if bounded {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded {
                requires_infinite_memory: false,
            }
        };
        PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(scans.len().max(1)),
            EmissionType::Incremental,
            boundedness,
        )
    }
}

impl TopicScanExec {
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
        let partitions = self
            .scans
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
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
            writeln!(f, "{}={}", self.source.kind(), self.source.topic())?;
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
            self.source,
            self.format_label()
        )?;
        write!(f, ", projection=[{}]", names.join(", "))?;
        if let Some(limit) = self.limit {
            write!(f, ", limit={limit}")?;
        }
        if !self.fail_on_data_loss {
            f.write_str(", fail_on_data_loss=false")?;
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
        let Some(scan) = self.scans.get(partition).cloned() else {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let skipping = self.formats.on_error == ErrorPolicy::Skip;
        let mut needs = self.projection.needs;
        if self.dead_letters.is_some() {
            // A dead letter carries the whole message.
            needs.key = true;
            needs.value = true;
            needs.headers = true;
        }
        let request = ReadRequest {
            needs,
            batch_rows: context.session_config().batch_size(),
            // Skipped messages do not count towards a limit, so the reader cannot stop early.
            max_messages: self.limit.filter(|_| !skipping).map(|l| l as u64),
            fail_on_data_loss: self.fail_on_data_loss,
        };
        let decoder = self
            .formats
            .batch_decoder(&self.projection, request.batch_rows)?;
        let decoder = Arc::new(std::sync::Mutex::new(decoder));
        let formats = self.formats.clone();
        let dead_letters = self.dead_letters.clone();
        let keep_errors = self.projection.columns.iter().any(|c| {
            matches!(
                c,
                OutputColumn::Metadata(MetadataColumn::Error | MetadataColumn::Raw)
            )
        });
        let metrics = Arc::new(ScanMetrics::new(&self.metrics, partition));
        metrics.skipped.add(scan.skipped as usize);
        let projection = Arc::new(self.projection.clone());
        let topic: Arc<str> = Arc::from(self.source.topic_of(scan.partition));
        // Ranges are read one after the other; the next reader opens when the previous ends.
        let source = Arc::clone(&self.source);
        let raw = futures::stream::iter(scan.ranges)
            .flat_map(move |range| source.read(scan.partition, range, request));
        let stream = raw.then(move |item| {
            let (decoder, formats, dead_letters, metrics, projection, topic) = (
                Arc::clone(&decoder),
                formats.clone(),
                dead_letters.clone(),
                Arc::clone(&metrics),
                Arc::clone(&projection),
                Arc::clone(&topic),
            );
            async move {
                let raw: RawBatch = item?;
                metrics.messages.add(raw.len());
                metrics.bytes.add(raw.bytes as usize);
                metrics.skipped.add(raw.skipped as usize);
                formats.prefetch(&raw).await?;
                let (parts, bad) = {
                    let _timer = metrics.decode_time.timer();
                    let mut decoder = decoder
                        .lock()
                        .map_err(|_| DataFusionError::Internal("decoder lock poisoned".into()))?;
                    decoder.decode(&topic, &raw, keep_errors)?
                };
                metrics.bad.add(bad.len());
                if let Some(dead_letters) = &dead_letters
                    && !bad.is_empty()
                {
                    dead_letters.send(&topic, &raw, &bad).await?;
                }
                let batch = projection.assemble(&topic, &raw, &parts)?;
                if skipping && !bad.is_empty() {
                    let keep: arrow::array::BooleanArray = (0..raw.len())
                        .map(|row| Some(bad.binary_search_by_key(&row, |b| b.row).is_err()))
                        .collect();
                    return Ok(arrow::compute::filter_record_batch(&batch, &keep)?);
                }
                Ok(batch)
            }
        });
        // LIMIT: stop (and so drop the reader, releasing its consumer) once enough rows came.
        let mut remaining = self.limit.unwrap_or(usize::MAX);
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let stream = stream.scan((), move |_, item| {
            let out = match item {
                _ if remaining == 0 => None,
                Ok(batch) => {
                    let batch = batch.slice(0, batch.num_rows().min(remaining));
                    remaining -= batch.num_rows();
                    baseline.record_output(batch.num_rows());
                    Some(Ok(batch))
                }
                Err(e) => {
                    remaining = 0;
                    Some(Err(e))
                }
            };
            futures::future::ready(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Per-partition scan metrics shown by EXPLAIN ANALYZE.
struct ScanMetrics {
    messages: Count,
    bytes: Count,
    decode_time: Time,
    skipped: Count,
    bad: Count,
}

impl ScanMetrics {
    fn new(set: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        Self {
            messages: MetricBuilder::new(set).counter("messages_fetched", partition),
            bytes: MetricBuilder::new(set).counter("bytes_fetched", partition),
            decode_time: MetricBuilder::new(set).subset_time("decode_time", partition),
            skipped: MetricBuilder::new(set).counter("offsets_skipped", partition),
            bad: MetricBuilder::new(set).counter("messages_bad", partition),
        }
    }
}
