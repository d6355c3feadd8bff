-- A NATS stream read as a work queue: readers share one durable consumer, every message goes
-- to one of them and is acknowledged once used, so the next query gets only what is left.
-- At-least-once; use the default ordered mode when reads must be repeatable.

CREATE EXTERNAL TABLE jobs (id BIGINT, kind VARCHAR)
STORED AS NATS
LOCATION 'nats:///EX_JOBS'
OPTIONS ('value.format' 'json', 'topic.create' 'true');

INSERT INTO jobs (id, kind) VALUES
  (1, 'resize'), (2, 'email'), (3, 'resize'), (4, 'index'), (5, 'email'), (6, 'resize');

-- Two readers of the durable consumer 'ex_workers' (created here, from the first message);
-- 'latest-offset' reads what is pending and stops.
CREATE EXTERNAL TABLE pending_jobs (id BIGINT, kind VARCHAR)
STORED AS NATS
LOCATION 'nats:///EX_JOBS'
OPTIONS ('value.format' 'json', 'nats.mode' 'work-queue',
         'nats.work-queue.consumer' 'ex_workers', 'nats.work-queue.readers' '2',
         'scan.bounded.mode' 'latest-offset');

SELECT kind, count(*) AS jobs, min(id) AS first, max(id) AS last
FROM pending_jobs GROUP BY kind ORDER BY kind;

-- Those were acknowledged: nothing is pending any more.
SELECT count(*) AS still_pending FROM pending_jobs;

INSERT INTO jobs (id, kind) VALUES (7, 'email'), (8, 'index');

SELECT id, kind, _offset FROM pending_jobs ORDER BY id;

-- The stream keeps every message: the ordered table (bounded here by the _offset filter)
-- still reads all 8, and so would another consumer.
SELECT count(*) AS in_stream FROM jobs WHERE _offset <= 8;
