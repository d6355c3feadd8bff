"""Kafka topics in DataFusion's Python package, end to end.

    scripts/brokers.sh                         # in another terminal; prints KAFKA_BOOTSTRAP=…
    export KAFKA_BOOTSTRAP=…
    python python/examples/orders.py

Creates a topic with SQL, writes rows with INSERT, reads them as a bounded snapshot into
pandas, follows the live topic with execute_stream(), and runs an exactly-once continuous
query into a second topic.
"""

import os
import tempfile
import uuid

import datafusion_topics

bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
orders = f"orders-{uuid.uuid4().hex[:8]}"
big = f"{orders}-big"

# A DataFusion session with STORED AS KAFKA | NATS and the streaming settings.
ctx = datafusion_topics.session_context()
ctx.sql(f"""
    CREATE EXTERNAL TABLE orders (id BIGINT, customer VARCHAR, amount DOUBLE)
    STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{orders}'
    OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3')
""")
ctx.sql("""
    INSERT INTO orders (id, customer, amount) VALUES
    (1, 'ada', 12.5), (2, 'grace', 300.0), (3, 'ada', 150.0), (4, 'linus', 7.25)
""").collect()

# A bounded snapshot (what the topic holds when the query starts) converts to pandas.
snapshot = datafusion_topics.table(
    f"kafka://{bootstrap}/{orders}",
    "id BIGINT, customer VARCHAR, amount DOUBLE",
    {"value.format": "json", "scan.bounded.mode": "latest-offset"},
)
ctx.register_table("orders_now", snapshot)
print(ctx.sql("SELECT customer, sum(amount) AS total FROM orders_now GROUP BY customer "
              "ORDER BY total DESC").to_pandas())

# The live table follows the log: stream batches and stop when you have seen enough.
seen = 0
for batch in ctx.sql("SELECT id, customer, _partition, _offset FROM orders").execute_stream():
    table = batch.to_pyarrow()
    print(table.to_pylist())
    seen += table.num_rows
    if seen >= 4:
        break

# Pushdown: filters on _partition / _offset become offset ranges in the scan.
print(ctx.sql("EXPLAIN SELECT id FROM orders WHERE _partition = 0 AND _offset < 10")
      .to_pandas().to_string())

# A continuous query: every order above 100 into another topic, exactly once.
query = datafusion_topics.ContinuousQuery.from_sql(f"""
    CREATE EXTERNAL TABLE orders (id BIGINT, customer VARCHAR, amount DOUBLE)
    STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{orders}' OPTIONS ('value.format' 'json');
    CREATE EXTERNAL TABLE big_orders (id BIGINT, customer VARCHAR, cents BIGINT)
    STORED AS KAFKA LOCATION 'kafka://{bootstrap}/{big}'
    OPTIONS ('value.format' 'json', 'topic.create' 'true');
    INSERT INTO big_orders (id, customer, cents)
    SELECT id, customer, CAST(amount * 100 AS BIGINT) FROM orders WHERE amount > 100;
""")
with tempfile.TemporaryDirectory() as checkpoint:
    batches = query.run(checkpoint, trigger="available-now", on_batch=print)
print(f"{batches} batch(es) into {query.sink}")
