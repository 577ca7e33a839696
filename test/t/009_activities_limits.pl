# How the workers share out activities, seen from inside the processors:
# - without limits, runs of one activity for different entities go on at
#   once (as many as the workers activities may use: max_workers - 1);
# - max_concurrency caps the runs of an activity at once (2, then 1);
# - activities of one serialize_group never run at once for one entity,
#   but do for different entities;
# - a paused activity runs nothing (the view says paused), and once
#   resumed processes what came meanwhile, exactly once.
# Runs are held at a gate (advisory lock 4242, held by the test), so what
# runs at once is counted, not timed; every run also writes its span
# (clock_timestamp() at its start and end), and no two spans that must not
# overlap do.  Every wait has a bound (180 seconds).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('activities_limits');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 4
max_connections = 20
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
CREATE TABLE spans (activity text, entity text, first_seq bigint, last_seq bigint,
                    started timestamptz, ended timestamptz);
CREATE TABLE knobs (gated boolean, nap float8);
INSERT INTO knobs VALUES (false, 0);
-- the body of every processor: waits at the gate when gated, naps, and
-- writes its span and the seqs it was handed
CREATE FUNCTION body(act text, ent text, tl bigint, evs jsonb)
    RETURNS choreo_outcome LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    first_seq bigint;
    new_tail bigint;
BEGIN
    IF (SELECT gated FROM knobs) THEN
        PERFORM pg_advisory_xact_lock_shared(4242);
    END IF;
    PERFORM pg_sleep((SELECT nap FROM knobs));
    SELECT min((e->>'seq')::bigint), COALESCE(max((e->>'seq')::bigint), tl)
      INTO first_seq, new_tail FROM jsonb_array_elements(evs) e;
    INSERT INTO spans VALUES (act, ent, first_seq, new_tail, t0, clock_timestamp());
    RETURN choreo_eof(new_tail);
END $$;
CREATE FUNCTION make_activity(act text, stream text, options jsonb) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($f$CREATE FUNCTION %I(ent text, tl bigint, evs jsonb, init boolean)
                       RETURNS choreo_outcome LANGUAGE sql
                       AS %L$f$, 'proc_' || act, format('SELECT body(%L, ent, tl, evs)', act));
    PERFORM choreo_create_activity(act, stream, ('proc_' || act || '(text, bigint, jsonb, boolean)')::regprocedure,
                                   options);
END $$;
});

# the gate: a session of its own each time (a background psql gives up
# after the default timeout, counted from its start)
sub close_gate
{
	my $g = $node->background_psql('postgres');
	$g->query_safe('SELECT pg_advisory_lock(4242)');
	return $g;
}

sub open_gate
{
	my ($g) = @_;
	$g->query_safe('SELECT pg_advisory_unlock(4242)');
	$g->quit;
}

# Waits until every worker sleeps, none due to wake by itself within 10
# seconds, and returns when the first would: what runs before then was
# started by a wake-up (as in 001), not by a worker's own timeout
my $sleeping_until = q{
	SELECT min((regexp_match(query, '^choreograph: idle until (.*) \(since'))[1]::timestamptz)
	  FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND state = 'idle'
	   AND query LIKE 'choreograph: idle until %'
	HAVING count(*) = 4};
sub all_asleep
{
	$node->poll_query_until('postgres',
		"SELECT ($sleeping_until) > clock_timestamp() + interval '10 seconds'")
	  or die 'the workers did not all go to sleep';
	return $node->safe_psql('postgres', $sleeping_until);
}

sub before_wake
{
	my ($wake, $name) = @_;
	is($node->safe_psql('postgres', "SELECT clock_timestamp() < '$wake'::timestamptz"),
		't', "$name, before the workers would have woken by themselves ($wake)");
}

# runs of these activities waiting at the gate now
sub at_gate
{
	my ($activities) = @_;
	return $node->safe_psql('postgres', qq{
	SELECT count(*) FROM pg_stat_activity s
	  JOIN choreograph.activity_cursors c
	    ON c.id = substring(s.query from '^choreograph: running activity cursor (\\d+)')::bigint
	  JOIN choreograph.activities a ON a.id = c.activity_id
	 WHERE s.backend_type = 'choreograph worker' AND s.wait_event_type = 'Lock'
	   AND a.name IN ($activities)});
}

sub wait_at_gate
{
	my ($activities, $n, $what) = @_;
	my $give_up = time() + $PostgreSQL::Test::Utils::timeout_default;
	my $got;
	while (time() < $give_up)
	{
		$got = at_gate($activities);
		return 1 if $got == $n;
		select(undef, undef, undef, 0.1);
	}
	diag("waited for $n runs of $activities at the gate, saw $got");
	return 0;
}

# how many runs of an activity were at the gate at most, looking for a while
sub most_at_gate
{
	my ($activities, $seconds) = @_;
	my $most = 0;
	my $until = time() + $seconds;
	while (time() < $until)
	{
		my $n = at_gate($activities);
		$most = $n if $n > $most;
		select(undef, undef, undef, 0.1);
	}
	return $most;
}

sub caught_up
{
	my ($activity, $n) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = $n AND bool_and(tail = head AND status = 'idle')
		  FROM choreo_activities WHERE activity = '$activity'});
}

# every event processed exactly once: the spans of an activity cover each
# entity's seqs without gaps or overlaps
sub exactly_once
{
	my ($activity, $name) = @_;
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM (
		  SELECT entity, first_seq, last_seq,
		         lag(last_seq, 1, 0::bigint) OVER (PARTITION BY entity ORDER BY first_seq) AS prev
		    FROM spans WHERE activity = '$activity' AND first_seq IS NOT NULL) s
		 WHERE first_seq <> prev + 1}),
		'0', "$name: every event processed once, in order");
}

my $gate;

# -------------------------------------------------------------------------
# Without limits: three entities' runs at the gate at once (the workers
# activities may use: max_workers - 1)
$node->safe_psql('postgres', q{
	SELECT make_activity('free', 'free', '{}');
	UPDATE knobs SET gated = true;
});
$gate = close_gate();
my $wake = all_asleep();
$node->safe_psql('postgres', q{
	SELECT choreo_emit('free', 'e' || g, '{}') FROM generate_series(1, 5) g;
});
ok(wait_at_gate(q{'free'}, 3, 'free'), 'without limits, three runs of an activity at once');
before_wake($wake, 'three at once');
is(most_at_gate(q{'free'}, 2), 3, 'and never more than max_workers - 1 = 3');
open_gate($gate);
ok(caught_up('free', 5), 'all five entities processed');
exactly_once('free', 'without limits');

# -------------------------------------------------------------------------
# max_concurrency 2: two at the gate, never three
$node->safe_psql('postgres', q{SELECT make_activity('two', 'two', '{"max_concurrency": 2}')});
$gate = close_gate();
$node->safe_psql('postgres', q{
	SELECT choreo_emit('two', 'e' || g, '{}') FROM generate_series(1, 4) g;
});
ok(wait_at_gate(q{'two'}, 2, 'two'), 'max_concurrency 2: two runs at once');
is(most_at_gate(q{'two'}, 3), 2, 'max_concurrency 2: never three, with four entities due');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM choreo_activities WHERE activity = 'two' AND status = 'running'}),
	'2', 'the view shows two running');
open_gate($gate);
ok(caught_up('two', 4), 'max_concurrency 2: all four entities processed');
exactly_once('two', 'max_concurrency 2');

# max_concurrency 1: one at the gate; then, ungated, many short runs of
# several entities, whose spans never overlap
$node->safe_psql('postgres', q{SELECT make_activity('one', 'one', '{"max_concurrency": 1, "batch_size": 2}')});
$gate = close_gate();
$node->safe_psql('postgres', q{
	SELECT choreo_emit('one', 'e' || g, '{}') FROM generate_series(1, 3) g;
});
ok(wait_at_gate(q{'one'}, 1, 'one'), 'max_concurrency 1: one run');
is(most_at_gate(q{'one'}, 3), 1, 'max_concurrency 1: never two, with three entities due');
$node->safe_psql('postgres', q{UPDATE knobs SET gated = false, nap = 0.05});
open_gate($gate);
ok(caught_up('one', 3), 'max_concurrency 1: the three entities processed');
$wake = all_asleep();
$node->safe_psql('postgres', q{
	SELECT choreo_emit('one', 'e' || (g % 3 + 1), jsonb_build_object('g', g)) FROM generate_series(1, 30) g;
});
ok(caught_up('one', 3), 'max_concurrency 1: all processed');
before_wake($wake, 'max_concurrency 1: runs locked out for a while ran');
exactly_once('one', 'max_concurrency 1');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM spans a JOIN spans b
	    ON a.activity = 'one' AND b.activity = 'one' AND a.ctid < b.ctid
	   AND a.started < b.ended AND b.started < a.ended}),
	'0', 'max_concurrency 1: no two runs overlapped');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM spans WHERE activity = 'one'}),
	'>=', 15, 'max_concurrency 1: in many runs (batches of 2)');

# -------------------------------------------------------------------------
# serialize_group: g1 and g2 of group "grp" over one stream.  One entity:
# one run at the gate, never two; a second entity: a second run.
$node->safe_psql('postgres', q{
	UPDATE knobs SET gated = true, nap = 0;
	SELECT make_activity('g1', 'grp', '{"serialize_group": "grp"}');
	SELECT make_activity('g2', 'grp', '{"serialize_group": "grp"}');
	SELECT make_activity('g3', 'grp', '{}');
});
$gate = close_gate();
$node->safe_psql('postgres', q{SELECT choreo_emit('grp', 'x', '{}')});
# g3, outside the group, runs beside one of g1 and g2
ok(wait_at_gate(q{'g1', 'g2', 'g3'}, 2, 'g1, g2, g3'), 'one entity: g3 and one of g1, g2 run');
is(most_at_gate(q{'g1', 'g2'}, 3), 1, 'one entity: g1 and g2 never at once');
open_gate($gate);
ok(caught_up('g1', 1) && caught_up('g2', 1) && caught_up('g3', 1), 'one entity: all three ran');
# two entities, g3 gone: one run for each, never a third
$node->safe_psql('postgres', q{
	SELECT choreo_drop_activity('g3');
	DELETE FROM spans WHERE activity = 'g3';
});
$gate = close_gate();
$node->safe_psql('postgres', q{SELECT choreo_emit('grp', 'x', '{}'), choreo_emit('grp', 'y', '{}')});
ok(wait_at_gate(q{'g1', 'g2'}, 2, 'g1, g2'), 'two entities: a run of the group for each at once');
is(most_at_gate(q{'g1', 'g2'}, 3), 2, 'two entities: never a second run for one of them');
$node->safe_psql('postgres', q{UPDATE knobs SET gated = false, nap = 0.02});
open_gate($gate);
$node->safe_psql('postgres', q{
	SELECT choreo_emit('grp', CASE WHEN g % 2 = 0 THEN 'x' ELSE 'y' END, '{}')
	  FROM generate_series(1, 40) g;
});
ok(caught_up('g1', 2) && caught_up('g2', 2), 'serialize_group: all processed');
exactly_once('g1', 'serialize_group g1');
exactly_once('g2', 'serialize_group g2');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM spans a JOIN spans b
	    ON a.activity = 'g1' AND b.activity = 'g2' AND a.entity = b.entity
	   AND a.started < b.ended AND b.started < a.ended}),
	'0', 'serialize_group: g1 and g2 never overlapped for one entity');

# -------------------------------------------------------------------------
# Pausing.  A witness activity on the same stream shows when the workers
# have seen the events; the paused one runs nothing meanwhile.
$node->safe_psql('postgres', q{
	UPDATE knobs SET gated = false, nap = 0;
	SELECT make_activity('paused', 'ps', '{}');
	SELECT make_activity('witness', 'ps', '{}');
	SELECT choreo_emit('ps', 'a', '{}');
});
ok(caught_up('paused', 1) && caught_up('witness', 1), 'before pausing, both activities ran');
$node->safe_psql('postgres', q{SELECT choreo_pause_activity('paused')});
is($node->safe_psql('postgres', q{SELECT status FROM choreo_activities WHERE activity = 'paused'}),
	'paused', 'the view says paused');
$node->safe_psql('postgres', q{
	SELECT choreo_emit('ps', 'a', '{}');
	SELECT choreo_emit('ps', 'b', '{}');
});
ok(caught_up('witness', 2), 'the witness processed the new events');
# and a little longer, for a run of the paused one that would be late
sleep 2;
is($node->safe_psql('postgres', q{SELECT count(*) FROM spans WHERE activity = 'paused'}),
	'1', 'the paused activity did not run');
is($node->safe_psql('postgres', q{
	SELECT string_agg(entity || ':' || status || ':' || lag, ',' ORDER BY entity)
	  FROM choreo_activities WHERE activity = 'paused'}),
	'a:paused:1,b:paused:1', 'the view shows both entities paused, with their lag');
$wake = all_asleep();
$node->safe_psql('postgres', q{SELECT choreo_resume_activity('paused')});
ok(caught_up('paused', 2), 'once resumed, it processed what came meanwhile');
before_wake($wake, 'resumed');
exactly_once('paused', 'pause and resume');

$node->stop;
done_testing();
