-- test/fuzz/sqlsmith.sql: the objects test/fuzz/sqlsmith defines in its
-- database before sqlsmith runs (psql, ON_ERROR_STOP, as a superuser).
--
-- psql variables: role (the role sqlsmith connects as, owner of nearly
-- everything here), other (a second role, owning what the first may not
-- touch), weight (how many times each choreo_* function taking arguments
-- is listed to sqlsmith, at least 1; see fuzz_catalog below).
--
-- What it defines, to give sqlsmith something realistic to chew on:
-- - schema app: tables of varied column types with data, step functions in
--   PL/pgSQL and SQL, 20 pipelines (prechecks that skip, cancel and fail,
--   jobs that fail, nested and recursive runs, a dropped and a forbidden
--   step function, an emptied pipeline), choreo_trigger triggers (BEFORE,
--   AFTER, INSTEAD OF, deferred constraint, statement-level refused),
--   9 buffers (plain, INSERT-path, partitioned, generated columns, varied
--   types, a deferred foreign key, one of the other role's, a dropped table), choreo_capture
--   triggers, pre-/post-commit hooks registered by triggers, misconfigured
--   triggers;
-- - tables app.names, app.schedules, app.routes, app.callbacks: valid and
--   invalid pipeline, step and buffer names, functions, tables, payloads
--   and items, as columns sqlsmith can pass to the functions (it draws
--   arguments from columns in scope, scalar subqueries, NULL casts and
--   small integers, so that is how it finds real names);
-- - schema fuzz: for each choreo_* function returning void or a set, a
--   wrapper of the same name returning boolean or jsonb (sqlsmith calls
--   only functions whose result type one of its expressions takes: void
--   only where any type will do, sets never); and choreo_*_n variants
--   naming the pipeline, buffer, step function or table by a number;
-- - schema fuzz_catalog, first in the role's search_path: views named
--   pg_proc and pg_type, which sqlsmith reads unqualified to learn the
--   functions and types it may use.  pg_proc lists the choreo_* functions
--   and wrappers :weight times each (under made-up oids), the app functions
--   once, and of PostgreSQL's own only the immutable and stable ones on the
--   types our functions take and return, so that a good share of the calls
--   are ours and none is an administrative function (pg_terminate_backend,
--   pg_sleep, set_config, lo_*...); pg_type names the range, multirange
--   and enum pseudo types after concrete ones (see there).

\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION choreograph;

CREATE SCHEMA app AUTHORIZATION :"role";
CREATE SCHEMA fuzz AUTHORIZATION :"role";
CREATE SCHEMA app_other AUTHORIZATION :"other";
CREATE SCHEMA fuzz_catalog;
GRANT USAGE ON SCHEMA app_other, fuzz_catalog TO PUBLIC;

-- ---------------------------------------------------------------------
-- the other role's objects: a pipeline whose job the first role may not
-- execute, a buffer into a table it may not write
-- ---------------------------------------------------------------------
-- (its pipeline and buffer go into public, where the first role's
-- search_path finds them: creating there needs CREATE on it)
GRANT CREATE ON SCHEMA public TO :"other";
SET ROLE :"other";
CREATE TABLE app_other.sink (id serial PRIMARY KEY, payload jsonb, note text);
CREATE FUNCTION app_other.secret(p jsonb) RETURNS text LANGUAGE sql
    AS $$ SELECT 'secret ' || coalesce(p->>'id', '?') $$;
REVOKE EXECUTE ON FUNCTION app_other.secret(jsonb) FROM PUBLIC;
CREATE FUNCTION app_other.visible() RETURNS int LANGUAGE sql AS $$ SELECT 7 $$;
SELECT choreo_add_step('other_flow', 'visible', 'app_other.visible()');
SELECT choreo_add_step('other_flow', 'secret', 'app_other.secret(jsonb)');
SELECT choreo_create_buffer('other_sink', 'app_other.sink', 10);
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM :"other";

SET ROLE :"role";
SET search_path = app, public;

-- ---------------------------------------------------------------------
-- types and tables
-- ---------------------------------------------------------------------
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.posint AS int CHECK (VALUE > 0);
CREATE TYPE app.pair AS (a int, b text);

CREATE TABLE app.customers (
    id int PRIMARY KEY, name text NOT NULL, email text, tier varchar(10) DEFAULT 'basic',
    credit numeric(12,2) DEFAULT 0, created timestamptz DEFAULT now());
CREATE TABLE app.stock (sku text PRIMARY KEY, available int NOT NULL CHECK (available >= 0),
                        price numeric(10,2) NOT NULL DEFAULT 1);
CREATE TABLE app.orders (
    id int PRIMARY KEY, customer_id int REFERENCES app.customers, sku text NOT NULL,
    quantity int NOT NULL, email text, status text NOT NULL DEFAULT 'new',
    tags text[], meta jsonb, placed_at timestamptz DEFAULT now());
CREATE TABLE app.outbox (order_id int, message text, at timestamptz DEFAULT now());
CREATE TABLE app.order_snapshots (snap app.orders, env jsonb, n int, label text, amount numeric);

-- buffer targets
CREATE TABLE app.order_events (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
                               at timestamptz NOT NULL DEFAULT now());
CREATE TABLE app.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text, level smallint DEFAULT 1,
    recorded date DEFAULT current_date, ok boolean DEFAULT true, actor name DEFAULT current_user);
CREATE TABLE app.metrics (
    id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name varchar(40) NOT NULL,
    value double precision CHECK (value > -1e9), labels jsonb, sample uuid DEFAULT gen_random_uuid(),
    at timestamp DEFAULT now(), raw bytea, doubled double precision GENERATED ALWAYS AS (value * 2) STORED,
    tags text[], amount numeric(8,2), span int4range, addr inet, mood app.mood, score app.posint,
    pt app.pair, happened date, took interval, flag bit(4), doc json, big bigint, tiny smallint,
    word char(5), ratio real);
-- written by a real INSERT (BEFORE row trigger, unique key)
CREATE TABLE app.guarded (id serial PRIMARY KEY, code text UNIQUE, qty int NOT NULL DEFAULT 0,
                          payload jsonb);
CREATE FUNCTION app.guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.qty < 0 THEN RAISE EXCEPTION 'negative quantity %', NEW.qty USING ERRCODE = '22003'; END IF;
    NEW.code := lower(NEW.code);
    RETURN NEW;
END $$;
CREATE TRIGGER guard BEFORE INSERT ON app.guarded FOR EACH ROW EXECUTE FUNCTION app.guard();
-- partitioned, one value range missing
CREATE TABLE app.readings (at date NOT NULL, sensor int NOT NULL, value numeric, note text)
    PARTITION BY RANGE (at);
CREATE TABLE app.readings_2025 PARTITION OF app.readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.readings_2026 PARTITION OF app.readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
-- a deferred foreign key
CREATE TABLE app.customer_notes (id serial PRIMARY KEY,
    customer_id int REFERENCES app.customers DEFERRABLE INITIALLY DEFERRED, note text);

-- tables whose triggers run pipelines or register hooks
CREATE TABLE app.shipments (order_id int, carrier text DEFAULT 'post', shipped_on date DEFAULT current_date,
                            weight real, tracking uuid DEFAULT gen_random_uuid());
CREATE TABLE app.payments (id serial PRIMARY KEY, order_id int, amount numeric(10,2), method text);
CREATE TABLE app.accounts (id int PRIMARY KEY, owner text, balance numeric DEFAULT 0, frozen boolean DEFAULT false);
CREATE TABLE app.totals (owner text PRIMARY KEY, balance numeric);
CREATE TABLE app.hook_log (id serial PRIMARY KEY, hook text, payload jsonb, by_role name DEFAULT current_user,
                           at timestamptz DEFAULT clock_timestamp());
CREATE TABLE app.misc (id int, label text, data jsonb);
INSERT INTO app.misc VALUES (1, 'one', '{"a": 1}'), (2, NULL, '[1, 2]'), (3, 'three', 'null');
CREATE TABLE app.kinds (
    id serial PRIMARY KEY, m app.mood, p app.pair, s app.posint, r int4range, tr tstzrange,
    a int[], t text[], b bytea, x xml, mo money, i inet, bits varbit, iv interval, j json,
    u uuid, ts timestamp, d date, f float8, nm numeric, c char(3), boo boolean, pt point);
CREATE VIEW app.order_summary AS
    SELECT o.id, o.sku, o.quantity, c.name AS customer FROM app.orders o LEFT JOIN app.customers c ON c.id = o.customer_id;

-- ---------------------------------------------------------------------
-- step functions
-- ---------------------------------------------------------------------
-- order_flow: on app.orders rows
CREATE FUNCTION app.in_stock(o app.orders) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    left_over int := (SELECT available FROM app.stock WHERE sku = o.sku) - o.quantity;
BEGIN
    IF left_over IS NULL THEN
        RAISE EXCEPTION 'unknown sku %', o.sku USING ERRCODE = '23503';
    ELSIF left_over < 0 THEN
        PERFORM public.choreo_cancel(format('only %s %s left', left_over + o.quantity, o.sku));
    END IF;
    RETURN left_over;
END $$;
CREATE FUNCTION app.reserve(o app.orders) RETURNS int LANGUAGE sql AS $$
    UPDATE app.stock SET available = available - o.quantity WHERE sku = o.sku RETURNING available
$$;
CREATE FUNCTION app.has_email(o app.orders) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF o.email IS NULL THEN
        RAISE EXCEPTION 'order % has no e-mail address', o.id USING HINT = 'add one';
    END IF;
    RETURN o.email;
END $$;
CREATE FUNCTION app.notify(o app.orders) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO app.outbox (order_id, message)
    VALUES (o.id, format('order %s confirmed, mail to %s', o.id, public.choreo_precheck_data('notify') #>> '{}'));
    RETURN 'queued';
END $$;
CREATE FUNCTION app.price(o app.orders) RETURNS numeric LANGUAGE sql STABLE AS $$
    SELECT o.quantity * price FROM app.stock WHERE sku = o.sku
$$;
CREATE FUNCTION app.is_big(o app.orders) RETURNS boolean LANGUAGE sql STRICT AS $$ SELECT o.quantity > 5 $$;
CREATE FUNCTION app.flag_big(o app.orders) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_fire_forget('audit', jsonb_build_object('payload', 'big order ' || o.id, 'level', 3));
    RETURN jsonb_build_object('big', o.id, 'bag', public.choreo_bag());
END $$;

-- on jsonb (the trigger envelope, or to_jsonb of any input)
CREATE FUNCTION app.is_interesting(e jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN e IS NULL THEN NULL WHEN e ? 'op' THEN e->>'op' <> 'DELETE' ELSE jsonb_typeof(e) = 'object' END
$$;
CREATE FUNCTION app.classify(e jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(e) = 'array' THEN
        PERFORM public.choreo_skip(jsonb_build_object('array', jsonb_array_length(e)), 'arrays are skipped');
    END IF;
    RETURN coalesce(e->>'op', jsonb_typeof(e));
END $$;
CREATE FUNCTION app.emit_event(e jsonb) RETURNS void LANGUAGE sql AS $$
    SELECT public.choreo_fire_forget('order_events', jsonb_build_object('payload', coalesce(e, 'null'::jsonb)))
$$;
CREATE FUNCTION app.summarize() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('bag', public.choreo_bag(), 'classify', public.choreo_job_data('classify'),
                              'errors', (SELECT count(*) FROM public.choreo_errors()))
$$;
CREATE FUNCTION app.strict_len(e jsonb) RETURNS int LANGUAGE sql STRICT AS $$ SELECT length(e::text) $$;
-- post-commit hooks work in choreograph.database only (55000 elsewhere)
CREATE FUNCTION app.post_commit_here() RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT current_setting('choreograph.database', true) IS NOT DISTINCT FROM current_database() $$;
CREATE FUNCTION app.log_hook(e jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO app.hook_log (hook, payload) VALUES ('log_hook', e);
END $$;
CREATE FUNCTION app.register_hooks(e jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_pre_commit('app.log_hook(jsonb)', e, 'log', 'hook_flow:' || coalesce(e->>'id', e::text));
    PERFORM public.choreo_pre_commit('app.refresh_totals()');
    IF app.post_commit_here() THEN
        PERFORM public.choreo_post_commit('app.log_hook(jsonb)', jsonb_build_object('post', e));
    END IF;
    RETURN 'registered';
END $$;
CREATE FUNCTION app.wait_write(e jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT public.choreo_fire_and_wait('audit', jsonb_build_object('payload', left(e::text, 100), 'level', 2))
$$;
CREATE FUNCTION app.flush_all() RETURNS bigint LANGUAGE sql AS $$ SELECT public.choreo_flush() $$;
CREATE FUNCTION app.metric_of(e jsonb) RETURNS void LANGUAGE sql AS $$
    SELECT public.choreo_fire_forget('metrics', jsonb_build_object('name', left(coalesce(e->>'op', 'x'), 40),
                                     'value', length(e::text), 'labels', e, 'tags', '{a,b}'))
$$;

-- without input
CREATE FUNCTION app.tick() RETURNS timestamptz LANGUAGE sql AS $$ SELECT now() $$;
CREATE FUNCTION app.order_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM app.orders $$;
CREATE FUNCTION app.maybe_skip() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM app.orders) % 2 = 0 THEN
        PERFORM public.choreo_skip('{"even": true}', 'even number of orders');
    END IF;
    RETURN 'odd';
END $$;
CREATE FUNCTION app.nothing() RETURNS void LANGUAGE sql AS $$ $$;
CREATE FUNCTION app.null_bool() RETURNS boolean LANGUAGE sql AS $$ SELECT NULL::boolean $$;
CREATE FUNCTION app.divide_by_zero() RETURNS int LANGUAGE sql AS $$ SELECT 1 / (SELECT count(*) - count(*) FROM app.stock)::int $$;
CREATE FUNCTION app.boom() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'boom' USING DETAIL = 'the job failed', HINT = 'it always does', ERRCODE = 'P0001';
END $$;
CREATE FUNCTION app.cancel_it() RETURNS boolean LANGUAGE sql AS $$ SELECT public.choreo_cancel('no way') IS NULL $$;
CREATE FUNCTION app.write_then_fail() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO app.outbox (order_id, message) VALUES (-1, 'written by a failing precheck');
    RAISE EXCEPTION 'precheck wrote, then failed';
END $$;
CREATE FUNCTION app.run_inner() RETURNS jsonb LANGUAGE sql AS $$ SELECT public.choreo_try_run('noarg_flow') $$;
CREATE FUNCTION app.run_events(e jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT public.choreo_run('event_flow', e) $$;
CREATE FUNCTION app.run_again(n int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT public.choreo_try_run('recursive_flow', coalesce(n, 0) + 1)
$$;

-- on int and text
CREATE FUNCTION app.positive(n int) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT n > 0 $$;
CREATE FUNCTION app.double_it(n int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT n * 2 $$;
CREATE FUNCTION app.check_range(n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF n > 50 THEN RAISE EXCEPTION 'out of range: %', n USING ERRCODE = '22003'; END IF;
    RETURN 'in range';
END $$;
CREATE FUNCTION app.as_posint(n app.posint) RETURNS app.posint LANGUAGE sql AS $$ SELECT n $$;
CREATE FUNCTION app.shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(t) || '!' $$;
CREATE FUNCTION app.text_len(t text) RETURNS int LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT length(t) $$;
CREATE FUNCTION app.parse_json(t text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$ SELECT t::jsonb $$;

-- shipments (row type and envelope), partitions, the view, payments
CREATE FUNCTION app.ship_ok(s app.shipments) RETURNS boolean LANGUAGE sql AS $$ SELECT s.weight IS NULL OR s.weight < 100 $$;
CREATE FUNCTION app.ship_note(s app.shipments) RETURNS text LANGUAGE sql AS $$ SELECT s.carrier || ':' || s.order_id $$;
CREATE FUNCTION app.reading_ok(e jsonb) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (e->'new'->>'value')::numeric < 0 THEN
        PERFORM public.choreo_cancel('negative reading');
    END IF;
    RETURN true;
END $$;
CREATE FUNCTION app.order_from_view(e jsonb) RETURNS int LANGUAGE sql AS $$
    INSERT INTO app.outbox (order_id, message) VALUES ((e->'new'->>'id')::int, 'via view') RETURNING order_id
$$;
CREATE FUNCTION app.payment_check(p app.payments) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF p.amount <= 0 THEN RAISE EXCEPTION 'payment % is not positive', p.id USING ERRCODE = '23514'; END IF;
    RETURN p.method;
END $$;

-- hook callbacks and the trigger functions registering hooks
CREATE FUNCTION app.refresh_totals() RETURNS void LANGUAGE sql AS $$
    INSERT INTO app.totals SELECT coalesce(owner, '?'), sum(balance) FROM app.accounts GROUP BY 1
    ON CONFLICT (owner) DO UPDATE SET balance = EXCLUDED.balance
$$;
CREATE FUNCTION app.audit_account(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (p->>'balance')::numeric < 0 THEN
        RAISE EXCEPTION 'account % overdrawn', p->>'id';
    END IF;
    INSERT INTO app.hook_log (hook, payload) VALUES ('audit_account', p);
END $$;
CREATE FUNCTION app.mail_account(p jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO app.hook_log (hook, payload) VALUES ('mail_account', p)
$$;
CREATE FUNCTION app.account_hooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_pre_commit('app.refresh_totals()', NULL, 'abort', 'totals');
    PERFORM public.choreo_pre_commit('app.audit_account(jsonb)', to_jsonb(NEW), 'log');
    IF app.post_commit_here() THEN
        PERFORM public.choreo_post_commit('app.mail_account(jsonb)', jsonb_build_object('id', NEW.id, 'op', TG_OP),
                                          'account:' || NEW.id);
    END IF;
    IF NEW.frozen THEN
        PERFORM public.choreo_pre_commit('app.audit_account(jsonb)', to_jsonb(NEW), 'abort');
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION app.accounts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_pre_commit('app.refresh_totals()', key => 'totals');
    PERFORM public.choreo_fire_forget('audit', jsonb_build_object('payload', TG_OP || ' on accounts'));
    RETURN NULL;
END $$;

-- ---------------------------------------------------------------------
-- pipelines
-- ---------------------------------------------------------------------
SELECT choreo_add_step('order_flow', 'reserve', 'app.reserve(app.orders)', 'app.in_stock(app.orders)');
SELECT choreo_add_step('order_flow', 'notify', 'app.notify(app.orders)', 'app.has_email(app.orders)');
SELECT choreo_add_step('order_flow', 'price', 'app.price(app.orders)');
SELECT choreo_add_step('order_flow', 'big', 'app.flag_big(app.orders)', 'app.is_big(app.orders)');

SELECT choreo_add_step('event_flow', 'classify', 'app.classify(jsonb)', 'app.is_interesting(jsonb)');
SELECT choreo_add_step('event_flow', 'emit', 'app.emit_event(jsonb)');
SELECT choreo_add_step('event_flow', 'metric', 'app.metric_of(jsonb)', 'app.strict_len(jsonb)');
SELECT choreo_add_step('event_flow', 'summarize', 'app.summarize()', "position" => 1);
SELECT choreo_remove_step('event_flow', 'summarize');
SELECT choreo_add_step('event_flow', 'summarize', 'app.summarize()');

SELECT choreo_add_step('noarg_flow', 'tick', 'app.tick()');
SELECT choreo_add_step('noarg_flow', 'count', 'app.order_count()', 'app.maybe_skip()');
SELECT choreo_add_step('noarg_flow', 'nothing', 'app.nothing()', 'app.null_bool()');

SELECT choreo_add_step('fail_flow', 'shaky', 'app.tick()', 'app.divide_by_zero()');
SELECT choreo_add_step('fail_flow', 'writes', 'app.order_count()', 'app.write_then_fail()');
SELECT choreo_add_step('fail_flow', 'boom', 'app.boom()');
SELECT choreo_add_step('fail_flow', 'never', 'app.tick()');

SELECT choreo_add_step('cancel_flow', 'first', 'app.tick()');
SELECT choreo_add_step('cancel_flow', 'cancel', 'app.tick()', 'app.cancel_it()');
SELECT choreo_add_step('cancel_flow', 'last', 'app.nothing()');

SELECT choreo_add_step('nested_flow', 'inner', 'app.run_inner()');
SELECT choreo_add_step('nested_flow', 'events', 'app.run_events(jsonb)');
SELECT choreo_add_step('recursive_flow', 'again', 'app.run_again(int)', 'app.positive(int)');

SELECT choreo_add_step('int_flow', 'double', 'app.double_it(int)', 'app.positive(int)');
SELECT choreo_add_step('int_flow', 'range', 'app.check_range(int)');
SELECT choreo_add_step('int_flow', 'as_json', 'app.strict_len(jsonb)');
SELECT choreo_add_step('posint_flow', 'pos', 'app.as_posint(app.posint)');

SELECT choreo_add_step('text_flow', 'shout', 'app.shout(text)', 'app.text_len(text)');
SELECT choreo_add_step('text_flow', 'parse', 'app.parse_json(text)');
SELECT choreo_add_step('text_flow', 'events', 'app.run_events(jsonb)');

SELECT choreo_add_step('hook_flow', 'register', 'app.register_hooks(jsonb)');
SELECT choreo_add_step('buffer_flow', 'wait', 'app.wait_write(jsonb)');
SELECT choreo_add_step('buffer_flow', 'metric', 'app.metric_of(jsonb)');
SELECT choreo_add_step('buffer_flow', 'flush', 'app.flush_all()');

SELECT choreo_add_step('ship_flow', 'note', 'app.ship_note(app.shipments)', 'app.ship_ok(app.shipments)');
SELECT choreo_add_step('ship_flow', 'event', 'app.emit_event(jsonb)');
SELECT choreo_add_step('reading_flow', 'check', 'app.metric_of(jsonb)', 'app.reading_ok(jsonb)');
SELECT choreo_add_step('view_flow', 'insert', 'app.order_from_view(jsonb)');
SELECT choreo_add_step('payment_flow', 'check', 'app.payment_check(app.payments)');
SELECT choreo_add_step('recheck_flow', 'classify', 'app.classify(jsonb)');
SELECT choreo_add_step('recheck_flow', 'register', 'app.register_hooks(jsonb)');

-- emptied, and broken by a dropped function
SELECT choreo_add_step('empty_flow', 'gone', 'app.tick()');
SELECT choreo_remove_step('empty_flow', 'gone');
CREATE FUNCTION app.doomed() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
SELECT choreo_add_step('broken_flow', 'ok', 'app.tick()');
SELECT choreo_add_step('broken_flow', 'doomed', 'app.doomed()');
DROP FUNCTION app.doomed();

-- ---------------------------------------------------------------------
-- buffers, capture triggers, pipeline triggers, hook triggers
-- ---------------------------------------------------------------------
SELECT choreo_create_buffer('order_events', 'app.order_events', 5);
SELECT choreo_create_buffer('audit', 'app.audit_log', 3);
SELECT choreo_create_buffer('metrics', 'app.metrics', 1000);
SELECT choreo_create_buffer('guarded', 'app.guarded', 4);
SELECT choreo_create_buffer('readings', 'app.readings', 2);
SELECT choreo_create_buffer('notes', 'app.customer_notes', 1);
SELECT choreo_create_buffer('snapshots', 'app.order_snapshots', 7);
-- a buffer whose table is gone (42P01 when fired into)
CREATE TABLE app.gone (id int, payload jsonb);
SELECT choreo_create_buffer('gone', 'app.gone', 2);
DROP TABLE app.gone;

CREATE TRIGGER orders_flow AFTER INSERT ON app.orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('order_flow');
CREATE TRIGGER orders_recheck AFTER UPDATE OF quantity ON app.orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('recheck_flow');
CREATE TRIGGER orders_capture AFTER INSERT OR UPDATE OR DELETE ON app.orders
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('order_events');
CREATE TRIGGER customers_capture AFTER UPDATE ON app.customers
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('audit', 'payload');
CREATE TRIGGER stock_capture BEFORE UPDATE ON app.stock
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('order_events');
CREATE TRIGGER kinds_capture AFTER INSERT OR UPDATE OR DELETE ON app.kinds
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('order_events');
CREATE TRIGGER kinds_flow BEFORE UPDATE ON app.kinds
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('event_flow');
CREATE TRIGGER readings_capture AFTER INSERT OR DELETE ON app.readings
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('guarded', 'payload');
CREATE TRIGGER readings_flow AFTER UPDATE ON app.readings
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('reading_flow');
CREATE TRIGGER shipments_flow BEFORE INSERT OR DELETE ON app.shipments
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('ship_flow');
CREATE TRIGGER order_summary_flow INSTEAD OF INSERT OR UPDATE ON app.order_summary
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('view_flow');
CREATE CONSTRAINT TRIGGER payments_flow AFTER INSERT OR UPDATE ON app.payments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION choreo_trigger('payment_flow');
CREATE TRIGGER payments_capture AFTER INSERT ON app.payments
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('notes', 'note');
CREATE TRIGGER accounts_hooks AFTER INSERT OR UPDATE ON app.accounts
    FOR EACH ROW EXECUTE FUNCTION app.account_hooks();
CREATE TRIGGER accounts_deleted AFTER DELETE ON app.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION app.accounts_deleted();
CREATE TRIGGER accounts_capture AFTER DELETE ON app.accounts
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('other_sink');
-- misconfigured ones: each fails its statement with its SQLSTATE
CREATE TRIGGER misc_statement AFTER INSERT ON app.misc
    FOR EACH STATEMENT EXECUTE FUNCTION choreo_trigger('event_flow');
CREATE TRIGGER misc_no_buffer AFTER UPDATE ON app.misc
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('no_such_buffer');
CREATE TRIGGER misc_no_column AFTER DELETE ON app.misc
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('audit', 'no_such_column');
CREATE TRIGGER misc_no_pipeline BEFORE UPDATE ON app.misc
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('no_such_pipeline');

-- ---------------------------------------------------------------------
-- data (this commits: triggers, pre-commit hooks and buffers do real work)
-- ---------------------------------------------------------------------
INSERT INTO app.customers (id, name, email, tier, credit)
    SELECT i, 'customer ' || i, CASE WHEN i % 4 <> 0 THEN 'c' || i || '@example.com' END,
           (ARRAY['basic', 'gold', 'platinum'])[1 + i % 3], i * 10.5
    FROM generate_series(1, 20) i;
INSERT INTO app.stock VALUES ('pen', 1000, 1.5), ('ink', 20, 7), ('pad', 200, 3.25), ('clip', 0, 0.1), ('ünï', 100, 1);
INSERT INTO app.orders (id, customer_id, sku, quantity, email, tags, meta)
    SELECT i, 1 + i % 20, (ARRAY['pen', 'pad', 'ink', 'ünï'])[1 + i % 4], 1 + i % 3,
           CASE WHEN i % 5 <> 0 THEN 'o' || i || '@example.com' END,
           ARRAY['t' || i % 3, 'x'], jsonb_build_object('n', i, 'gift', i % 2 = 0)
    FROM generate_series(1, 30) i;
UPDATE app.orders SET quantity = quantity + 1 WHERE id % 10 = 0;
UPDATE app.customers SET credit = credit + 1 WHERE id <= 3;
INSERT INTO app.order_snapshots SELECT o, to_jsonb(o), o.id, 'snap ' || o.id, o.quantity * 1.25 FROM app.orders o WHERE o.id <= 10;
INSERT INTO app.shipments (order_id, carrier, weight) SELECT i, (ARRAY['post', 'ups', 'dhl'])[1 + i % 3], i * 7.5 FROM generate_series(1, 8) i;
INSERT INTO app.payments (order_id, amount, method) SELECT i, i * 9.99, (ARRAY['card', 'cash'])[1 + i % 2] FROM generate_series(1, 6) i;
INSERT INTO app.accounts SELECT i, 'owner ' || (i % 4), i * 100 FROM generate_series(1, 10) i;
UPDATE app.accounts SET balance = balance - 50 WHERE id <= 2;
INSERT INTO app.readings SELECT date '2025-06-01' + i * 30, i % 3, i * 1.5, 'r' || i FROM generate_series(1, 12) i;
UPDATE app.readings SET value = value + 1 WHERE sensor = 0;
INSERT INTO app.kinds (m, p, s, r, tr, a, t, b, x, mo, i, bits, iv, j, u, ts, d, f, nm, c, boo, pt)
    SELECT (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::app.mood, ROW(i, 'p' || i)::app.pair, i,
           int4range(i, i + 10), tstzrange(now(), now() + i * interval '1 day'), ARRAY[i, i + 1], ARRAY['a', NULL, 'c'],
           decode(md5(i::text), 'hex'), xmlparse(content '<k n="' || i || '"/>'), i * 1.25, ('10.0.0.' || i)::inet,
           (i % 16)::bit(4)::varbit, i * interval '1 hour', json_build_object('i', i, 'nested', json_build_array(i, 'x')),
           md5(i::text)::uuid, timestamp '2025-01-01' + i * interval '1 day', date '2025-01-01' + i,
           CASE WHEN i = 3 THEN 'NaN'::float8 WHEN i = 4 THEN 'Infinity' ELSE i / 7.0 END, i * 1e10 / 3, 'c' || i, i % 2 = 0,
           point(i, -i)
    FROM generate_series(1, 10) i;
INSERT INTO app.kinds DEFAULT VALUES;
UPDATE app.kinds SET f = f + 1 WHERE id <= 3;
SELECT choreo_fire_forget('metrics', jsonb_build_object(
        'name', 'm' || i, 'value', i * 0.5, 'labels', jsonb_build_object('i', i), 'raw', '\x0102',
        'tags', '{a,b}', 'amount', i * 1.01, 'span', '[1,5)', 'addr', '192.168.0.' || i,
        'mood', 'ok', 'score', i, 'pt', '(1,x)', 'happened', '2026-01-0' || i, 'took', '1 hour', 'flag', '1010',
        'doc', jsonb_build_object('k', i), 'big', i * 10000000000, 'tiny', i, 'word', 'w' || i, 'ratio', i / 3.0))
    FROM generate_series(1, 9) i;
SELECT choreo_fire_forget('guarded', jsonb_build_object('code', 'G' || i, 'qty', i, 'payload', jsonb_build_object('i', i)))
    FROM generate_series(1, 6) i;
SELECT choreo_run('noarg_flow'), choreo_try_run('fail_flow'), choreo_try_run('cancel_flow'),
       choreo_try_run('int_flow', 7), choreo_try_run('text_flow', '{"x": 1}'::text),
       choreo_try_run('hook_flow', '{"id": 1}'::jsonb), choreo_try_run('buffer_flow', '{"id": 2}'::jsonb),
       choreo_try_run('nested_flow', '{"id": 3}'::jsonb), choreo_try_run('recursive_flow', 1);
SELECT choreo_run('order_flow', o) FROM app.orders o WHERE id <= 3;
SELECT choreo_flush();

-- ---------------------------------------------------------------------
-- names: the values sqlsmith passes (valid, unknown, empty, odd, NULL)
-- ---------------------------------------------------------------------
CREATE TABLE app.names (
    pipeline text, step text, buffer text, job regprocedure, precheck regprocedure,
    position_ int, callback regprocedure, target regclass, payload jsonb, item jsonb,
    on_error text, hook_key text, max_batch int, message text, n int, input text);
INSERT INTO app.names (pipeline, step, job, precheck, position_)
    SELECT pipeline, step, job, precheck, position FROM choreograph.steps;
INSERT INTO app.names (pipeline, step, buffer, target, max_batch)
    VALUES ('empty_flow', 'new_step', 'order_events', 'app.order_events', 5),
           ('no_such_pipeline', 'no_such_step', 'no_such_buffer', 'app.misc', 0),
           ('', '', '', 'app.order_summary', -1),
           (NULL, NULL, NULL, NULL, NULL),
           ('other_flow', 'secret', 'other_sink', 'app_other.sink', 100000),
           ('o''brien "quoted"', 'ünïcödé step', 'buffer with spaces', 'app.readings', 100001),
           (repeat('long', 100), repeat('s', 300), repeat('b', 200), 'app.kinds', 1),
           ('fuzz_flow', 'fuzz_step', 'fuzz_buffer', 'app.metrics', 3);
UPDATE app.names SET buffer = (ARRAY['order_events', 'audit', 'metrics', 'guarded', 'readings', 'notes',
                                     'snapshots', 'other_sink'])[1 + (position_ % 8)]
    WHERE buffer IS NULL AND position_ IS NOT NULL;
INSERT INTO app.names (callback, payload, on_error, hook_key, message, n, input)
    VALUES ('app.log_hook(jsonb)', '{"id": 1}', 'log', 'k1', 'canceled by the fuzzer', 1, 'text input'),
           ('app.refresh_totals()', NULL, 'abort', 'totals', NULL, 0, NULL),
           ('app.audit_account(jsonb)', '{"id": 2, "balance": -5}', 'abort', NULL, '', -1, ''),
           ('app.tick()', '[1, 2, 3]', 'bogus', '', repeat('m', 500), 2147483647, '{"op": "INSERT"}'),
           ('app.boom()', '"just a string"', 'LOG', 'k1', 'ünï', 51, 'null'),
           ('app.run_again(integer)', 'null', 'log', NULL, NULL, 31, '[1, "a"]'),
           ('app.in_stock(app.orders)', '{"op": "DELETE", "new": null}', NULL, 'k2', 'm', NULL, 'x'),
           ('app_other.secret(jsonb)', '{"a": {"b": {"c": [1, {"d": null}]}}}', 'log', 'k3', 'n', 5, '5');
INSERT INTO app.names (buffer, item)
    VALUES ('order_events', '{"payload": {"op": "FUZZ"}}'), ('order_events', '{"payload": null}'),
           ('order_events', '{"id": 1, "payload": {}}'), ('order_events', '{"nope": 1}'),
           ('audit', '{"payload": "text", "level": 40000}'), ('audit', '{"id": 5}'),
           ('audit', '{"recorded": "2026-02-30"}'), ('audit', '{"ok": "maybe"}'),
           ('metrics', '{"name": "x", "value": 1.5, "doubled": 3}'), ('metrics', '{"name": null}'),
           ('metrics', '{"name": "y", "score": -1}'), ('metrics', '{"name": "z", "mood": "angry"}'),
           ('metrics', '{"name": "w", "span": "[5,1)", "addr": "not an address"}'),
           ('metrics', '{"name": "v", "tags": "not an array", "pt": "(1)"}'),
           ('metrics', '{"name": "r", "tags": ["a", "b"], "pt": {"a": 1, "b": "x"}}'),
           ('metrics', '{"name": "u", "raw": "\\xzz", "flag": "10"}'),
           ('metrics', '{"name": "t", "value": -1e10}'), ('metrics', '{"name": "s", "big": 1e30}'),
           ('guarded', '{"code": "dup", "qty": 1}'), ('guarded', '{"code": "DUP", "qty": 2}'),
           ('guarded', '{"code": "neg", "qty": -3}'), ('guarded', '{"qty": null}'),
           ('readings', '{"at": "2025-07-01", "sensor": 1, "value": 3}'),
           ('readings', '{"at": "2030-01-01", "sensor": 1}'), ('readings', '{"at": null}'),
           ('notes', '{"customer_id": 999, "note": "no such customer"}'), ('notes', '{"customer_id": 1}'),
           ('snapshots', '{"snap": {"id": 1, "sku": "pen", "quantity": 1}, "n": 1}'),
           ('snapshots', '{"snap": "(1,2,pen,1,,new,,,)"}'), ('snapshots', '{"amount": "NaN"}'),
           ('other_sink', '{"payload": {"x": 1}}'),
           ('order_events', '[]'), ('order_events', '"string"'), ('order_events', 'null'),
           ('metrics', '{}'), (NULL, NULL);
-- how an application would keep names: scheduled runs, event routes, callbacks
CREATE TABLE app.schedules (id serial PRIMARY KEY, pipeline text NOT NULL, input jsonb,
                            every interval DEFAULT '1 hour', enabled boolean DEFAULT true);
INSERT INTO app.schedules (pipeline, input, enabled)
    SELECT name, jsonb_build_object('id', row_number() OVER (), 'op', 'SCHEDULED'), name <> 'fail_flow'
    FROM choreograph.pipelines;
CREATE TABLE app.routes (event text PRIMARY KEY, buffer text NOT NULL, target regclass, max_batch int);
INSERT INTO app.routes SELECT 'ev_' || name, name, target, max_batch FROM choreograph.buffers;
CREATE TABLE app.callbacks (name text PRIMARY KEY, callback regprocedure NOT NULL, payload jsonb,
                            on_error text DEFAULT 'abort', key text);
INSERT INTO app.callbacks VALUES
    ('totals', 'app.refresh_totals()', NULL, 'abort', 'totals'),
    ('audit', 'app.audit_account(jsonb)', '{"id": 1, "balance": 5}', 'log', NULL),
    ('mail', 'app.mail_account(jsonb)', '{"id": 2}', 'abort', 'mail:2'),
    ('log', 'app.log_hook(jsonb)', '{"id": 3}', 'log', 'log'),
    ('boom', 'app.boom()', NULL, 'log', NULL);
RESET search_path;
RESET ROLE;
ANALYZE;

-- ---------------------------------------------------------------------
-- fuzz: wrappers sqlsmith can call, of the same name, for each choreo_*
-- function returning void (boolean instead, in PL/pgSQL so that an error's
-- CONTEXT names the function) or a set (the rows as a jsonb array)
-- ---------------------------------------------------------------------
SET ROLE :"role";
DO $$
DECLARE
    f record;
    args text;
BEGIN
    FOR f IN SELECT p.proname, n.nspname, p.pronargs, p.proretset, oidvectortypes(p.proargtypes) AS types
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
             JOIN pg_catalog.pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
             JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'choreograph'
             WHERE p.proname LIKE 'choreo\_%' AND n.nspname <> 'choreograph'
               AND (p.prorettype = 'void'::regtype OR p.proretset)
    LOOP
        SELECT string_agg('$' || i, ', ') INTO args FROM generate_series(1, f.pronargs) i;
        IF f.proretset THEN
            EXECUTE format('CREATE FUNCTION fuzz.%I(%s) RETURNS jsonb LANGUAGE sql '
                           'AS $f$ SELECT jsonb_agg(to_jsonb(r)) FROM %I.%I(%s) r $f$',
                           f.proname, f.types, f.nspname, f.proname, args);
        ELSE
            EXECUTE format('CREATE FUNCTION fuzz.%I(%s) RETURNS boolean LANGUAGE plpgsql '
                           'AS $f$ BEGIN PERFORM %I.%I(%s); RETURN true; END $f$',
                           f.proname, f.types, f.nspname, f.proname, args);
        END IF;
    END LOOP;
END $$;

-- ... and variants naming their pipeline, buffer, function or table by a
-- number (the n-th, modulo how many there are): sqlsmith's integers are
-- small literals and integer columns, far easier for it to come by than a
-- valid name, so most of these calls reach a real definition.  NULL stays
-- NULL.
CREATE FUNCTION fuzz.nth(n int, total bigint) RETURNS bigint LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN total > 0 THEN (n::bigint % total + total) % total END $$;
CREATE FUNCTION fuzz.pick_pipeline(n int) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT name FROM choreograph.pipelines ORDER BY name
    OFFSET fuzz.nth(n, (SELECT count(*) FROM choreograph.pipelines)) LIMIT 1
$$;
CREATE FUNCTION fuzz.pick_step(p text, n int) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT step FROM choreograph.steps WHERE pipeline = p ORDER BY position
    OFFSET fuzz.nth(n, (SELECT count(*) FROM choreograph.steps WHERE pipeline = p)) LIMIT 1
$$;
CREATE FUNCTION fuzz.pick_buffer(n int) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT name FROM choreograph.buffers ORDER BY name
    OFFSET fuzz.nth(n, (SELECT count(*) FROM choreograph.buffers)) LIMIT 1
$$;
CREATE FUNCTION fuzz.pick_function(n int) RETURNS regprocedure LANGUAGE sql STABLE AS $$
    WITH f AS (SELECT p.oid::regprocedure AS f FROM pg_catalog.pg_proc p
               WHERE p.pronamespace IN ('app'::regnamespace, 'app_other'::regnamespace)
                 AND p.pronargs <= 1 AND p.prorettype <> 'trigger'::regtype)
    SELECT f FROM f ORDER BY f::oid OFFSET fuzz.nth(n, (SELECT count(*) FROM f)) LIMIT 1
$$;
CREATE FUNCTION fuzz.pick_table(n int) RETURNS regclass LANGUAGE sql STABLE AS $$
    WITH t AS (SELECT c.oid::regclass AS t FROM pg_catalog.pg_class c
               WHERE c.relnamespace IN ('app'::regnamespace, 'app_other'::regnamespace)
                 AND c.relkind IN ('r', 'p', 'v'))
    SELECT t FROM t ORDER BY t::oid OFFSET fuzz.nth(n, (SELECT count(*) FROM t)) LIMIT 1
$$;
CREATE FUNCTION fuzz.choreo_run_n(int) RETURNS jsonb
    LANGUAGE plpgsql AS $$ BEGIN RETURN public.choreo_run(fuzz.pick_pipeline($1)); END $$;
CREATE FUNCTION fuzz.choreo_run_n(int, anyelement) RETURNS jsonb
    LANGUAGE plpgsql AS $$ BEGIN RETURN public.choreo_run(fuzz.pick_pipeline($1), $2); END $$;
CREATE FUNCTION fuzz.choreo_try_run_n(int) RETURNS jsonb
    LANGUAGE plpgsql AS $$ BEGIN RETURN public.choreo_try_run(fuzz.pick_pipeline($1)); END $$;
CREATE FUNCTION fuzz.choreo_try_run_n(int, anyelement) RETURNS jsonb
    LANGUAGE plpgsql AS $$ BEGIN RETURN public.choreo_try_run(fuzz.pick_pipeline($1), $2); END $$;
CREATE FUNCTION fuzz.choreo_add_step_n(int, text, int, int, int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_add_step(fuzz.pick_pipeline($1), $2, fuzz.pick_function($3), fuzz.pick_function($4), $5);
    RETURN true;
END $$;
CREATE FUNCTION fuzz.choreo_remove_step_n(int, int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_remove_step(fuzz.pick_pipeline($1), fuzz.pick_step(fuzz.pick_pipeline($1), $2));
    RETURN true;
END $$;
CREATE FUNCTION fuzz.choreo_drop_pipeline_n(int) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN PERFORM public.choreo_drop_pipeline(fuzz.pick_pipeline($1)); RETURN true; END $$;
CREATE FUNCTION fuzz.choreo_precheck_data_n(int, int) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT public.choreo_precheck_data(fuzz.pick_step(fuzz.pick_pipeline($1), $2)) $$;
CREATE FUNCTION fuzz.choreo_job_data_n(int, int) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT public.choreo_job_data(fuzz.pick_step(fuzz.pick_pipeline($1), $2)) $$;
CREATE FUNCTION fuzz.choreo_pre_commit_n(int, jsonb, text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_pre_commit(fuzz.pick_function($1), $2, $3, $4);
    RETURN true;
END $$;
CREATE FUNCTION fuzz.choreo_post_commit_n(int, jsonb, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_post_commit(fuzz.pick_function($1), $2, $3);
    RETURN true;
END $$;
CREATE FUNCTION fuzz.choreo_create_buffer_n(text, int, int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.choreo_create_buffer($1, fuzz.pick_table($2), $3);
    RETURN true;
END $$;
CREATE FUNCTION fuzz.choreo_drop_buffer_n(int) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN PERFORM public.choreo_drop_buffer(fuzz.pick_buffer($1)); RETURN true; END $$;
CREATE FUNCTION fuzz.choreo_fire_forget_n(int, jsonb) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN PERFORM public.choreo_fire_forget(fuzz.pick_buffer($1), $2); RETURN true; END $$;
CREATE FUNCTION fuzz.choreo_fire_and_wait_n(int, jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$ BEGIN RETURN public.choreo_fire_and_wait(fuzz.pick_buffer($1), $2); END $$;
CREATE FUNCTION fuzz.choreo_flush_n(int) RETURNS bigint
    LANGUAGE plpgsql AS $$ BEGIN RETURN public.choreo_flush(fuzz.pick_buffer($1)); END $$;
RESET ROLE;

-- ---------------------------------------------------------------------
-- fuzz_catalog.pg_proc: what sqlsmith sees of pg_proc (see the top)
-- ---------------------------------------------------------------------
-- a table (sqlsmith reads the argument types of each function with a query
-- of its own), behind a view (so that sqlsmith's role does not see the table)
CREATE SCHEMA fuzz_private;
CREATE TABLE fuzz_private.procs AS
SELECT * FROM (WITH types(t) AS (
    SELECT unnest(ARRAY['text', 'varchar', 'name', 'jsonb', 'json', 'int2', 'int4', 'int8', 'bool',
                        'numeric', 'float8', 'regclass', 'regprocedure', 'oid', 'bytea', 'timestamptz',
                        'date', 'uuid', 'interval', 'anyelement', 'anynonarray', 'anyarray',
                        'anycompatible', 'any', 'record', '_text', '_jsonb', '_int4']::name[])
), ours AS (
    SELECT p.oid FROM pg_catalog.pg_proc p
    WHERE p.pronamespace IN ('public'::regnamespace, 'fuzz'::regnamespace) AND p.proname LIKE 'choreo\_%'
), core AS (
    SELECT p.oid FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.provolatile IN ('i', 's')
      AND (SELECT typname FROM pg_catalog.pg_type WHERE oid = p.prorettype) IN (SELECT t FROM types)
      AND NOT EXISTS (SELECT FROM unnest(p.proargtypes) a JOIN pg_catalog.pg_type ty ON ty.oid = a
                      WHERE ty.typname NOT IN (SELECT t FROM types))
)
SELECT p.* FROM pg_catalog.pg_proc p
    WHERE p.oid IN (SELECT oid FROM core)
       OR p.pronamespace IN ('app'::regnamespace, 'app_other'::regnamespace)
       OR p.oid IN (SELECT oid FROM ours)
UNION ALL
-- copies of ours under oids far above any this cluster hands out: :weight
-- in all of each, a tenth of that of those without argument (sqlsmith
-- picks among these two times out of three)
SELECT (4000000000 + k * 100000 + p.oid::int8 % 100000)::oid, p.proname, p.pronamespace, p.proowner,
       p.prolang, p.procost, p.prorows, p.provariadic, p.prosupport, p.prokind, p.prosecdef,
       p.proleakproof, p.proisstrict, p.proretset, p.provolatile, p.proparallel, p.pronargs,
       p.pronargdefaults, p.prorettype, p.proargtypes, p.proallargtypes, p.proargmodes, p.proargnames,
       p.proargdefaults, p.protrftypes, p.prosrc, p.probin, p.prosqlbody, p.proconfig, p.proacl
    FROM pg_catalog.pg_proc p,
         generate_series(1, CASE WHEN p.pronargs = 0 THEN greatest(1, :weight / 10) ELSE :weight END - 1) k
    WHERE p.oid IN (SELECT oid FROM ours)) procs
-- in an order that does not depend on the oids (see the end)
ORDER BY pronamespace::regnamespace::text, proname, oidvectortypes(proargtypes), oid::int8 >= 4000000000, oid;
CREATE UNIQUE INDEX ON fuzz_private.procs (oid);
CREATE VIEW fuzz_catalog.pg_proc AS SELECT * FROM fuzz_private.procs;
GRANT SELECT ON fuzz_catalog.pg_proc TO PUBLIC;

-- fuzz_catalog.pg_type: what sqlsmith sees of pg_type.  sqlsmith fills an
-- operand of a pseudo type it has no column of with cast(null as TYPE),
-- an error; PostgreSQL's many range and multirange operators have such
-- operands, which made nearly half of the queries fail before they ran.
-- Here those pseudo types keep their oid and kind but are named after a
-- concrete type, so that the cast is valid (and the query runs).
CREATE VIEW fuzz_catalog.pg_type AS
SELECT t.oid,
       (CASE t.typname WHEN 'anymultirange' THEN 'int4multirange' WHEN 'anycompatiblemultirange' THEN 'int4multirange'
                       WHEN 'anyrange' THEN 'int4range' WHEN 'anycompatiblerange' THEN 'int4range'
                       WHEN 'anyenum' THEN 'mood' ELSE t.typname END)::name AS typname,
       CASE t.typname WHEN 'anyenum' THEN 'app'::regnamespace::oid ELSE t.typnamespace END AS typnamespace,
       t.typowner, t.typlen, t.typbyval, t.typtype, t.typcategory, t.typispreferred, t.typisdefined, t.typdelim,
       t.typrelid, t.typsubscript, t.typelem, t.typarray, t.typinput, t.typoutput, t.typreceive, t.typsend,
       t.typmodin, t.typmodout, t.typanalyze, t.typalign, t.typstorage, t.typnotnull, t.typbasetype, t.typtypmod,
       t.typndims, t.typcollation, t.typdefaultbin, t.typdefault, t.typacl
FROM pg_catalog.pg_type t;
GRANT SELECT ON fuzz_catalog.pg_type TO PUBLIC;

SELECT 'functions sqlsmith sees: ' || count(*) FILTER (WHERE proname LIKE 'choreo\_%') || ' choreo_* (with copies), '
       || count(*) FILTER (WHERE pronamespace IN ('app'::regnamespace, 'app_other'::regnamespace)) || ' app, '
       || count(*) FILTER (WHERE pronamespace = 'pg_catalog'::regnamespace) || ' PostgreSQL''s'
       AS notice FROM fuzz_catalog.pg_proc;

-- sqlsmith picks tables and types by their position in what it read, in
-- the catalogs' physical order, which vacuum and pruning vary from one
-- set-up to the next: sorted, the same seed generates the same queries
CLUSTER pg_catalog.pg_class USING pg_class_relname_nsp_index;
CLUSTER pg_catalog.pg_type USING pg_type_typname_nsp_index;
