//! Embedding with SQL DDL: a `SessionContext` with the `STORED AS KAFKA | NATS` factories
//! registered, a table declared with `CREATE EXTERNAL TABLE`, written with `INSERT INTO` and
//! read back — first as a snapshot, then live with a LIMIT.
//!
//! `cargo run --example embedded_sql -- 127.0.0.1:9092` (any Kafka-compatible brokers).

use datafusion::error::Result;
use datafusion_topics::session_context;

#[tokio::main]
async fn main() -> Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_string());
    let topic = format!("embedded-sql-{}", std::process::id());

    // session_context() = DataFusion's defaults + the topic-table factories + streaming
    // settings. With your own SessionStateBuilder, use session_state_builder(config).
    let ctx = session_context();
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE payments (id BIGINT, payer VARCHAR, cents BIGINT)
         STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{topic}'
         OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '2')"
    ))
    .await?;
    ctx.sql(
        "INSERT INTO payments (id, payer, cents, _partition)
         SELECT value, CASE WHEN value % 2 = 0 THEN 'ada' ELSE 'grace' END, value * 100,
                CAST(value % 2 AS INT)
         FROM generate_series(1, 100)",
    )
    .await?
    .show()
    .await?;

    // A snapshot of what exists now: bounded, so it can be aggregated and sorted.
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE payments_now (id BIGINT, payer VARCHAR, cents BIGINT)
         STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{topic}'
         OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')"
    ))
    .await?;
    ctx.sql(
        "SELECT payer, count(*) AS payments, sum(cents) / 100.0 AS total
         FROM payments_now GROUP BY payer ORDER BY payer",
    )
    .await?
    .show()
    .await?;

    // The live table: LIMIT ends the query once five rows of partition 1 arrived.
    ctx.sql("SELECT id, payer, _offset FROM payments WHERE _partition = 1 LIMIT 5")
        .await?
        .show()
        .await?;
    Ok(())
}
