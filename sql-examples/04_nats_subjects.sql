-- A NATS JetStream stream partitioned by subject: partition i reads subject events.<i>
-- through its own ordered consumer; _offset is the stream sequence (gaps are normal).
--
-- 'nats:///STREAM' takes the servers from NATS_URL; 'nats://host:4222/STREAM' names them.

CREATE EXTERNAL TABLE events (kind VARCHAR, n BIGINT)
STORED AS NATS
LOCATION 'nats:///EX_EVENTS'
OPTIONS ('value.format' 'json', 'nats.subjects' 'ex_events.*', 'topic.create' 'true');

-- Without _subject, a row of partition p is published on ex_events.<p>.
INSERT INTO events (kind, n, _partition)
SELECT CASE WHEN value % 2 = 0 THEN 'view' ELSE 'buy' END, value, CAST(value % 4 AS INT)
FROM generate_series(1, 40);

CREATE EXTERNAL TABLE events_now (kind VARCHAR, n BIGINT)
STORED AS NATS
LOCATION 'nats:///EX_EVENTS'
OPTIONS ('value.format' 'json', 'nats.subjects' 'ex_events.*', 'scan.bounded.mode' 'latest-offset');

SELECT _partition, _subject, count(*) AS messages, min(_offset) AS first, max(_offset) AS last
FROM events_now GROUP BY _partition, _subject ORDER BY _partition;

-- Sequence pushdown works per subject too: partition 3 from sequence 20 on.
SELECT _offset, kind, n FROM events_now WHERE _partition = 3 AND _offset >= 20 ORDER BY _offset;

SELECT kind, sum(n) AS total FROM events_now GROUP BY kind ORDER BY kind;
