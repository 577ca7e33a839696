# Activities run by the workers across crashes and signals: events emitted
# by several sessions at once (committed transactions, rolled back ones,
# savepoints rolled back) are processed by a lazy activity whose processor
# writes each event it is handed into a table; an immediate stop while
# runs are in the middle of their batches, then a restart; a worker
# terminated (SIGTERM) in the middle of a run; a reload (SIGHUP) while one
# runs.  Every committed event is processed exactly once, none of aborted
# work ever: the sets are compared exactly, not counted.  Nothing here is
# timed; every wait has a bound (the TAP modules' default, 180 seconds).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $sessions = 3;
my $transactions = 40;    # per session
my $entities = 8;

my $node = PostgreSQL::Test::Cluster->new('activities_crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 3
max_connections = 20
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
-- every event a run was handed, as the run's transaction committed it:
-- no unique key, so that an event processed twice shows as two rows
CREATE TABLE results (entity text, seq bigint, id text, initial boolean);
-- gate_after: once results has that many rows, runs wait for advisory
-- lock 4242 (held exclusively by the test) before they write anything
CREATE TABLE knobs (gate_after bigint);
INSERT INTO knobs VALUES (NULL);
CREATE FUNCTION record(ent text, tl bigint, evs jsonb, init boolean)
    RETURNS choreo_outcome LANGUAGE plpgsql AS $$
DECLARE
    new_tail bigint;
BEGIN
    IF EXISTS (SELECT FROM jsonb_array_elements(evs) e WHERE e->'payload' ? 'fail') THEN
        RAISE EXCEPTION 'failing on purpose: %', repeat('y', 200);
    END IF;
    IF (SELECT count(*) FROM results) >= (SELECT gate_after FROM knobs) THEN
        PERFORM pg_advisory_xact_lock_shared(4242);
    END IF;
    INSERT INTO results
        SELECT ent, (e->>'seq')::bigint, e->'payload'->>'id', init
          FROM jsonb_array_elements(evs) e;
    SELECT COALESCE(max((e->>'seq')::bigint), tl) INTO new_tail FROM jsonb_array_elements(evs) e;
    RETURN choreo_eof(new_tail);
END $$;
-- small batches: many runs, so that the crash finds some half way
SELECT choreo_create_activity('rec', 'orders', 'record(text, bigint, jsonb, boolean)',
                              '{"batch_size": 3}');
});

# How caught up the activity is: every entity has a cursor, at its head, idle
sub caught_up
{
	my ($n) = @_;
	return qq{SELECT count(*) = $n AND bool_and(tail = head AND status = 'idle')
	            FROM choreo_activities WHERE activity = 'rec'};
}

sub worker_pids
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity"
		  . " WHERE backend_type = 'choreograph worker'");
}

# the ids of every event kept (committed, not rolled back to a savepoint)
my @expected;
my $id = 0;

# A session's script: transactions of 4 emits each to entities picked in
# turn; every 5th transaction rolled back, every 7th with a savepoint
# rolled back (its emits lost, the others kept), every 11th failing.
sub script
{
	my ($s) = @_;
	my $sql = "\\set ON_ERROR_STOP 0\nSELECT pg_advisory_lock_shared(1);\n";
	for my $t (1 .. $transactions)
	{
		my @kept;
		my @lost;
		$sql .= "BEGIN;\n";
		for my $k (1 .. 4)
		{
			my $entity = 'e' . (($s * 3 + $t * 5 + $k) % $entities);
			my $this = "s$s-t$t-k$k";
			my $in_savepoint = ($t % 7 == 0 && $k >= 3);
			$sql .= "SAVEPOINT sp;\n" if $in_savepoint && $k == 3;
			$sql .= "SELECT choreo_emit('orders', '$entity', '{\"id\": \"$this\"}');\n";
			if ($in_savepoint) { push @lost, $this; }
			else { push @kept, $this; }
		}
		$sql .= "ROLLBACK TO SAVEPOINT sp;\n" if $t % 7 == 0;
		if ($t % 5 == 0)
		{
			$sql .= "ROLLBACK;\n";
		}
		elsif ($t % 11 == 0)
		{
			$sql .= "SELECT 1 / 0;\nCOMMIT;\n";
		}
		else
		{
			$sql .= "COMMIT;\n";
			push @expected, @kept;
		}
	}
	return $sql;
}

sub same_ids
{
	my ($query, $name) = @_;
	my @got = sort split /\n/, $node->safe_psql('postgres', $query);
	my @want = sort @expected;
	is(scalar(@got), scalar(@want), "$name: as many rows as events kept");
	my %count;
	$count{$_}++ for @got;
	my @twice = grep { $count{$_} > 1 } sort keys %count;
	my %want = map { $_ => 1 } @want;
	my @extra = grep { !$want{$_} } sort keys %count;
	my @missing = grep { !$count{$_} } @want;
	is_deeply(\@twice, [], "$name: no event twice");
	is_deeply(\@extra, [], "$name: nothing of aborted work");
	is_deeply(\@missing, [], "$name: no committed event missing");
}

# -------------------------------------------------------------------------
# Crash recovery.  The runs stop at the gate once 60 events are written,
# so that the crash finds runs in the middle of their batches, some tails
# stored and others not.
$node->safe_psql('postgres', 'UPDATE knobs SET gate_after = 60');
my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');
my $dir = PostgreSQL::Test::Utils::tempdir;
my $barrier = $node->background_psql('postgres');
$barrier->query_safe('SELECT pg_advisory_lock(1)');
my @runs;
for my $s (1 .. $sessions)
{
	open my $fh, '>', "$dir/session$s.sql" or die "could not write $dir/session$s.sql: $!";
	print $fh script($s);
	close $fh;
	push @runs,
	  IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-f', "$dir/session$s.sql" ],
		'>', "$dir/session$s.out", '2>', "$dir/session$s.err",
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}
$node->poll_query_until('postgres', qq{
	SELECT count(*) = $sessions FROM pg_locks
	 WHERE locktype = 'advisory' AND objid = 1 AND NOT granted})
  or die "the $sessions sessions did not all reach the barrier";
$barrier->query_safe('SELECT pg_advisory_unlock(1)');
for my $s (1 .. $sessions)
{
	eval { $runs[ $s - 1 ]->finish; 1 }
	  or die "session $s did not finish within "
	  . "$PostgreSQL::Test::Utils::timeout_default seconds: $@";
	my @errors = grep { /ERROR/ } split /\n/, slurp_file("$dir/session$s.err");
	is(scalar(@errors), int($transactions / 11), "session $s: only the errors raised on purpose")
	  or diag(join("\n", @errors));
}
$node->poll_query_until('postgres', q{
	SELECT count(*) >= 1 FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND wait_event_type = 'Lock'
	   AND query LIKE 'choreograph: running activity cursor %'})
  or die 'no run reached the gate';
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM results');
ok($before >= 60 && $before < scalar(@expected),
	"before the crash, some events were processed, not all ($before of " . scalar(@expected) . ')');
# the workers not held at the gate take the news meanwhile
ok($node->poll_query_until('postgres',
		qq{SELECT count(*) = $entities FROM choreo_activities WHERE activity = 'rec'}),
	'every entity got a cursor (auto_start)');
$node->stop('immediate');
eval { $gate->quit; };
eval { $barrier->quit; };
$node->start;
$node->safe_psql('postgres', 'UPDATE knobs SET gate_after = NULL');

# after the restart, more: committed, rolled back
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT choreo_emit('orders', 'e1', '{"id": "after-1"}');
	SELECT choreo_emit('orders', 'new', '{"id": "after-2"}');
	COMMIT;
	BEGIN;
	SELECT choreo_emit('orders', 'e2', '{"id": "after-aborted"}');
	ROLLBACK;
});
push @expected, 'after-1', 'after-2';
ok($node->poll_query_until('postgres', caught_up($entities + 1)),
	'after the restart, the activity caught up with every entity')
  or diag($node->safe_psql('postgres', 'SELECT * FROM choreo_activities'));
same_ids('SELECT id FROM results', 'across the crash');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
	  (SELECT e.entity, v.seq FROM choreograph.events v
	     JOIN choreograph.stream_entities e ON e.id = v.entity_id
	   EXCEPT ALL SELECT entity, seq FROM results)
	  UNION ALL
	  (SELECT entity, seq FROM results
	   EXCEPT ALL SELECT e.entity, v.seq FROM choreograph.events v
	     JOIN choreograph.stream_entities e ON e.id = v.entity_id)) d}),
	'0', 'the rows written are exactly the stored events, by (entity, seq)');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT entity FROM results GROUP BY entity
	                      HAVING max(seq) <> count(*)) s}),
	'0', 'each entity\'s seqs are gap-free');
# the initial runs: one per entity, the first to commit, at most a batch
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (SELECT entity FROM results GROUP BY entity
	 HAVING NOT (count(*) FILTER (WHERE initial) BETWEEN 1 AND 3
	             AND COALESCE(max(seq) FILTER (WHERE initial), 0)
	                 < COALESCE(min(seq) FILTER (WHERE NOT initial), 1000000))) s}),
	'0', 'initial was true in each entity\'s first committed run only');

# -------------------------------------------------------------------------
# SIGTERM: a worker terminated while a run waits at the gate; the run is
# rolled back and done again by the restarted worker.
$node->safe_psql('postgres', 'UPDATE knobs SET gate_after = 0');
$gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');
$node->safe_psql('postgres',
	q{SELECT choreo_emit('orders', 'term', '{"id": "term-1"}')});
push @expected, 'term-1';
my $running = q{
	SELECT pid FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND wait_event_type = 'Lock'
	   AND query LIKE 'choreograph: running activity cursor %'};
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($running) r")
  or die 'the run for "term" did not reach the gate';
is($node->safe_psql('postgres',
		q{SELECT status FROM choreo_activities WHERE activity = 'rec' AND entity = 'term'}),
	'running', 'the view shows the run as running');
my $busy = $node->safe_psql('postgres', $running);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($busy)");
ok( $node->poll_query_until(
		'postgres', "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $busy)"),
	'SIGTERM stopped the worker in the middle of a run');
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) = 1 FROM ($running) r WHERE pid <> $busy"),
	'the interrupted run was taken again by a worker');
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
ok($node->poll_query_until('postgres', caught_up($entities + 2)),
	'after the SIGTERM, the activity caught up');

# SIGHUP while a run waits: the settings are reloaded, the workers stay,
# and the run goes on
my $pids = worker_pids();
$gate->query_safe('SELECT pg_advisory_lock(4242)');
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT choreo_emit('orders', 'hup', '{"id": "hup-1"}');
	SELECT choreo_emit('orders', 'hup', '{"id": "hup-2"}');
	COMMIT;
});
push @expected, 'hup-1', 'hup-2';
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($running) r")
  or die 'the run for "hup" did not reach the gate';
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET choreograph.error_max_length = 50;
	SELECT pg_reload_conf();
});
$node->wait_for_log(qr/parameter "choreograph\.error_max_length" changed to "50"/, $log_offset);
$node->safe_psql('postgres',
	q{SELECT choreo_emit('orders', 'hup', '{"id": "hup-3"}')});
push @expected, 'hup-3';
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
ok($node->poll_query_until('postgres', caught_up($entities + 3)),
	'after the SIGHUP, the activity caught up');
is(worker_pids(), $pids, 'reloading did not restart the workers');
same_ids('SELECT id FROM results', 'after the signals');
is($node->safe_psql('postgres', q{SELECT string_agg(id, ',' ORDER BY seq) FROM results WHERE entity = 'hup'}),
	'hup-1,hup-2,hup-3', 'an entity\'s events were processed in order');
$gate->quit;

# the reloaded error_max_length applies to what the workers store
$node->safe_psql('postgres', q{SELECT choreo_emit('orders', 'long', '{"fail": true}')});
ok($node->poll_query_until('postgres', q{
	SELECT attempts >= 1 FROM choreo_activities WHERE activity = 'rec' AND entity = 'long'}),
	'a failing run was recorded');
is($node->safe_psql('postgres', q{
	SELECT last_error FROM choreo_activities WHERE activity = 'rec' AND entity = 'long'}),
	substr('failing on purpose: ' . ('y' x 200), 0, 50),
	'its error kept to the reloaded choreograph.error_max_length (50)');

$node->stop;
done_testing();
