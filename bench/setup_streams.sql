-- bench/setup_streams.sql: the objects of the stream and activity
-- scenarios (S1, S2, A1, A2, A3); bench/run runs it only when the installed
-- version has streams and activities.
\set ON_ERROR_STOP on
SET client_min_messages = warning;

-- A1: the processor does nothing but move the tail to the last event
CREATE FUNCTION a1_proc(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE sql
    AS $$ SELECT choreo_eof(COALESCE((events->-1->>'seq')::bigint, tail)) $$;

-- A2: the processor records when it started and when each event it was
-- handed was emitted (clock_timestamp() in the emitting transaction's
-- statement, as H1 records a hook's registration)
CREATE TABLE a2_done (at timestamptz, started_at timestamptz);
CREATE FUNCTION a2_proc(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    INSERT INTO a2_done (at, started_at)
        SELECT (e->'payload'->>'at')::timestamptz, started
          FROM jsonb_array_elements(events) e
         WHERE e->'payload' ? 'at';
    RETURN choreo_eof(COALESCE((events->-1->>'seq')::bigint, tail));
END $$;
SELECT choreo_create_activity('a2', 'a2', 'a2_proc(text, bigint, jsonb, boolean)');

-- A3: the processor records when it processed each event
CREATE TABLE a3_done (activity text, round int, at timestamptz,
                      done_at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION a3_proc(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE sql AS $$
    INSERT INTO a3_done (activity, round, at)
        SELECT e->'payload'->>'activity', (e->'payload'->>'round')::int,
               (e->'payload'->>'at')::timestamptz
          FROM jsonb_array_elements(events) e
         WHERE e->'payload' ? 'round';
    SELECT choreo_eof(COALESCE((events->-1->>'seq')::bigint, tail));
$$;

-- bench_idle_entities(activity, n): n entities of the activity's stream
-- ('e1' .. 'en'), each with one event and caught up, written directly as
-- the engine leaves an entity it has run: tail = head, has_run, active,
-- nothing scheduled, nothing left for the workers to discover
CREATE FUNCTION bench_idle_entities(p_activity text, n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    a choreograph.activities;
BEGIN
    SELECT * INTO STRICT a FROM choreograph.activities WHERE name = p_activity;
    INSERT INTO choreograph.stream_entities (stream, entity)
        SELECT a.stream, 'e' || g FROM generate_series(1, n) g;
    INSERT INTO choreograph.events (entity_id, seq, payload)
        SELECT id, 1, '{"n": 0}' FROM choreograph.stream_entities WHERE stream = a.stream;
    INSERT INTO choreograph.activity_cursors (activity_id, entity_id, tail, state, has_run, next_run_at)
        SELECT a.id, id, 1, 'active', true, NULL
          FROM choreograph.stream_entities WHERE stream = a.stream;
END $$;

-- bench_wait_drained(activity, events): waits until the tails of the
-- activity's entities add up to the events of its stream, that is until
-- none lags, and returns when that was seen (polling every 5 ms: lighter
-- than reading the choreo_activities view, which computes every head)
CREATE FUNCTION bench_wait_drained(p_activity text, p_events bigint, p_timeout float8 DEFAULT 300)
    RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    aid int := (SELECT id FROM choreograph.activities WHERE name = p_activity);
    deadline timestamptz := clock_timestamp() + make_interval(secs => p_timeout);
BEGIN
    WHILE (SELECT COALESCE(sum(tail), 0) FROM choreograph.activity_cursors
            WHERE activity_id = aid) < p_events LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'activity % processed % of % events in % s', p_activity,
                (SELECT COALESCE(sum(tail), 0) FROM choreograph.activity_cursors
                  WHERE activity_id = aid), p_events, p_timeout;
        END IF;
        PERFORM pg_sleep(0.005);
    END LOOP;
    RETURN clock_timestamp();
END $$;

-- bench_wait_caught_up(activity, n): waits until choreo_activities shows n
-- entities of the activity, none lagging
CREATE FUNCTION bench_wait_caught_up(p_activity text, n int, p_timeout float8 DEFAULT 300)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => p_timeout);
BEGIN
    WHILE (SELECT count(*) FILTER (WHERE lag = 0) FROM choreo_activities
            WHERE activity = p_activity) < n LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'activity % has not % entities caught up after % s', p_activity, n, p_timeout;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;

-- bench_wait_rows(activity, round, n): waits until a3_done has n rows of
-- the round
CREATE FUNCTION bench_wait_rows(p_activity text, p_round int, n int, p_timeout float8 DEFAULT 60)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => p_timeout);
BEGIN
    WHILE (SELECT count(*) FROM a3_done WHERE activity = p_activity AND round = p_round) < n LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'activity % processed % of % events of round % in % s', p_activity,
                (SELECT count(*) FROM a3_done WHERE activity = p_activity AND round = p_round),
                n, p_round, p_timeout;
        END IF;
        PERFORM pg_sleep(0.002);
    END LOOP;
END $$;
