# The workers' schedule and bookkeeping, checked by what they report, not
# by how long anything takes:
# - after a failed attempt, a worker sleeps until the retry falls due, not
#   for the minute it sleeps when nothing is due: an idle worker shows in
#   pg_stat_activity when it will wake ("choreograph: idle until T"), and
#   T is never later than the next attempt of a waiting hook (a worker once
#   slept on the wait it had computed before the attempt, so the third and
#   later attempts waited for that minute: 5 attempts took 103 s, not 15);
# - they report their transactions' statistics, so that autovacuum and
#   autoanalyze see the outbox's dead rows and the rows hooks write (they
#   once reported none);
# - a worker that cannot reach its database waits longer before each new
#   try (1 s, 2 s, 4 s...), rather than failing every second, and connects
#   once the database exists.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('schedule');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 1
choreograph.hook_max_attempts = 5
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
-- counts the attempts in a sequence: the rollback of a failed attempt
-- would undo a row written to a table
CREATE SEQUENCE tries;
CREATE FUNCTION flaky() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('tries');
    RAISE EXCEPTION 'not yet' USING ERRCODE = 'XY002';
END $$;
SELECT choreo_post_commit('flaky()');
});

# Watch the worker until the hook has failed for good: each time it is
# idle while the hook waits for its next attempt, it must wake by then.
# An observation counts only if the worker showed the same activity before
# and after the hook was read (it made no attempt in between).
my $activity = q{
	SELECT query FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND state = 'idle'
	   AND query LIKE 'choreograph: idle until %'};
my $hook = q{SELECT status, attempts, next_attempt_at FROM choreo_hooks};
my ($observed, @late) = (0);
my $give_up = time() + $PostgreSQL::Test::Utils::timeout_default;
my $state = '';
while (time() < $give_up)
{
	my $before = $node->safe_psql('postgres', $activity);
	my ($status, $attempts, $due) = split /\|/, $node->safe_psql('postgres', $hook);
	my $after = $node->safe_psql('postgres', $activity);
	$state = "$status|$attempts";
	last if $state eq 'failed|5';
	if ($before ne '' && $before eq $after && $status eq 'queued' && $attempts > 0)
	{
		$observed++;
		my ($wake) = $before =~ /^choreograph: idle until (.*) \(since/;
		push @late, "$before, but attempt " . ($attempts + 1) . " is due at $due"
		  unless $node->safe_psql('postgres',
			"SELECT '$wake'::timestamptz <= '$due'::timestamptz + interval '1 second'") eq 't';
	}
	usleep(50_000);
}
is($state, 'failed|5', 'the hook was tried five times, then kept as failed')
  or diag("gave up after $PostgreSQL::Test::Utils::timeout_default s waiting for it; the outbox shows: "
	  . $node->safe_psql('postgres', 'SELECT status, attempts, next_attempt_at, now() FROM choreo_hooks'));
ok($observed > 0, "the idle worker was seen waiting for a retry ($observed times)");
is_deeply(\@late, [], 'whenever it was idle, it would wake before the next attempt fell due');
is($node->safe_psql('postgres', q{SELECT last_value FROM tries}), '5',
	'the function ran once per attempt');
is($node->safe_psql('postgres', q{SELECT last_error, last_sqlstate FROM choreo_hooks}),
	'not yet|XY002', 'the last error and its SQLSTATE are kept');

# statistics: a hook writing rows, its outbox row deleted
$node->safe_psql('postgres', q{
CREATE TABLE written (n int);
CREATE FUNCTION writer(p jsonb) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO written SELECT generate_series(1, (p->>'rows')::int) $$;
SELECT choreo_post_commit('writer(jsonb)', '{"rows": 100}') FROM generate_series(1, 10);
});
ok($node->poll_query_until('postgres', q{
	SELECT (SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'written'::regclass) = 1000
	   AND (SELECT n_tup_del FROM pg_stat_user_tables WHERE relid = 'choreograph.hooks'::regclass) >= 10}),
	'the rows hooks wrote and the outbox rows they deleted are counted')
  or diag('waited for the statistics; they show: '
	  . $node->safe_psql('postgres', q{
		SELECT relname, n_tup_ins, n_tup_del, n_dead_tup FROM pg_stat_user_tables
		 WHERE relid IN ('written'::regclass, 'choreograph.hooks'::regclass)}));

# a database that does not exist yet: the worker waits longer each time
$node->append_conf('postgresql.conf', "choreograph.database = 'later'\n");
$node->restart;
my @waits;
$give_up = time() + $PostgreSQL::Test::Utils::timeout_default;
while (time() < $give_up && @waits < 3)
{
	@waits = slurp_file($node->logfile) =~
	  /choreograph worker 1 waits (\d+) ms before it connects to database "later" again/g;
	usleep(200_000);
}
is_deeply([ @waits[ 0 .. 2 ] ], [ 1000, 2000, 4000 ],
	'a worker that could not connect waited 1, 2, then 4 seconds before trying again');
$node->safe_psql('postgres', 'CREATE DATABASE later');
ok($node->poll_query_until('postgres', q{
	SELECT EXISTS (SELECT FROM pg_stat_activity
	                WHERE backend_type = 'choreograph worker' AND datname = 'later')}),
	'once the database exists, the worker connects to it')
  or diag('waited for the worker to connect to "later"');

$node->stop;
done_testing();
