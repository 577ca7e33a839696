/* choreograph--0.1--0.2.sql: commit hooks and batched buffers */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION choreograph UPDATE TO '0.2'" to load this file. \quit

-- Post-commit hooks: the outbox.  A row is written by the registering
-- transaction and deleted by the worker in the transaction that runs the
-- hook.  next_attempt_at is NULL once the hook has failed for good.
CREATE TABLE choreograph.hooks (
    id              bigserial PRIMARY KEY,
    txid            bigint NOT NULL,
    callback        regprocedure NOT NULL,
    role            regrole NOT NULL,
    payload         jsonb,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- the workers look hooks up by id (the primary key, also their order) and
-- by transaction; each index more is paid by every registration
CREATE INDEX hooks_transaction ON choreograph.hooks (txid, id);
COMMENT ON TABLE choreograph.hooks IS 'choreograph: post-commit hooks waiting to run, or failed';

-- pending hooks are user data: a restored database still runs them
SELECT pg_catalog.pg_extension_config_dump('choreograph.hooks', '');
SELECT pg_catalog.pg_extension_config_dump('choreograph.hooks_id_seq', '');

-- Buffers: definitions, like pipelines'
CREATE TABLE choreograph.buffers (
    name        text PRIMARY KEY CHECK (name <> ''),
    target      regclass NOT NULL,
    max_batch   int NOT NULL CHECK (max_batch BETWEEN 1 AND 100000),
    owner       regrole NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE choreograph.buffers IS 'choreograph: batched buffers and their target tables';
SELECT pg_catalog.pg_extension_config_dump('choreograph.buffers', '');

REVOKE ALL ON choreograph.hooks, choreograph.buffers FROM PUBLIC;
GRANT SELECT ON choreograph.buffers TO PUBLIC;
REVOKE ALL ON SEQUENCE choreograph.hooks_id_seq FROM PUBLIC;

CREATE TRIGGER definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON choreograph.buffers
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_definitions_changed();

-- Commit hooks

CREATE FUNCTION choreo_pre_commit(callback regprocedure, payload jsonb DEFAULT NULL,
                                  on_error text DEFAULT 'abort', key text DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_pre_commit' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_pre_commit(regprocedure, jsonb, text, text)
    IS 'Runs a function when the transaction commits, inside it, as the calling role';

CREATE FUNCTION choreo_post_commit(callback regprocedure, payload jsonb DEFAULT NULL,
                                   key text DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_post_commit' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_post_commit(regprocedure, jsonb, text)
    IS 'Runs a function after the transaction commits, in a background worker, as the calling role';

CREATE FUNCTION choreo_retry_hook(id bigint)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_retry_hook' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_retry_hook(bigint) IS 'Queues a failed post-commit hook again';

CREATE FUNCTION choreograph.choreo_running_hooks() RETURNS SETOF bigint
    AS 'MODULE_PATHNAME', 'choreo_running_hooks' LANGUAGE C VOLATILE;

-- what a role may see: the hooks of the roles whose privileges it has
CREATE VIEW choreo_hooks AS
    SELECT h.id, h.callback, h.role, h.payload,
           CASE WHEN h.id IN (SELECT choreograph.choreo_running_hooks()) THEN 'running'
                WHEN h.next_attempt_at IS NULL THEN 'failed'
                ELSE 'queued' END AS status,
           h.attempts, h.next_attempt_at, h.last_error, h.created_at
      FROM choreograph.hooks h
     WHERE pg_catalog.pg_has_role(h.role, 'USAGE')
     ORDER BY h.id;
GRANT SELECT ON choreo_hooks TO PUBLIC;
COMMENT ON VIEW choreo_hooks IS 'Post-commit hooks queued, running or failed, of the roles you have the privileges of';

-- Buffers

CREATE FUNCTION choreo_create_buffer(name text, target regclass, max_batch int DEFAULT 1000)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_create_buffer' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_create_buffer(text, regclass, int)
    IS 'Defines a buffer that writes items into a table in batches';

CREATE FUNCTION choreo_drop_buffer(name text)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_drop_buffer' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_drop_buffer(text) IS 'Drops a buffer''s definition';

CREATE FUNCTION choreo_fire_forget(buffer text, item jsonb)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_fire_forget' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_fire_forget(text, jsonb)
    IS 'Keeps an item (a JSON object of column values) to be written in a batch';

CREATE FUNCTION choreo_fire_and_wait(buffer text, item jsonb)
    RETURNS jsonb AS 'MODULE_PATHNAME', 'choreo_fire_and_wait' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_fire_and_wait(text, jsonb)
    IS 'Writes the buffer''s pending items, then this one; returns the row written';

CREATE FUNCTION choreo_flush(buffer text DEFAULT NULL)
    RETURNS bigint AS 'MODULE_PATHNAME', 'choreo_flush' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_flush(text) IS 'Writes the pending items of a buffer (or all); returns how many';

CREATE FUNCTION choreo_capture() RETURNS trigger
    AS 'MODULE_PATHNAME', 'choreo_capture' LANGUAGE C;
COMMENT ON FUNCTION choreo_capture()
    IS 'Row trigger firing an item per row, the change''s envelope in a jsonb column, into a buffer';

CREATE VIEW choreo_buffers AS
    SELECT name, target, max_batch, owner FROM choreograph.buffers ORDER BY name;
GRANT SELECT ON choreo_buffers TO PUBLIC;
COMMENT ON VIEW choreo_buffers IS 'Buffers and their target tables';

-- the rows of a buffer's batch, read by the extension's own INSERTs (it
-- returns nothing when called otherwise); the firing role executes them
CREATE FUNCTION choreograph.choreo_buffer_rows() RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'choreo_buffer_rows' LANGUAGE C VOLATILE;

-- the outbox is a queue: every row is deleted soon after it is written, so
-- vacuum it after a fixed number of dead rows, not a fraction of the table
ALTER TABLE choreograph.hooks SET (autovacuum_vacuum_scale_factor = 0,
                                   autovacuum_vacuum_threshold = 5000,
                                   autovacuum_analyze_scale_factor = 0,
                                   autovacuum_analyze_threshold = 5000);
