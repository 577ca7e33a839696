-- The demo run by `make demo`: an order pipeline, run on rows and by a trigger; a
-- buffer, post-commit hooks, and an activity processing a stream of order events.
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION choreograph;

CREATE TABLE stock (sku text PRIMARY KEY, available int NOT NULL CHECK (available >= 0));
CREATE TABLE orders (id int PRIMARY KEY, sku text NOT NULL, quantity int NOT NULL,
                     email text, status text NOT NULL DEFAULT 'new');
CREATE TABLE outbox (order_id int, message text);
INSERT INTO stock VALUES ('pen', 10), ('ink', 1);

-- step functions: ordinary SQL and PL/pgSQL functions
CREATE FUNCTION in_stock(o orders) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    left_over int := (SELECT available FROM stock WHERE sku = o.sku) - o.quantity;
BEGIN
    IF left_over < 0 THEN
        PERFORM choreo_cancel(format('only %s %s left', left_over + o.quantity, o.sku));
    END IF;
    RETURN left_over;
END $$;
CREATE FUNCTION reserve(o orders) RETURNS int LANGUAGE sql AS $$
    UPDATE stock SET available = available - o.quantity WHERE sku = o.sku RETURNING available
$$;
CREATE FUNCTION has_email(o orders) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF o.email IS NULL THEN
        RAISE EXCEPTION 'order % has no e-mail address', o.id;
    END IF;
    RETURN o.email;
END $$;
CREATE FUNCTION notify(o orders) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    -- the precheck's result is in the bag
    INSERT INTO outbox VALUES (o.id, format('order %s confirmed, mail to %s',
                                            o.id, choreo_precheck_data('notify') #>> '{}'));
    RETURN 'queued';
END $$;
CREATE FUNCTION confirm(o orders) RETURNS text LANGUAGE sql
    AS $$ UPDATE orders SET status = 'confirmed' WHERE id = o.id RETURNING status $$;

-- the pipeline, as a migration would define it
SELECT choreo_add_step('order_flow', 'reserve', 'reserve(orders)', 'in_stock(orders)');
SELECT choreo_add_step('order_flow', 'notify', 'notify(orders)', 'has_email(orders)');
SELECT choreo_add_step('order_flow', 'confirm', 'confirm(orders)');
\echo
\echo '== the pipeline'
SELECT * FROM choreo_steps;

\echo '== one run per row, in one statement, inside the caller''s transaction'
\echo '   (choreo_try_run reports a canceled or failed run instead of raising)'
INSERT INTO orders (id, sku, quantity, email) VALUES
    (1, 'pen', 2, 'ada@example.com'), (2, 'ink', 5, 'bob@example.com'), (3, 'pen', 1, NULL);
CREATE TABLE reports AS
    SELECT o.id, choreo_try_run('order_flow', o) AS report FROM orders o ORDER BY o.id;
SELECT id, report->>'status' AS status, report->'steps' AS steps FROM reports ORDER BY id;

\echo '== the report of order 3 (its notify precheck failed: job skipped, run went on)'
SELECT jsonb_pretty(report) AS report FROM reports WHERE id = 3;
\echo '== order 2 was canceled by its precheck'
SELECT report->'errors' AS errors FROM reports WHERE id = 2;

\echo '== a trigger runs the pipeline for each new order, all-or-nothing with the INSERT'
CREATE TRIGGER orders_flow AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('order_flow');
INSERT INTO orders (id, sku, quantity, email) VALUES (4, 'pen', 3, 'cy@example.com');
SELECT id, status FROM orders ORDER BY id;
SELECT * FROM outbox ORDER BY order_id;
SELECT * FROM stock ORDER BY sku;
\echo '== the bag of that trigger run'
SELECT jsonb_pretty(choreo_bag()) AS bag;

\echo '== an order the pipeline cancels is not inserted at all (the error is expected)'
\set ON_ERROR_STOP off
INSERT INTO orders (id, sku, quantity, email) VALUES (5, 'ink', 9, 'di@example.com');
\set ON_ERROR_STOP on
SELECT count(*) AS orders_with_id_5 FROM orders WHERE id = 5;
SELECT * FROM choreo_errors();

\echo '== a buffer: a trigger captures every change of orders as an event, written in batches'
CREATE TABLE order_events (id bigserial PRIMARY KEY, payload jsonb NOT NULL,
                           at timestamptz NOT NULL DEFAULT now());
SELECT choreo_create_buffer('order_events', 'order_events', 100);
CREATE TRIGGER orders_capture AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('order_events');
UPDATE orders SET status = 'shipped' WHERE status = 'confirmed';
SELECT id, payload->>'op' AS op, payload->'new'->>'id' AS order_id,
       payload->'old'->>'status' AS was, payload->'new'->>'status' AS now
  FROM order_events ORDER BY id;

\echo '== post-commit hooks: after COMMIT, a background worker mails each shipped order'
CREATE TABLE sent_mail (order_id int, address text, sent_by text,
                        sent_at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION send_mail(p jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO sent_mail (order_id, address, sent_by)
    VALUES ((p->>'order')::int, p->>'to', current_user)
$$;
BEGIN;
SELECT count(choreo_post_commit('send_mail(jsonb)', jsonb_build_object('order', id, 'to', email)))
       AS hooks_queued
  FROM orders WHERE status = 'shipped' AND email IS NOT NULL;
SELECT id, callback, status, payload FROM choreo_hooks;
COMMIT;
-- a worker runs them in a moment: wait (at most ten seconds) until none is left
DO $$ BEGIN
    FOR i IN 1 .. 200 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM choreo_hooks);
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT order_id, address, sent_by FROM sent_mail ORDER BY order_id;
SELECT count(*) AS hooks_left FROM choreo_hooks;

\echo '== streams and activities: each order''s events, numbered per order at commit,'
\echo '   processed in the background by an activity that resumes from its stored tail'
CREATE TABLE shipments (order_id int, seq bigint, shipped_by text);
CREATE FUNCTION ship(entity text, tail bigint, events jsonb, initial boolean)
RETURNS choreo_outcome LANGUAGE plpgsql AS $$
DECLARE
    event jsonb;
BEGIN
    FOR event IN SELECT value FROM jsonb_array_elements(events) LOOP
        CASE event->'payload'->>'kind'
        WHEN 'paid' THEN
            INSERT INTO shipments VALUES (entity::int, (event->>'seq')::bigint, current_user);
        WHEN 'delivered' THEN
            RETURN choreo_done((event->>'seq')::bigint);      -- finished: never run again
        WHEN 'refund' THEN
            RAISE EXCEPTION 'order %: refunds are not handled yet', entity;
        ELSE
            NULL;
        END CASE;
    END LOOP;
    RETURN choreo_eof(COALESCE((events->-1->>'seq')::bigint, tail));   -- caught up
END $$;
SELECT choreo_create_activity('shipping', 'orders', 'ship(text, bigint, jsonb, boolean)',
                              '{"max_attempts": 2, "backoff_base": "200 milliseconds"}');
BEGIN;
SELECT count(choreo_emit('orders', e.entity, e.payload)) AS emitted
  FROM (VALUES ('1', '{"kind": "paid"}'::jsonb), ('4', '{"kind": "paid"}'),
               ('1', '{"kind": "packed"}')) e (entity, payload);
\echo '   (emitted, not written yet: the events are numbered at commit)'
SELECT count(*) AS events_of_order_1 FROM choreo_events('orders', '1');
COMMIT;
SELECT seq, payload FROM choreo_events('orders', '1');
-- a worker runs the activity for each order in a moment: wait (at most ten seconds)
DO $$ BEGIN
    FOR i IN 1 .. 200 LOOP
        EXIT WHEN (SELECT count(*) FROM choreo_activities WHERE lag = 0 AND tail > 0) = 2;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT * FROM shipments ORDER BY order_id;
SELECT activity, entity, tail, head, lag, status FROM choreo_activities ORDER BY entity;

\echo '== an event the processor fails on: retried with backoff, then the order is marked failed'
SELECT count(choreo_emit('orders', e.entity, e.payload)) AS emitted
  FROM (VALUES ('4', '{"kind": "refund"}'::jsonb), ('1', '{"kind": "delivered"}')) e (entity, payload);
DO $$ BEGIN
    FOR i IN 1 .. 200 LOOP
        EXIT WHEN (SELECT count(*) FROM choreo_activities WHERE status IN ('done', 'failed')) = 2;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT entity, tail, head, status, attempts, last_error FROM choreo_activities ORDER BY entity;
\echo '== reset beyond the bad event: order 4 is caught up again'
SELECT choreo_reset_activity('shipping', '4', tail => 2);
SELECT entity, tail, head, status, attempts, last_error FROM choreo_activities ORDER BY entity;
