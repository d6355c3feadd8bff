//! Section 7: a one-partition topic scanned whole, unsplit and split (`scan.split.*`), beside a
//! bare consumer reading it: what splitting buys a backfill of a topic with fewer partitions
//! than cores.

use datafusion::prelude::SessionContext;
use futures::FutureExt;

use crate::common::*;
use crate::harness::*;
use crate::throughput::*;

pub(crate) async fn split_scan(messages: u64, runs: usize) -> String {
    let topic = create_topic("e2e-split", 1).await;
    eprintln!("producing {messages} messages to one-partition kafka topic {topic}");
    fill_kafka_into(&topic, 1, messages, |i| {
        (payload(i, 1_700_000_000_000_000 + i), None)
    })
    .await;
    let n = messages as i64;
    let query = |name: &'static str, ctx: SessionContext| -> Contender {
        let run = move || {
            let c = ctx.clone();
            async move { assert_eq!(single_i64(&c, DECODE_QUERY).await, n) }.boxed()
        };
        (name, Box::new(run))
    };
    let quarter = messages.div_ceil(4).max(1).to_string();
    let unsplit = table(&topic, &[]).await;
    let auto = table(&topic, &[("scan.split.min-partitions", "auto")]).await;
    let four = table(&topic, &[("scan.split.max-messages", quarter.as_str())]).await;
    let rows = measure_interleaved(
        runs,
        vec![
            raw_kafka_contender(
                "(a) raw rdkafka BaseConsumer, 1 partition",
                &topic,
                1,
                messages,
            ),
            query("(b) decoding scan, unsplit", unsplit),
            query("(c) decoding scan, split.min-partitions auto", auto),
            query("(d) decoding scan, split in 4 pieces", four),
        ],
    )
    .await;
    throughput_table(
        &format!(
            "7. One-partition topic, {messages} messages (~200 B JSON): unsplit vs split scans; wall = median of {runs}, cpu = mean per run"
        ),
        messages,
        &rows,
    )
}

/// A snapshot table over `topic` with `extra` options.
async fn table(topic: &str, extra: &[(&str, &str)]) -> SessionContext {
    let mut pairs = vec![
        ("value.format", "json"),
        ("scan.bounded.mode", "latest-offset"),
    ];
    pairs.extend_from_slice(extra);
    kafka_table(topic, value_schema(), &pairs).await
}
