-- pgTAP assertions on pipelines: definitions, run semantics and errors.
-- Runs in one transaction that is rolled back, so it leaves nothing behind.
BEGIN;
SELECT plan(31);

-- the catalog and the API
SELECT has_schema('choreograph');
SELECT has_table('choreograph', 'pipelines', 'pipelines table');
SELECT has_table('choreograph', 'steps', 'steps table');
SELECT has_view('choreo_steps');
SELECT has_function('choreo_add_step', ARRAY['text', 'text', 'regprocedure', 'regprocedure', 'integer']);
SELECT has_function('choreo_run', ARRAY['text']);
SELECT has_function('choreo_run', ARRAY['text', 'anyelement']);
SELECT has_function('choreo_try_run', ARRAY['text', 'anyelement']);
SELECT function_returns('choreo_run', ARRAY['text'], 'jsonb');
SELECT table_privs_are('choreograph', 'steps', 'public', ARRAY['INSERT', 'SELECT'],
                       'PUBLIC may only read the steps table and insert (guarded) rows');

CREATE TABLE tap_orders (id int, amount numeric);
CREATE TABLE tap_done (id int);
CREATE FUNCTION tap_valid(o tap_orders) RETURNS boolean LANGUAGE sql AS $$ SELECT o.amount > 0 $$;
CREATE FUNCTION tap_book(o tap_orders) RETURNS int LANGUAGE sql
    AS $$ INSERT INTO tap_done VALUES (o.id) RETURNING id $$;
CREATE FUNCTION tap_fail(o tap_orders) RETURNS int LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO tap_done VALUES (-o.id); RAISE EXCEPTION 'no' USING ERRCODE = '22023'; END $$;

SELECT lives_ok($$SELECT choreo_add_step('tap', 'book', 'tap_book(tap_orders)', 'tap_valid(tap_orders)')$$,
                'a step with a precheck can be added');
SELECT results_eq($$SELECT step, position FROM choreo_steps WHERE pipeline = 'tap'$$,
                  $$VALUES ('book'::text, 1)$$, 'choreo_steps lists it');
SELECT throws_ok($$SELECT choreo_add_step('tap', 'book', 'tap_book(tap_orders)')$$,
                 '42710', 'step "book" already exists in pipeline "tap"', 'duplicate step');
SELECT throws_ok($$SELECT choreo_add_step(NULL, 'x', 'tap_book(tap_orders)')$$, '22004');
SELECT throws_ok($$SELECT choreo_add_step('tap', '', 'tap_book(tap_orders)')$$, '22023');
SELECT throws_ok($$SELECT choreo_remove_step('tap', 'nope')$$, '42704');
SELECT throws_ok($$SELECT choreo_run('nope')$$, '42704', 'pipeline "nope" does not exist');
SELECT results_eq($$SELECT count(*) FROM choreo_steps WHERE pipeline = 'tap'$$, ARRAY[1::bigint],
                  'failed definitions wrote nothing');

-- runs
SELECT is(choreo_run('tap', ROW(1, 10)::tap_orders)->>'status', 'completed', 'a valid order completes');
SELECT is(choreo_job_data('book'), '1'::jsonb, 'the job''s result is in the bag');
SELECT is(choreo_run('tap', ROW(2, 0)::tap_orders)#>>'{steps,0,outcome}', 'skipped',
          'a false precheck skips the job');
SELECT is(choreo_precheck_data('book'), 'false'::jsonb, 'and is kept as precheck data');
SELECT results_eq($$SELECT id FROM tap_done$$, ARRAY[1], 'only the valid order was booked');

SELECT choreo_add_step('tap', 'fail', 'tap_fail(tap_orders)');
SELECT throws_ok($$SELECT choreo_run('tap', ROW(3, 5)::tap_orders)$$, '22023', 'no',
                 'a failing job raises its own error');
SELECT is((SELECT count(*) FROM tap_done WHERE abs(id) = 3), 0::bigint,
          'and its statement left nothing');
SELECT is(choreo_try_run('tap', ROW(4, 5)::tap_orders)->>'status', 'failed',
          'choreo_try_run reports the failure');
SELECT results_eq($$SELECT id FROM tap_done WHERE abs(id) = 4$$, ARRAY[4],
                  'keeping earlier steps'' writes, not the failed job''s');
SELECT results_eq($$SELECT step, phase, sqlstate FROM choreo_errors()$$,
                  $$VALUES ('fail'::text, 'job'::text, '22023'::text)$$,
                  'choreo_errors shows the failure');

-- triggers
CREATE TRIGGER tap_flow AFTER INSERT ON tap_orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('tap');
SELECT choreo_remove_step('tap', 'fail');
SELECT lives_ok($$INSERT INTO tap_orders VALUES (5, 1), (6, -1)$$, 'trigger runs');
SELECT results_eq($$SELECT id FROM tap_done WHERE id > 4 ORDER BY id$$, ARRAY[5],
                  'the trigger ran the pipeline per row');

-- depth limit
CREATE FUNCTION tap_recurse() RETURNS jsonb LANGUAGE sql AS $$ SELECT choreo_run('tap_loop') $$;
SELECT choreo_add_step('tap_loop', 'again', 'tap_recurse()');
SELECT throws_ok($$SELECT choreo_run('tap_loop')$$, '54000');

SELECT * FROM finish();
ROLLBACK;
