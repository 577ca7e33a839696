-- The upgrade path: a database on 0.1 is updated to the current version
-- and keeps its definitions.  (A fresh install runs the same scripts: the
-- 0.1 install script, then the updates.)
CREATE DATABASE choreo_upgrade;
\c choreo_upgrade
CREATE EXTENSION choreograph VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'choreograph';
CREATE FUNCTION kept() RETURNS text LANGUAGE sql AS $$ SELECT 'kept' $$;
SELECT choreo_add_step('old', 'one', 'kept()');
ALTER EXTENSION choreograph UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'choreograph';
SELECT choreo_run('old')->'bag';
CREATE TABLE upgraded_events (id serial, kind text);
SELECT choreo_create_buffer('upgraded', 'upgraded_events');
SELECT choreo_fire_forget('upgraded', '{"kind": "after upgrade"}');
SELECT kind FROM upgraded_events;
-- the 0.2 objects exist, with their grants
SELECT has_table_privilege('public', 'choreo_hooks', 'SELECT') AS hooks_view_readable,
       has_table_privilege('public', 'choreograph.hooks', 'INSERT') AS outbox_writable;
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
