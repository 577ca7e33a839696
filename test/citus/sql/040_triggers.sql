-- scale-out: choreo_trigger on a distributed table.  Citus refuses the
-- trigger unless citus.enable_unsafe_triggers is on; then it fires on the
-- shard, on the worker holding the row, where the run finds its pipeline
-- and takes the row as a row of the table, and the envelope names the
-- table.  The job's writes to a colocated table go to the same node.
SET client_min_messages = warning;
-- the CONTEXT of an error on a worker names its port, which differs from run to run
\set SHOW_CONTEXT never
CREATE TABLE accounts (id bigint PRIMARY KEY, balance numeric, owner_name text, opened timestamptz,
                       flags boolean[], extra jsonb);
SELECT create_distributed_table('accounts', 'id', shard_count := 4);
CREATE TABLE ledger (account bigint, entry text, op text, tab text, port int);
SELECT create_distributed_table('ledger', 'account', colocate_with := 'accounts');
CREATE FUNCTION post_entry(a accounts) RETURNS text LANGUAGE sql
    AS $$ INSERT INTO ledger (account, entry, port)
          VALUES (a.id, 'balance ' || a.balance || ' of ' || coalesce(a.owner_name, 'nobody'),
                  current_setting('port')::int)
          RETURNING entry $$;
CREATE FUNCTION note_change(change jsonb) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO ledger (account, op, tab, port)
          VALUES ((change->'new'->>'id')::bigint, change->>'op', change->>'table',
                  current_setting('port')::int) $$;
SELECT choreo_add_step('on_account', 'post', 'post_entry(accounts)');
SELECT choreo_add_step('on_account', 'note', 'note_change(jsonb)');
CREATE TRIGGER on_account AFTER INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('on_account');
SET citus.enable_unsafe_triggers = on;
CREATE TRIGGER on_account AFTER INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('on_account');
RESET citus.enable_unsafe_triggers;
SELECT current_setting('port') AS coordinator_port \gset
-- one row, then 2,000 in one statement (every shard, both workers)
INSERT INTO accounts VALUES (1, 10, 'ann', '2026-12-01 10:00+00', '{t,f}', '{"vip": true}');
SELECT account, entry, op, tab, port <> :coordinator_port AS on_a_worker
  FROM ledger ORDER BY entry;
INSERT INTO accounts
SELECT g, g * 1.5, CASE WHEN g % 7 <> 0 THEN 'owner ' || g END, now(), ARRAY[g % 2 = 0],
       CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_object('g', g) END
  FROM generate_series(2, 2001) g;
SELECT count(entry) AS entries, count(DISTINCT account) AS accounts,
       count(*) FILTER (WHERE op = 'INSERT' AND tab = 'public.accounts') AS envelopes_right,
       count(*) FILTER (WHERE entry LIKE '% of nobody') AS without_owner,
       count(DISTINCT port) AS nodes, bool_and(port <> :coordinator_port) AS none_on_the_coordinator
  FROM ledger;
-- an update through the coordinator, on many shards
UPDATE accounts SET balance = balance + 1 WHERE id % 100 = 0;
SELECT count(*) AS updated_entries FROM ledger WHERE op = 'UPDATE';
-- a failing job fails the statement, on every node: nothing is written
CREATE FUNCTION refuse_big(a accounts) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF a.balance > 10000 THEN
        RAISE EXCEPTION 'balance % too big', a.balance USING ERRCODE = 'check_violation';
    END IF;
END $$;
SELECT choreo_add_step('on_account', 'refuse', 'refuse_big(accounts)');
INSERT INTO accounts SELECT g, CASE WHEN g = 2500 THEN 20000 ELSE 1 END
  FROM generate_series(2002, 2600) g;
SELECT count(*) AS accounts_after_failure FROM accounts;
SELECT count(entry) AS entries_after_failure FROM ledger;
DROP FUNCTION post_entry(accounts), note_change(jsonb), refuse_big(accounts);
DROP TABLE accounts, ledger;
SELECT choreo_drop_pipeline('on_account');
