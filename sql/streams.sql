-- Entity streams: choreo_emit, choreo_emit_and_wait, choreo_events.
-- Each (stream, entity) numbers its events 1, 2, 3, ... at the flush,
-- gap-free and in commit order (the concurrent cases: test/isolation).

-- events(stream, entity): the seq and payload of each event, as one line
CREATE FUNCTION events_of(s text, e text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(seq || '=' || coalesce(payload::text, 'NULL'), ' ' ORDER BY seq), '')
      FROM choreo_events(s, e) $$;

-- numbering per entity, starting at 1; streams and entities are
-- independent; no definition is needed
SELECT choreo_emit('orders', 'o1', '{"step": "created"}');
SELECT choreo_emit('orders', 'o1', '{"step": "paid"}');
SELECT choreo_emit('orders', 'o2', '{"step": "created"}');
SELECT choreo_emit('orders', 'o1', '{"step": "shipped"}');
SELECT choreo_emit('invoices', 'o1', '{"step": "issued"}');
SELECT seq, payload, created_at IS NOT NULL AS has_created_at FROM choreo_events('orders', 'o1');
SELECT events_of('orders', 'o2') AS o2, events_of('invoices', 'o1') AS invoice_o1;
-- unknown streams and entities are empty, not errors
SELECT count(*) AS unknown_stream FROM choreo_events('nope', 'o1');
SELECT count(*) AS unknown_entity FROM choreo_events('orders', 'nope');
-- names are case- and space-sensitive text
SELECT choreo_emit('Orders', 'o1', '1'), choreo_emit('orders ', 'o1', '2'), choreo_emit('orders', 'O1', '3');
SELECT events_of('Orders', 'o1') AS upper_stream, events_of('orders ', 'o1') AS trailing_space,
       events_of('orders', 'O1') AS upper_entity, events_of('orders', 'o1') AS unchanged;

-- after and max page through the events
SELECT seq FROM choreo_events('orders', 'o1', 1);
SELECT seq FROM choreo_events('orders', 'o1', 0, 2);
SELECT seq FROM choreo_events('orders', 'o1', after => 2, max => 1);
SELECT count(*) AS max_zero FROM choreo_events('orders', 'o1', 0, 0);
SELECT count(*) AS after_head FROM choreo_events('orders', 'o1', 3);
SELECT count(*) AS far_after FROM choreo_events('orders', 'o1', 9223372036854775807);

-- pending emits are not visible until flushed (at commit, choreo_flush,
-- choreo_emit_and_wait); in one transaction all carry its now()
BEGIN;
SELECT choreo_emit('pending', 'p', jsonb_build_object('n', g)) FROM generate_series(1, 3) g;
SELECT count(*) AS before_flush FROM choreo_events('pending', 'p');
SELECT choreo_flush();
SELECT events_of('pending', 'p') AS after_flush;
SELECT choreo_emit('pending', 'p', '{"n": 4}');
SELECT choreo_emit('pending', 'p', '{"n": 5}');
SELECT events_of('pending', 'p') AS fourth_and_fifth_pending;
-- choreo_emit_and_wait flushes the pending ones first and returns its seq
SELECT choreo_emit_and_wait('pending', 'p', '{"n": 6}') AS waited_seq;
SELECT events_of('pending', 'p') AS after_wait;
SELECT count(DISTINCT created_at) AS one_created_at, bool_and(created_at = now()) AS at_now
  FROM choreo_events('pending', 'p');
COMMIT;
SELECT choreo_emit_and_wait('pending', 'p', '{"n": 7}') AS next_transaction;
-- emit_and_wait flushes the pending emits of its stream, of every entity
-- (those of other streams wait for their own flush)
BEGIN;
SELECT choreo_emit('pending', 'q', '"q1"');
SELECT choreo_emit('other', 'p', '"other1"');
SELECT choreo_emit_and_wait('pending', 'p', '{"n": 8}') AS seq_p;
SELECT events_of('pending', 'q') AS q, events_of('other', 'p') AS other;
COMMIT;

-- nothing of an aborted transaction remains, and its numbers are reused
BEGIN;
SELECT choreo_emit('aborts', 'a', '"kept"');
COMMIT;
BEGIN;
SELECT choreo_emit('aborts', 'a', '"aborted"');
SELECT choreo_emit_and_wait('aborts', 'a', '"aborted, waited"');
ROLLBACK;
SELECT choreo_emit_and_wait('aborts', 'a', '"second"') AS gap_free;
SELECT events_of('aborts', 'a');

-- savepoints: a rolled-back one takes its events and its numbers with
-- it, a released one keeps them; events flushed inside a rolled-back
-- savepoint but emitted before it are numbered again at the next flush
BEGIN;
SELECT choreo_emit('sp', 'e', '"1 outer"');
SAVEPOINT s;
SELECT choreo_emit('sp', 'e', '"rolled back"');
SELECT choreo_emit_and_wait('sp', 'e', '"rolled back, waited"') AS seq_in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT events_of('sp', 'e') AS after_rollback;
SAVEPOINT r;
SELECT choreo_emit('sp', 'e', '"2 released"');
RELEASE SAVEPOINT r;
SELECT choreo_emit_and_wait('sp', 'e', '"3 outer, waited"') AS seq_after_release;
SAVEPOINT t;
SELECT choreo_emit('sp', 'e', '"rolled back again"');
ROLLBACK TO SAVEPOINT t;
SELECT choreo_emit('sp', 'e', '"4 outer"');
COMMIT;
SELECT events_of('sp', 'e');
-- nested savepoints, a flush in the inner one, the outer rolled back
BEGIN;
SELECT choreo_emit('sp', 'n', '"1"');
SAVEPOINT a;
SELECT choreo_emit('sp', 'n', '"rolled back"');
SAVEPOINT b;
SELECT choreo_flush();
SELECT events_of('sp', 'n') AS flushed_inside;
RELEASE SAVEPOINT b;
ROLLBACK TO SAVEPOINT a;
SELECT events_of('sp', 'n') AS after_rollback;
SELECT choreo_emit_and_wait('sp', 'n', '"2"') AS seq;
COMMIT;
SELECT events_of('sp', 'n');
-- a PL/pgSQL exception block is a subtransaction too
DO $$
BEGIN
    PERFORM choreo_emit('sp', 'plpgsql', '"before the block"');
    BEGIN
        PERFORM choreo_emit('sp', 'plpgsql', '"in the failed block"');
        PERFORM choreo_emit_and_wait('sp', 'plpgsql', '"waited in the failed block"');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        PERFORM choreo_emit('sp', 'plpgsql', '"in the handler"');
    END;
END $$;
SELECT events_of('sp', 'plpgsql');

-- thousands of events in one transaction (flushed every 1000 on the way),
-- and over several: gap-free, in emitting order
BEGIN;
SELECT count(choreo_emit('many', 'm', jsonb_build_object('i', g))) FROM generate_series(1, 2500) g;
SELECT choreo_emit_and_wait('many', 'm', '{"i": 2501}') AS last_seq;
COMMIT;
SELECT count(choreo_emit('many', 'm', jsonb_build_object('i', g))) FROM generate_series(2502, 3000) g;
SELECT count(*) AS events, min(seq), max(seq),
       bool_and((payload->>'i')::bigint = seq) AS in_order
  FROM choreograph.events v JOIN choreograph.stream_entities e ON e.id = v.entity_id
 WHERE e.stream = 'many' AND e.entity = 'm';
-- choreo_events returns at most max (default 1000) from after
SELECT count(*), min(seq), max(seq) FROM choreo_events('many', 'm');
SELECT count(*), min(seq), max(seq) FROM choreo_events('many', 'm', 2500, 100000);
-- many entities in one transaction
SELECT count(choreo_emit('many', 'entity ' || g % 300, to_jsonb(g))) FROM generate_series(1, 1500) g;
SELECT count(DISTINCT e.entity) AS entities, max(v.seq) AS max_seq, min(v.seq) AS min_seq,
       count(*) AS events
  FROM choreograph.events v JOIN choreograph.stream_entities e ON e.id = v.entity_id
 WHERE e.stream = 'many' AND e.entity LIKE 'entity %';
SELECT events_of('many', 'entity 7') AS entity_7;

-- payloads: NULL (kept as SQL NULL), every JSON kind, SQL types turned
-- into JSON, empty and huge ones
SELECT choreo_emit('payloads', 'p', NULL);
SELECT choreo_emit('payloads', 'p', 'null');
SELECT choreo_emit('payloads', 'p', '{}');
SELECT choreo_emit('payloads', 'p', '[]');
SELECT choreo_emit('payloads', 'p', '""');
SELECT choreo_emit('payloads', 'p', 'true');
SELECT choreo_emit('payloads', 'p', '-1.50e3');
SELECT choreo_emit('payloads', 'p', '"snow ☃ and \u00e9, a \"quote\", a \\ and a tab\t"');
SELECT choreo_emit('payloads', 'p', '{"nested": {"array": [1, "two", null, false, {"deep": [[]]}]}}');
SELECT choreo_emit('payloads', 'p', to_jsonb(x)) FROM (VALUES
    (1::smallint, 2::int, 3::bigint, 1.25::real, 2.5::float8, 12345678901234567890.123::numeric,
     'text'::text, 'c'::char(3), 'v'::varchar, true, '2026-01-02'::date, '12:34:56'::time,
     '2026-01-02 03:04:05+00'::timestamptz, '2026-01-02 03:04:05'::timestamp, '1 day 2 hours'::interval,
     '00000000-0000-0000-0000-000000000001'::uuid, '\x00ff'::bytea, ARRAY[1, NULL, 3],
     '10.0.0.1'::inet, '{"a": 1}'::json, '{"b": 2}'::jsonb, ROW(1, 'x'), 'NaN'::numeric, 'Infinity'::float8)
) x;
SELECT seq, payload IS NULL AS sql_null, jsonb_typeof(payload) AS kind, payload FROM choreo_events('payloads', 'p');
-- a huge payload (10 MB) is kept whole
SELECT choreo_emit_and_wait('payloads', 'huge', jsonb_build_object('blob', repeat('x', 10000000))) AS huge_seq;
SELECT seq, length(payload->>'blob') AS blob_length FROM choreo_events('payloads', 'huge');

-- names: NULL 22004, empty 22023, streams longer than 63 bytes 22023
-- (63 are fine), entities of any length
SELECT err($$SELECT choreo_emit(NULL, 'e', '1')$$) AS null_stream;
SELECT err($$SELECT choreo_emit('', 'e', '1')$$) AS empty_stream;
SELECT err($$SELECT choreo_emit(repeat('s', 64), 'e', '1')$$) AS long_stream;
SELECT err($$SELECT choreo_emit(repeat('é', 32), 'e', '1')$$) AS long_stream_in_bytes;
SELECT err($$SELECT choreo_emit('names', NULL, '1')$$) AS null_entity;
SELECT err($$SELECT choreo_emit('names', '', '1')$$) AS empty_entity;
SELECT err($$SELECT choreo_emit_and_wait(NULL, 'e', '1')$$) AS wait_null_stream;
SELECT err($$SELECT choreo_emit_and_wait('', 'e', '1')$$) AS wait_empty_stream;
SELECT err($$SELECT choreo_emit_and_wait(repeat('s', 64), 'e', '1')$$) AS wait_long_stream;
SELECT err($$SELECT choreo_emit_and_wait('names', NULL, '1')$$) AS wait_null_entity;
SELECT err($$SELECT choreo_emit_and_wait('names', '', '1')$$) AS wait_empty_entity;
SELECT choreo_emit_and_wait(repeat('s', 63), 'e', '"63 bytes"') AS stream_of_63;
SELECT choreo_emit_and_wait('names', repeat('e', 100000), '"long entity"') AS long_entity;
SELECT choreo_emit_and_wait('names', 'with spaces, "quotes" and ☃', '"odd entity"') AS odd_entity;
SELECT events_of(repeat('s', 63), 'e') AS s63, events_of('names', repeat('e', 100000)) AS long,
       events_of('names', 'with spaces, "quotes" and ☃') AS odd;
-- choreo_events: NULL arguments 22004, negative after or max 22023
SELECT err($$SELECT * FROM choreo_events(NULL, 'e')$$) AS events_null_stream;
SELECT err($$SELECT * FROM choreo_events('names', NULL)$$) AS events_null_entity;
SELECT err($$SELECT * FROM choreo_events('names', 'e', NULL)$$) AS events_null_after;
SELECT err($$SELECT * FROM choreo_events('names', 'e', 0, NULL)$$) AS events_null_max;
SELECT err($$SELECT * FROM choreo_events('names', 'e', -1)$$) AS events_negative_after;
SELECT err($$SELECT * FROM choreo_events('names', 'e', 0, -1)$$) AS events_negative_max;
SELECT err($$SELECT * FROM choreo_events('', 'e')$$) AS events_empty_stream;
SELECT err($$SELECT * FROM choreo_events('names', '')$$) AS events_empty_entity;
-- nothing of the failed calls was written
SELECT count(*) AS entities_of_names FROM choreograph.stream_entities WHERE stream IN ('names', '');

-- nothing half-written after an error: an error after emits and a flush
-- leaves nothing, and the next transaction numbers from the last commit
SELECT choreo_emit_and_wait('half', 'h', '"1"');
BEGIN;
SELECT choreo_emit('half', 'h', '"lost"');
SELECT choreo_emit_and_wait('half', 'h', '"lost, waited"') AS would_be;
SELECT choreo_emit('half', 'h2', '"lost, new entity"');
SELECT 1 / 0;
COMMIT;
SELECT events_of('half', 'h') AS h, events_of('half', 'h2') AS h2,
       (SELECT count(*) FROM choreograph.stream_entities WHERE stream = 'half') AS entities;
-- a failed statement aborts the transaction and its pending emits
BEGIN;
SELECT choreo_emit('half', 'h', '"pending at a failed statement"');
SELECT choreo_emit(NULL, 'h', '"bad"');
COMMIT;
SELECT events_of('half', 'h') AS h_after_failed_statement;
SELECT choreo_emit_and_wait('half', 'h', '"2"') AS next_seq;

-- every isolation level may emit: REPEATABLE READ and SERIALIZABLE
-- transactions number from the latest committed head
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM choreo_events('iso', 'e');
SELECT choreo_emit('iso', 'e', '"rr 1"');
SELECT choreo_emit_and_wait('iso', 'e', '"rr 2"') AS rr_seq;
SELECT events_of('iso', 'e') AS rr_sees_its_own;
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT choreo_emit('iso', 'e', '"serializable 3"');
SELECT choreo_emit_and_wait('iso', 'e', '"serializable 4"') AS serializable_seq;
COMMIT;
-- a read-only transaction cannot: 25006, for a new entity and a known one
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT left(err($$SELECT choreo_emit_and_wait('iso', 'new in read only', '"read only"')$$), 5) AS read_only_new;
SELECT left(err($$SELECT choreo_emit_and_wait('iso', 'e', '"read only"')$$), 5) AS read_only_known;
SELECT left(err($$SELECT choreo_emit('iso', 'e', '"read only"'), choreo_flush()$$), 5) AS read_only_flush;
ROLLBACK;
SELECT events_of('iso', 'e');

-- another role, with no privilege on anything, may emit and read
CREATE ROLE regress_choreo_emitter;
SET ROLE regress_choreo_emitter;
SELECT choreo_emit('iso', 'e', '"by another role"');
SELECT choreo_emit_and_wait('iso', 'e', '"by another role, waited"') AS other_role_seq;
SELECT choreo_emit_and_wait('roles', 'r', '"a new entity of another role"') AS new_entity_seq;
SELECT events_of('iso', 'e');
SELECT events_of('roles', 'r');
-- but may not write to the tables directly
SELECT err($$INSERT INTO choreograph.events (entity_id, seq, payload) VALUES (1, 1000, '1')$$) AS direct_insert;
SELECT err($$DELETE FROM choreograph.events$$) AS direct_delete;
SELECT err($$UPDATE choreograph.stream_entities SET entity = 'x'$$) AS direct_update;
RESET ROLE;
-- a role whose EXECUTE is revoked cannot
REVOKE EXECUTE ON FUNCTION choreo_emit(text, text, jsonb) FROM PUBLIC;
SET ROLE regress_choreo_emitter;
SELECT err($$SELECT choreo_emit('iso', 'e', '"revoked"')$$) AS revoked;
RESET ROLE;
GRANT EXECUTE ON FUNCTION choreo_emit(text, text, jsonb) TO PUBLIC;
DROP ROLE regress_choreo_emitter;

-- in a security-restricted operation (an index expression while another
-- role's table is indexed): 42501, nothing emitted
CREATE ROLE regress_choreo_sro NOLOGIN;
GRANT CREATE ON SCHEMA public TO regress_choreo_sro;
SET ROLE regress_choreo_sro;
CREATE FUNCTION sro_emit(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE
    SET search_path = public AS $$
BEGIN
    CASE current_setting('regress.sro_call', true)
        WHEN 'emit' THEN PERFORM choreo_emit('sro', 'e', to_jsonb(a));
        WHEN 'emit_and_wait' THEN PERFORM choreo_emit_and_wait('sro', 'e', to_jsonb(a));
        ELSE NULL;
    END CASE;
    RETURN a;
END $$;
CREATE TABLE sro_table (a int);
INSERT INTO sro_table VALUES (1), (2);
CREATE INDEX sro_index ON sro_table ((sro_emit(a)));
RESET ROLE;
\set VERBOSITY terse
SET regress.sro_call = 'emit';
CREATE INDEX ON sro_table ((sro_emit(a)));
\echo :LAST_ERROR_SQLSTATE
REINDEX TABLE sro_table;
\echo :LAST_ERROR_SQLSTATE
SET regress.sro_call = 'emit_and_wait';
CREATE INDEX ON sro_table ((sro_emit(a)));
\echo :LAST_ERROR_SQLSTATE
REINDEX TABLE sro_table;
\echo :LAST_ERROR_SQLSTATE
ANALYZE sro_table;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET regress.sro_call;
SELECT count(*) AS emitted_in_sro FROM choreo_events('sro', 'e');
-- outside one, the same function may
BEGIN;
SELECT set_config('regress.sro_call', 'emit_and_wait', true);
SELECT sro_emit(a) FROM sro_table;
SELECT events_of('sro', 'e') AS outside_sro;
ROLLBACK;
DROP TABLE sro_table;
DROP FUNCTION sro_emit(int);
REVOKE CREATE ON SCHEMA public FROM regress_choreo_sro;
DROP ROLE regress_choreo_sro;

-- a trigger emitting per row (the use streams are built for), and a
-- statement that fails after some rows
CREATE TABLE accounts (id text PRIMARY KEY, balance int CHECK (balance >= 0));
CREATE FUNCTION accounts_emit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_emit('accounts', NEW.id, jsonb_build_object('balance', NEW.balance));
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_emit AFTER INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_emit();
INSERT INTO accounts SELECT 'a' || g, 10 FROM generate_series(1, 3) g;
UPDATE accounts SET balance = balance - 4;
UPDATE accounts SET balance = balance - 4;
UPDATE accounts SET balance = balance - 4;
SELECT events_of('accounts', 'a1') AS a1, events_of('accounts', 'a3') AS a3;
DROP TABLE accounts;
DROP FUNCTION accounts_emit();

-- clean up (the stream tables keep what was committed)
DROP FUNCTION events_of(text, text);
