# The worked example of docs/activities.md, as written: its sql blocks run
# one by one against a cluster whose workers serve the database, and what
# each shows is checked (a registry activity starting one observer per
# repository; an initial run over the history; event-by-event runs; a
# quiet retry while a dependency is not ready; an error stored truncated,
# the entity failed after max_attempts, then reset beyond the bad event;
# done).  test/run copies docs/activities.md next to test/t; run from a
# clone, the test reads it from there.  Every wait is the example's own
# (await, bounded) or poll_query_until's; the one bound on time checked
# is that a retry asked for a few seconds later runs within seconds.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my ($doc) = grep { -f $_ } ('docs/activities.md', dirname(__FILE__) . '/../../docs/activities.md');
die 'docs/activities.md not found (test/run copies it next to t/)' unless defined $doc;
my $text = slurp_file($doc);
my ($section) = $text =~ /^## A worked example[^\n]*\n(.*?)(?=^## )/ms
  or die "no section \"A worked example\" in $doc";
my @blocks = $section =~ /^```sql\n(.*?)^```$/msg;
is(scalar @blocks, 7, 'the example has seven sql blocks');

my $node = PostgreSQL::Test::Cluster->new('example');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.database = 'postgres'
choreograph.max_workers = 2
});
$node->start;

# run_block N: runs the example's block N (from 0), returns how long it took
sub run_block
{
	my ($n) = @_;
	my $start = time;
	$node->safe_psql('postgres', $blocks[$n]);
	return time - $start;
}

sub query { return $node->safe_psql('postgres', $_[0]); }

my $activities = q{SELECT activity, entity, tail, head, lag, status
                     FROM choreo_activities ORDER BY activity, entity};

# the tables, the processors, the activities
run_block($_) for 0 .. 2;
is(query(q{SELECT name, engine, auto_start, batch_size, initial_batch_size, max_attempts
             FROM choreograph.activities ORDER BY name}),
	"registry_observer|lazy|t|1000|1000|5\nrepo_observer|lazy|f|1|100000|3",
	'two activities, with their options');

# the history, then the registry adds alpha and beta
run_block(3);
is(query('SELECT repo, message FROM notices ORDER BY repo, id'),
	qq{alpha|synced at event 4: 3 push(es), branches {"main": "a2"}\n}
	  . 'beta|synced at event 0: 0 push(es), branches {}',
	'the initial runs acted once on the final state (beta with no events)');
is(query('SELECT count(*) FROM builds'), '0', 'no build for the history');
is(query($activities),
	"registry_observer|main|2|2|0|idle\nrepo_observer|alpha|4|4|0|idle\n"
	  . 'repo_observer|beta|0|0|0|idle',
	'the registry started one observer per repository, each caught up');

# event by event; beta retries quietly until its mirror is ready
my $took = run_block(4);
is(query('SELECT repo, seq, branch, commit FROM builds ORDER BY repo, seq'),
	"alpha|5|main|a3\nbeta|1|main|b1", 'one build per new push, beta after its mirror');
cmp_ok($took, '<', 25, 'the retry asked for 5 seconds later ran soon after (block took '
	  . sprintf('%.1f', $took) . ' s)');

# a malformed event: failed after three attempts, then skipped by a reset
run_block(5);
is(query(q{SELECT tail, head, status, attempts, last_error IS NULL FROM choreo_activities
            WHERE entity = 'alpha'}),
	'7|7|idle|0|t', 'reset beyond the bad event: caught up, error cleared');
is(query(q{SELECT string_agg(commit, ',' ORDER BY seq) FROM builds WHERE repo = 'alpha'}),
	'a3,a4', 'the bad event was skipped, the next built');

# beta removed from the registry: its observer is done
run_block(6);
is(query($activities),
	"registry_observer|main|3|3|0|idle\nrepo_observer|alpha|7|7|0|idle\n"
	  . 'repo_observer|beta|2|2|0|done',
	'the registry told beta\'s observer through its stream; it is done');
is(query(q{SELECT message FROM notices WHERE repo = 'beta' ORDER BY id DESC LIMIT 1}),
	'removed from the registry', 'beta\'s observer acted on its last event');

# the server log: each error once per attempt, in full; the quiet retry not at all
my $log = slurp_file($node->logfile);
my $failed = () = $log =~ /choreograph activity "repo_observer" entity "alpha" failed: event 6 of repository alpha is a push without a commit: .{200,}/g;
is($failed, 3, 'each of the three attempts logged the whole error');
unlike($log, qr/entity "beta" will retry/, 'the silent retry wrote no LOG line');

# A retry asked for one second later, with nothing else committing
# meanwhile (in the example, later commits wake the workers, which then
# see the retry's time): it runs within seconds, not at the workers' next
# look through every source, up to a minute later.
$node->safe_psql('postgres', q{
CREATE TABLE again_runs (at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION again(entity text, tail bigint, events jsonb, initial boolean)
RETURNS choreo_outcome LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO again_runs DEFAULT VALUES;
    IF (SELECT count(*) FROM again_runs) = 1 THEN
        RETURN choreo_retry(tail, '1 second', true);
    END IF;
    RETURN choreo_eof(COALESCE((events->-1->>'seq')::bigint, tail));
END $$;
SELECT choreo_create_activity('again', 'again', 'again(text, bigint, jsonb, boolean)');
});
$node->safe_psql('postgres', q{SELECT choreo_emit('again', 'x', '{}')});
$node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM again_runs')
  or die 'the first run did not come';
# (waits at most ten seconds: the run is due one second after the first)
$node->safe_psql('postgres', q{
DO $$ BEGIN
    FOR i IN 1 .. 200 LOOP
        EXIT WHEN (SELECT count(*) FROM again_runs) = 2;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$});
is($node->safe_psql('postgres', 'SELECT count(*) FROM again_runs'),
	'2', 'a retry one second later ran within ten seconds');

$node->stop;
done_testing();
