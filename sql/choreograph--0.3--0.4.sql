/* choreograph--0.3--0.4.sql: privilege isolation between roles */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION choreograph UPDATE TO '0.4'" to load this file. \quit

-- choreo_buffer_rows() answers only the extension's own INSERT, which
-- passes it the write's random key
DROP FUNCTION choreograph.choreo_buffer_rows();
CREATE FUNCTION choreograph.choreo_buffer_rows(key bigint) RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'choreo_buffer_rows' LANGUAGE C VOLATILE;

-- views over other roles' rows are security barriers: a function in a
-- caller's WHERE clause sees only the rows the view shows that caller
ALTER VIEW choreo_hooks SET (security_barrier = true);
ALTER VIEW choreo_steps SET (security_barrier = true);
ALTER VIEW choreo_buffers SET (security_barrier = true);

-- ---------------------------------------------------------------------------
-- Names belong to schemas (issue 8, item 6)
--
-- A pipeline or buffer now belongs to a schema, as a function does: its
-- identity is (namespace, name), a new one is created in the named schema or
-- the first of search_path by a role with CREATE on it, and an unqualified
-- name is looked up through search_path.  The schema is a regnamespace, so
-- that pg_dump writes it by name and a restore finds the new schema's OID.
-- Existing definitions go into public, where the default search_path finds
-- them by their old unqualified names (into the extension's schema if the
-- database has no public).

ALTER TABLE choreograph.pipelines ADD COLUMN namespace regnamespace;
ALTER TABLE choreograph.steps ADD COLUMN namespace regnamespace;
ALTER TABLE choreograph.buffers ADD COLUMN namespace regnamespace;
UPDATE choreograph.pipelines
   SET namespace = COALESCE(pg_catalog.to_regnamespace('public'), '@extschema@'::regnamespace);
UPDATE choreograph.steps
   SET namespace = COALESCE(pg_catalog.to_regnamespace('public'), '@extschema@'::regnamespace);
UPDATE choreograph.buffers
   SET namespace = COALESCE(pg_catalog.to_regnamespace('public'), '@extschema@'::regnamespace);
ALTER TABLE choreograph.pipelines ALTER COLUMN namespace SET NOT NULL;
ALTER TABLE choreograph.steps ALTER COLUMN namespace SET NOT NULL;
ALTER TABLE choreograph.buffers ALTER COLUMN namespace SET NOT NULL;

-- the keys gain the schema (the names are those the 0.1 and 0.2 scripts gave)
ALTER TABLE choreograph.steps DROP CONSTRAINT steps_pipeline_fkey,
                              DROP CONSTRAINT steps_pkey,
                              DROP CONSTRAINT steps_pipeline_position_key;
ALTER TABLE choreograph.pipelines DROP CONSTRAINT pipelines_pkey,
                                  ADD PRIMARY KEY (namespace, name);
ALTER TABLE choreograph.steps
    ADD PRIMARY KEY (namespace, pipeline, step),
    -- checked at the end of each statement, so positions can be shifted
    ADD UNIQUE (namespace, pipeline, position) DEFERRABLE INITIALLY IMMEDIATE,
    ADD FOREIGN KEY (namespace, pipeline) REFERENCES choreograph.pipelines (namespace, name)
        ON DELETE CASCADE;
ALTER TABLE choreograph.buffers DROP CONSTRAINT buffers_pkey,
                                ADD PRIMARY KEY (namespace, name);

-- the views get the schema as their last column: CREATE OR REPLACE keeps
-- views built on them and their grants.  It also sets the views' options
-- to those it names, so it names security_barrier, which this version gives
-- every view over other roles' rows (whichever runs first of this and the
-- ALTER VIEW that sets it)
CREATE OR REPLACE VIEW choreo_steps WITH (security_barrier = true) AS
    SELECT pipeline, position, step, precheck, job, namespace AS schema
      FROM choreograph.steps
     ORDER BY namespace::pg_catalog.text, pipeline, position;
CREATE OR REPLACE VIEW choreo_buffers WITH (security_barrier = true) AS
    SELECT name, target, max_batch, owner, namespace AS schema
      FROM choreograph.buffers
     ORDER BY namespace::pg_catalog.text, name;

-- A definition goes with its schema: DROP SCHEMA refuses while the schema
-- holds definitions, unless CASCADE, and whatever drops a schema (DROP
-- SCHEMA ... CASCADE, DROP OWNED, DROP EXTENSION) drops its definitions.
CREATE FUNCTION choreograph.choreo_schema_drop_check() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'choreo_schema_drop_check' LANGUAGE C;
CREATE FUNCTION choreograph.choreo_schemas_dropped() RETURNS event_trigger
    AS 'MODULE_PATHNAME', 'choreo_schemas_dropped' LANGUAGE C;
REVOKE ALL ON FUNCTION choreograph.choreo_schema_drop_check(),
                       choreograph.choreo_schemas_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER choreo_schema_drop_check ON ddl_command_start
    WHEN TAG IN ('DROP SCHEMA')
    EXECUTE FUNCTION choreograph.choreo_schema_drop_check();
CREATE EVENT TRIGGER choreo_schemas_dropped ON sql_drop
    WHEN TAG IN ('DROP SCHEMA', 'DROP OWNED', 'DROP EXTENSION')
    EXECUTE FUNCTION choreograph.choreo_schemas_dropped();

-- A definition whose schema is gone all the same (event triggers do not
-- fire in single-user mode) is never found, and pg_dump leaves it out
SELECT pg_catalog.pg_extension_config_dump('choreograph.pipelines',
    'WHERE namespace OPERATOR(pg_catalog.=) ANY (SELECT oid FROM pg_catalog.pg_namespace)');
SELECT pg_catalog.pg_extension_config_dump('choreograph.steps',
    'WHERE namespace OPERATOR(pg_catalog.=) ANY (SELECT oid FROM pg_catalog.pg_namespace)');
SELECT pg_catalog.pg_extension_config_dump('choreograph.buffers',
    'WHERE namespace OPERATOR(pg_catalog.=) ANY (SELECT oid FROM pg_catalog.pg_namespace)');

-- Names are now parsed as PostgreSQL parses qualified names: unquoted
-- identifiers fold to lower case, dots separate the schema, and names are
-- at most 63 bytes.  Say which names of an earlier version do not read back
-- as themselves: they must now be written in double quotes (and triggers
-- naming them unquoted created again), or, when too long, defined again.
DO $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT kind, name FROM (
            SELECT 'pipeline' AS kind, name FROM choreograph.pipelines
            UNION ALL
            SELECT 'buffer', name FROM choreograph.buffers) AS definitions
         WHERE name OPERATOR(pg_catalog.<>) pg_catalog.lower(name)
            OR name OPERATOR(pg_catalog.~) '[.[:space:]]' OR name OPERATOR(pg_catalog.~~) '"%'
            OR pg_catalog.octet_length(name) OPERATOR(pg_catalog.>) 63
         ORDER BY 1, 2
    LOOP
        IF pg_catalog.octet_length(d.name) OPERATOR(pg_catalog.>) 63 THEN
            RAISE WARNING '% "%" can no longer be named', d.kind, d.name
                USING DETAIL = 'Names are now at most 63 bytes long, as PostgreSQL''s identifiers are.',
                      HINT = pg_catalog.format('Delete it from choreograph.%ss and define it again under a shorter name.', d.kind);
        ELSE
            RAISE WARNING '% "%" must now be named in double quotes, as %', d.kind, d.name,
                                                                          pg_catalog.quote_literal(pg_catalog.quote_ident(d.name))
                USING DETAIL = 'Names are now read as PostgreSQL reads qualified names: unquoted, they are folded to lower case and a dot separates the schema.',
                      HINT = 'Triggers calling choreo_trigger or choreo_capture with this name must be created again with the quoted name.';
        END IF;
    END LOOP;
END $$;

-- ---------------------------------------------------------------------------
-- Dump and restore by a database owner (issue 8, item 7)
--
-- pg_restore writes the extension's configuration tables with COPY, as the
-- restoring role.  Any role may now insert into them, and a row trigger lets
-- through only what the role could have written through the functions: a
-- row of a role whose privileges it does not have (a definition's owner, a
-- hook's role) or a definition in a schema where it may not create is
-- skipped, with a warning at the end of the statement (for each hook: the
-- outbox has no statement triggers, which every registration would pay
-- for); the rest is checked as the functions check it.  Superusers and the tables' owner are not
-- checked (row_guard.c says why this is not row-level security).
GRANT INSERT ON choreograph.pipelines, choreograph.steps, choreograph.buffers,
                choreograph.hooks TO PUBLIC;
CREATE FUNCTION choreograph.choreo_guard_row() RETURNS trigger
    AS 'MODULE_PATHNAME', 'choreo_guard_row' LANGUAGE C;
CREATE FUNCTION choreograph.choreo_guard_statement() RETURNS trigger
    AS 'MODULE_PATHNAME', 'choreo_guard_statement' LANGUAGE C;
REVOKE ALL ON FUNCTION choreograph.choreo_guard_row(),
                       choreograph.choreo_guard_statement() FROM PUBLIC;
CREATE TRIGGER guard BEFORE INSERT ON choreograph.pipelines
    FOR EACH ROW EXECUTE FUNCTION choreograph.choreo_guard_row('pipelines');
CREATE TRIGGER guard BEFORE INSERT ON choreograph.steps
    FOR EACH ROW EXECUTE FUNCTION choreograph.choreo_guard_row('steps');
CREATE TRIGGER guard BEFORE INSERT ON choreograph.buffers
    FOR EACH ROW EXECUTE FUNCTION choreograph.choreo_guard_row('buffers');
CREATE TRIGGER guard BEFORE INSERT ON choreograph.hooks
    FOR EACH ROW EXECUTE FUNCTION choreograph.choreo_guard_row('hooks');
CREATE TRIGGER guard_begin BEFORE INSERT ON choreograph.pipelines
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_guard_statement();
CREATE TRIGGER guard_begin BEFORE INSERT ON choreograph.steps
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_guard_statement();
CREATE TRIGGER guard_begin BEFORE INSERT ON choreograph.buffers
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_guard_statement();
CREATE TRIGGER guard_end AFTER INSERT ON choreograph.pipelines
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_guard_statement();
CREATE TRIGGER guard_end AFTER INSERT ON choreograph.steps
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_guard_statement();
CREATE TRIGGER guard_end AFTER INSERT ON choreograph.buffers
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_guard_statement();

-- pg_dump reads the outbox's sequence, a restore sets it: the database
-- owner may do both.  (The outbox itself holds other roles' payloads, which
-- only a superuser may read: a database owner dumps with
-- --exclude-table-data=choreograph.hooks.)
GRANT SELECT, UPDATE ON SEQUENCE choreograph.hooks_id_seq TO pg_database_owner;

-- No comment on the extension: a restore by anyone but a superuser fails
-- at COMMENT ON EXTENSION (only the extension's owner may comment it),
-- which stops pg_restore --exit-on-error before any data
COMMENT ON EXTENSION choreograph IS NULL;
