-- scale-out: entity streams and activities through the coordinator.  Each
-- entity lives on the node holding its shard of choreograph.entity_shards:
-- a call of its own is delegated there by Citus (in a transaction block
-- too), a call Citus runs elsewhere is refused with nothing written, and
-- each node's workers run the activities of the entities it holds.
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
SELECT current_setting('port') AS coordinator_port \gset
CREATE TABLE processed (entity text, seqs bigint[], port int);
SELECT create_distributed_table('processed', 'entity', colocate_with := 'choreograph.entity_shards');
CREATE FUNCTION record_batch(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO processed
    SELECT entity, array_agg((e->>'seq')::bigint ORDER BY (e->>'seq')::bigint),
           current_setting('port')::int
      FROM jsonb_array_elements(events) e;
    RETURN choreo_eof((events->-1->>'seq')::bigint);
END $$;
SELECT choreo_create_activity('recorder', 'orders', 'record_batch(text, bigint, jsonb, boolean)');
-- the activity is defined on every node
SELECT result AS activities FROM run_command_on_all_nodes(
    $$SELECT string_agg(name, ',') FROM choreograph.activities$$) ORDER BY nodeid;

-- 200 entities, three events each, every emit a statement of its own
-- (neither they nor their empty results shown)
\set ECHO none
\o /dev/null
SELECT format('SELECT choreo_emit(%L, %L, %L)', 'orders', 'order-' || g,
              jsonb_build_object('n', g, 'k', k))
  FROM generate_series(1, 200) g, generate_series(1, 3) k ORDER BY k, g \gexec
\o
\set ECHO all
-- and in transaction blocks: an entity's emits with the user's own writes
BEGIN;
SELECT choreo_emit('orders', 'order-1', '{"n": 1, "k": 4}');
SELECT choreo_emit_and_wait('orders', 'order-1', '{"n": 1, "k": 5}') AS seq_in_transaction;
COMMIT;
-- each entity's events are numbered from 1 without gaps, in commit order
SELECT seq, payload->>'k' AS k FROM choreo_events('orders', 'order-1');
SELECT count(*) AS events_of_order_2 FROM choreo_events('orders', 'order-2');
-- kept on the workers only, each entity on one node
SELECT count(*) FILTER (WHERE result::int > 0) AS nodes_with_entities, sum(result::int) AS entities
  FROM run_command_on_all_nodes($$SELECT count(*) FROM choreograph.stream_entities$$);
SELECT result::int AS coordinator_entities FROM run_command_on_coordinator(
    $$SELECT count(*) FROM choreograph.stream_entities$$);
-- a statement Citus does not delegate runs on the coordinator: refused
-- (0A000: the message names the node, whose port differs from run to run)
\set VERBOSITY sqlstate
SELECT choreo_emit('orders', 'order-' || g, '{}') FROM generate_series(1, 3) g;
\set VERBOSITY default
SELECT sum(result::int) AS events_after_refusal
  FROM run_command_on_all_nodes($$SELECT count(*) FROM choreograph.events$$);

-- a job of a run Citus pushed down to a worker emits for the entities of
-- that node (a table colocated with entity_shards): here, a seventh event
-- for order-3; for an entity elsewhere it is refused, with nothing written
CREATE TABLE order_rows (entity text PRIMARY KEY, other text);
SELECT create_distributed_table('order_rows', 'entity', colocate_with := 'choreograph.entity_shards');
CREATE FUNCTION node_of(entity text) RETURNS int LANGUAGE sql
    AS $$ SELECT nodeport FROM pg_dist_placement JOIN pg_dist_node USING (groupid)
           WHERE shardid = get_shard_id_for_distribution_column('choreograph.entity_shards', entity) $$;
INSERT INTO order_rows
SELECT 'order-3', min('order-' || g) FROM generate_series(4, 200) g
 WHERE node_of('order-' || g) <> node_of('order-3');
CREATE FUNCTION emit_own(r order_rows) RETURNS void LANGUAGE sql
    AS $$ SELECT choreo_emit('orders', r.entity, '{"from": "a job"}') $$;
CREATE FUNCTION emit_other(r order_rows) RETURNS void LANGUAGE sql
    AS $$ SELECT choreo_emit('orders', r.other, '{"from": "a job"}') $$;
SELECT choreo_add_step('emit_own', 'emit', 'emit_own(order_rows)');
SELECT choreo_add_step('emit_other', 'emit', 'emit_other(order_rows)');
SELECT count(choreo_run('emit_own', r)) AS runs FROM order_rows r WHERE entity = 'order-3';
\set VERBOSITY sqlstate
SELECT count(choreo_run('emit_other', r)) AS runs FROM order_rows r WHERE entity = 'order-3';
\set VERBOSITY default
SELECT count(*) AS events_of_order_3, max(payload->>'from') AS last_from
  FROM choreo_events('orders', 'order-3');
SELECT other AS other_entity FROM order_rows \gset
SELECT count(*) AS events_of_the_other_entity FROM choreo_events('orders', :'other_entity');
SELECT choreo_drop_pipeline('emit_own'), choreo_drop_pipeline('emit_other');
DROP FUNCTION emit_own(order_rows), emit_other(order_rows), node_of(text);
DROP TABLE order_rows;

-- the workers of the node holding each entity ran the activity, in order:
-- wait (at most a minute) for all 604 events
SELECT choreo_emit('orders', 'order-200', '{"last": true}');
DO $$
BEGIN
    FOR i IN 1 .. 1200 LOOP
        EXIT WHEN (SELECT count(*) FROM processed, unnest(seqs)) >= 604;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT count(*) AS events_processed FROM processed, unnest(seqs);
SELECT count(DISTINCT entity) AS entities_processed,
       count(DISTINCT port) AS nodes_that_processed,
       bool_and(port <> :coordinator_port) AS none_on_the_coordinator
  FROM processed;
-- every event processed once, in order, on the entity's node
SELECT count(*) AS entities_in_order
  FROM (SELECT entity, array_agg(s ORDER BY s) AS seqs, count(*) AS n, count(DISTINCT s) AS distinct_n
          FROM processed, unnest(seqs) s GROUP BY entity) p
 WHERE n = distinct_n AND seqs = (SELECT array_agg(g) FROM generate_series(1, n) g);
SELECT choreo_run_activity('recorder', 'order-7') AS nothing_left_for_order_7;
SELECT result AS cursors_caught_up FROM run_command_on_workers(
    $$SELECT count(*) FILTER (WHERE status = 'idle' AND lag = 0) = count(*) FROM choreo_activities$$)
 ORDER BY nodeport;
-- an activity created once the stream has entities starts at once for
-- those of every node (a trigger on each node's copy of the activities),
-- and one without auto_start for an entity on its node (delegated)
CREATE FUNCTION caught_up(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE sql AS $$ SELECT choreo_eof((events->-1->>'seq')::bigint) $$;
SELECT choreo_create_activity('late', 'orders', 'caught_up(text, bigint, jsonb, boolean)');
SELECT choreo_create_activity('picked', 'orders', 'caught_up(text, bigint, jsonb, boolean)',
                              '{"auto_start": false}');
SELECT choreo_start_activity('picked', 'order-9');
SELECT a.name AS activity, sum(r.result::int) AS cursors
  FROM (VALUES ('late'), ('picked')) a(name),
       LATERAL run_command_on_all_nodes(format(
           'SELECT count(*) FROM choreograph.activity_cursors c JOIN choreograph.activities a
              ON a.id = c.activity_id WHERE a.name = %L', a.name)) r
 GROUP BY a.name ORDER BY a.name;
SELECT choreo_drop_activity('late'), choreo_drop_activity('picked');
DROP FUNCTION caught_up(text, bigint, jsonb, boolean);
SELECT choreo_drop_activity('recorder');
SELECT sum(result::int) AS cursors_after_drop
  FROM run_command_on_all_nodes($$SELECT count(*) FROM choreograph.activity_cursors$$);
DROP FUNCTION record_batch(text, bigint, jsonb, boolean);
DROP TABLE processed;
