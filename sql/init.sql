-- Installs the extension and the helpers the other regression files use.
CREATE EXTENSION choreograph;

-- the functions and view are reachable without a schema prefix
SELECT p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proname LIKE 'choreo%' AND n.nspname = 'public'
 ORDER BY 1;
SELECT count(*) FROM choreo_steps;

-- err(sql): runs a statement and shows the SQLSTATE and message of its error
CREATE FUNCTION err(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- a table the step functions of the tests write to
CREATE TABLE journal (id serial PRIMARY KEY, entry text NOT NULL);
CREATE FUNCTION note(entry text) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO journal (entry) VALUES (entry) $$;
CREATE FUNCTION journal_entries() RETURNS text LANGUAGE sql
    AS $$ SELECT coalesce(string_agg(entry, ', ' ORDER BY id), '') FROM journal $$;
