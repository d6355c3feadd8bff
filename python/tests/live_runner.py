"""Follows a live topic for the tests: ``python live_runner.py LOCATION``. Prints ``rows n``
per batch (flushed) and ``INTERRUPTED n`` when Ctrl-C ends the stream."""

import signal
import sys

import datafusion_topics

signal.signal(signal.SIGINT, signal.default_int_handler)
ctx = datafusion_topics.session_context()
ctx.register_table("live", datafusion_topics.table(sys.argv[1], "id BIGINT", {"value.format": "json"}))
seen = 0
try:
    for batch in ctx.sql("SELECT id FROM live").execute_stream():
        seen += batch.to_pyarrow().num_rows
        print(f"rows {seen}", flush=True)
except KeyboardInterrupt:
    print(f"INTERRUPTED {seen}", flush=True)
