-- Quickstart: declare a Kafka topic as a table, write to it, and query a snapshot of it.
--
-- Run: datafusion-topics -f sql-examples/01_quickstart.sql
-- with KAFKA_BOOTSTRAP set to your brokers (scripts/brokers.sh starts Apache Kafka and prints it):
-- 'kafka:///topic' takes the brokers from KAFKA_BOOTSTRAP; 'kafka://host:9092/topic' names them.

-- The live table: unbounded, it follows the log. 'topic.create' creates the topic if missing.
CREATE EXTERNAL TABLE orders (id BIGINT, customer VARCHAR, amount DOUBLE)
STORED AS KAFKA
LOCATION 'kafka:///ex_orders'
OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3');

-- INSERT produces one JSON message per row; _partition picks the partition (NULL: by key).
INSERT INTO orders (id, customer, amount, _partition, _key) VALUES
  (1, 'ada', 12.5, 0, X'61'), (2, 'grace', 3.0, 1, X'67'), (3, 'ada', 7.25, 0, X'61'),
  (4, 'linus', 20.0, 2, X'6c'), (5, 'grace', 1.5, 1, X'67'), (6, 'ken', 9.0, 2, X'6b'),
  (7, 'ada', 4.0, 0, X'61'), (8, 'margaret', 30.0, 1, X'6d'), (9, 'ken', 2.5, 2, X'6b');

-- A snapshot: each partition ends at its high watermark when the query starts (bounded),
-- so count(*), GROUP BY and ORDER BY work.
CREATE EXTERNAL TABLE orders_now (id BIGINT, customer VARCHAR, amount DOUBLE)
STORED AS KAFKA
LOCATION 'kafka:///ex_orders'
OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');

SELECT count(*) AS orders, sum(amount) AS revenue FROM orders_now;

-- Per-partition offsets: what Spark calls the offset ranges of a batch.
SELECT _partition, min(_offset) AS first, max(_offset) AS last, count(*) AS messages
FROM orders_now GROUP BY _partition ORDER BY _partition;

SELECT customer, count(*) AS orders, sum(amount) AS total
FROM orders_now GROUP BY customer ORDER BY total DESC;

-- Metadata columns: _topic, _partition, _offset, _timestamp, _key, _headers.
SELECT id, _topic, _partition, _offset, arrow_cast(_key, 'Utf8') AS key
FROM orders_now WHERE customer = 'ada' ORDER BY id;

-- On the live table a LIMIT ends the query once enough rows arrived (here: right away).
SELECT id, customer FROM orders WHERE _partition = 1 LIMIT 3;
