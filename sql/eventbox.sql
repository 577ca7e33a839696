-- The eventbox: choreo_send, choreo_inbox, choreo_state and
-- choreo_process_batch (spec/eventbox.md).  The concurrent cases (two
-- processors of one recipient, a sender during processing, garbage chosen
-- by two processors) are in test/isolation.

-- inbox_of(r): a recipient's outstanding values, in send order, as one line
CREATE FUNCTION inbox_of(r text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(coalesce(value::text, 'NULL'), ' ' ORDER BY id), '')
      FROM choreo_inbox(r) $$;
-- state_of(r): state and eversion, as one line
CREATE FUNCTION state_of(r text) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(state::text, 'NULL') || ' v' || eversion FROM choreo_state(r) $$;

-- processors.  consume_all: one transition consuming every event, the
-- state counting them; it says what it was handed
CREATE FUNCTION consume_all(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'consume_all(%, %, % events)', recipient, coalesce(state::text, 'NULL'),
        jsonb_array_length(events);
    RETURN jsonb_build_object('transitions', jsonb_build_array(jsonb_build_object(
        'events', (SELECT jsonb_agg(e->'id') FROM jsonb_array_elements(events) e),
        'state', jsonb_build_object('n', coalesce((state->>'n')::int, 0)
                                         + jsonb_array_length(events)))));
END $$;
-- returns what regress.result says, with $1, $2, ... replaced by the ids
-- of the batch's first, second, ... events
CREATE FUNCTION scripted(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    result text := current_setting('regress.result');
BEGIN
    FOR i IN REVERSE jsonb_array_length(events) .. 1 LOOP
        result := replace(result, '$' || i, events->(i - 1)->>'id');
    END LOOP;
    RETURN result::jsonb;
END $$;

-- a recipient never seen: no events, state NULL, eversion 0; processing
-- it does not call the processor
SELECT count(*) AS nothing_outstanding FROM choreo_inbox('never');
SELECT * FROM choreo_state('never');
SELECT choreo_process_batch('never', 'consume_all(text, jsonb, jsonb)') AS never_processed;

-- sending; the inbox lists the events in send order, with ids and times
SELECT choreo_send('order-1', '{"kind": "created"}');
SELECT choreo_send('order-1', '{"kind": "paid"}');
SELECT choreo_send('order-2', '{"kind": "created"}');
SELECT choreo_send('order-1', '{"kind": "shipped"}');
SELECT value, id > 0 AS has_id, created_at IS NOT NULL AS has_created_at,
       id > lag(id) OVER (ORDER BY id) AS after_the_one_before
  FROM choreo_inbox('order-1');
SELECT inbox_of('order-2') AS order_2;
-- recipients are case- and space-sensitive text
SELECT choreo_send('Order-1', '"upper"'), choreo_send('order-1 ', '"trailing space"');
SELECT inbox_of('Order-1') AS upper, inbox_of('order-1 ') AS trailing;

-- a batch of the oldest max_events: consumed, the state saved with
-- eversion 1, the rest outstanding
SELECT choreo_process_batch('order-1', 'consume_all(text, jsonb, jsonb)', 2) AS first_batch;
SELECT state_of('order-1') AS state, inbox_of('order-1') AS left_outstanding;
SELECT choreo_process_batch('order-1', 'consume_all(text, jsonb, jsonb)') AS second_batch;
SELECT state_of('order-1') AS state, inbox_of('order-1') AS none_left;
-- nothing outstanding: the processor is not called, nothing changes
SELECT choreo_process_batch('order-1', 'consume_all(text, jsonb, jsonb)') AS empty_batch;
SELECT state_of('order-1') AS unchanged;
-- named arguments
SELECT choreo_process_batch(recipient => 'order-2', processor => 'consume_all(text, jsonb, jsonb)',
                            max_events => 10, wait => true) AS named;

-- transitions in order: each consumes its events, the state ends as the
-- last one's, and the eversion moves once per batch
SELECT count(choreo_send('moves', to_jsonb(g))) FROM generate_series(1, 6) g;
SET regress.result = '{"transitions": [{"events": [$1], "state": {"s": "a"}},
                                       {"events": [$2, $3], "state": {"s": "b"}},
                                       {"events": [], "state": {"s": "c"}}],
                       "garbage": [$5]}';
SELECT choreo_process_batch('moves', 'scripted(text, jsonb, jsonb)', 5) AS three_transitions;
-- 4 was neither consumed nor garbage: outstanding, before 6
SELECT state_of('moves') AS state, inbox_of('moves') AS outstanding;
-- a transition back to the same state changes nothing but consumption
SET regress.result = '{"transitions": [{"events": [$1], "state": {"s": "c"}}]}';
SELECT choreo_process_batch('moves', 'scripted(text, jsonb, jsonb)', 1) AS same_state;
SELECT state_of('moves') AS still_v1;
-- garbage alone, and an empty result: no state change
SET regress.result = '{"garbage": [$1]}';
SELECT choreo_process_batch('moves', 'scripted(text, jsonb, jsonb)') AS garbage_only;
SELECT choreo_send('moves', '"kept"');
SET regress.result = '{}';
SELECT choreo_process_batch('moves', 'scripted(text, jsonb, jsonb)') AS nothing_done;
SET regress.result = '{"transitions": [], "garbage": []}';
SELECT choreo_process_batch('moves', 'scripted(text, jsonb, jsonb)') AS empty_lists;
SELECT state_of('moves') AS state, inbox_of('moves') AS outstanding;
-- a JSON null state is no state: from none to null is no change; from a
-- state to null is one, and the processor is handed NULL afterwards
SELECT choreo_send('nulls', '1'), choreo_send('nulls', '2'), choreo_send('nulls', '3');
SET regress.result = '{"transitions": [{"events": [$1], "state": null}]}';
SELECT choreo_process_batch('nulls', 'scripted(text, jsonb, jsonb)', 1) AS null_to_null;
SELECT state_of('nulls') AS never_saved;
SET regress.result = '{"transitions": [{"events": [$1], "state": 0}]}';
SELECT choreo_process_batch('nulls', 'scripted(text, jsonb, jsonb)', 1) AS to_zero;
SET regress.result = '{"transitions": [{"events": [$1], "state": null}]}';
SELECT choreo_process_batch('nulls', 'scripted(text, jsonb, jsonb)', 1) AS zero_to_null;
SELECT state_of('nulls') AS null_v2;
-- every JSON type as a state, the eversion moving at each change
SELECT count(choreo_send('types', to_jsonb(g))) FROM generate_series(1, 7) g;
CREATE TABLE type_states (n int, state jsonb);
INSERT INTO type_states VALUES (1, '"text"'), (2, '12.50'), (3, 'true'), (4, '[1, [2], {}]'),
    (5, '{"nested": {"deep": [null, "ü", -1e-10]}}'), (6, '{}'), (7, '[]');
CREATE FUNCTION move_to(r text, new_state jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result jsonb;
BEGIN
    PERFORM set_config('regress.result',
                       format('{"transitions": [{"events": [$1], "state": %s}]}', new_state), false);
    result := choreo_process_batch(r, 'scripted(text, jsonb, jsonb)', 1);
    RETURN 'eversion ' || (result->>'eversion') || ', saved as given: '
           || (SELECT s.state = new_state FROM choreo_state(r) s);
END $$;
SELECT n, move_to('types', state) FROM type_states ORDER BY n;
DROP FUNCTION move_to(text, jsonb);
DROP TABLE type_states;
SELECT state_of('types');

-- every JSON type as a value, empty and huge values, all handed to the
-- processor as sent (SQL NULL as JSON null: choreo_inbox tells them apart)
SELECT count(choreo_send('values', v)) FROM (VALUES ('"s"'::jsonb), ('0'), ('-1.5e300'), ('false'),
    ('null'), (NULL), ('{}'), ('[]'), ('""'), (jsonb_build_object('big', repeat('x', 1000000))),
    ('{"ü": "日本", "esc": "\"\\\n"}')) v(v);
CREATE TABLE handed (events jsonb);
CREATE FUNCTION keep_handed(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE sql AS $$
    INSERT INTO handed VALUES (events);
    SELECT '{}'::jsonb $$;
SELECT choreo_process_batch('values', 'keep_handed(text, jsonb, jsonb)', 100) AS handed_over;
SELECT e->'value' IS NULL AS sql_null, jsonb_typeof(e->'value') AS type,
       CASE WHEN length((e->'value')::text) > 100 THEN 'length ' || length((e->'value')::text)
            ELSE (e->'value')::text END AS value,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(e) k) AS keys
  FROM handed, jsonb_array_elements(events) WITH ORDINALITY x(e, i) ORDER BY i;
SELECT count(*) FILTER (WHERE value IS NULL) AS sql_nulls,
       count(*) FILTER (WHERE value = 'null') AS json_nulls FROM choreo_inbox('values');
-- ids as the processor is handed them are the inbox's
SELECT (SELECT array_agg((e->>'id')::bigint ORDER BY i) FROM handed, jsonb_array_elements(events)
           WITH ORDINALITY x(e, i)) = (SELECT array_agg(id ORDER BY id) FROM choreo_inbox('values'))
       AS same_ids;
DROP TABLE handed;

-- recipients: any text up to 1,024 bytes
SELECT choreo_send(repeat('r', 1024), '"longest"');
SELECT inbox_of(repeat('r', 1024)) AS longest;
SELECT choreo_send('日本語 ✓', '"unicode"');
SELECT inbox_of('日本語 ✓') AS unicode;

-- thousands of events in one transaction (more than a batch of pending
-- sends), processed at once and in parts
SELECT count(choreo_send('many', jsonb_build_object('n', g, 't', g::text, 'b', g % 2 = 0)))
  FROM generate_series(1, 12000) g;
SELECT count(*) AS sent, min((value->>'n')::int) AS first, max((value->>'n')::int) AS last,
       bool_and((value->>'n')::int = rank) AS in_send_order
  FROM (SELECT value, rank() OVER (ORDER BY id) FROM choreo_inbox('many')) s;
SET client_min_messages = warning;
SELECT choreo_process_batch('many', 'consume_all(text, jsonb, jsonb)', 5000) AS part_1;
SELECT choreo_process_batch('many', 'consume_all(text, jsonb, jsonb)', 100000) AS the_rest;
RESET client_min_messages;
SELECT state_of('many');

-- bad arguments: 22004 and 22023, nothing changed
SELECT choreo_send('bad', '"outstanding"');
SELECT err($$SELECT choreo_send(NULL, '1')$$) AS null_recipient;
SELECT err($$SELECT choreo_send('', '1')$$) AS empty_recipient;
SELECT err($$SELECT choreo_send(repeat('r', 1025), '1')$$) AS too_long;
SELECT err($$SELECT * FROM choreo_inbox(NULL)$$) AS inbox_null;
SELECT err($$SELECT * FROM choreo_inbox('')$$) AS inbox_empty;
SELECT err($$SELECT * FROM choreo_state(NULL)$$) AS state_null;
SELECT err($$SELECT * FROM choreo_state(repeat('r', 1025))$$) AS state_too_long;
SELECT err($$SELECT choreo_process_batch(NULL, 'consume_all(text, jsonb, jsonb)')$$) AS null_recipient;
SELECT err($$SELECT choreo_process_batch('', 'consume_all(text, jsonb, jsonb)')$$) AS empty_recipient;
SELECT err($$SELECT choreo_process_batch('bad', NULL)$$) AS null_processor;
SELECT err($$SELECT choreo_process_batch('bad', 'consume_all(text, jsonb, jsonb)', NULL)$$) AS null_max;
SELECT err($$SELECT choreo_process_batch('bad', 'consume_all(text, jsonb, jsonb)', 10, NULL)$$) AS null_wait;
SELECT err($$SELECT choreo_process_batch('bad', 'consume_all(text, jsonb, jsonb)', 0)$$) AS max_zero;
SELECT err($$SELECT choreo_process_batch('bad', 'consume_all(text, jsonb, jsonb)', -1)$$) AS max_negative;
SELECT inbox_of('bad') AS still_outstanding, state_of('bad') AS no_state;

-- processors of the wrong shape: 42883, 42804
CREATE FUNCTION two_args(recipient text, state jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION text_state(recipient text, state text, events jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION returns_text(recipient text, state jsonb, events jsonb) RETURNS text LANGUAGE sql AS $$ SELECT '{}' $$;
CREATE FUNCTION returns_set(recipient text, state jsonb, events jsonb) RETURNS SETOF jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE PROCEDURE a_procedure(recipient text, state jsonb, events jsonb) LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION strict_proc(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE sql STRICT AS $$ SELECT '{}'::jsonb $$;
SELECT err($$SELECT choreo_process_batch('bad', 'two_args(text, jsonb)')$$) AS two_args;
SELECT err($$SELECT choreo_process_batch('bad', 'text_state(text, text, jsonb)')$$) AS text_state;
SELECT err($$SELECT choreo_process_batch('bad', 'returns_text(text, jsonb, jsonb)')$$) AS returns_text;
SELECT err($$SELECT choreo_process_batch('bad', 'returns_set(text, jsonb, jsonb)')$$) AS returns_set;
SELECT err($$SELECT choreo_process_batch('bad', 'a_procedure(text, jsonb, jsonb)')$$) AS a_procedure;
SELECT err($$SELECT choreo_process_batch('bad', 12345678)$$) AS no_such_oid;
-- a STRICT processor would not be called for a recipient without state
SELECT err($$SELECT choreo_process_batch('bad', 'strict_proc(text, jsonb, jsonb)')$$) AS strict;
DROP FUNCTION two_args(text, jsonb), text_state(text, text, jsonb),
    returns_text(text, jsonb, jsonb), returns_set(text, jsonb, jsonb);
DROP PROCEDURE a_procedure(text, jsonb, jsonb);
DROP FUNCTION strict_proc(text, jsonb, jsonb);

-- malformed results: 22023, and nothing changed, the processor's own
-- writes included
SELECT choreo_send('bad', '"second"'), choreo_send('bad', '"third"');
CREATE TABLE side_effects (what text);
CREATE FUNCTION scripted_with_effect(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO side_effects VALUES ('written by the processor');
    PERFORM choreo_send('elsewhere', '"sent by the processor"');
    RETURN scripted(recipient, state, events);
END $$;
-- malformed(result): the SQLSTATE, and the detail that says what is wrong
CREATE FUNCTION malformed(result text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    PERFORM set_config('regress.result', result, false);
    PERFORM choreo_process_batch('bad', 'scripted_with_effect(text, jsonb, jsonb)');
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || detail;
END $$;
-- the whole error, once
SELECT set_config('regress.result', '{"transitions": [{"events": [$1]}]}', false) IS NOT NULL AS set;
SELECT choreo_process_batch('bad', 'scripted(text, jsonb, jsonb)') AS the_whole_error;
SELECT r AS result, malformed(r) AS error FROM (VALUES
    ('[]'), ('"transitions"'), ('null'), ('17'),
    ('{"transitions": {}}'), ('{"transitions": [1]}'), ('{"transitions": [[]]}'),
    ('{"transitions": [{"events": [$1]}]}'),
    ('{"transitions": [{"state": 1}]}'),
    ('{"transitions": [{"events": $1, "state": 1}]}'),
    ('{"transitions": [{"events": [$1], "state": 1, "extra": 1}]}'),
    ('{"garbage": {}}'), ('{"garbage": [$1], "garbadge": []}'),
    ('{"transitions": [{"events": [$1, $1], "state": 1}]}'),
    ('{"transitions": [{"events": [$1], "state": 1}, {"events": [$1], "state": 2}]}'),
    ('{"transitions": [{"events": [$1], "state": 1}], "garbage": [$1]}'),
    ('{"garbage": [$2, $2]}'),
    ('{"garbage": [999999999]}'), ('{"garbage": [0]}'), ('{"garbage": [-3]}'),
    ('{"garbage": [1e30]}'), ('{"garbage": [1.5]}'), ('{"garbage": ["$1"]}'),
    ('{"garbage": [true]}'), ('{"garbage": [null]}'), ('{"garbage": [[$1]]}')) v(r);
-- 17.0 is 17: an integer written with a fraction is accepted
SELECT set_config('regress.result', '{"garbage": [$3.0]}', false) IS NOT NULL AS set;
SELECT choreo_process_batch('bad', 'scripted(text, jsonb, jsonb)') AS integral_fraction;
-- a processor returning NULL
CREATE FUNCTION returns_null(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT NULL::jsonb $$;
SELECT err($$SELECT choreo_process_batch('bad', 'returns_null(text, jsonb, jsonb)')$$) AS null_result;
SELECT inbox_of('bad') AS unchanged, state_of('bad') AS no_state,
       (SELECT count(*) FROM side_effects) AS side_effects, inbox_of('elsewhere') AS nothing_sent;
-- a processor's error reaches the caller with its SQLSTATE; its writes,
-- the consumption and the state roll back together
CREATE FUNCTION fails(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO side_effects VALUES ('before the error');
    RAISE EXCEPTION 'the processor failed' USING ERRCODE = 'P0042', DETAIL = 'On purpose.';
END $$;
SELECT choreo_process_batch('bad', 'fails(text, jsonb, jsonb)');
SELECT err($$SELECT choreo_process_batch('bad', 'fails(text, jsonb, jsonb)')$$) AS processor_error;
SELECT inbox_of('bad') AS unchanged, (SELECT count(*) FROM side_effects) AS side_effects;
-- the same processor's writes commit with the state when it succeeds
SET regress.result = '{"transitions": [{"events": [$1], "state": "done"}]}';
SELECT choreo_process_batch('bad', 'scripted_with_effect(text, jsonb, jsonb)', 1) AS with_effects;
SELECT state_of('bad'), inbox_of('bad') AS outstanding,
       (SELECT string_agg(what, ', ') FROM side_effects) AS side_effects,
       inbox_of('elsewhere') AS sent_by_processor;
-- (post-processing with choreo_post_commit, which the workers run in
-- their database: test/t/021_eventbox_example.pl)
-- a processor may not process its own recipient (55006); others it may
CREATE FUNCTION nested(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_process_batch(current_setting('regress.nested'), 'consume_all(text, jsonb, jsonb)');
    RETURN consume_all(recipient, state, events);
END $$;
SELECT choreo_send('outer', '1'), choreo_send('inner', '2');
SET regress.nested = 'outer';
SELECT err($$SELECT choreo_process_batch('outer', 'nested(text, jsonb, jsonb)')$$) AS same_recipient;
SET regress.nested = 'inner';
SELECT choreo_process_batch('outer', 'nested(text, jsonb, jsonb)') AS other_recipient;
SELECT state_of('outer') AS outer_state, state_of('inner') AS inner_state;
-- nor one further out: outer's processor processes inner, whose processor
-- would process outer
CREATE FUNCTION nested_back(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_process_batch('outer', 'consume_all(text, jsonb, jsonb)');
    RETURN consume_all(recipient, state, events);
END $$;
CREATE FUNCTION nested_forth(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_process_batch('inner', 'nested_back(text, jsonb, jsonb)');
    RETURN consume_all(recipient, state, events);
END $$;
SELECT choreo_send('outer', '5'), choreo_send('inner', '6');
SELECT err($$SELECT choreo_process_batch('outer', 'nested_forth(text, jsonb, jsonb)')$$) AS two_deep;
SET client_min_messages = warning;
SELECT choreo_process_batch('outer', 'consume_all(text, jsonb, jsonb)') AS outer_drained,
       choreo_process_batch('inner', 'consume_all(text, jsonb, jsonb)') AS inner_drained;
RESET client_min_messages;
DROP FUNCTION nested_back(text, jsonb, jsonb), nested_forth(text, jsonb, jsonb);
-- after a nested error was caught, the recipient can be processed again
CREATE FUNCTION nested_caught(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM choreo_process_batch('inner', 'fails(text, jsonb, jsonb)');
    EXCEPTION WHEN SQLSTATE 'P0042' THEN
        RAISE NOTICE 'caught the inner processor''s error';
    END;
    RETURN consume_all(recipient, state, events);
END $$;
SELECT choreo_send('outer', '3'), choreo_send('inner', '4');
SELECT choreo_process_batch('outer', 'nested_caught(text, jsonb, jsonb)') AS caught;
SELECT choreo_process_batch('inner', 'consume_all(text, jsonb, jsonb)') AS inner_afterwards;

-- what a processor sends to its own recipient is outstanding after the
-- batch, and counted in remaining
CREATE FUNCTION follow_up(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
BEGIN
    IF state IS NULL THEN
        PERFORM choreo_send(recipient, '"follow-up 1"'), choreo_send(recipient, '"follow-up 2"');
    END IF;
    RETURN jsonb_build_object('transitions', jsonb_build_array(jsonb_build_object(
        'events', jsonb_path_query_array(events, '$[*].id'), 'state', 'followed up')));
END $$;
SELECT choreo_send('follow', '"first"');
SELECT choreo_process_batch('follow', 'follow_up(text, jsonb, jsonb)') AS sends_own;
SELECT inbox_of('follow') AS outstanding;
DROP FUNCTION follow_up(text, jsonb, jsonb);

-- savepoints: sends and batches rolled back to a savepoint are undone
BEGIN;
SELECT choreo_send('savepoints', '"kept 1"');
SAVEPOINT a;
SELECT choreo_send('savepoints', '"dropped"');
ROLLBACK TO SAVEPOINT a;
SELECT choreo_send('savepoints', '"kept 2"');
SELECT inbox_of('savepoints') AS before_processing;
SAVEPOINT b;
SELECT choreo_process_batch('savepoints', 'consume_all(text, jsonb, jsonb)') AS in_savepoint;
SELECT state_of('savepoints') AS processed;
ROLLBACK TO SAVEPOINT b;
SELECT state_of('savepoints') AS undone, inbox_of('savepoints') AS back_again;
SAVEPOINT c;
SELECT choreo_process_batch('savepoints', 'consume_all(text, jsonb, jsonb)', 1) AS released;
RELEASE SAVEPOINT c;
COMMIT;
SELECT state_of('savepoints'), inbox_of('savepoints') AS outstanding;

-- two-phase commit: a prepared batch commits with COMMIT PREPARED
BEGIN;
SELECT choreo_send('prepared', '"sent in a prepared transaction"');
SELECT choreo_process_batch('prepared', 'consume_all(text, jsonb, jsonb)') AS prepared_batch;
SELECT choreo_send('prepared', '"left for later"');
PREPARE TRANSACTION 'eventbox';
SELECT state_of('prepared') AS before_commit_prepared;
COMMIT PREPARED 'eventbox';
SELECT state_of('prepared') AS after, inbox_of('prepared') AS outstanding;
BEGIN;
SELECT choreo_process_batch('prepared', 'consume_all(text, jsonb, jsonb)') AS rolled_back_later;
PREPARE TRANSACTION 'eventbox rollback';
ROLLBACK PREPARED 'eventbox rollback';
SELECT state_of('prepared') AS unchanged, inbox_of('prepared') AS outstanding;

-- isolation levels: the same in REPEATABLE READ and SERIALIZABLE
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT choreo_process_batch('prepared', 'consume_all(text, jsonb, jsonb)') AS repeatable_read;
COMMIT;
SELECT choreo_send('serializable', '1');
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT choreo_process_batch('serializable', 'consume_all(text, jsonb, jsonb)') AS serializable;
COMMIT;
SELECT state_of('serializable');

-- a read-only transaction may read but not process (25006), nor send
-- (raised when the sends are written)
BEGIN READ ONLY;
SELECT inbox_of('prepared') AS read_only_inbox, state_of('prepared') AS read_only_state;
SELECT left(err($$SELECT choreo_process_batch('bad', 'consume_all(text, jsonb, jsonb)')$$), 5) AS read_only_process;
SELECT left(err($$SELECT choreo_send('bad', '1'), choreo_flush()$$), 5) AS read_only_send;
ROLLBACK;

-- roles.  Anyone may send; a recipient belongs to the role whose batch
-- first processed events of it, and only that role's members may then process
-- it or read its inbox and state (42501); nobody's recipient is anyone's
CREATE ROLE regress_eventbox_owner;
CREATE ROLE regress_eventbox_member IN ROLE regress_eventbox_owner;
CREATE ROLE regress_eventbox_other;
SET ROLE regress_eventbox_owner;
SELECT choreo_send('owned', '1'), choreo_send('owned', '2');
SELECT inbox_of('owned') AS unowned_readable;
SET client_min_messages = warning;
SELECT choreo_process_batch('owned', 'consume_all(text, jsonb, jsonb)', 1) AS claimed;
RESET client_min_messages;
RESET ROLE;
SELECT owner FROM choreograph.eventbox_states WHERE recipient = 'owned';
SET ROLE regress_eventbox_other;
SELECT choreo_send('owned', '"from another role"') AS others_may_send;
SELECT err($$SELECT * FROM choreo_inbox('owned')$$) AS other_inbox;
SELECT err($$SELECT * FROM choreo_state('owned')$$) AS other_state;
SELECT err($$SELECT choreo_process_batch('owned', 'consume_all(text, jsonb, jsonb)')$$) AS other_process;
-- nor through the tables
SELECT err($$SELECT * FROM choreograph.inbox$$) AS read_inbox_table;
SELECT err($$SELECT * FROM choreograph.eventbox_states$$) AS read_states_table;
SELECT err($$DELETE FROM choreograph.inbox$$) AS delete_inbox_table;
SELECT err($$INSERT INTO choreograph.eventbox_states VALUES ('owned', '1', 9, 'regress_eventbox_other')$$) AS plant_state;
-- a recipient whose batches never set a state belongs to its first
-- processing role all the same
SET ROLE regress_eventbox_owner;
SELECT choreo_send('stateless', '1'), choreo_send('stateless', '2');
SET regress.result = '{"garbage": [$1]}';
SELECT choreo_process_batch('stateless', 'scripted(text, jsonb, jsonb)', 1) AS stateless_claim;
SELECT * FROM choreo_state('stateless');
SET ROLE regress_eventbox_other;
SELECT err($$SELECT * FROM choreo_inbox('stateless')$$) AS stateless_inbox;
SELECT err($$SELECT choreo_process_batch('stateless', 'scripted(text, jsonb, jsonb)')$$) AS stateless_process;
-- a recipient nobody owns yet is anyone's
SELECT choreo_send('nobodys', '"open"');
SELECT inbox_of('nobodys') AS unowned_is_open, state_of('nobodys') AS unowned_state;
RESET ROLE;
SET ROLE regress_eventbox_member;
SELECT inbox_of('owned') AS member_reads, state_of('owned') AS member_state;
SET client_min_messages = warning;
SELECT choreo_process_batch('owned', 'consume_all(text, jsonb, jsonb)') AS member_processes;
RESET client_min_messages;
RESET ROLE;
SELECT state_of('owned') AS superuser_reads;
-- the processor runs as the caller, who needs EXECUTE on it (42501)
CREATE FUNCTION whoami(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT jsonb_build_object('transitions', jsonb_build_array(
        jsonb_build_object('events', '[]'::jsonb, 'state', to_jsonb(current_user::text)))) $$;
REVOKE EXECUTE ON FUNCTION whoami(text, jsonb, jsonb) FROM PUBLIC;
SET ROLE regress_eventbox_other;
SELECT choreo_send('who', '1');
SELECT err($$SELECT choreo_process_batch('who', 'whoami(text, jsonb, jsonb)')$$) AS no_execute;
RESET ROLE;
GRANT EXECUTE ON FUNCTION whoami(text, jsonb, jsonb) TO regress_eventbox_other, regress_eventbox_member;
SET ROLE regress_eventbox_other;
SELECT choreo_process_batch('who', 'whoami(text, jsonb, jsonb)') AS as_caller;
SELECT state_of('who') AS ran_as;
RESET ROLE;
-- EXECUTE on choreo_send and choreo_process_batch can be taken back
REVOKE EXECUTE ON FUNCTION choreo_send(text, jsonb) FROM PUBLIC;
SET ROLE regress_eventbox_other;
SELECT err($$SELECT choreo_send('who', '2')$$) AS send_revoked;
RESET ROLE;
GRANT EXECUTE ON FUNCTION choreo_send(text, jsonb) TO PUBLIC;
-- a dropped owner leaves the recipient to superusers
SET ROLE regress_eventbox_member;
SELECT choreo_send('orphan', '1'), choreo_send('orphan', '2');
SELECT choreo_process_batch('orphan', 'whoami(text, jsonb, jsonb)') AS claimed_by_member;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION whoami(text, jsonb, jsonb) FROM regress_eventbox_member;
DROP ROLE regress_eventbox_member;
SET ROLE regress_eventbox_other;
SELECT err($$SELECT choreo_process_batch('orphan', 'whoami(text, jsonb, jsonb)')$$) AS orphaned;
RESET ROLE;
SET client_min_messages = warning;
SELECT choreo_process_batch('orphan', 'consume_all(text, jsonb, jsonb)') AS superuser_processes;
RESET client_min_messages;
SELECT state_of('orphan');
DROP FUNCTION whoami(text, jsonb, jsonb);
DROP ROLE regress_eventbox_owner, regress_eventbox_other;

-- in a security-restricted operation (an index expression while another
-- role's table is indexed): 42501, nothing sent or processed
CREATE ROLE regress_eventbox_sro NOLOGIN;
GRANT CREATE ON SCHEMA public TO regress_eventbox_sro;
SET ROLE regress_eventbox_sro;
CREATE FUNCTION sro_call(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE
    SET search_path = public AS $$
BEGIN
    CASE current_setting('regress.sro_call', true)
        WHEN 'send' THEN PERFORM choreo_send('sro', to_jsonb(a));
        WHEN 'process' THEN PERFORM choreo_process_batch('bad', 'consume_all(text, jsonb, jsonb)');
        ELSE NULL;
    END CASE;
    RETURN a;
END $$;
CREATE TABLE sro_table (a int);
INSERT INTO sro_table VALUES (1), (2);
RESET ROLE;
\set VERBOSITY terse
SET regress.sro_call = 'send';
CREATE INDEX ON sro_table ((sro_call(a)));
\echo :LAST_ERROR_SQLSTATE
SET regress.sro_call = 'process';
CREATE INDEX ON sro_table ((sro_call(a)));
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET regress.sro_call;
SELECT inbox_of('sro') AS nothing_sent, inbox_of('bad') AS unchanged;
DROP TABLE sro_table;
DROP FUNCTION sro_call(int);
REVOKE CREATE ON SCHEMA public FROM regress_eventbox_sro;
DROP ROLE regress_eventbox_sro;

-- a trigger sending per row (a table's changes as events for a recipient)
CREATE TABLE votes (change text, voter text, value int);
CREATE FUNCTION votes_send() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM choreo_send('change/' || NEW.change, jsonb_build_object('vote', NEW.voter, 'value', NEW.value));
    RETURN NEW;
END $$;
CREATE TRIGGER votes_send AFTER INSERT ON votes FOR EACH ROW EXECUTE FUNCTION votes_send();
INSERT INTO votes VALUES ('c1', 'ann', 1), ('c1', 'bob', -1), ('c2', 'ann', 2);
SELECT inbox_of('change/c1') AS c1, inbox_of('change/c2') AS c2;
DROP TABLE votes;
DROP FUNCTION votes_send();

DROP FUNCTION inbox_of(text), state_of(text), consume_all(text, jsonb, jsonb),
    scripted(text, jsonb, jsonb), scripted_with_effect(text, jsonb, jsonb), malformed(text),
    keep_handed(text, jsonb, jsonb), returns_null(text, jsonb, jsonb), fails(text, jsonb, jsonb),
    nested(text, jsonb, jsonb),
    nested_caught(text, jsonb, jsonb);
DROP TABLE side_effects;
