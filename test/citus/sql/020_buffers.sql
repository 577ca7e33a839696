-- scale-out: a buffer into a distributed table writes through Citus (its
-- rows land in the shards, on the workers, and every query sees them),
-- as choreo_fire_and_wait always did; run on the coordinator by
-- test/run (the scale-out suite, in PostgreSQL 17's root)
\set ON_ERROR_STOP on
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
CREATE EXTENSION IF NOT EXISTS choreograph;
DROP TABLE IF EXISTS dist_events;
SELECT choreo_drop_buffer(name) FROM choreo_buffers WHERE name = 'dist_buf';
CREATE TABLE dist_events (id bigint, kind text);
SELECT create_distributed_table('dist_events', 'id');
SELECT choreo_create_buffer('dist_buf', 'dist_events');
SELECT count(choreo_fire_forget('dist_buf', jsonb_build_object('id', g, 'kind', 'k' || g)))
  FROM generate_series(1, 1000) g;
SELECT count(*) AS fired_and_seen FROM dist_events;
SELECT choreo_fire_and_wait('dist_buf', '{"id": 1001, "kind": "waited"}')->>'kind' AS waited;
SELECT count(*) AS all_seen FROM dist_events;
-- the rows are in the shards, on both workers
SELECT count(DISTINCT nodeport) AS nodes_holding_rows, sum(result::int) AS rows_in_shards
  FROM run_command_on_placements('dist_events', 'SELECT count(*) FROM %s')
 WHERE result::int > 0;
SELECT choreo_drop_buffer('dist_buf');
DROP TABLE dist_events;
