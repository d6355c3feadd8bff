//! Your own sink, exactly once: a continuous query whose micro-batches go to PostgreSQL, each
//! batch's results and its offset ranges committed in **one transaction**. The database, not
//! only the checkpoint, then says how far the query got: on start the runner asks the sink
//! which batch it committed last, never writes that batch again, and starts after it when
//! the checkpoint is behind (docs/your-own-sink.md).
//!
//! ```text
//! cargo run --example postgres_sink -- KAFKA_BOOTSTRAP POSTGRES_URL TOPIC CHECKPOINT [NAME]
//! ```
//!
//! TOPIC holds JSON orders (`{"id": 1, "customer": "c7", "amount": 250}`). Each batch adds
//! its orders to per-customer totals in `NAME_totals` (an additive upsert: written twice, a
//! batch would count twice, so the transaction is what makes it exactly-once) and records
//! its ranges in `NAME_offsets`. It runs until the topic is drained, 1000 offsets per
//! partition per batch; killed at any moment and started again, the totals stay exact.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::SendableRecordBatchStream;
use datafusion_topics::{
    BatchSink, BatchToWrite, BatchWritten, ContinuousQuery, Limits, RunOptions, SinkCommitted,
    TopicPartition, TopicsError, Trigger, session_context,
};
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_postgres::NoTls;

/// Per-customer totals and offset ranges in PostgreSQL, one transaction per batch.
#[derive(Debug)]
struct PostgresTotals {
    client: Mutex<tokio_postgres::Client>,
    /// Table name prefix: `{name}_totals`, `{name}_offsets`.
    name: String,
}

impl PostgresTotals {
    async fn connect(url: &str, name: &str) -> Result<Self, TopicsError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| fail(name, format!("cannot connect to {}: {e}", redact(url))))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("postgres connection closed: {e}");
            }
        });
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {name}_totals (
                     customer TEXT PRIMARY KEY, orders BIGINT NOT NULL, amount BIGINT NOT NULL);
                 CREATE TABLE IF NOT EXISTS {name}_offsets (
                     batch BIGINT NOT NULL, source TEXT NOT NULL, topic TEXT NOT NULL,
                     part INT NOT NULL, start_offset BIGINT NOT NULL, end_offset BIGINT NOT NULL,
                     PRIMARY KEY (batch, source, topic, part));"
            ))
            .await
            .map_err(|e| fail(name, format!("cannot create the tables: {e}")))?;
        Ok(Self {
            client: Mutex::new(client),
            name: name.to_string(),
        })
    }

    fn fail(&self, detail: String) -> TopicsError {
        fail(&self.name, detail)
    }
}

fn fail(name: &str, detail: String) -> TopicsError {
    TopicsError::Sink {
        target: format!("postgres tables {name}_totals/{name}_offsets"),
        detail,
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[async_trait]
impl BatchSink for PostgresTotals {
    fn describe(&self) -> String {
        format!("postgres tables {0}_totals/{0}_offsets", self.name)
    }

    fn keeps_positions(&self) -> bool {
        true
    }

    async fn committed(&self) -> Result<Option<SinkCommitted>, TopicsError> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT batch, source, topic, part, end_offset FROM {0}_offsets
                     WHERE batch = (SELECT max(batch) FROM {0}_offsets)",
                    self.name
                ),
                &[],
            )
            .await
            .map_err(|e| self.fail(format!("cannot read the last committed batch: {e}")))?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut ends: BTreeMap<String, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
        for row in &rows {
            let topic: String = row.get(2);
            ends.entry(row.get(1))
                .or_default()
                .insert(TopicPartition::new(topic, row.get(3)), row.get(4));
        }
        Ok(Some(SinkCommitted {
            batch: first.get::<_, i64>(0) as u64,
            ends,
        }))
    }

    async fn write_batch(
        &self,
        batch: &BatchToWrite<'_>,
        mut rows: SendableRecordBatchStream,
        _retracted: Vec<datafusion::arrow::array::RecordBatch>,
    ) -> Result<BatchWritten, TopicsError> {
        let mut customers: Vec<String> = Vec::new();
        let mut amounts: Vec<i64> = Vec::new();
        while let Some(b) = rows.next().await {
            let b = b.map_err(|e| self.fail(format!("batch {}: {e}", batch.batch)))?;
            let customer = cast(b.column(0), &DataType::Utf8)?;
            let amount = cast(b.column(1), &DataType::Int64)?;
            let (customer, amount) = (
                customer.as_string::<i32>(),
                amount.as_primitive::<Int64Type>(),
            );
            for i in 0..b.num_rows() {
                if customer.is_valid(i) && amount.is_valid(i) {
                    customers.push(customer.value(i).to_string());
                    amounts.push(amount.value(i));
                }
            }
        }
        let n = batch.batch as i64;
        let pg = |what: &str, e: tokio_postgres::Error| {
            self.fail(format!("batch {}: cannot {what}: {e}", batch.batch))
        };
        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg("begin a transaction", e))?;
        // The runner never asks for a batch the sink committed (it compares committed() with
        // the checkpoint on start). Finding one means a second runner writes here from another
        // checkpoint: stop rather than count its orders twice.
        let done = tx
            .query_opt(
                &format!(
                    "SELECT 1 FROM {}_offsets WHERE batch >= $1 LIMIT 1",
                    self.name
                ),
                &[&n],
            )
            .await
            .map_err(|e| pg("look the batch up", e))?;
        if done.is_some() {
            return Err(self.fail(format!(
                "batch {} (or a later one) is already committed here: is another query \
                 writing to these tables from another checkpoint?",
                batch.batch
            )));
        }
        tx.execute(
            &format!(
                "INSERT INTO {0}_totals AS t (customer, orders, amount)
                 SELECT c, count(*), sum(a) FROM unnest($1::text[], $2::int8[]) AS b(c, a)
                 GROUP BY c
                 ON CONFLICT (customer) DO UPDATE
                 SET orders = t.orders + EXCLUDED.orders, amount = t.amount + EXCLUDED.amount",
                self.name
            ),
            &[&customers, &amounts],
        )
        .await
        .map_err(|e| pg("add to the totals", e))?;
        let insert = format!(
            "INSERT INTO {}_offsets (batch, source, topic, part, start_offset, end_offset)
             VALUES ($1, $2, $3, $4, $5, $6)",
            self.name
        );
        for (table, ranges) in batch.sources {
            for (partition, range) in &ranges.partitions {
                tx.execute(
                    &insert,
                    &[
                        &n,
                        table,
                        &partition.topic.as_ref(),
                        &partition.partition,
                        &range.start,
                        &range.end_or_max(),
                    ],
                )
                .await
                .map_err(|e| pg("record the offsets", e))?;
            }
        }
        tx.commit().await.map_err(|e| pg("commit", e))?;
        Ok(BatchWritten {
            rows: customers.len() as u64,
            already_written: 0,
            tombstones: 0,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, url, topic, checkpoint, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: postgres_sink KAFKA_BOOTSTRAP POSTGRES_URL TOPIC CHECKPOINT [NAME]".into(),
        );
    };
    let name = rest.first().map_or("orders", String::as_str);
    let sink = PostgresTotals::connect(url, name).await?;
    let sql = format!(
        "CREATE EXTERNAL TABLE orders (id BIGINT, customer VARCHAR, amount BIGINT)
         STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{topic}'
         OPTIONS ('value.format' 'json');
         SELECT customer, amount FROM orders"
    );
    let query = ContinuousQuery::from_sql_into(session_context(), &sql, Arc::new(sink)).await?;
    let options = RunOptions {
        checkpoint: checkpoint.clone(),
        trigger: Trigger::AvailableNow,
        limits: Limits {
            max_records: Some(1000),
            max_bytes: None,
        },
        max_batches: None,
        commit_group: None,
        output_mode: None,
    };
    let batches = query.run(&options, |p| println!("{p}")).await?;
    println!("{batches} batches into {}", query.sink());
    Ok(())
}
