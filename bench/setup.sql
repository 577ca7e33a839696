-- bench/setup.sql: objects for the benchmark scenarios, and their baselines.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS choreograph;

-- R1/R2/R3: a 3-step pipeline, each step a precheck and a job, trivial
-- PL/pgSQL functions on jsonb input (PL/pgSQL, so that the planner cannot
-- inline them into the baseline's query)
CREATE FUNCTION b_pre1(j jsonb) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN (j->>'x')::int > 0; END $$;
CREATE FUNCTION b_pre2(j jsonb) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN (j->>'x')::int > 0; END $$;
CREATE FUNCTION b_pre3(j jsonb) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN (j->>'x')::int > 0; END $$;
CREATE FUNCTION b_job1(j jsonb) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN (j->>'x')::int + 1; END $$;
CREATE FUNCTION b_job2(j jsonb) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN (j->>'x')::int + 2; END $$;
CREATE FUNCTION b_job3(j jsonb) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN (j->>'x')::int + 3; END $$;

SELECT choreo_add_step('r1', 'one', 'b_job1(jsonb)', 'b_pre1(jsonb)');
SELECT choreo_add_step('r1', 'two', 'b_job2(jsonb)', 'b_pre2(jsonb)');
SELECT choreo_add_step('r1', 'three', 'b_job3(jsonb)', 'b_pre3(jsonb)');

-- Baseline (b): the pipeline runner a user writes today in PL/pgSQL: a
-- steps table, EXECUTE per call, an exception block per precheck, a bag
CREATE TABLE plpgsql_steps (pipeline text, position int, step text, precheck text, job text,
                            PRIMARY KEY (pipeline, position));
INSERT INTO plpgsql_steps VALUES
    ('r1', 1, 'one', 'b_pre1', 'b_job1'),
    ('r1', 2, 'two', 'b_pre2', 'b_job2'),
    ('r1', 3, 'three', 'b_pre3', 'b_job3');

CREATE FUNCTION plpgsql_run(p_pipeline text, p_input jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    s record;
    ok boolean;
    result jsonb;
    bag jsonb := '{}';
    errors jsonb := '[]';
BEGIN
    FOR s IN SELECT * FROM plpgsql_steps WHERE pipeline = p_pipeline ORDER BY position LOOP
        ok := true;
        IF s.precheck IS NOT NULL THEN
            BEGIN
                EXECUTE format('SELECT %I($1)', s.precheck) INTO ok USING p_input;
            EXCEPTION WHEN OTHERS THEN
                errors := errors || jsonb_build_object('step', s.step, 'message', SQLERRM);
                ok := false;
            END;
            bag := bag || jsonb_build_object(s.step, jsonb_build_object('precheck', ok));
        END IF;
        IF ok THEN
            EXECUTE format('SELECT to_jsonb(%I($1))', s.job) INTO result USING p_input;
            bag := jsonb_set(bag, ARRAY[s.step], coalesce(bag->s.step, '{}') || jsonb_build_object('job', result));
        END IF;
    END LOOP;
    RETURN jsonb_build_object('pipeline', p_pipeline, 'status', 'completed', 'bag', bag, 'errors', errors);
END $$;

-- In-server loop: microseconds per call of one variant
CREATE FUNCTION bench_r1(variant text, n int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    j jsonb := '{"x": 1}';
    started timestamptz;
    ok boolean;
    r int;
    report jsonb;
BEGIN
    started := clock_timestamp();
    IF variant = 'choreo' THEN
        FOR i IN 1..n LOOP report := choreo_run('r1', j); END LOOP;
    ELSIF variant = 'direct' THEN
        -- the floor: the six functions called in one SELECT
        FOR i IN 1..n LOOP
            PERFORM b_pre1(j), b_job1(j), b_pre2(j), b_job2(j), b_pre3(j), b_job3(j);
        END LOOP;
    ELSIF variant = 'separate' THEN
        -- a stricter floor: six separate PL/pgSQL expressions, no executor
        FOR i IN 1..n LOOP
            ok := b_pre1(j); r := b_job1(j);
            ok := b_pre2(j); r := b_job2(j);
            ok := b_pre3(j); r := b_job3(j);
        END LOOP;
    ELSIF variant = 'plpgsql' THEN
        FOR i IN 1..n LOOP report := plpgsql_run('r1', j); END LOOP;
    ELSE
        RAISE EXCEPTION 'unknown variant %', variant;
    END IF;
    RETURN extract(epoch FROM clock_timestamp() - started) * 1e6 / n;
END $$;

-- B1: events fired in one transaction into an events table
CREATE TABLE b1_events (id bigserial PRIMARY KEY, kind text, payload jsonb,
                        at timestamptz NOT NULL DEFAULT now());
SELECT choreo_create_buffer('b1', 'b1_events', 1000);

-- B2: a row trigger emitting one event per row of a 100,000-row INSERT
CREATE TABLE b2_changes (id bigserial PRIMARY KEY, payload jsonb,
                         at timestamptz NOT NULL DEFAULT now());
SELECT choreo_create_buffer('b2', 'b2_changes', 1000);
CREATE TABLE b2_src_capture (id int, v text);
CREATE TRIGGER capture AFTER INSERT OR UPDATE OR DELETE ON b2_src_capture
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('b2', 'payload');
CREATE TABLE b2_src_plpgsql (id int, v text);
CREATE FUNCTION b2_plpgsql_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO b2_changes (payload) VALUES (jsonb_build_object(
        'op', TG_OP, 'table', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
        'new', CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
        'old', CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END));
    RETURN NULL;
END $$;
CREATE TRIGGER plpgsql_capture AFTER INSERT OR UPDATE OR DELETE ON b2_src_plpgsql
    FOR EACH ROW EXECUTE FUNCTION b2_plpgsql_trigger();
CREATE TABLE b2_src_none (id int, v text);

-- H1: post-commit hooks; each inserts a row recording when it started
CREATE TABLE h1_done (registered_at timestamptz, started_at timestamptz DEFAULT clock_timestamp());
CREATE TABLE h1_plain (id bigserial, at timestamptz DEFAULT now());
CREATE FUNCTION h1_hook(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p ? 'gate' THEN
        PERFORM pg_advisory_xact_lock_shared(7001);
    END IF;
    INSERT INTO h1_done (registered_at) VALUES ((p->>'at')::timestamptz);
END $$;

-- H2: a transaction registering 1,000 pre-commit hooks with the same key
CREATE TABLE h2_rows (id bigserial, at timestamptz DEFAULT now());
CREATE FUNCTION h2_hook() RETURNS void LANGUAGE sql AS $$ INSERT INTO h2_rows DEFAULT VALUES $$;

-- B3: memory while firing many events in one transaction (unlogged: the
-- scenario measures the buffer's memory, not the WAL)
CREATE UNLOGGED TABLE b3_events (id bigserial, kind text);
SELECT choreo_create_buffer('b3', 'b3_events', 1000);

-- R3: a run per row of a 100,000-row table, in one statement; the steps
-- take the row
CREATE TABLE r3_rows (id int, x int);
INSERT INTO r3_rows SELECT g, g % 10 FROM generate_series(1, 100000) g;
CREATE FUNCTION r3_pre1(r r3_rows) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN r.x >= 0; END $$;
CREATE FUNCTION r3_pre2(r r3_rows) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN r.x >= 0; END $$;
CREATE FUNCTION r3_pre3(r r3_rows) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RETURN r.x >= 0; END $$;
CREATE FUNCTION r3_job1(r r3_rows) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN r.x + 1; END $$;
CREATE FUNCTION r3_job2(r r3_rows) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN r.x + 2; END $$;
CREATE FUNCTION r3_job3(r r3_rows) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN r.x + 3; END $$;
SELECT choreo_add_step('r3', 'one', 'r3_job1(r3_rows)', 'r3_pre1(r3_rows)');
SELECT choreo_add_step('r3', 'two', 'r3_job2(r3_rows)', 'r3_pre2(r3_rows)');
SELECT choreo_add_step('r3', 'three', 'r3_job3(r3_rows)', 'r3_pre3(r3_rows)');
VACUUM ANALYZE r3_rows;

-- B2 baselines with PgQ (Debian package postgresql-15-pgq3): a PL/pgSQL
-- trigger calling pgq.insert_event, and PgQ's own C trigger pgq.logutriga
CREATE EXTENSION pgq;
SELECT pgq.create_queue('b2q');
CREATE TABLE b2_src_pgq (id int, v text);
CREATE FUNCTION b2_pgq_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgq.insert_event('b2q', TG_OP, jsonb_build_object(
        'op', TG_OP, 'table', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
        'new', CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
        'old', CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER pgq_capture AFTER INSERT OR UPDATE OR DELETE ON b2_src_pgq
    FOR EACH ROW EXECUTE FUNCTION b2_pgq_trigger();
CREATE TABLE b2_src_logutriga (id int, v text);
CREATE TRIGGER logutriga AFTER INSERT OR UPDATE OR DELETE ON b2_src_logutriga
    FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('b2q');

-- S1/S2/A1 baselines (the streams' own objects are in setup_streams.sql,
-- made only when the installed version has streams)
-- S1 (a): gap-free per-entity numbers the way users write them: a counter
-- row per entity bumped with UPDATE ... RETURNING, then the event INSERTed
CREATE TABLE s1_heads (entity text PRIMARY KEY, head bigint NOT NULL DEFAULT 0);
CREATE TABLE s1_events (entity text, seq bigint, payload jsonb,
                        created_at timestamptz NOT NULL DEFAULT now(),
                        PRIMARY KEY (entity, seq));
-- S1 (b), the floor: no per-entity numbers, a plain bigserial
CREATE TABLE s1_plain (id bigserial PRIMARY KEY, entity text, payload jsonb,
                       created_at timestamptz NOT NULL DEFAULT now());
-- S2: the commit-rate floor, a plain INSERT per transaction
CREATE TABLE s2_plain (id bigserial PRIMARY KEY, entity text, payload jsonb,
                       created_at timestamptz NOT NULL DEFAULT now());
-- A1: the hand-written queue its consumers DELETE ... SKIP LOCKED from
CREATE TABLE a1_q (id bigserial PRIMARY KEY, entity text, payload jsonb,
                   created_at timestamptz NOT NULL DEFAULT now());
