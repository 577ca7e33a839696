-- Security-restricted operations.  While a role maintains another role's
-- table (CREATE INDEX, REINDEX, VACUUM FULL, ANALYZE, REFRESH MATERIALIZED
-- VIEW), the table owner's functions run as the owner, restricted.  They
-- may not queue work: it would run later in the maintaining role's
-- session, unrestricted (as a superuser's search_path changed at COMMIT by
-- a hook an index expression queued).  Each call raises 42501, and nothing
-- is queued.
\set SHOW_CONTEXT never
CREATE ROLE regress_choreo_owner NOLOGIN;
GRANT CREATE ON SCHEMA public TO regress_choreo_owner;
CREATE TABLE sro_events (id serial, kind text, payload jsonb);
GRANT SELECT, INSERT ON sro_events TO regress_choreo_owner;
GRANT USAGE ON sro_events_id_seq TO regress_choreo_owner;
SELECT choreo_create_buffer('sro_buffer', 'sro_events');
SET ROLE regress_choreo_owner;
-- the hook the attack queues: it would change the maintainer's session
CREATE FUNCTION sro_hook() RETURNS void LANGUAGE sql
    AS $$ SELECT set_config('search_path', 'planted', false) $$;
CREATE TABLE sro_captured (a int);
CREATE TRIGGER sro_capture AFTER INSERT ON sro_captured
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('sro_buffer');
-- queues what regress.sro_call names (an index expression must be immutable:
-- so it claims, as attackers do)
-- (the search_path set, as PostgreSQL 17 runs maintenance with its own)
CREATE FUNCTION sro_queue(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE
    SET search_path = public AS $$
BEGIN
    CASE current_setting('regress.sro_call', true)
        WHEN 'pre_commit' THEN PERFORM choreo_pre_commit('sro_hook()');
        WHEN 'post_commit' THEN PERFORM choreo_post_commit('sro_hook()');
        WHEN 'fire_forget' THEN PERFORM choreo_fire_forget('sro_buffer', '{"kind": "forget"}');
        WHEN 'fire_and_wait' THEN PERFORM choreo_fire_and_wait('sro_buffer', '{"kind": "wait"}');
        ELSE NULL;
    END CASE;
    RETURN a;
END $$;
-- the same, and a captured INSERT, for a materialized view's query
CREATE FUNCTION sro_queue_volatile(a int) RETURNS int LANGUAGE plpgsql
    SET search_path = public AS $$
BEGIN
    IF current_setting('regress.sro_call', true) = 'capture' THEN
        INSERT INTO sro_captured VALUES (a);
    END IF;
    RETURN sro_queue(a);
END $$;
CREATE TABLE sro_table (a int);
INSERT INTO sro_table VALUES (1), (2);
CREATE INDEX sro_index ON sro_table ((sro_queue(a)));
CREATE MATERIALIZED VIEW sro_view AS SELECT sro_queue_volatile(a) AS a FROM sro_table;
-- outside a restricted operation, the owner may queue all of it (post-commit
-- hooks only in the workers' database: post_commit.sql)
BEGIN;
SELECT set_config('regress.sro_call', c, true), sro_queue_volatile(1)
  FROM unnest(ARRAY['pre_commit', 'fire_forget', 'fire_and_wait', 'capture']) AS c;
SELECT count(*) AS items_kept FROM sro_events;
ROLLBACK;
RESET ROLE;

-- each call in each operation, as the superuser: 42501 and its message
CREATE FUNCTION sro_try(operation text, call text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('regress.sro_call', call, true);
    EXECUTE operation;
    PERFORM set_config('regress.sro_call', '', true);
    RETURN 'allowed';
EXCEPTION WHEN OTHERS THEN
    PERFORM set_config('regress.sro_call', '', true);
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
BEGIN;
SELECT operation, call, sro_try(operation, call) AS outcome
  FROM unnest(ARRAY['CREATE INDEX sro_index2 ON sro_table ((sro_queue(a)))',
                    'REINDEX TABLE sro_table',
                    'ANALYZE sro_table',
                    'REFRESH MATERIALIZED VIEW sro_view']) WITH ORDINALITY AS o(operation, i),
       unnest(ARRAY['pre_commit', 'post_commit', 'fire_forget', 'fire_and_wait', 'capture']) WITH ORDINALITY AS c(call, j)
 WHERE call <> 'capture' OR operation LIKE 'REFRESH%'
 ORDER BY i, j;
COMMIT;
-- VACUUM cannot run in a function: one statement each
SET regress.sro_call = 'pre_commit';
VACUUM FULL sro_table;
\echo :LAST_ERROR_SQLSTATE
SET regress.sro_call = 'post_commit';
VACUUM FULL sro_table;
\echo :LAST_ERROR_SQLSTATE
SET regress.sro_call = 'fire_forget';
VACUUM FULL sro_table;
\echo :LAST_ERROR_SQLSTATE
SET regress.sro_call = 'fire_and_wait';
VACUUM FULL sro_table;
\echo :LAST_ERROR_SQLSTATE
-- and once outside a transaction block, where the hook would have run at
-- the end of the statement's own transaction
SET regress.sro_call = 'pre_commit';
ANALYZE sro_table;
\echo :LAST_ERROR_SQLSTATE
RESET regress.sro_call;

-- nothing was queued or written, and the session is as it was
SHOW search_path;
SELECT count(*) AS items FROM sro_events;
SELECT count(*) AS hooks FROM choreograph.hooks WHERE callback = 'sro_hook()'::regprocedure;
SELECT count(*) AS captured FROM sro_captured;

-- clean up
DROP MATERIALIZED VIEW sro_view;
DROP TABLE sro_table, sro_captured;
DROP FUNCTION sro_try(text, text);
SELECT choreo_drop_buffer('sro_buffer');
DROP TABLE sro_events;
DROP FUNCTION sro_queue_volatile(int), sro_queue(int), sro_hook();
REVOKE CREATE ON SCHEMA public FROM regress_choreo_owner;
DROP ROLE regress_choreo_owner;
