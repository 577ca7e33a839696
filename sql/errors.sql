-- Errors at run time: every bad input has its SQLSTATE, a message naming
-- what is involved, and leaves the session and the definitions intact.

CREATE FUNCTION ok() RETURNS text LANGUAGE sql AS $$ SELECT 'ok' $$;
SELECT choreo_add_step('errs', 'one', 'ok()');

-- names
SELECT err($$SELECT choreo_run(NULL)$$);
SELECT err($$SELECT choreo_run('')$$);
SELECT err($$SELECT choreo_run(NULL, 1)$$);
SELECT err($$SELECT choreo_try_run(NULL)$$);
SELECT err($$SELECT choreo_try_run('', 1)$$);
SELECT err($$SELECT choreo_run('missing')$$);
SELECT err($$SELECT choreo_try_run('missing', 'x'::text)$$);

-- odd but valid names work: a pipeline name is an identifier (quoted, it
-- may hold anything; unquoted ones fold to lower case), truncated to 63
-- bytes as PostgreSQL truncates identifiers; step names are any text
SELECT choreo_add_step('"odd ""name""; DROP TABLE x"', 'st''ep ✓', 'ok()');
SELECT choreo_run('"odd ""name""; DROP TABLE x"')->'bag';
SELECT pipeline FROM choreo_steps WHERE step = 'st''ep ✓';
SELECT err($$SELECT choreo_run('odd "name"; DROP TABLE x')$$);
SELECT choreo_add_step(repeat('p', 1000), repeat('s', 1000), 'ok()');
SELECT length(choreo_run(repeat('p', 1000))->>'pipeline');
SELECT choreo_drop_pipeline(repeat('p', 1000));
SELECT choreo_drop_pipeline('"odd ""name""; DROP TABLE x"');

-- the accessors take any step name, including NULL
SELECT choreo_precheck_data(NULL), choreo_job_data(NULL), choreo_job_data('');

-- choreo_cancel and choreo_skip raise their SQLSTATEs anywhere
SELECT err($$SELECT choreo_cancel('stop')$$);
SELECT err($$SELECT choreo_cancel(NULL)$$);
SELECT err($$SELECT choreo_skip()$$);
SELECT err($$SELECT choreo_skip('{"a": 1}', 'why')$$);
-- users can catch them by SQLSTATE
DO $$
BEGIN
    PERFORM choreo_cancel('caught');
EXCEPTION WHEN SQLSTATE 'CH001' THEN
    RAISE NOTICE 'canceled: %', SQLERRM;
END $$;

-- a failed definition change inside a transaction leaves the cache right
BEGIN;
SELECT choreo_add_step('errs', 'two', 'ok()');
SELECT err($$SELECT choreo_add_step('errs', 'two', 'ok()')$$);
SELECT choreo_run('errs')->'steps';
ROLLBACK;
SELECT choreo_run('errs')->'steps';

-- the CONTEXT of an error names the pipeline and the step, at every level
CREATE FUNCTION fails() RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'inner failure' USING ERRCODE = 'P0003'; END $$;
CREATE FUNCTION runs_inner() RETURNS jsonb LANGUAGE plpgsql
    AS $$ BEGIN RETURN choreo_run('errs_inner'); END $$;
SELECT choreo_add_step('errs_inner', 'deep', 'fails()');
SELECT choreo_add_step('errs_outer', 'calls', 'runs_inner()');
\set VERBOSITY default
SELECT choreo_run('errs_outer');
SELECT * FROM choreo_errors();
-- a precheck's cancel too
CREATE FUNCTION cancels() RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM choreo_cancel('not today'); RETURN true; END $$;
SELECT choreo_add_step('errs_cancel', 'c', 'ok()', 'cancels()');
SELECT choreo_run('errs_cancel');
-- notices raised by steps carry the same context
CREATE FUNCTION chatty() RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN RAISE NOTICE 'hello from a step'; RETURN 'said'; END $$;
SELECT choreo_add_step('errs_chatty', 'talk', 'chatty()');
SELECT choreo_run('errs_chatty')->'bag';

-- a query cancel (here: statement_timeout) is never swallowed by a
-- precheck's or choreo_try_run's error handling
CREATE FUNCTION sleepy() RETURNS boolean LANGUAGE sql AS $$ SELECT pg_sleep(5) IS NULL $$;
SELECT choreo_add_step('errs_timeout', 'slow', 'ok()', 'sleepy()');
SELECT choreo_add_step('errs_timeout_job', 'slow', 'sleepy()');
SET statement_timeout = '100ms';
SELECT choreo_run('errs_timeout');
SELECT choreo_try_run('errs_timeout');
SELECT choreo_try_run('errs_timeout_job');
RESET statement_timeout;
SELECT step, phase, sqlstate FROM choreo_errors();

-- the session is fine afterwards
SELECT choreo_run('errs')->>'status';
SELECT choreo_drop_pipeline(name) FROM choreograph.pipelines ORDER BY name;
