-- scale-out: choreo_capture on a distributed table fires on the workers.
-- Into a buffer whose table is a Citus table the write would have to go
-- through Citus from a query on a shard, which Citus refuses at commit:
-- the first fire is refused, with nothing written.  Into a table each
-- node has of its own, each worker keeps the changes of its shards.
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
CREATE TABLE items (id bigint PRIMARY KEY, name text);
SELECT create_distributed_table('items', 'id', shard_count := 4);
CREATE TABLE item_changes (id bigserial, payload jsonb);
SELECT create_distributed_table('item_changes', 'id');
SELECT choreo_create_buffer('item_changes', 'item_changes', 100);
SET citus.enable_unsafe_triggers = on;
CREATE TRIGGER capture_items AFTER INSERT OR UPDATE OR DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('item_changes');
RESET citus.enable_unsafe_triggers;
INSERT INTO items VALUES (1, 'one');
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(2, 1000) g;
SELECT (SELECT count(*) FROM items) AS items, (SELECT count(*) FROM item_changes) AS changes;
-- fired on the coordinator, the same buffer writes through Citus
SELECT choreo_fire_forget('item_changes', '{"payload": {"op": "by hand"}}');
SELECT count(*) AS changes_by_hand FROM item_changes;
-- a table only the coordinator has: the buffer's definition, written on
-- every node, is refused by Citus on the first node that lacks it (42P01)
CREATE TABLE coordinator_only (payload jsonb);
\set VERBOSITY sqlstate
SELECT choreo_create_buffer('coordinator_only', 'coordinator_only');
\set VERBOSITY default
SELECT count(*) AS buffers_named_so FROM choreo_buffers WHERE name = 'coordinator_only';
DROP TABLE coordinator_only;
-- a table of each node's own (the same name on every node, not a Citus table)
SELECT result FROM run_command_on_all_nodes(
    'CREATE TABLE public.node_changes (id bigserial, payload jsonb, port int DEFAULT current_setting(''port'')::int)');
SELECT choreo_create_buffer('node_changes', 'node_changes', 100);
SET citus.enable_unsafe_triggers = on;
DROP TRIGGER capture_items ON items;
CREATE TRIGGER capture_items AFTER INSERT OR UPDATE OR DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('node_changes');
RESET citus.enable_unsafe_triggers;
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 2000) g;
UPDATE items SET name = name || '!' WHERE id <= 10;
DELETE FROM items WHERE id > 1990;
SELECT count(*) AS workers_with_changes, sum(result::int) AS changes
  FROM run_command_on_workers('SELECT count(*) FROM public.node_changes') WHERE result::int > 0;
SELECT sum(result::int) AS envelopes_naming_the_table
  FROM run_command_on_workers($$SELECT count(*) FROM public.node_changes
                                 WHERE payload->>'table' = 'public.items'$$);
SELECT op, sum(result::int) AS changes
  FROM unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) AS op,
       LATERAL run_command_on_workers(format(
           'SELECT count(*) FROM public.node_changes WHERE payload->>''op'' = %L', op))
 GROUP BY op ORDER BY op;
SELECT count(*) AS nothing_on_the_coordinator FROM node_changes;
DROP TABLE items;
SELECT choreo_drop_buffer('item_changes'), choreo_drop_buffer('node_changes');
DROP TABLE item_changes;
SELECT result FROM run_command_on_all_nodes('DROP TABLE public.node_changes');
