-- choreo_capture: a C row trigger firing one item per changed row into a
-- buffer, the envelope in a jsonb column, every other column defaulted.

CREATE TABLE changes (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
                      body text, at timestamptz NOT NULL DEFAULT now());
SELECT choreo_create_buffer('changes', 'changes', 2);
CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);

CREATE TRIGGER accounts_capture AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('changes');
INSERT INTO accounts VALUES (1, 'ada', 10), (2, 'bob', 20), (3, 'cy', 30);
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
DELETE FROM accounts WHERE id = 2;
SELECT id, payload FROM changes ORDER BY id;

-- batched within the transaction, all-or-nothing with it
TRUNCATE changes;
BEGIN;
INSERT INTO accounts VALUES (4, 'di', 40);
SELECT count(*) AS written_before_full FROM changes;
INSERT INTO accounts VALUES (5, 'ed', 50);
SELECT count(*) AS written_when_full FROM changes;
INSERT INTO accounts VALUES (6, 'fy', 60);
ROLLBACK;
SELECT count(*) AS after_rollback FROM changes;

-- savepoints
BEGIN;
INSERT INTO accounts VALUES (7, 'gu', 70);
SAVEPOINT s;
INSERT INTO accounts VALUES (8, 'ha', 80);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT payload->'new'->>'owner' AS owner FROM changes ORDER BY id;
TRUNCATE changes;

-- another column, of another type: the envelope's text
DROP TRIGGER accounts_capture ON accounts;
CREATE TRIGGER accounts_capture_body AFTER UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('changes', 'body');
\set VERBOSITY terse
UPDATE accounts SET owner = 'Ada' WHERE id = 1;
\set VERBOSITY default
ALTER TABLE changes ALTER payload DROP NOT NULL;
UPDATE accounts SET owner = 'Ada L.' WHERE id = 1;
SELECT payload, body::jsonb->>'op' AS op FROM changes;
DROP TRIGGER accounts_capture_body ON accounts;

-- BEFORE triggers return the row unchanged
TRUNCATE changes;
CREATE TRIGGER accounts_before BEFORE INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('changes');
INSERT INTO accounts VALUES (9, 'ivy', 90) RETURNING *;
SELECT payload->'new' FROM changes;
DROP TRIGGER accounts_before ON accounts;

-- bad definitions fail at the first row, with their SQLSTATEs
CREATE TRIGGER t1 AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION choreo_capture('nope');
SELECT err($$INSERT INTO accounts VALUES (10, 'x', 0)$$);
DROP TRIGGER t1 ON accounts;
CREATE TRIGGER t2 AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION choreo_capture('changes', 'no_column');
SELECT err($$INSERT INTO accounts VALUES (10, 'x', 0)$$);
DROP TRIGGER t2 ON accounts;
CREATE TRIGGER t3 AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION choreo_capture();
SELECT err($$INSERT INTO accounts VALUES (10, 'x', 0)$$);
DROP TRIGGER t3 ON accounts;
CREATE TRIGGER t4 AFTER INSERT ON accounts FOR EACH STATEMENT EXECUTE FUNCTION choreo_capture('changes');
SELECT err($$INSERT INTO accounts VALUES (10, 'x', 0)$$);
DROP TRIGGER t4 ON accounts;
CREATE TRIGGER t5 AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION choreo_capture('changes', 'id');
SELECT err($$INSERT INTO accounts VALUES (10, 'x', 0)$$);
DROP TRIGGER t5 ON accounts;
SELECT err($$SELECT choreo_capture()$$);
SELECT count(*) FROM accounts WHERE id = 10;

-- capture into the buffer's own table: each write captures itself again.
-- Written at once (max_batch 1), the loop ends at the stack depth limit
-- (54001), as the same loop through PL/pgSQL does (it once overflowed the
-- stack); written at commit, at the bound on pre-commit rounds (54000).
-- Either way nothing is written.
-- (no column defaults: nothing on the way checks the stack depth for us)
CREATE TABLE self_capture (payload jsonb);
SELECT choreo_create_buffer('self_now', 'self_capture', 1);
CREATE TRIGGER self_now AFTER INSERT ON self_capture
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('self_now');
SELECT err($$INSERT INTO self_capture (payload) VALUES ('{}')$$);
DROP TRIGGER self_now ON self_capture;
SELECT choreo_create_buffer('self_later', 'self_capture', 1000);
CREATE TRIGGER self_later AFTER INSERT ON self_capture
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('self_later');
\set VERBOSITY terse
INSERT INTO self_capture (payload) VALUES ('{}');
\set VERBOSITY default
SELECT count(*) AS nothing_written FROM self_capture;
DROP TABLE self_capture;
SELECT choreo_drop_buffer('self_now'), choreo_drop_buffer('self_later');

DROP TABLE accounts, changes;
SELECT choreo_drop_buffer('changes');
