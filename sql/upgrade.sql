-- The upgrade path: a database on 0.1 is updated to the current version
-- and keeps its definitions.  (A fresh install runs the same scripts: the
-- 0.1 install script, then the updates.)
CREATE DATABASE choreo_upgrade;
\c choreo_upgrade
CREATE EXTENSION choreograph VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'choreograph';
CREATE FUNCTION kept() RETURNS text LANGUAGE sql AS $$ SELECT 'kept' $$;
-- a definition as version 0.1 wrote it (the library installed is the
-- newest, whose functions need the newest layout: they say so until then)
INSERT INTO choreograph.pipelines (name, owner) VALUES ('old', current_user::regrole);
INSERT INTO choreograph.steps (pipeline, position, step, job) VALUES ('old', 1, 'one', 'kept()');
SELECT choreo_run('old');
ALTER EXTENSION choreograph UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'choreograph';
SELECT choreo_run('old')->'bag';
CREATE TABLE upgraded_events (id serial, kind text);
SELECT choreo_create_buffer('upgraded', 'upgraded_events');
SELECT choreo_fire_forget('upgraded', '{"kind": "after upgrade"}');
SELECT kind FROM upgraded_events;
-- the 0.2 objects exist, with their grants
SELECT has_table_privilege('public', 'choreo_hooks', 'SELECT') AS hooks_view_readable,
       has_table_privilege('public', 'choreograph.hooks', 'SELECT') AS outbox_readable;
-- and the 0.3 ones: the SQLSTATE beside the last error, choreo_discard_hook
SELECT attname FROM pg_attribute
 WHERE attrelid = 'choreo_hooks'::regclass AND attnum > 0 ORDER BY attnum;
SELECT has_function_privilege('public', 'choreo_discard_hook(bigint)', 'EXECUTE') AS discard_callable;
-- an update from 0.2 keeps the queued hooks
\c contrib_regression
DROP DATABASE choreo_upgrade;
CREATE DATABASE choreo_upgrade;
\c choreo_upgrade
CREATE EXTENSION choreograph VERSION '0.2';
INSERT INTO choreograph.hooks (txid, callback, role) VALUES (1, 'now()', current_user::regrole);
-- a view of the user's on choreo_hooks, and a grant taken back, stay as they were
CREATE VIEW my_failed_hooks AS SELECT id, last_error FROM choreo_hooks WHERE status = 'failed';
REVOKE SELECT ON choreo_hooks FROM PUBLIC;
ALTER EXTENSION choreograph UPDATE TO '0.3';
SELECT callback, attempts, last_error, last_sqlstate FROM choreo_hooks;
SELECT count(*) AS my_view_works FROM my_failed_hooks;
SELECT has_table_privilege('public', 'choreo_hooks', 'SELECT') AS public_may_read;
\c contrib_regression
DROP DATABASE choreo_upgrade;

-- an update from 0.3: pipelines and buffers go into schema public, where
-- their old unqualified names (a trigger's argument, say) find them with the
-- default search_path, and views and grants on choreo_steps stay as they were
CREATE DATABASE choreo_upgrade;
\c choreo_upgrade
CREATE EXTENSION choreograph VERSION '0.3';
CREATE FUNCTION err(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE orders (id int, item text);
CREATE TABLE order_events (id serial, payload jsonb);
CREATE FUNCTION seen(o orders) RETURNS text LANGUAGE sql AS $$ SELECT 'seen ' || o.item $$;
INSERT INTO choreograph.pipelines (name, owner) VALUES ('order_flow', current_user::regrole),
                                                        ('Mixed Case', current_user::regrole);
INSERT INTO choreograph.steps (pipeline, position, step, job)
    VALUES ('order_flow', 1, 'see', 'seen(orders)'), ('Mixed Case', 1, 'see', 'seen(orders)');
INSERT INTO choreograph.buffers (name, target, max_batch, owner)
    VALUES ('order_events', 'order_events', 10, current_user::regrole);
CREATE TRIGGER orders_flow AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('order_flow');
CREATE TRIGGER orders_capture AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('order_events');
CREATE VIEW my_steps AS SELECT pipeline, step FROM choreo_steps;
REVOKE SELECT ON choreo_steps FROM PUBLIC;
-- the names a version before 0.4 allowed that must now be quoted are named
ALTER EXTENSION choreograph UPDATE TO '0.4';
SELECT * FROM choreo_steps;
SELECT * FROM choreo_buffers;
SELECT * FROM my_steps;
SELECT has_table_privilege('public', 'choreo_steps', 'SELECT') AS public_may_read;
INSERT INTO orders VALUES (1, 'pen');
SELECT choreo_bag();
SELECT payload->>'op' AS op FROM order_events;
SELECT choreo_run('order_flow', o)->'bag', choreo_run('public.order_flow', o)->'bag' FROM orders o;
SELECT err($$SELECT choreo_run('Mixed Case')$$);
SELECT choreo_run('"Mixed Case"', o)->'bag' FROM orders o;
SELECT choreo_add_step('order_flow', 'again', 'seen(orders)');
SELECT pipeline, position, step FROM choreo_steps WHERE pipeline = 'order_flow';
\c contrib_regression
DROP DATABASE choreo_upgrade;

-- an update from 0.4 to 0.5: definitions stay, and streams and activities
-- work, with the grants of a fresh install (any role may emit, read the
-- events and the view; none may write the tables directly)
CREATE DATABASE choreo_upgrade;
\c choreo_upgrade
CREATE EXTENSION choreograph VERSION '0.4';
CREATE FUNCTION kept() RETURNS text LANGUAGE sql AS $$ SELECT 'kept' $$;
SELECT choreo_add_step('app_flow', 'one', 'kept()');
ALTER EXTENSION choreograph UPDATE TO '0.5';
SELECT extversion FROM pg_extension WHERE extname = 'choreograph';
SELECT choreo_run('app_flow')->'bag';
SELECT choreo_emit_and_wait('upgraded', 'e', '{"after": "upgrade"}') AS seq;
CREATE FUNCTION upgraded_proc(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE sql
    AS $$ SELECT choreo_eof((events->-1->>'seq')::bigint) $$;
SELECT choreo_create_activity('upgraded', 'upgraded', 'upgraded_proc(text, bigint, jsonb, boolean)',
                              '{"engine": "manual"}');
SELECT * FROM choreo_run_activity('upgraded', 'e');
SELECT activity, entity, tail, head, lag, status FROM choreo_activities;
SELECT t AS object, has_table_privilege('public', t, 'SELECT') AS public_reads,
       has_table_privilege('public', t, 'UPDATE') AS public_updates,
       has_table_privilege('public', t, 'DELETE') AS public_deletes
  FROM unnest(ARRAY['choreo_activities', 'choreograph.events', 'choreograph.stream_entities',
                    'choreograph.activities', 'choreograph.activity_cursors']) AS t;
SELECT f AS function, has_function_privilege('public', f, 'EXECUTE') AS public_executes
  FROM unnest(ARRAY['choreo_emit(text, text, jsonb)', 'choreo_emit_and_wait(text, text, jsonb)',
                    'choreo_events(text, text, bigint, integer)',
                    'choreo_create_activity(text, text, regprocedure, jsonb)',
                    'choreo_run_activity(text, text)']) AS f;
-- the update's objects are the fresh install's: the same functions
SELECT count(*) AS functions_of_0_5 FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'choreograph')
   AND (p.proname LIKE 'choreo\_%activit%' OR p.proname LIKE 'choreo\_emit%'
        OR p.proname IN ('choreo_events', 'choreo_eof', 'choreo_done', 'choreo_retry'));
\c contrib_regression
DROP DATABASE choreo_upgrade;

-- an update from 0.5 to 0.6: streams and activities stay, and the eventbox
-- works, with its grants (any role may send and call the functions; none
-- may read or write the tables directly)
CREATE DATABASE choreo_upgrade;
\c choreo_upgrade
CREATE EXTENSION choreograph VERSION '0.5';
SELECT choreo_emit_and_wait('kept', 'e', '{"before": "upgrade"}') AS seq_before;
ALTER EXTENSION choreograph UPDATE TO '0.6';
SELECT extversion FROM pg_extension WHERE extname = 'choreograph';
SELECT seq, payload FROM choreo_events('kept', 'e');
CREATE FUNCTION upgraded_processor(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT jsonb_build_object('transitions', jsonb_build_array(
        jsonb_build_object('events', jsonb_path_query_array(events, '$[*].id'),
                           'state', jsonb_array_length(events)))) $$;
SELECT choreo_send('upgraded', '{"after": "upgrade"}');
SELECT choreo_process_batch('upgraded', 'upgraded_processor(text, jsonb, jsonb)');
SELECT * FROM choreo_state('upgraded');
SELECT t AS object, has_table_privilege('public', t, 'SELECT') AS public_reads,
       has_table_privilege('public', t, 'INSERT') AS public_inserts,
       has_table_privilege('public', t, 'DELETE') AS public_deletes
  FROM unnest(ARRAY['choreograph.inbox', 'choreograph.eventbox_states']) AS t;
SELECT f AS function, has_function_privilege('public', f, 'EXECUTE') AS public_executes
  FROM unnest(ARRAY['choreo_send(text, jsonb)', 'choreo_inbox(text)', 'choreo_state(text)',
                    'choreo_process_batch(text, regprocedure, integer, boolean)']) AS f;
\c contrib_regression
DROP DATABASE choreo_upgrade;

-- an update from 0.6 to 0.7: the eventbox stays, and choreo_distribute()
-- is there, for the superuser only, and refuses without Citus (nothing is
-- changed: the steps keep their foreign key)
CREATE DATABASE choreo_upgrade;
\c choreo_upgrade
CREATE EXTENSION choreograph VERSION '0.6';
SELECT choreo_send('kept', '{"before": "upgrade"}');
ALTER EXTENSION choreograph UPDATE TO '0.7';
SELECT extversion FROM pg_extension WHERE extname = 'choreograph';
SELECT value FROM choreo_inbox('kept');
SELECT f AS function, has_function_privilege('public', f, 'EXECUTE') AS public_executes
  FROM unnest(ARRAY['choreo_distribute(regclass)', 'choreo_rehome_entities()',
                    'choreograph.choreo_activity_created()']) AS f;
SELECT choreo_distribute();
SELECT choreo_rehome_entities();
-- the trigger function of a cluster's activities fires on them only: a
-- table of one's own with it is refused (39P01), its row not written
CREATE TABLE fake_activities (namespace regnamespace, name text, stream text, engine text,
                              auto_start boolean);
CREATE TRIGGER fake AFTER INSERT ON fake_activities
    FOR EACH ROW EXECUTE FUNCTION choreograph.choreo_activity_created();
\set VERBOSITY sqlstate
INSERT INTO fake_activities VALUES ('public', 'x', 'kept', 'lazy', true);
\set VERBOSITY default
SELECT count(*) AS fake_rows, (SELECT count(*) FROM choreograph.activity_cursors) AS cursors
  FROM fake_activities;
DROP TABLE fake_activities;
-- without Citus, an entity is kept where it is called
SELECT choreo_emit_and_wait('kept', 'anywhere', '{}') AS seq;
SELECT conname FROM pg_constraint WHERE conrelid = 'choreograph.steps'::regclass AND contype = 'f';
\c contrib_regression
DROP DATABASE choreo_upgrade;
