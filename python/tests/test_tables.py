"""Topic tables in a ``datafusion.SessionContext``: DDL through the registered factory,
INSERT, bounded and live scans, pushdown, the ``table()`` helper, and errors."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import datafusion
import pyarrow as pa
import pytest

import datafusion_topics
from datafusion_topics import TopicsError


def kafka_ddl(name: str, bootstrap: str, topic: str, extra: str = "") -> str:
    return (
        f"CREATE EXTERNAL TABLE {name} (id BIGINT, customer VARCHAR, amount DOUBLE) "
        f"STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{topic}' "
        f"OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3'{extra})"
    )


def fill(ctx: datafusion.SessionContext, table: str, n: int) -> None:
    rows = ", ".join(f"({i}, 'c{i % 4}', {i}.5)" for i in range(n))
    out = ctx.sql(f"INSERT INTO {table} (id, customer, amount) VALUES {rows}").to_pylist()
    assert out == [{"count": n}]


def test_insert_then_bounded_query_to_arrow_and_pandas(brokers, topic):
    ctx = datafusion_topics.session_context()
    ctx.sql(kafka_ddl("orders", brokers["kafka"], topic))
    fill(ctx, "orders", 30)
    ctx.sql(
        f"CREATE EXTERNAL TABLE snapshot (id BIGINT, customer VARCHAR, amount DOUBLE) "
        f"STORED AS KAFKA LOCATION 'kafka://{brokers['kafka']}/{topic}' "
        f"OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')"
    )
    table = ctx.sql("SELECT id, customer, amount, _partition FROM snapshot").to_arrow_table()
    assert sorted(table.column("id").to_pylist()) == list(range(30))
    assert set(table.column("_partition").to_pylist()) <= {0, 1, 2}
    # A bounded plan may aggregate; pandas as usual.
    df = ctx.sql(
        "SELECT customer, count(*) AS n, sum(amount) AS total FROM snapshot "
        "GROUP BY customer ORDER BY customer"
    ).to_pandas()
    assert list(df["customer"]) == ["c0", "c1", "c2", "c3"]
    assert int(df["n"].sum()) == 30


def test_live_scan_stops_at_limit_and_on_break(brokers, topic):
    ctx = datafusion_topics.session_context()
    ctx.sql(kafka_ddl("orders", brokers["kafka"], topic))
    fill(ctx, "orders", 20)
    # Unbounded table: LIMIT ends the scan.
    rows = ctx.sql("SELECT id FROM orders LIMIT 5").to_pylist()
    assert len(rows) == 5
    # execute_stream() follows the log; leaving the loop ends the query.
    seen = 0
    for batch in ctx.sql("SELECT id, _offset FROM orders").execute_stream():
        seen += batch.to_pyarrow().num_rows
        if seen >= 20:
            break
    assert seen >= 20


def test_pushdown_is_visible_in_explain(brokers, topic):
    ctx = datafusion_topics.session_context()
    ctx.sql(kafka_ddl("orders", brokers["kafka"], topic))
    fill(ctx, "orders", 10)
    plan = ctx.sql(
        "EXPLAIN SELECT id FROM orders WHERE _partition = 1 AND _offset < 2"
    ).to_pandas()
    text = "\n".join(plan["plan"])
    logical = "\n".join(plan[plan["plan_type"] == "logical_plan"]["plan"])
    physical = "\n".join(plan[plan["plan_type"] == "physical_plan"]["plan"])
    # The provider takes both filters as exact: they are the scan's offset ranges, and no
    # FilterExec remains above the (foreign) scan.
    assert "full_filters=" in logical, text
    assert "_partition = " in logical and "_offset < " in logical, text
    assert "TopicScanExec" in physical, text
    assert "FilterExec" not in physical, text
    # And the ranges bound the scan: this query ends without LIMIT.
    rows = ctx.sql("SELECT id FROM orders WHERE _partition = 1 AND _offset < 2").to_pylist()
    assert len(rows) <= 2


def test_table_helper_with_sql_columns_and_pyarrow_schema(brokers, topic):
    ctx = datafusion_topics.session_context()
    ctx.sql(kafka_ddl("orders", brokers["kafka"], topic))
    fill(ctx, "orders", 12)
    location = f"kafka://{brokers['kafka']}/{topic}"
    snap = datafusion_topics.table(
        location,
        "id BIGINT, amount DOUBLE",
        {"value.format": "json", "scan.bounded.mode": "latest-offset"},
    )
    assert "id" in pa.schema(snap).names and "_offset" in pa.schema(snap).names
    plain = datafusion.SessionContext()  # the helper needs no factory or settings
    plain.register_table("snap", snap)
    assert plain.sql("SELECT count(*) AS n FROM snap").to_pylist() == [{"n": 12}]

    by_schema = datafusion_topics.table(
        location,
        pa.schema([("id", pa.int64()), ("customer", pa.string())]),
        {"value.format": "json", "scan.bounded.mode": "latest-offset"},
    )
    plain.register_table("by_schema", by_schema)
    got = plain.sql("SELECT customer FROM by_schema WHERE id = 3").to_pylist()
    assert got == [{"customer": "c3"}]


def test_nats_stream_in_a_plain_session_with_register(brokers, topic):
    ctx = datafusion.SessionContext()
    datafusion_topics.register(ctx)
    setting = "datafusion.optimizer.enable_round_robin_repartition"
    assert ctx.sql(f"SHOW {setting}").to_pylist() == [{"name": setting, "value": "false"}]
    stream = topic.upper().replace("-", "_")
    ctx.sql(
        f"CREATE EXTERNAL TABLE events (id BIGINT, kind VARCHAR) STORED AS NATS "
        f"LOCATION '{brokers['nats']}/{stream}' "
        f"OPTIONS ('value.format' 'json', 'topic.create' 'true')"
    )
    ctx.sql("INSERT INTO events (id, kind) VALUES (1, 'a'), (2, 'b'), (3, 'a')").collect()
    rows = ctx.sql("SELECT id, kind, _offset FROM events WHERE _offset <= 3").to_pylist()
    assert [r["id"] for r in sorted(rows, key=lambda r: r["_offset"])] == [1, 2, 3]


def test_unknown_topic_is_a_clear_error(brokers, topic):
    ctx = datafusion_topics.session_context()
    with pytest.raises(Exception) as raised:
        ctx.sql(
            f"CREATE EXTERNAL TABLE missing (id BIGINT) STORED AS KAFKA "
            f"LOCATION 'kafka://{brokers['kafka']}/{topic}' OPTIONS ('value.format' 'json')"
        )
    assert topic in str(raised.value)
    with pytest.raises(TopicsError) as raised:
        datafusion_topics.table(f"kafka://{brokers['kafka']}/{topic}", "id BIGINT")
    assert topic in str(raised.value)


def test_bad_option_names_the_option(brokers, topic):
    ctx = datafusion_topics.session_context()
    with pytest.raises(Exception) as raised:
        ctx.sql(kafka_ddl("orders", brokers["kafka"], topic, ", 'scan.bounded.mood' 'latest'"))
    assert "scan.bounded.mood" in str(raised.value)
    with pytest.raises(TopicsError) as raised:
        datafusion_topics.table(
            f"kafka://{brokers['kafka']}/{topic}",
            "id BIGINT",
            {"value.format": "json", "scan.bounded.mode": "sometimes", "topic.create": True},
        )
    assert "scan.bounded.mode" in str(raised.value)


def test_secrets_stay_out_of_errors(brokers, topic):
    with pytest.raises(TopicsError) as raised:
        datafusion_topics.table(
            f"nats://127.0.0.1:1/{topic.upper()}",
            "id BIGINT",
            {"nats.password": "hunter2-secret", "nats.user": "me", "connect.timeout": "1s"},
        )
    assert "hunter2-secret" not in str(raised.value)


def test_memory_tables_need_no_broker():
    ctx = datafusion_topics.session_context()
    ctx.sql(
        "CREATE EXTERNAL TABLE m (id BIGINT) STORED AS MEMORY LOCATION 'mem:///py-mem' "
        "OPTIONS ('value.format' 'json', 'topic.create' 'true')"
    )
    ctx.sql("INSERT INTO m (id) VALUES (1), (2)").collect()
    assert ctx.sql("SELECT id FROM m WHERE _offset < 2 ORDER BY id").to_pylist() == [
        {"id": 1},
        {"id": 2},
    ]


def test_ctrl_c_ends_a_live_stream(brokers, topic, env):
    ctx = datafusion_topics.session_context()
    ctx.sql(kafka_ddl("orders", brokers["kafka"], topic))
    fill(ctx, "orders", 3)
    runner = Path(__file__).with_name("live_runner.py")
    location = f"kafka://{brokers['kafka']}/{topic}"
    proc = subprocess.Popen(
        [sys.executable, str(runner), location], stdout=subprocess.PIPE, text=True, env=env
    )
    seen = 0
    while seen < 3:
        line = proc.stdout.readline()
        assert line.startswith("rows "), line
        seen = int(line.split()[1])
    # The stream now waits for messages that do not come; Ctrl-C ends it.
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert out.strip() == "INTERRUPTED 3"


def test_a_bad_message_names_topic_partition_and_offset(brokers, topic):
    ctx = datafusion_topics.session_context()
    location = f"kafka://{brokers['kafka']}/{topic}"
    ctx.sql(
        f"CREATE EXTERNAL TABLE raw STORED AS KAFKA LOCATION '{location}' "
        f"OPTIONS ('value.format' 'string', 'topic.create' 'true', 'topic.partitions' '1')"
    )
    ctx.sql("INSERT INTO raw (value) VALUES ('{\"id\": 1}'), ('not json')").collect()
    ctx.sql(
        f"CREATE EXTERNAL TABLE typed (id BIGINT) STORED AS KAFKA LOCATION '{location}' "
        f"OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset')"
    )
    with pytest.raises(Exception) as raised:
        ctx.sql("SELECT id FROM typed").collect()
    message = str(raised.value)
    assert topic in message and "partition 0" in message and "offset 1" in message, message
