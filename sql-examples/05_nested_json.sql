-- Nested JSON: objects, arrays and nulls. Without a column list, the columns are inferred
-- from the newest messages ('value.json.infer-sample-size', default 1000).

-- Write raw JSON documents through a 'string' table over the same topic.
CREATE EXTERNAL TABLE shipments_text (value VARCHAR)
STORED AS KAFKA
LOCATION 'kafka:///ex_shipments'
OPTIONS ('value.format' 'string', 'topic.create' 'true');

INSERT INTO shipments_text (value) VALUES
  ('{"id": 1, "customer": {"name": "ada", "tier": "gold"}, "items": [{"sku": "A1", "qty": 2}, {"sku": "B7", "qty": 1}], "note": null}'),
  ('{"id": 2, "customer": {"name": "grace", "tier": "silver"}, "items": [{"sku": "A1", "qty": 5}], "note": "fragile"}'),
  ('{"id": 3, "customer": {"name": "linus", "tier": null}, "items": [], "note": null}');

CREATE EXTERNAL TABLE shipments
STORED AS KAFKA
LOCATION 'kafka:///ex_shipments'
OPTIONS ('value.format' 'json', 'scan.bounded.mode' 'latest-offset');

-- The inferred columns (metadata columns follow the value columns).
SELECT column_name, data_type FROM information_schema.columns
WHERE table_name = 'shipments' AND column_name NOT LIKE '\_%' ORDER BY ordinal_position;

SELECT id, customer['name'] AS name, customer['tier'] AS tier, array_length(items) AS lines, note
FROM shipments ORDER BY id;

-- One row per item.
SELECT id, item['sku'] AS sku, item['qty'] AS qty
FROM (SELECT id, unnest(items) AS item FROM shipments)
ORDER BY id, sku;
