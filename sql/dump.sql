-- pg_dump round trip: definitions are user data, dumped and restored with
-- the database, functions resolved again by signature.

CREATE DATABASE choreo_dump_source;
CREATE DATABASE choreo_dump_copy;
\c choreo_dump_source
CREATE EXTENSION choreograph;
CREATE SCHEMA app;
CREATE TABLE app.orders (id int PRIMARY KEY, amount numeric);
CREATE FUNCTION app.valid(o app.orders) RETURNS boolean LANGUAGE sql AS $$ SELECT o.amount > 0 $$;
CREATE FUNCTION app.reserve(o app.orders) RETURNS text LANGUAGE sql AS $$ SELECT 'r-' || o.id $$;
CREATE FUNCTION app.notify(e jsonb) RETURNS text LANGUAGE sql AS $$ SELECT e->>'op' $$;
SELECT choreo_add_step('orders', 'reserve', 'app.reserve(app.orders)', 'app.valid(app.orders)');
SELECT choreo_add_step('orders', 'notify', 'app.notify(jsonb)');
SELECT choreo_add_step('orders', 'first', 'app.notify(jsonb)', NULL, 1);
CREATE TRIGGER orders_flow AFTER INSERT ON app.orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('orders');
SELECT * FROM choreo_steps;

\! pg_dump -Fc choreo_dump_source | pg_restore --exit-on-error -d choreo_dump_copy && echo restored

\c choreo_dump_copy
SELECT * FROM choreo_steps;
SELECT name, owner FROM choreograph.pipelines;
-- the functions were resolved to the copies' OIDs, not kept as numbers
SELECT count(*) FROM choreograph.steps s JOIN pg_proc p ON p.oid = s.job;
INSERT INTO app.orders VALUES (1, 10);
SELECT choreo_bag();
SELECT choreo_run('orders', o)->'steps' FROM app.orders o;
-- ownership and the definitions' protection came along: anyone may read
-- them, and insert (guarded: test/t/006_dump_restore.pl), not change them
SELECT has_table_privilege('public', 'choreograph.steps', 'INSERT') AS public_may_insert,
       has_table_privilege('public', 'choreograph.steps', 'SELECT') AS public_may_read,
       has_table_privilege('public', 'choreograph.steps', 'UPDATE') AS public_may_update,
       has_table_privilege('public', 'choreograph.hooks', 'SELECT') AS public_may_read_hooks;

\c contrib_regression
DROP DATABASE choreo_dump_source;
DROP DATABASE choreo_dump_copy;
