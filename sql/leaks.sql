-- What one role can learn of another's work through the extension's views
-- and internal functions: only what the views show it.
\set SHOW_CONTEXT never
CREATE ROLE regress_choreo_reader NOLOGIN;
CREATE ROLE regress_choreo_writer NOLOGIN;
GRANT CREATE ON SCHEMA public TO regress_choreo_writer;

-- a cheap function that prints what it is given, called before any other
-- condition of the query could filter the rows out
CREATE FUNCTION leak(anyelement) RETURNS boolean LANGUAGE plpgsql COST 0.0000001
    AS $$ BEGIN RAISE NOTICE 'leaked: %', $1; RETURN true; END $$;

-- choreo_hooks: another role's queued hooks, with their payloads, never
-- reach the function (this database has no workers: the hooks stay queued)
INSERT INTO choreograph.hooks (txid, callback, role, payload) VALUES
    (1, 'now()', 'regress_choreo_writer', '{"token": "the writer''s secret"}'),
    (2, 'now()', 'regress_choreo_reader', '{"token": "the reader''s own"}');
SET ROLE regress_choreo_reader;
SELECT role, payload FROM choreo_hooks WHERE leak(payload);
RESET ROLE;
DELETE FROM choreograph.hooks WHERE txid IN (1, 2);
-- every view of the extension is a security barrier
SELECT c.relname, c.reloptions FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
 WHERE d.refclassid = 'pg_extension'::regclass AND c.relkind = 'v'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'choreograph')
 ORDER BY c.relname;

-- choreo_buffer_rows() returns a write's items only to the INSERT of that
-- write: not to a direct call, nor to a trigger on the table the items are
-- written into (owned by another role), whatever types it declares
SELECT * FROM choreograph.choreo_buffer_rows(0) AS r(a text);
SELECT * FROM choreograph.choreo_buffer_rows(NULL) AS r(a text);
SET ROLE regress_choreo_writer;
CREATE TABLE peeked (id serial, secret text, amount numeric);
GRANT INSERT ON peeked TO regress_choreo_reader;
GRANT USAGE ON peeked_id_seq TO regress_choreo_reader;
CREATE TABLE peeks (kind text, seen text);
-- a BEFORE row trigger (which makes the write a planned INSERT) keeping,
-- as the table's owner, the rows of the write it fires in, read with the
-- items' types or others
CREATE FUNCTION peek() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    key bigint;
BEGIN
    FOREACH key IN ARRAY ARRAY[0, 1, -1, 9223372036854775807] LOOP
        BEGIN
            INSERT INTO peeks SELECT 'own types', r::text
              FROM choreograph.choreo_buffer_rows(key) AS r(secret text, amount numeric);
        EXCEPTION WHEN insufficient_privilege THEN
            INSERT INTO peeks VALUES ('own types', SQLSTATE);
        END;
        BEGIN
            INSERT INTO peeks SELECT 'other types', r::text
              FROM choreograph.choreo_buffer_rows(key) AS r(secret bigint, amount bigint);
        EXCEPTION WHEN insufficient_privilege THEN
            INSERT INTO peeks VALUES ('other types', SQLSTATE);
        END;
    END LOOP;
    RETURN NEW;
END $$;
CREATE TRIGGER peek BEFORE INSERT ON peeked FOR EACH ROW EXECUTE FUNCTION peek();
RESET ROLE;
SELECT choreo_create_buffer('peeked_buffer', 'peeked');
SET ROLE regress_choreo_reader;
BEGIN;
SELECT choreo_fire_forget('peeked_buffer', jsonb_build_object('secret', 'the reader''s secret', 'amount', g))
  FROM generate_series(1, 3) AS g;
SELECT choreo_flush('peeked_buffer');
COMMIT;
RESET ROLE;
-- the items were written; the trigger saw none of them
SELECT secret, amount FROM peeked ORDER BY id;
SELECT kind, seen, count(*) FROM peeks GROUP BY kind, seen ORDER BY kind, seen;

-- clean up
SELECT choreo_drop_buffer('peeked_buffer');
DROP TABLE peeked, peeks;
DROP FUNCTION peek(), leak(anyelement);
REVOKE CREATE ON SCHEMA public FROM regress_choreo_writer;
DROP ROLE regress_choreo_reader, regress_choreo_writer;
