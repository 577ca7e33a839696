# Post-commit hooks across sessions, crashes and signals: a sleeping worker
# is woken by a commit, runs every committed hook exactly once whatever
# crashes, never an aborted one, survives hook errors, reloads on SIGHUP,
# stops on SIGTERM even in the middle of a hook (which runs again), does not
# hold up a fast shutdown; without the preload, registering raises 55000.
# Nothing here is timed: how fast hooks start is measured by the benchmark
# (bench/run, H1 commit-to-start).  Every wait has a bound (the TAP modules'
# default, 180 seconds) and says what it waited for when it gives up.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 2
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
CREATE TABLE done (id serial, n int, at timestamptz DEFAULT clock_timestamp());
-- a hook; with "gate" it first waits for advisory lock 4242
CREATE FUNCTION mark(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p ? 'gate' THEN
        PERFORM pg_advisory_xact_lock_shared(4242);
    END IF;
    IF p ? 'sleep' THEN
        PERFORM pg_sleep((p->>'sleep')::float8);
    END IF;
    IF p ? 'fail' THEN
        RAISE EXCEPTION 'failing on purpose';
    END IF;
    INSERT INTO done (n) VALUES ((p->>'n')::int);
END $$;
});

sub worker_pids
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity"
		  . " WHERE backend_type = 'choreograph worker'");
}

# Wake-up at commit: an idle worker shows until when it sleeps (its next
# look through the outbox, up to a minute away); a hook committed while
# both sleep runs before either would have woken by itself, so it was the
# commit that woke one.
my $sleeping_until = q{
	SELECT min((regexp_match(query, '^choreograph: idle until (.*) \(since'))[1]::timestamptz)
	  FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND state = 'idle'
	   AND query LIKE 'choreograph: idle until %'
	HAVING count(*) = 2};
for my $round (1 .. 5)
{
	# both asleep, and not about to wake by themselves
	$node->poll_query_until('postgres',
		"SELECT ($sleeping_until) > clock_timestamp() + interval '10 seconds'")
	  or die 'the workers did not go to sleep';
	my $wake = $node->safe_psql('postgres', $sleeping_until);
	$node->safe_psql('postgres', qq{
		BEGIN;
		SELECT choreo_post_commit('mark(jsonb)', '{"n": -$round}');
		COMMIT;
	});
	$node->poll_query_until('postgres', "SELECT EXISTS (SELECT FROM done WHERE n = -$round)")
	  or die "round $round: the hook committed while the workers slept did not run";
	is( $node->safe_psql('postgres',
			"SELECT at < '$wake'::timestamptz FROM done WHERE n = -$round"),
		't',
		"round $round: a hook committed while the workers slept ran before they would have woken ($wake)");
}

# Hooks of one transaction run in registration order.
$node->safe_psql('postgres', q{
	TRUNCATE done;
	BEGIN;
	SELECT choreo_post_commit('mark(jsonb)', jsonb_build_object('n', g)) FROM generate_series(1, 50) g;
	COMMIT;
});
$node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM choreograph.hooks')
  or die 'hooks did not run';
is($node->safe_psql('postgres',
		'SELECT bool_and(n = id) FROM (SELECT n, row_number() OVER (ORDER BY id) AS id FROM done) s'),
	't', 'hooks of one transaction ran in registration order');

# Durability: with the workers blocked inside hooks, commit hooks (and
# abort others), crash the server, restart: every committed hook runs
# exactly once, no aborted one ever.
$node->safe_psql('postgres', 'TRUNCATE done');
my $blocker = $node->background_psql('postgres');
$blocker->query_safe('SELECT pg_advisory_lock(4242)');
for my $n (1 .. 20)
{
	$node->safe_psql('postgres',
		qq{SELECT choreo_post_commit('mark(jsonb)', '{"n": $n, "gate": true}')});
}
for my $n (101 .. 110)
{
	$node->safe_psql('postgres', qq{
		BEGIN;
		SELECT choreo_post_commit('mark(jsonb)', '{"n": $n, "gate": true}');
		ROLLBACK;
	});
}
$node->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM choreo_hooks WHERE status = 'running'")
  or die 'workers did not start the blocked hooks';
is($node->safe_psql('postgres', 'SELECT count(*) FROM done'), '0', 'nothing ran while blocked');
$node->stop('immediate');
eval { $blocker->quit; };
$node->start;
$node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM choreograph.hooks')
  or die 'hooks did not run after the restart';
is($node->safe_psql('postgres',
		'SELECT count(*), count(DISTINCT n) FROM done WHERE n BETWEEN 1 AND 20'),
	'20|20', 'every committed hook ran exactly once across the crash');
is($node->safe_psql('postgres', 'SELECT count(*) FROM done WHERE n > 100'),
	'0', 'no hook of an aborted transaction ran');

# A failing hook does not stop the worker, which goes on with the others.
my $pids = worker_pids();
$node->safe_psql('postgres', q{
	TRUNCATE done;
	SELECT choreo_post_commit('mark(jsonb)', '{"n": 1, "fail": true}');
	SELECT choreo_post_commit('mark(jsonb)', '{"n": 2}');
});
$node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM done')
  or die 'the good hook did not run';
$node->poll_query_until('postgres', 'SELECT attempts >= 1 FROM choreograph.hooks')
  or die 'the failure was not recorded';
is(worker_pids(), $pids, 'the workers survived a failing hook');

# SIGHUP reloads the settings: with hook_max_attempts = 1 a failing hook
# is given up at once.  The postmaster logs the new value, then signals the
# workers: a hook committed after that line finds them reloaded.
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	DELETE FROM choreograph.hooks;
	ALTER SYSTEM SET choreograph.hook_max_attempts = 1;
	SELECT pg_reload_conf();
});
$node->wait_for_log(qr/parameter "choreograph\.hook_max_attempts" changed to "1"/,
	$log_offset);
$node->safe_psql('postgres',
	q{SELECT choreo_post_commit('mark(jsonb)', '{"n": 3, "fail": true}')});
$node->poll_query_until('postgres',
	"SELECT status = 'failed' AND attempts = 1 FROM choreo_hooks")
  or die 'the reloaded setting was not used';
pass('a reloaded hook_max_attempts applies');
is(worker_pids(), $pids, 'reloading did not restart the workers');
$node->safe_psql('postgres', q{
	DELETE FROM choreograph.hooks;
	ALTER SYSTEM RESET choreograph.hook_max_attempts;
	SELECT pg_reload_conf();
});

# SIGTERM stops a worker in the middle of a long hook (ten minutes, longer
# than the wait for it to stop), which runs again once the worker is back.
$node->safe_psql('postgres',
	q{SELECT choreo_post_commit('mark(jsonb)', '{"n": 4, "sleep": 600}')});
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM choreo_hooks WHERE status = 'running'")
  or die 'the long hook did not start';
my $busy = $node->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND state = 'active'
	   AND query = 'choreograph: running post-commit hook '
	               || (SELECT id FROM choreograph.hooks)});
$node->safe_psql('postgres', q{
	CREATE OR REPLACE FUNCTION mark(p jsonb) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO done (n) VALUES ((p->>'n')::int) $$;
});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($busy)");
ok( $node->poll_query_until(
		'postgres',
		"SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $busy)"),
	'SIGTERM stopped the worker in the middle of a hook');
ok( $node->poll_query_until(
		'postgres', 'SELECT count(*) = 1 FROM done WHERE n = 4'),
	'the interrupted hook ran again after the worker restarted');

# A fast shutdown is not held up by a long hook (ten minutes; pg_ctl gives
# up waiting for the shutdown after one).
$node->safe_psql('postgres', q{
	CREATE FUNCTION long_hook() RETURNS void LANGUAGE sql AS $$ SELECT pg_sleep(600) $$;
	SELECT choreo_post_commit('long_hook()');
});
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM choreo_hooks WHERE status = 'running'")
  or die 'the long hook did not start';
ok($node->stop('fast', fail_ok => 1), 'a fast shutdown completed with a hook running');

# Without the preload, post-commit hooks are refused with 55000 and a hint.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION choreograph');
my ($ret, $stdout, $stderr) = $plain->psql('postgres',
	q{\set VERBOSITY verbose
	  SELECT choreo_post_commit('now()')});
like($stderr, qr/55000/, 'without the preload: SQLSTATE 55000');
like($stderr, qr/shared_preload_libraries/, 'with a hint to preload');
is($plain->safe_psql('postgres', 'SELECT count(*) FROM choreograph.hooks'),
	'0', 'and nothing queued');
$plain->stop;

done_testing();
