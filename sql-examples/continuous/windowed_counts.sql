-- A stateful continuous query: run it with
--
--   datafusion-topics run -f sql-examples/continuous/windowed_counts.sql --checkpoint /tmp/cp
--
-- Each minute of clicks is written once to the 'click_minutes' topic, when the watermark
-- (latest click time minus 10 s, over partitions that are not idle) passes the minute's end;
-- clicks that arrive older than the watermark are late: counted, and produced to
-- 'late_clicks'. The open minutes' counts live in the checkpoint (state/N.arrow) between
-- batches, so a restart continues exactly where the last committed batch ended.

CREATE EXTERNAL TABLE clicks (page VARCHAR)
STORED AS KAFKA LOCATION 'kafka:///ex_clicks_stream'
OPTIONS ('value.format' 'json', 'topic.create' 'true', 'topic.partitions' '3',
         'watermark.column' '_timestamp', 'watermark.delay' '10s',
         'watermark.late-topic' 'ex_late_clicks');

CREATE EXTERNAL TABLE click_minutes (minute TIMESTAMP, page VARCHAR, clicks BIGINT)
STORED AS KAFKA LOCATION 'kafka:///ex_click_minutes'
OPTIONS ('value.format' 'json', 'topic.create' 'true');

INSERT INTO click_minutes
SELECT date_bin(INTERVAL '1 minute', _timestamp), page, count(*)
FROM clicks
GROUP BY 1, 2;
