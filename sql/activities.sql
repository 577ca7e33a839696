-- Activities: choreo_create_activity, choreo_drop_activity,
-- choreo_start_activity, choreo_reset_activity, choreo_pause_activity,
-- choreo_resume_activity, choreo_run_activity, the choreo_activities view.
-- Every activity here is of engine 'manual': only choreo_run_activity
-- runs it, so what happens is what the test does (the workers: TAP tests).

CREATE ROLE regress_choreo_act_owner NOLOGIN;
CREATE ROLE regress_choreo_act_other NOLOGIN;
CREATE ROLE regress_choreo_act_member NOLOGIN IN ROLE regress_choreo_act_owner;
-- each call of a processor, as it was called
CREATE TABLE act_calls (id serial PRIMARY KEY, who text, entity text, tail bigint,
                        seqs text, initial boolean);
GRANT ALL ON act_calls TO PUBLIC;
GRANT ALL ON SEQUENCE act_calls_id_seq TO PUBLIC;
-- the processor: records its call, then returns what regress.outcome says
-- ('eof' by default: caught up to the last event handed over)
CREATE FUNCTION act_proc(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE plpgsql AS $$
DECLARE
    last bigint := coalesce((events->-1->>'seq')::bigint, tail);
BEGIN
    INSERT INTO act_calls (who, entity, tail, seqs, initial)
    SELECT current_user, entity, tail,
           coalesce(string_agg(e->>'seq', ',' ORDER BY o), ''), initial
      FROM jsonb_array_elements(events) WITH ORDINALITY AS a(e, o);
    CASE coalesce(nullif(current_setting('regress.outcome', true), ''), 'eof')
        WHEN 'eof' THEN RETURN choreo_eof(last);
        WHEN 'eof_one' THEN RETURN choreo_eof(tail + 1);
        WHEN 'eof_same' THEN RETURN choreo_eof(tail);
        WHEN 'done' THEN RETURN choreo_done(last);
        WHEN 'retry' THEN RETURN choreo_retry(tail);
        WHEN 'retry_after' THEN RETURN choreo_retry(last, '1 hour');
        WHEN 'retry_silent' THEN RETURN choreo_retry(last, NULL, true);
        WHEN 'raise' THEN RAISE EXCEPTION 'processor failed for %', entity USING ERRCODE = 'P0099';
        WHEN 'null' THEN RETURN NULL;
        WHEN 'null_tail' THEN RETURN choreo_eof(NULL);
        WHEN 'unknown_status' THEN RETURN ROW(last, 'finished', NULL, false)::choreo_outcome;
        WHEN 'null_status' THEN RETURN ROW(last, NULL, NULL, false)::choreo_outcome;
        WHEN 'beyond' THEN RETURN choreo_eof(last + 1);
        WHEN 'below' THEN RETURN choreo_eof(tail - 1);
        WHEN 'negative' THEN RETURN choreo_eof(-1);
    END CASE;
END $$;
-- the calls so far, and forget them
CREATE FUNCTION calls() RETURNS TABLE (who text, entity text, tail bigint, seqs text, initial boolean)
    LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM act_calls RETURNING *)
    SELECT who, entity, tail, seqs, initial FROM gone ORDER BY id $$;
-- an activity's rows in the view, without the columns that vary with time
CREATE FUNCTION cursors(a text) RETURNS TABLE (entity text, tail bigint, head bigint, lag bigint,
                                             status text, attempts integer, last_error text,
                                             scheduled boolean)
    LANGUAGE sql AS $$
    SELECT entity, tail, head, lag, status, attempts, last_error, next_run_at IS NOT NULL
      FROM choreo_activities WHERE activity = a ORDER BY entity $$;

-- the view's columns
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'choreo_activities'::regclass AND attnum > 0 ORDER BY attnum;

GRANT CREATE ON SCHEMA public TO regress_choreo_act_owner;
SET ROLE regress_choreo_act_owner;
SELECT choreo_create_activity('act', 'acts', 'act_proc(text, bigint, jsonb, boolean)',
                              '{"engine": "manual"}');
SELECT name, stream, processor, options, engine, cron_interval, batch_size, initial_batch_size,
       max_concurrency, max_attempts, backoff_base, backoff_max, auto_start, serialize_group,
       paused, owner, namespace
  FROM choreograph.activities WHERE name = 'act';
SELECT count(*) AS started FROM choreo_activities;

-- the initial run happens even with no events: initial true, tail 0, []
SELECT * FROM choreo_run_activity('act', 'e1');
SELECT * FROM calls();
SELECT * FROM cursors('act');
-- then nothing runs while no event lies beyond the tail: NULL, no call
SELECT choreo_run_activity('act', 'e1') IS NULL AS nothing_to_do;
SELECT count(*) AS calls FROM calls();
-- events after the tail, oldest first, not initial any more
SELECT choreo_emit('acts', 'e1', jsonb_build_object('n', g)) FROM generate_series(1, 3) g;
SELECT * FROM cursors('act');
SELECT * FROM choreo_run_activity('act', 'e1');
SELECT * FROM calls();
SELECT * FROM cursors('act');
-- the shape of events: seq, payload, created_at of each
CREATE FUNCTION act_shape(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'type %, keys %, without created_at %, created_at is a timestamptz: %',
        jsonb_typeof(events),
        (SELECT string_agg(DISTINCT k, ',') FROM jsonb_array_elements(events) e, jsonb_object_keys(e) k),
        (SELECT jsonb_agg(e - 'created_at') FROM jsonb_array_elements(events) e),
        (SELECT bool_and((e->>'created_at')::timestamptz <= now()) FROM jsonb_array_elements(events) e);
    RETURN choreo_eof((events->-1->>'seq')::bigint);
END $$;
SELECT choreo_create_activity('shape', 'acts', 'act_shape(text, bigint, jsonb, boolean)',
                              '{"engine": "manual"}');
SELECT choreo_emit('acts', 'e1', NULL);
SELECT choreo_emit('acts', 'e1', '[1, "two"]');
SELECT * FROM choreo_run_activity('shape', 'e1');
SELECT choreo_drop_activity('shape');
DROP FUNCTION act_shape(text, bigint, jsonb, boolean);

-- a tail below the last event handed over is kept, and the next run goes
-- on from it; the same tail again is allowed
SELECT choreo_emit('acts', 'e2', jsonb_build_object('n', g)) FROM generate_series(1, 3) g;
SET regress.outcome = 'eof_one';
SELECT * FROM choreo_run_activity('act', 'e2');
SELECT * FROM choreo_run_activity('act', 'e2');
SET regress.outcome = 'eof_same';
SELECT * FROM choreo_run_activity('act', 'e2');
SELECT * FROM calls();
SELECT * FROM cursors('act') WHERE entity = 'e2';
RESET regress.outcome;

-- initial stays true until a run commits: a rolled-back run, and one that
-- raised, leave it true
SELECT choreo_emit('acts', 'e3', '"a"');
BEGIN;
SELECT * FROM choreo_run_activity('act', 'e3');
ROLLBACK;
SET regress.outcome = 'raise';
SELECT * FROM choreo_run_activity('act', 'e3');
RESET regress.outcome;
SELECT * FROM choreo_run_activity('act', 'e3');
SELECT choreo_emit('acts', 'e3', '"b"');
SELECT * FROM choreo_run_activity('act', 'e3');
SELECT * FROM calls();

-- the processor's error reaches the caller as it is (SQLSTATE, message),
-- in the caller's transaction, which it aborts: nothing is stored
SELECT choreo_emit('acts', 'e4', '"x"');
SELECT * FROM choreo_run_activity('act', 'e4');
SELECT choreo_emit('acts', 'e4', '"y"');
SET regress.outcome = 'raise';
\set VERBOSITY sqlstate
SELECT * FROM choreo_run_activity('act', 'e4');
\set VERBOSITY default
SELECT err($$SELECT choreo_run_activity('act', 'e4')$$) AS raised;
SELECT * FROM cursors('act') WHERE entity = 'e4';
-- in a savepoint, the caller may go on
BEGIN;
SAVEPOINT s;
SELECT * FROM choreo_run_activity('act', 'e4');
ROLLBACK TO SAVEPOINT s;
RESET regress.outcome;
SELECT * FROM choreo_run_activity('act', 'e4');
COMMIT;
SELECT * FROM calls();
SELECT * FROM cursors('act') WHERE entity = 'e4';

-- outcomes the engine refuses: 22023, nothing stored
SELECT choreo_emit('acts', 'e5', jsonb_build_object('n', g)) FROM generate_series(1, 2) g;
SELECT * FROM choreo_run_activity('act', 'e5');
SELECT choreo_emit('acts', 'e5', '{"n": 3}');
SELECT set_config('regress.outcome', o, false) AS outcome,
       err($$SELECT choreo_run_activity('act', 'e5')$$) AS error
  FROM unnest(ARRAY['null', 'null_tail', 'unknown_status', 'null_status', 'beyond', 'below',
                    'negative']) AS o;
RESET regress.outcome;
SELECT * FROM cursors('act') WHERE entity = 'e5';
SELECT * FROM choreo_run_activity('act', 'e5');

-- done: never runs again for this entity, even with new events, until reset
SELECT choreo_emit('acts', 'e6', '1');
SET regress.outcome = 'done';
SELECT * FROM choreo_run_activity('act', 'e6');
RESET regress.outcome;
SELECT choreo_emit('acts', 'e6', '2');
SELECT choreo_run_activity('act', 'e6') IS NULL AS done_is_skipped;
SELECT * FROM cursors('act') WHERE entity = 'e6';
SELECT choreo_reset_activity('act', 'e6');
SELECT * FROM cursors('act') WHERE entity = 'e6';
SELECT * FROM choreo_run_activity('act', 'e6');
SELECT * FROM calls();

-- retry: attempts counts, the entity is retrying (scheduled), the LOG
-- line names activity and entity unless silent; an eof clears attempts
SELECT choreo_emit('acts', 'e7', '1');
SET client_min_messages = log;
SET regress.outcome = 'retry';
SELECT (choreo_run_activity('act', 'e7')).status;
SET regress.outcome = 'retry_silent';
SELECT (choreo_run_activity('act', 'e7')).status;
RESET client_min_messages;
-- backoff: backoff_base * 2^(attempts - 1)
SELECT *, (SELECT next_run_at - updated_at FROM choreo_activities WHERE activity = 'act' AND entity = 'e7') AS backoff
  FROM cursors('act') WHERE entity = 'e7';
-- a retry with an interval: not before then
SELECT choreo_emit('acts', 'e7', '2');
SET regress.outcome = 'retry_after';
SELECT (o).tail, (o).status, (o).retry_at - now() AS after, (o).silent
  FROM choreo_run_activity('act', 'e7') o;
SELECT *, (SELECT next_run_at - updated_at FROM choreo_activities WHERE activity = 'act' AND entity = 'e7') AS next_run_in
  FROM cursors('act') WHERE entity = 'e7';
RESET regress.outcome;
SELECT choreo_emit('acts', 'e7', '3');
SELECT * FROM choreo_run_activity('act', 'e7');
SELECT * FROM cursors('act') WHERE entity = 'e7';
SELECT * FROM calls();
-- the outcome constructors
SELECT choreo_eof(4), choreo_done(5), (choreo_retry(6)).*,
       (choreo_retry(7, '1 minute', NULL)).retry_at = now() + interval '1 minute' AS retry_at,
       choreo_retry(8, silent => true) AS silent;

-- a failed entity (max_attempts errors, counted by the workers) is
-- skipped until reset; reset clears the state, attempts and the error and
-- may move the tail
SELECT choreo_emit('acts', 'e8', jsonb_build_object('n', g)) FROM generate_series(1, 4) g;
SELECT choreo_start_activity('act', 'e8');
RESET ROLE;
UPDATE choreograph.activity_cursors c SET state = 'failed', attempts = 5, errors = 5,
       last_error = 'processor failed for e8'
  FROM choreograph.stream_entities e
 WHERE e.id = c.entity_id AND e.stream = 'acts' AND e.entity = 'e8';
SET ROLE regress_choreo_act_owner;
SELECT * FROM cursors('act') WHERE entity = 'e8';
SELECT choreo_run_activity('act', 'e8') IS NULL AS failed_is_skipped;
SELECT choreo_reset_activity('act', 'e8', 2);
SELECT * FROM cursors('act') WHERE entity = 'e8';
SELECT * FROM choreo_run_activity('act', 'e8');
SELECT * FROM calls();
-- reset with a tail: below 0 or beyond the head 22023; back to 0 is fine
SELECT err($$SELECT choreo_reset_activity('act', 'e8', -1)$$) AS negative_tail;
SELECT err($$SELECT choreo_reset_activity('act', 'e8', 5)$$) AS beyond_head;
SELECT choreo_reset_activity('act', 'e8', 0);
SELECT * FROM cursors('act') WHERE entity = 'e8';
SELECT err($$SELECT choreo_reset_activity('act', 'never started')$$) AS reset_unknown_entity;

-- start: creates the cursor (idempotent); with a tail sets it
SELECT choreo_emit('acts', 'e9', jsonb_build_object('n', g)) FROM generate_series(1, 5) g;
SELECT choreo_start_activity('act', 'e9', 3);
SELECT choreo_start_activity('act', 'e9');
SELECT * FROM cursors('act') WHERE entity = 'e9';
SELECT * FROM choreo_run_activity('act', 'e9');
SELECT * FROM calls();
SELECT err($$SELECT choreo_start_activity('act', 'e9', -1)$$) AS negative_tail;
SELECT err($$SELECT choreo_start_activity('act', 'e9', 6)$$) AS beyond_head;
-- an entity with no event yet may be started (tail 0)
SELECT choreo_start_activity('act', 'no events yet');
SELECT * FROM cursors('act') WHERE entity = 'no events yet';

-- pause and resume: paused shows instead of idle and retrying
SELECT choreo_pause_activity('act');
SELECT choreo_pause_activity('act');
SELECT entity, status FROM cursors('act');
-- a paused activity may still be run by hand
SELECT choreo_emit('acts', 'e9', '6');
SELECT * FROM choreo_run_activity('act', 'e9');
SELECT * FROM calls();
SELECT choreo_resume_activity('act');
SELECT choreo_resume_activity('act');
SELECT entity, status FROM cursors('act');

-- batch_size and initial_batch_size: events per call
SELECT choreo_create_activity('batched', 'batches', 'act_proc(text, bigint, jsonb, boolean)',
                              '{"engine": "manual", "batch_size": 2, "initial_batch_size": 3}');
SELECT choreo_create_activity('batched_default', 'batches', 'act_proc(text, bigint, jsonb, boolean)',
                              '{"engine": "manual", "batch_size": 2}');
SELECT choreo_emit('batches', 'b', jsonb_build_object('n', g)) FROM generate_series(1, 8) g;
SELECT (choreo_run_activity('batched', 'b')).tail AS t1, (choreo_run_activity('batched', 'b')).tail AS t2;
SELECT (choreo_run_activity('batched', 'b')).tail AS t3;
SELECT (choreo_run_activity('batched', 'b')).tail AS t4;
SELECT choreo_run_activity('batched', 'b') IS NULL AS t5_nothing;
SELECT (choreo_run_activity('batched_default', 'b')).tail AS d1;
SELECT (choreo_run_activity('batched_default', 'b')).tail AS d2;
SELECT * FROM calls();
-- a batch of more than 1000 events (the default)
SELECT count(choreo_emit('acts', 'big', to_jsonb(g))) FROM generate_series(1, 1200) g;
SELECT (choreo_run_activity('act', 'big')).tail;
SELECT (choreo_run_activity('act', 'big')).tail;
SELECT who, entity, tail, length(seqs) - length(replace(seqs, ',', '')) + 1 AS events, initial FROM calls();
SELECT choreo_drop_activity('batched');
SELECT choreo_drop_activity('batched_default');

-- auto_start false: only started entities run (55000 otherwise)
SELECT choreo_create_activity('started_only', 'acts', 'act_proc(text, bigint, jsonb, boolean)',
                              '{"engine": "manual", "auto_start": false}');
SELECT err($$SELECT choreo_run_activity('started_only', 'e1')$$) AS not_started;
SELECT count(*) AS cursors FROM choreo_activities WHERE activity = 'started_only';
SELECT choreo_start_activity('started_only', 'e1', 4);
SELECT * FROM choreo_run_activity('started_only', 'e1');
SELECT * FROM calls();
SELECT choreo_drop_activity('started_only');

-- a processor that no longer exists
CREATE FUNCTION act_gone(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE sql AS $$ SELECT choreo_eof(tail) $$;
SELECT choreo_create_activity('gone', 'acts', 'act_gone(text, bigint, jsonb, boolean)',
                              '{"engine": "manual"}');
SELECT * FROM choreo_run_activity('gone', 'e1');
DROP FUNCTION act_gone(text, bigint, jsonb, boolean);
SELECT choreo_emit('acts', 'e1', '"for a dropped processor"');
-- a clear error naming the activity, not an internal one
SELECT err($$SELECT choreo_run_activity('gone', 'e1')$$) NOT LIKE 'XX000%' AS not_internal,
       err($$SELECT choreo_run_activity('gone', 'e1')$$) LIKE '%of activity "gone" no longer exists' AS says_so;
SELECT choreo_drop_activity('gone');
RESET ROLE;

-- options: every one, with the defaults filled in
CREATE FUNCTION activity_options(o jsonb) RETURNS TABLE (engine text, cron_interval interval,
        batch_size integer, initial_batch_size integer, max_concurrency integer,
        max_attempts integer, backoff_base interval, backoff_max interval, auto_start boolean,
        serialize_group text)
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_create_activity('options', 'opts', 'act_proc(text, bigint, jsonb, boolean)', o);
    RETURN QUERY SELECT a.engine, a.cron_interval, a.batch_size, a.initial_batch_size,
                        a.max_concurrency, a.max_attempts, a.backoff_base, a.backoff_max,
                        a.auto_start, a.serialize_group
                   FROM choreograph.activities a WHERE a.name = 'options';
    PERFORM choreo_drop_activity('options');
END $$;
SELECT * FROM activity_options('{}');
SELECT * FROM activity_options('{"engine": "lazy"}');
SELECT * FROM activity_options('{"engine": "cron", "interval": "1 second"}');
SELECT * FROM activity_options('{"engine": "cron", "interval": "2 hours 3 minutes"}');
SELECT * FROM activity_options('{"engine": "manual", "batch_size": 1}');
SELECT * FROM activity_options('{"batch_size": 100000}');
SELECT * FROM activity_options('{"batch_size": 10, "initial_batch_size": 100000}');
SELECT * FROM activity_options('{"initial_batch_size": 1}');
SELECT * FROM activity_options('{"max_concurrency": 0}');
SELECT * FROM activity_options('{"max_concurrency": 1000}');
SELECT * FROM activity_options('{"max_attempts": 1}');
SELECT * FROM activity_options('{"max_attempts": 1000}');
SELECT * FROM activity_options('{"backoff_base": "10 ms", "backoff_max": "10 ms"}');
SELECT * FROM activity_options('{"backoff_base": "1 minute"}');
SELECT * FROM activity_options('{"backoff_max": "1 day"}');
SELECT * FROM activity_options('{"auto_start": false}');
SELECT * FROM activity_options('{"serialize_group": "repo"}');
SELECT * FROM activity_options('{"serialize_group": null}');
SELECT * FROM activity_options(NULL);
-- every option error: 22023
SELECT o AS options, err(format('SELECT * FROM activity_options(%L)', o)) AS error
  FROM unnest(ARRAY[
    '[]', '"lazy"', '1', 'null', '{"nope": 1}', '{"Engine": "lazy"}',
    '{"engine": "eager"}', '{"engine": 1}', '{"engine": null}', '{"engine": ""}',
    '{"engine": "cron"}', '{"engine": "cron", "interval": "0 seconds"}',
    '{"engine": "cron", "interval": "-1 second"}', 
    '{"engine": "cron", "interval": 5}', '{"engine": "cron", "interval": null}',
    '{"engine": "manual", "interval": null}', '{"engine": "lazy", "interval": "1 second"}',
    '{"interval": "1 second"}',
    '{"batch_size": 0}', '{"batch_size": -1}', '{"batch_size": 100001}', '{"batch_size": 1.5}',
    '{"batch_size": "10"}', '{"batch_size": null}', '{"batch_size": 99999999999999999999}',
    '{"initial_batch_size": 0}', '{"initial_batch_size": 100001}', '{"initial_batch_size": true}',
    '{"max_concurrency": -1}', '{"max_concurrency": 1001}', '{"max_concurrency": "1"}',
    '{"max_attempts": 0}', '{"max_attempts": 1001}', '{"max_attempts": [1]}',
    '{"backoff_base": "0"}', '{"backoff_base": "-1 second"}', '{"backoff_base": 1}',
    '{"backoff_max": "0 seconds"}', '{"backoff_max": {}}',
    '{"backoff_base": "2 minutes", "backoff_max": "1 minute"}',
    '{"backoff_base": "10 minutes"}',
    '{"auto_start": "yes"}', '{"auto_start": 1}', '{"auto_start": null}',
    '{"serialize_group": ""}', '{"serialize_group": 1}', '{"serialize_group": ["a"]}'
  ]::jsonb[]) AS o;
-- intervals that do not parse are invalid values too: 22023
SELECT o AS options, left(err(format('SELECT * FROM activity_options(%L)', o)), 5) AS sqlstate
  FROM unnest(ARRAY['{"engine": "cron", "interval": "soon"}', '{"backoff_base": "never"}',
                    '{"backoff_max": "1 fortnight"}']::jsonb[]) AS o;
SELECT count(*) AS left_behind FROM choreograph.activities WHERE name = 'options';

-- names and processors: 22004, 22023, 42710, 42883, 42804, 42704
SELECT err($$SELECT choreo_create_activity(NULL, 'acts', 'act_proc(text, bigint, jsonb, boolean)')$$) AS null_name;
SELECT err($$SELECT choreo_create_activity('', 'acts', 'act_proc(text, bigint, jsonb, boolean)')$$) AS empty_name;
SELECT err($$SELECT choreo_create_activity('x', NULL, 'act_proc(text, bigint, jsonb, boolean)')$$) AS null_stream;
SELECT err($$SELECT choreo_create_activity('x', '', 'act_proc(text, bigint, jsonb, boolean)')$$) AS empty_stream;
SELECT err($$SELECT choreo_create_activity('x', repeat('s', 64), 'act_proc(text, bigint, jsonb, boolean)')$$) AS long_stream;
SELECT err($$SELECT choreo_create_activity('x', 'acts', NULL)$$) AS null_processor;
-- a long name is truncated to 63 bytes, as PostgreSQL truncates identifiers
-- (and the names of pipelines)
SELECT choreo_create_activity(repeat('n', 64), 'acts', 'act_proc(text, bigint, jsonb, boolean)', '{"engine": "manual"}');
SELECT length(name) FROM choreograph.activities WHERE name LIKE 'nnn%';
SELECT choreo_drop_activity(repeat('n', 65));
SELECT err($$SELECT choreo_create_activity('no_such_schema.x', 'acts', 'act_proc(text, bigint, jsonb, boolean)')$$) AS unknown_schema;
SELECT err($$SELECT choreo_create_activity('a.b.c.d', 'acts', 'act_proc(text, bigint, jsonb, boolean)')$$) AS bad_name;
SELECT err($$SELECT choreo_create_activity('act', 'other stream', 'act_proc(text, bigint, jsonb, boolean)')$$) AS duplicate;
SELECT err($$SELECT choreo_create_activity('public.act', 'acts', 'act_proc(text, bigint, jsonb, boolean)')$$) AS duplicate_qualified;
SELECT err($$SELECT choreo_create_activity('x', 'acts', 'no_such_function(text, bigint, jsonb, boolean)')$$) AS unknown_processor;
SELECT err($$SELECT choreo_create_activity('x', 'acts', 12345)$$) AS processor_oid;
CREATE FUNCTION act_three(text, bigint, jsonb) RETURNS choreo_outcome LANGUAGE sql AS $$ SELECT choreo_eof($2) $$;
CREATE FUNCTION act_types(text, int, jsonb, boolean) RETURNS choreo_outcome LANGUAGE sql AS $$ SELECT choreo_eof($2) $$;
CREATE FUNCTION act_json(text, bigint, json, boolean) RETURNS choreo_outcome LANGUAGE sql AS $$ SELECT choreo_eof($2) $$;
CREATE FUNCTION act_five(text, bigint, jsonb, boolean, int DEFAULT 0) RETURNS choreo_outcome LANGUAGE sql AS $$ SELECT choreo_eof($2) $$;
CREATE FUNCTION act_variadic(text, bigint, jsonb, VARIADIC boolean[]) RETURNS choreo_outcome LANGUAGE sql AS $$ SELECT choreo_eof($2) $$;
CREATE FUNCTION act_int(text, bigint, jsonb, boolean) RETURNS bigint LANGUAGE sql AS $$ SELECT $2 $$;
CREATE FUNCTION act_record(text, bigint, jsonb, boolean) RETURNS record LANGUAGE sql AS $$ SELECT choreo_eof($2) $$;
CREATE FUNCTION act_setof(text, bigint, jsonb, boolean) RETURNS SETOF choreo_outcome LANGUAGE sql AS $$ SELECT choreo_eof($2) $$;
CREATE FUNCTION act_void(text, bigint, jsonb, boolean) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE PROCEDURE act_procedure(text, bigint, jsonb, boolean) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION act_step(choreo_outcome, text, bigint, jsonb, boolean) RETURNS choreo_outcome
    LANGUAGE sql AS $$ SELECT $1 $$;
CREATE AGGREGATE act_aggregate(text, bigint, jsonb, boolean) (SFUNC = act_step, STYPE = choreo_outcome);
CREATE FUNCTION act_window(text, bigint, jsonb, boolean) RETURNS choreo_outcome
    LANGUAGE internal WINDOW AS 'window_row_number';
SELECT p AS processor, err(format('SELECT choreo_create_activity(''x'', ''acts'', %L)', p)) AS error
  FROM unnest(ARRAY['act_three(text, bigint, jsonb)', 'act_types(text, int, jsonb, boolean)',
                    'act_json(text, bigint, json, boolean)', 'act_five(text, bigint, jsonb, boolean, int)',
                    'act_variadic(text, bigint, jsonb, boolean[])',
                    'act_int(text, bigint, jsonb, boolean)', 'act_record(text, bigint, jsonb, boolean)',
                    'act_setof(text, bigint, jsonb, boolean)', 'act_void(text, bigint, jsonb, boolean)',
                    'act_procedure(text, bigint, jsonb, boolean)',
                    'act_aggregate(text, bigint, jsonb, boolean)',
                    'act_window(text, bigint, jsonb, boolean)',
                    'choreo_eof(bigint)']) AS p;
SELECT count(*) AS created FROM choreograph.activities WHERE name = 'x';
DROP AGGREGATE act_aggregate(text, bigint, jsonb, boolean);
DROP FUNCTION act_step(choreo_outcome, text, bigint, jsonb, boolean), act_window(text, bigint, jsonb, boolean);
DROP PROCEDURE act_procedure(text, bigint, jsonb, boolean);
DROP FUNCTION act_three(text, bigint, jsonb), act_types(text, int, jsonb, boolean),
    act_json(text, bigint, json, boolean), act_five(text, bigint, jsonb, boolean, int),
    act_variadic(text, bigint, jsonb, boolean[]), act_int(text, bigint, jsonb, boolean),
    act_record(text, bigint, jsonb, boolean), act_setof(text, bigint, jsonb, boolean),
    act_void(text, bigint, jsonb, boolean);
-- unknown activities: 42704 from each function; NULL and empty names
SELECT f AS call, err(f) AS error FROM unnest(ARRAY[
    $$SELECT choreo_drop_activity('nope')$$,
    $$SELECT choreo_pause_activity('nope')$$,
    $$SELECT choreo_resume_activity('nope')$$,
    $$SELECT choreo_start_activity('nope', 'e')$$,
    $$SELECT choreo_reset_activity('nope', 'e')$$,
    $$SELECT choreo_run_activity('nope', 'e')$$,
    $$SELECT choreo_run_activity('no_such_schema.nope', 'e')$$,
    $$SELECT choreo_drop_activity(NULL)$$,
    $$SELECT choreo_pause_activity(NULL)$$,
    $$SELECT choreo_resume_activity(NULL)$$,
    $$SELECT choreo_start_activity(NULL, 'e')$$,
    $$SELECT choreo_reset_activity(NULL, 'e')$$,
    $$SELECT choreo_run_activity(NULL, 'e')$$,
    $$SELECT choreo_drop_activity('')$$,
    $$SELECT choreo_run_activity('', 'e')$$,
    $$SELECT choreo_start_activity('act', NULL)$$,
    $$SELECT choreo_reset_activity('act', NULL)$$,
    $$SELECT choreo_run_activity('act', NULL)$$,
    $$SELECT choreo_start_activity('act', '')$$,
    $$SELECT choreo_reset_activity('act', '')$$,
    $$SELECT choreo_run_activity('act', '')$$,
    $$SELECT choreo_start_activity('act', 'e', NULL)$$
  ]) AS f;

-- another role may read the view and create its own activities, but not
-- drop, pause, resume, reset, start or run the owner's: 42501; a member
-- of the owner may
SET ROLE regress_choreo_act_other;
SELECT count(*) > 0 AS sees_the_view FROM choreo_activities WHERE activity = 'act';
SELECT f AS call, err(f) AS error FROM unnest(ARRAY[
    $$SELECT choreo_drop_activity('act')$$,
    $$SELECT choreo_pause_activity('act')$$,
    $$SELECT choreo_resume_activity('act')$$,
    $$SELECT choreo_start_activity('act', 'e1')$$,
    $$SELECT choreo_reset_activity('act', 'e1')$$,
    $$SELECT choreo_run_activity('act', 'e1')$$,
    $$UPDATE choreograph.activities SET paused = true$$,
    $$UPDATE choreograph.activity_cursors SET tail = 0$$
  ]) AS f;
-- (the error names the owner)
SELECT choreo_pause_activity('act');
-- its own (in public, where it may not create: 42501; in its schema it may)
SELECT err($$SELECT choreo_create_activity('theirs', 'acts', 'act_proc(text, bigint, jsonb, boolean)', '{"engine": "manual"}')$$) AS in_public;
RESET ROLE;
CREATE SCHEMA act_other AUTHORIZATION regress_choreo_act_other;
SET ROLE regress_choreo_act_other;
SELECT choreo_create_activity('act_other.act', 'acts', 'act_proc(text, bigint, jsonb, boolean)', '{"engine": "manual"}');
SELECT * FROM choreo_run_activity('act_other.act', 'e1');
SELECT * FROM calls();
-- through search_path, 'act' is its own
SET search_path = act_other, public;
SELECT choreo_emit('acts', 'e1', '"for act_other.act"');
SELECT * FROM choreo_run_activity('act', 'e1');
SELECT * FROM calls();
RESET search_path;
SET ROLE regress_choreo_act_member;
SELECT choreo_pause_activity('act');
SELECT choreo_resume_activity('act');
SELECT choreo_emit('acts', 'e1', '"for the member"');
SELECT (choreo_run_activity('act', 'e1')).tail;
SELECT * FROM calls();
RESET ROLE;
-- the superuser may do anything
SELECT choreo_pause_activity('act_other.act');
SELECT activity, schema, status FROM choreo_activities WHERE entity = 'e1' ORDER BY schema::text, activity;

-- names in schemas: qualified, quoted, through search_path; one name in
-- two schemas is two activities; DROP SCHEMA refuses, CASCADE drops
CREATE SCHEMA act_ns;
SELECT choreo_create_activity('act_ns.act', 'acts', 'act_proc(text, bigint, jsonb, boolean)', '{"engine": "manual"}');
SELECT choreo_create_activity('act_ns."Mixed Case"', 'acts', 'act_proc(text, bigint, jsonb, boolean)', '{"engine": "manual"}');
SELECT name, namespace FROM choreograph.activities WHERE namespace = 'act_ns'::regnamespace ORDER BY name;
SELECT err($$SELECT choreo_create_activity('act_ns.ACT', 'acts', 'act_proc(text, bigint, jsonb, boolean)')$$) AS folded_duplicate;
SET search_path = act_ns, public;
SELECT (choreo_run_activity('act', 'e2')).tail AS via_search_path;
SELECT (choreo_run_activity('"Mixed Case"', 'e2')).tail AS quoted;
RESET search_path;
SELECT activity, schema FROM choreo_activities WHERE entity = 'e2' ORDER BY schema::text, activity;
DROP SCHEMA act_ns;
BEGIN;
DROP SCHEMA act_ns CASCADE;
SELECT count(*) AS activities, (SELECT count(*) FROM choreo_activities WHERE entity = 'e2') AS cursors_of_e2
  FROM choreograph.activities WHERE name IN ('act', 'Mixed Case');
ROLLBACK;
ALTER SCHEMA act_ns RENAME TO act_ns2;
SELECT (choreo_run_activity('act_ns2.act', 'e2')) IS NULL AS renamed_nothing_to_do;
DROP SCHEMA act_ns2 CASCADE;
SELECT count(*) AS left_in_dropped_schema FROM choreograph.activity_cursors c
  WHERE NOT EXISTS (SELECT FROM choreograph.activities a WHERE a.id = c.activity_id);
-- DROP OWNED drops a role's activities
DROP OWNED BY regress_choreo_act_other;
SELECT count(*) AS of_other FROM choreograph.activities WHERE owner = 'regress_choreo_act_other'::regrole;

-- drop: the activity and its cursors go; the stream stays
SET ROLE regress_choreo_act_owner;
SELECT choreo_drop_activity('act');
RESET ROLE;
SELECT count(*) AS activities, (SELECT count(*) FROM choreograph.activity_cursors) AS cursors,
       (SELECT count(*) FROM choreo_events('acts', 'e1')) AS events_kept
  FROM choreograph.activities;
SELECT err($$SELECT choreo_drop_activity('act')$$) AS dropped_twice;

-- clean up
DROP FUNCTION activity_options(jsonb), cursors(text), calls(), act_proc(text, bigint, jsonb, boolean);
DROP TABLE act_calls;
REVOKE CREATE ON SCHEMA public FROM regress_choreo_act_owner;
DROP ROLE regress_choreo_act_owner, regress_choreo_act_other, regress_choreo_act_member;
