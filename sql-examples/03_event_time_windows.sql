-- Event-time windows: one-minute tumbling windows over _timestamp.
--
-- The message timestamps here are set by the writer (_timestamp in the INSERT), in order, so
-- WITH ORDER (_timestamp) is true and the windowed aggregate streams on the unbounded table:
-- each window is emitted as soon as a later one begins. Declare WITH ORDER only when it
-- holds: per-partition offsets always are ordered; timestamps are for log-append-time topics
-- or producers that write in time order.

CREATE EXTERNAL TABLE clicks (page VARCHAR, ms BIGINT, _timestamp TIMESTAMP)
STORED AS KAFKA
LOCATION 'kafka:///ex_clicks'
WITH ORDER (_timestamp)
OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '1');

-- 600 clicks, one every 2 seconds from 2026-01-01 12:00:00 UTC: 30 per minute, 20 minutes.
INSERT INTO clicks (page, ms, _timestamp)
SELECT CASE WHEN value % 3 = 0 THEN '/home' ELSE '/cart' END,
       value % 400,
       to_timestamp_millis(1767268800000 + value * 2000)
FROM generate_series(0, 599);

-- Streaming on the unbounded table: the first five windows arrive while the scan stays open;
-- the LIMIT then ends the query.
SELECT date_bin(INTERVAL '1 minute', _timestamp) AS minute, count(*) AS clicks, max(ms) AS slowest
FROM clicks
GROUP BY date_bin(INTERVAL '1 minute', _timestamp)
LIMIT 5;

-- _timestamp predicates seek: the scan starts at the first message at or after 12:15.
SELECT date_bin(INTERVAL '5 minutes', _timestamp) AS five_minutes, page, count(*) AS clicks
FROM clicks
WHERE _timestamp >= TIMESTAMP '2026-01-01T12:15:00Z' AND _offset < 600
GROUP BY 1, 2 ORDER BY 1, 2;
