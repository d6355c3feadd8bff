"""Continuous queries: ``INSERT INTO sink SELECT … FROM topic tables`` as checkpointed
micro-batches with exactly-once output, as ``datafusion-topics run`` runs them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from . import _native


class BatchProgress:
    """What one batch did: the object ``datafusion-topics run --progress json`` prints per
    line, with attribute access (``p.batch``, ``p.rows``, ``p.lag``, ``p.sources`` …;
    durations in milliseconds). ``str(p)`` is the CLI's human line."""

    def __init__(self, fields: dict[str, Any], line: str) -> None:
        self._fields = fields
        self._line = line

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, Any]:
        """The progress as a plain dict (a copy)."""
        return dict(self._fields)

    def __str__(self) -> str:
        return self._line

    def __repr__(self) -> str:
        return f"BatchProgress({self._fields!r})"


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)


def _byte_size(value: int | str | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(
            f"max_bytes_per_partition: {value!r} is not a size such as 8m, 512k or 1048576"
        )
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    return int(match.group(1)) * scale


class ContinuousQuery:
    """A continuous query, compiled. Build one with :meth:`from_sql`, then :meth:`run` it."""

    def __init__(self, native: _native.ContinuousQuery) -> None:
        self._native = native

    @classmethod
    def from_sql(cls, sql: str, ddl: str | Iterable[str] | None = None) -> ContinuousQuery:
        """Compiles ``sql``: DDL statements (``CREATE EXTERNAL TABLE … STORED AS KAFKA |
        NATS | PARQUET | JSON``) and one ``INSERT INTO … SELECT`` (what a file for
        ``datafusion-topics run -f`` holds). ``ddl`` adds statements that run first.

        The query runs in a session of the extension module, not in a
        ``datafusion.SessionContext``: a Python session's tables cannot be handed to the
        Rust runner, so the tables it reads and writes are declared in ``sql`` / ``ddl``.
        """
        if ddl is not None:
            if isinstance(ddl, str):
                ddl = [ddl]
            statements = [s.strip().rstrip(";") for s in ddl]
            sql = ";\n".join([*statements, sql])
        return cls(_native.ContinuousQuery.from_sql(sql))

    @property
    def sink(self) -> str:
        """What the query writes to."""
        return self._native.sink

    def run(
        self,
        checkpoint: str,
        trigger: str = "1s",
        *,
        max_records_per_partition: int | None = None,
        max_bytes_per_partition: int | str | None = None,
        max_batches: int | None = None,
        commit_group: str | None = None,
        output_mode: str | None = None,
        on_batch: Callable[[BatchProgress], object] | None = None,
    ) -> int:
        """Runs batches until the trigger says stop, ``max_batches`` is reached, an error,
        or Ctrl-C; returns the number of batches run.

        The options are ``datafusion-topics run``'s: ``checkpoint`` (file:///dir,
        s3://bucket/prefix, memory://name or a directory), ``trigger`` (an interval such as
        ``"500ms"``, ``"10s"``, or ``"available-now"`` / ``"once"``), the per-partition
        rate limits, ``max_batches``, ``commit_group`` (a Kafka consumer group that sees the
        committed offsets, for lag dashboards) and ``output_mode`` (``"append"`` /
        ``"update"``). ``on_batch`` gets a :class:`BatchProgress` after each batch; an
        exception it raises stops the query and is re-raised here.

        Ctrl-C stops the query after the batch in flight (at once when none is) and then
        raises ``KeyboardInterrupt``; a second Ctrl-C stops it at once, and the interrupted
        batch is replayed by the next run, so the output stays exactly-once either way.
        Errors raise :class:`TopicsError` with the Rust crate's message.
        """
        callback = None
        if on_batch is not None:

            def callback(fields: dict[str, Any], line: str) -> None:
                on_batch(BatchProgress(fields, line))

        return self._native.run(
            checkpoint,
            trigger,
            max_records_per_partition=max_records_per_partition,
            max_bytes_per_partition=_byte_size(max_bytes_per_partition),
            max_batches=max_batches,
            commit_group=commit_group,
            output_mode=output_mode,
            on_batch=callback,
        )

    def __repr__(self) -> str:
        return f"ContinuousQuery(into {self.sink})"
