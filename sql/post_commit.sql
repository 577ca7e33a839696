-- Post-commit hooks: an outbox row written by the registering transaction,
-- run after it commits by a background worker, as the registering role.
-- The workers serve the database "postgres" (choreograph.database), so this
-- test runs there.
SELECT err($$SELECT choreo_post_commit('pg_catalog.now()')$$) AS in_another_database;
\c postgres
SET client_min_messages = warning;
CREATE EXTENSION choreograph;
RESET client_min_messages;
CREATE FUNCTION err(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE post_log (id serial PRIMARY KEY, entry text, who text);
GRANT ALL ON post_log TO PUBLIC;
GRANT ALL ON SEQUENCE post_log_id_seq TO PUBLIC;
CREATE FUNCTION post_hook(p jsonb) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO post_log (entry, who) VALUES (p->>'entry', current_user) $$;
CREATE FUNCTION post_entries() RETURNS text LANGUAGE sql
    AS $$ SELECT coalesce(string_agg(entry || ' (' || who || ')', ', ' ORDER BY id), '') FROM post_log $$;
-- waits (up to 30 seconds) until a condition on the outbox holds; says
-- which when it gives up
CREATE FUNCTION wait_until(condition text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '30 seconds';
    met boolean;
BEGIN
    LOOP
        EXECUTE 'SELECT ' || condition INTO met;
        EXIT WHEN met;
        IF clock_timestamp() > deadline THEN
            RETURN 'timed out after 30 seconds waiting for ' || condition;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN 'done';
END $$;
-- until no hook is waiting to run ('failed' ones do not count)
CREATE FUNCTION wait_for_hooks() RETURNS text LANGUAGE sql AS $$
    SELECT wait_until('NOT EXISTS (SELECT FROM choreograph.hooks WHERE next_attempt_at IS NOT NULL)')
$$;
-- until every hook has been tried at least once
CREATE FUNCTION wait_for_attempts() RETURNS text LANGUAGE sql AS $$
    SELECT wait_until('NOT EXISTS (SELECT FROM choreograph.hooks WHERE attempts = 0)')
$$;

-- a hook is queued by its transaction, and runs only after it commits
BEGIN;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "first"}');
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "second"}');
SELECT callback, role, payload, status, attempts FROM choreo_hooks;
SELECT post_entries() AS before_commit;
COMMIT;
SELECT wait_for_hooks();
SELECT post_entries();
SELECT count(*) AS left_in_outbox FROM choreograph.hooks;
TRUNCATE post_log;

-- never for a transaction that aborts, or a savepoint rolled back
BEGIN;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "aborted"}');
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "rolled back"}');
ROLLBACK TO SAVEPOINT s;
SAVEPOINT r;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "released"}');
RELEASE SAVEPOINT r;
COMMIT;
SELECT wait_for_hooks();
SELECT post_entries();
TRUNCATE post_log;

-- keys: once per transaction
BEGIN;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "keyed"}', key => 'k');
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "keyed again"}', key => 'k');
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "other key"}', key => 'l');
COMMIT;
SELECT wait_for_hooks();
SELECT post_entries();
TRUNCATE post_log;

-- hooks run as the role that registered them, with its privileges only;
-- a role sees its own hooks in choreo_hooks
CREATE ROLE regress_choreo_poster;
CREATE TABLE guarded (v text);
CREATE FUNCTION write_guarded() RETURNS void LANGUAGE sql AS $$ INSERT INTO guarded VALUES ('x') $$;
SET ROLE regress_choreo_poster;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "as poster"}');
RESET ROLE;
SELECT wait_for_hooks();
SELECT post_entries();
TRUNCATE post_log;

-- a hook whose function was dropped fails with a clear error
CREATE FUNCTION short_lived() RETURNS void LANGUAGE sql AS $$ SELECT $$;
BEGIN;
SELECT choreo_post_commit('short_lived()');
DROP FUNCTION short_lived();
COMMIT;
SELECT wait_for_attempts();
SELECT attempts > 0 AS tried, last_error LIKE 'function % of post-commit hook % no longer exists' AS clear_error,
       last_sqlstate
  FROM choreo_hooks;
DELETE FROM choreograph.hooks;

-- failures are retried with backoff, the last error kept (truncated),
-- then the hook stays failed until choreo_retry_hook
ALTER SYSTEM SET choreograph.hook_max_attempts = 2;
ALTER SYSTEM SET choreograph.error_max_length = 30;
-- the workers reload their settings at the top of their loop, and each
-- pass shows a new "idle until ... (since ...)": wait for that
CREATE TEMPORARY TABLE workers_before AS
    SELECT pid, query FROM pg_stat_activity WHERE backend_type = 'choreograph worker';
CREATE FUNCTION workers_moved_on() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_stat_clear_snapshot();
    RETURN NOT EXISTS (SELECT FROM pg_stat_activity a JOIN workers_before b USING (pid)
                        WHERE a.query = b.query OR a.query NOT LIKE 'choreograph: idle until %');
END $$;
SELECT pg_reload_conf();
SELECT wait_until('workers_moved_on()') AS workers_reloaded;
SET ROLE regress_choreo_poster;
SELECT choreo_post_commit('write_guarded()');
RESET ROLE;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "others go on"}');
SELECT wait_for_hooks();
SELECT callback, role, status, attempts, next_attempt_at IS NULL AS given_up, last_error, last_sqlstate
  FROM choreo_hooks;
SELECT post_entries();
SET ROLE regress_choreo_poster;
SELECT callback, status FROM choreo_hooks;
RESET ROLE;
-- it can be queued again, by its role (or a superuser), once allowed to succeed
CREATE ROLE regress_choreo_stranger;
SELECT id AS failed_id FROM choreograph.hooks \gset
SET ROLE regress_choreo_stranger;
SELECT count(*) AS stranger_sees FROM choreo_hooks;
SELECT regexp_replace(err(format('SELECT choreo_retry_hook(%s)', :failed_id)), '[0-9]+$', 'N') AS err;
SELECT regexp_replace(err(format('SELECT choreo_discard_hook(%s)', :failed_id)), '[0-9]+$', 'N') AS err;
RESET ROLE;
GRANT INSERT ON guarded TO regress_choreo_poster;
SET ROLE regress_choreo_poster;
SELECT choreo_retry_hook(id) FROM choreo_hooks;
RESET ROLE;
SELECT wait_for_hooks();
SELECT * FROM guarded;
SELECT count(*) AS left_in_outbox FROM choreograph.hooks;
ALTER SYSTEM RESET choreograph.hook_max_attempts;
ALTER SYSTEM RESET choreograph.error_max_length;
SELECT pg_reload_conf();

-- a failing hook keeps its error's SQLSTATE, and can be discarded by its
-- role: it never runs again
CREATE FUNCTION always_fails() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'no luck' USING ERRCODE = 'XY001';
END $$;
SET ROLE regress_choreo_poster;
SELECT choreo_post_commit('always_fails()');
RESET ROLE;
SELECT wait_for_attempts();
SELECT status IN ('queued', 'running') AS to_be_retried, last_error, last_sqlstate FROM choreo_hooks;
SELECT id AS failing_id FROM choreograph.hooks \gset
SET ROLE regress_choreo_poster;
BEGIN;
SELECT choreo_discard_hook(:failing_id);
SELECT count(*) AS seen_in_this_transaction FROM choreo_hooks;
ROLLBACK;
SELECT count(*) AS back_after_rollback FROM choreo_hooks;
SELECT choreo_discard_hook(:failing_id);
SELECT count(*) AS discarded FROM choreo_hooks;
SELECT regexp_replace(err(format('SELECT choreo_discard_hook(%s)', :failing_id)), 'hook [0-9]+', 'hook N') AS err;
RESET ROLE;

-- two-phase commit: the hook runs after COMMIT PREPARED, never after
-- ROLLBACK PREPARED
BEGIN;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "prepared, rolled back"}');
PREPARE TRANSACTION 'choreo_post_commit_rollback';
ROLLBACK PREPARED 'choreo_post_commit_rollback';
BEGIN;
SELECT choreo_post_commit('post_hook(jsonb)', '{"entry": "prepared, committed"}');
PREPARE TRANSACTION 'choreo_post_commit_commit';
SELECT post_entries() AS while_prepared;
COMMIT PREPARED 'choreo_post_commit_commit';
SELECT wait_for_hooks();
SELECT post_entries();

-- bad input: SQLSTATE, and nothing queued
BEGIN;
SELECT err($$SELECT choreo_post_commit(NULL)$$);
SELECT err($$SELECT choreo_post_commit('no_such()')$$);
CREATE FUNCTION int_hook(int) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT err($$SELECT choreo_post_commit('int_hook(int)')$$);
CREATE FUNCTION private_hook() RETURNS void LANGUAGE sql AS $$ SELECT $$;
REVOKE EXECUTE ON FUNCTION private_hook() FROM PUBLIC;
SET LOCAL ROLE regress_choreo_poster;
SELECT err($$SELECT choreo_post_commit('private_hook()')$$);
RESET ROLE;
SELECT err($$SELECT choreo_retry_hook(NULL)$$);
SELECT err($$SELECT choreo_retry_hook(-1)$$);
SELECT err($$SELECT choreo_discard_hook(NULL)$$);
SELECT err($$SELECT choreo_discard_hook(-1)$$);
CREATE FUNCTION trigger_hook() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
SELECT err($$SELECT choreo_post_commit('trigger_hook()')$$);
SELECT count(*) AS queued FROM choreograph.hooks;
COMMIT;

-- nobody may write another role's hook into the outbox (rows written
-- directly, as pg_restore writes them, are skipped unless they are the
-- writer's own), nor read, change or delete the outbox
SET ROLE regress_choreo_poster;
SELECT err($$INSERT INTO choreograph.hooks (id, txid, callback, role) VALUES (-1, 1, 'post_hook(jsonb)', 'postgres')$$);
SELECT err($$INSERT INTO choreograph.hooks (id, txid, callback, role) VALUES (-2, 1, 'trigger_hook()', 'regress_choreo_poster')$$);
SELECT err($$SELECT payload FROM choreograph.hooks$$);
SELECT err($$UPDATE choreograph.hooks SET role = 'postgres'$$);
SELECT err($$DELETE FROM choreograph.hooks$$);
RESET ROLE;
SELECT count(*) AS planted FROM choreograph.hooks WHERE id < 0;
-- a role's own hook written directly gets the id, transaction, attempts
-- and next attempt choreo_post_commit would give it: chosen ones could
-- take the ids of other roles' coming hooks, join (and hold up) another
-- transaction's hooks, or make the worker fail at the next failure
BEGIN;
SET LOCAL ROLE regress_choreo_poster;
INSERT INTO choreograph.hooks (id, txid, callback, role, attempts, next_attempt_at)
    VALUES (-3, 1, 'now()', 'regress_choreo_poster', 2147483647, 'infinity');
RESET ROLE;
SELECT id > 0 AS id_from_the_sequence, txid = txid_current() AS this_transaction,
       attempts <= current_setting('choreograph.hook_max_attempts')::int AS attempts_within_bounds,
       next_attempt_at <= now() AS due
  FROM choreograph.hooks WHERE callback = 'now()'::regprocedure;
ROLLBACK;

DROP EXTENSION choreograph;
DROP TABLE post_log, guarded;
DROP FUNCTION post_hook(jsonb), post_entries(), wait_for_hooks(), wait_for_attempts(), wait_until(text), write_guarded(),
    int_hook(int), private_hook(), trigger_hook(), always_fails(), workers_moved_on(), err(text);
DROP ROLE regress_choreo_poster, regress_choreo_stranger;
\c contrib_regression
