/* choreograph 0.6 -> 0.7: scale-out on Citus (docs/scaling.md) */

\echo Use "ALTER EXTENSION choreograph UPDATE TO '0.7'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- choreo_distribute(): on a Citus coordinator, makes the definitions of
-- pipelines and buffers Citus reference tables, so that every node holds
-- them and a change reaches all nodes in one distributed transaction.  A
-- run or a trigger Citus pushes down to the node holding a row then finds
-- its pipeline there; the extension reads each node's own copy (the
-- shard), shared/citus_tables.c says why.
--
-- The tables are the extension's: Citus creates no shell tables for them
-- on the workers (CREATE EXTENSION, which Citus runs on every node, made
-- them there), only the shards.  The foreign key of steps to pipelines is
-- dropped while both are converted (Citus would otherwise convert steps
-- through it as a local table, recreating the extension's views) and made
-- again between the reference tables, on every node.  The triggers go
-- with the tables onto the shards, which Citus allows only when told:
-- they touch nothing but the node's own definition caches and rows.
-- Idempotent; superuser or the extension's owner, on the coordinator.
-- ---------------------------------------------------------------------------
CREATE FUNCTION choreo_distribute() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    t text;
    converted boolean := false;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'choreo_distribute() needs the citus extension in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run CREATE EXTENSION citus on the coordinator first.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_node) THEN
        RAISE EXCEPTION 'choreo_distribute() needs a Citus cluster'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the coordinator with citus_set_coordinator_host() and the workers with citus_add_node() first.';
    END IF;
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    FOREACH t IN ARRAY ARRAY['pipelines', 'steps', 'buffers'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                        WHERE logicalrelid = pg_catalog.format('choreograph.%I', t)::regclass) THEN
            IF NOT converted THEN
                ALTER TABLE choreograph.steps DROP CONSTRAINT IF EXISTS steps_namespace_pipeline_fkey;
                converted := true;
            END IF;
            PERFORM create_reference_table(pg_catalog.format('choreograph.%I', t)::regclass);
            PERFORM truncate_local_data_after_distributing_table(
                pg_catalog.format('choreograph.%I', t)::regclass);
        END IF;
    END LOOP;
    IF converted THEN
        -- on the workers' copies of the extension's tables too
        ALTER TABLE choreograph.steps DROP CONSTRAINT IF EXISTS steps_namespace_pipeline_fkey;
        ALTER TABLE choreograph.steps ADD CONSTRAINT steps_namespace_pipeline_fkey
            FOREIGN KEY (namespace, pipeline) REFERENCES choreograph.pipelines (namespace, name)
            ON DELETE CASCADE;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION choreo_distribute() FROM PUBLIC;
COMMENT ON FUNCTION choreo_distribute() IS
    'Makes choreograph''s definitions Citus reference tables (docs/scaling.md)';
