-- scale-out: choreo_distribute() makes the definitions Citus reference
-- tables, a copy on every node; definitions made before it are kept, and
-- it may be called again (run on the coordinator by test/run)
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
CREATE EXTENSION IF NOT EXISTS choreograph;
CREATE FUNCTION made_before() RETURNS text LANGUAGE sql AS $$ SELECT 'made before' $$;
SELECT choreo_add_step('before_distribute', 'only', 'made_before()');
-- only the superuser (or whom it grants it to) may distribute
CREATE ROLE citus_tenant;
SET ROLE citus_tenant;
\set VERBOSITY sqlstate
SELECT choreo_distribute();
\set VERBOSITY default
RESET ROLE;
SELECT count(*) AS reference_tables_before FROM pg_dist_partition
 WHERE logicalrelid::text LIKE 'choreograph.%';
SELECT choreo_distribute();
SELECT choreo_distribute() AS again;
SELECT logicalrelid, partmethod, repmodel FROM pg_dist_partition
 WHERE logicalrelid::text LIKE 'choreograph.%' ORDER BY logicalrelid::text;
-- a copy on each of the three nodes, with the definition made before
SELECT count(DISTINCT nodeport) AS nodes, min(result) AS steps, max(result)
  FROM run_command_on_placements('choreograph.steps', 'SELECT count(*) FROM %s');
-- the foreign key of steps to pipelines, on every node: dropping a
-- pipeline drops its steps everywhere
SELECT result AS steps_foreign_keys
  FROM run_command_on_all_nodes($$SELECT count(*) FROM pg_constraint
     WHERE conname = 'steps_namespace_pipeline_fkey'$$) ORDER BY nodeid;
-- activity cursors stay each node's own, without their foreign key
SELECT result AS cursor_foreign_keys
  FROM run_command_on_all_nodes($$SELECT count(*) FROM pg_constraint
     WHERE conrelid = 'choreograph.activity_cursors'::regclass AND contype = 'f'$$) ORDER BY nodeid;
-- the entry points taking an entity or a recipient are delegated by it
SELECT objid::regprocedure AS delegated, distribution_argument_index AS by_argument, force_delegation
  FROM pg_dist_object
 WHERE classid = 'pg_proc'::regclass AND objid::regprocedure::text LIKE 'choreo%'
 ORDER BY 1::text;
-- entities are placed colocated with another table only at the first call
CREATE TABLE customers (id text PRIMARY KEY);
SELECT create_distributed_table('customers', 'id', shard_count := 7);
SELECT choreo_distribute('customers');
DROP TABLE customers;
SELECT choreo_run('before_distribute')->'bag' AS ran;
SELECT choreo_drop_pipeline('before_distribute');
SELECT result AS steps_left
  FROM run_command_on_placements('choreograph.steps', 'SELECT count(*) FROM %s');
-- with Citus's local execution off, this node's copy of the definitions
-- is not what Citus wrote in this session: refused (55000), not waited on
SET citus.enable_local_execution = off;
\set VERBOSITY sqlstate
SELECT choreo_run('never_defined');
\set VERBOSITY default
RESET citus.enable_local_execution;
DROP FUNCTION made_before();
DROP ROLE citus_tenant;
