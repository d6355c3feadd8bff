//! Table-level helpers: topic tables registered in a session, running SQL, reading results.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use datafusion_topics::TopicTable;

use crate::brokers;

/// Option map from pairs.
pub fn opts(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `kafka://` location of a topic on the test broker.
pub fn location(topic: &str) -> String {
    format!("kafka://{}/{topic}", brokers().kafka)
}

/// A session with `topic` registered as table `t`.
pub async fn kafka_table(
    topic: &str,
    value_schema: SchemaRef,
    pairs: &[(&str, &str)],
) -> SessionContext {
    let provider = TopicTable::open(&location(topic), value_schema, &opts(pairs))
        .await
        .expect("provider");
    let ctx = datafusion_topics::session_context();
    ctx.register_table("t", Arc::new(provider))
        .expect("register");
    ctx
}

/// An empty value schema (raw and string formats).
pub fn no_columns() -> SchemaRef {
    Arc::new(Schema::empty())
}

/// Runs a query to completion.
pub async fn sql(ctx: &SessionContext, query: &str) -> Vec<RecordBatch> {
    ctx.sql(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Runs a query that must fail and returns its error text.
pub async fn sql_err(ctx: &SessionContext, query: &str) -> String {
    match ctx.sql(query).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Err(e) => e.to_string(),
            Ok(b) => panic!(
                "{query} succeeded with {} rows, expected an error",
                rows(&b)
            ),
        },
    }
}

pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Formats batches as a sorted list of row strings, for set comparisons.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let text = datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>().join("|"))
        .collect();
    lines.sort();
    lines
}

/// The (`_partition`, `_offset`) pairs of batches whose first two columns are those, sorted.
pub fn partition_offsets(batches: &[RecordBatch]) -> Vec<(i32, i64)> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Int32Type, Int64Type};
    let mut out: Vec<(i32, i64)> = batches
        .iter()
        .flat_map(|b| {
            let p = b.column(0).as_primitive::<Int32Type>().clone();
            let o = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| (p.value(i), o.value(i)))
        })
        .collect();
    out.sort();
    out
}

/// Reads string values (first column) from a live stream until `want` arrived (30 s at most).
pub async fn next_strings(
    stream: &mut datafusion::execution::SendableRecordBatchStream,
    want: usize,
) -> Vec<String> {
    use datafusion::arrow::array::AsArray;
    use futures::StreamExt;
    let mut values = Vec::new();
    while values.len() < want {
        let batch = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("rows did not arrive within 30 s")
            .expect("stream ended")
            .expect("stream error");
        let col = batch.column(0).as_string::<i32>();
        values.extend((0..batch.num_rows()).map(|i| col.value(i).to_string()));
    }
    values
}

/// The `nats://` location of a stream on the test server.
pub fn nats_location(stream: &str) -> String {
    format!("{}/{stream}", brokers().nats)
}

/// A session with a NATS stream registered as table `t`.
pub async fn nats_table(
    stream: &str,
    value_schema: SchemaRef,
    pairs: &[(&str, &str)],
) -> SessionContext {
    nats_table_at(&nats_location(stream), value_schema, pairs).await
}

/// A session with the NATS stream at `location` (any server) registered as table `t`.
pub async fn nats_table_at(
    location: &str,
    value_schema: SchemaRef,
    pairs: &[(&str, &str)],
) -> SessionContext {
    let provider = TopicTable::open(location, value_schema, &opts(pairs))
        .await
        .expect("provider");
    let ctx = datafusion_topics::session_context();
    ctx.register_table("t", Arc::new(provider))
        .expect("register");
    ctx
}

/// The error creating a NATS table at `location` gives.
pub async fn nats_table_error(location: &str, pairs: &[(&str, &str)]) -> String {
    TopicTable::open(location, no_columns(), &opts(pairs))
        .await
        .expect_err("creating the table should fail")
        .to_string()
}

/// The physical plan of a query.
pub async fn physical_plan(
    ctx: &SessionContext,
    query: &str,
) -> Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    ctx.sql(query)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .create_physical_plan()
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Waits (10 s at most) until no partition reader of `topic` runs any more.
pub async fn wait_for_readers_released(topic: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while datafusion_topics::source::running_readers(topic) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "readers still running after {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `query` in the background (a live query, say) and returns its rows once it ends.
pub fn spawn_query(
    ctx: &SessionContext,
    query: &str,
) -> tokio::task::JoinHandle<datafusion::error::Result<Vec<RecordBatch>>> {
    use futures::StreamExt;
    let ctx = ctx.clone();
    let query = query.to_string();
    tokio::spawn(async move {
        let mut stream = ctx.sql(&query).await?.execute_stream().await?;
        let mut out = Vec::new();
        while let Some(batch) = stream.next().await {
            out.push(batch?);
        }
        Ok(out)
    })
}

/// `f`'s output, or a panic saying that `what` did not happen within `limit`.
pub async fn within<T>(limit: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {limit:?}"))
}
