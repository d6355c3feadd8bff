//! Section 2: `LIMIT 10` latency on unbounded tables, over stored data and on a live tail.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::common::*;
use crate::harness::*;

pub(crate) struct Latencies {
    pub(crate) what: String,
    pub(crate) samples: Vec<Duration>,
    pub(crate) note: String,
}

impl Latencies {
    /// A live-tail row from `limit_on_live_tail`'s samples and count of early endings.
    fn live_tail(what: String, (samples, early): (Vec<Duration>, usize)) -> Self {
        let note = if early > 0 {
            format!("({early} ended before the 10th ack)")
        } else {
            String::new()
        };
        Self {
            what,
            samples,
            note,
        }
    }
}

pub(crate) fn latency_table(title: &str, rows: &[Latencies]) -> String {
    let mut out = format!("{title}\n");
    writeln!(
        out,
        "  {:<64} {:>5} {:>10} {:>10} {:>10}",
        "", "runs", "min", "median", "max"
    )
    .unwrap();
    for r in rows {
        let mut s = r.samples.clone();
        s.sort();
        writeln!(
            out,
            "  {:<64} {:>5} {:>10.1?} {:>10.1?} {:>10.1?} {}",
            r.what,
            s.len(),
            s[0],
            s[s.len() / 2],
            s[s.len() - 1],
            r.note
        )
        .unwrap();
    }
    out
}

pub(crate) async fn limit_over_data(ctx: &SessionContext, runs: usize) -> Vec<Duration> {
    let q = "SELECT * FROM t LIMIT 10";
    assert_eq!(rows(&sql(ctx, q).await), 10);
    let mut out = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        assert_eq!(rows(&sql(ctx, q).await), 10);
        out.push(t.elapsed());
    }
    out
}

/// Starts `SELECT * FROM t LIMIT 10` on a live tail, waits `settle`, runs `produce10` (which
/// returns when the 10th message is acknowledged) and returns the time from then to the end
/// of the query (zero when the query ended first, counted in the second value).
pub(crate) async fn limit_on_live_tail<F, Fut>(
    ctx: &SessionContext,
    runs: usize,
    mut produce10: F,
) -> (Vec<Duration>, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::new();
    let mut early = 0;
    for run in 0..=runs {
        let stream = ctx
            .sql("SELECT * FROM t LIMIT 10")
            .await
            .unwrap()
            .execute_stream()
            .await
            .unwrap();
        let collector = tokio::spawn(async move {
            let mut stream = stream;
            let mut n = 0;
            while let Some(b) = stream.next().await {
                n += b.expect("live LIMIT 10").num_rows();
            }
            (n, Instant::now())
        });
        // Let the readers connect and reach the end of the log.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        produce10().await;
        let acked = Instant::now();
        let (n, done) = tokio::time::timeout(Duration::from_secs(30), collector)
            .await
            .expect("live LIMIT 10 did not finish within 30 s")
            .unwrap();
        assert_eq!(n, 10);
        if run == 0 {
            continue; // warm-up
        }
        if done < acked {
            early += 1;
        }
        out.push(done.saturating_duration_since(acked));
    }
    (out, early)
}

pub(crate) async fn kafka_latency(data_topic: &str, runs: usize) -> Vec<Latencies> {
    let mut out = Vec::new();
    let ctx = kafka_table(data_topic, value_schema(), &[("value.format", "json")]).await;
    out.push(Latencies {
        what: "Kafka (i) topic holds data, earliest-offset: query wall time".into(),
        samples: limit_over_data(&ctx, runs).await,
        note: String::new(),
    });

    let mut raw = Vec::new();
    for _ in 0..=runs {
        let topic = data_topic.to_string();
        let t = Instant::now();
        tokio::task::spawn_blocking(move || raw_kafka_first(&topic, 10))
            .await
            .unwrap();
        raw.push(t.elapsed());
    }
    raw.remove(0);
    out.push(Latencies {
        what: "Kafka (i) reference: bare rdkafka consumer, first 10 messages".into(),
        samples: raw,
        note: String::new(),
    });

    let tail = create_topic("e2e-tail", PARTITIONS).await;
    let producer = kafka_producer(0);
    let produce10 = || {
        let producer = producer.clone();
        let tail = tail.clone();
        async move {
            let mut fs = Vec::new();
            for i in 0..10u64 {
                let v = payload(i, now_us());
                fs.push(send_kafka(&producer, &tail, (i % 3) as i32, v.as_bytes()).await);
            }
            for f in fs {
                await_delivery(f).await;
            }
        }
    };
    // The same with a bare consumer at the end of the log.
    let mut raw = Vec::new();
    for run in 0..=runs {
        let topic = tail.clone();
        let reader = tokio::task::spawn_blocking(move || raw_kafka_tail(&topic, 10));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        produce10().await;
        let acked = Instant::now();
        let done = reader.await.unwrap();
        if run > 0 {
            raw.push(done.saturating_duration_since(acked));
        }
    }
    out.push(Latencies {
        what: "Kafka (ii) reference: bare rdkafka consumer at the end: 10th ack -> 10th msg".into(),
        samples: raw,
        note: String::new(),
    });
    for (label, extra) in [
        ("", None),
        (
            ", kafka.fetch.wait.max.ms=10",
            Some(("kafka.fetch.wait.max.ms", "10")),
        ),
    ] {
        let mut pairs = vec![
            ("value.format", "json"),
            ("scan.startup.mode", "latest-offset"),
        ];
        pairs.extend(extra);
        let ctx = kafka_table(&tail, value_schema(), &pairs).await;
        out.push(Latencies::live_tail(
            format!("Kafka (ii) empty live tail, latest-offset{label}: 10th ack -> end"),
            limit_on_live_tail(&ctx, runs, produce10).await,
        ));
    }
    out
}

pub(crate) async fn nats_latency(
    js: &jetstream::Context,
    data_stream: &str,
    runs: usize,
) -> Vec<Latencies> {
    let mut out = Vec::new();
    let subjects = subject_list(data_stream);
    let ctx = nats_table(
        data_stream,
        value_schema(),
        &[("value.format", "json"), ("nats.subjects", &subjects)],
    )
    .await;
    out.push(Latencies {
        what: "NATS (i) stream holds data, earliest-offset: query wall time".into(),
        samples: limit_over_data(&ctx, runs).await,
        note: String::new(),
    });

    let tail = create_stream(js, "E2E_TAIL", &["0", "1", "2"]).await;
    let tail_subjects = subject_list(&tail);
    let ctx = nats_table(
        &tail,
        value_schema(),
        &[
            ("value.format", "json"),
            ("nats.subjects", &tail_subjects),
            ("scan.startup.mode", "latest-offset"),
        ],
    )
    .await;
    let produce10 = || {
        let js = js.clone();
        let tail = tail.clone();
        async move {
            let mut acks = Vec::new();
            for i in 0..10u64 {
                acks.push(
                    js.publish(format!("{tail}.{}", i % 3), payload(i, now_us()).into())
                        .await
                        .expect("publish"),
                );
            }
            for a in acks {
                a.await.expect("publish ack");
            }
        }
    };
    out.push(Latencies::live_tail(
        "NATS (ii) empty live tail, latest-offset: 10th ack -> end".into(),
        limit_on_live_tail(&ctx, runs, produce10).await,
    ));
    out
}
