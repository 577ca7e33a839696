# Post-commit hooks of different roles share the workers' sessions: with a
# single worker, every hook below runs in the same session, right after a
# hook of another role.  Each "leaving" hook leaves every kind of session
# state it can (temporary table, trigger, function and operator; prepared
# statements; session advisory locks; session-level settings, a custom one
# included; cursors WITH HOLD; LISTEN; currval/lastval; the seed of
# random(); the bag and error
# stack of a pipeline run), in its body and in a pre-commit hook it
# registers (which runs at its commit, in the worker); the next hook, of
# another role, records what it sees, and must see a fresh session.  A
# hook that leaves state and then fails must leave nothing either.
#
# The escalation this guards against: a plain role's hook created a
# temporary table named like one a superuser's hook writes without a
# schema (pg_temp is searched first for relations), with a trigger; the
# superuser's next hook wrote into it and fired the trigger as superuser,
# which made the plain role a superuser.  And what a hook queues for its
# commit (a WITH HOLD cursor's query, a deferred trigger) runs as the
# hook's role, never as the worker's superuser.
#
# Nothing here is timed; the one wait has the TAP modules' bound.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('isolation');
$node->init;
# one worker: every hook runs in the same session; a failing hook fails
# for good at once, so the hooks after it run at once too
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 1
choreograph.hook_max_attempts = 1
});
$node->start;
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');

$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
CREATE ROLE alice;
CREATE ROLE bob;
GRANT CREATE ON SCHEMA public TO alice, bob;

-- what each hook saw, and as whom queued work ran
CREATE TABLE seen (label text, kind text, value text);
GRANT INSERT, SELECT ON seen TO PUBLIC;
-- the table the superuser's hook writes without a schema
CREATE TABLE audit (what text);
CREATE SEQUENCE counter;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE counter TO PUBLIC;

-- records as whom it runs (volatile: a cursor runs it when materialized)
CREATE FUNCTION note_user(label text, kind text) RETURNS int LANGUAGE sql AS $$
    INSERT INTO public.seen VALUES (label, kind, current_user::text);
    SELECT 1
$$;
-- a deferred trigger, fired when the inserting transaction commits
CREATE TABLE deferred (who text);
GRANT INSERT ON deferred TO PUBLIC;
CREATE FUNCTION note_deferred() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.note_user(NEW.who, 'deferred trigger ran as');
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER note_deferred AFTER INSERT ON deferred
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note_deferred();

-- a pipeline whose bag and error stack hold a token from its input
CREATE FUNCTION keep_token(p jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT p $$;
CREATE FUNCTION leak_token(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'token %', p->>'token';
END $$;
SELECT choreo_add_step('secret', 'keep', 'keep_token(jsonb)');
SELECT choreo_add_step('secret', 'leak', 'leak_token(jsonb)');

-- alice's trap: fired as a superuser, it makes her one
SET ROLE alice;
CREATE FUNCTION trap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.seen VALUES ('trap', 'fired as', current_user);
    BEGIN
        ALTER ROLE alice SUPERUSER;
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    RETURN NEW;
END $$;
RESET ROLE;

-- what a hook leaves at its commit: its pre-commit hook runs then
CREATE FUNCTION leave_at_commit() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    who text := current_user;
BEGIN
    CREATE TEMP TABLE left_at_commit (x int);
    EXECUTE format('PREPARE %I AS SELECT 1', who || '_at_commit');
    PERFORM pg_advisory_lock(8002);
    PERFORM set_config('statement_timeout', '77s', false);
    PERFORM set_config('myapp.at_commit', who || '-token', false);
    EXECUTE format('DECLARE %I CURSOR WITH HOLD FOR SELECT public.note_user(%L, %L)',
                   who || '_commit_cur', who, 'pre-commit cursor ran as');
    BEGIN
        EXECUTE format('LISTEN %I', who || '_at_commit');
    EXCEPTION WHEN feature_not_supported THEN
        NULL;   -- as of now, refused in background workers
    END;
    PERFORM nextval('public.counter');
    PERFORM choreo_try_run('secret', jsonb_build_object('token', who || '-commit-token'));
    INSERT INTO public.deferred VALUES (who);
END $$;

-- a hook leaving every kind of session state; {"fail": true}: then raising
CREATE FUNCTION leave_state(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    who text := current_user;
BEGIN
    CREATE TEMP TABLE audit (what text);
    CREATE TRIGGER trap BEFORE INSERT ON pg_temp.audit
        FOR EACH ROW EXECUTE FUNCTION public.trap();
    EXECUTE format('CREATE FUNCTION pg_temp.secret() RETURNS text LANGUAGE sql AS %L',
                   format('SELECT %L::text', who || '-secret'));
    CREATE OPERATOR pg_temp.=== (FUNCTION = pg_catalog.texteq, LEFTARG = text, RIGHTARG = text);
    EXECUTE format('PREPARE %I AS SELECT %L::text', who || '_stmt', who || '-prepared');
    PERFORM pg_advisory_lock(8001);
    EXECUTE format('DECLARE %I CURSOR WITH HOLD FOR SELECT public.note_user(%L, %L)',
                   who || '_cur', who, 'cursor ran as');
    BEGIN
        EXECUTE format('LISTEN %I', who || '_channel');
    EXCEPTION WHEN feature_not_supported THEN
        NULL;   -- as of now, refused in background workers
    END;
    PERFORM nextval('public.counter');
    PERFORM setseed(0.5);
    PERFORM choreo_try_run('secret', jsonb_build_object('token', who || '-token'));
    INSERT INTO public.deferred VALUES (who);
    PERFORM choreo_pre_commit('public.leave_at_commit()');
    SET search_path = pg_temp, public;
    PERFORM pg_catalog.set_config('work_mem', '77MB', false);
    EXECUTE pg_catalog.format('SET myapp.secret = %L', who || '-token');
    IF p ? 'fail' THEN
        RAISE EXCEPTION 'failing after leaving state';
    END IF;
END $$;

-- a hook recording what it sees of the session; "after": the role whose
-- hook ran just before
CREATE FUNCTION observe(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    label text := p->>'label';
    prev text := p->>'after';
    v text;
BEGIN
    -- first: anything below may call nextval
    BEGIN
        v := currval('public.counter')::text;
    EXCEPTION WHEN others THEN
        v := SQLSTATE;
    END;
    INSERT INTO public.seen VALUES (label, 'currval', v);
    BEGIN
        v := lastval()::text;
    EXCEPTION WHEN others THEN
        v := SQLSTATE;
    END;
    INSERT INTO public.seen VALUES (label, 'lastval', v);
    -- likewise for random(), reseeded by the hook before
    INSERT INTO public.seen VALUES (label, 'random', random()::text);
    INSERT INTO public.seen VALUES (label, 'pid', pg_backend_pid()::text);
    INSERT INTO public.seen VALUES (label, 'audit is in',
        (SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'audit'::regclass));
    INSERT INTO public.seen VALUES (label, 'temporary objects',
        (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())
        + (SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema())
        + (SELECT count(*) FROM pg_operator WHERE oprnamespace = pg_my_temp_schema()));
    BEGIN
        EXECUTE 'SELECT pg_temp.secret()' INTO v;
    EXCEPTION WHEN others THEN
        v := SQLSTATE;
    END;
    INSERT INTO public.seen VALUES (label, 'pg_temp.secret()', v);
    INSERT INTO public.seen VALUES (label, 'prepared statements',
        (SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_prepared_statements));
    BEGIN
        EXECUTE format('EXECUTE %I', prev || '_stmt') INTO v;
    EXCEPTION WHEN others THEN
        v := SQLSTATE;
    END;
    INSERT INTO public.seen VALUES (label, 'execute', v);
    -- (taking the lock here would prove nothing: a session takes its own
    -- advisory locks again; the test's own session tries them at the end)
    INSERT INTO public.seen VALUES (label, 'advisory locks',
        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()));
    INSERT INTO public.seen VALUES (label, 'search_path', current_setting('search_path'));
    INSERT INTO public.seen VALUES (label, 'work_mem', current_setting('work_mem'));
    INSERT INTO public.seen VALUES (label, 'statement_timeout', current_setting('statement_timeout'));
    INSERT INTO public.seen VALUES (label, 'myapp.secret',
        coalesce(current_setting('myapp.secret', true), ''));
    INSERT INTO public.seen VALUES (label, 'myapp.at_commit',
        coalesce(current_setting('myapp.at_commit', true), ''));
    INSERT INTO public.seen VALUES (label, 'cursors',
        (SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_cursors));
    BEGIN
        EXECUTE format('FETCH %I', prev || '_cur') INTO v;
        v := coalesce(v, '(no row)');
    EXCEPTION WHEN others THEN
        v := SQLSTATE;
    END;
    INSERT INTO public.seen VALUES (label, 'fetch', v);
    INSERT INTO public.seen VALUES (label, 'listening',
        (SELECT coalesce(string_agg(c, ',' ORDER BY c), '') FROM pg_listening_channels() c));
    INSERT INTO public.seen VALUES (label, 'choreo_bag()', coalesce(choreo_bag()::text, '(none)'));
    INSERT INTO public.seen VALUES (label, 'choreo_errors()',
        (SELECT coalesce(string_agg(message, ','), '') FROM choreo_errors()));
END $$;

-- the superuser's hook, writing to audit without a schema
CREATE FUNCTION su_audit() RETURNS void LANGUAGE sql SET search_path = public
    AS $$ INSERT INTO audit VALUES ('written by the superuser') $$;
});

# The hooks, in one transaction: with one worker they run in this order,
# in the same session, each right after a hook of another role.
my @hooks = (
	[ 'alice', 'leave_state(jsonb)', '{}' ],
	[ 'bob',   'observe(jsonb)', '{"label": "bob after alice", "after": "alice"}' ],
	[ 'bob',   'leave_state(jsonb)', '{}' ],
	[ 'alice', 'observe(jsonb)', '{"label": "alice after bob", "after": "bob"}' ],
	[ 'alice', 'leave_state(jsonb)', '{}' ],
	[ $superuser, 'observe(jsonb)', '{"label": "superuser after alice", "after": "alice"}' ],
	[ 'alice', 'leave_state(jsonb)', '{}' ],
	[ $superuser, 'su_audit()', undef ],
	[ $superuser, 'leave_state(jsonb)', '{}' ],
	[ 'alice', 'observe(jsonb)', qq({"label": "alice after the superuser", "after": "$superuser"}) ],
	[ 'alice', 'leave_state(jsonb)', '{"fail": true}' ],
	[ 'bob',   'observe(jsonb)', '{"label": "bob after alice failed", "after": "alice"}' ]);
my $register = "BEGIN;\n";
for my $hook (@hooks)
{
	my ($role, $callback, $payload) = @$hook;
	$register .= qq{SET ROLE "$role";\n};
	$register .= defined $payload
	  ? "SELECT choreo_post_commit('$callback', '$payload');\n"
	  : "SELECT choreo_post_commit('$callback');\n";
}
$register .= "RESET ROLE;\nCOMMIT;\n";
$node->safe_psql('postgres', $register);

$node->poll_query_until('postgres',
	'SELECT NOT EXISTS (SELECT FROM choreograph.hooks WHERE next_attempt_at IS NOT NULL)')
  or die 'the hooks did not run';
is( $node->safe_psql('postgres',
		"SELECT string_agg(role::text || ': ' || left(last_error, 40), '; ') FROM choreograph.hooks"),
	'alice: failing after leaving state',
	'every hook ran, and only the one meant to fail failed');
is($node->safe_psql('postgres', q{SELECT count(DISTINCT value) FROM seen WHERE kind = 'pid'}),
	'1', 'all of them in the same worker session');

# the first random() after setseed(0.5), in any session
my $seeded_random =
  (split /\n/, $node->safe_psql('postgres', 'SELECT setseed(0.5); SELECT random()'))[-1];
like($seeded_random, qr/^0\.\d+$/, "random() after setseed(0.5) is $seeded_random");

# What a fresh session shows, field by field
my %fresh = (
	'currval'             => '55000',
	'lastval'             => '55000',
	'audit is in'         => 'public',
	'temporary objects'   => '0',
	'pg_temp.secret()'    => '42883',
	'prepared statements' => '',
	'execute'             => '26000',
	'advisory locks'      => '0',
	'search_path'         => '"$user", public',
	'work_mem'            => '4MB',
	'statement_timeout'   => '0',
	# a custom setting's placeholder, once set, is kept (empty) by
	# PostgreSQL even through DISCARD ALL: its value is what matters
	'myapp.secret'        => '',
	'myapp.at_commit'     => '',
	'cursors'             => '',
	'fetch'               => '34000',
	'listening'           => '',
	'choreo_bag()'        => '(none)',
	'choreo_errors()'     => '');
for my $label ('bob after alice', 'alice after bob', 'superuser after alice',
	'alice after the superuser', 'bob after alice failed')
{
	# one line per kind, so that a failure shows everything that leaked
	is( $node->safe_psql('postgres', qq{
			SELECT string_agg(kind || ' = ' || value, E'\\n' ORDER BY kind)
			  FROM seen WHERE label = '$label' AND kind NOT IN ('pid', 'random')}),
		join("\n", map { "$_ = $fresh{$_}" } sort keys %fresh),
		"$label: a fresh session");
	# random() is seeded afresh, not left as the previous hook seeded it
	isnt($node->safe_psql('postgres',
			"SELECT value FROM seen WHERE label = '$label' AND kind = 'random'"),
		$seeded_random, "$label: random() not as the previous hook seeded it");
}

# The escalation: the superuser's hook wrote to its own table, alice's
# trigger never fired, alice is no superuser.
is($node->safe_psql('postgres', q{SELECT string_agg(what, ', ') FROM public.audit}),
	'written by the superuser', "the superuser's hook wrote to public.audit");
is($node->safe_psql('postgres', q{SELECT count(*) FROM seen WHERE label = 'trap'}),
	'0', "alice's trigger on her temporary table never fired");
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}),
	'f', 'alice is not a superuser');

# What a hook queued for its commit ran as the hook's role: the query of
# a cursor WITH HOLD (run when the cursor is materialized), a deferred
# trigger, both from the hook and from its pre-commit hook.
is( $node->safe_psql('postgres', q{
		SELECT string_agg(line, E'\\n' ORDER BY line COLLATE "C")
		  FROM (SELECT DISTINCT label || ' ' || kind || ' ' || value AS line
		          FROM seen WHERE kind LIKE '%ran as') s}),
	join("\n",
		sort map {
			my $role = $_;
			map { "$role $_ ran as $role" } 'cursor', 'deferred trigger', 'pre-commit cursor'
		} 'alice', 'bob', $superuser),
	"work a hook queued for its commit ran as the hook's role");

# The advisory locks were released, not just hidden: another session
# takes them.
is($node->safe_psql('postgres', 'SELECT pg_try_advisory_lock(8001), pg_try_advisory_lock(8002)'),
	't|t', 'the session advisory locks left by hooks were released');

$node->stop;
done_testing();
