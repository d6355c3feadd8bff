"""Continuous queries from Python: exactly-once output across a SIGKILL and a restart, a clean
stop on Ctrl-C, progress objects, and errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import datafusion_topics
from datafusion_topics import TopicsError

RUNNER = Path(__file__).with_name("cq_runner.py")


def source_ddl(bootstrap: str, topic: str) -> str:
    return (
        f"CREATE EXTERNAL TABLE src (id BIGINT, customer VARCHAR, amount DOUBLE) "
        f"STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{topic}' "
        f"OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3')"
    )


def copy_sql(bootstrap: str, source: str, sink: str) -> str:
    return f"""
{source_ddl(bootstrap, source)};
CREATE EXTERNAL TABLE out (id BIGINT, customer VARCHAR, amount DOUBLE)
STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{sink}'
OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '2');
INSERT INTO out (id, customer, amount) SELECT id, customer, amount * 2 FROM src;
"""


def insert(bootstrap: str, topic: str, ids: range) -> None:
    ctx = datafusion_topics.session_context()
    ctx.sql(source_ddl(bootstrap, topic))
    rows = ", ".join(f"({i}, 'c{i % 5}', {i}.0)" for i in ids)
    ctx.sql(f"INSERT INTO src (id, customer, amount) VALUES {rows}").collect()


def output_ids(bootstrap: str, sink: str) -> list[int]:
    table = datafusion_topics.table(
        f"kafka://{bootstrap}/{sink}",
        "id BIGINT, amount DOUBLE",
        {"value.format": "json", "scan.bounded.mode": "latest-offset"},
    )
    ctx = datafusion_topics.session_context()
    ctx.register_table("out", table)
    return sorted(r["id"] for r in ctx.sql("SELECT id FROM out").to_pylist())


def start(sql_file: Path, checkpoint: Path, trigger: str, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(RUNNER), str(sql_file), str(checkpoint), trigger],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_batches(proc: subprocess.Popen, n: int, timeout: float = 120) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout
    while len(seen) < n:
        assert time.monotonic() < deadline, f"only {len(seen)} batches in {timeout}s"
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"runner ended early: {proc.wait()} {proc.stderr.read()}")
        seen.append(json.loads(line))
    return seen


def test_sigkill_and_restart_write_every_row_once(brokers, topic, tmp_path, env):
    bootstrap = brokers["kafka"]
    source, sink = topic + "-in", topic + "-out"
    insert(bootstrap, source, range(300))
    sql_file = tmp_path / "copy.sql"
    sql_file.write_text(copy_sql(bootstrap, source, sink))
    checkpoint = tmp_path / "checkpoint"

    proc = start(sql_file, checkpoint, "200ms", env)
    try:
        wait_for_batches(proc, 3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    insert(bootstrap, source, range(300, 360))

    rerun = subprocess.run(
        [sys.executable, str(RUNNER), str(sql_file), str(checkpoint), "available-now"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip().splitlines()[-1].startswith("DONE"), rerun.stdout
    assert output_ids(bootstrap, sink) == list(range(360))


def test_ctrl_c_stops_after_the_batch_in_flight(brokers, topic, tmp_path, env):
    bootstrap = brokers["kafka"]
    source, sink = topic + "-in", topic + "-out"
    insert(bootstrap, source, range(600))
    sql_file = tmp_path / "copy.sql"
    sql_file.write_text(copy_sql(bootstrap, source, sink))
    checkpoint = tmp_path / "checkpoint"

    proc = start(sql_file, checkpoint, "100ms", env)
    wait_for_batches(proc, 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == "STOPPED", out
    # Every batch the checkpoint planned was committed: nothing is left to replay.
    offsets = sorted(p.name for p in (checkpoint / "offsets").iterdir())
    commits = sorted(p.name for p in (checkpoint / "commits").iterdir())
    assert offsets and offsets == commits


def test_progress_objects_and_options(brokers, topic, tmp_path):
    bootstrap = brokers["kafka"]
    source, sink = topic + "-in", topic + "-out"
    insert(bootstrap, source, range(45))
    query = datafusion_topics.ContinuousQuery.from_sql(
        "INSERT INTO out (id, customer, amount) SELECT id, customer, amount FROM src",
        ddl=copy_sql(bootstrap, source, sink).strip().split(";\n")[:2],
    )
    assert sink in query.sink
    seen: list[datafusion_topics.BatchProgress] = []
    batches = query.run(
        str(tmp_path / "cp"),
        "available-now",
        max_records_per_partition=5,
        on_batch=seen.append,
    )
    # At most 5 offsets per partition per batch: 45 rows over 3 partitions take 3 or more.
    assert batches == len(seen) >= 3
    assert [p.batch for p in seen] == list(range(batches))
    assert sum(p.rows for p in seen) == 45
    assert "src" in seen[0].sources and "batch 0" in str(seen[0])
    assert output_ids(bootstrap, sink) == list(range(45))
    # The checkpoint's recent batches, as `datafusion-topics status` shows them.
    status = datafusion_topics.checkpoint_progress(str(tmp_path / "cp"))
    assert status.column("batch").to_pylist() == list(range(batches))
    assert sum(status.column("rows").to_pylist()) == 45


def test_callback_errors_stop_the_query(brokers, topic, tmp_path):
    bootstrap = brokers["kafka"]
    source, sink = topic + "-in", topic + "-out"
    insert(bootstrap, source, range(30))
    query = datafusion_topics.ContinuousQuery.from_sql(copy_sql(bootstrap, source, sink))

    def fail(progress):
        raise RuntimeError(f"stop at {progress.batch}")

    with pytest.raises(RuntimeError, match="stop at 0"):
        query.run(str(tmp_path / "cp"), "100ms", max_records_per_partition=5, on_batch=fail)


def test_continuous_query_errors(brokers, topic, tmp_path):
    bootstrap = brokers["kafka"]
    with pytest.raises(TopicsError) as raised:
        datafusion_topics.ContinuousQuery.from_sql("SELECT 1")
    assert "INSERT" in str(raised.value)
    insert(bootstrap, topic + "-in", range(3))
    query = datafusion_topics.ContinuousQuery.from_sql(
        copy_sql(bootstrap, topic + "-in", topic + "-out")
    )
    with pytest.raises(TopicsError) as raised:
        query.run(str(tmp_path / "cp"), trigger="sometimes")
    assert "sometimes" in str(raised.value)
    with pytest.raises(ValueError):
        query.run(str(tmp_path / "cp"), max_bytes_per_partition="lots")


def test_a_stateful_query_carries_its_counts_across_batches(brokers, topic, tmp_path):
    bootstrap = brokers["kafka"]
    source, sink = topic + "-in", topic + "-totals"
    insert(bootstrap, source, range(60))  # customers c0 … c4, 12 orders each
    query = datafusion_topics.ContinuousQuery.from_sql(
        f"""
        {source_ddl(bootstrap, source)};
        CREATE EXTERNAL TABLE totals (customer VARCHAR, n BIGINT)
        STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{sink}'
        OPTIONS ('value.format' 'json', 'topic.create' 'true');
        INSERT INTO totals SELECT customer, count(*) FROM src GROUP BY customer
        """
    )
    seen: list[datafusion_topics.BatchProgress] = []
    query.run(
        str(tmp_path / "cp"),
        "available-now",
        max_records_per_partition=5,
        output_mode="update",
        on_batch=seen.append,
    )
    assert len(seen) > 1 and seen[-1].state["groups"] == 5
    # An upsert stream: every batch writes the groups it changed; the last count is the total.
    totals = datafusion_topics.table(
        f"kafka://{bootstrap}/{sink}",
        "customer VARCHAR, n BIGINT",
        {"value.format": "json", "scan.bounded.mode": "latest-offset"},
    )
    ctx = datafusion_topics.session_context()
    ctx.register_table("totals", totals)
    rows = ctx.sql("SELECT customer, max(n) AS n FROM totals GROUP BY customer").to_pylist()
    assert sorted((r["customer"], r["n"]) for r in rows) == [(f"c{i}", 12) for i in range(5)]
