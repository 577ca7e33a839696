# The worked example of docs/eventbox.md, as written: its sql blocks run
# one by one against a cluster whose workers serve the database, and what
# each shows is checked: a change-verification run driven directly (a
# superseded patchset and a vote on it as garbage, a side effect in the
# transaction), submitted by two votes with post-processing after the
# commit (a post-commit hook the workers run), driven by an activity per
# recipient, and swept by pg_cron (when its package is installed: test/run
# installs it where it can; otherwise that part is skipped).  test/run
# copies docs/eventbox.md next to test/t; run from a clone, the test reads
# it from there.  Every wait is poll_query_until's, bounded.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($doc) = grep { -f $_ } ('docs/eventbox.md', dirname(__FILE__) . '/../../docs/eventbox.md');
die 'docs/eventbox.md not found (test/run copies it next to t/)' unless defined $doc;
my $text = slurp_file($doc);
my ($section) = $text =~ /^## A worked example[^\n]*\n(.*?)(?=^## )/ms
  or die "no section \"A worked example\" in $doc";
my @blocks = $section =~ /^```sql\n(.*?)^```$/msg;
is(scalar @blocks, 6, 'the example has six sql blocks');

my $node = PostgreSQL::Test::Cluster->new('eventbox_example');
$node->init;
my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
my $cron = -f "$pkglibdir/pg_cron.so";
my $preload = $cron ? 'choreograph,pg_cron' : 'choreograph';
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$preload'
choreograph.database = 'postgres'
choreograph.max_workers = 2
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;

sub query { return $node->safe_psql('postgres', $_[0]); }
sub run_block { return query($blocks[ $_[0] ]); }

query('CREATE EXTENSION choreograph');
run_block(0);

# driven directly: patchset 2 verified, patchset 1 and its vote dropped
my $out = run_block(1);
like($out, qr/^\Q{"garbage": 2, "consumed": 1, "eversion": 1, "remaining": 0}\E$/m,
	'one batch: patchset 2 consumed, the superseded patchset and its vote garbage');
like($out, qr/^\Q{"votes": {}, "status": "verifying", "patchset": 2}|1\E$/m,
	'the state: verifying patchset 2, eversion 1');
is(query('SELECT change, component, message FROM cv_notifications ORDER BY id'),
	'42|tryjobs|verify patchset 2', 'the tryjobs were told in the transaction');
is(query("SELECT count(*) FROM choreo_inbox('cl/42')"), '0', 'nothing left outstanding');

# two votes submit it; the cancel after them is garbage; post-processing
# runs after the commit
$out = run_block(2);
like($out, qr/^\Q{"garbage": 1, "consumed": 2, "eversion": 2, "remaining": 0}\E$/m,
	'two votes consumed, the late cancel garbage, one eversion more');
like($out, qr/"status": "submitted"/, 'the state: submitted');
like($out, qr/^submitted$/m, 'the run row was updated as a side effect');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 1 FROM cv_dispatched WHERE change = '42'"),
	'the post-processing hook ran after the commit');
is(query("SELECT message FROM cv_dispatched WHERE change = '42'"),
	'submitted patchset 2', 'post-processing told the outside world once');
is(query("SELECT count(*) FROM choreo_hooks"), '0', 'no hook left queued');

# a rolled-back batch post-processes nothing
query(q{SELECT choreo_send('cl/45', '{"kind": "patchset", "patchset": 1}')});
query(q{SELECT choreo_send('cl/45', '{"kind": "vote", "patchset": 1, "voter": "ann", "value": 2}')});
query(q{BEGIN; SELECT choreo_process_batch('cl/45', 'cv_process(text, jsonb, jsonb)'); ROLLBACK});
is(query("SELECT count(*) FROM choreo_hooks"), '0', 'a batch rolled back leaves no hook');
is(query("SELECT count(*) FROM choreo_inbox('cl/45')"), '2', 'and its events outstanding');

# from an activity, one per recipient: the workers process cl/43 when its
# events commit
run_block(3);
ok( $node->poll_query_until(
		'postgres', "SELECT state->>'status' = 'submitted' FROM choreo_state('cl/43')"),
	'the activity processed cl/43 to submitted');
ok( $node->poll_query_until(
		'postgres',
		"SELECT lag = 0 AND status = 'idle' FROM choreo_activities WHERE entity = 'cl/43'"),
	'its cursor is caught up and idle');
is(query("SELECT count(*) FROM choreo_inbox('cl/43')"), '0', 'nothing left outstanding');
is(run_block(4), "submitted\ncv_driver|cl/43|0|idle", 'the block that checks shows it');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 1 FROM cv_dispatched WHERE change = '43'"),
	'and post-processed it after the commit');

SKIP:
{
	skip 'pg_cron is not installed', 4 unless $cron;
	run_block(5);
	is(query("SELECT schedule, command FROM cron.job WHERE jobname = 'cv-sweep'"),
		'* * * * *|CALL cv_sweep()', 'the sweep is scheduled');
	# pg_cron runs a job at the start of each minute: within two minutes
	$node->poll_query_until('postgres',
		"SELECT status = 'cancelled' FROM cv_runs WHERE change = '44'")
	  or note 'the sweep has not run yet';
	is(query("SELECT status FROM cv_runs WHERE change = '44'"),
		'cancelled', 'pg_cron swept cl/44: patchset 3, then cancelled');
	is(query("SELECT state->>'patchset', eversion FROM choreo_state('cl/44')"),
		'3|1', 'one batch, one eversion');
	ok( $node->poll_query_until(
			'postgres', "SELECT count(*) = 1 FROM cv_dispatched WHERE change = '44'"),
		'and post-processed it');
	query("SELECT cron.unschedule('cv-sweep')");
}

# every state and inbox as the example leaves them: nothing half-written
# (cl/43's eversion is 1 or 2: its events may come in one batch or two)
is( query(q{SELECT string_agg(recipient || ' ' || (state->>'status'), ', ' ORDER BY recipient)
              FROM choreograph.eventbox_states}),
	$cron
	? 'cl/42 submitted, cl/43 submitted, cl/44 cancelled'
	: 'cl/42 submitted, cl/43 submitted',
	'the states of the processed changes');
is(query('SELECT count(*) FROM choreograph.inbox'), '2', 'only the rolled-back cl/45 outstanding');

$node->stop;
done_testing();
