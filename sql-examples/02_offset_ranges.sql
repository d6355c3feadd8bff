-- Offset-range pushdown: predicates on _partition and _offset become per-partition offset
-- ranges inside the scan, so only those messages are fetched from the brokers.

CREATE EXTERNAL TABLE readings (sensor BIGINT, celsius DOUBLE)
STORED AS KAFKA
LOCATION 'kafka:///ex_readings'
OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3');

-- 3000 messages, 1000 per partition.
INSERT INTO readings (sensor, celsius, _partition)
SELECT value % 10, CAST(value % 50 AS DOUBLE) / 2.0, CAST(value % 3 AS INT)
FROM generate_series(0, 2999);

-- No snapshot option here: the predicates alone bound the scan.
SELECT count(*) AS messages, min(_offset) AS first, max(_offset) AS last, avg(celsius) AS mean
FROM readings
WHERE _partition = 1 AND _offset BETWEEN 100 AND 199;

-- The plan shows what is read: partition 1, offsets [100, 200); partition 0 and 2 are not read.
EXPLAIN FORMAT INDENT SELECT sensor FROM readings WHERE _partition = 1 AND _offset BETWEEN 100 AND 199;

-- Disjunctions become several ranges, per partition.
SELECT _partition, count(*) AS messages
FROM readings
WHERE (_partition = 0 AND _offset < 10) OR (_partition = 2 AND _offset BETWEEN 990 AND 999)
GROUP BY _partition ORDER BY _partition;

-- A predicate that cannot match reads nothing and contacts no broker.
SELECT count(*) AS none FROM readings WHERE _offset < 10 AND _offset > 20;
