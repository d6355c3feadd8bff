//! Broker-free tests of live windowed aggregations over watermarked memory topics.

use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, TimestampNanosecondType};

use crate::connectors::memory::{MemoryMessage, memory_topic};
use datafusion::prelude::SessionContext;

use crate::session::session_context;

/// Table `w` over a two-partition topic `name`: 600 messages one second apart in partition 0,
/// none in partition 1, event time `_timestamp`, idle after 1 s.
async fn idle_partition_table(name: &str) -> SessionContext {
    let topic = memory_topic(name, 2);
    for i in 0..600i64 {
        topic
            .append(
                0,
                MemoryMessage::value(format!(r#"{{"id":{i}}}"#), i * 1_000),
            )
            .unwrap();
    }
    let ctx = session_context();
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE w (id BIGINT) STORED AS MEMORY LOCATION 'mem:///{name}'
           OPTIONS ('value.format' 'json', 'watermark.column' '_timestamp',
                    'watermark.idle-timeout' '1s')"
    ))
    .await
    .unwrap();
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_window_closes_although_a_partition_is_idle() {
    let name = format!("live-{}", crate::checkpoint::new_id());
    let ctx = idle_partition_table(&name).await;
    let query = "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS w, count(*) AS n FROM w GROUP BY 1 LIMIT 3";
    let plan = ctx
        .sql(&format!("EXPLAIN {query}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(
        text.contains("WatermarkWindowExec: window=60000ms on _timestamp"),
        "{text}"
    );
    let started = Instant::now();
    let batches = tokio::time::timeout(
        Duration::from_secs(20),
        ctx.sql(query).await.unwrap().collect(),
    )
    .await
    .expect("the live windows never closed")
    .unwrap();
    let rows: Vec<(i64, i64)> = batches
        .iter()
        .flat_map(|b| {
            let w = b
                .column(0)
                .as_primitive::<TimestampNanosecondType>()
                .clone();
            let n = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| (w.value(i) / 1_000_000, n.value(i)))
        })
        .collect();
    assert_eq!(rows, vec![(0, 60), (60_000, 60), (120_000, 60)]);
    // Partition 1 held the watermark only until its idle timeout.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_hopping_windows_close_by_the_watermark() {
    let name = format!("live-hop-{}", crate::checkpoint::new_id());
    let ctx = idle_partition_table(&name).await;
    let query =
        "SELECT hop(INTERVAL '30 seconds', INTERVAL '1 minute', _timestamp) AS w, count(*) AS n
                 FROM w GROUP BY 1 LIMIT 4";
    let batches = tokio::time::timeout(
        Duration::from_secs(20),
        ctx.sql(query).await.unwrap().collect(),
    )
    .await
    .expect("the live windows never closed")
    .unwrap();
    let rows: Vec<(i64, i64)> = batches
        .iter()
        .flat_map(|b| {
            let w = arrow::compute::cast(
                b.column(0),
                &arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Millisecond,
                    None,
                ),
            )
            .unwrap();
            let w = w
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .clone();
            let n = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| (w.value(i), n.value(i)))
        })
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    // Events at 0..599 s: the window from -30 s holds 30 of them, later ones 60 each, and
    // the watermark (599 s) has closed every window ending by then.
    for (start, n) in rows {
        assert_eq!(start % 30_000, 0, "{start}");
        assert!(
            start + 60_000 <= 599_000,
            "window {start} emitted before it closed"
        );
        assert_eq!(n, if start < 0 { 30 } else { 60 }, "window {start}");
    }
}
