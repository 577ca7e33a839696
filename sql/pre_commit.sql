-- Pre-commit hooks: choreo_pre_commit runs functions when the transaction
-- commits (or is prepared), inside it, in order, as the registering role.

CREATE TABLE hook_log (id serial PRIMARY KEY, entry text, who text);
CREATE FUNCTION log_hook(p jsonb) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO hook_log (entry, who) VALUES (p->>'entry', current_user) $$;
CREATE FUNCTION log_hook_bare() RETURNS void LANGUAGE sql
    AS $$ INSERT INTO hook_log (entry, who) VALUES ('bare', current_user) $$;
CREATE FUNCTION hook_entries() RETURNS text LANGUAGE sql
    AS $$ SELECT coalesce(string_agg(entry, ', ' ORDER BY id), '') FROM hook_log $$;

-- hooks run at commit, in registration order, not before
BEGIN;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "first"}');
SELECT choreo_pre_commit('log_hook_bare()');
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "third"}');
SELECT hook_entries() AS before_commit;
COMMIT;
SELECT hook_entries();
TRUNCATE hook_log;

-- a NULL payload is passed as NULL
CREATE FUNCTION log_payload(p jsonb) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO hook_log (entry) VALUES (coalesce(p::text, 'SQL NULL')) $$;
BEGIN;
SELECT choreo_pre_commit('log_payload(jsonb)');
COMMIT;
SELECT hook_entries();
TRUNCATE hook_log;

-- nothing runs when the transaction aborts
BEGIN;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "aborted"}');
ROLLBACK;
SELECT hook_entries();

-- savepoints: a rolled-back savepoint's hooks are forgotten, a released
-- one's run
BEGIN;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "outer"}');
SAVEPOINT a;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "released"}');
RELEASE SAVEPOINT a;
SAVEPOINT b;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "rolled back"}');
ROLLBACK TO SAVEPOINT b;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "last"}');
COMMIT;
SELECT hook_entries();
TRUNCATE hook_log;

-- keys: a second registration with the same key is ignored, except after
-- the first was rolled back with its savepoint
BEGIN;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "k1 first"}', key => 'k1');
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "k1 again"}', key => 'k1');
SAVEPOINT s;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "k2 rolled back"}', key => 'k2');
ROLLBACK TO SAVEPOINT s;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "k2 kept"}', key => 'k2');
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "k2 again"}', key => 'k2');
COMMIT;
SELECT hook_entries();
TRUNCATE hook_log;

-- a row trigger asking for "once per transaction"
CREATE TABLE touched (id int);
CREATE FUNCTION once_per_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_pre_commit('log_hook(jsonb)', '{"entry": "summary"}', key => 'touched');
    RETURN NULL;
END $$;
CREATE TRIGGER touched_once AFTER INSERT ON touched
    FOR EACH ROW EXECUTE FUNCTION once_per_transaction();
INSERT INTO touched SELECT generate_series(1, 100);
SELECT hook_entries();
TRUNCATE hook_log;

-- hooks registering hooks: they run in the same commit, after those queued
CREATE FUNCTION chain(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hook_log (entry) VALUES ('chain ' || (p->>'n'));
    IF (p->>'n')::int < 3 THEN
        PERFORM choreo_pre_commit('chain(jsonb)', jsonb_build_object('n', (p->>'n')::int + 1));
    END IF;
END $$;
BEGIN;
SELECT choreo_pre_commit('chain(jsonb)', '{"n": 1}');
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "queued second"}');
COMMIT;
SELECT hook_entries();
TRUNCATE hook_log;

-- a loop ends with a clear error, and the transaction is rolled back
CREATE FUNCTION forever() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hook_log (entry) VALUES ('loop');
    PERFORM choreo_pre_commit('forever()');
END $$;
BEGIN;
SELECT choreo_pre_commit('forever()');
COMMIT;
SELECT count(*) AS loop_rows_left FROM hook_log;

-- on_error => 'abort' (the default): the error fails COMMIT
CREATE FUNCTION failing_hook() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hook_log (entry) VALUES ('failing hook wrote this');
    RAISE EXCEPTION 'hook failed' USING ERRCODE = 'P0001';
END $$;
BEGIN;
INSERT INTO hook_log (entry) VALUES ('transaction wrote this');
SELECT choreo_pre_commit('failing_hook()');
COMMIT;
SELECT hook_entries();

-- on_error => 'log': the hook's writes are rolled back, a WARNING, the
-- commit goes on
BEGIN;
INSERT INTO hook_log (entry) VALUES ('transaction wrote this');
SELECT choreo_pre_commit('failing_hook()', on_error => 'log');
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "next hook"}');
COMMIT;
SELECT hook_entries();
TRUNCATE hook_log;

-- writes made by hooks fire deferred constraint checks (a deferred
-- foreign key), which PostgreSQL would otherwise skip after PRE_COMMIT
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int, parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
CREATE FUNCTION orphan_child() RETURNS void LANGUAGE sql AS $$ INSERT INTO child VALUES (1, 999) $$;
CREATE FUNCTION adopted_child() RETURNS void LANGUAGE sql AS $$ INSERT INTO child VALUES (2, 1) $$;
INSERT INTO parent VALUES (1);
BEGIN;
SELECT choreo_pre_commit('orphan_child()');
COMMIT;
BEGIN;
SELECT choreo_pre_commit('adopted_child()');
SELECT choreo_pre_commit('orphan_child()', on_error => 'log');
COMMIT;
SELECT * FROM child;

-- hooks run as the role that registered them, not the one committing
CREATE ROLE regress_choreo_hooker;
GRANT INSERT, SELECT ON hook_log TO regress_choreo_hooker;
GRANT USAGE ON SEQUENCE hook_log_id_seq TO regress_choreo_hooker;
BEGIN;
SET LOCAL ROLE regress_choreo_hooker;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "registered by hooker"}');
RESET ROLE;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "registered by superuser"}');
COMMIT;
SELECT entry, who FROM hook_log ORDER BY id;
TRUNCATE hook_log;

-- keys are each role's own: another role's code in the transaction (here
-- a SECURITY DEFINER function) taking a key first does not make this
-- role's registration with the same key a no-op
CREATE FUNCTION hooker_audits() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
    SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "the hooker''s audit"}', key => 'audit')
$$;
ALTER FUNCTION hooker_audits() OWNER TO regress_choreo_hooker;
BEGIN;
SELECT hooker_audits();
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "the superuser''s audit"}', key => 'audit');
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "the superuser''s audit again"}', key => 'audit');
COMMIT;
SELECT entry, who FROM hook_log ORDER BY id;
TRUNCATE hook_log;
DROP FUNCTION hooker_audits();

-- and they may not change role
CREATE FUNCTION change_role() RETURNS void LANGUAGE sql AS $$ SET ROLE postgres $$;
BEGIN;
SET LOCAL ROLE regress_choreo_hooker;
SELECT choreo_pre_commit('change_role()');
RESET ROLE;
COMMIT;

-- PREPARE TRANSACTION runs them too (two-phase commit)
BEGIN;
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "prepared"}');
PREPARE TRANSACTION 'choreo_pre_commit_test';
SELECT hook_entries() AS not_visible_yet;
COMMIT PREPARED 'choreo_pre_commit_test';
SELECT hook_entries();
TRUNCATE hook_log;

-- bad input: SQLSTATE, and nothing registered
BEGIN;
SELECT err($$SELECT choreo_pre_commit(NULL)$$);
SELECT err($$SELECT choreo_pre_commit('no_such_hook()')$$);
SELECT err($$SELECT choreo_pre_commit('two_args_hook(int, int)')$$);
CREATE FUNCTION int_hook(int) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION rows_hook() RETURNS SETOF int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE PROCEDURE proc_hook() LANGUAGE sql AS $$ SELECT 1 $$;
SELECT err($$SELECT choreo_pre_commit('int_hook(int)')$$);
SELECT err($$SELECT choreo_pre_commit('rows_hook()')$$);
SELECT err($$SELECT choreo_pre_commit('proc_hook()')$$);
-- a trigger function cannot be called as a hook: refused when registered
CREATE FUNCTION trigger_hook() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
SELECT err($$SELECT choreo_pre_commit('trigger_hook()')$$);
SELECT err($$SELECT choreo_pre_commit('log_hook(jsonb)', on_error => 'ignore')$$);
SELECT err($$SELECT choreo_pre_commit('log_hook(jsonb)', on_error => NULL)$$);
CREATE FUNCTION private_hook() RETURNS void LANGUAGE sql AS $$ SELECT $$;
REVOKE EXECUTE ON FUNCTION private_hook() FROM PUBLIC;
SET LOCAL ROLE regress_choreo_hooker;
SELECT err($$SELECT choreo_pre_commit('private_hook()')$$);
RESET ROLE;
COMMIT;
SELECT hook_entries() AS nothing_ran;

-- a hook's callback dropped before COMMIT: a clear error (42883), or a
-- WARNING in log mode; nothing half-written
CREATE FUNCTION doomed_hook() RETURNS void LANGUAGE sql AS $$ INSERT INTO hook_log (entry) VALUES ('doomed') $$;
BEGIN;
SELECT choreo_pre_commit('doomed_hook()');
INSERT INTO hook_log (entry) VALUES ('same transaction');
DROP FUNCTION doomed_hook();
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default
SELECT hook_entries() AS nothing_committed;
BEGIN;
SELECT choreo_pre_commit('doomed_hook()', on_error => 'log');
INSERT INTO hook_log (entry) VALUES ('committed without the hook');
DROP FUNCTION doomed_hook();
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default
SELECT hook_entries();
TRUNCATE hook_log;

-- a hook that leaves a cursor open: closed at commit like any cursor of
-- the transaction (it once outlived the transaction on freed resources);
-- one declared WITH HOLD survives the commit, as WITH HOLD cursors do
CREATE FUNCTION open_cursor() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c refcursor := 'hook_cursor';
BEGIN
    OPEN c FOR SELECT g FROM generate_series(1, 3) g;
END $$;
CREATE FUNCTION hold_cursor() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'DECLARE held_cursor CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) g';
END $$;
BEGIN;
SELECT choreo_pre_commit('open_cursor()');
COMMIT;
SELECT err($$FETCH hook_cursor$$);
BEGIN;
SELECT choreo_pre_commit('hold_cursor()');
SELECT choreo_pre_commit('open_cursor()', on_error => 'log');
COMMIT;
FETCH ALL held_cursor;
CLOSE held_cursor;
SELECT count(*) AS open_cursors FROM pg_cursors;
-- PREPARE refuses a WITH HOLD cursor, as for one declared by the transaction itself
BEGIN;
SELECT choreo_pre_commit('hold_cursor()');
\set VERBOSITY terse
PREPARE TRANSACTION 'choreo_held_cursor';
\set VERBOSITY default
SELECT count(*) AS prepared FROM pg_prepared_xacts;

-- a hook in log mode failing at PREPARE (its subtransaction once crashed
-- the server when buffers had been flushed)
CREATE TABLE prepared_events (id serial, kind text);
SELECT choreo_create_buffer('prepared_events', 'prepared_events');
CREATE FUNCTION failing_flush_hook() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_fire_forget('prepared_events', '{"kind": "fired by the failing hook"}');
    PERFORM choreo_flush();
    RAISE EXCEPTION 'failing on purpose';
END $$;
BEGIN;
SELECT choreo_fire_forget('prepared_events', '{"kind": "before"}');
SAVEPOINT s;
SELECT choreo_flush();
RELEASE s;
SELECT choreo_pre_commit('failing_flush_hook()', on_error => 'log');
SELECT choreo_pre_commit('log_hook(jsonb)', '{"entry": "after the failing hook"}');
\set VERBOSITY terse
PREPARE TRANSACTION 'choreo_failing_hook';
\set VERBOSITY default
COMMIT PREPARED 'choreo_failing_hook';
SELECT kind FROM prepared_events ORDER BY id;
SELECT hook_entries();
TRUNCATE hook_log;
-- two log-mode hooks failing, the second after a flush (once a crash at COMMIT)
CREATE FUNCTION plain_failure() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'plain failure'; END $$;
BEGIN;
SELECT choreo_fire_forget('prepared_events', '{"kind": "pending at commit"}');
SELECT choreo_pre_commit('plain_failure()', on_error => 'log');
SELECT choreo_pre_commit('failing_flush_hook()', on_error => 'log');
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default
SELECT kind FROM prepared_events ORDER BY id;
DROP FUNCTION plain_failure();
SELECT choreo_drop_buffer('prepared_events');
DROP TABLE prepared_events;
DROP FUNCTION failing_flush_hook(), open_cursor(), hold_cursor(), trigger_hook();

DROP TABLE touched, child, parent;
DROP FUNCTION private_hook(), change_role();
REVOKE ALL ON hook_log FROM regress_choreo_hooker;
REVOKE ALL ON SEQUENCE hook_log_id_seq FROM regress_choreo_hooker;
DROP ROLE regress_choreo_hooker;
