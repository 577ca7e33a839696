-- Run semantics: prechecks, jobs, cancel and skip, fatal errors under
-- choreo_run and choreo_try_run, nesting and the depth limit.

-- prechecks deciding: false and NULL skip the job, anything else runs it
CREATE FUNCTION pre_false() RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
CREATE FUNCTION pre_null() RETURNS boolean LANGUAGE sql AS $$ SELECT NULL::boolean $$;
CREATE FUNCTION pre_true() RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION pre_data() RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"stock": 42}'::jsonb $$;
CREATE FUNCTION pre_void() RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION pre_int_null() RETURNS int LANGUAGE sql AS $$ SELECT NULL::int $$;
CREATE FUNCTION job_note() RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM note('job'); RETURN 'done'; END $$;
CREATE FUNCTION job_void() RETURNS void LANGUAGE sql AS $$ SELECT $$;

SELECT choreo_add_step('decide', 'if_false', 'job_note()', 'pre_false()');
SELECT choreo_add_step('decide', 'if_null', 'job_note()', 'pre_null()');
SELECT choreo_add_step('decide', 'if_true', 'job_note()', 'pre_true()');
SELECT choreo_add_step('decide', 'if_data', 'job_note()', 'pre_data()');
SELECT choreo_add_step('decide', 'if_void', 'job_void()', 'pre_void()');
SELECT choreo_add_step('decide', 'if_int_null', 'job_void()', 'pre_int_null()');
SELECT choreo_add_step('decide', 'no_precheck', 'job_void()');
SELECT jsonb_pretty(choreo_run('decide'));
SELECT journal_entries();
TRUNCATE journal;

-- a precheck that fails: its writes are rolled back, the error is
-- recorded, its job is skipped, the run goes on
CREATE FUNCTION pre_fails() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM note('written by the failing precheck');
    RAISE EXCEPTION 'customer has no e-mail' USING ERRCODE = 'P0001';
END $$;
CREATE FUNCTION pre_divides() RETURNS int LANGUAGE sql AS $$ SELECT 1 / 0 $$;
SELECT choreo_add_step('failing_prechecks', 'notify', 'job_note()', 'pre_fails()');
SELECT choreo_add_step('failing_prechecks', 'divide', 'job_note()', 'pre_divides()');
SELECT choreo_add_step('failing_prechecks', 'last', 'job_note()', 'pre_true()');
SELECT jsonb_pretty(choreo_run('failing_prechecks'));
SELECT journal_entries();
TRUNCATE journal;

-- choreo_skip: the job is skipped, its data kept as precheck data, the
-- skip recorded in the error stack
CREATE FUNCTION pre_skip() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM note('written before skipping');
    PERFORM choreo_skip('{"reason": "already shipped"}', 'nothing to ship');
    RETURN true;
END $$;
CREATE FUNCTION pre_skip_bare() RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM choreo_skip(); RETURN true; END $$;
SELECT choreo_add_step('skipping', 'ship', 'job_note()', 'pre_skip()');
SELECT choreo_add_step('skipping', 'bare', 'job_note()', 'pre_skip_bare()');
SELECT choreo_add_step('skipping', 'after', 'job_note()');
SELECT jsonb_pretty(choreo_run('skipping'));
SELECT journal_entries();
TRUNCATE journal;

-- choreo_cancel from a precheck stops the run: fatal under choreo_run
-- (the caller's statement fails), reported under choreo_try_run
CREATE FUNCTION pre_cancel() RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN PERFORM choreo_cancel('order was withdrawn'); RETURN true; END $$;
SELECT choreo_add_step('canceling', 'first', 'job_note()');
SELECT choreo_add_step('canceling', 'check', 'job_note()', 'pre_cancel()');
SELECT choreo_add_step('canceling', 'never', 'job_note()');
SELECT err($$SELECT choreo_run('canceling')$$);
SELECT journal_entries();
SELECT jsonb_pretty(choreo_try_run('canceling'));
SELECT journal_entries();
TRUNCATE journal;

-- a failing job under choreo_run: the error is raised as it was, with a
-- CONTEXT line naming pipeline and step, and the whole statement fails
CREATE FUNCTION job_fails() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM note('written by the failing job');
    RAISE EXCEPTION 'payment declined' USING ERRCODE = '22012',
        DETAIL = 'The card expired.', HINT = 'Ask for another card.';
END $$;
SELECT choreo_add_step('failing_job', 'reserve', 'job_note()');
SELECT choreo_add_step('failing_job', 'charge', 'job_fails()', 'pre_true()');
SELECT choreo_add_step('failing_job', 'ship', 'job_note()');
\set VERBOSITY default
SELECT choreo_run('failing_job');
SELECT err($$SELECT choreo_run('failing_job')$$);
SELECT journal_entries();

-- under choreo_try_run: the failing job's writes are rolled back, the
-- earlier steps' writes stay, the report says failed
SELECT jsonb_pretty(choreo_try_run('failing_job'));
SELECT journal_entries();
TRUNCATE journal;

-- a job that cancels: canceled, not failed
CREATE FUNCTION job_cancels() RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM choreo_cancel(); RETURN 'x'; END $$;
SELECT choreo_add_step('job_cancel', 'stop', 'job_cancels()');
SELECT err($$SELECT choreo_run('job_cancel')$$);
SELECT choreo_try_run('job_cancel')->>'status' AS status,
       choreo_try_run('job_cancel')->'steps' AS steps;

-- a choreo_skip raised by a job is an ordinary fatal error
CREATE FUNCTION job_skips() RETURNS text LANGUAGE plpgsql
    AS $$ BEGIN PERFORM choreo_skip(); RETURN 'x'; END $$;
SELECT choreo_add_step('job_skip', 'skip', 'job_skips()');
SELECT err($$SELECT choreo_run('job_skip')$$);
SELECT choreo_try_run('job_skip')->>'status';

-- runs follow savepoints like any other statement
BEGIN;
SELECT choreo_run('failing_prechecks')->>'status';
SAVEPOINT before_second;
SELECT choreo_run('failing_prechecks')->>'status';
ROLLBACK TO SAVEPOINT before_second;
SELECT journal_entries();
COMMIT;
TRUNCATE journal;

-- a failing run inside a PL/pgSQL exception block leaves the session usable
DO $$
BEGIN
    PERFORM choreo_run('failing_job');
EXCEPTION WHEN division_by_zero THEN
    RAISE NOTICE 'caught: %', SQLERRM;
END $$;
SELECT journal_entries();

-- nesting: a job runs another pipeline; the inner run has its own bag and
-- errors, and the outer ones are intact afterwards
CREATE FUNCTION inner_job() RETURNS jsonb LANGUAGE sql
    AS $$ SELECT jsonb_build_object('inner_bag', choreo_bag()) $$;
CREATE FUNCTION outer_job() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    inner_report jsonb;
BEGIN
    inner_report := choreo_run('inner');
    RETURN jsonb_build_object('inner_status', inner_report->'status',
                              'inner_errors', inner_report->'errors',
                              'outer_bag_after', choreo_bag(),
                              'outer_errors_after', (SELECT jsonb_agg(e.step) FROM choreo_errors() e));
END $$;
SELECT choreo_add_step('inner', 'i1', 'job_note()', 'pre_fails()');
SELECT choreo_add_step('inner', 'i2', 'inner_job()', 'pre_data()');
SELECT choreo_add_step('outer', 'o1', 'job_void()', 'pre_fails()');
SELECT choreo_add_step('outer', 'o2', 'job_void()', 'pre_data()');
SELECT choreo_add_step('outer', 'o3', 'outer_job()');
SELECT jsonb_pretty(choreo_run('outer'));
TRUNCATE journal;

-- unbounded recursion ends at choreograph.max_depth with 54000
CREATE FUNCTION recurse() RETURNS jsonb LANGUAGE sql AS $$ SELECT choreo_run('recursive') $$;
SELECT choreo_add_step('recursive', 'again', 'recurse()');
SELECT err($$SELECT choreo_run('recursive')$$);
SET choreograph.max_depth = 3;
SELECT err($$SELECT choreo_run('recursive')$$);
SELECT count(*) AS errors_recorded FROM choreo_errors();
SELECT err($$SET choreograph.max_depth = 0$$);
RESET choreograph.max_depth;
-- the limit counts live runs only: sequential runs do not add up
SELECT count(choreo_run('decide')) FROM generate_series(1, 100);
SELECT count(*) FROM journal;
TRUNCATE journal;

-- clean up
SELECT choreo_drop_pipeline(name) FROM choreograph.pipelines ORDER BY name;

-- reports are jsonb like any other: equal to their text parsed back, and
-- searchable, also past 32 entries (where jsonb stores offsets)
SELECT choreo_add_step('wide', 'step_' || lpad(g::text, 2, '0'), 'job_note()', 'pre_data()')
  FROM generate_series(1, 40) g \g /dev/null
CREATE TEMP TABLE wide_report AS SELECT choreo_run('wide') AS r;
SELECT r = r::text::jsonb AS round_trips,
       r @> '{"steps": [{"step": "step_40", "outcome": "done"}]}' AS contains,
       jsonb_array_length(r->'steps') AS steps,
       r->'bag'->'step_39'->'precheck'->>'stock' AS deep_value,
       (SELECT count(*) FROM jsonb_object_keys(r->'bag')) AS bag_keys
  FROM wide_report;
SELECT choreo_drop_pipeline('wide');
TRUNCATE journal;
