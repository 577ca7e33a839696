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
