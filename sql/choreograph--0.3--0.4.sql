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
