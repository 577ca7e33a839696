/* choreograph--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION choreograph" to load this file. \quit

-- Internal tables live in their own schema.  Everyone may read them; only
-- their owner (the role that created the extension) may write them, which
-- the choreo_* functions do on the caller's behalf after checking rights.
CREATE SCHEMA choreograph;
GRANT USAGE ON SCHEMA choreograph TO PUBLIC;

CREATE TABLE choreograph.pipelines (
    name        text PRIMARY KEY CHECK (name <> ''),
    owner       regrole NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE choreograph.steps (
    pipeline    text NOT NULL REFERENCES choreograph.pipelines (name) ON DELETE CASCADE,
    position    int NOT NULL CHECK (position > 0),
    step        text NOT NULL CHECK (step <> ''),
    precheck    regprocedure,
    job         regprocedure NOT NULL,
    PRIMARY KEY (pipeline, step),
    -- checked at the end of each statement, so positions can be shifted
    UNIQUE (pipeline, position) DEFERRABLE INITIALLY IMMEDIATE
);

COMMENT ON TABLE choreograph.pipelines IS 'choreograph: pipelines and their owners';
COMMENT ON TABLE choreograph.steps IS 'choreograph: the steps of each pipeline, in order';

REVOKE ALL ON choreograph.pipelines, choreograph.steps FROM PUBLIC;
GRANT SELECT ON choreograph.pipelines, choreograph.steps TO PUBLIC;

-- definitions are user data: pg_dump keeps them
SELECT pg_catalog.pg_extension_config_dump('choreograph.pipelines', '');
SELECT pg_catalog.pg_extension_config_dump('choreograph.steps', '');

-- every change to the definitions, however made, invalidates the
-- per-backend caches of definitions
CREATE FUNCTION choreograph.choreo_definitions_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'choreo_definitions_changed' LANGUAGE C;
REVOKE ALL ON FUNCTION choreograph.choreo_definitions_changed() FROM PUBLIC;

CREATE TRIGGER definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON choreograph.pipelines
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_definitions_changed();
CREATE TRIGGER definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON choreograph.steps
    FOR EACH STATEMENT EXECUTE FUNCTION choreograph.choreo_definitions_changed();

CREATE VIEW choreo_steps AS
    SELECT pipeline, position, step, precheck, job
      FROM choreograph.steps
     ORDER BY pipeline, position;
GRANT SELECT ON choreo_steps TO PUBLIC;
COMMENT ON VIEW choreo_steps IS 'The steps of every pipeline, in order';

-- Defining pipelines

CREATE FUNCTION choreo_add_step(pipeline text, step text, job regprocedure,
                                precheck regprocedure DEFAULT NULL,
                                "position" int DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_add_step' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_add_step(text, text, regprocedure, regprocedure, int)
    IS 'Adds a step to a pipeline (creating it), at the end or at a 1-based position';

CREATE FUNCTION choreo_remove_step(pipeline text, step text)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_remove_step' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_remove_step(text, text) IS 'Removes a step from a pipeline';

CREATE FUNCTION choreo_drop_pipeline(pipeline text)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_drop_pipeline' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_drop_pipeline(text) IS 'Drops a pipeline and its steps';

-- Running pipelines

CREATE FUNCTION choreo_run(pipeline text)
    RETURNS jsonb AS 'MODULE_PATHNAME', 'choreo_run' LANGUAGE C VOLATILE;
CREATE FUNCTION choreo_run(pipeline text, input anyelement)
    RETURNS jsonb AS 'MODULE_PATHNAME', 'choreo_run' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_run(text) IS 'Runs a pipeline in the caller''s transaction; step errors are raised';
COMMENT ON FUNCTION choreo_run(text, anyelement) IS 'Runs a pipeline on an input in the caller''s transaction; step errors are raised';

CREATE FUNCTION choreo_try_run(pipeline text)
    RETURNS jsonb AS 'MODULE_PATHNAME', 'choreo_try_run' LANGUAGE C VOLATILE;
CREATE FUNCTION choreo_try_run(pipeline text, input anyelement)
    RETURNS jsonb AS 'MODULE_PATHNAME', 'choreo_try_run' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_try_run(text) IS 'Runs a pipeline; a failing step is reported, not raised';
COMMENT ON FUNCTION choreo_try_run(text, anyelement) IS 'Runs a pipeline on an input; a failing step is reported, not raised';

CREATE FUNCTION choreo_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'choreo_trigger' LANGUAGE C;
COMMENT ON FUNCTION choreo_trigger() IS 'Row trigger running the pipeline named by its argument';

-- Inside a running step

CREATE FUNCTION choreo_cancel(message text DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_cancel' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_cancel(text) IS 'Cancels the running pipeline (SQLSTATE CH001)';

CREATE FUNCTION choreo_skip(data jsonb DEFAULT NULL, message text DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'choreo_skip' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_skip(jsonb, text) IS 'From a precheck: skips its job, keeping data (SQLSTATE CH002)';

CREATE FUNCTION choreo_bag() RETURNS jsonb
    AS 'MODULE_PATHNAME', 'choreo_bag' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_bag() IS 'The data bag of the running pipeline (or of the last run)';

CREATE FUNCTION choreo_precheck_data(step text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'choreo_precheck_data' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_precheck_data(text) IS 'What a step''s precheck returned in the running (or last) run';

CREATE FUNCTION choreo_job_data(step text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'choreo_job_data' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION choreo_job_data(text) IS 'What a step''s job returned in the running (or last) run';

CREATE FUNCTION choreo_errors()
    RETURNS TABLE (step text, phase text, sqlstate text, message text)
    AS 'MODULE_PATHNAME', 'choreo_errors' LANGUAGE C VOLATILE ROWS 4;
COMMENT ON FUNCTION choreo_errors() IS 'The error stack of the running pipeline (or of the last run)';
