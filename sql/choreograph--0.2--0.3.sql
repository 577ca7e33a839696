/* choreograph--0.2--0.3.sql: failed hooks keep their SQLSTATE; hooks can be discarded */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION choreograph UPDATE TO '0.3'" to load this file. \quit

-- the SQLSTATE of a failed hook's last error, beside its message
ALTER TABLE choreograph.hooks ADD COLUMN last_sqlstate text;

-- the view gets it as its last column: CREATE OR REPLACE keeps the view
-- (views built on it, its grants), which a DROP and CREATE would not
CREATE OR REPLACE VIEW choreo_hooks AS
    SELECT h.id, h.callback, h.role, h.payload,
           CASE WHEN h.id IN (SELECT choreograph.choreo_running_hooks()) THEN 'running'
                WHEN h.next_attempt_at IS NULL THEN 'failed'
                ELSE 'queued' END AS status,
           h.attempts, h.next_attempt_at, h.last_error, h.created_at, h.last_sqlstate
      FROM choreograph.hooks h
     WHERE pg_catalog.pg_has_role(h.role, 'USAGE')
     ORDER BY h.id;

CREATE FUNCTION choreo_discard_hook(id bigint)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_discard_hook' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_discard_hook(bigint)
    IS 'Removes a queued or failed post-commit hook without running it';
