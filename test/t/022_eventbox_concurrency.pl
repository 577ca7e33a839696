# The eventbox under load and across a crash: pgbench clients send to five
# recipients (each send beside a row of the test's own in the same
# transaction, and a second send rolled back in a savepoint) and process
# them at once (wait => true), the processor consuming most events, taking
# some for garbage and recording each as a side effect; an immediate stop
# in the middle, a restart, and everything processed.  Exactly what was
# committed is there, each event once: sent = consumed + garbage +
# outstanding at every point, with no duplicate and nothing that was rolled
# back, and each state's count is its recipient's consumed events.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('eventbox_concurrency');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
max_connections = 20
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
CREATE TABLE sent (recipient text, token text);
CREATE TABLE consumed (recipient text, token text);
CREATE TABLE dropped (recipient text, token text);
CREATE FUNCTION send_one(r int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    token text := md5(random()::text || clock_timestamp()::text);
BEGIN
    PERFORM choreo_send('r' || r, jsonb_build_object('token', token));
    INSERT INTO sent VALUES ('r' || r, token);
    BEGIN
        PERFORM choreo_send('r' || r, jsonb_build_object('token', 'aborted-' || token));
        RAISE EXCEPTION 'rolled back';
    EXCEPTION WHEN raise_exception THEN
        NULL;
    END;
END $$;
-- consumes the events whose token does not start with '0', drops the
-- others as garbage; the state counts what it consumed
CREATE FUNCTION count_proc(recipient text, state jsonb, events jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    keep jsonb := '[]';
    drop jsonb := '[]';
    e jsonb;
BEGIN
    FOR e IN SELECT * FROM jsonb_array_elements(events) LOOP
        IF left(e->'value'->>'token', 1) = '0' THEN
            drop := drop || (e->'id');
            INSERT INTO dropped VALUES (recipient, e->'value'->>'token');
        ELSE
            keep := keep || (e->'id');
            INSERT INTO consumed VALUES (recipient, e->'value'->>'token');
        END IF;
    END LOOP;
    RETURN jsonb_build_object('garbage', drop, 'transitions', jsonb_build_array(
        jsonb_build_object('events', keep,
                           'state', jsonb_build_object('n', COALESCE((state->>'n')::int, 0)
                                                             + jsonb_array_length(keep)))));
END $$;
});

# check NAME: the invariants, as the database holds them now
sub check
{
	my ($name) = @_;
	is( $node->safe_psql('postgres', q{
			SELECT count(*) FROM (
				(SELECT recipient, token FROM sent
				 EXCEPT ALL
				 SELECT * FROM (SELECT recipient, token FROM consumed
				                UNION ALL SELECT recipient, token FROM dropped
				                UNION ALL SELECT recipient, value->>'token'
				                            FROM choreograph.inbox) x)
				UNION ALL
				(SELECT * FROM (SELECT recipient, token FROM consumed
				                UNION ALL SELECT recipient, token FROM dropped
				                UNION ALL SELECT recipient, value->>'token'
				                            FROM choreograph.inbox) y
				 EXCEPT ALL
				 SELECT recipient, token FROM sent)) d}),
		'0', "$name: sent = consumed + garbage + outstanding, each once");
	is( $node->safe_psql('postgres', q{
			SELECT count(*) FROM choreograph.inbox WHERE value->>'token' LIKE 'aborted-%'}),
		'0', "$name: nothing rolled back was written");
	is( $node->safe_psql('postgres', q{
			SELECT count(*) FROM choreograph.eventbox_states s
			 WHERE (s.state->>'n')::int
			       <> (SELECT count(*) FROM consumed c WHERE c.recipient = s.recipient)}),
		'0', "$name: each state counts its recipient's consumed events");
}

my $dir = PostgreSQL::Test::Utils::tempdir;
open my $fh, '>', "$dir/send.sql" or die $!;
print $fh "\\set r random(1, 5)\nSELECT send_one(:r);\n";
close $fh;
open $fh, '>', "$dir/process.sql" or die $!;
print $fh "\\set r random(1, 5)\n"
  . "SELECT choreo_process_batch('r' || :r, 'count_proc(text, jsonb, jsonb)', 7, wait => true);\n";
close $fh;

# run_load SECONDS: pgbench sending and processing at once
sub run_load
{
	my ($seconds) = @_;
	return IPC::Run::start(
		[
			'pgbench', '-n', '-c', '4', '-j', '2', '-T', $seconds,
			'-f', "$dir/send.sql\@3", '-f', "$dir/process.sql\@1",
			$node->connstr('postgres')
		],
		'>', "$dir/pgbench.out", '2>', "$dir/pgbench.err",
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

# a first round to its end
my $load = run_load(4);
$load->finish;
like(slurp_file("$dir/pgbench.out"), qr/number of failed transactions: 0/,
	'no transaction failed under load (no deadlock, no serialization error)')
  or diag(slurp_file("$dir/pgbench.err"));
check('after the load');
my $sent = $node->safe_psql('postgres', 'SELECT count(*) FROM sent');
cmp_ok($sent, '>', 100, "the load sent events ($sent)");

# a second round, stopped by a crash in the middle
$load = run_load(30);
$node->poll_query_until('postgres',
	"SELECT count(*) >= $sent + 200 FROM sent")
  or die 'the second round did not get going';
$node->stop('immediate');
eval { $load->finish; };
$node->start;
check('after the crash');

# everything processed afterwards: nothing outstanding, nothing lost
$node->safe_psql('postgres', q{
	SELECT choreo_process_batch('r' || g, 'count_proc(text, jsonb, jsonb)', 100000)
	  FROM generate_series(1, 5) g});
is($node->safe_psql('postgres', 'SELECT count(*) FROM choreograph.inbox'),
	'0', 'every event processed in the end');
check('in the end');
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM dropped'), '>', 0,
	'some events went as garbage');

$node->stop;
done_testing();
