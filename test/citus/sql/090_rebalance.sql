-- scale-out: Citus moves a shard of the entities' colocation group (as a
-- rebalance does).  Their state stays on the old node, so on the new one
-- those entities are refused (55000) rather than begun again from seq 1;
-- choreo_rehome_entities() refuses too while the state is there, and
-- rehomes a moved shard whose entities left nothing behind.
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
CREATE FUNCTION node_of(entity text) RETURNS int LANGUAGE sql
    AS $$ SELECT nodeport FROM pg_dist_placement JOIN pg_dist_node USING (groupid)
           WHERE shardid = get_shard_id_for_distribution_column('choreograph.entity_shards', entity) $$;
CREATE FUNCTION move_entity_shard(entity text, to_port int) RETURNS void LANGUAGE sql
    AS $$ SELECT citus_move_shard_placement(
              get_shard_id_for_distribution_column('choreograph.entity_shards', entity),
              '127.0.0.1', node_of(entity), '127.0.0.1', to_port,
              shard_transfer_mode := 'block_writes') $$;
SELECT choreo_emit_and_wait('moving', 'kept', '{"n": 1}') AS seq;
SELECT node_of('kept') AS home_port,
       (SELECT nodeport FROM pg_dist_node WHERE noderole = 'primary' AND shouldhaveshards
           AND nodeport <> node_of('kept')) AS other_port \gset
-- another entity on the same node, in another shard
SELECT min('fresh-' || g) AS fresh FROM generate_series(1, 1000) g
 WHERE node_of('fresh-' || g) = :home_port
   AND get_shard_id_for_distribution_column('choreograph.entity_shards', 'fresh-' || g)
       <> get_shard_id_for_distribution_column('choreograph.entity_shards', 'kept') \gset
SELECT get_shard_id_for_distribution_column('choreograph.entity_shards', :'fresh') AS fresh_shard \gset
SELECT move_entity_shard('kept', :other_port);
SELECT node_of('kept') = :other_port AS moved;
\set VERBOSITY sqlstate
SELECT choreo_emit_and_wait('moving', 'kept', '{"n": 2}');
SELECT * FROM choreo_events('moving', 'kept');
SELECT choreo_rehome_entities();
\set VERBOSITY default
-- moved back, the entity goes on where its state is
SELECT move_entity_shard('kept', :home_port);
SELECT choreo_emit_and_wait('moving', 'kept', '{"n": 2}') AS seq_after_moving_back;
-- another shard moved: its entities are refused on the new node, and it
-- is not rehomed while the earlier tests' entities of that shard have
-- state on the old node; once that is gone (moved by hand, here dropped)
-- it is, and its entities begin on the new node
SELECT move_entity_shard(:'fresh', :other_port);
\set VERBOSITY sqlstate
SELECT choreo_emit_and_wait('moving', :'fresh', '{"n": 1}');
SELECT choreo_rehome_entities();
\set VERBOSITY default
SELECT sum(r.result::int) > 0 AS rows_dropped_on_the_old_node
  FROM unnest(ARRAY['activity_cursors c USING choreograph.stream_entities s WHERE s.id = c.entity_id AND',
                    'stream_news n USING choreograph.stream_entities s WHERE s.id = n.entity_id AND',
                    'events e USING choreograph.stream_entities s WHERE s.id = e.entity_id AND',
                    'stream_entities s WHERE']) WITH ORDINALITY AS t(target, k),
       LATERAL run_command_on_workers(format(
           $$WITH d AS (DELETE FROM choreograph.%s
                        get_shard_id_for_distribution_column('choreograph.entity_shards', s.entity) = %s
                        RETURNING 1) SELECT count(*) FROM d$$, t.target, :fresh_shard)) r
 WHERE r.nodeport = :home_port;
SELECT sum(r.result::int) > 0 AS eventbox_rows_dropped
  FROM unnest(ARRAY['inbox', 'eventbox_states']) AS t(target),
       LATERAL run_command_on_workers(format(
           $$WITH d AS (DELETE FROM choreograph.%s
                         WHERE get_shard_id_for_distribution_column('choreograph.entity_shards', recipient) = %s
                        RETURNING 1) SELECT count(*) FROM d$$, t.target, :fresh_shard)) r
 WHERE r.nodeport = :home_port;
SELECT choreo_rehome_entities() AS rehomed;
SELECT choreo_emit_and_wait('moving', :'fresh', '{"n": 1}') AS fresh_seq;
SELECT choreo_rehome_entities() AS rehomed_again;
DROP FUNCTION move_entity_shard(text, int), node_of(text);
