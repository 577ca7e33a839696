-- choreo_trigger: pipelines run by row triggers (BEFORE, AFTER, deferred
-- constraint triggers) with the row or the jsonb envelope as input.

CREATE TABLE orders (id int PRIMARY KEY, amount numeric NOT NULL, status text NOT NULL DEFAULT 'new');
CREATE TABLE order_log (order_id int, note text, envelope jsonb);

CREATE FUNCTION log_row(o orders) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_log VALUES (o.id, 'row: ' || o.status, NULL);
    RETURN o.status;
END $$;
CREATE FUNCTION log_envelope(e jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_log VALUES (coalesce(e->'new'->>'id', e->'old'->>'id')::int, 'envelope', e);
    RETURN e->>'op';
END $$;
CREATE FUNCTION positive(o orders) RETURNS boolean LANGUAGE sql AS $$ SELECT o.amount > 0 $$;
CREATE FUNCTION refuse_big(o orders) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF o.amount > 1000 THEN
        RAISE EXCEPTION 'order % is too big', o.id USING ERRCODE = 'check_violation';
    END IF;
END $$;

SELECT choreo_add_step('order_flow', 'row', 'log_row(orders)', 'positive(orders)');
SELECT choreo_add_step('order_flow', 'envelope', 'log_envelope(jsonb)');
SELECT choreo_add_step('order_flow', 'limit', 'refuse_big(orders)');

-- AFTER row trigger for INSERT, UPDATE and DELETE
CREATE TRIGGER orders_flow AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('order_flow');

INSERT INTO orders (id, amount) VALUES (1, 10), (2, 0);
UPDATE orders SET status = 'paid' WHERE id = 1;
DELETE FROM orders WHERE id = 2;
SELECT order_id, note, envelope FROM order_log ORDER BY order_id, note, envelope->>'op';
-- the last run's report data is there for the session
SELECT choreo_bag();
TRUNCATE order_log;

-- a fatal error in a step fails the statement: nothing of it stays
INSERT INTO orders (id, amount) VALUES (3, 5), (4, 5000);
SELECT count(*) AS orders, (SELECT count(*) FROM order_log) AS log_rows FROM orders WHERE id IN (3, 4);
SELECT * FROM choreo_errors();
DROP TRIGGER orders_flow ON orders;

-- BEFORE trigger: the row is returned unchanged and stored
CREATE TRIGGER orders_before BEFORE INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('order_flow');
INSERT INTO orders (id, amount) VALUES (5, 20) RETURNING *;
UPDATE orders SET status = 'shipped' WHERE id = 5 RETURNING *;
DELETE FROM orders WHERE id = 5 RETURNING *;
SELECT order_id, note, envelope->>'op' AS op FROM order_log ORDER BY order_id, note, op;
INSERT INTO orders (id, amount) VALUES (6, 2000);
SELECT count(*) FROM orders WHERE id = 6;
DROP TRIGGER orders_before ON orders;
TRUNCATE order_log;

-- deferred constraint trigger: the pipeline runs at commit, and its fatal
-- error fails the commit
CREATE CONSTRAINT TRIGGER orders_deferred AFTER INSERT ON orders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('order_flow');
BEGIN;
INSERT INTO orders (id, amount) VALUES (7, 30);
SELECT count(*) AS before_commit FROM order_log;
COMMIT;
SELECT order_id, note FROM order_log ORDER BY note;
BEGIN;
INSERT INTO orders (id, amount) VALUES (8, 3000);
COMMIT;
SELECT count(*) FROM orders WHERE id = 8;
DROP TRIGGER orders_deferred ON orders;
TRUNCATE order_log;

-- a statement-level trigger is refused with a clear error
CREATE TRIGGER orders_statement AFTER INSERT ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION choreo_trigger('order_flow');
SELECT err($$INSERT INTO orders (id, amount) VALUES (9, 1)$$);
DROP TRIGGER orders_statement ON orders;

-- the trigger must name one pipeline, which must exist
CREATE TRIGGER orders_noarg AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger();
SELECT err($$INSERT INTO orders (id, amount) VALUES (9, 1)$$);
DROP TRIGGER orders_noarg ON orders;
CREATE TRIGGER orders_unknown AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('no_such_pipeline');
SELECT err($$INSERT INTO orders (id, amount) VALUES (9, 1)$$);
DROP TRIGGER orders_unknown ON orders;
SELECT count(*) FROM orders WHERE id = 9;

-- a step taking another table's row type cannot run from this table
CREATE TABLE other (id int);
CREATE TRIGGER other_flow AFTER INSERT ON other
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('order_flow');
SELECT err($$INSERT INTO other VALUES (1)$$);
DROP TABLE other;

-- called directly, it refuses
SELECT err($$SELECT choreo_trigger()$$);

-- a pipeline of jsonb steps serves any table
CREATE TABLE customers (id int PRIMARY KEY, name text);
SELECT choreo_add_step('audit', 'envelope', 'log_envelope(jsonb)');
CREATE TRIGGER customers_audit AFTER INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('audit');
INSERT INTO customers VALUES (1, 'Ada');
UPDATE customers SET name = 'Ada L.' WHERE id = 1;
SELECT envelope FROM order_log ORDER BY envelope->>'op';

DROP TABLE customers, orders, order_log CASCADE;
SELECT choreo_drop_pipeline(name) FROM choreograph.pipelines ORDER BY name;

-- envelopes are jsonb like any other, for every column type
CREATE TABLE typed_row (i int, b bigint, n numeric(6, 2), t text, v varchar(5), f float8,
                        ok boolean, d date, j jsonb, a int[], nothing text);
SELECT choreo_add_step('typed_audit', 'envelope', 'log_envelope(jsonb)');
CREATE TABLE order_log (order_id int, note text, envelope jsonb);
CREATE TRIGGER typed_audit AFTER INSERT ON typed_row
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('typed_audit');
INSERT INTO typed_row VALUES (1, 9007199254740993, 12.5, 'x "y"', 'abc', 1.5e300, true,
                              '2026-11-25', '{"k": [1, {"z": null}]}', '{1,2}', NULL);
SELECT envelope->'new' AS new_row,
       envelope = envelope::text::jsonb AS round_trips,
       envelope->'new' = (SELECT to_jsonb(r.*) FROM typed_row r) AS same_as_to_jsonb
  FROM order_log;
DROP TABLE typed_row, order_log;
SELECT choreo_drop_pipeline('typed_audit');
