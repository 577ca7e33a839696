-- Defining pipelines: choreo_add_step, choreo_remove_step,
-- choreo_drop_pipeline and the choreo_steps view.

CREATE FUNCTION job_a() RETURNS text LANGUAGE sql AS $$ SELECT 'a' $$;
CREATE FUNCTION job_b(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'b' $$;
CREATE FUNCTION job_c() RETURNS text LANGUAGE sql AS $$ SELECT 'c' $$;
CREATE FUNCTION check_ok() RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;

-- appending creates the pipeline
SELECT choreo_add_step('def', 'a', 'job_a()');
SELECT choreo_add_step('def', 'c', 'job_c()', 'check_ok()');
-- inserting at a position shifts later steps
SELECT choreo_add_step('def', 'b', 'job_b(jsonb)', "position" => 2);
SELECT choreo_add_step('def', 'first', 'job_a()', NULL, 1);
SELECT * FROM choreo_steps WHERE pipeline = 'def';
SELECT name, owner FROM choreograph.pipelines WHERE name = 'def';
SELECT choreo_run('def')->'steps';

-- bad input raises its SQLSTATE and changes nothing
SELECT err($$SELECT choreo_add_step(NULL, 'x', 'job_a()')$$);
SELECT err($$SELECT choreo_add_step('def', NULL, 'job_a()')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', NULL)$$);
SELECT err($$SELECT choreo_add_step('', 'x', 'job_a()')$$);
SELECT err($$SELECT choreo_add_step('def', '', 'job_a()')$$);
SELECT err($$SELECT choreo_add_step('def', 'a', 'job_c()')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'no_such_function()')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'job_a()', 'no_such_check()')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'job_a()', NULL, 0)$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'job_a()', NULL, 6)$$);
SELECT err($$SELECT choreo_add_step('new', 'x', 'job_a()', NULL, 2)$$);

-- wrong function shapes
CREATE FUNCTION two_args(int, int) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION many_rows() RETURNS SETOF int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION polymorphic(anyelement) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION a_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE PROCEDURE a_procedure() LANGUAGE sql AS $$ SELECT 1 $$;
SELECT err($$SELECT choreo_add_step('def', 'x', 'two_args(int, int)')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'many_rows()')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'polymorphic(anyelement)')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'a_trigger()')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'a_procedure()')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'job_a()', 'two_args(int, int)')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'job_a()', 'many_rows()')$$);
SELECT err($$SELECT choreo_add_step('def', 'x', 'count("any")')$$);

-- none of the above wrote anything
SELECT pipeline, position, step FROM choreo_steps ORDER BY 1, 2;
SELECT name FROM choreograph.pipelines ORDER BY 1;

-- removing a step shifts the later ones up
SELECT choreo_remove_step('def', 'b');
SELECT pipeline, position, step FROM choreo_steps WHERE pipeline = 'def';
SELECT err($$SELECT choreo_remove_step('def', 'b')$$);
SELECT err($$SELECT choreo_remove_step('nope', 'a')$$);
SELECT err($$SELECT choreo_remove_step(NULL, 'a')$$);
SELECT err($$SELECT choreo_remove_step('def', NULL)$$);
SELECT err($$SELECT choreo_remove_step('def', '')$$);

-- a pipeline whose steps are all removed still exists, and runs nothing
SELECT choreo_add_step('empty', 'only', 'job_a()');
SELECT choreo_remove_step('empty', 'only');
SELECT choreo_run('empty');

-- dropping a pipeline drops its steps
SELECT choreo_drop_pipeline('empty');
SELECT err($$SELECT choreo_drop_pipeline('empty')$$);
SELECT err($$SELECT choreo_run('empty')$$);
SELECT err($$SELECT choreo_drop_pipeline(NULL)$$);
SELECT err($$SELECT choreo_drop_pipeline('')$$);

-- definitions are transactional, and a run sees its own transaction's
-- changes at once
BEGIN;
SELECT choreo_add_step('def', 'late', 'job_c()');
SELECT choreo_run('def')->'bag';
ROLLBACK;
SELECT choreo_run('def')->'bag';

BEGIN;
SELECT choreo_drop_pipeline('def');
SELECT err($$SELECT choreo_run('def')$$);
ROLLBACK;
SELECT choreo_run('def')->'bag';

BEGIN;
SAVEPOINT s;
SELECT choreo_remove_step('def', 'a');
SELECT choreo_run('def')->'bag';
ROLLBACK TO SAVEPOINT s;
SELECT choreo_run('def')->'bag';
COMMIT;

-- direct writes to the tables (allowed to their owner) also invalidate
-- the cached definition
UPDATE choreograph.steps SET job = 'job_c()' WHERE pipeline = 'def' AND step = 'a';
SELECT choreo_run('def')->'bag'->'a';
UPDATE choreograph.steps SET job = 'job_a()' WHERE pipeline = 'def' AND step = 'a';

-- a redefined function is picked up; a dropped one fails the run clearly
SELECT choreo_run('def')->'bag'->'c';
CREATE OR REPLACE FUNCTION job_c() RETURNS text LANGUAGE sql AS $$ SELECT 'c2' $$;
SELECT choreo_run('def')->'bag'->'c';
DROP FUNCTION job_c();
SELECT err($$SELECT choreo_run('def')$$);
SELECT err($$SELECT choreo_try_run('def')$$);
SELECT step, NOT EXISTS (SELECT FROM pg_proc WHERE oid = job) AS dangling FROM choreo_steps WHERE pipeline = 'def' AND step = 'c';
CREATE FUNCTION job_c() RETURNS text LANGUAGE sql AS $$ SELECT 'c3' $$;
SELECT choreo_remove_step('def', 'c');
SELECT choreo_add_step('def', 'c', 'job_c()', 'check_ok()');
SELECT choreo_run('def')->'bag';

-- a step that drops a later step's function during the run: the later
-- step fails clearly (42883), and the run is rolled back as a whole
CREATE FUNCTION drop_later() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO journal (entry) VALUES ('drop_later ran');
    DROP FUNCTION later_job();
    RETURN 'dropped';
END $$;
CREATE FUNCTION later_job() RETURNS text LANGUAGE sql AS $$ SELECT 'later' $$;
SELECT choreo_add_step('dropping', 'first', 'drop_later()'),
       choreo_add_step('dropping', 'second', 'later_job()', 'check_ok()');
SELECT err($$SELECT choreo_run('dropping')$$);
SELECT err($$SELECT choreo_try_run('dropping')$$);
SELECT count(*) AS later_job_exists FROM pg_proc WHERE proname = 'later_job';
SELECT journal_entries() AS nothing_written;
SELECT choreo_drop_pipeline('dropping');
DROP FUNCTION drop_later(), later_job();

-- step functions are kept by OID: a search_path change does not redirect them
CREATE SCHEMA shadow;
CREATE FUNCTION shadow.job_a() RETURNS text LANGUAGE sql AS $$ SELECT 'shadow' $$;
SET search_path = shadow, public;
SELECT choreo_run('def')->'bag'->'first';
RESET search_path;
DROP SCHEMA shadow CASCADE;

SELECT choreo_drop_pipeline('def');
SELECT count(*) FROM choreo_steps;
