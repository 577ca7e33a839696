-- Batched buffers: choreo_create_buffer, choreo_drop_buffer,
-- choreo_fire_forget, choreo_fire_and_wait, choreo_flush.

CREATE TABLE events (
    id      bigserial PRIMARY KEY,
    kind    text NOT NULL,
    payload jsonb,
    amount  numeric(8, 2),
    at      timestamptz NOT NULL DEFAULT now(),
    double_id bigint GENERATED ALWAYS AS (id * 2) STORED
);
SELECT choreo_create_buffer('events', 'events', 3);
SELECT * FROM choreo_buffers;

-- items wait in memory, are written when the buffer is full, at
-- choreo_flush and at commit, in firing order
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "a", "payload": {"x": 1}}');
SELECT choreo_fire_forget('events', '{"kind": "b", "amount": 1.5}');
SELECT count(*) AS written_after_two FROM events;
SELECT choreo_fire_forget('events', '{"kind": "c"}');
SELECT count(*) AS written_after_three FROM events;
SELECT choreo_fire_forget('events', '{"kind": "d"}');
SELECT choreo_flush('events') AS flushed;
SELECT choreo_flush('events') AS flushed_again;
SELECT choreo_fire_forget('events', '{"kind": "e", "payload": "a string"}');
COMMIT;
SELECT id, kind, payload, amount, double_id, at IS NOT NULL AS at_defaulted FROM events ORDER BY id;

-- nothing is written by a transaction that aborts
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "aborted"}');
ROLLBACK;
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "aborted"}');
SELECT choreo_fire_forget('events', '{"kind": "aborted"}');
SELECT choreo_fire_forget('events', '{"kind": "aborted"}');
ROLLBACK;
SELECT count(*) AS aborted_rows FROM events WHERE kind = 'aborted';

-- savepoints: items fired in a rolled-back savepoint are discarded, those
-- of a released one kept; items fired before a savepoint but written
-- inside it are written again when it rolls back
TRUNCATE events;
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "1 outer"}');
SELECT choreo_fire_forget('events', '{"kind": "2 outer"}');
SAVEPOINT s;
SELECT choreo_fire_forget('events', '{"kind": "3 rolled back"}');
SELECT count(*) AS written_inside_savepoint FROM events;
ROLLBACK TO SAVEPOINT s;
SELECT count(*) AS after_rollback FROM events;
SAVEPOINT r;
SELECT choreo_fire_forget('events', '{"kind": "4 released"}');
RELEASE SAVEPOINT r;
SELECT choreo_fire_forget('events', '{"kind": "5 outer"}');
COMMIT;
SELECT kind FROM events ORDER BY id;

-- nested savepoints, and a flush inside them
TRUNCATE events;
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "1"}');
SAVEPOINT a;
SELECT choreo_fire_forget('events', '{"kind": "2"}');
SAVEPOINT b;
SELECT choreo_flush();
RELEASE SAVEPOINT b;
ROLLBACK TO SAVEPOINT a;
SELECT count(*) AS written_now FROM events;
SELECT choreo_fire_forget('events', '{"kind": "3"}');
COMMIT;
SELECT kind FROM events ORDER BY id;

-- in a PL/pgSQL exception block (a subtransaction) too
TRUNCATE events;
DO $$
BEGIN
    PERFORM choreo_fire_forget('events', '{"kind": "before block"}');
    BEGIN
        PERFORM choreo_fire_forget('events', '{"kind": "in failed block"}');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        PERFORM choreo_fire_forget('events', '{"kind": "in handler"}');
    END;
END $$;
SELECT kind FROM events ORDER BY id;

-- choreo_fire_and_wait writes the pending items, then this one, and
-- returns its row
TRUNCATE events;
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "pending"}');
SELECT (choreo_fire_and_wait('events', '{"kind": "waited", "amount": "2.5"}') - 'at' - 'id' - 'double_id');
SELECT kind FROM events ORDER BY id;
COMMIT;

-- items are validated when fired: SQLSTATE, and nothing kept
TRUNCATE events;
BEGIN;
SELECT err($$SELECT choreo_fire_forget('events', '{"kind": "x", "nope": 1}')$$);
SELECT err($$SELECT choreo_fire_forget('events', '[1, 2]')$$);
SELECT err($$SELECT choreo_fire_forget('events', '"kind"')$$);
SELECT err($$SELECT choreo_fire_forget('events', NULL)$$);
SELECT err($$SELECT choreo_fire_forget('events', '{"kind": "x", "amount": "lots"}')$$);
SELECT err($$SELECT choreo_fire_forget('events', '{"kind": "x", "amount": 123456789}')$$);
SELECT err($$SELECT choreo_fire_forget('events', '{"kind": "x", "at": "yesterday-ish"}')$$);
SELECT err($$SELECT choreo_fire_forget('events', '{"kind": "x", "double_id": 4}')$$);
SELECT err($$SELECT choreo_fire_forget('nope', '{"kind": "x"}')$$);
SELECT err($$SELECT choreo_fire_forget(NULL, '{"kind": "x"}')$$);
SELECT err($$SELECT choreo_fire_forget('', '{"kind": "x"}')$$);
SELECT err($$SELECT choreo_fire_and_wait('events', '{"nope": 1}')$$);
SELECT err($$SELECT choreo_flush('nope')$$);
SELECT choreo_flush('events') AS nothing_pending;
COMMIT;
SELECT count(*) FROM events;

-- constraints, triggers and privileges apply at the flush (at the latest
-- at COMMIT), with their own SQLSTATEs
BEGIN;
SELECT choreo_fire_forget('events', '{"payload": {"kind is": "missing"}}');
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default
BEGIN;
SELECT choreo_fire_forget('events', '{"payload": {"kind is": "missing"}}');
SELECT err($$SELECT choreo_flush('events')$$);
ROLLBACK;
CREATE TABLE audit (event_id bigint, kind text);
CREATE FUNCTION audit_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit VALUES (NEW.id, NEW.kind);
    RETURN NEW;
END $$;
CREATE TRIGGER events_audit AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION audit_event();
SELECT choreo_fire_forget('events', jsonb_build_object('kind', 'audited ' || g)) FROM generate_series(1, 4) g;
SELECT kind FROM audit ORDER BY event_id;
DROP TRIGGER events_audit ON events;

-- the write happens with the firing role's privileges and row security
CREATE ROLE regress_choreo_firer;
SET ROLE regress_choreo_firer;
SELECT err($$SELECT choreo_fire_forget('events', '{"kind": "no privilege"}'), choreo_flush()$$);
RESET ROLE;
GRANT INSERT ON events TO regress_choreo_firer;
GRANT USAGE ON SEQUENCE events_id_seq TO regress_choreo_firer;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_public ON events FOR INSERT TO regress_choreo_firer
    WITH CHECK (kind LIKE 'public%');
SET ROLE regress_choreo_firer;
SELECT choreo_fire_forget('events', '{"kind": "public news"}');
SELECT err($$SELECT choreo_fire_forget('events', '{"kind": "secret"}'), choreo_flush()$$);
RESET ROLE;
SELECT kind FROM events WHERE kind IN ('public news', 'secret');
ALTER TABLE events DISABLE ROW LEVEL SECURITY;
DROP POLICY only_public ON events;

-- definitions: ownership and bad input
SELECT err($$SELECT choreo_create_buffer('events', 'events')$$);
SELECT err($$SELECT choreo_create_buffer(NULL, 'events')$$);
SELECT err($$SELECT choreo_create_buffer('', 'events')$$);
SELECT err($$SELECT choreo_create_buffer('x', NULL)$$);
SELECT err($$SELECT choreo_create_buffer('x', 'no_such_table')$$);
SELECT err($$SELECT choreo_create_buffer('x', 'choreo_buffers')$$);
SELECT err($$SELECT choreo_create_buffer('x', 'events', 0)$$);
SELECT err($$SELECT choreo_create_buffer('x', 'events', 100001)$$);
SELECT err($$SELECT choreo_create_buffer('x', 'events', NULL)$$);
SELECT err($$SELECT choreo_drop_buffer('nope')$$);
SELECT err($$SELECT choreo_drop_buffer(NULL)$$);
SET ROLE regress_choreo_firer;
SELECT err($$SELECT choreo_drop_buffer('events')$$);
-- creating a buffer needs CREATE on its schema, as creating a function does
SELECT err($$SELECT choreo_create_buffer('firers', 'events')$$);
RESET ROLE;
GRANT CREATE ON SCHEMA public TO regress_choreo_firer;
SET ROLE regress_choreo_firer;
SELECT choreo_create_buffer('firers', 'events');
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM regress_choreo_firer;
SELECT name, owner FROM choreo_buffers ORDER BY name;
SET ROLE regress_choreo_firer;
SELECT err($$INSERT INTO choreograph.buffers VALUES ('x', 'events', 1, 'postgres')$$);
RESET ROLE;

-- items fired before a buffer is dropped are still written
BEGIN;
SELECT choreo_fire_forget('firers', '{"kind": "fired before drop"}');
SELECT choreo_drop_buffer('firers');
COMMIT;
SELECT kind FROM events WHERE kind = 'fired before drop';
SELECT err($$SELECT choreo_fire_forget('firers', '{"kind": "after drop"}')$$);

-- a buffer whose table was dropped
CREATE TABLE doomed (id int);
SELECT choreo_create_buffer('doomed', 'doomed');
DROP TABLE doomed;
SELECT err($$SELECT choreo_fire_forget('doomed', '{"id": 1}')$$);
SELECT choreo_drop_buffer('doomed');

-- two-phase commit: items are written at PREPARE
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "prepared"}');
PREPARE TRANSACTION 'choreo_buffer_test';
COMMIT PREPARED 'choreo_buffer_test';
SELECT count(*) FROM events WHERE kind = 'prepared';

-- many items, one statement per batch: memory is bounded by max_batch
SELECT choreo_create_buffer('bulk', 'events', 1000);
TRUNCATE events;
SELECT count(choreo_fire_forget('bulk', jsonb_build_object('kind', 'bulk', 'amount', g)))
  FROM generate_series(1, 10000) g;
SELECT count(*), min(amount), max(amount), bool_and(id = amount + (SELECT min(id) - 1 FROM events)) AS in_order
  FROM events;

-- savepoints after a flush (each of these once crashed the server): the
-- batch list was rebuilt in the subtransaction's memory
TRUNCATE events;
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "1 before s1"}');
SAVEPOINT s1;
SELECT choreo_flush();
ROLLBACK TO s1;
SAVEPOINT s2;
ROLLBACK TO s2;
SAVEPOINT s3;
SELECT choreo_fire_forget('events', '{"kind": "2 in s3"}');
SELECT choreo_flush();
RELEASE s3;
SAVEPOINT s4;
SELECT choreo_fire_forget('events', '{"kind": "rolled back in s4"}');
ROLLBACK TO s4;
COMMIT;
SELECT kind FROM events ORDER BY id;
-- a statement error inside a savepoint after a flush
TRUNCATE events;
BEGIN;
SELECT choreo_fire_forget('events', '{"kind": "1 outer"}');
SAVEPOINT a;
SELECT choreo_flush();
SAVEPOINT b;
SELECT 1 / 0;
ROLLBACK TO b;
RELEASE a;
SAVEPOINT c;
SELECT choreo_fire_forget('events', '{"kind": "2 in c"}');
SELECT choreo_flush();
SELECT 1 / 0;
ROLLBACK TO c;
COMMIT;
SELECT kind FROM events ORDER BY id;
-- exception blocks after flushes, many times over
TRUNCATE events;
DO $$
BEGIN
    FOR i IN 1 .. 50 LOOP
        PERFORM choreo_fire_forget('events', jsonb_build_object('kind', 'kept ' || i));
        BEGIN
            PERFORM choreo_flush();
            PERFORM choreo_fire_forget('events', jsonb_build_object('kind', 'dropped ' || i));
            PERFORM choreo_flush();
            PERFORM 1 / 0;
        EXCEPTION WHEN division_by_zero THEN
            NULL;
        END;
    END LOOP;
END $$;
SELECT count(*) AS kept, count(*) FILTER (WHERE kind LIKE 'dropped%') AS dropped,
       bool_and(kind = 'kept ' || rank) AS in_order
  FROM (SELECT kind, row_number() OVER (ORDER BY id) AS rank FROM events) e;

-- state left by a rolled-back exception block once leaked into the next
-- transaction: a crash, or a batch written with another item's columns
CREATE TABLE ledger (id bigserial, tx int NOT NULL, op int NOT NULL);
CREATE TABLE ledger_capture (id bigserial, payload jsonb NOT NULL);
SELECT choreo_create_buffer('ledger', 'ledger', 7), choreo_create_buffer('ledger_capture', 'ledger_capture', 4);
BEGIN;
SELECT choreo_fire_forget('ledger_capture', '{"payload": {}}');
DO $$ BEGIN PERFORM choreo_flush(); RAISE EXCEPTION 'x'; EXCEPTION WHEN OTHERS THEN NULL; END $$;
COMMIT;
BEGIN;
SELECT choreo_fire_forget('ledger', '{"tx": 2, "op": 1}');
SELECT choreo_fire_forget('ledger_capture', '{"payload": {}}');
SAVEPOINT s;
ROLLBACK TO s;
COMMIT;
BEGIN;
SELECT choreo_fire_forget('ledger_capture', '{"payload": {}}');
DO $$ BEGIN PERFORM choreo_fire_forget('ledger', '{"tx": 3, "op": 1}'); RAISE EXCEPTION 'x'; EXCEPTION WHEN OTHERS THEN NULL; END $$;
COMMIT;
BEGIN;
SELECT choreo_fire_forget('ledger', '{"tx": 4, "op": 1}');
SELECT choreo_fire_forget('ledger_capture', '{"payload": {}}');
SAVEPOINT s;
ROLLBACK TO s;
COMMIT;
SELECT tx, op FROM ledger ORDER BY id;
SELECT count(*) AS captured FROM ledger_capture;
SELECT choreo_drop_buffer('ledger'), choreo_drop_buffer('ledger_capture');
DROP TABLE ledger, ledger_capture;

-- memory stays bounded however many exception blocks fire and fail: the
-- memory of the items they dropped is given back, and so is that of
-- buffers first fired into inside them, and of their pre-commit hooks
-- (20,000 blocks once kept 25 MB, 142 MB and more)
CREATE TABLE roomy (id serial, body text);
SELECT choreo_create_buffer('roomy', 'roomy'), choreo_create_buffer('roomy_too', 'roomy');
CREATE FUNCTION backend_memory() RETURNS bigint LANGUAGE sql
    AS $$ SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts $$;
CREATE FUNCTION noop_hook(p jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
BEGIN;
SELECT choreo_fire_forget('roomy', '{"body": "kept"}');
SELECT backend_memory() AS before \gset
DO $$
BEGIN
    FOR i IN 1 .. 20000 LOOP
        BEGIN
            PERFORM choreo_fire_forget('roomy', jsonb_build_object('body', repeat('x', 1000)));
            PERFORM choreo_fire_forget('roomy_too', jsonb_build_object('body', repeat('y', 1000)));
            PERFORM choreo_pre_commit('noop_hook(jsonb)', jsonb_build_object('body', repeat('z', 1000)),
                                      key => 'k' || i);
            RAISE EXCEPTION 'dropped';
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
    END LOOP;
END $$;
SELECT backend_memory() - :before < 1024 * 1024 AS grew_less_than_a_megabyte;
COMMIT;
SELECT body FROM roomy;
SELECT choreo_drop_buffer('roomy'), choreo_drop_buffer('roomy_too');
DROP TABLE roomy;
DROP FUNCTION backend_memory(), noop_hook(jsonb);

-- values computed per item live in the batch, not in the fired argument
-- (unconstrained numeric values once pointed into freed memory)
CREATE TABLE measures (id serial PRIMARY KEY, n numeric, label text, ok bool);
SELECT choreo_create_buffer('measures', 'measures', 100);
SELECT count(choreo_fire_forget('measures', jsonb_build_object('n', g * 1.5))) FROM generate_series(1, 3) g;
SELECT id, n FROM measures ORDER BY id;
TRUNCATE measures RESTART IDENTITY;
BEGIN;
SELECT count(choreo_fire_forget('measures',
             jsonb_build_object('n', g * 1.5, 'label', 'l' || g, 'ok', g % 2 = 0)))
  FROM generate_series(1, 5000) g;
COMMIT;
SELECT count(*) AS items, count(*) FILTER (WHERE n <> id * 1.5 OR label <> 'l' || id
                                           OR ok <> (id % 2 = 0)) AS wrong
  FROM measures;

-- a buffer dropped and created again in the same transaction, under the
-- same name but for another table, writes into the new table; items
-- fired before still go to the old one
CREATE TABLE measures_b (id serial PRIMARY KEY, n numeric);
TRUNCATE measures;
BEGIN;
SELECT choreo_fire_forget('measures', '{"n": 1}');
SELECT choreo_drop_buffer('measures');
SELECT choreo_create_buffer('measures', 'measures_b');
SELECT choreo_fire_forget('measures', '{"n": 2}');
SELECT choreo_flush('measures') AS flushed;
SELECT choreo_fire_forget('measures', '{"n": 3}');
COMMIT;
SELECT 'measures' AS t, n FROM measures UNION ALL SELECT 'measures_b', n FROM measures_b ORDER BY 1, 2;
-- and after a rollback to a savepoint, the definition of before it again
TRUNCATE measures, measures_b;
BEGIN;
SELECT choreo_fire_forget('measures', '{"n": 1}');
SAVEPOINT redefine;
SELECT choreo_drop_buffer('measures');
SELECT choreo_create_buffer('measures', 'measures');
SELECT choreo_fire_forget('measures', '{"n": 2}');
ROLLBACK TO redefine;
SELECT choreo_fire_forget('measures', '{"n": 3}');
COMMIT;
SELECT 'measures' AS t, n FROM measures UNION ALL SELECT 'measures_b', n FROM measures_b ORDER BY 1, 2;
-- choreo_flush(name) writes every pending state of the name, also the
-- one a rolled-back redefinition had replaced
TRUNCATE measures, measures_b;
BEGIN;
SELECT choreo_fire_forget('measures', '{"n": 1}');
SAVEPOINT redefine;
SELECT choreo_drop_buffer('measures');
SELECT choreo_create_buffer('measures', 'measures');
SELECT choreo_fire_forget('measures', '{"n": 2}');
ROLLBACK TO redefine;
SELECT choreo_flush('measures') AS flushed;
SELECT n FROM measures_b;
COMMIT;
-- a buffer dropped in the transaction does not get in the way of firing
-- into another one
BEGIN;
SELECT choreo_fire_forget('measures', '{"n": 5}');
SELECT choreo_create_buffer('other_measures', 'measures');
SELECT choreo_drop_buffer('measures');
SELECT choreo_fire_forget('other_measures', '{"n": 6}');
COMMIT;
SELECT 'measures' AS t, n FROM measures UNION ALL SELECT 'measures_b', n FROM measures_b ORDER BY 1, 2;
SELECT choreo_drop_buffer('other_measures'), choreo_create_buffer('measures', 'measures_b');
-- firing into a buffer dropped in this transaction raises
BEGIN;
SELECT choreo_drop_buffer('measures');
SELECT err($$SELECT choreo_fire_forget('measures', '{"n": 4}')$$);
ROLLBACK;

-- a buffer cannot write into a temporary table: its definition outlives the session
CREATE TEMPORARY TABLE session_events (id int);
SELECT err($$SELECT choreo_create_buffer('session', 'session_events')$$);
SELECT count(*) FROM choreo_buffers WHERE name = 'session';
DROP TABLE session_events;

-- the table dropped between fire and commit: a clear error, nothing written
CREATE TABLE dropped_later (id int);
SELECT choreo_create_buffer('dropped_later', 'dropped_later');
BEGIN;
SELECT choreo_fire_forget('dropped_later', '{"id": 1}');
DROP TABLE dropped_later;
\set VERBOSITY terse
COMMIT;
\set VERBOSITY default
SELECT count(*) AS rows_written FROM dropped_later;
-- and at an explicit flush
BEGIN;
CREATE TABLE dropped_later_too (id int);
SELECT choreo_create_buffer('dropped_later_too', 'dropped_later_too');
SELECT choreo_fire_forget('dropped_later_too', '{"id": 1}');
DROP TABLE dropped_later_too;
SELECT err($$SELECT choreo_flush('dropped_later_too')$$);
ROLLBACK;
SELECT choreo_drop_buffer('dropped_later');
DROP TABLE dropped_later;

SELECT choreo_drop_buffer('measures');
DROP TABLE measures, measures_b;

DROP TABLE audit;
DROP FUNCTION audit_event();
SELECT choreo_drop_buffer(name) FROM choreo_buffers ORDER BY name;
REVOKE ALL ON events FROM regress_choreo_firer;
REVOKE ALL ON SEQUENCE events_id_seq FROM regress_choreo_firer;
DROP ROLE regress_choreo_firer;
