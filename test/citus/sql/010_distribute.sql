-- scale-out: choreo_distribute() makes the definitions Citus reference
-- tables, a copy on every node; definitions made before it are kept, and
-- it may be called again (run on the coordinator by test/run)
SET client_min_messages = warning;
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
 WHERE logicalrelid::text LIKE 'choreograph.%' ORDER BY 1::text;
-- a copy on each of the three nodes, with the definition made before
SELECT count(DISTINCT nodeport) AS nodes, min(result) AS steps, max(result)
  FROM run_command_on_placements('choreograph.steps', 'SELECT count(*) FROM %s');
-- the foreign key of steps to pipelines, on every node: dropping a
-- pipeline drops its steps everywhere
SELECT result AS steps_foreign_keys
  FROM run_command_on_all_nodes($$SELECT count(*) FROM pg_constraint
     WHERE conname = 'steps_namespace_pipeline_fkey'$$) ORDER BY nodeid;
SELECT choreo_run('before_distribute')->'bag' AS ran;
SELECT choreo_drop_pipeline('before_distribute');
SELECT result AS steps_left
  FROM run_command_on_placements('choreograph.steps', 'SELECT count(*) FROM %s');
DROP FUNCTION made_before();
DROP ROLE citus_tenant;
