-- scale-out: a role of the application, not a superuser, through the
-- coordinator: it defines and runs a pipeline on its distributed table
-- (pushed down), emits and sends (delegated), and its recipient is its
-- own on the node holding it; another role may send but not read it.
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
CREATE ROLE citus_app LOGIN;
CREATE ROLE citus_other LOGIN;
GRANT ALL ON SCHEMA public TO citus_app;
SET ROLE citus_app;
CREATE TABLE app_rows (id bigint PRIMARY KEY, v text);
SELECT create_distributed_table('app_rows', 'id');
INSERT INTO app_rows SELECT g, 'v' || g FROM generate_series(1, 100) g;
CREATE FUNCTION app_step(r app_rows) RETURNS text LANGUAGE sql AS $$ SELECT r.v $$;
CREATE FUNCTION app_processor(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT jsonb_build_object('transitions', jsonb_build_array(
        jsonb_build_object('events', jsonb_path_query_array(events, '$[*].id'),
                           'state', jsonb_array_length(events)))) $$;
SELECT choreo_add_step('app_flow', 's', 'app_step(app_rows)');
SELECT choreo_run('app_flow', r)->'bag' AS bag FROM app_rows r WHERE id = 1;
SELECT count(*) FILTER (WHERE choreo_run('app_flow', r)->'bag'->'s'->>'job' = r.v) AS runs_right
  FROM app_rows r;
SELECT choreo_emit('app_stream', 'app-1', '{"by": "citus_app"}');
SELECT seq, payload FROM choreo_events('app_stream', 'app-1');
SELECT choreo_send('app-box', '{"n": 1}');
SELECT choreo_process_batch('app-box', 'app_processor(text, jsonb, jsonb)') AS batch;
RESET ROLE;
SET ROLE citus_other;
SELECT choreo_send('app-box', '{"n": 2}');
SELECT * FROM choreo_inbox('app-box');
RESET ROLE;
SET ROLE citus_app;
SELECT count(*) AS outstanding FROM choreo_inbox('app-box');
SELECT choreo_drop_pipeline('app_flow');
DROP TABLE app_rows CASCADE;
DROP FUNCTION app_processor(text, jsonb, jsonb);
RESET ROLE;
REVOKE ALL ON SCHEMA public FROM citus_app;
DROP ROLE citus_app, citus_other;
