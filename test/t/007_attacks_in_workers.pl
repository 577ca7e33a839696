# The attacks of issue 8 that crashed the server or made a plain role a
# superuser (and one found in review: PL/pgSQL's cache of compiled
# functions, which a session reset cannot clear; and a pipeline name
# claimed in advance), run where they did most harm: inside post-commit hooks, with
# the hooks of a superuser and two plain roles interleaved in the one
# worker (choreograph.max_workers = 1), so that each hook runs right after
# another role's in the same worker session.  Each attack must fail with
# its SQLSTATE, recorded beside the hook; the server must not restart; no
# plain role may end up a superuser; and the hooks around the attacks run.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('attacks');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 1
choreograph.hook_max_attempts = 1
restart_after_crash = on
});
$node->start;
my $started = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');

$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
CREATE ROLE alice;
CREATE ROLE bob;
-- what every hook did, in order: the role it ran as, whether that role
-- was a superuser when it ran, and what the session says of itself
CREATE TABLE seen (id serial, hook text, who text, super boolean, session text);
GRANT INSERT ON seen TO PUBLIC;
GRANT USAGE ON seen_id_seq TO PUBLIC;
CREATE FUNCTION note(p jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO seen (hook, who, super, session)
    SELECT p->>'hook', current_user, rolsuper,
           session_user || ' is_superuser=' || current_setting('is_superuser')
      FROM pg_roles WHERE rolname = current_user
$$;

-- 1. the superuser maintains alice's table, whose index expression tries
-- to queue a pre-commit hook that would plant a search_path in the
-- worker's session; the superuser's next hook then writes into "audit"
-- without a schema, which alice prepared in schema "planted" with a
-- trigger that makes her a superuser
CREATE SCHEMA planted AUTHORIZATION alice;
CREATE TABLE audit (entry text);
CREATE FUNCTION maintain_alices_table() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('attack.armed', 'on', true);
    REINDEX TABLE planted.alice_table;
END $$;
CREATE FUNCTION write_audit(p jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO audit VALUES (p->>'entry')
$$;
SET ROLE alice;
CREATE FUNCTION planted.plant() RETURNS void LANGUAGE sql
    AS $$ SELECT set_config('search_path', 'planted, public', false) $$;
CREATE FUNCTION planted.queue_plant(a int) RETURNS int LANGUAGE plpgsql IMMUTABLE
    SET search_path = public AS $$
BEGIN
    -- armed only in the superuser's hook (alice's own CREATE INDEX is
    -- restricted too)
    IF current_setting('attack.armed', true) = 'on' THEN
        PERFORM choreo_pre_commit('planted.plant()');
    END IF;
    RETURN a;
END $$;
CREATE TABLE planted.audit (entry text);
CREATE FUNCTION planted.promote() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    ALTER ROLE alice SUPERUSER;
    RETURN NEW;
END $$;
CREATE TRIGGER promote BEFORE INSERT ON planted.audit
    FOR EACH ROW EXECUTE FUNCTION planted.promote();
GRANT USAGE ON SCHEMA planted TO PUBLIC;
GRANT INSERT ON planted.audit TO PUBLIC;
RESET ROLE;
CREATE TABLE planted.alice_table (a int);
ALTER TABLE planted.alice_table OWNER TO alice;
INSERT INTO planted.alice_table VALUES (1);
SET ROLE alice;
CREATE INDEX ON planted.alice_table ((planted.queue_plant(a)));
RESET ROLE;

-- 2. bob fires into a buffer on alice's table, whose BEFORE trigger reads
-- the rows of the write with types of its own choosing (this once returned
-- server addresses, or crashed the server)
CREATE TABLE alice_inbox (secret text, amount numeric);
ALTER TABLE alice_inbox OWNER TO alice;
SET ROLE alice;
GRANT INSERT ON alice_inbox TO bob;
CREATE FUNCTION planted.peek() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM * FROM choreograph.choreo_buffer_rows(0) AS r(secret bigint, amount text);
    RETURN NEW;
END $$;
CREATE TRIGGER peek BEFORE INSERT ON alice_inbox FOR EACH ROW EXECUTE FUNCTION planted.peek();
RESET ROLE;
SELECT choreo_create_buffer('inbox', 'alice_inbox');
-- 3. alice calls the superuser's hook function first, in the worker, with
-- a schema of her own ahead of pg_catalog: PL/pgSQL compiles it once per
-- process, so its "text" variable would be her domain, whose check makes
-- her a superuser when the superuser's hook runs there
CREATE SCHEMA ops;
GRANT USAGE ON SCHEMA ops TO PUBLIC;
CREATE TABLE ops.log (msg text);
CREATE FUNCTION ops.su_hook(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    msg text;
BEGIN
    msg := p->>'m';
    INSERT INTO ops.log VALUES (msg);
END $$;
SET ROLE alice;
CREATE FUNCTION planted.pwn(v pg_catalog.text) RETURNS pg_catalog.bool LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE alice SUPERUSER';
    END IF;
    RETURN true;
END $$;
CREATE DOMAIN planted.text AS pg_catalog.text CHECK (planted.pwn(VALUE));
CREATE FUNCTION planted.prime(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'planted, pg_catalog', true);
    BEGIN
        PERFORM ops.su_hook(NULL);
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
END $$;
RESET ROLE;

-- 4. the superuser's trigger names a pipeline not defined yet; alice's
-- hook tries to claim the name (and has a pipeline of that name in her own
-- schema, which the superuser's search_path does not reach); the
-- superuser's hook then inserts a row
CREATE TABLE invoices (id int);
CREATE TRIGGER invoice_flow AFTER INSERT ON invoices
    FOR EACH ROW EXECUTE FUNCTION choreo_trigger('invoice_flow');
CREATE FUNCTION insert_invoice() RETURNS void LANGUAGE sql AS $$
    INSERT INTO invoices VALUES (1)
$$;
SET ROLE alice;
CREATE FUNCTION planted.promote_step(i jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE alice SUPERUSER';
    END IF;
END $$;
SELECT choreo_add_step('planted.invoice_flow', 'pwn', 'planted.promote_step(jsonb)');
CREATE FUNCTION planted.claim_name() RETURNS void LANGUAGE sql AS $$
    SELECT choreo_add_step('invoice_flow', 'pwn', 'planted.promote_step(jsonb)')
$$;
RESET ROLE;

CREATE FUNCTION fire_secrets(p jsonb) RETURNS void LANGUAGE sql AS $$
    SELECT choreo_fire_forget('inbox', jsonb_build_object('secret', 'bob''s secret', 'amount', g))
      FROM generate_series(1, 2000) AS g;
    SELECT choreo_flush('inbox');
$$;
});

# One transaction registers every hook, switching roles, so that they run
# in this order in the one worker; "note" hooks of each role sit between
# the attacks.
$node->safe_psql('postgres', q{
BEGIN;
SET ROLE alice;
SELECT choreo_post_commit('note(jsonb)', '{"hook": "alice before"}');
RESET ROLE;
SELECT choreo_post_commit('maintain_alices_table()');
SELECT choreo_post_commit('write_audit(jsonb)', '{"entry": "after maintenance"}');
SELECT choreo_post_commit('note(jsonb)', '{"hook": "superuser after maintenance"}');
SET ROLE bob;
SELECT choreo_post_commit('fire_secrets(jsonb)');
SELECT choreo_post_commit('note(jsonb)', '{"hook": "bob after firing"}');
RESET ROLE;
SET ROLE alice;
SELECT choreo_post_commit('note(jsonb)', '{"hook": "alice after"}');
SELECT choreo_post_commit('planted.prime(jsonb)');
RESET ROLE;
SELECT choreo_post_commit('ops.su_hook(jsonb)', '{"m": "the superuser''s hook"}');
SET ROLE alice;
SELECT choreo_post_commit('planted.claim_name()');
RESET ROLE;
SELECT choreo_post_commit('insert_invoice()');
SELECT choreo_post_commit('note(jsonb)', '{"hook": "superuser at the end"}');
COMMIT;
});

$node->poll_query_until('postgres',
	q{SELECT NOT EXISTS (SELECT FROM choreo_hooks WHERE status <> 'failed')})
  or die 'the hooks did not all run; the outbox shows: '
  . $node->safe_psql('postgres', 'SELECT callback, role, status, last_error FROM choreo_hooks');

is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $started,
	'the server never restarted');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}), 'f',
	'alice is not a superuser');
is( $node->safe_psql('postgres',
		q{SELECT callback, role, last_sqlstate FROM choreo_hooks ORDER BY id}),
	"maintain_alices_table()|$superuser|42501\nfire_secrets(jsonb)|bob|42501\n"
	  . "planted.claim_name()|alice|42501\ninsert_invoice()|$superuser|42704",
	'the attacks failed with 42501, the insert for want of its pipeline (42704), and nothing else failed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM invoices}), '0',
	"the superuser's insert was rolled back: no pipeline of that name on its path");
is($node->safe_psql('postgres', q{SELECT entry FROM public.audit}), 'after maintenance',
	"the superuser's next hook wrote into public.audit");
is($node->safe_psql('postgres', q{SELECT count(*) FROM planted.audit}), '0',
	"nothing was written into alice's planted table");
is($node->safe_psql('postgres', q{SELECT count(*) FROM alice_inbox}), '0',
	"nothing of bob's failed hook was written");
is( $node->safe_psql('postgres', q{SELECT string_agg(hook || ':' || who || ':' || super, ', ' ORDER BY id) FROM seen}),
	"alice before:alice:false, superuser after maintenance:$superuser:true, "
	  . 'bob after firing:bob:false, alice after:alice:false, '
	  . "superuser at the end:$superuser:true",
	'every other hook ran, in order, as its role');
is($node->safe_psql('postgres', q{SELECT msg FROM ops.log}), "the superuser's hook",
	"the superuser's hook ran with its own types");
is( $node->safe_psql('postgres',
		q{SELECT string_agg(DISTINCT who || ': ' || session, ', ') FROM seen}),
	"alice: alice is_superuser=off, bob: bob is_superuser=off, $superuser: $superuser is_superuser=on",
	'session_user and is_superuser tell the role a hook runs as');

# The worker handed over to successors at each change of role above; after
# a crash (the worker killed: the postmaster restarts every process) the
# one worker is back, and still runs the hooks of several roles, in order.
# The hooks above committed without waiting for the disk
# (choreograph.hook_synchronous_commit is off): those whose commit was not
# yet flushed when the worker is killed are lost with their outbox rows
# and run again after the restart (docs/hooks.md), in among the hooks
# checked below.  A checkpoint flushes them first: this part checks the
# hooks registered after the crash, and only those.
$node->safe_psql('postgres', 'CHECKPOINT');
my $worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'choreograph worker'});
my $log_offset = -s $node->logfile;
kill 'KILL', $worker;
# until the postmaster has noticed and ended every process, a connection
# (the poll's, or the next statement's) may be cut
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'choreograph worker'})
  or die 'no worker came back after the crash';
$node->safe_psql('postgres', q{
TRUNCATE seen;
BEGIN;
SET ROLE alice;
SELECT choreo_post_commit('note(jsonb)', '{"hook": "alice after the crash"}');
SET ROLE bob;
SELECT choreo_post_commit('note(jsonb)', '{"hook": "bob after the crash"}');
SET ROLE alice;
SELECT choreo_post_commit('note(jsonb)', '{"hook": "alice again"}');
RESET ROLE;
COMMIT;
});
$node->poll_query_until('postgres', q{SELECT count(*) = 3 FROM seen})
  or die 'the hooks registered after the crash did not run';
is($node->safe_psql('postgres', q{SELECT string_agg(hook || ':' || who, ', ' ORDER BY id) FROM seen}),
	'alice after the crash:alice, bob after the crash:bob, alice again:alice',
	'after a crash, the worker and its successors run every role\'s hooks in order');

$node->stop;
done_testing();
