//! The README demo: creates a 3-partition topic of JSON orders on the given brokers, then
//! queries it through datafusion-topics — a bounded snapshot, per-partition offsets, a LIMIT
//! on the unbounded (live) table, and an offset range pushed down into the scan.
//!
//! Run with `scripts/demo.sh` (starts local brokers), or
//! `cargo run --example demo -- 127.0.0.1:9092` against your own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use datafusion_topics::TopicTable;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CUSTOMERS: [&str; 5] = ["ada", "grace", "linus", "margaret", "ken"];

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_string());
    let topic = format!("demo-orders-{}", std::process::id());

    create_topic(&bootstrap, &topic, 3).await?;
    produce_orders(&bootstrap, &topic, 3000).await?;
    println!("created topic {topic} on {bootstrap} with 3000 JSON orders in 3 partitions\n");

    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("customer", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let location = format!("kafka://{bootstrap}/{topic}");
    let ctx = SessionContext::new();

    // A snapshot: each partition ends at its high watermark when the query starts (bounded).
    let snapshot = options(&[
        ("value.format", "json"),
        ("scan.bounded.mode", "latest-offset"),
    ]);
    ctx.register_table(
        "orders",
        Arc::new(TopicTable::open(&location, Arc::clone(&schema), &snapshot).await?),
    )?;
    // The live table: follows the log (unbounded).
    let live = options(&[("value.format", "json")]);
    ctx.register_table(
        "orders_live",
        Arc::new(TopicTable::open(&location, Arc::clone(&schema), &live).await?),
    )?;

    for query in [
        "SELECT _partition, count(*) AS messages, min(_offset) AS first, max(_offset) AS last \
         FROM orders GROUP BY _partition ORDER BY _partition",
        "SELECT customer, count(*) AS orders, round(sum(amount), 2) AS total \
         FROM orders GROUP BY customer ORDER BY total DESC",
        "SELECT id, customer, amount, _partition, _offset, CAST(_key AS VARCHAR) AS key, \
         CAST(_headers['source'] AS VARCHAR) AS source FROM orders_live LIMIT 5",
        "SELECT _partition, _offset, id, customer FROM orders_live \
         WHERE _partition = 1 AND _offset BETWEEN 100 AND 104",
        "EXPLAIN SELECT customer, amount FROM orders_live WHERE _partition = 1 AND _offset BETWEEN 100 AND 104",
    ] {
        println!("> {query}");
        ctx.sql(query).await?.show().await?;
        println!();
    }
    Ok(())
}

fn options(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), BoxError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new_topic], &opts).await? {
        result.map_err(|(t, e)| format!("creating topic {t}: {e}"))?;
    }
    Ok(())
}

async fn produce_orders(bootstrap: &str, topic: &str, n: usize) -> Result<(), BoxError> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()?;
    let mut deliveries = Vec::with_capacity(n);
    for i in 0..n {
        let customer = CUSTOMERS[i % CUSTOMERS.len()];
        let amount = ((i * 37) % 1000) as f64 / 10.0;
        let value = format!(r#"{{"id":{i},"customer":"{customer}","amount":{amount}}}"#);
        let headers = OwnedHeaders::new().insert(Header {
            key: "source",
            value: Some("demo"),
        });
        let record = FutureRecord::to(topic)
            .key(customer)
            .payload(&value)
            .headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for d in deliveries {
        d.await?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(())
}
