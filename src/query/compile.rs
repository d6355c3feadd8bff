//! Taking a continuous query in: the DDL statements run, the one `INSERT INTO … SELECT` kept
//! as a logical plan, its source topic tables found and its sink chosen.

use std::fmt;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use crate::error::TopicsError;
use crate::sink::{BatchSink, FileBatchSink, FileFormat, RowEncoder, TopicBatchSink};
use crate::table::TopicTable;

/// How a continuous query reads one of its topic tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceRole {
    /// Incrementally: each batch reads what arrived since the previous one.
    Stream,
    /// Whole: a table declared bounded (`scan.bounded.mode`) is a snapshot each batch joins
    /// against; its ranges are recorded per batch so a replay reads the same snapshot.
    Dimension,
}

/// A source table of a continuous query.
#[derive(Debug, Clone)]
pub(crate) struct SourceTable {
    /// The name the query uses.
    pub name: TableReference,
    /// The table.
    pub table: TopicTable,
    /// Stream or snapshot.
    pub role: SourceRole,
}

/// What the query needs across batches, found when it is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryKind {
    /// No state: each batch stands alone.
    Stateless,
    /// One aggregation; `windowed` when grouped by a window over an event-time column.
    Aggregate {
        /// Grouped by a window (`date_bin(…)`, `hop(…)`) over a declared event-time column.
        windowed: bool,
        /// A HAVING filters the groups: in update output a group may leave the result.
        filtered: bool,
    },
}

/// A continuous `INSERT INTO sink SELECT … FROM topic tables` query, compiled: run it with
/// [`ContinuousQuery::run`](super::ContinuousQuery::run).
pub struct ContinuousQuery {
    pub(crate) ctx: SessionContext,
    /// The session's state as batches are planned with it (see [`incremental_planner`]).
    pub(crate) planner: SessionState,
    /// The INSERT as written (whitespace normalised), which owns the checkpoint.
    pub(crate) text: String,
    /// The SELECT's logical plan; each batch binds its sources to that batch's ranges.
    pub(crate) select: LogicalPlan,
    pub(crate) sources: Vec<SourceTable>,
    pub(crate) sink: Arc<dyn BatchSink>,
    pub(crate) kind: QueryKind,
}

impl fmt::Debug for ContinuousQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContinuousQuery")
            .field("query", &self.text)
            .field("sources", &self.sources)
            .field("sink", &self.sink)
            .finish()
    }
}

impl ContinuousQuery {
    /// Runs the DDL statements of `sql` in `ctx` and prepares its one `INSERT INTO … SELECT`
    /// (the continuous query). Sources are the topic tables it reads; the sink is its target:
    /// a topic table, or a Parquet / JSON table (`STORED AS PARQUET | JSON`).
    pub async fn from_sql(ctx: SessionContext, sql: &str) -> Result<Self, DataFusionError> {
        let Some((text, plan)) = run_until_query(&ctx, sql).await? else {
            return Err(no_query("INSERT INTO … SELECT"));
        };
        let LogicalPlan::Dml(dml) = plan else {
            return Err(TopicsError::plan(
                "a continuous query file ends with INSERT INTO … SELECT, which says where its \
                 rows go (or hand the SELECT your own sink: ContinuousQuery::from_sql_into)",
            )
            .into());
        };
        let sink = sink_of(&ctx, &dml).await?;
        Self::assemble(ctx, text, Arc::unwrap_or_clone(dml.input), sink).await
    }

    /// Runs the DDL statements of `sql` in `ctx` and prepares its one `SELECT` as a
    /// continuous query whose rows go to `sink`, the user's own: for example one that commits
    /// each batch's rows and offset ranges in one database transaction (see
    /// [`BatchSink::keeps_positions`] and docs/your-own-sink.md). The checkpoint belongs to
    /// the SELECT together with the sink's description.
    pub async fn from_sql_into(
        ctx: SessionContext,
        sql: &str,
        sink: Arc<dyn BatchSink>,
    ) -> Result<Self, DataFusionError> {
        let Some((text, plan)) = run_until_query(&ctx, sql).await? else {
            return Err(no_query("SELECT"));
        };
        if matches!(plan, LogicalPlan::Dml(_)) {
            return Err(TopicsError::plan(
                "from_sql_into takes a SELECT whose rows go to the sink it is given, not an \
                 INSERT (run an INSERT with ContinuousQuery::from_sql)",
            )
            .into());
        }
        let text = format!("{text} -- into {}", sink.describe());
        Self::assemble(ctx, text, plan, sink).await
    }

    async fn assemble(
        ctx: SessionContext,
        text: String,
        select: LogicalPlan,
        sink: Arc<dyn BatchSink>,
    ) -> Result<Self, DataFusionError> {
        let sources = find_sources(&select)?;
        if !sources.iter().any(|s| s.role == SourceRole::Stream) {
            return Err(TopicsError::plan(
                "the query reads no unbounded topic table, so there is nothing to run \
                 continuously (tables declared with 'scan.bounded.mode' are snapshots)",
            )
            .into());
        }
        #[cfg(feature = "distributed")]
        if crate::distributed::workers_of(ctx.state().config()).is_some() {
            refuse_on_workers(&select)?;
        }
        let mut query = Self {
            planner: incremental_planner(&ctx),
            ctx,
            text,
            select,
            sources,
            sink,
            kind: QueryKind::Stateless,
        };
        query.kind = query.probe_kind().await?;
        Ok(query)
    }

    /// Plans the query over empty ranges to learn what it needs across batches, refusing
    /// shapes the runner cannot run incrementally.
    async fn probe_kind(&self) -> Result<QueryKind, DataFusionError> {
        let empty: std::collections::BTreeMap<String, crate::checkpoint::SourceRanges> =
            Default::default();
        let physical = self.batch_plan(&empty, None, None).await?;
        Ok(match self.shape_of(&physical)? {
            super::stateful::shape::Shape::Stateless => QueryKind::Stateless,
            super::stateful::shape::Shape::Aggregate(stages) => {
                if let Some(queue) = self
                    .sources
                    .iter()
                    .find(|s| s.table.source().queue().is_some())
                {
                    return Err(TopicsError::plan(format!(
                        "an aggregate over the work-queue table {} cannot be exactly-once: a \
                         work queue redelivers messages after a crash, and state would count \
                         them twice; read the stream by ranges (nats.mode = ordered)",
                        queue.name
                    ))
                    .into());
                }
                QueryKind::Aggregate {
                    windowed: stages.window.is_some(),
                    filtered: stages.filtered_above,
                }
            }
        })
    }

    /// The watermark declarations of the stream tables, by table name.
    pub(crate) fn watermark_specs(
        &self,
    ) -> std::collections::BTreeMap<String, crate::options::WatermarkSpec> {
        self.sources
            .iter()
            .filter(|s| s.role == SourceRole::Stream)
            .filter_map(|s| {
                s.table
                    .scan_options()
                    .watermark
                    .clone()
                    .map(|w| (s.name.to_string(), w))
            })
            .collect()
    }

    /// Each stream table's topic, by table name.
    pub(crate) fn stream_topics(&self) -> std::collections::BTreeMap<String, String> {
        self.sources
            .iter()
            .filter(|s| s.role == SourceRole::Stream)
            .map(|s| (s.name.to_string(), s.table.source().topic().to_string()))
            .collect()
    }

    /// The shape of a batch's physical plan.
    pub(crate) fn shape_of(
        &self,
        physical: &Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    ) -> Result<super::stateful::shape::Shape, TopicsError> {
        let streams = self.stream_topics().into_values().collect();
        let columns = self
            .watermark_specs()
            .into_values()
            .map(|w| w.column)
            .collect();
        super::stateful::shape::analyze(physical, &streams, &columns)
    }

    /// Whether the INSERT gives the sink's `_key` column a value (rather than the NULL an
    /// unnamed metadata column receives), so the sink can write tombstones for keys.
    pub(crate) fn selects_key(&self) -> bool {
        let LogicalPlan::Projection(projection) = &self.select else {
            return true;
        };
        let Some(index) = projection.schema.index_of_column_by_name(None, "_key") else {
            return false;
        };
        let mut expr = &projection.expr[index];
        loop {
            expr = match expr {
                Expr::Alias(a) => &a.expr,
                Expr::Cast(c) => &c.expr,
                Expr::TryCast(c) => &c.expr,
                Expr::Literal(value, _) => return !value.is_null(),
                _ => return true,
            };
        }
    }

    /// The sink's description.
    pub fn sink(&self) -> String {
        self.sink.describe()
    }
}

/// Runs `sql`'s statements in `ctx` up to its one query (an INSERT or a SELECT), which it
/// returns as written (whitespace normalised) and planned; DDL runs as it comes.
async fn run_until_query(
    ctx: &SessionContext,
    sql: &str,
) -> Result<Option<(String, LogicalPlan)>, DataFusionError> {
    let mut query: Option<(String, LogicalPlan)> = None;
    for statement in DFParser::parse_sql(sql)? {
        let text = statement.to_string();
        let statement = crate::table::complete_insert_columns(ctx, statement).await?;
        let is_query = matches!(
            &statement,
            DFStatement::Statement(s) if matches!(**s, SqlStatement::Query(_))
        );
        let plan = ctx.state().statement_to_plan(statement).await?;
        let is_insert =
            matches!(&plan, LogicalPlan::Dml(dml) if matches!(dml.op, WriteOp::Insert(_)));
        if is_query || is_insert {
            if query.is_some() {
                return Err(TopicsError::plan(
                    "a continuous query is exactly one INSERT INTO … SELECT (or one SELECT into \
                     your own sink); other statements may only declare tables",
                )
                .into());
            }
            query = Some((text, plan));
        } else {
            ctx.execute_logical_plan(plan).await?.collect().await?;
        }
    }
    Ok(query)
}

fn no_query(what: &str) -> DataFusionError {
    TopicsError::plan(format!(
        "no {what}: a continuous query writes its rows somewhere"
    ))
    .into()
}

/// Continuous queries on workers run stateless SELECTs: an aggregate's state lives with the
/// coordinator's checkpoint, and its batches are planned around it.
#[cfg(feature = "distributed")]
fn refuse_on_workers(select: &LogicalPlan) -> Result<(), DataFusionError> {
    use datafusion::common::tree_node::TreeNode;
    let aggregates = select.exists(|node| Ok(matches!(node, LogicalPlan::Aggregate(_))))?;
    if aggregates {
        return Err(TopicsError::plan(
            "a continuous aggregate (GROUP BY, DISTINCT, windows) cannot run on workers: its \
             state is merged batch after batch in one process; run it without --workers \
             (stateless SELECTs, filters, projections and joins with bounded tables run on \
             workers)",
        )
        .into());
    }
    Ok(())
}

/// `ctx`'s state without the optimizer rules that turn one aggregation into two: DataFusion
/// plans `count(DISTINCT x)` (when it is the only kind of aggregate) as a GROUP BY x under
/// a GROUP BY, which needs the inner result complete. Left as one aggregation, its
/// accumulator keeps the distinct values as its partial state, which carries across batches.
fn incremental_planner(ctx: &SessionContext) -> SessionState {
    let state = ctx.state();
    let rules = state
        .optimizer()
        .rules
        .iter()
        .filter(|r| r.name() != "single_distinct_aggregation_to_group_by")
        .cloned()
        .collect();
    SessionStateBuilder::new_from_existing(state)
        .with_optimizer_rules(rules)
        .build()
}

/// The topic tables a plan scans (subqueries included), each once.
fn find_sources(plan: &LogicalPlan) -> Result<Vec<SourceTable>, DataFusionError> {
    let mut out: Vec<SourceTable> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = source_as_provider(&scan.source)?;
            if let Some(table) = provider.downcast_ref::<TopicTable>()
                && !out.iter().any(|s| s.name == scan.table_name)
            {
                let bounded = table.source().log().is_some()
                    && table.scan_options().bounded != crate::options::BoundedMode::Unbounded;
                out.push(SourceTable {
                    name: scan.table_name.clone(),
                    table: table.clone(),
                    role: if bounded {
                        SourceRole::Dimension
                    } else {
                        SourceRole::Stream
                    },
                });
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(out)
}

/// The exactly-once sink for the INSERT's target table.
async fn sink_of(
    ctx: &SessionContext,
    dml: &DmlStatement,
) -> Result<Arc<dyn BatchSink>, DataFusionError> {
    let target = source_as_provider(&dml.target)?;
    let input_schema = Arc::new(dml.input.schema().as_arrow().clone());
    if let Some(table) = target.downcast_ref::<TopicTable>() {
        let (Some(writer), Some(log)) = (table.writer(), table.log()) else {
            return Err(TopicsError::plan(format!(
                "table {} cannot be written to",
                dml.table_name
            ))
            .into());
        };
        let encoder =
            RowEncoder::try_new(&input_schema, table.value_count(), table.formats()).await?;
        return Ok(Arc::new(TopicBatchSink::new(
            Arc::clone(writer),
            Arc::clone(log),
            encoder,
        )));
    }
    if let Some(listing) = target.downcast_ref::<ListingTable>() {
        let [path] = listing.table_paths().as_slice() else {
            return Err(TopicsError::plan("a file sink needs exactly one LOCATION").into());
        };
        let ext = listing.options().format.get_ext();
        let format = FileFormat::from_extension(&ext).ok_or_else(|| {
            TopicsError::plan(format!(
                "file sinks write parquet or json, not {ext} (table {})",
                dml.table_name
            ))
        })?;
        let store = ctx.runtime_env().object_store(path.object_store())?;
        return Ok(Arc::new(FileBatchSink::new(
            store,
            path.prefix().clone(),
            path.to_string(),
            format,
            listing.schema(),
        )));
    }
    Err(TopicsError::plan(format!(
        "the target {} is neither a topic table nor a Parquet or JSON table",
        dml.table_name
    ))
    .into())
}
