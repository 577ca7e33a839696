# What the workers do with an activity's outcomes, errors and engines:
# - choreo_retry(tail, '1 second') runs again, not before then, even when
#   new events arrive; a silent retry writes no LOG line, a plain one does;
#   choreo_reset_activity runs a retrying entity at once;
# - a processor that raises is retried with backoff (not before it), then
#   the entity is failed after max_attempts, with the error's message kept
#   (truncated to choreograph.error_max_length) and a LOG line naming
#   activity and entity for each failure; choreo_reset_activity brings it
#   back;
# - a dropped processor fails its entities with a clear stored error, and
#   the workers go on serving other activities;
# - a cron activity runs at its ticks, never before the tick after an
#   event's commit;
# - auto_start false: only entities started with choreo_start_activity,
#   here by a parent activity's processor, get the activity;
# - a long run does not starve post-commit hooks (max_workers = 2: one
#   worker is always left to them);
# - across a crash, a retry keeps its time, a failed entity stays failed.
# Only lower bounds are checked on times (not before), never speed; every
# wait has a bound (180 seconds).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('activities_retries');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 2
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
-- each run: the activity, entity, when it began, its transaction's now(),
-- the seqs handed over and the latest created_at among them, initial
CREATE TABLE runs (activity text, entity text, started timestamptz, tx_now timestamptz,
                   seqs bigint[], newest timestamptz, initial boolean, retry_at timestamptz);
CREATE FUNCTION note_run(act text, ent text, evs jsonb, init boolean,
                         retry_at timestamptz DEFAULT NULL) RETURNS bigint
    LANGUAGE sql AS $$
    INSERT INTO runs
        SELECT act, ent, clock_timestamp(), now(),
               (SELECT array_agg((e->>'seq')::bigint ORDER BY (e->>'seq')::bigint)
                  FROM jsonb_array_elements(evs) e),
               (SELECT max((e->>'created_at')::timestamptz) FROM jsonb_array_elements(evs) e),
               init, retry_at;
    SELECT max((e->>'seq')::bigint) FROM jsonb_array_elements(evs) e;
$$;
-- processes everything
CREATE FUNCTION plain(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE sql AS $$ SELECT choreo_eof(COALESCE(note_run('plain', ent, evs, init), tl)) $$;
-- the entities an activity asked to retry (the processors tell their
-- first run by this, not by initial)
CREATE TABLE retried (activity text, entity text);
-- first run of an entity: retry in a second; then processes
CREATE FUNCTION later(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM retried WHERE activity = 'later' AND entity = ent) THEN
        INSERT INTO retried VALUES ('later', ent);
        PERFORM note_run('later', ent, evs, init, now() + interval '1 second');
        RETURN choreo_retry(tl, '1 second');
    END IF;
    RETURN choreo_eof(COALESCE(note_run('later', ent, evs, init), tl));
END $$;
-- first run: a silent retry in an hour; then processes
CREATE FUNCTION hour(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM retried WHERE activity = 'hour' AND entity = ent) THEN
        INSERT INTO retried VALUES ('hour', ent);
        PERFORM note_run('hour', ent, evs, init, now() + interval '1 hour');
        RETURN choreo_retry(tl, '1 hour', true);
    END IF;
    RETURN choreo_eof(COALESCE(note_run('hour', ent, evs, init), tl));
END $$;
-- raises, with a long message; each attempt counted in a sequence (the
-- rollback of the attempt would undo a row)
CREATE SEQUENCE boom_tries;
CREATE FUNCTION boom(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('boom_tries');
    RAISE EXCEPTION 'boom %', repeat('x', 300) USING ERRCODE = 'XY001';
END $$;
CREATE FUNCTION doomed(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE sql AS $$ SELECT choreo_eof(COALESCE(note_run('doomed', ent, evs, init), tl)) $$;
});

sub worker_pids
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity"
		  . " WHERE backend_type = 'choreograph worker'");
}

sub view
{
	my ($activity, $entity, $columns) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT $columns FROM choreo_activities WHERE activity = '$activity' AND entity = '$entity'});
}

# -------------------------------------------------------------------------
# choreo_retry(tail, '1 second'): not before then, though an event arrives
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('later', 'rs', 'later(text, bigint, jsonb, boolean)');
	SELECT choreo_create_activity('hour', 'rs', 'hour(text, bigint, jsonb, boolean)');
	SELECT choreo_emit('rs', 'r1', '{"n": 1}');
});
$node->poll_query_until('postgres', q{SELECT count(*) = 2 FROM runs WHERE retry_at IS NOT NULL})
  or die 'the first runs did not happen';
$node->safe_psql('postgres', q{SELECT choreo_emit('rs', 'r1', '{"n": 2}')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM runs WHERE activity = 'later' AND retry_at IS NULL AND seqs = '{1,2}'}),
	'the retried entity ran again, with both events');
is($node->safe_psql('postgres', q{
	SELECT string_agg(initial::text, ',' ORDER BY started) FROM runs WHERE activity = 'later'}),
	'true,false', 'the run after the retry is not initial: a run (the retry) has committed');
is($node->safe_psql('postgres', q{
	SELECT r.started >= f.retry_at FROM runs r, runs f
	 WHERE r.activity = 'later' AND r.retry_at IS NULL AND f.activity = 'later' AND f.retry_at IS NOT NULL}),
	't', 'not before the time choreo_retry gave');
is($node->safe_psql('postgres', q{SELECT count(*) FROM runs WHERE activity = 'later'}),
	'2', 'and only then (one retry, one run)');
ok($node->poll_query_until('postgres', q{
	SELECT status = 'idle' AND attempts = 0 AND tail = 2 FROM choreo_activities
	 WHERE activity = 'later'}), 'the view shows it caught up, attempts cleared');
is(view('hour', 'r1', q{status || ':' || attempts || ':' || tail || ':' || (next_run_at > now() + interval '50 minutes')}),
	'retrying:1:0:true', 'a retry in an hour: retrying, 1 attempt, due in an hour, though events came');
is($node->safe_psql('postgres', q{SELECT count(*) FROM runs WHERE activity = 'hour'}),
	'1', 'and it did not run again');
like(slurp_file($node->logfile, $log_offset),
	qr/choreograph activity "later" entity "r1" will retry at/,
	'a plain retry writes a LOG line naming activity and entity');
unlike(slurp_file($node->logfile, $log_offset),
	qr/choreograph activity "hour" entity "r1" will retry/,
	'a silent retry writes none');
$node->safe_psql('postgres', q{SELECT choreo_reset_activity('hour', 'r1')});
is(view('hour', 'r1', q{attempts}), '0', 'reset clears the attempts');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM runs WHERE activity = 'hour' AND retry_at IS NULL AND seqs = '{1,2}'}),
	'after a reset, the retrying entity ran at once (not in an hour)');

# -------------------------------------------------------------------------
# A raising processor: 3 attempts, 1 s then 2 s apart at least, then failed
$log_offset = -s $node->logfile;
my $pids = worker_pids();
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('boom', 'bs', 'boom(text, bigint, jsonb, boolean)',
	       '{"max_attempts": 3, "backoff_base": "1 second", "backoff_max": "2 seconds"}');
	SELECT choreo_emit('bs', 'b1', '{}');
});
ok($node->poll_query_until('postgres', q{
	SELECT status = 'failed' FROM choreo_activities WHERE activity = 'boom'}),
	'after its attempts, the entity is failed');
is(view('boom', 'b1', q{attempts || ':' || tail || ':' || (next_run_at IS NULL)}), '3:0:true',
	'3 attempts counted, the tail unmoved, nothing scheduled');
is($node->safe_psql('postgres', 'SELECT last_value FROM boom_tries'), '3',
	'the processor ran three times');
is(view('boom', 'b1', 'last_error'), substr('boom ' . ('x' x 300), 0, 120),
	'the last error is kept, truncated to choreograph.error_max_length (120)');
my @failed = slurp_file($node->logfile, $log_offset) =~
  /^(\d+-\d+-\d+ [\d:.]+) UTC \[\d+\] LOG:  choreograph activity "boom" entity "b1" failed: boom x/mg;
is(scalar(@failed), 3, 'a LOG line naming activity and entity for each failure');
if (@failed == 3)
{
	is($node->safe_psql('postgres', qq{
		SELECT '$failed[1]'::timestamp - '$failed[0]'::timestamp >= interval '0.9 seconds'
		   AND '$failed[2]'::timestamp - '$failed[1]'::timestamp >= interval '1.9 seconds'}),
		't', "the attempts backed off: not before 1 s, then 2 s (@failed)");
}
$node->safe_psql('postgres', q{SELECT choreo_emit('bs', 'b1', '{}')});
$node->safe_psql('postgres', q{
	CREATE OR REPLACE FUNCTION boom(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
	    LANGUAGE sql AS $$ SELECT choreo_eof(COALESCE(note_run('boom', ent, evs, init), tl)) $$;
});
is(view('boom', 'b1', 'status'), 'failed', 'a failed entity stays failed when events come');
$node->safe_psql('postgres', q{SELECT choreo_reset_activity('boom', 'b1')});
ok($node->poll_query_until('postgres', q{
	SELECT status = 'idle' AND tail = 2 AND attempts = 0 AND last_error IS NULL
	  FROM choreo_activities WHERE activity = 'boom'}),
	'choreo_reset_activity brought it back: both events processed, the error cleared');
is($node->safe_psql('postgres', q{SELECT seqs FROM runs WHERE activity = 'boom'}), '{1,2}',
	'in one run');
is(worker_pids(), $pids, 'the workers survived the errors');

# -------------------------------------------------------------------------
# A dropped processor fails its entities; the workers serve the others
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('doomed', 'ds', 'doomed(text, bigint, jsonb, boolean)');
	SELECT choreo_create_activity('plain', 'ps', 'plain(text, bigint, jsonb, boolean)');
	SELECT choreo_emit('ds', 'd1', '{}');
});
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM runs WHERE activity = 'doomed'})
  or die 'doomed did not run';
$node->safe_psql('postgres', q{
	DROP FUNCTION doomed(text, bigint, jsonb, boolean);
	SELECT choreo_emit('ds', 'd1', '{}');
	SELECT choreo_emit('ds', 'd2', '{}');
});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 2 AND bool_and(status = 'failed') FROM choreo_activities WHERE activity = 'doomed'}),
	'a dropped processor: its entities failed');
like(view('doomed', 'd1', 'last_error'), qr/^processor .* of activity "doomed" no longer exists$/,
	'with a clear stored error');
like(slurp_file($node->logfile, $log_offset),
	qr/choreograph activity "doomed" entity "d2" failed: processor .* no longer exists/,
	'and a LOG line naming activity and entity');
$node->safe_psql('postgres', q{SELECT choreo_emit('ps', 'p1', '{}')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM runs WHERE activity = 'plain' AND entity = 'p1'}),
	'the workers went on serving another activity');
is(worker_pids(), $pids, 'no worker crashed');

# -------------------------------------------------------------------------
# A cron activity: an event is processed at the tick after its commit at
# the earliest.  The events are committed a third of a second apart, so
# most commits fall between ticks.  (A tenth of a second of margin: a
# worker's transaction that began just before a tick and read the news
# just after it may count the tick before the commit.)
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('ticks', 'cs', 'plain(text, bigint, jsonb, boolean)',
	       '{"engine": "cron", "interval": "1 second"}');
	-- plain notes its runs under the name plain: this one is told apart by its entity
	CREATE TABLE commits (n int, at timestamptz);
});
for my $n (1 .. 6)
{
	$node->safe_psql('postgres', qq{
		SELECT choreo_emit('cs', 'c1', '{"n": $n}');
		-- as late as possible in the transaction: the commit is just after
		INSERT INTO commits VALUES ($n, clock_timestamp());
	});
	select(undef, undef, undef, 0.33);
}
ok($node->poll_query_until('postgres', q{
	SELECT tail = 6 FROM choreo_activities WHERE activity = 'ticks'}),
	'the cron activity processed the events');
# The first event of each run woke an idle cursor: its run is at the tick
# after its commit at the earliest.  (Later events of a run may have come
# after the tick, just before the run read them.)
my $cron_runs = $node->safe_psql('postgres', q{
	SELECT string_agg(started::text || ' ' || seqs::text, '; ' ORDER BY started) FROM runs WHERE entity = 'c1'})
  . ' / commits: '
  . $node->safe_psql('postgres', q{SELECT string_agg(n || ' ' || at, '; ' ORDER BY n) FROM commits});
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM runs r, commits c
	 WHERE r.entity = 'c1' AND c.n = r.seqs[1]
	   AND r.started < to_timestamp(ceil(extract(epoch FROM c.at))) - interval '0.1 seconds'}),
	'0', 'no run began before the tick after the commit of its first event')
  or diag("runs: $cron_runs");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM runs a, runs b
	 WHERE a.entity = 'c1' AND b.entity = 'c1' AND a.started < b.started
	   AND floor(extract(epoch FROM a.started)) = floor(extract(epoch FROM b.started))}),
	'0', 'no two runs between the same two ticks')
  or diag("runs: $cron_runs");
is($node->safe_psql('postgres', q{SELECT count(*) FROM runs WHERE entity = 'c1' AND seqs IS NULL}),
	'0', 'and no run was handed nothing');

# -------------------------------------------------------------------------
# auto_start false: a parent activity over a registry starts the children
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('child', 'repo', 'plain(text, bigint, jsonb, boolean)',
	       '{"auto_start": false}');
	CREATE FUNCTION registry(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
	    LANGUAGE plpgsql AS $$
	DECLARE
	    e jsonb;
	BEGIN
	    FOR e IN SELECT * FROM jsonb_array_elements(evs) LOOP
	        PERFORM choreo_start_activity('child', e->'payload'->>'repo');
	    END LOOP;
	    RETURN choreo_eof(COALESCE(note_run('registry', ent, evs, init), tl));
	END $$;
	SELECT choreo_create_activity('registry', 'registry', 'registry(text, bigint, jsonb, boolean)');
	-- events of repos, before any is registered; r3 never will be
	SELECT choreo_emit('repo', 'r' || g, jsonb_build_object('n', g)) FROM generate_series(1, 3) g;
	SELECT choreo_emit('repo', 'r1', '{}');
});
$node->safe_psql('postgres', q{
	SELECT choreo_emit('registry', 'all', '{"repo": "r1"}');
	SELECT choreo_emit('registry', 'all', '{"repo": "r2"}');
	SELECT choreo_emit('registry', 'all', '{"repo": "r4"}');
});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 3 AND bool_and(status = 'idle' AND tail = head)
	       AND (SELECT count(*) FROM runs WHERE activity = 'plain' AND entity = 'r4') = 1
	  FROM choreo_activities WHERE activity = 'child'}),
	'the children started by the parent ran');
is($node->safe_psql('postgres', q{
	SELECT string_agg(r.entity || ':' || COALESCE(r.seqs::text, '-') || ':' || r.initial, ',' ORDER BY r.entity)
	  FROM runs r JOIN choreo_activities v ON v.activity = 'child' AND v.entity = r.entity
	 WHERE r.activity = 'plain' AND r.entity LIKE 'r_'}),
	'r1:{1,2}:true,r2:{1}:true,r4:-:true',
	'each from the start of its stream (r4, with no events, had its initial run)');
$node->safe_psql('postgres', q{
	SELECT choreo_emit('repo', 'r1', '{}');
	SELECT choreo_emit('repo', 'r3', '{}');
});
ok($node->poll_query_until('postgres', q{
	SELECT tail = 3 FROM choreo_activities WHERE activity = 'child' AND entity = 'r1'}),
	'a started child goes on with new events');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM choreo_activities WHERE activity = 'child' AND entity = 'r3'}),
	'0', 'an entity never started has no cursor, though it has events');
is($node->safe_psql('postgres', q{SELECT count(*) FROM runs WHERE entity = 'r3'}),
	'0', 'and was never processed');

# -------------------------------------------------------------------------
# A long run does not starve post-commit hooks: with max_workers = 2,
# activities use one worker at most; a hook registered while a processor
# waits at the gate runs meanwhile
$node->safe_psql('postgres', q{
	CREATE FUNCTION gated(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
	    LANGUAGE plpgsql AS $$
	BEGIN
	    PERFORM pg_advisory_xact_lock_shared(4242);
	    RETURN choreo_eof(COALESCE(note_run('gated', ent, evs, init), tl));
	END $$;
	SELECT choreo_create_activity('gated', 'gs', 'gated(text, bigint, jsonb, boolean)');
	CREATE TABLE hook_done (at timestamptz);
	CREATE FUNCTION hook() RETURNS void LANGUAGE sql AS $$ INSERT INTO hook_done VALUES (clock_timestamp()) $$;
});
my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');
$node->safe_psql('postgres', q{
	SELECT choreo_emit('gs', 'g' || g, '{}') FROM generate_series(1, 3) g;
});
my $at_gate = q{
	SELECT count(*) FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND wait_event_type = 'Lock'
	   AND query LIKE 'choreograph: running activity cursor %'};
$node->poll_query_until('postgres', "SELECT ($at_gate) = 1")
  or die 'the gated run did not start';
$node->safe_psql('postgres', q{SELECT choreo_post_commit('hook()')});
ok($node->poll_query_until('postgres', 'SELECT count(*) = 1 FROM hook_done'),
	'a hook registered while a processor runs ran');
is($node->safe_psql('postgres', "SELECT ($at_gate)"), '1',
	'while the processor still ran (and only one run of the activity at once)');
is($node->safe_psql('postgres', q{SELECT count(*) FROM runs WHERE activity = 'gated'}),
	'0', 'nothing of the gated activity committed meanwhile');
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
$gate->quit;
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 3 AND bool_and(tail = 1) FROM choreo_activities WHERE activity = 'gated'}),
	'then the activity went on');

# -------------------------------------------------------------------------
# Across a crash, a retry keeps its time and a failed entity stays failed
$node->safe_psql('postgres', q{SELECT choreo_emit('rs', 'r9', '{}')});
$node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM runs WHERE activity = 'hour' AND entity = 'r9'})
  or die 'hour did not run for r9';
$node->stop('immediate');
$node->start;
$node->safe_psql('postgres', q{SELECT choreo_emit('ds', 'd1', '{}'), choreo_emit('rs', 'r9', '{}')});
ok($node->poll_query_until('postgres', q{
	SELECT tail = 2 FROM choreo_activities WHERE activity = 'later' AND entity = 'r9'}),
	'after a crash, the workers went on (later caught up with r9)');
is(view('hour', 'r9', q{status || ':' || attempts || ':' || (next_run_at > now() + interval '50 minutes')}),
	'retrying:1:true', 'a retry in an hour is still due in an hour');
is($node->safe_psql('postgres', q{SELECT count(*) FROM runs WHERE activity = 'hour' AND entity = 'r9'}),
	'1', 'and did not run again');
is(view('doomed', 'd1', 'status'), 'failed', 'a failed entity stays failed');

$node->stop;
done_testing();
