-- Input conversion: steps take the input as is, as jsonb, or nothing;
-- return values are rendered as to_jsonb renders them.

CREATE TABLE item (id int PRIMARY KEY, name text, price numeric, tags text[]);
INSERT INTO item VALUES (1, 'pen', 1.50, '{office}'), (2, 'ink', NULL, '{}');

CREATE FUNCTION item_name(i item) RETURNS text LANGUAGE sql AS $$ SELECT i.name $$;
CREATE FUNCTION item_json(j jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT j $$;
CREATE FUNCTION nothing() RETURNS text LANGUAGE sql AS $$ SELECT 'no argument' $$;
CREATE FUNCTION item_row(i item) RETURNS item LANGUAGE sql AS $$ SELECT i $$;
CREATE FUNCTION item_strict(i item) RETURNS text LANGUAGE sql STRICT AS $$ SELECT 'called' $$;
CREATE FUNCTION item_lax(i item) RETURNS text LANGUAGE sql AS $$ SELECT CASE WHEN i IS NULL THEN 'got null' ELSE 'got row' END $$;

SELECT choreo_add_step('items', 'as_is', 'item_name(item)');
SELECT choreo_add_step('items', 'as_jsonb', 'item_json(jsonb)');
SELECT choreo_add_step('items', 'none', 'nothing()');
SELECT choreo_add_step('items', 'composite', 'item_row(item)');
SELECT choreo_add_step('items', 'strict', 'item_strict(item)');
SELECT choreo_add_step('items', 'lax', 'item_lax(item)');

-- one run per row, rows handed over as they are
SELECT i.id, choreo_run('items', i)->'bag' FROM item i ORDER BY i.id;

-- without input, one-argument functions get NULL (strict ones are not called)
SELECT choreo_run('items')->'bag';
-- a typed NULL input is the same
SELECT choreo_run('items', NULL::item)->'bag' = choreo_run('items')->'bag';

-- a jsonb input goes to jsonb functions as is, and cannot go to item
SELECT choreo_add_step('json_only', 'j', 'item_json(jsonb)');
SELECT choreo_run('json_only', '{"a": [1, 2]}'::jsonb)->'bag';
SELECT err($$SELECT choreo_run('items', '{"a": 1}'::jsonb)$$);
-- scalars become jsonb as to_jsonb makes them
SELECT choreo_run('json_only', 42)->'bag', choreo_run('json_only', 'text'::text)->'bag',
       choreo_run('json_only', ARRAY[1, 2])->'bag';

-- other types must match, or be binary-coercible to the argument's type
CREATE FUNCTION takes_text(t text) RETURNS text LANGUAGE sql AS $$ SELECT upper(t) $$;
CREATE FUNCTION takes_bigint(b bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT b * 2 $$;
CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 10);
SELECT choreo_add_step('texts', 't', 'takes_text(text)');
SELECT choreo_run('texts', 'abc'::text)->'bag';
SELECT choreo_run('texts', 'abc'::varchar)->'bag';
SELECT choreo_run('texts', 'abc'::short_text)->'bag';
SELECT err($$SELECT choreo_run('texts', 1)$$);
SELECT choreo_add_step('bigints', 'b', 'takes_bigint(bigint)');
SELECT choreo_run('bigints', 21::bigint)->'bag';
SELECT err($$SELECT choreo_run('bigints', 21)$$);
-- a mismatch is found before any step runs, for choreo_try_run too, and
-- for prechecks (where an error would otherwise merely skip the job)
TRUNCATE journal;
SELECT choreo_add_step('mismatch', 'first', 'note(text)');
SELECT choreo_add_step('mismatch', 'second', 'nothing()', 'takes_bigint(bigint)');
SELECT err($$SELECT choreo_try_run('mismatch', 'x'::text)$$);
SELECT * FROM choreo_errors();
SELECT journal_entries();
-- an untyped literal has no type to match
SELECT err($$SELECT choreo_run('texts', 'abc')$$);

-- return values of many types
CREATE FUNCTION r_numeric() RETURNS numeric LANGUAGE sql AS $$ SELECT 1.50 $$;
CREATE FUNCTION r_text() RETURNS text LANGUAGE sql AS $$ SELECT 'a "quoted" text' $$;
CREATE FUNCTION r_array() RETURNS int[] LANGUAGE sql AS $$ SELECT ARRAY[1, NULL, 3] $$;
CREATE FUNCTION r_json() RETURNS json LANGUAGE sql AS $$ SELECT '{"k": "v"}'::json $$;
CREATE FUNCTION r_date() RETURNS date LANGUAGE sql AS $$ SELECT date '2026-11-25' $$;
CREATE FUNCTION r_record(OUT a int, OUT b text) LANGUAGE sql AS $$ SELECT 1, 'x' $$;
CREATE FUNCTION r_null() RETURNS text LANGUAGE sql AS $$ SELECT NULL::text $$;
CREATE FUNCTION r_bool() RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
SELECT choreo_add_step('returns', 'numeric', 'r_numeric()');
SELECT choreo_add_step('returns', 'text', 'r_text()');
SELECT choreo_add_step('returns', 'array', 'r_array()');
SELECT choreo_add_step('returns', 'json', 'r_json()');
SELECT choreo_add_step('returns', 'date', 'r_date()');
SELECT choreo_add_step('returns', 'record', 'r_record()');
SELECT choreo_add_step('returns', 'null', 'r_null()');
SELECT choreo_add_step('returns', 'bool', 'r_bool()');
SELECT jsonb_pretty(choreo_run('returns')->'bag');

-- the cached input handling follows the input type from run to run
SELECT choreo_run('json_only', 1)->'bag', choreo_run('json_only', '{"x": 1}'::jsonb)->'bag',
       choreo_run('json_only', 'y'::text)->'bag';

SELECT choreo_drop_pipeline(name) FROM choreograph.pipelines ORDER BY name;
