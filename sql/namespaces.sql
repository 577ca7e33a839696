-- Names of pipelines and buffers belong to schemas, as functions' names do:
-- a name given as schema.name is in that schema; an unqualified one is
-- created in the first schema of search_path, which needs CREATE on it, and
-- looked up through search_path (never in pg_temp); names are parsed as
-- PostgreSQL parses qualified names.

CREATE ROLE regress_choreo_mallory NOLOGIN;
CREATE TABLE ns_log (who text, what text);
GRANT INSERT ON ns_log TO PUBLIC;
CREATE FUNCTION ns_record(e jsonb) RETURNS text LANGUAGE sql
    AS $$ INSERT INTO public.ns_log VALUES (current_user, e->>'op') RETURNING 'recorded' $$;
CREATE FUNCTION ns_in_a() RETURNS text LANGUAGE sql AS $$ SELECT 'a' $$;
CREATE FUNCTION ns_in_b() RETURNS text LANGUAGE sql AS $$ SELECT 'b' $$;
CREATE FUNCTION ns_in_public() RETURNS text LANGUAGE sql AS $$ SELECT 'public' $$;

-- The attack of issue 8: a superuser's trigger names a pipeline that is not
-- defined yet, and a plain role tries to define it.
CREATE TABLE invoices (id int);
CREATE TRIGGER invoices_flow AFTER INSERT ON invoices
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('invoice_flow');
SET ROLE regress_choreo_mallory;
-- where the superuser's search_path would find it, the role may not create
-- anything: since PostgreSQL 15 only the database owner may create in public
SELECT err($$SELECT choreo_add_step('invoice_flow', 'steal', 'ns_record(jsonb)')$$);
SELECT err($$SELECT choreo_add_step('public.invoice_flow', 'steal', 'ns_record(jsonb)')$$);
SELECT err($$SELECT choreo_create_buffer('invoice_events', 'ns_log')$$);
RESET ROLE;
-- nothing was written
SELECT count(*) AS claimed FROM choreograph.pipelines WHERE name IN ('invoice_flow', 'invoice_events');
SELECT count(*) AS claimed FROM choreograph.buffers WHERE name IN ('invoice_flow', 'invoice_events');
-- in a schema of its own it may; the superuser's search_path does not
-- reach it, so the superuser's INSERT does not run the role's step
CREATE SCHEMA mallory AUTHORIZATION regress_choreo_mallory;
SET ROLE regress_choreo_mallory;
SET search_path = mallory, public;
SELECT choreo_add_step('invoice_flow', 'steal', 'ns_record(jsonb)');
RESET search_path;
RESET ROLE;
SELECT pipeline, step, schema FROM choreo_steps WHERE pipeline = 'invoice_flow';
SELECT err($$INSERT INTO invoices VALUES (1)$$);
SELECT who, what FROM ns_log;
-- (what a superuser should do: name the schema in the trigger)
SELECT choreo_add_step('public.invoice_flow', 'record', 'ns_record(jsonb)');
INSERT INTO invoices VALUES (2);
SELECT who, what FROM ns_log;
DROP TRIGGER invoices_flow ON invoices;

-- Qualified names, and unqualified ones through search_path
CREATE SCHEMA ns_a;
CREATE SCHEMA ns_b;
SELECT choreo_add_step('ns_a.flow', 'where', 'ns_in_a()');
SELECT choreo_add_step('ns_b.flow', 'where', 'ns_in_b()');
SELECT choreo_add_step('flow', 'where', 'ns_in_public()');
SELECT pipeline, step, job, schema FROM choreo_steps WHERE pipeline = 'flow';
SELECT choreo_run('ns_a.flow')->'bag' AS a, choreo_run('ns_b.flow')->'bag' AS b,
       choreo_run('public.flow')->'bag' AS public, choreo_run('flow')->'bag' AS unqualified;
-- the report names the pipeline by its name in its schema
SELECT choreo_run('ns_a.flow')->>'pipeline';
-- a search_path change makes the same call find another pipeline
PREPARE run_flow AS SELECT choreo_run('flow')->'bag'->'where'->>'job' AS job;
EXECUTE run_flow;
SET search_path = ns_b, ns_a, public;
EXECUTE run_flow;
SET search_path = ns_a, public;
EXECUTE run_flow;
RESET search_path;
EXECUTE run_flow;
DO $$
DECLARE
    path text;
BEGIN
    FOREACH path IN ARRAY ARRAY['ns_b, public', 'ns_a', 'public', 'ns_b'] LOOP
        PERFORM set_config('search_path', path, true);
        RAISE NOTICE 'search_path %: %', path, public.choreo_run('flow')->'bag'->'where'->>'job';
    END LOOP;
END $$;
RESET search_path;
-- also from row to row of one statement, at one call site
SELECT p, set_config('search_path', p, true) IS NOT NULL AS set,
       choreo_run('flow')->'bag'->'where'->>'job' AS job
  FROM (VALUES ('ns_b, public'), ('ns_a, public'), ('public'), ('ns_b, public')) AS v(p);
RESET search_path;
-- (the functions are called qualified here: public is not in the path)
SET search_path = ns_b;
SELECT public.choreo_run('flow')->'bag'->'where'->>'job' AS job;
RESET search_path;
-- choreo_add_step adds to the pipeline the name finds, and creates one in
-- the first schema of search_path only when it finds none
SET search_path = ns_a, public;
SELECT choreo_add_step('invoice_flow', 'second', 'ns_in_a()');
SELECT choreo_add_step('only_here', 'first', 'ns_in_a()');
RESET search_path;
SELECT pipeline, position, step, schema FROM choreo_steps
 WHERE pipeline IN ('invoice_flow', 'only_here') ORDER BY schema::text, pipeline, position;
SELECT choreo_remove_step('public.invoice_flow', 'second');
SELECT choreo_drop_pipeline('ns_a.only_here');
SELECT err($$SELECT choreo_drop_pipeline('only_here')$$);

-- Parsing: identifiers as PostgreSQL reads them
SELECT choreo_add_step('ns_a."Mixed Case.Flow"', 'where', 'ns_in_a()');
SELECT pipeline, schema FROM choreo_steps WHERE pipeline LIKE 'Mixed%';
SELECT choreo_run('ns_a."Mixed Case.Flow"')->'bag';
SELECT choreo_run('NS_A.Flow')->'bag' AS folded, choreo_run('"ns_a"."flow"')->'bag' AS quoted,
       choreo_run('  ns_a . flow ')->'bag' AS spaced;
SELECT choreo_run(current_database() || '.ns_a.flow')->'bag' AS with_database;
SELECT err($$SELECT choreo_run('ns_a.Mixed Case.Flow')$$);
SELECT err($$SELECT choreo_run('ns_a."Mixed Case.flow"')$$);
SELECT err($$SELECT choreo_run('ns_a.')$$);
SELECT err($$SELECT choreo_run('"unterminated')$$);
SELECT err($$SELECT choreo_run('a.b.c.d')$$);
SELECT err($$SELECT choreo_run('other_database.ns_a.flow')$$);
SELECT err($$SELECT choreo_run('no_such_schema.flow')$$);
SELECT err($$SELECT choreo_add_step('no_such_schema.flow', 'x', 'ns_in_a()')$$);
SELECT err($$SELECT choreo_add_step('ns_a.', 'x', 'ns_in_a()')$$);
SELECT choreo_drop_pipeline('ns_a."Mixed Case.Flow"');

-- Privileges: USAGE to use a schema's definitions, CREATE to create there
CREATE SCHEMA ns_locked;
GRANT USAGE ON SCHEMA ns_locked TO regress_choreo_mallory;
CREATE TABLE ns_mallory_events (kind text);
GRANT INSERT ON ns_mallory_events TO regress_choreo_mallory;
SET ROLE regress_choreo_mallory;
SELECT err($$SELECT choreo_add_step('ns_locked.flow', 'x', 'ns_in_a()')$$);
SELECT err($$SELECT choreo_create_buffer('ns_locked.events', 'ns_mallory_events')$$);
SET search_path = ns_locked, public;
SELECT err($$SELECT choreo_add_step('flow', 'x', 'ns_in_a()')$$);
RESET search_path;
-- ns_a grants the role no USAGE: named, it is refused; in search_path, it
-- is passed over, as PostgreSQL passes it over for functions
SELECT err($$SELECT choreo_run('ns_a.flow')$$);
SET search_path = ns_a, public;
SELECT choreo_run('flow')->'bag'->'where'->>'job' AS job;
RESET search_path;
RESET ROLE;
SELECT count(*) AS written FROM choreograph.pipelines WHERE namespace = 'ns_locked'::regnamespace;
SELECT count(*) AS written FROM choreograph.buffers WHERE namespace = 'ns_locked'::regnamespace;
GRANT CREATE ON SCHEMA ns_locked TO regress_choreo_mallory;
SET ROLE regress_choreo_mallory;
SELECT choreo_add_step('ns_locked.flow', 'x', 'public.ns_in_a()');
SELECT choreo_create_buffer('ns_locked.events', 'public.ns_mallory_events');
-- the resolution is checked again for another role: the same name, a
-- schema granted to one role and not to the other
RESET ROLE;
PREPARE run_locked AS SELECT choreo_run('ns_locked.flow')->'bag'->'x'->>'job' AS job;
EXECUTE run_locked;
REVOKE USAGE ON SCHEMA ns_locked FROM regress_choreo_mallory;
SET ROLE regress_choreo_mallory;
SELECT err($$EXECUTE run_locked$$);
RESET ROLE;
EXECUTE run_locked;
DEALLOCATE run_locked;

-- Nothing is created in a temporary schema: a definition outlives the session
CREATE TEMPORARY TABLE ns_scratch (v int);
SELECT err($$SELECT choreo_add_step('pg_temp.tmp_flow', 'x', 'ns_in_a()')$$);
SELECT err($$SELECT choreo_create_buffer('pg_temp.tmp_events', 'ns_log')$$);
SET search_path = pg_temp, public;
SELECT err($$SELECT choreo_add_step('tmp_flow', 'x', 'ns_in_a()')$$);
SELECT err($$SELECT choreo_create_buffer('tmp_events', 'ns_log')$$);
RESET search_path;
SELECT count(*) AS written FROM choreograph.pipelines WHERE name IN ('tmp_flow', 'tmp_events');
SELECT count(*) AS written FROM choreograph.buffers WHERE name IN ('tmp_flow', 'tmp_events');
-- and pg_temp is never searched for an unqualified name (nor is anything
-- ever found in it)
SET search_path = pg_temp, public;
SELECT choreo_run('flow')->'bag'->'where'->>'job' AS job;
RESET search_path;
SELECT err($$SELECT choreo_run('pg_temp.flow')$$);

-- Buffers, the same
CREATE TABLE ns_events_a (id serial, kind text, payload jsonb);
CREATE TABLE ns_events_b (id serial, kind text, payload jsonb);
SELECT choreo_create_buffer('ns_a.events', 'ns_events_a');
SELECT choreo_create_buffer('ns_b.events', 'ns_events_b');
SELECT err($$SELECT choreo_create_buffer('ns_a.events', 'ns_events_b')$$);
SELECT err($$SELECT choreo_create_buffer('NS_A.Events', 'ns_events_b')$$);
SELECT name, target, schema FROM choreo_buffers WHERE name = 'events';
SELECT err($$SELECT choreo_fire_forget('events', '{"kind": "nowhere"}')$$);
SELECT err($$SELECT choreo_fire_and_wait('events', '{"kind": "nowhere"}')$$);
SELECT err($$SELECT choreo_flush('events')$$);
SELECT err($$SELECT choreo_fire_forget('no_such_schema.events', '{"kind": "nowhere"}')$$);
BEGIN;
SELECT choreo_fire_forget('ns_a.events', '{"kind": "named a"}');
SELECT choreo_fire_and_wait('ns_b.events', '{"kind": "named b"}')->>'kind';
SELECT choreo_flush('ns_a.events');
COMMIT;
-- firing in a loop re-resolves the name when search_path changes
BEGIN;
SET LOCAL search_path = ns_b, ns_a, public;
SELECT choreo_fire_forget('events', '{"kind": "path b"}');
SELECT choreo_fire_forget('events', '{"kind": "path b again"}');
SET LOCAL search_path = ns_a, public;
SELECT choreo_fire_forget('events', '{"kind": "path a"}');
-- choreo_flush(name) flushes what the name finds now: ns_a's
SELECT choreo_flush('events');
SELECT count(*) AS written_b FROM ns_events_b WHERE kind LIKE 'path%';
-- also from row to row of one statement
SELECT count(choreo_fire_forget('events', jsonb_build_object('kind', 'row ' || n || ' ' || p)))
  FROM (SELECT n, p, set_config('search_path', p, true)
          FROM (VALUES (1, 'ns_b, public'), (2, 'ns_a, public'), (3, 'ns_b, public')) AS v(n, p)) AS r;
COMMIT;
SELECT 'a' AS buffer, kind FROM ns_events_a UNION ALL SELECT 'b', kind FROM ns_events_b ORDER BY 1, 2;
-- choreo_capture finds its buffer through the firing session's search_path
CREATE TABLE ns_source (v int);
CREATE TRIGGER ns_source_capture AFTER INSERT ON ns_source
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('events');
SET search_path = ns_a, public;
INSERT INTO ns_source VALUES (1);
SET search_path = ns_b, public;
INSERT INTO ns_source VALUES (2);
RESET search_path;
SELECT err($$INSERT INTO ns_source VALUES (3)$$);
SELECT 'a' AS buffer, payload->'new'->>'v' AS v FROM ns_events_a WHERE payload IS NOT NULL
UNION ALL SELECT 'b', payload->'new'->>'v' FROM ns_events_b WHERE payload IS NOT NULL ORDER BY 1, 2;
DROP TABLE ns_source;
-- items of a buffer dropped in the transaction are still found by its name
BEGIN;
SELECT choreo_fire_forget('ns_a.events', '{"kind": "before drop"}');
SELECT choreo_drop_buffer('ns_a.events');
SET LOCAL search_path = ns_a, ns_b, public;
SELECT choreo_flush('events');
COMMIT;
SELECT kind FROM ns_events_a WHERE kind = 'before drop';
SELECT choreo_create_buffer('ns_a.events', 'ns_events_a');
SELECT err($$SELECT choreo_drop_buffer('events')$$);

-- Schemas: a rename moves its definitions; DROP SCHEMA refuses while one
-- holds definitions, unless CASCADE, which drops them; so does DROP OWNED
ALTER SCHEMA ns_b RENAME TO ns_c;
SELECT choreo_run('ns_c.flow')->'bag' AS renamed;
SELECT err($$SELECT choreo_run('ns_b.flow')$$);
SELECT name, schema FROM choreo_buffers WHERE name = 'events' ORDER BY 2;
ALTER SCHEMA ns_c RENAME TO ns_b;
DROP SCHEMA ns_b;
DROP SCHEMA IF EXISTS no_such_schema;
SELECT count(*) AS left_in_ns_b FROM choreograph.pipelines WHERE namespace = 'ns_b'::regnamespace;
BEGIN;
DROP SCHEMA ns_b CASCADE;
SELECT count(*) AS pipelines, (SELECT count(*) FROM choreograph.buffers WHERE name = 'events') AS buffers
  FROM choreograph.pipelines WHERE name = 'flow';
ROLLBACK;
SELECT count(*) AS pipelines, (SELECT count(*) FROM choreograph.buffers WHERE name = 'events') AS buffers
  FROM choreograph.pipelines WHERE name = 'flow';
DROP SCHEMA ns_b CASCADE;
SELECT pipeline, schema FROM choreo_steps WHERE pipeline = 'flow' ORDER BY 2;
SELECT name, schema FROM choreo_buffers WHERE name = 'events' ORDER BY 2;
SELECT count(*) AS owned_by_mallory FROM choreograph.pipelines
 WHERE owner = 'regress_choreo_mallory'::regrole;
DROP OWNED BY regress_choreo_mallory;
SELECT count(*) AS owned_by_mallory FROM choreograph.pipelines
 WHERE owner = 'regress_choreo_mallory'::regrole;
SELECT count(*) AS orphans FROM choreograph.steps
 WHERE namespace::oid NOT IN (SELECT oid FROM pg_namespace);

-- clean up
DROP SCHEMA ns_a, ns_locked CASCADE;
SELECT choreo_drop_pipeline('flow');
SELECT choreo_drop_pipeline('invoice_flow');
DROP TABLE invoices, ns_log, ns_events_a, ns_events_b, ns_mallory_events;
DROP FUNCTION ns_record(jsonb), ns_in_a(), ns_in_b(), ns_in_public();
DROP ROLE regress_choreo_mallory;
