-- scale-out: a run Citus pushes down to the node holding the row finds
-- its pipeline there (the definitions are reference tables), and its
-- steps take the row as a row of the table, not of the shard
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric, placed date, tags text[],
                     doc jsonb, note text);
SELECT create_distributed_table('orders', 'id', shard_count := 4);
INSERT INTO orders
SELECT g, g * 10.5, date '2026-01-01' + g, ARRAY['t' || g], jsonb_build_object('g', g),
       CASE WHEN g % 5 = 0 THEN NULL ELSE repeat('x', g) END
  FROM generate_series(1, 2000) g;
CREATE FUNCTION big_enough(o orders) RETURNS boolean LANGUAGE sql
    AS $$ SELECT o.amount > 50 $$;
CREATE FUNCTION describe(o orders) RETURNS text LANGUAGE sql
    AS $$ SELECT o.id || ':' || o.amount || ':' || o.placed || ':' || o.tags[1] || ':'
                 || (o.doc->>'g') || ':' || coalesce(length(o.note)::text, 'null') $$;
CREATE FUNCTION echo(j jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT j $$;
CREATE FUNCTION node_port() RETURNS int LANGUAGE sql
    AS $$ SELECT current_setting('port')::int $$;
SELECT choreo_add_step('flow', 'check', 'describe(orders)', 'big_enough(orders)');
SELECT choreo_add_step('flow', 'echo', 'echo(jsonb)');
SELECT choreo_add_step('flow', 'where', 'node_port()');
-- one row: the whole query goes to the worker holding it
SELECT choreo_run('flow', o)->'bag'->'check' AS check,
       choreo_run('flow', o)->'bag'->'echo'->'job'->>'id' AS echoed_id
  FROM orders o WHERE id = 3;
SELECT choreo_run('flow', o)->'bag'->'check'->>'job' AS job FROM orders o WHERE id = 5;
-- every row, on every shard, run on the workers holding them: the same
-- answers as on one server (where Citus itself cannot pass a whole row
-- to a function of the table's row type: describe(o) here fails with
-- "function describe(orders_102043) does not exist")
SELECT current_setting('port') AS coordinator_port \gset
SELECT count(*) AS runs,
       count(*) FILTER (WHERE r->'bag'->'check'->>'job' = described) AS jobs_right,
       count(*) FILTER (WHERE r->'bag'->'check'->>'precheck' = 'false') AS skipped,
       count(*) FILTER (WHERE (r->'bag'->'echo'->'job'->>'id')::bigint = id) AS echoes_right,
       count(DISTINCT r->'bag'->'where'->>'job') AS nodes_that_ran,
       bool_and((r->'bag'->'where'->>'job')::int <> :coordinator_port)
           AS none_on_the_coordinator
  FROM (SELECT o.id, choreo_run('flow', o) AS r,
               o.id || ':' || o.amount || ':' || o.placed || ':' || o.tags[1] || ':'
               || (o.doc->>'g') || ':' || coalesce(length(o.note)::text, 'null') AS described
          FROM orders o) runs;
-- a change to the pipeline reaches the nodes' caches
CREATE FUNCTION stamp(o orders) RETURNS text LANGUAGE sql AS $$ SELECT 'stamped ' || o.id $$;
SELECT choreo_add_step('flow', 'stamp', 'stamp(orders)');
SELECT choreo_run('flow', o)->'bag'->'stamp'->>'job' AS added_step FROM orders o WHERE id = 7;
SELECT choreo_remove_step('flow', 'stamp');
SELECT choreo_run('flow', o)->'bag' ? 'stamp' AS removed_step_still_runs
  FROM orders o WHERE id = 7;
-- a table whose name is too long for Citus to append the shard id: its
-- shards are named with a hash, and still taken for the table
CREATE TABLE orders_with_a_name_long_enough_to_make_citus_hash_shard_names (id bigint PRIMARY KEY, v text);
SELECT create_distributed_table('orders_with_a_name_long_enough_to_make_citus_hash_shard_names', 'id');
INSERT INTO orders_with_a_name_long_enough_to_make_citus_hash_shard_names VALUES (1, 'long');
CREATE FUNCTION long_v(o orders_with_a_name_long_enough_to_make_citus_hash_shard_names)
    RETURNS text LANGUAGE sql AS $$ SELECT o.v $$;
SELECT choreo_add_step('long_flow', 'v', 'long_v(orders_with_a_name_long_enough_to_make_citus_hash_shard_names)');
SELECT choreo_run('long_flow', o)->'bag' AS bag
  FROM orders_with_a_name_long_enough_to_make_citus_hash_shard_names o WHERE id = 1;
SELECT choreo_drop_pipeline('long_flow');
DROP FUNCTION long_v(orders_with_a_name_long_enough_to_make_citus_hash_shard_names);
DROP TABLE orders_with_a_name_long_enough_to_make_citus_hash_shard_names;
-- a step whose type does not match is refused on the worker as on one server
SELECT choreo_add_step('wrong', 'w', 'describe(orders)');
CREATE TABLE others (id bigint PRIMARY KEY);
SELECT create_distributed_table('others', 'id', colocate_with := 'orders');
INSERT INTO others VALUES (3);
SELECT choreo_run('wrong', x) FROM others x WHERE id = 3;
SELECT choreo_drop_pipeline('wrong');
DROP TABLE others;
SELECT choreo_drop_pipeline('flow');
DROP FUNCTION stamp(orders);
DROP FUNCTION big_enough(orders), describe(orders), echo(jsonb), node_port();
DROP TABLE orders;
