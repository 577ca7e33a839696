-- The data bag and the error stack: choreo_bag, choreo_precheck_data,
-- choreo_job_data and choreo_errors, inside a run and after it.

-- before any run in this session there is nothing to show
SELECT choreo_bag() IS NULL AS no_bag, count(*) AS no_errors FROM choreo_errors();
SELECT choreo_precheck_data('x') IS NULL, choreo_job_data('x') IS NULL;

CREATE TABLE seen (step text, what text, value jsonb);

CREATE FUNCTION price_check() RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"price": 10}'::jsonb $$;
CREATE FUNCTION price_job() RETURNS int LANGUAGE sql AS $$ SELECT 12 $$;
CREATE FUNCTION broken_check() RETURNS boolean LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'no stock' USING ERRCODE = 'P0002'; END $$;
CREATE FUNCTION unused_job() RETURNS int LANGUAGE sql AS $$ SELECT 0 $$;
-- a step that looks at what came before it
CREATE FUNCTION look_check() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seen VALUES ('look', 'bag in precheck', choreo_bag());
    RETURN true;
END $$;
CREATE FUNCTION look_job() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seen VALUES
        ('look', 'price precheck', choreo_precheck_data('price')),
        ('look', 'price job', choreo_job_data('price')),
        ('look', 'own precheck', choreo_precheck_data('look')),
        ('look', 'own job (not yet)', choreo_job_data('look')),
        ('look', 'broken precheck', choreo_precheck_data('broken')),
        ('look', 'unknown step', choreo_precheck_data('nope')),
        ('look', 'errors', (SELECT jsonb_agg(to_jsonb(e)) FROM choreo_errors() e));
    RETURN 'looked';
END $$;

SELECT choreo_add_step('bagged', 'price', 'price_job()', 'price_check()');
SELECT choreo_add_step('bagged', 'broken', 'unused_job()', 'broken_check()');
SELECT choreo_add_step('bagged', 'look', 'look_job()', 'look_check()');

SELECT choreo_run('bagged')->'bag';
SELECT step, what, value FROM seen ORDER BY what;

-- after the run, outside any run: the last run's bag and errors
SELECT choreo_bag();
SELECT choreo_precheck_data('price'), choreo_job_data('price'), choreo_job_data('broken');
SELECT * FROM choreo_errors();

-- each run starts with an empty bag and error stack
TRUNCATE seen;
SELECT choreo_run('bagged')->'errors';
SELECT count(*) FROM seen WHERE what = 'errors' AND jsonb_array_length(value) = 1;

-- a fatal error is the last entry of the error stack, still there after
-- the transaction rolled back
CREATE FUNCTION boom() RETURNS int LANGUAGE sql AS $$ SELECT 1 / 0 $$;
SELECT choreo_add_step('bagged', 'boom', 'boom()');
BEGIN;
SELECT choreo_run('bagged');
ROLLBACK;
SELECT * FROM choreo_errors();
SELECT choreo_bag();

-- the same run under choreo_try_run returns it all in the report
SELECT choreo_try_run('bagged') - 'pipeline';

-- a run that fails before any step (unknown pipeline) leaves the last run alone
SELECT err($$SELECT choreo_run('missing')$$);
SELECT count(*) FROM choreo_errors();

SELECT choreo_drop_pipeline('bagged');
