# More of what the workers do with outcomes and owners:
# - a tail below the last event handed over: the engine goes on at once,
#   and every event is processed once, in order;
# - choreo_done: the entity never runs again, whatever comes;
# - an outcome that does not fit (a tail beyond the batch, NULL) is a
#   processor error (22023), stored and counted like any;
# - processors run as the activity's owner, one worker serving the
#   activities of two roles in turn;
# - choreo_run_activity raises CH003, without waiting, while a worker runs
#   the same (activity, entity);
# - dropping an activity while a worker runs it;
# - a prepared transaction's events are processed once COMMIT PREPARED,
#   never after ROLLBACK PREPARED, across a crash too.
# Every wait has a bound (180 seconds); nothing is timed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('activities_outcomes');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 2
max_prepared_transactions = 5
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
CREATE TABLE seen (activity text, entity text, seq bigint, who text);
GRANT INSERT, SELECT ON seen TO PUBLIC;
CREATE FUNCTION note(act text, ent text, evs jsonb) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO seen SELECT act, ent, (e->>'seq')::bigint, current_user::text
                       FROM jsonb_array_elements(evs) e;
    SELECT max((e->>'seq')::bigint) FROM jsonb_array_elements(evs) e;
$$;
-- takes one event of each batch: the tail stays below the last handed over
CREATE FUNCTION one_by_one(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE sql AS $$
    SELECT choreo_eof(COALESCE(note('one_by_one', ent, jsonb_build_array(evs->0)), tl))
$$;
-- done at the first run
CREATE FUNCTION finish(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE sql AS $$ SELECT choreo_done(COALESCE(note('finish', ent, evs), tl)) $$;
-- a tail one beyond the batch, or NULL: the payload of the first event says
CREATE FUNCTION liar(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE plpgsql AS $$
BEGIN
    IF evs->0->'payload'->>'lie' = 'null' THEN
        RETURN NULL;
    END IF;
    RETURN choreo_eof(note('liar', ent, evs) + 1);
END $$;
CREATE FUNCTION anyone(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE sql AS $$ SELECT choreo_eof(COALESCE(note('anyone', ent, evs), tl)) $$;
CREATE FUNCTION gated(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(4242);
    RETURN choreo_eof(COALESCE(note('gated', ent, evs), tl));
END $$;
CREATE ROLE alice;
CREATE ROLE bob;
GRANT CREATE ON SCHEMA public TO alice, bob;
});

sub caught_up
{
	my ($activity, $n) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = $n AND bool_and(tail = head AND status = 'idle')
		  FROM choreo_activities WHERE activity = '$activity'});
}

sub once_in_order
{
	my ($activity, $entity, $n, $name) = @_;
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(seq::text, ',' ORDER BY ctid) FROM seen
		 WHERE activity = '$activity' AND entity = '$entity'}),
		join(',', 1 .. $n), $name);
}

# -------------------------------------------------------------------------
# a tail below the last event handed over
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('one_by_one', 'obo', 'one_by_one(text, bigint, jsonb, boolean)');
	SELECT choreo_emit('obo', 'o1', jsonb_build_object('n', g)) FROM generate_series(1, 12) g;
});
ok(caught_up('one_by_one', 1), 'a processor taking one event a batch caught up');
once_in_order('one_by_one', 'o1', 12, 'each event once, in order');

# -------------------------------------------------------------------------
# choreo_done
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('finish', 'fin', 'finish(text, bigint, jsonb, boolean)');
	SELECT choreo_create_activity('fin_witness', 'fin', 'anyone(text, bigint, jsonb, boolean)');
	SELECT choreo_emit('fin', 'f1', '{}');
});
ok($node->poll_query_until('postgres', q{
	SELECT status = 'done' AND tail = 1 FROM choreo_activities WHERE activity = 'finish'}),
	'choreo_done: the entity is done');
$node->safe_psql('postgres', q{SELECT choreo_emit('fin', 'f1', '{}')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 2 FROM seen WHERE activity = 'anyone' AND entity = 'f1'}),
	'a witness activity processed the event that came after');
sleep 1;
is($node->safe_psql('postgres', q{
	SELECT string_agg(entity || ':' || status || ':' || tail || ':' || lag, ',')
	  FROM choreo_activities WHERE activity = 'finish'}),
	'f1:done:1:1', 'the done entity did not run again');
$node->safe_psql('postgres', q{SELECT choreo_reset_activity('finish', 'f1')});
ok($node->poll_query_until('postgres', q{
	SELECT status = 'done' AND tail = 2 FROM choreo_activities WHERE activity = 'finish'}),
	'reset: it ran at once for the event beyond its tail');

# -------------------------------------------------------------------------
# outcomes that do not fit
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('liar', 'lies', 'liar(text, bigint, jsonb, boolean)',
	       '{"max_attempts": 1}');
	SELECT choreo_emit('lies', 'beyond', '{}');
	SELECT choreo_emit('lies', 'null', '{"lie": "null"}');
});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 2 AND bool_and(status = 'failed') FROM choreo_activities WHERE activity = 'liar'}),
	'outcomes that do not fit are errors: the entities failed (max_attempts 1)');
like($node->safe_psql('postgres', q{
	SELECT last_error FROM choreo_activities WHERE activity = 'liar' AND entity = 'beyond'}),
	qr/returned tail 2 for entity "beyond", beyond the last event handed over \(1\)/,
	'a tail beyond the batch: its error stored');
like($node->safe_psql('postgres', q{
	SELECT last_error FROM choreo_activities WHERE activity = 'liar' AND entity = 'null'}),
	qr/returned NULL for entity "null"/, 'a NULL outcome: its error stored');
is($node->safe_psql('postgres', q{SELECT count(*) FROM seen WHERE activity = 'liar'}),
	'0', 'and the processor\'s writes were rolled back');
ok($node->log_contains(qr/choreograph activity "liar" entity "beyond" failed: .*beyond the last event/),
	'a LOG line for it');

# -------------------------------------------------------------------------
# processors run as their activity's owner; one worker (max_workers 2:
# one for activities) serves two roles in turn
$node->safe_psql('postgres', q{
	SET ROLE alice;
	SELECT choreo_create_activity('of_alice', 'roles', 'anyone(text, bigint, jsonb, boolean)');
	SET ROLE bob;
	SELECT choreo_create_activity('of_bob', 'roles', 'anyone(text, bigint, jsonb, boolean)');
	RESET ROLE;
});
for my $round (1 .. 3)
{
	$node->safe_psql('postgres', qq{
		SELECT choreo_emit('roles', 'x', '{}'), choreo_emit('roles', 'y', '{}')});
}
ok(caught_up('of_alice', 2) && caught_up('of_bob', 2), 'the activities of both roles caught up');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT who, ',') FROM seen WHERE activity = 'anyone' AND entity IN ('x', 'y')}),
	'alice,bob', 'processors ran as the activities\' owners');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT (who, entity, seq)) FROM seen
	 WHERE activity = 'anyone' AND entity IN ('x', 'y')}),
	'12|12', 'every event once for each owner\'s activity');

# -------------------------------------------------------------------------
# choreo_run_activity while a worker runs the same (activity, entity)
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('gated', 'gs', 'gated(text, bigint, jsonb, boolean)');
});
my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');
$node->safe_psql('postgres', q{SELECT choreo_emit('gs', 'g1', '{}')});
$node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND wait_event_type = 'Lock'
	   AND query LIKE 'choreograph: running activity cursor %'})
  or die 'the gated run did not start';
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
	\set VERBOSITY verbose
	SET lock_timeout = '60s';
	SELECT choreo_run_activity('gated', 'g1')});
like($stderr, qr/CH003/, 'choreo_run_activity while a worker runs it: CH003');
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
$gate->quit;
ok(caught_up('gated', 1), 'the worker\'s run went on');
once_in_order('gated', 'g1', 1, 'and processed the event once');

# -------------------------------------------------------------------------
# dropping an activity while a worker runs it: the drop waits for the run,
# then the activity and its cursors are gone, and the workers go on
# (worker pids may change: a worker that served another role's activity
# hands over to a successor; a crash shows in the log)
my $log_offset = -s $node->logfile;
$gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');
$node->safe_psql('postgres', q{SELECT choreo_emit('gs', 'g2', '{}')});
$node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND wait_event_type = 'Lock'
	   AND query LIKE 'choreograph: running activity cursor %'})
  or die 'the gated run did not start';
my $dropper = $node->background_psql('postgres');
$dropper->query_until(qr/dropping/, q{
	\echo dropping
	SET lock_timeout = '100s';
	SELECT choreo_drop_activity('gated');
	\echo dropped
});
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
$gate->quit;
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM choreograph.activities WHERE name = 'gated'}),
	'the drop went through once the run ended');
$dropper->quit;
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM choreograph.activity_cursors c
	 WHERE NOT EXISTS (SELECT FROM choreograph.activities a WHERE a.id = c.activity_id)}),
	'0', 'no cursor left of it');
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('after_drop', 'gs', 'anyone(text, bigint, jsonb, boolean)');
	SELECT choreo_emit('gs', 'g3', '{}');
});
ok(caught_up('after_drop', 3), 'a new activity on the stream runs its entities');
unlike(slurp_file($node->logfile, $log_offset),
	qr/terminated by signal|exited with exit code [1-9]|PANIC|FATAL/, 'no worker crashed');

# -------------------------------------------------------------------------
# two-phase commit, across a crash
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('twopc', 'tp', 'anyone(text, bigint, jsonb, boolean)');
	SELECT choreo_emit('tp', 'before', '{}');
	BEGIN;
	SELECT choreo_emit('tp', 't1', '{"id": "kept"}');
	PREPARE TRANSACTION 'kept';
	BEGIN;
	SELECT choreo_emit('tp', 't2', '{"id": "dropped"}');
	SELECT choreo_emit('tp', 't3', '{"id": "dropped"}');
	PREPARE TRANSACTION 'dropped';
});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM seen WHERE activity = 'anyone' AND entity = 'before'}),
	'an event committed beside the prepared ones was processed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM seen WHERE entity IN ('t1', 't2', 't3')}),
	'0', 'the prepared ones were not');
$node->stop('immediate');
$node->start;
$node->safe_psql('postgres', q{
	COMMIT PREPARED 'kept';
	ROLLBACK PREPARED 'dropped';
	SELECT choreo_emit('tp', 't1', '{"id": "later"}');
});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 2 AND bool_and(tail = head) FROM choreo_activities
	 WHERE activity = 'twopc' AND entity IN ('before', 't1')}),
	'after the crash and COMMIT PREPARED, the activity caught up');
once_in_order('anyone', 't1', 2, 'the committed prepared event and the later one, once each');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM choreo_activities WHERE activity = 'twopc' AND entity IN ('t2', 't3')}),
	'0', 'nothing of the rolled back prepared transaction');
is($node->safe_psql('postgres', q{SELECT count(*) FROM seen WHERE entity IN ('t2', 't3')}),
	'0', 'none of its events processed');

# -------------------------------------------------------------------------
# events flushed in an open transaction (choreo_emit_and_wait) are not
# processed before it commits, though the workers run meanwhile
$node->safe_psql('postgres', q{
	SELECT choreo_create_activity('open_tx', 'otx', 'anyone(text, bigint, jsonb, boolean)');
});
my $open = $node->background_psql('postgres');
$open->query_safe(q{BEGIN; SELECT choreo_emit_and_wait('otx', 'open1', '{}')});
$node->safe_psql('postgres', q{SELECT choreo_emit('otx', 'open2', '{}')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM seen WHERE activity = 'anyone' AND entity = 'open2'}),
	'an event committed meanwhile was processed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM seen WHERE entity = 'open1'}),
	'0', 'the one of the open transaction was not');
$open->query_safe('COMMIT');
$open->quit;
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM seen WHERE activity = 'anyone' AND entity = 'open1'}),
	'once committed, it was');

# -------------------------------------------------------------------------
# choreo_retry(tail, '1 second') with nothing else happening: the retry
# runs before the workers would have woken by themselves (they sleep until
# the next due cursor, not for their idle minute)
$node->safe_psql('postgres', q{
	CREATE FUNCTION again(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
	    LANGUAGE plpgsql AS $$
	BEGIN
	    IF NOT EXISTS (SELECT FROM seen WHERE activity = 'again-retry' AND entity = ent) THEN
	        INSERT INTO seen VALUES ('again-retry', ent, NULL, clock_timestamp()::text);
	        RETURN choreo_retry(tl, '1 second');
	    END IF;
	    RETURN choreo_eof(COALESCE(note('again', ent, evs), tl));
	END $$;
	SELECT choreo_create_activity('again', 'ag', 'again(text, bigint, jsonb, boolean)');
});
my $sleeping_until = q{
	SELECT min((regexp_match(query, '^choreograph: idle until (.*) \(since'))[1]::timestamptz)
	  FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker' AND state = 'idle'
	   AND query LIKE 'choreograph: idle until %'
	HAVING count(*) = 2};
$node->poll_query_until('postgres',
	"SELECT ($sleeping_until) > clock_timestamp() + interval '10 seconds'")
  or die 'the workers did not go to sleep';
my $wake = $node->safe_psql('postgres', $sleeping_until);
$node->safe_psql('postgres', q{SELECT choreo_emit('ag', 'a1', '{}')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM seen WHERE activity = 'again' AND entity = 'a1'}),
	'the retried entity ran again');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM seen WHERE activity = 'again' AND entity = 'a1'
	   AND clock_timestamp() < '$wake'::timestamptz}),
	'1', "before the workers would have woken by themselves ($wake)");

# -------------------------------------------------------------------------
# a processor that emits: each event of a chain's link n emits one to
# link n + 1, up to 10; the workers' own commits wake them for the next
$node->safe_psql('postgres', q{
	CREATE FUNCTION link(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
	    LANGUAGE plpgsql AS $$
	DECLARE
	    n int := substr(ent, 5)::int;
	BEGIN
	    IF n < 10 THEN
	        PERFORM choreo_emit('chain', 'link' || (n + 1), jsonb_build_object('from', ent));
	    END IF;
	    RETURN choreo_eof(COALESCE(note('link', ent, evs), tl));
	END $$;
	SELECT choreo_create_activity('link', 'chain', 'link(text, bigint, jsonb, boolean)');
	SELECT choreo_emit('chain', 'link1', '{}');
});
ok(caught_up('link', 10), 'a chain of ten links, each emitted by the previous one\'s processor, ran');
is($node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT entity), max(seq) FROM seen WHERE activity = 'link'}),
	'10|10|1', 'each link once');

# -------------------------------------------------------------------------
# a fast shutdown is not held up by a long processor
$node->safe_psql('postgres', q{
	CREATE FUNCTION long_run(ent text, tl bigint, evs jsonb, init boolean) RETURNS choreo_outcome
	    LANGUAGE sql AS $$ SELECT pg_sleep(600); SELECT choreo_eof(tl) $$;
	SELECT choreo_create_activity('long_run', 'long', 'long_run(text, bigint, jsonb, boolean)');
	SELECT choreo_emit('long', 'l1', '{}');
});
$node->poll_query_until('postgres', q{
	SELECT status = 'running' FROM choreo_activities WHERE activity = 'long_run'})
  or die 'the long run did not start';
ok($node->stop('fast', fail_ok => 1), 'a fast shutdown completed with a processor running');
done_testing();
