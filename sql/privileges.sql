-- Privileges: who may define and change pipelines, and with whose rights
-- steps run.

CREATE ROLE regress_choreo_alice NOLOGIN;
CREATE ROLE regress_choreo_bob NOLOGIN;
CREATE ROLE regress_choreo_team NOLOGIN;
GRANT regress_choreo_team TO regress_choreo_bob;
-- pipelines belong to schemas, and creating one needs CREATE on its schema
-- (namespaces.sql has the details): these roles may create in public
GRANT CREATE ON SCHEMA public TO regress_choreo_alice, regress_choreo_bob, regress_choreo_team;

CREATE FUNCTION whoami() RETURNS text LANGUAGE sql AS $$ SELECT current_user::text $$;
CREATE TABLE secrets (v text);
INSERT INTO secrets VALUES ('the secret');
REVOKE ALL ON secrets FROM PUBLIC;
CREATE FUNCTION read_secret() RETURNS text LANGUAGE sql AS $$ SELECT v FROM secrets $$;
CREATE FUNCTION private_job() RETURNS text LANGUAGE sql AS $$ SELECT 'private' $$;
REVOKE EXECUTE ON FUNCTION private_job() FROM PUBLIC;

-- any role may create a pipeline, and owns it
SET ROLE regress_choreo_alice;
SELECT choreo_add_step('alice_flow', 'who', 'whoami()');
RESET ROLE;
SELECT name, owner FROM choreograph.pipelines WHERE name = 'alice_flow';

-- another role may run it (steps run as the caller), and read definitions
SET ROLE regress_choreo_bob;
SELECT choreo_run('alice_flow')->'bag';
SELECT pipeline, step FROM choreo_steps WHERE pipeline = 'alice_flow';
-- but not change it, through the functions or directly
SELECT err($$SELECT choreo_add_step('alice_flow', 'mine', 'whoami()')$$);
SELECT err($$SELECT choreo_remove_step('alice_flow', 'who')$$);
SELECT err($$SELECT choreo_drop_pipeline('alice_flow')$$);
SELECT err($$INSERT INTO choreograph.steps (namespace, pipeline, position, step, job)
              VALUES ('public', 'alice_flow', 2, 'mine', 'read_secret()')$$);
SELECT err($$UPDATE choreograph.steps SET job = 'read_secret()'$$);
SELECT err($$DELETE FROM choreograph.pipelines$$);
SELECT err($$TRUNCATE choreograph.steps$$);
RESET ROLE;
SELECT pipeline, position, step, job FROM choreo_steps WHERE pipeline = 'alice_flow';

-- members of the owning role may change it, and so may a superuser
SET ROLE regress_choreo_team;
SELECT choreo_add_step('team_flow', 'one', 'whoami()');
SET ROLE regress_choreo_bob;
SELECT choreo_add_step('team_flow', 'two', 'whoami()');
SELECT choreo_remove_step('team_flow', 'one');
RESET ROLE;
SELECT choreo_add_step('alice_flow', 'by_admin', 'whoami()');
SELECT pipeline, position, step FROM choreo_steps
 WHERE pipeline IN ('alice_flow', 'team_flow') ORDER BY 1, 2;

-- rows written directly, as pg_restore writes them: a role writes only its
-- own pipelines, in schemas where it may create, and steps of its own
-- pipelines; the other rows are skipped, with a warning, and what it may
-- write is checked as choreo_add_step checks it
CREATE SCHEMA no_create;
GRANT USAGE ON SCHEMA no_create TO PUBLIC;
CREATE FUNCTION priv_two_args(a int, b int) RETURNS int LANGUAGE sql AS $$ SELECT a + b $$;
SET ROLE regress_choreo_bob;
INSERT INTO choreograph.pipelines (namespace, name, owner)
VALUES ('public', 'bob_direct', 'regress_choreo_bob'),
       ('public', 'planted', 'regress_choreo_alice'),
       ('no_create', 'bob_elsewhere', 'regress_choreo_bob');
INSERT INTO choreograph.steps (namespace, pipeline, position, step, job)
VALUES ('public', 'bob_direct', 1, 'who', 'whoami()'),
       ('public', 'planted', 1, 'steal', 'read_secret()'),
       ('public', 'alice_flow', 3, 'steal', 'read_secret()');
SELECT err($$INSERT INTO choreograph.steps (namespace, pipeline, position, step, job)
              VALUES ('public', 'bob_direct', 2, 'bad', 'priv_two_args(int, int)')$$);
SELECT choreo_run('bob_direct')->'bag';
INSERT INTO choreograph.buffers (namespace, name, target, max_batch, owner)
VALUES ('public', 'planted', 'secrets', 10, 'regress_choreo_alice');
SELECT err($$INSERT INTO choreograph.buffers (namespace, name, target, max_batch, owner)
              VALUES ('public', 'bob_buffer', 'choreo_steps', 10, 'regress_choreo_bob')$$);
RESET ROLE;
SELECT schema, pipeline, position, step, job FROM choreo_steps
 WHERE pipeline IN ('bob_direct', 'planted', 'alice_flow', 'bob_elsewhere') ORDER BY 1, 2, 3;
SELECT count(*) AS planted FROM choreograph.pipelines WHERE name IN ('planted', 'bob_elsewhere');
SELECT count(*) AS planted FROM choreograph.buffers;
SELECT choreo_drop_pipeline('bob_direct');
DROP SCHEMA no_create;
DROP FUNCTION priv_two_args(int, int);

-- steps run with the caller's privileges: table rights
SELECT choreo_add_step('secret_flow', 'read', 'read_secret()');
SELECT choreo_run('secret_flow')->'bag';
SET ROLE regress_choreo_bob;
SELECT err($$SELECT choreo_run('secret_flow')$$);
RESET ROLE;

-- and EXECUTE rights on the step functions, checked again when grants
-- or role memberships change
SELECT choreo_add_step('private_flow', 'p', 'private_job()');
SET ROLE regress_choreo_bob;
SELECT err($$SELECT choreo_run('private_flow')$$);
SELECT err($$SELECT choreo_try_run('private_flow')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION private_job() TO regress_choreo_bob;
SET ROLE regress_choreo_bob;
SELECT choreo_run('private_flow')->'bag';
RESET ROLE;
REVOKE EXECUTE ON FUNCTION private_job() FROM regress_choreo_bob;
SET ROLE regress_choreo_bob;
SELECT err($$SELECT choreo_run('private_flow')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION private_job() TO regress_choreo_team;
SET ROLE regress_choreo_bob;
SELECT choreo_run('private_flow')->'bag';
RESET ROLE;
REVOKE regress_choreo_team FROM regress_choreo_bob;
SET ROLE regress_choreo_bob;
SELECT err($$SELECT choreo_run('private_flow')$$);
RESET ROLE;

-- the definition functions write with the tables' owner's rights, so they
-- resolve nothing through the caller's search_path: an operator planted
-- there is never called
CREATE SCHEMA trap;
CREATE TABLE trap_log (who text);
GRANT INSERT ON trap_log TO PUBLIC;
CREATE FUNCTION trap.text_eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.trap_log VALUES (current_user);
    RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = trap.text_eq);
GRANT USAGE ON SCHEMA trap TO PUBLIC;
SET search_path = trap, pg_catalog, public;
SELECT 'x'::text = 'x'::text AS planted_operator_works, count(*) AS calls FROM trap_log;
TRUNCATE trap_log;
SET ROLE regress_choreo_bob;
-- (qualified: trap, first in search_path, is where it would be created)
SELECT choreo_add_step('public.bob_flow', 'who', 'whoami()');
SELECT choreo_add_step('bob_flow', 'again', 'whoami()', NULL, 1);
SELECT choreo_run('bob_flow')->'bag';
SELECT choreo_remove_step('bob_flow', 'again');
SELECT choreo_drop_pipeline('bob_flow');
RESET search_path;
RESET ROLE;
SELECT count(*) AS planted_operator_calls FROM trap_log;
DROP SCHEMA trap CASCADE;
DROP TABLE trap_log;

-- a pipeline whose owner was dropped can still be dropped by a superuser
SET ROLE regress_choreo_alice;
SELECT choreo_add_step('orphan', 'who', 'whoami()');
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM regress_choreo_alice;
DROP ROLE regress_choreo_alice;
SET ROLE regress_choreo_bob;
SELECT err($$SELECT choreo_drop_pipeline('orphan')$$);
RESET ROLE;
SELECT choreo_drop_pipeline('orphan');

-- clean up
SELECT choreo_drop_pipeline(name) FROM choreograph.pipelines ORDER BY name;
DROP FUNCTION private_job();
REVOKE CREATE ON SCHEMA public FROM regress_choreo_bob, regress_choreo_team;
DROP ROLE regress_choreo_bob, regress_choreo_team;
