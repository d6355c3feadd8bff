//! CREATE EXTERNAL TABLE … STORED AS KAFKA through SQL.

use datafusion::arrow::datatypes::DataType;
use datafusion::physical_plan::ExecutionPlanProperties;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_external_table_with_columns_and_options() {
    let topic = create_topic("ddl", 3).await;
    produce(&topic, &json_messages(30, 3)).await;
    let ctx = datafusion_topics::session_context();
    // Two bootstrap servers (the same broker twice) are accepted.
    let kafka = &brokers().kafka;
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE orders (id BIGINT, name VARCHAR) STORED AS KAFKA \
             LOCATION 'kafka://{kafka},{kafka}/{topic}' \
             OPTIONS ('value.format' 'json', 'scan.startup.mode' 'earliest-offset', 'scan.bounded.mode' 'latest-offset')"
        ),
    )
    .await;
    let b = sql(&ctx, "SELECT count(*), sum(id), max(name) FROM orders").await;
    assert_eq!(sorted_rows(&b), vec!["|30|435|name-9|".to_string()]);
    let b = sql(
        &ctx,
        "SELECT _partition, count(*) FROM orders WHERE _offset < 4 GROUP BY _partition ORDER BY 1",
    )
    .await;
    assert_eq!(sorted_rows(&b), vec!["|0|4|", "|1|4|", "|2|4|"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_columns_are_inferred_from_a_sample() {
    let topic = create_topic("infer", 2).await;
    let mut msgs = json_messages(10, 2);
    msgs.push(TestMessage::value(
        0,
        r#"{"id": 10, "name": "x", "tags": ["a", "b"], "nested": {"ok": true}}"#,
    ));
    produce(&topic, &msgs).await;
    let ctx = datafusion_topics::session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS KAFKA LOCATION '{}' \
             OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset', 'value.json.infer-sample-size' '100')",
            location(&topic)
        ),
    )
    .await;
    let schema = ctx.table("t").await.unwrap().schema().as_arrow().clone();
    assert_eq!(
        schema.field_with_name("id").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        schema.field_with_name("name").unwrap().data_type(),
        &DataType::Utf8
    );
    assert!(matches!(
        schema.field_with_name("tags").unwrap().data_type(),
        DataType::List(_)
    ));
    assert!(matches!(
        schema.field_with_name("nested").unwrap().data_type(),
        DataType::Struct(_)
    ));
    let b = sql(
        &ctx,
        "SELECT count(*), sum(id), count(tags), max(nested['ok']::int) FROM t",
    )
    .await;
    assert_eq!(sorted_rows(&b), vec!["|11|55|1|1|".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_errors_name_the_problem() {
    let topic = create_topic("ddlerr", 1).await;
    let ctx = datafusion_topics::session_context();
    let loc = location(&topic);
    let err = sql_err(&ctx, &format!("CREATE EXTERNAL TABLE a STORED AS KAFKA LOCATION '{loc}' OPTIONS ('scan.startup.mod' 'x')")).await;
    assert!(
        err.contains("scan.startup.mod") && err.contains("valid options"),
        "{err}"
    );
    let err = sql_err(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE b STORED AS KAFKA LOCATION '{loc}' OPTIONS ('partitions' '3')"
        ),
    )
    .await;
    assert!(err.contains("'partitions'"), "{err}");
    let err = sql_err(
        &ctx,
        "CREATE EXTERNAL TABLE c STORED AS KAFKA LOCATION 'kafka://127.0.0.1/x'",
    )
    .await;
    assert!(err.contains("kafka://127.0.0.1/x"), "{err}");
    // Empty topic: nothing to infer from.
    let err = sql_err(&ctx, &format!("CREATE EXTERNAL TABLE d STORED AS KAFKA LOCATION '{loc}' OPTIONS ('value.format' 'json')")).await;
    assert!(err.contains("infer") && err.contains(&topic), "{err}");
    let err = sql_err(&ctx, "CREATE EXTERNAL TABLE e (value INT) STORED AS KAFKA LOCATION 'kafka://127.0.0.1:1/x' OPTIONS ('value.format' 'raw')").await;
    assert!(err.contains("value.format 'raw'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_order_makes_event_time_windows_a_streaming_plan() {
    let topic = create_topic("window", 1).await;
    let ctx = datafusion_topics::session_context();
    let create = |name: &str, order: &str| {
        format!(
            "CREATE UNBOUNDED EXTERNAL TABLE {name} (n BIGINT, _timestamp TIMESTAMP) STORED AS KAFKA \
             {order} LOCATION '{}' OPTIONS ('value.format' 'json')",
            location(&topic)
        )
    };
    sql(&ctx, &create("w", "WITH ORDER (_timestamp ASC)")).await;
    sql(&ctx, &create("plain", "")).await;
    let window = |t: &str| {
        format!("SELECT date_bin(INTERVAL '1 minute', _timestamp), count(*) FROM {t} GROUP BY 1")
    };

    // Declared order: an unbounded plan whose aggregation runs in sorted (streaming) mode.
    let plan = physical_plan(&ctx, &window("w")).await;
    assert!(
        plan.boundedness().is_unbounded(),
        "the table follows the log"
    );
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(text.contains("ordering_mode=Sorted"), "{text}");
    assert!(
        !text.contains("RoundRobinBatch"),
        "no round-robin split of the ordered stream: {text}"
    );

    // Without it the same query needs all of the input and is refused with advice.
    let err = sql_err(&ctx, &window("plain")).await;
    assert!(
        err.contains("unbounded") && err.contains("scan.bounded.mode"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_external_table_stored_as_nats() {
    let js = jetstream().await;
    let stream = create_stream(&js, "ddlnats", &["*"]).await;
    for i in 0..12 {
        publish(
            &js,
            &format!("{stream}.{}", i % 4),
            format!(r#"{{"kind":"k{}","n":{i}}}"#, i % 2),
        )
        .await;
    }
    let ctx = datafusion_topics::session_context();
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE events STORED AS NATS LOCATION '{}' \
             OPTIONS ('value.format' 'json', 'nats.partitioning' 'subject', 'nats.subjects' '{stream}.*', \
                      'scan.bounded.mode' 'latest-offset')",
            nats_location(&stream)
        ),
    )
    .await;
    let b = sql(
        &ctx,
        "SELECT _partition, count(*), sum(n) FROM events GROUP BY _partition ORDER BY 1",
    )
    .await;
    assert_eq!(
        sorted_rows(&b),
        vec!["|0|3|12|", "|1|3|15|", "|2|3|18|", "|3|3|21|"]
    );
    let b = sql(
        &ctx,
        "SELECT kind, count(*) FROM events WHERE _partition IN (1, 3) GROUP BY kind",
    )
    .await;
    assert_eq!(sorted_rows(&b), vec!["|k1|6|".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_windows_close_while_the_stream_is_live() {
    let topic = create_topic("livewindow", 1).await;
    let base = 1_700_000_040_000i64; // a minute boundary
    let msgs: Vec<TestMessage> = (0..600)
        .map(|i| TestMessage {
            timestamp: Some(base + i * 1000),
            ..TestMessage::value(0, format!(r#"{{"n":{i}}}"#))
        })
        .collect();
    produce(&topic, &msgs).await;
    let ctx = datafusion_topics::session_context();
    sql(
        &ctx,
        &format!(
            "CREATE UNBOUNDED EXTERNAL TABLE w (n BIGINT, _timestamp TIMESTAMP) STORED AS KAFKA \
             WITH ORDER (_timestamp ASC) LOCATION '{}' OPTIONS ('value.format' 'json')",
            location(&topic)
        ),
    )
    .await;
    let query = "SELECT date_bin(INTERVAL '1 minute', _timestamp) AS minute, count(*) AS n FROM w GROUP BY 1";
    let plan = physical_plan(&ctx, query).await;
    let mut stream = datafusion::physical_plan::execute_stream(plan, ctx.task_ctx()).unwrap();
    use futures::StreamExt;
    // Ten minutes of data: complete windows come out while the scan keeps following the log.
    let batch = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
        .await
        .expect("a closed window arrives while the stream is open")
        .unwrap()
        .unwrap();
    use datafusion::arrow::array::AsArray;
    let counts = batch
        .column(1)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    assert!(
        batch.num_rows() > 0 && counts.iter().all(|c| c == Some(60)),
        "{counts:?}"
    );
}
