-- The 2M-row "wide" table of the benchmark (see shared notes: anchors). :rows is set by psql -v.
DROP TABLE IF EXISTS wide;
CREATE TABLE wide (
  id bigint PRIMARY KEY,
  name text,
  email varchar(100),
  amount numeric(12,2),
  created_at timestamptz,
  birth date,
  active boolean,
  payload jsonb,
  uid uuid,
  score double precision,
  tags text[],
  updated_at timestamp
);
INSERT INTO wide
SELECT g,
       'name-' || md5(g::text)::varchar(15),
       'user' || g || '@example.com',
       round((random() * 1000000)::numeric, 2),
       timestamptz '2020-01-01 00:00:00+00' + g * interval '17 seconds' + (g % 1000) * interval '1 microsecond',
       date '1950-01-01' + (g % 20000),
       g % 3 = 0,
       jsonb_build_object('k', g, 'nested', jsonb_build_object('a', g % 7, 'b', 'x' || (g % 100), 'list', jsonb_build_array(1, 2, g % 5)), 'flag', g % 2 = 0),
       md5(g::text)::uuid,
       g * 0.5 + 0.25,
       CASE WHEN g % 3 = 0 THEN ARRAY['red', 'green'] ELSE ARRAY['blue', 'tag ' || (g % 10), 'x,y'] END,
       timestamp '2021-06-01 12:00:00' + g * interval '3 seconds'
FROM generate_series(1, :rows) AS g;
VACUUM ANALYZE wide;
