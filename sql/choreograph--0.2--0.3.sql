/* choreograph--0.2--0.3.sql: failed hooks keep their SQLSTATE; hooks can be discarded */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION choreograph UPDATE TO '0.3'" to load this file. \quit

-- the SQLSTATE of a failed hook's last error, beside its message
ALTER TABLE choreograph.hooks ADD COLUMN last_sqlstate text;

DROP VIEW choreo_hooks;
CREATE VIEW choreo_hooks AS
    SELECT h.id, h.callback, h.role, h.payload,
           CASE WHEN h.id IN (SELECT choreograph.choreo_running_hooks()) THEN 'running'
                WHEN h.next_attempt_at IS NULL THEN 'failed'
                ELSE 'queued' END AS status,
           h.attempts, h.next_attempt_at, h.last_error, h.last_sqlstate, h.created_at
      FROM choreograph.hooks h
     WHERE pg_catalog.pg_has_role(h.role, 'USAGE')
     ORDER BY h.id;
GRANT SELECT ON choreo_hooks TO PUBLIC;
COMMENT ON VIEW choreo_hooks IS 'Post-commit hooks queued, running or failed, of the roles you have the privileges of';

CREATE FUNCTION choreo_discard_hook(id bigint)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_discard_hook' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_discard_hook(bigint)
    IS 'Removes a queued or failed post-commit hook without running it';
