"""Kafka topics and NATS JetStream streams as unbounded tables for DataFusion's Python package.

``datafusion_topics`` brings the tables of the Rust crate `datafusion-topics` to
``datafusion.SessionContext`` (PyPI ``datafusion`` 55) through DataFusion's FFI, and runs its
exactly-once continuous queries from Python::

    import datafusion, datafusion_topics

    ctx = datafusion_topics.session_context()       # or: datafusion_topics.register(ctx)
    ctx.sql(\"\"\"CREATE EXTERNAL TABLE orders (id BIGINT, amount DOUBLE)
               STORED AS KAFKA LOCATION 'kafka://127.0.0.1:9092/orders'
               OPTIONS ('value.format' 'json')\"\"\")
    for batch in ctx.sql("SELECT id, amount FROM orders LIMIT 10").execute_stream():
        print(batch.to_pyarrow())

See docs/python.md in the repository for what the Python API covers.
"""

from __future__ import annotations

import datafusion as _datafusion
import pyarrow as _pyarrow

from . import _native
from ._native import TopicsError, TopicTable, TopicTableFactory
from .query import BatchProgress, ContinuousQuery

__all__ = [
    "BatchProgress",
    "ContinuousQuery",
    "TopicTable",
    "TopicTableFactory",
    "TopicsError",
    "checkpoint_progress",
    "connector_names",
    "register",
    "serve_prometheus",
    "session_context",
    "streaming_settings",
    "table",
]


def connector_names() -> list[str]:
    """The ``STORED AS`` names this build has: ``KAFKA``, ``NATS`` and ``MEMORY``."""
    return list(_native.connector_names())


def streaming_settings() -> dict[str, str]:
    """The session settings topic tables want (the Rust crate's ``STREAMING_SETTINGS``)."""
    return dict(_native.streaming_settings())


def register(ctx: _datafusion.SessionContext, *, settings: bool = True) -> None:
    """Registers ``STORED AS KAFKA | NATS | MEMORY`` in ``ctx``.

    Afterwards ``CREATE EXTERNAL TABLE … STORED AS KAFKA LOCATION 'kafka://…' OPTIONS (…)``
    creates topic tables exactly as in the Rust crate and the ``datafusion-topics`` shell.
    With ``settings`` (the default) the session also gets :func:`streaming_settings` through
    ``SET`` statements.
    """
    factory = TopicTableFactory()
    for name in connector_names():
        ctx.register_table_factory(name, factory)
    if settings:
        for key, value in streaming_settings().items():
            ctx.sql(f"SET {key} = {value}")


def session_context(
    config: _datafusion.SessionConfig | None = None,
) -> _datafusion.SessionContext:
    """A ``datafusion.SessionContext`` with :func:`streaming_settings` and the ``STORED AS``
    factories registered (see :func:`register`)."""
    if config is None:
        config = _datafusion.SessionConfig(streaming_settings())
    else:
        for key, value in streaming_settings().items():
            config = config.set(key, value)
    ctx = _datafusion.SessionContext(config)
    register(ctx, settings=False)
    return ctx


def table(
    location: str,
    columns: object | None = None,
    options: dict[str, str] | None = None,
) -> TopicTable:
    """Opens the topic (or stream) at ``location`` as a table for
    ``ctx.register_table(name, table)``.

    ``columns`` is a SQL column list (``"id BIGINT, amount DOUBLE"``), a pyarrow schema, or
    None (JSON columns inferred from a sample; raw formats have ``value``). ``options`` are
    the table options of ``CREATE EXTERNAL TABLE … OPTIONS`` (docs/options.md), values as
    strings. Raises :class:`TopicsError` for a bad location or option, or a missing topic.
    """
    if options is not None:
        options = {str(k): _option_value(v) for k, v in options.items()}
    return _native.open_table(location, columns, options)


def checkpoint_progress(url: str, batches: int = 20) -> _pyarrow.RecordBatch:
    """The last ``batches`` batches of the checkpoint at ``url``, one row each: what
    ``datafusion-topics status`` shows and ``checkpoint_progress('URL')`` returns in SQL
    (docs/operating.md). Works while the query runs."""
    return _pyarrow.record_batch(_native.checkpoint_progress(url, batches))


def serve_prometheus(addr: str) -> None:
    """Serves Prometheus metrics of this process's topic scans and continuous queries
    (offsets, lag, throughput, batch timings, state; docs/operating.md) at
    ``http://ADDR/metrics``, e.g. ``serve_prometheus("127.0.0.1:9464")``: the CLI's
    ``--metrics-addr``."""
    _native.serve_prometheus(addr)


def _option_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
