-- scale-out: the eventbox and post-commit hooks through the coordinator.
-- A recipient lives on the node holding its shard, like a stream's entity:
-- sends, reads and batches are delegated there.  A post-commit hook is
-- kept in the outbox of the node whose transaction registered it and run
-- by that node's workers: on the coordinator for a session there, on a
-- worker for a run Citus pushed down to it.
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
SELECT current_setting('port') AS coordinator_port \gset
CREATE FUNCTION count_up(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE sql AS $$
    SELECT jsonb_build_object('transitions', jsonb_build_array(jsonb_build_object(
        'events', jsonb_path_query_array(events, '$[*].id'),
        'state', jsonb_build_object(
            'total', coalesce((state->>'total')::int, 0)
                     + (SELECT sum((e->'value'->>'n')::int)::int FROM jsonb_array_elements(events) e),
            'port', current_setting('port')::int)))) $$;
\set ECHO none
\o /dev/null
SELECT format('SELECT choreo_send(%L, %L)', 'account-' || g, jsonb_build_object('n', k))
  FROM generate_series(1, 50) g, generate_series(1, 4) k ORDER BY k, g \gexec
\o
\set ECHO all
BEGIN;
SELECT choreo_send('account-1', '{"n": 10}');
SELECT count(*) AS outstanding_for_account_1 FROM choreo_inbox('account-1');
COMMIT;
SELECT choreo_process_batch('account-1', 'count_up(text, jsonb, jsonb)') AS batch;
-- not a call of its own (an expression around it): not delegated, refused
\set VERBOSITY sqlstate
SELECT choreo_process_batch('account-2', 'count_up(text, jsonb, jsonb)') - 'eversion';
\set VERBOSITY default
SELECT state->'total' AS total, eversion, (state->>'port')::int <> :coordinator_port AS on_a_worker
  FROM choreo_state('account-1');
\set ECHO none
\o /dev/null
SELECT format('SELECT choreo_process_batch(%L, %L)', 'account-' || g, 'count_up(text, jsonb, jsonb)')
  FROM generate_series(2, 50) g \gexec
\o
\set ECHO all
SELECT sum(result::int) AS recipients_with_state, count(*) FILTER (WHERE result::int > 0) AS nodes
  FROM run_command_on_all_nodes($$SELECT count(*) FROM choreograph.eventbox_states$$);
SELECT sum(result::int) AS totals
  FROM run_command_on_workers($$SELECT coalesce(sum((state->>'total')::int), 0) FROM choreograph.eventbox_states$$);
SELECT sum(result::int) AS outstanding
  FROM run_command_on_all_nodes($$SELECT count(*) FROM choreograph.inbox$$);
\set VERBOSITY sqlstate
SELECT choreo_send('account-' || g, '{}') FROM generate_series(1, 2) g;
\set VERBOSITY default

-- hooks: one registered on the coordinator, one by a job Citus pushed down
CREATE TABLE hook_runs (id bigserial, note text, port int);
CREATE FUNCTION note_hook(payload jsonb) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO hook_runs (note, port) VALUES (payload->>'note', current_setting('port')::int) $$;
SELECT result FROM run_command_on_workers(
    'CREATE TABLE public.hook_runs (id bigserial, note text, port int)');
CREATE TABLE tickets (id bigint PRIMARY KEY, title text);
SELECT create_distributed_table('tickets', 'id');
INSERT INTO tickets VALUES (1, 'first'), (2, 'second');
CREATE FUNCTION hook_later(t tickets) RETURNS void LANGUAGE sql
    AS $$ SELECT choreo_post_commit('note_hook(jsonb)', jsonb_build_object('note', t.title)) $$;
SELECT choreo_add_step('ticket_flow', 'hook', 'hook_later(tickets)');
SELECT choreo_post_commit('note_hook(jsonb)', '{"note": "from the coordinator"}');
SELECT count(choreo_run('ticket_flow', t)) AS runs FROM tickets t;
DO $$
BEGIN
    FOR i IN 1 .. 600 LOOP
        EXIT WHEN (SELECT count(*) FROM hook_runs) = 1
              AND (SELECT sum(result::int) FROM run_command_on_workers(
                      'SELECT count(*) FROM public.hook_runs')) = 2;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT note, port = :coordinator_port AS on_the_coordinator FROM hook_runs;
SELECT sum(result::int) AS hooks_run_on_workers,
       count(*) FILTER (WHERE result::int > 0) AS workers
  FROM run_command_on_workers('SELECT count(*) FROM public.hook_runs');
SELECT sum(result::int) AS hooks_left
  FROM run_command_on_all_nodes('SELECT count(*) FROM choreograph.hooks');
-- pre-commit hooks: at the coordinator's COMMIT, writing a distributed
-- table through Citus; registered by a job on a worker, run at that node's
-- PREPARE (Citus commits in two phases), where Citus runs no distributed
-- query (the statement fails, with nothing written) but the node's own
-- tables may be written
CREATE TABLE audit (ticket bigint, note text);
SELECT create_distributed_table('audit', 'ticket', colocate_with := 'tickets');
CREATE FUNCTION audit_hook(payload jsonb) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO audit VALUES ((payload->>'ticket')::bigint, payload->>'note'); END $$;
BEGIN;
SELECT choreo_pre_commit('audit_hook(jsonb)', '{"ticket": 1, "note": "at the coordinator''s commit"}');
SELECT count(*) AS before_commit FROM audit;
COMMIT;
CREATE FUNCTION audit_later(t tickets) RETURNS void LANGUAGE sql
    AS $$ SELECT choreo_pre_commit('audit_hook(jsonb)',
                                   jsonb_build_object('ticket', t.id, 'note', 'at the worker''s prepare')) $$;
SELECT choreo_add_step('audit_flow', 'audit', 'audit_later(tickets)');
SELECT count(choreo_run('audit_flow', t)) AS runs FROM tickets t WHERE id = 2;
SELECT ticket, note FROM audit ORDER BY ticket;
SELECT result FROM run_command_on_workers('CREATE TABLE public.node_audit (note text, port int)');
CREATE FUNCTION node_audit_hook(payload jsonb) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN INSERT INTO node_audit VALUES (payload->>'note', current_setting('port')::int); END $$;
CREATE FUNCTION node_audit_later(t tickets) RETURNS void LANGUAGE sql
    AS $$ SELECT choreo_pre_commit('node_audit_hook(jsonb)', jsonb_build_object('note', t.title)) $$;
SELECT choreo_add_step('node_audit_flow', 'audit', 'node_audit_later(tickets)');
SELECT count(choreo_run('node_audit_flow', t)) AS runs FROM tickets t;
SELECT sum(result::int) AS written_at_prepare, count(*) FILTER (WHERE result::int > 0) AS nodes
  FROM run_command_on_workers('SELECT count(*) FROM public.node_audit');
-- a pre-commit hook that fails aborts the distributed transaction everywhere
CREATE FUNCTION refuse_hook(payload jsonb) RETURNS void LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'check_violation'; END $$;
CREATE FUNCTION refuse_later(t tickets) RETURNS void LANGUAGE sql
    AS $$ SELECT choreo_pre_commit('refuse_hook(jsonb)') $$;
SELECT choreo_add_step('refuse_flow', 'refuse', 'refuse_later(tickets)');
BEGIN;
INSERT INTO tickets VALUES (3, 'third');
SELECT count(choreo_run('refuse_flow', t)) AS runs FROM tickets t WHERE id = 1;
-- the hook's error reaches the coordinator as Citus's WARNINGs naming the
-- node and an ERROR naming the shard: only the SQLSTATE is shown
SET client_min_messages = error;
\set VERBOSITY sqlstate
COMMIT;
\set VERBOSITY default
SET client_min_messages = warning;
SELECT count(*) AS tickets_after_refusal FROM tickets;
SELECT choreo_drop_pipeline('audit_flow'), choreo_drop_pipeline('refuse_flow'),
       choreo_drop_pipeline('node_audit_flow');
DROP FUNCTION audit_later(tickets), refuse_later(tickets), audit_hook(jsonb), refuse_hook(jsonb),
              node_audit_later(tickets), node_audit_hook(jsonb);
DROP TABLE audit;
SELECT result FROM run_command_on_workers('DROP TABLE public.node_audit');
SELECT choreo_drop_pipeline('ticket_flow');
DROP FUNCTION hook_later(tickets);
DROP TABLE tickets, hook_runs;
SELECT result FROM run_command_on_workers('DROP TABLE public.hook_runs');
DROP FUNCTION note_hook(jsonb), count_up(text, jsonb, jsonb);
