-- Column types: thousands of items per column type, fired into a buffer on
-- each write path, must be written exactly as INSERT writes the values
-- jsonb_populate_record converts them to.  The paths, one table each (the
-- same columns): "direct" is a plain table, written the way COPY writes;
-- "planned" has a no-op BEFORE INSERT row trigger, so it is written by a
-- planned INSERT; "waited" is fired with choreo_fire_and_wait (and every
-- tenth item with choreo_fire_forget, written by the next wait), whose
-- returned row is compared with the stored one.
--
-- The model: the row an item must give is
--     jsonb_populate_record(<the row of defaults>, item)
-- (the columns it names convert as jsonb_populate_record converts them, the
-- others keep their defaults).  Every column has a non-NULL default, so
-- that a key left out and a JSON null give different rows; the composite
-- column's default has NULL fields, as the base record of a JSON object
-- converted into it must.  Rows are compared as text, which tells 1.5 from
-- 1.50 and -0 from 0, with EXCEPT ALL both ways.
--
-- The columns are fired in groups (an item names several columns), one
-- statement per group and path, in its own transaction: 2,000 items, each
-- computed as it is fired, every column left out of every 13th and JSON
-- null in every 17th (at other items for each column), then items naming
-- one column each, with the special values of its type: empty, huge,
-- limits, strings and JSON arrays and objects for arrays and composites.

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN plain_text AS text;
CREATE DOMAIN required_int AS int NOT NULL;
CREATE DOMAIN positive_int AS int CHECK (VALUE > 0);
CREATE DOMAIN int_list AS int[] CHECK (cardinality(VALUE) <= 10000);

CREATE TABLE direct (
    typ   text,         -- the group of columns the item is about
    seq   int,          -- the item's number within its group
    num   numeric       DEFAULT -1,
    num12 numeric(12,3) DEFAULT -1,
    i2    int2          DEFAULT -1,
    i4    int4          DEFAULT -1,
    i8    int8          DEFAULT -1,
    f8    float8        DEFAULT -1,
    t     text          DEFAULT 'default',
    vc    varchar       DEFAULT 'default',
    vc10  varchar(10)   DEFAULT 'default',
    ch    char(5)       DEFAULT 'dflt',
    b     bool          DEFAULT false,
    by    bytea         DEFAULT '\xdeadbeef',
    ia    int[]         DEFAULT '{-1}',
    ta    text[]        DEFAULT '{default}',
    ia2   int[][]       DEFAULT '{{-1,-1},{-1,-1}}',
    js    json          DEFAULT '{"default": true}',
    jb    jsonb         DEFAULT '{"default": true}',
    u     uuid          DEFAULT '00000000-0000-0000-0000-000000000001',
    d     date          DEFAULT '1999-12-31',
    ts    timestamptz   DEFAULT '1999-12-31 23:59:59+00',
    iv    interval      DEFAULT '-1 day',
    dp    plain_text    DEFAULT 'default',
    dnn   required_int  DEFAULT -1,
    dchk  positive_int  DEFAULT 1,
    darr  int_list      DEFAULT '{-1}',
    pr    pair          DEFAULT '(,)',
    prs   pair[]        DEFAULT '{"(-1,default)"}',
    mo    mood          DEFAULT 'ok'
);
CREATE INDEX ON direct (typ, seq);
CREATE TABLE planned (LIKE direct INCLUDING ALL);
CREATE TABLE waited (LIKE direct INCLUDING ALL);
CREATE FUNCTION no_op() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER no_op BEFORE INSERT ON planned FOR EACH ROW EXECUTE FUNCTION no_op();
-- small batches: most items are written mid-transaction, the rest at COMMIT
SELECT choreo_create_buffer(name, name::regclass, 100) FROM unnest('{direct,planned,waited}'::text[]) name;

-- the row of defaults, as a plain INSERT writes it
CREATE TABLE defaults (LIKE direct INCLUDING DEFAULTS);
INSERT INTO defaults DEFAULT VALUES;

-- the columns in their groups
CREATE TABLE columns (col text PRIMARY KEY, grp text NOT NULL);
INSERT INTO columns VALUES
    ('num12', 'numbers'), ('i2', 'numbers'), ('i4', 'numbers'), ('i8', 'numbers'), ('f8', 'numbers'),
    ('dnn', 'numbers'), ('dchk', 'numbers'),
    ('t', 'strings'), ('vc', 'strings'), ('vc10', 'strings'), ('ch', 'strings'), ('dp', 'strings'),
    ('js', 'strings'), ('jb', 'strings'),
    ('b', 'scalars'), ('by', 'scalars'), ('u', 'scalars'), ('d', 'scalars'), ('ts', 'scalars'),
    ('iv', 'scalars'), ('mo', 'scalars'),
    ('ia', 'structured'), ('ta', 'structured'), ('ia2', 'structured'), ('darr', 'structured'),
    ('pr', 'structured'), ('prs', 'structured'),
    ('num', 'numeric');
SELECT array_agg(attname ORDER BY attnum) AS columns_without_group
  FROM pg_attribute
 WHERE attrelid = 'direct'::regclass AND attnum > 2 AND NOT attisdropped
   AND attname NOT IN (SELECT col FROM columns);

-- kv(column, value): {column: value}, or {} when value is SQL NULL (inlined
-- into the query that uses it, so that each item is computed, and freed,
-- as it is fired)
CREATE FUNCTION kv(col text, value jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT coalesce(jsonb_set('{}', ARRAY[col], value), '{}')
$$;
-- varied(n, value): SQL NULL (the column left out) when n is a multiple of
-- 13, JSON null when it is one of 17, else the value
CREATE FUNCTION varied(n int, value jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT CASE WHEN n % 13 = 0 THEN NULL WHEN n % 17 = 0 THEN 'null' ELSE value END
$$;

-- values of a megabyte and more, and 10,000-element arrays
CREATE TABLE huge AS
    SELECT (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 32768) i) AS hex,  -- 1 MB
           (SELECT jsonb_agg(i) FROM generate_series(1, 10000) i) AS ints,
           (SELECT jsonb_agg('e' || i) FROM generate_series(1, 10000) i) AS texts,
           (SELECT jsonb_agg(jsonb_build_object('a', i, 'b', 'p' || i))
              FROM generate_series(1, 10000) i) AS pairs;
SELECT length(hex), jsonb_array_length(ints), jsonb_array_length(texts), jsonb_array_length(pairs)
  FROM huge;

-- the special values of each type: empty values, huge values, limits,
-- strings and JSON arrays and objects for arrays and composites
CREATE TABLE specials (col text, seq int GENERATED ALWAYS AS IDENTITY (START 10001), value jsonb);
INSERT INTO specials (col, value) VALUES
    ('num12', '999999999.9994'), ('num12', '"NaN"'), ('num12', '0.0005'), ('num12', '-0.0004'),
    ('num12', '"  1.5  "'),
    ('i2', '32767'), ('i2', '-32768'), ('i2', '"42"'), ('i2', '" 7 "'), ('i2', '1e2'),
    ('i4', '2147483647'), ('i4', '-2147483648'), ('i4', '"-0"'), ('i4', '1e2'),
    ('i8', '9223372036854775807'), ('i8', '-9223372036854775808'), ('i8', '"+5"'),
    ('f8', '"NaN"'), ('f8', '"Infinity"'), ('f8', '"-Infinity"'), ('f8', '"-0"'), ('f8', '-0'),
    ('f8', '1e308'), ('f8', '5e-324'), ('f8', '0.1'), ('f8', '"1.5e10"'),
    ('t', '""'), ('t', '{}'), ('t', '[]'), ('t', '"\u00e9\ud83d\ude00 \"q\" \\ \n"'),
    ('t', '123.4500'), ('t', 'false'),
    ('vc', '""'), ('vc', '"  "'),
    ('vc10', '"abcdefghij   "'), ('vc10', '"éééééééééé"'), ('vc10', '""'), ('vc10', '1234567890'),
    ('ch', '""'), ('ch', '"abcde     "'), ('ch', '"a"'),
    ('b', '"TRUE"'), ('b', '" true "'), ('b', '1'), ('b', '0'), ('b', '"n"'),
    ('by', '""'), ('by', '"\\x"'), ('by', '"\\\\"'),
    ('ia', '[]'), ('ia', '"{}"'), ('ia', '[null]'), ('ia', '"{1,2}"'), ('ia', '" { 1 , 2 } "'),
    ('ia', '"[0:1]={5,6}"'), ('ia', '[[]]'), ('ia', '[1, "2", " 3 "]'),
    ('ta', '[]'), ('ta', '"{}"'), ('ta', '[""]'), ('ta', '["a", 1, true, null, {"k": "v"}, [1]]'),
    ('ta', '"{a,\"b c\",NULL,\"NULL\"}"'), ('ta', '[["a"], ["b"]]'),
    ('ia2', '[]'), ('ia2', '"{}"'), ('ia2', '"{{1,2},{3,4}}"'), ('ia2', '[[1, null], [null, 4]]'),
    ('ia2', '[[[1]]]'), ('ia2', '[[]]'),
    ('js', '{}'), ('js', '[]'), ('js', '""'), ('js', '"{}"'), ('js', '1.50'), ('js', 'false'),
    ('js', '{"b": [1, {"c": null}], "a": "x"}'),
    ('jb', '{}'), ('jb', '[]'), ('jb', '""'), ('jb', '0'), ('jb', 'false'),
    ('jb', '[[[[[[[[[[1]]]]]]]]]]'),
    ('u', '"00000000-0000-0000-0000-000000000000"'), ('u', '"A0EEBC999C0B4EF8BB6D6BB9BD380A11"'),
    ('u', '"{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}"'),
    ('d', '"infinity"'), ('d', '"-infinity"'), ('d', '"epoch"'), ('d', '"2024-02-29"'),
    ('d', '"0001-01-01 BC"'), ('d', '"5874897-12-31"'),
    ('ts', '"infinity"'), ('ts', '"-infinity"'), ('ts', '"epoch"'),
    ('ts', '"2000-01-01 00:00:00.1234567+00"'), ('ts', '"2024-06-01 12:00 Europe/Paris"'),
    ('iv', '"0"'), ('iv', '5'), ('iv', '"1 year 13 months"'), ('iv', '"P1Y2M3DT4H5M6.5S"'),
    ('iv', '"-178000000 years"'), ('iv', '"@ 1 minute ago"'),
    ('dp', '""'), ('dp', '123'),
    ('dnn', '0'), ('dnn', '"-2147483648"'),
    ('dchk', '1'), ('dchk', '"2147483647"'),
    ('darr', '[]'), ('darr', '"{}"'), ('darr', '[null]'),
    ('pr', '{}'), ('pr', '"(,)"'), ('pr', '{"a": null, "b": null}'), ('pr', '{"a": "7", "b": 5, "c": 1}'),
    ('pr', '"(1,x)"'), ('pr', '{"b": "only b"}'), ('pr', '{"a": 1, "b": "\"quoted\", (parens)"}'),
    ('prs', '[]'), ('prs', '"{}"'), ('prs', '[null]'), ('prs', '["(1,x)", {"a": 2}, null]'),
    ('prs', '"{\"(1,x)\",\"(2,y)\"}"'),
    ('mo', '"happy"'), ('mo', '"sad"'),
    ('num', '0'), ('num', '-0'), ('num', '"NaN"'), ('num', '"Infinity"'), ('num', '"-Infinity"'),
    ('num', '1e-30'), ('num', '" 12.50 "'), ('num', '123456789012345678901234567890.123456789');
INSERT INTO specials (col, value)
    SELECT 't', to_jsonb(hex) FROM huge
    UNION ALL SELECT 'by', to_jsonb('\x' || hex || hex) FROM huge
    UNION ALL SELECT 'jb', jsonb_build_object('hex', hex) FROM huge
    UNION ALL SELECT 'jb', ints FROM huge
    UNION ALL SELECT 'ia', ints FROM huge
    UNION ALL SELECT 'darr', ints FROM huge
    UNION ALL SELECT 'ta', texts FROM huge
    UNION ALL SELECT 'prs', pairs FROM huge
    UNION ALL SELECT 'ia2', to_jsonb(ARRAY(SELECT ARRAY(SELECT i * 100 + j FROM generate_series(1, 100) j)
                                            FROM generate_series(1, 100) i))
    UNION ALL SELECT 'num', to_jsonb(repeat('9', 1000)::numeric);

-- the items
CREATE VIEW items AS
SELECT 'numbers' AS typ, g AS seq, jsonb_build_object('typ', 'numbers', 'seq', g)
    || kv('num12', varied(g, CASE g % 3
        WHEN 0 THEN to_jsonb(g * 1.2345) WHEN 1 THEN to_jsonb(-g / 7.0)
        ELSE to_jsonb((g * 0.5)::text) END))
    || kv('i2', varied(g + 1, CASE g % 3
        WHEN 0 THEN to_jsonb(g * 16 - 32768) WHEN 1 THEN to_jsonb(32767 - g * 16)
        ELSE to_jsonb(g::text) END))
    || kv('i4', varied(g + 2, CASE g % 3
        WHEN 0 THEN to_jsonb(g * 1000003 - 1000000000) WHEN 1 THEN to_jsonb(-g)
        ELSE to_jsonb((g * 7)::text) END))
    || kv('i8', varied(g + 3, CASE g % 3
        WHEN 0 THEN to_jsonb(g * 4611686018427387::int8) WHEN 1 THEN to_jsonb(-g * 3000000000007::int8)
        ELSE to_jsonb((g::int8 << 40)::text) END))
    || kv('f8', varied(g + 4, CASE g % 4
        WHEN 0 THEN to_jsonb(g * 0.1) WHEN 1 THEN to_jsonb(g / 3.0::float8)
        WHEN 2 THEN to_jsonb(1e300::float8 * g / 7) ELSE to_jsonb((g * 1.25e-300::float8)::text) END))
    || kv('dnn', CASE WHEN g % 13 = 0 THEN NULL WHEN g % 2 = 0 THEN to_jsonb(g)  -- never JSON null
        ELSE to_jsonb((-g)::text) END)
    || kv('dchk', varied(g + 6, CASE g % 2  -- JSON null passes the CHECK
        WHEN 0 THEN to_jsonb(g) ELSE to_jsonb(g::text) END)) AS item
  FROM generate_series(1, 2000) g
UNION ALL
SELECT 'strings', g, jsonb_build_object('typ', 'strings', 'seq', g)
    || kv('t', varied(g, CASE g % 5
        WHEN 0 THEN to_jsonb(format(E'line %s\n"quoted" \\ tab\t é ✓', g)) WHEN 1 THEN to_jsonb(g * 1.50)
        WHEN 2 THEN to_jsonb(g % 2 = 0) WHEN 3 THEN jsonb_build_object('g', g, 'a', jsonb_build_array(g, 'x'))
        ELSE to_jsonb(repeat(md5(g::text), g % 40)) END))
    || kv('vc', varied(g + 1, CASE g % 3
        WHEN 0 THEN to_jsonb(repeat('v', g % 50)) WHEN 1 THEN to_jsonb(' spaced ' || g || ' ')
        ELSE to_jsonb(g) END))
    || kv('vc10', varied(g + 2, CASE g % 3
        WHEN 0 THEN to_jsonb(left(md5(g::text), g % 11)) WHEN 1 THEN to_jsonb(left(repeat('é', 10), g % 11))
        ELSE to_jsonb(g * 1000) END))
    || kv('ch', varied(g + 3, CASE g % 2
        WHEN 0 THEN to_jsonb(left(md5(g::text), g % 6)) ELSE to_jsonb(g % 1000) END))
    || kv('dp', varied(g + 4, CASE g % 2
        WHEN 0 THEN to_jsonb('plain ' || g) ELSE to_jsonb(g * 0.5) END))
    || kv('js', varied(g + 5, CASE g % 4
        WHEN 0 THEN jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'x', NULL, true, g * 1.50))
        WHEN 1 THEN to_jsonb('json ' || g) WHEN 2 THEN to_jsonb(g * 1.50)
        ELSE jsonb_build_array(g, jsonb_build_object()) END))
    || kv('jb', varied(g + 6, CASE g % 4
        WHEN 0 THEN jsonb_build_object('g', g, 'd', g * 1.50, 's', repeat('j', g % 100))
        WHEN 1 THEN to_jsonb('jsonb ' || g) WHEN 2 THEN to_jsonb(g % 3 = 0)
        ELSE to_jsonb(ARRAY(SELECT generate_series(1, g % 50))) END))
  FROM generate_series(1, 2000) g
UNION ALL
SELECT 'scalars', g, jsonb_build_object('typ', 'scalars', 'seq', g)
    || kv('b', varied(g, CASE g % 3
        WHEN 0 THEN to_jsonb(g % 2 = 0)
        WHEN 1 THEN to_jsonb(('{yes,no,t,f,on,off,1,0,TRUE," false "}'::text[])[g % 10 + 1])
        ELSE to_jsonb(g % 2) END))
    || kv('by', varied(g + 1, CASE g % 3
        WHEN 0 THEN to_jsonb('\x' || md5(g::text)) WHEN 1 THEN to_jsonb('bytes ' || g || '\000\377')
        ELSE to_jsonb('\x' || repeat(md5(g::text), g % 20)) END))
    || kv('u', varied(g + 2, CASE g % 3
        WHEN 0 THEN to_jsonb(md5(g::text)::uuid::text) WHEN 1 THEN to_jsonb(upper(md5(g::text)))
        ELSE to_jsonb('{' || md5(g::text)::uuid || '}') END))
    || kv('d', varied(g + 3, CASE g % 3
        WHEN 0 THEN to_jsonb('2000-01-01'::date + g * 7)
        WHEN 1 THEN to_jsonb(to_char('1970-01-01'::date - g * 30, 'YYYYMMDD'))
        ELSE to_jsonb(to_char(make_date(g, 6, 15), 'YYYY-MM-DD') || ' BC') END))
    || kv('ts', varied(g + 4, CASE g % 3
        WHEN 0 THEN to_jsonb('2000-01-01 00:00:00+00'::timestamptz + g * interval '1 hour 1.5 seconds')
        WHEN 1 THEN to_jsonb(format('2024-02-29T%s:%s:%s.%s+05:30', lpad((g % 24)::text, 2, '0'),
                                    lpad((g % 60)::text, 2, '0'), lpad((g % 59)::text, 2, '0'), g))
        ELSE to_jsonb(to_timestamp(g * 86400.123456)::text) END))
    || kv('iv', varied(g + 5, CASE g % 4
        WHEN 0 THEN to_jsonb(make_interval(days => g, secs => g * 0.25))
        WHEN 1 THEN to_jsonb(format('P%sY%sM%sDT%sH%sM%sS', g % 5, g % 12, g % 28, g % 24, g % 60, g % 60))
        WHEN 2 THEN to_jsonb(format('-%s days +%s:00:00', g, g % 24))
        ELSE to_jsonb(g) END))
    || kv('mo', varied(g + 6, to_jsonb(('{sad,ok,happy}'::text[])[g % 3 + 1])))
  FROM generate_series(1, 2000) g
UNION ALL
SELECT 'structured', g, jsonb_build_object('typ', 'structured', 'seq', g)
    || kv('ia', varied(g, CASE g % 4
        WHEN 0 THEN to_jsonb((ARRAY[g, -g, g * 1000, NULL, 0])[1:g % 6])
        WHEN 1 THEN to_jsonb(format('{%s,%s}', g, -g))
        WHEN 2 THEN to_jsonb(ARRAY(SELECT generate_series(g, g + g % 30)))
        ELSE jsonb_build_array(g::text, g * 10) END))
    || kv('ta', varied(g + 1, CASE g % 3
        WHEN 0 THEN to_jsonb((ARRAY['t' || g, 'b,c', '"q"', '', NULL, 'back\slash', 'sp ace', 'NULL', '{x}'])[1:g % 10])
        WHEN 1 THEN to_jsonb(format('{t%s,"b c",NULL,"NULL",""}', g))
        ELSE jsonb_build_array(g, g % 2 = 0, jsonb_build_object('k', g)) END))
    || kv('ia2', varied(g + 2, CASE g % 4
        WHEN 0 THEN jsonb_build_array(jsonb_build_array(g, g + 1), jsonb_build_array(g + 2, NULL))
        WHEN 1 THEN to_jsonb(ARRAY[[g], [-g], [g * 2]])
        WHEN 2 THEN to_jsonb(format('{{%s,%s,%s}}', g, g + 1, g + 2))
        ELSE to_jsonb(ARRAY[[g, g], [g, g], [g, g]]) END))
    || kv('darr', varied(g + 3, CASE g % 3
        WHEN 0 THEN to_jsonb(ARRAY[g, g * 2, NULL]) WHEN 1 THEN to_jsonb(format('{%s}', g))
        ELSE to_jsonb(ARRAY(SELECT generate_series(1, g % 40))) END))
    || kv('pr', varied(g + 4, CASE g % 4
        WHEN 0 THEN jsonb_build_object('a', g, 'b', 'pair ' || g)
        WHEN 1 THEN to_jsonb(format('(%s,"x, y")', g))
        WHEN 2 THEN jsonb_build_object('a', g)
        ELSE jsonb_build_object('b', g * 1.5, 'a', g::text, 'extra', true) END))
    || kv('prs', varied(g + 5, CASE g % 3
        WHEN 0 THEN jsonb_build_array(jsonb_build_object('a', g, 'b', 'p'), jsonb_build_object('a', -g, 'b', NULL), NULL)
        WHEN 1 THEN to_jsonb(format('{"(%s,x)","(%s,\"y z\")"}', g, -g))
        ELSE jsonb_build_array(format('(%s,s)', g), jsonb_build_object('a', g)) END))
  FROM generate_series(1, 2000) g
UNION ALL
SELECT 'numeric', g, jsonb_build_object('typ', 'numeric', 'seq', g)
    || kv('num', varied(g, CASE g % 5
        WHEN 0 THEN to_jsonb(g * 1.5) WHEN 1 THEN to_jsonb(-g / 7.0) WHEN 2 THEN to_jsonb(g * 1e20)
        WHEN 3 THEN to_jsonb((g * 1.5)::text) ELSE to_jsonb(g * 0.0001) END))
  FROM generate_series(1, 2000) g
UNION ALL
SELECT c.grp, s.seq, jsonb_build_object('typ', c.grp, 'seq', s.seq) || kv(s.col, s.value)
  FROM specials s JOIN columns c USING (col);

-- per column: the items that name it, leave it out, give it JSON null
SELECT c.grp, c.col, count(*) FILTER (WHERE i.item ? c.col) AS named,
       count(*) FILTER (WHERE NOT i.item ? c.col) AS left_out,
       count(*) FILTER (WHERE i.item -> c.col = 'null') AS json_null
  FROM columns c JOIN items i ON i.typ = c.grp
 GROUP BY c.grp, c.col ORDER BY c.grp, c.col;

-- fire(path, group): fires the items of a group into a path's buffer in
-- one statement, each item computed as it is fired; on the waited path the
-- returned rows are kept
CREATE TABLE returned (typ text, seq int, row_returned jsonb);
CREATE FUNCTION forget(buffer text, item jsonb) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT NULL::jsonb FROM choreo_fire_forget(buffer, item) $$;
CREATE PROCEDURE fire(path text, grp text) LANGUAGE plpgsql AS $$
BEGIN
    IF path = 'waited' THEN
        INSERT INTO returned
        SELECT typ, seq, CASE WHEN seq % 10 = 0 THEN forget(path, item)
                              ELSE choreo_fire_and_wait(path, item) END
          FROM items WHERE typ = grp;
    ELSE
        PERFORM count(choreo_fire_forget(path, item)) FROM items WHERE typ = grp;
    END IF;
END $$;

-- compare(group): for each path, how many items were fired and rows
-- written, how many rows of the model are missing (not written, or not
-- exactly), how many written rows are not in the model, which columns
-- differ (looked for only when some do), and how many returned rows
-- differ from the stored ones
CREATE FUNCTION compare(grp text)
RETURNS TABLE (path text, items bigint, written bigint, missing bigint, unexpected bigint,
               wrong_columns text, wrong_returns bigint)
LANGUAGE sql SET jit = off AS $$
WITH model AS MATERIALIZED (
    SELECT i.seq, m::text AS r
      FROM items i, jsonb_populate_record((SELECT dflt FROM defaults dflt), i.item) m
     WHERE i.typ = grp),
stored AS MATERIALIZED (
    SELECT 'direct' AS path, seq, w::text AS r FROM direct w WHERE typ = grp
    UNION ALL SELECT 'planned', seq, w::text FROM planned w WHERE typ = grp
    UNION ALL SELECT 'waited', seq, w::text FROM waited w WHERE typ = grp),
stored_jsonb AS MATERIALIZED (      -- computed only if some row differs
    SELECT 'direct' AS path, seq, to_jsonb(w) AS j FROM direct w WHERE typ = grp
    UNION ALL SELECT 'planned', seq, to_jsonb(w) FROM planned w WHERE typ = grp
    UNION ALL SELECT 'waited', seq, to_jsonb(w) FROM waited w WHERE typ = grp),
counts AS (
    SELECT p.path, p.n,
           (SELECT count(*) FROM model) AS items,
           (SELECT count(*) FROM stored s WHERE s.path = p.path) AS written,
           (SELECT count(*) FROM (SELECT seq, r FROM model
                                  EXCEPT ALL SELECT seq, r FROM stored s WHERE s.path = p.path) x) AS missing,
           (SELECT count(*) FROM (SELECT seq, r FROM stored s WHERE s.path = p.path
                                  EXCEPT ALL SELECT seq, r FROM model) x) AS unexpected
      FROM unnest('{direct,planned,waited}'::text[]) WITH ORDINALITY p(path, n))
SELECT c.path, c.items, c.written, c.missing, c.unexpected,
       CASE WHEN c.missing + c.unexpected > 0 THEN
           (SELECT string_agg(DISTINCT x.key, ',' ORDER BY x.key)
              FROM (SELECT m.seq, e.key, e.value::text FROM model m, jsonb_each(to_jsonb(m.r::direct)) e
                     WHERE m.seq IN (SELECT s.seq FROM stored s WHERE s.path = c.path)
                    EXCEPT ALL
                    SELECT s.seq, e.key, e.value::text FROM stored_jsonb s, jsonb_each(s.j) e
                     WHERE s.path = c.path) x) END,
       CASE WHEN c.path = 'waited' THEN
           (SELECT count(*)
              FROM (SELECT seq, row_returned::text FROM returned WHERE typ = grp AND row_returned IS NOT NULL
                    EXCEPT ALL
                    SELECT seq, to_jsonb(w)::text FROM waited w WHERE typ = grp) x) END
  FROM counts c ORDER BY c.n
$$;

-- each group on each path: every count equal, nothing missing, nothing
-- unexpected, no wrong column, no wrong returned row
CALL fire('direct', 'numbers'); CALL fire('planned', 'numbers'); CALL fire('waited', 'numbers');
SELECT * FROM compare('numbers');
CALL fire('direct', 'strings'); CALL fire('planned', 'strings'); CALL fire('waited', 'strings');
SELECT * FROM compare('strings');
CALL fire('direct', 'scalars'); CALL fire('planned', 'scalars'); CALL fire('waited', 'scalars');
SELECT * FROM compare('scalars');
CALL fire('direct', 'structured'); CALL fire('planned', 'structured'); CALL fire('waited', 'structured');
SELECT * FROM compare('structured');

-- the huge values were written whole on each path, once each
SELECT path, count(*) FILTER (WHERE octet_length(t) = 1048576) AS text_1mb,
       count(*) FILTER (WHERE octet_length(by) = 1048576) AS bytea_1mb,
       count(*) FILTER (WHERE octet_length(jb::text) > 1048576) AS jsonb_1mb,
       count(*) FILTER (WHERE cardinality(ia) = 10000) AS int_10000,
       count(*) FILTER (WHERE cardinality(ta) = 10000) AS text_10000,
       count(*) FILTER (WHERE cardinality(ia2) = 10000) AS int_2d_10000,
       count(*) FILTER (WHERE cardinality(darr) = 10000) AS domain_10000,
       count(*) FILTER (WHERE cardinality(prs) = 10000) AS pair_10000
  FROM (SELECT 'direct' AS path, * FROM direct UNION ALL SELECT 'planned', * FROM planned
        UNION ALL SELECT 'waited', * FROM waited) w
 GROUP BY path ORDER BY path;

-- values that INSERT and jsonb_populate_record refuse raise the same error
-- when fired, and nothing of the statement is written: on each path, 25
-- good items (of the numbers group) fired first into a buffer of batches
-- of 10 (two batches written, 5 pending), then the bad one, in one
-- statement; "same" means the error of jsonb_populate_record, "rows" the
-- rows of the statement found afterwards in the same transaction
SELECT choreo_create_buffer(name || '_10', name::regclass, 10) FROM unnest('{direct,planned,waited}'::text[]) name;
CREATE FUNCTION refused(col text, value jsonb)
RETURNS TABLE (refused text, jsonb_populate_record text, direct text, planned text, waited text)
LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    label text := col || ' ' || left(value::text, 25);
    tag text := 'bad ' || label;
    bad jsonb := jsonb_build_object('typ', tag, 'seq', 0, col, value);
    expected text := err(format('SELECT jsonb_populate_record(dflt, %L) FROM defaults dflt', bad));
    path text;
    result text;
BEGIN
    refused := label;
    jsonb_populate_record := expected;
    FOREACH path IN ARRAY '{direct,planned,waited}'::text[] LOOP
        result := err(format('SELECT count(%s(%L, i)) FROM (SELECT item || jsonb_build_object(''typ'', %L) AS i
                                                               FROM items WHERE typ = ''numbers'' AND seq <= 25
                                                             UNION ALL SELECT %L) x',
                             CASE path WHEN 'waited' THEN 'choreo_fire_and_wait' ELSE 'forget' END,
                             path || '_10', tag, bad));
        IF result = expected THEN
            result := 'same';
        ELSE
            result := left(result, 80);
        END IF;
        EXECUTE format('SELECT %L || '' (rows: '' || count(*) || '')'' FROM %I WHERE typ = %L',
                       result, path, tag) INTO result;
        CASE path WHEN 'direct' THEN direct := result;
                  WHEN 'planned' THEN planned := result;
                  ELSE waited := result; END CASE;
    END LOOP;
    RETURN NEXT;
END $$;
\x on
SELECT * FROM refused('dnn', 'null');
SELECT * FROM refused('dchk', '0');
SELECT * FROM refused('dchk', '"-5"');
SELECT * FROM refused('i4', '"abc"');
SELECT * FROM refused('i4', '1.5');
SELECT * FROM refused('i4', '1.0');
SELECT * FROM refused('i4', '2147483648');
SELECT * FROM refused('i2', 'true');
SELECT * FROM refused('num', '""');
SELECT * FROM refused('num12', '999999999.9995');
SELECT * FROM refused('vc10', '"abcdefghijk"');
SELECT * FROM refused('ch', '"abcdef"');
SELECT * FROM refused('ia', '5');
SELECT * FROM refused('ia', '{"a": 1}');
SELECT * FROM refused('ia', '"{1,2"');
SELECT * FROM refused('ta', '5');
SELECT * FROM refused('ia2', '[[1, 2], [3]]');
SELECT * FROM refused('ia2', '[1, [2]]');
SELECT * FROM refused('darr', '7');
SELECT * FROM refused('darr', (SELECT ints || '1' FROM huge));
SELECT * FROM refused('pr', '{"a": "x"}');
SELECT * FROM refused('pr', '5');
SELECT * FROM refused('pr', '"(1)"');
SELECT * FROM refused('prs', '[5]');
SELECT * FROM refused('mo', '"meh"');
SELECT * FROM refused('u', '"not a uuid"');
SELECT * FROM refused('d', '"2023-02-29"');
SELECT * FROM refused('by', '"\\xabc"');
\x off

-- a transaction whose statement fails writes nothing, not even the batches
-- written before the error
BEGIN;
SELECT count(choreo_fire_forget('direct', item || '{"typ": "bad"}')) FROM items WHERE typ = 'numbers' AND seq <= 250;
SELECT count(choreo_fire_forget('planned', item || '{"typ": "bad"}')) FROM items WHERE typ = 'numbers' AND seq <= 250;
\set VERBOSITY terse
SELECT choreo_fire_forget('direct', '{"typ": "bad", "seq": 0, "dnn": null}');
COMMIT;
BEGIN;
SELECT count(choreo_fire_and_wait('waited', item || '{"typ": "bad"}')) FROM items WHERE typ = 'numbers' AND seq <= 250;
SELECT choreo_fire_and_wait('waited', '{"typ": "bad", "seq": 0, "ia": [[1, 2], [3]]}');
COMMIT;
\set VERBOSITY default

-- afterwards, no table has a row of any of the refused statements
SELECT 'direct' AS path, typ, count(*) FROM direct WHERE typ LIKE 'bad%' GROUP BY typ
UNION ALL SELECT 'planned', typ, count(*) FROM planned WHERE typ LIKE 'bad%' GROUP BY typ
UNION ALL SELECT 'waited', typ, count(*) FROM waited WHERE typ LIKE 'bad%' GROUP BY typ
ORDER BY 1, 2;

-- numeric without typmod, values computed per item (last: values that
-- pointed into the memory of items already freed were written wrong, or
-- crashed the server)
CALL fire('direct', 'numeric'); CALL fire('planned', 'numeric'); CALL fire('waited', 'numeric');
SELECT * FROM compare('numeric');

SELECT choreo_drop_buffer(name) FROM unnest('{direct,planned,waited,direct_10,planned_10,waited_10}'::text[]) name;
DROP VIEW items;
DROP TABLE direct, planned, waited, defaults, columns, huge, specials, returned;
DROP PROCEDURE fire(text, text);
DROP FUNCTION compare(text);
DROP FUNCTION refused(text, jsonb);
DROP FUNCTION forget(text, jsonb);
DROP FUNCTION kv(text, jsonb);
DROP FUNCTION varied(int, jsonb);
DROP FUNCTION no_op();
DROP DOMAIN plain_text, required_int, positive_int, int_list;
DROP TYPE mood, pair;
