"""Runs a continuous query for the tests: ``python cq_runner.py SQL_FILE CHECKPOINT TRIGGER``.

Prints one JSON line per batch (flushed), ``STOPPED`` when Ctrl-C stopped it, and ``DONE n``
when it finished."""

import json
import signal
import sys

import datafusion_topics

# Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a background job).
signal.signal(signal.SIGINT, signal.default_int_handler)

sql_file, checkpoint, trigger = sys.argv[1:4]
query = datafusion_topics.ContinuousQuery.from_sql(open(sql_file).read())


def report(progress: datafusion_topics.BatchProgress) -> None:
    print(json.dumps({"batch": progress.batch, "rows": progress.rows}), flush=True)


try:
    batches = query.run(
        checkpoint, trigger, max_records_per_partition=10, on_batch=report
    )
except KeyboardInterrupt:
    print("STOPPED", flush=True)
    sys.exit(0)
print(f"DONE {batches}", flush=True)
