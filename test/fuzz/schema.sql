-- test/fuzz/schema.sql: what the random-transaction test creates in its own
-- database.  Every row written carries the identity of the operation that
-- asked for it (tx, op, n) and of the transaction that wrote it (wtx, from
-- the session setting fz.tx, NULL in a background worker) and of the role
-- that wrote it (who), so the checker can compare exactly.
SET client_min_messages = warning;
CREATE EXTENSION choreograph;

CREATE FUNCTION fz_wtx() RETURNS int LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('fz.tx', true), '')::int $$;

-- buffer targets: 'a' writes every item at once, the others in small
-- batches; 'd' has a BEFORE row trigger, so its batches take the INSERT
-- path instead of the COPY-like one.  An item tagged 'bad' fails the CHECK
-- when its batch is written.
CREATE TABLE ev_a (id bigserial PRIMARY KEY, tx int NOT NULL, op int NOT NULL,
                   n int NOT NULL DEFAULT 0, tag text CHECK (tag IS DISTINCT FROM 'bad'),
                   wtx int DEFAULT fz_wtx(), who name DEFAULT current_user);
CREATE TABLE ev_b (LIKE ev_a INCLUDING ALL);
CREATE TABLE ev_c (LIKE ev_a INCLUDING ALL);
CREATE TABLE ev_d (LIKE ev_a INCLUDING ALL);
CREATE FUNCTION fz_before_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEW;
END $$;
CREATE TRIGGER ev_d_before BEFORE INSERT ON ev_d FOR EACH ROW EXECUTE FUNCTION fz_before_row();
-- 'p' writes into a partitioned table (the INSERT path too)
CREATE TABLE ev_p (id bigint NOT NULL DEFAULT nextval('ev_a_id_seq'), tx int NOT NULL, op int NOT NULL,
                   n int NOT NULL DEFAULT 0, tag text CHECK (tag IS DISTINCT FROM 'bad'),
                   wtx int DEFAULT fz_wtx(), who name DEFAULT current_user) PARTITION BY HASH (op);
CREATE TABLE ev_p0 PARTITION OF ev_p FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE ev_p1 PARTITION OF ev_p FOR VALUES WITH (MODULUS 2, REMAINDER 1);
-- a deferred trigger on 'c' and on what pre-commit hooks write: the rows
-- written at commit must fire it too (def_log holds one row per row)
CREATE TABLE def_log (id bigserial PRIMARY KEY, src text, tx int, op int, n int, wtx int DEFAULT fz_wtx());
CREATE FUNCTION fz_deferred() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO def_log (src, tx, op, n) VALUES (TG_TABLE_NAME, NEW.tx, NEW.op, NEW.n);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER ev_c_deferred AFTER INSERT ON ev_c DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION fz_deferred();
SELECT choreo_create_buffer('a', 'ev_a', 1);
SELECT choreo_create_buffer('b', 'ev_b', 3);
SELECT choreo_create_buffer('c', 'ev_c', 7);
SELECT choreo_create_buffer('d', 'ev_d', 2);
SELECT choreo_create_buffer('p', 'ev_p', 2);

-- change capture: every change of src is an envelope in cap_log
CREATE TABLE src (k int PRIMARY KEY, v int NOT NULL, tx int, op int);
CREATE TABLE cap_log (id bigserial PRIMARY KEY, payload jsonb NOT NULL, wtx int DEFAULT fz_wtx(),
                      who name DEFAULT current_user);
SELECT choreo_create_buffer('cap', 'cap_log', 4);
CREATE TRIGGER src_capture AFTER INSERT OR UPDATE OR DELETE ON src
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('cap', 'payload');

-- what pipelines and hooks write
CREATE TABLE pipe_log (id bigserial PRIMARY KEY, tx int, op int, step text, wtx int DEFAULT fz_wtx(),
                       who name DEFAULT current_user);
CREATE TABLE pre_log (id bigserial PRIMARY KEY, tx int, op int, n int, wtx int DEFAULT fz_wtx(),
                      who name DEFAULT current_user);
CREATE TABLE post_log (id bigserial PRIMARY KEY, tx int, op int, n int, wtx int DEFAULT fz_wtx(),
                       who name DEFAULT current_user);
CREATE CONSTRAINT TRIGGER pre_log_deferred AFTER INSERT ON pre_log DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION fz_deferred();

CREATE FUNCTION fz_item(p jsonb, n int) RETURNS jsonb LANGUAGE sql IMMUTABLE
    AS $$ SELECT jsonb_build_object('tx', p->'tx', 'op', p->'op', 'n', n) $$;
CREATE FUNCTION fz_pipe(p jsonb, step text) RETURNS text LANGUAGE sql
    AS $$ INSERT INTO pipe_log (tx, op, step) VALUES ((p->>'tx')::int, (p->>'op')::int, step) RETURNING step $$;

-- pipeline steps (all take the run's jsonb input {"tx", "op"})
CREATE FUNCTION fz_true(p jsonb) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION fz_false(p jsonb) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
CREATE FUNCTION fz_job_w1(p jsonb) RETURNS text LANGUAGE sql AS $$ SELECT fz_pipe(p, 'w1') $$;
CREATE FUNCTION fz_job_w2(p jsonb) RETURNS text LANGUAGE sql AS $$ SELECT fz_pipe(p, 'w2') $$;
CREATE FUNCTION fz_job_w3(p jsonb) RETURNS text LANGUAGE sql AS $$ SELECT fz_pipe(p, 'w3') $$;
CREATE FUNCTION fz_job_w9(p jsonb) RETURNS text LANGUAGE sql AS $$ SELECT fz_pipe(p, 'w9') $$;
-- writes, then fails: the write is rolled back with the precheck
CREATE FUNCTION fz_pre_write_fail(p jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_pipe(p, 'pre-write-fail');
    RAISE EXCEPTION 'fz precheck failure';
END $$;
-- fires (one into 'a', which writes it at once), then fails: both are forgotten
CREATE FUNCTION fz_pre_fire_fail(p jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_fire_forget('b', fz_item(p, 104));
    PERFORM choreo_fire_forget('a', fz_item(p, 105));
    RAISE EXCEPTION 'fz precheck failure';
END $$;
CREATE FUNCTION fz_pre_fire_ok(p jsonb) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_fire_forget('b', fz_item(p, 106));
    RETURN 42;
END $$;
CREATE FUNCTION fz_job_fire(p jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_fire_forget('c', fz_item(p, 107));
    PERFORM choreo_fire_forget('a', fz_item(p, 108));
    RETURN fz_pipe(p, 'fire');
END $$;
CREATE FUNCTION fz_pre_skip(p jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_skip('{"skipped": true}', 'fz skip');
    RETURN true;
END $$;
CREATE FUNCTION fz_job_hooks(p jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_pre_commit('fz_pre_write(jsonb)', fz_item(p, 110));
    IF (p->>'post')::boolean THEN
        PERFORM choreo_post_commit('fz_post_write(jsonb)', fz_item(p, 111));
    END IF;
    RETURN fz_pipe(p, 'hooks');
END $$;
-- writes, fires, registers hooks, then fails: all of it is forgotten
CREATE FUNCTION fz_job_fail(p jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_pipe(p, 'job-fail');
    PERFORM choreo_fire_forget('b', fz_item(p, 120));
    PERFORM choreo_pre_commit('fz_pre_write(jsonb)', fz_item(p, 121));
    IF (p->>'post')::boolean THEN
        PERFORM choreo_post_commit('fz_post_write(jsonb)', fz_item(p, 122));
    END IF;
    RAISE EXCEPTION 'fz job failure';
END $$;
CREATE FUNCTION fz_pre_fire_d(p jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_fire_forget('d', fz_item(p, 130));
    RETURN true;
END $$;
CREATE FUNCTION fz_pre_cancel(p jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_fire_forget('b', fz_item(p, 131));
    PERFORM choreo_cancel('fz cancel');
    RETURN true;
END $$;
CREATE FUNCTION fz_job_nested(p jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_try_run('pl_fail', p);
    RETURN fz_pipe(p, 'nested');
END $$;

SELECT choreo_add_step('pl_ok', 'w1', 'fz_job_w1(jsonb)', 'fz_true(jsonb)');
SELECT choreo_add_step('pl_ok', 'pw', 'fz_job_w2(jsonb)', 'fz_pre_write_fail(jsonb)');
SELECT choreo_add_step('pl_ok', 'pf', 'fz_job_w3(jsonb)', 'fz_false(jsonb)');
SELECT choreo_add_step('pl_ok', 'pff', 'fz_job_w2(jsonb)', 'fz_pre_fire_fail(jsonb)');
SELECT choreo_add_step('pl_ok', 'pfo', 'fz_job_fire(jsonb)', 'fz_pre_fire_ok(jsonb)');
SELECT choreo_add_step('pl_ok', 'sk', 'fz_job_w3(jsonb)', 'fz_pre_skip(jsonb)');
SELECT choreo_add_step('pl_ok', 'hk', 'fz_job_hooks(jsonb)');
SELECT choreo_add_step('pl_ok', 'w9', 'fz_job_w9(jsonb)');

SELECT choreo_add_step('pl_fail', 'w1', 'fz_job_w1(jsonb)');
SELECT choreo_add_step('pl_fail', 'fj', 'fz_job_fail(jsonb)');
SELECT choreo_add_step('pl_fail', 'w9', 'fz_job_w9(jsonb)');

SELECT choreo_add_step('pl_cancel', 'w1', 'fz_job_w1(jsonb)', 'fz_pre_fire_d(jsonb)');
SELECT choreo_add_step('pl_cancel', 'cx', 'fz_job_w2(jsonb)', 'fz_pre_cancel(jsonb)');
SELECT choreo_add_step('pl_cancel', 'w9', 'fz_job_w9(jsonb)');

SELECT choreo_add_step('pl_nest', 'nest', 'fz_job_nested(jsonb)');
SELECT choreo_add_step('pl_nest', 'w9', 'fz_job_w9(jsonb)');

-- pre-commit hook callbacks (payload {"tx", "op", "n", ...})
CREATE FUNCTION fz_pre_write(p jsonb) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO pre_log (tx, op, n) VALUES ((p->>'tx')::int, (p->>'op')::int, (p->>'n')::int) $$;
CREATE FUNCTION fz_pre_noarg() RETURNS void LANGUAGE sql
    AS $$ INSERT INTO pre_log (tx, op, n) VALUES (fz_wtx(), -1, -1) $$;
CREATE FUNCTION fz_pre_fail(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_pre_write(p);
    RAISE EXCEPTION 'fz pre-commit hook failure %', p->>'n';
END $$;
-- registers a hook from a hook (with the payload's key, if any)
CREATE FUNCTION fz_pre_chain(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_pre_write(p);
    PERFORM choreo_pre_commit('fz_pre_write(jsonb)', fz_item(p, (p->>'n')::int + 1), 'abort', p->>'key');
END $$;
CREATE FUNCTION fz_pre_fire(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_pre_write(p);
    PERFORM choreo_fire_forget(p->>'buffer', fz_item(p, (p->>'n')::int + 1));
END $$;
-- fires, writes the buffer's pending items, then fails
CREATE FUNCTION fz_pre_fire_flush_fail(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_pre_write(p);
    PERFORM choreo_fire_forget(p->>'buffer', fz_item(p, (p->>'n')::int + 1));
    PERFORM choreo_flush(p->>'buffer');
    RAISE EXCEPTION 'fz pre-commit hook failure %', p->>'n';
END $$;
CREATE FUNCTION fz_pre_post(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_pre_write(p);
    PERFORM choreo_post_commit('fz_post_write(jsonb)', fz_item(p, (p->>'n')::int + 1));
END $$;
CREATE FUNCTION fz_pre_post_fail(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_post_commit('fz_post_write(jsonb)', fz_item(p, (p->>'n')::int + 1));
    RAISE EXCEPTION 'fz pre-commit hook failure %', p->>'n';
END $$;

-- changes src row p->>'k' (inserts it, or adds 1 to v): captured
CREATE FUNCTION fz_upsert(p jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO src (k, v, tx, op) VALUES ((p->>'k')::int, 0, (p->>'tx')::int, (p->>'op')::int)
    ON CONFLICT (k) DO UPDATE SET v = src.v + 1, tx = EXCLUDED.tx, op = EXCLUDED.op
$$;
CREATE FUNCTION fz_pre_capture(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_pre_write(p);
    PERFORM fz_upsert(p);
END $$;

-- the post-commit hook callbacks: deterministic, never failing (the
-- second changes src in the worker, whose capture writes a batch there)
CREATE FUNCTION fz_post_write(p jsonb) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO post_log (tx, op, n) VALUES ((p->>'tx')::int, (p->>'op')::int, (p->>'n')::int) $$;
CREATE FUNCTION fz_post_capture(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM fz_post_write(p);
    PERFORM fz_upsert(p);
END $$;

-- runs statements in an exception block, failing on purpose if asked;
-- returns 'ok' or 'caught' and the SQLSTATE
CREATE FUNCTION fz_try(statements text[], fail boolean) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY statements LOOP
        EXECUTE s;
    END LOOP;
    IF fail THEN
        RAISE EXCEPTION 'fz deliberate failure';
    END IF;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN 'caught ' || SQLSTATE;
END $$;

CREATE FUNCTION fz_raise() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'fz deliberate failure';
END $$;

-- the checker reads the rows written since its last check (and, for the
-- buffers' sake, the targets have more indexes to write)
CREATE INDEX ON ev_a (tx); CREATE INDEX ON ev_a (wtx);
CREATE INDEX ON ev_b (tx); CREATE INDEX ON ev_b (wtx);
CREATE INDEX ON ev_c (tx); CREATE INDEX ON ev_c (wtx);
CREATE INDEX ON ev_d (tx); CREATE INDEX ON ev_d (wtx);
CREATE INDEX ON cap_log (wtx);
CREATE INDEX ON pipe_log (tx); CREATE INDEX ON pipe_log (wtx);
CREATE INDEX ON pre_log (tx); CREATE INDEX ON pre_log (wtx);
CREATE INDEX ON post_log (tx);
CREATE INDEX ON ev_p (id); CREATE INDEX ON ev_p (tx); CREATE INDEX ON ev_p (wtx);
CREATE INDEX ON def_log (tx); CREATE INDEX ON def_log (wtx);

-- a second role (named after the database), when the connecting role may
-- create one: transactions switch to it with SET LOCAL ROLE, so items of
-- one buffer come from two roles and hooks run as either
DO $$
BEGIN
    BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', current_database() || '_model');
    EXCEPTION WHEN duplicate_object THEN
        NULL;
    WHEN insufficient_privilege THEN
        RETURN;
    END;
    EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA public TO %I', current_database() || '_model');
    EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO %I', current_database() || '_model');
END $$;
