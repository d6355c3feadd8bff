-- Watermarked windows: a table declares its event-time column; windowed aggregations then
-- close each window once the watermark (the latest event time of every partition that is not
-- idle, minus the delay) passes its end. No WITH ORDER needed, and out-of-order events within
-- the delay are counted in their window.
--
-- Here partition 1 receives nothing: after 'watermark.idle-timeout' it stops holding the
-- watermark back, and the windows of partition 0 close.

CREATE EXTERNAL TABLE readings (sensor VARCHAR, celsius DOUBLE, _partition INT, _timestamp TIMESTAMP)
STORED AS KAFKA
LOCATION 'kafka:///ex_readings'
OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '2',
         'watermark.column' '_timestamp', 'watermark.delay' '30s',
         'watermark.idle-timeout' '1s');

-- 400 readings into partition 0, one every 3 seconds from 2026-01-01 12:00:00 UTC, each a
-- few seconds out of order.
INSERT INTO readings (sensor, celsius, _partition, _timestamp)
SELECT 's' || (value % 4), 20 + (value % 7), 0,
       to_timestamp_millis(1767268800000 + value * 3000 + (value % 5) * 2000)
FROM generate_series(0, 399);

-- Live: the first three minutes, each emitted once the watermark passed its end.
SELECT date_bin(INTERVAL '1 minute', _timestamp) AS minute, count(*) AS readings,
       round(avg(celsius), 2) AS avg_celsius
FROM readings
GROUP BY 1
LIMIT 3;

-- Hopping windows: two minutes long, starting every minute, so each reading is counted in
-- two of them (the first starts at 11:59). The same GROUP BY hop(…) runs live and in
-- continuous queries, where each window is written once the watermark passes its end. Here
-- over a snapshot of the topic, so ORDER BY works.
CREATE EXTERNAL TABLE readings_now (sensor VARCHAR, celsius DOUBLE)
STORED AS KAFKA
LOCATION 'kafka:///ex_readings'
OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');

SELECT hop(INTERVAL '1 minute', INTERVAL '2 minutes', _timestamp) AS window_start,
       count(*) AS readings
FROM readings_now
GROUP BY 1
ORDER BY 1
LIMIT 4;
