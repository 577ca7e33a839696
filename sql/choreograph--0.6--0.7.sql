/* choreograph 0.6 -> 0.7: scale-out on Citus (docs/scaling.md) */

\echo Use "ALTER EXTENSION choreograph UPDATE TO '0.7'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- The Citus table whose shards place entities (streams' entities, eventbox
-- recipients) on the nodes of a cluster: empty, distributed by
-- choreo_distribute(); shared/entity_placement.c reads its shards.
-- ---------------------------------------------------------------------------
CREATE TABLE choreograph.entity_shards (entity text NOT NULL);

-- The node (Citus group) that has served each of its shards: the state of
-- the shard's entities is there.  A shard Citus moves elsewhere (a
-- rebalance) leaves that state behind, so its entities are refused on the
-- new node until choreo_rehome_entities() records it there, which it does
-- only for shards that left no state behind.  A reference table; each
-- node's copy is read (entity_placement.c), its caches told by the
-- trigger.
CREATE TABLE choreograph.entity_homes (
    shardid bigint PRIMARY KEY,
    groupid integer NOT NULL
);
-- read by every role's calls, as the definitions are
GRANT SELECT ON choreograph.entity_homes TO PUBLIC;
CREATE TRIGGER definitions_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON choreograph.entity_homes
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_definitions_changed();

-- Once activities are a reference table, each node's cursors can no
-- longer reference them by a foreign key (the node's own table is Citus's
-- shell, the rows are in the shard); this trigger on the shards removes a
-- dropped activity's cursors on every node instead.
-- And this one, on every node's copy, starts a new activity for the
-- entities that node holds (activities are created on the coordinator).
CREATE FUNCTION choreograph.choreo_activity_created() RETURNS trigger
    AS 'MODULE_PATHNAME', 'choreo_activity_created' LANGUAGE C;
REVOKE ALL ON FUNCTION choreograph.choreo_activity_created() FROM PUBLIC;

CREATE FUNCTION choreograph.choreo_activity_dropped() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    DELETE FROM choreograph.activity_cursors WHERE activity_id OPERATOR(pg_catalog.=) OLD.id;
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------
-- choreo_distribute(entities_colocate_with): on a Citus coordinator, makes
-- choreograph ready for the cluster (docs/scaling.md):
--
-- * the definitions (pipelines, steps, buffers, activities) become Citus reference
--   tables, so that every node holds them and a change reaches all nodes
--   in one distributed transaction.  A run or a trigger Citus pushes down
--   to the node holding a row then finds its pipeline there; the
--   extension reads each node's own copy (shared/node_tables.c says why).
--   The tables are the extension's: Citus creates no shell tables for them
--   on the workers (CREATE EXTENSION, which Citus runs on every node, made
--   them there), only the shards.  The foreign key of steps to pipelines is
--   dropped while both are converted (Citus would otherwise convert steps
--   through it as a local table, recreating the extension's views) and
--   made again between the reference tables, on every node.  The triggers
--   go with the tables onto the shards, which Citus allows only when told:
--   they touch nothing but the node's own definition caches and rows.
--   Activity cursors stay each node's own: their foreign key to the
--   activities is dropped on every node first (in transactions of their
--   own, before this one takes any lock they would wait for; again at each
--   call, for nodes added since), a trigger removes a dropped activity's
--   cursors instead, and another starts a new activity for the entities
--   each node holds.
--
-- * entities are placed on the nodes: choreograph.entity_shards becomes a
--   table distributed by entity (colocated with entities_colocate_with, a
--   table distributed by a text column, when given: an entity then lives
--   on the node of the rows with the same key), and the functions taking
--   an entity or a recipient are delegated by it to the node holding it,
--   inside transaction blocks too (force_delegation).  Each entity's
--   streams, cursors and eventbox state are kept there and nowhere else
--   (shared/entity_placement.c refuses a call on another node).
--
-- Idempotent, and to be called again after adding a node; superuser or
-- the extension's owner, on the coordinator.
-- ---------------------------------------------------------------------------
CREATE FUNCTION choreo_distribute(entities_colocate_with regclass DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- Citus's notices of what it converts and propagates are not the caller's
    SET client_min_messages = warning
    AS $$
DECLARE
    t text;
    f record;
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
    -- on every call: a node added since has the key again (Citus created
    -- the extension there); checked, as run_command_on_workers only reports
    FOR f IN SELECT * FROM run_command_on_workers(
            'ALTER TABLE choreograph.activity_cursors'
            ' DROP CONSTRAINT IF EXISTS activity_cursors_activity_id_fkey') LOOP
        IF NOT f.success THEN
            RAISE EXCEPTION 'could not drop the foreign key of the activity cursors on node %:%',
                            f.nodename, f.nodeport
                USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = f.result;
        END IF;
    END LOOP;
    ALTER TABLE choreograph.activity_cursors DROP CONSTRAINT IF EXISTS activity_cursors_activity_id_fkey;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid = 'choreograph.activities'::regclass) THEN
        DROP TRIGGER IF EXISTS activity_created ON choreograph.activities;
        CREATE TRIGGER activity_created AFTER INSERT ON choreograph.activities
            FOR EACH ROW EXECUTE FUNCTION choreograph.choreo_activity_created();
        DROP TRIGGER IF EXISTS activity_dropped ON choreograph.activities;
        CREATE TRIGGER activity_dropped AFTER DELETE ON choreograph.activities
            FOR EACH ROW EXECUTE FUNCTION choreograph.choreo_activity_dropped();
    END IF;
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    FOREACH t IN ARRAY ARRAY['pipelines', 'steps', 'buffers', 'activities', 'entity_homes'] LOOP
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

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid = 'choreograph.entity_shards'::regclass) THEN
        -- one placement per shard: an entity is kept on one node
        PERFORM pg_catalog.set_config('citus.shard_replication_factor', '1', true);
        PERFORM create_distributed_table('choreograph.entity_shards', 'entity',
                                         colocate_with := coalesce(entities_colocate_with::text,
                                                                   'default'));
    ELSIF entities_colocate_with IS NOT NULL AND NOT EXISTS (
            SELECT FROM pg_catalog.pg_dist_partition a, pg_catalog.pg_dist_partition b
             WHERE a.logicalrelid = 'choreograph.entity_shards'::regclass
               AND b.logicalrelid = entities_colocate_with
               AND a.colocationid = b.colocationid) THEN
        RAISE EXCEPTION 'entities are already placed, not colocated with %', entities_colocate_with
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Entities are placed by the first call of choreo_distribute() and keep their places.';
    END IF;
    -- the shards' first homes; those of shards made since (a split) too
    INSERT INTO choreograph.entity_homes (shardid, groupid)
    SELECT p.shardid, p.groupid
      FROM pg_catalog.pg_dist_placement p JOIN pg_catalog.pg_dist_shard s USING (shardid)
     WHERE s.logicalrelid = 'choreograph.entity_shards'::regclass
    ON CONFLICT (shardid) DO NOTHING;
    FOR f IN SELECT * FROM (VALUES
            ('choreo_emit(text, text, jsonb)', 'entity'),
            ('choreo_emit_and_wait(text, text, jsonb)', 'entity'),
            ('choreo_events(text, text, bigint, integer)', 'entity'),
            ('choreo_start_activity(text, text, bigint)', 'entity'),
            ('choreo_run_activity(text, text)', 'entity'),
            ('choreo_reset_activity(text, text, bigint)', 'entity'),
            ('choreo_send(text, jsonb)', 'recipient'),
            ('choreo_inbox(text)', 'recipient'),
            ('choreo_state(text)', 'recipient'),
            ('choreo_process_batch(text, regprocedure, integer, boolean)', 'recipient'))
            AS v(signature, argument) LOOP
        PERFORM create_distributed_function(pg_catalog.format('%I.%s', '@extschema@', f.signature)::regprocedure,
                                            f.argument, colocate_with := 'choreograph.entity_shards',
                                            force_delegation := true);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION choreo_distribute(regclass) FROM PUBLIC;
COMMENT ON FUNCTION choreo_distribute(regclass) IS
    'Makes choreograph ready for a Citus cluster: definitions on every node, entities placed by name (docs/scaling.md)';

-- ---------------------------------------------------------------------------
-- choreo_rehome_entities(): after Citus moved shards of the entities'
-- colocation group (a rebalance, citus_move_shard_placement), records
-- their new nodes as their homes, for each moved shard whose entities left
-- no state on its old node (no stream entity, inbox event or eventbox
-- state of an entity hashing into it); refuses (55000), changing nothing,
-- while one did.  Returns how many shards it rehomed.
-- ---------------------------------------------------------------------------
CREATE FUNCTION choreo_rehome_entities() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET client_min_messages = warning
    AS $$
DECLARE
    moved record;
    left_behind record;
    n integer := 0;
BEGIN
    -- two tests: without Citus its catalog is not there to be read
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'entities are not placed on a Citus cluster'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Call choreo_distribute() on a Citus coordinator first.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid = 'choreograph.entity_shards'::regclass) THEN
        RAISE EXCEPTION 'entities are not placed on a Citus cluster'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Call choreo_distribute() first.';
    END IF;
    FOR moved IN
        SELECT p.shardid, p.groupid AS new_group, h.groupid AS old_group,
               n.nodeid AS old_node, n.nodename AS old_name, n.nodeport AS old_port
          FROM pg_catalog.pg_dist_placement p
          JOIN pg_catalog.pg_dist_shard s USING (shardid)
          LEFT JOIN choreograph.entity_homes h USING (shardid)
          LEFT JOIN pg_catalog.pg_dist_node n ON n.groupid = h.groupid AND n.noderole = 'primary'
         WHERE s.logicalrelid = 'choreograph.entity_shards'::regclass
           AND h.groupid IS DISTINCT FROM p.groupid
         ORDER BY p.shardid
    LOOP
        IF moved.old_name IS NOT NULL THEN
            SELECT * INTO left_behind FROM run_command_on_all_nodes(pg_catalog.format(
                $q$SELECT (SELECT count(*) FROM choreograph.stream_entities
                            WHERE pg_catalog.get_shard_id_for_distribution_column(
                                      'choreograph.entity_shards', entity) = %1$s)
                        + (SELECT count(*) FROM choreograph.inbox
                            WHERE pg_catalog.get_shard_id_for_distribution_column(
                                      'choreograph.entity_shards', recipient) = %1$s)
                        + (SELECT count(*) FROM choreograph.eventbox_states
                            WHERE pg_catalog.get_shard_id_for_distribution_column(
                                      'choreograph.entity_shards', recipient) = %1$s)$q$,
                moved.shardid))
             WHERE nodeid = moved.old_node;
            IF NOT FOUND OR NOT left_behind.success OR left_behind.result::bigint > 0 THEN
                RAISE EXCEPTION 'shard % of choreograph.entity_shards left the state of its entities on node %:%',
                                moved.shardid, moved.old_name, moved.old_port
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = CASE WHEN NOT FOUND THEN 'The node did not answer.'
                                        WHEN NOT left_behind.success THEN left_behind.result
                                        ELSE left_behind.result || ' rows of its entities are there.' END,
                          HINT = 'Move the shard back, or move its entities'' rows to its new node first.';
            END IF;
        END IF;
        INSERT INTO choreograph.entity_homes (shardid, groupid) VALUES (moved.shardid, moved.new_group)
        ON CONFLICT (shardid) DO UPDATE SET groupid = EXCLUDED.groupid;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION choreo_rehome_entities() FROM PUBLIC;
COMMENT ON FUNCTION choreo_rehome_entities() IS
    'Records the new nodes of moved entity shards that left no state behind (docs/scaling.md)';
