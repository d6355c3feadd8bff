-- Formats and bad messages: CSV records, Avro datums whose schema comes from the column list,
-- and what 'value.on-error' does with messages that do not decode.

-- CSV: each message is one record, its fields in the order of the columns.
CREATE EXTERNAL TABLE readings (sensor VARCHAR, celsius DOUBLE, ok BOOLEAN)
STORED AS KAFKA
LOCATION 'kafka:///ex_csv_readings'
OPTIONS ('value.format' 'csv', 'value.csv.delimiter' ';', 'topic.create' 'true');

INSERT INTO readings (sensor, celsius, ok) VALUES ('kitchen', 21.5, true), ('attic', -3.25, false);

-- Another producer writes what it likes to the same topic (here through a 'string' table).
CREATE EXTERNAL TABLE readings_text (value VARCHAR)
STORED AS KAFKA
LOCATION 'kafka:///ex_csv_readings'
OPTIONS ('value.format' 'string');

INSERT INTO readings_text (value) VALUES ('cellar;twelve;true'), ('garage;8.0'), ('porch;11.0;true');

-- 'dead-letter' keeps bad messages as rows with null columns, the reason and the bytes.
CREATE EXTERNAL TABLE readings_checked (sensor VARCHAR, celsius DOUBLE, ok BOOLEAN)
STORED AS KAFKA
LOCATION 'kafka:///ex_csv_readings'
OPTIONS ('value.format' 'csv', 'value.csv.delimiter' ';', 'value.on-error' 'dead-letter',
         'scan.bounded.mode' 'latest-offset');

SELECT _offset, sensor, celsius, ok, _error IS NOT NULL AS bad, arrow_cast(_raw, 'Utf8') AS raw
FROM readings_checked ORDER BY _offset;

SELECT _offset, _error FROM readings_checked WHERE _error IS NOT NULL ORDER BY _offset;

-- 'skip' leaves them out (EXPLAIN ANALYZE counts them as messages_bad).
CREATE EXTERNAL TABLE readings_clean (sensor VARCHAR, celsius DOUBLE, ok BOOLEAN)
STORED AS KAFKA
LOCATION 'kafka:///ex_csv_readings'
OPTIONS ('value.format' 'csv', 'value.csv.delimiter' ';', 'value.on-error' 'skip',
         'scan.bounded.mode' 'latest-offset');

SELECT count(*) AS readings, avg(celsius) AS mean FROM readings_clean;

-- Avro: with a column list and no schema option, the Avro schema is derived from the columns.
CREATE EXTERNAL TABLE orders (id BIGINT, item VARCHAR, qty INT)
STORED AS KAFKA
LOCATION 'kafka:///ex_orders_avro'
OPTIONS ('value.format' 'avro', 'topic.create' 'true', 'scan.bounded.mode' 'latest-offset');

INSERT INTO orders (id, item, qty) VALUES (1, 'tea', 2), (2, 'scones', 6);

SELECT id, item, qty FROM orders ORDER BY id;

-- On the topic: plain Avro datums (each nullable column is a union with null).
CREATE EXTERNAL TABLE orders_bytes
STORED AS KAFKA
LOCATION 'kafka:///ex_orders_avro'
OPTIONS ('scan.bounded.mode' 'latest-offset');

SELECT _offset, value FROM orders_bytes ORDER BY _offset;
