# The workers' schedule and bookkeeping.  Post-commit hook retries follow
# their backoff: after each failed attempt the worker wakes when the next
# attempt falls due (1, 2, 4... seconds later), not at its once-a-minute
# look through the outbox.  (A worker once slept on the wait it had
# computed before the attempt, so the third and later attempts waited for
# that look: 5 attempts took 103 s, not 15.)  And the workers report their
# transactions' statistics, so that autovacuum and autoanalyze see the
# outbox's dead rows and the rows hooks write (they once reported none).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('retry');
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

# Five attempts are due after 0, 1, 2, 4 and 8 seconds (15 s in all): all
# are made within 45 s, less than the minute a worker sleeps when it has
# nothing due; a worker sleeping through a retry would take over two
# minutes.  (This is a bound on a schedule, not a speed measurement: the
# backoff itself takes 15 s.)
my $state;
my $deadline = time() + 45;
while (time() < $deadline)
{
	$state = $node->safe_psql('postgres', 'SELECT status, attempts FROM choreo_hooks');
	last if $state eq 'failed|5';
	sleep 1;
}
is($state, 'failed|5', 'five attempts were made, each when it fell due')
  or diag('waited 45 s for the hook to fail its fifth attempt; the outbox shows: '
	  . $node->safe_psql('postgres',
		  'SELECT status, attempts, next_attempt_at, now() FROM choreo_hooks'));
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
  or diag('waited 180 s for the statistics; they show: '
	  . $node->safe_psql('postgres', q{
		SELECT relname, n_tup_ins, n_tup_del, n_dead_tup FROM pg_stat_user_tables
		 WHERE relid IN ('written'::regclass, 'choreograph.hooks'::regclass)}));

$node->stop;
done_testing();
