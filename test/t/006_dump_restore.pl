# Dump and restore by a database owner who is not a superuser, with two
# other roles' definitions and hooks in the same database, into a database
# where a superuser created the extension (as hosted services do); and by a
# superuser, which keeps everything.
# - The owner's pg_dump reads the definitions (everyone may) but not the
#   outbox, which holds other roles' payloads: without
#   --exclude-table-data=choreograph.hooks it stops there, and with it the
#   dump holds no payload.
# - The owner's pg_restore, with no option, restores the owner's own
#   pipelines, steps, buffers, hooks, activities and their cursors, and
#   every stream's events, and none of the other roles' definitions (they
#   are skipped, with a warning in the server log), whether the dump was
#   the owner's or a superuser's.
# - A superuser's dump restored by a superuser is the source, row for row.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;
my $dir = PostgreSQL::Test::Utils::tempdir;

$node->safe_psql('postgres', q{
CREATE ROLE dbowner LOGIN;
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE DATABASE src OWNER dbowner;
});
$node->safe_psql('src', 'CREATE EXTENSION choreograph');
$node->safe_psql('src', q{
SET ROLE dbowner;
CREATE SCHEMA shared;
GRANT USAGE, CREATE ON SCHEMA shared TO alice, bob;
CREATE FUNCTION whoami(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT current_user::text $$;
CREATE FUNCTION always(jsonb) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE FUNCTION hook_cb(jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE TABLE events (id serial PRIMARY KEY, who text DEFAULT current_user, kind text);
GRANT INSERT ON events TO alice, bob;
GRANT USAGE ON SEQUENCE events_id_seq TO alice, bob;
SELECT choreo_add_step('owner_flow', 'one', 'whoami(jsonb)');
SELECT choreo_add_step('owner_flow', 'two', 'whoami(jsonb)', 'always(jsonb)');
SELECT choreo_create_buffer('owner_events', 'events', 50);
CREATE FUNCTION watch(entity text, tail bigint, events jsonb, initial boolean)
    RETURNS choreo_outcome LANGUAGE sql
    AS $$ SELECT choreo_eof(COALESCE((events->-1->>'seq')::bigint, tail)) $$;
SELECT choreo_create_activity('owner_watch', 'orders', 'watch(text,bigint,jsonb,boolean)',
                              '{"engine": "manual"}');
SELECT choreo_emit('orders', 'o' || i % 3, jsonb_build_object('i', i)) FROM generate_series(1, 9) i;
-- an eventbox recipient of the owner's: one event consumed per batch
CREATE FUNCTION box_proc(r text, s jsonb, e jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('transitions', jsonb_build_array(jsonb_build_object(
        'events', jsonb_path_query_array(e, '$[0].id'),
        'state', jsonb_build_object('n', COALESCE((s->>'n')::int, 0) + 1)))) $$;
SELECT choreo_send('box', jsonb_build_object('i', i)) FROM generate_series(1, 4) i;
SELECT choreo_process_batch('box', 'box_proc(text, jsonb, jsonb)');
});
$node->safe_psql('src', q{SET ROLE alice; SELECT choreo_send('box', '"from alice"'); SELECT choreo_send('alices', '1')});
$node->safe_psql('src', q{SET ROLE dbowner; SELECT choreo_run_activity('owner_watch', 'o1')});
for my $role ('alice', 'bob')
{
	$node->safe_psql('src', qq{
SET ROLE $role;
SELECT choreo_add_step('shared.${role}_flow', 'one', 'public.whoami(jsonb)');
SELECT choreo_create_buffer('shared.${role}_events', 'public.events');
SELECT choreo_create_activity('shared.${role}_watch', 'orders', 'public.watch(text,bigint,jsonb,boolean)',
                              '{"engine": "manual"}');
});
	$node->safe_psql('src', "SET ROLE $role; SELECT choreo_run_activity('shared.${role}_watch', 'o2')");
}
# queued hooks of each role, as a restore (or the workers' database) has them
$node->safe_psql('src', q{
INSERT INTO choreograph.hooks (txid, callback, role, payload)
VALUES (1, 'hook_cb(jsonb)', 'dbowner', '{"secret": "of dbowner"}'),
       (1, 'hook_cb(jsonb)', 'alice', '{"secret": "of alice"}'),
       (1, 'hook_cb(jsonb)', 'bob', '{"secret": "of bob"}');
});

# what a database holds, in a stable order
my %what = (
	steps => 'SELECT schema, pipeline, position, step, precheck, job FROM choreo_steps ORDER BY 1, 2, 3',
	pipelines => 'SELECT namespace, name, owner FROM choreograph.pipelines ORDER BY 1, 2',
	buffers => 'SELECT schema, name, target, max_batch, owner FROM choreo_buffers ORDER BY 1, 2',
	hooks => 'SELECT callback, role, payload, attempts FROM choreograph.hooks ORDER BY role',
	activities => 'SELECT namespace, name, stream, processor, owner FROM choreograph.activities ORDER BY 1, 2',
	cursors => 'SELECT schema, activity, entity, tail, head FROM choreo_activities ORDER BY 1, 2, 3',
	events => 'SELECT stream, entity, seq, payload FROM choreograph.events JOIN choreograph.stream_entities ON id = entity_id ORDER BY 1, 2, 3',
	inbox => 'SELECT recipient, id, value FROM choreograph.inbox ORDER BY id',
	states => 'SELECT recipient, state, eversion, owner FROM choreograph.eventbox_states ORDER BY 1');
sub contents
{
	my ($db) = @_;
	return { map { $_ => $node->safe_psql($db, $what{$_}) } keys %what };
}
my $source = contents('src');

# The owner may not read the outbox: its dump stops there, unless told to
# leave the outbox's rows out
$node->command_fails_like(
	[ 'pg_dump', '-U', 'dbowner', '-Fc', '-f', "$dir/fails.dump", 'src' ],
	qr/permission denied for table hooks/,
	'the owner\'s pg_dump cannot read the outbox');
$node->command_ok(
	[ 'pg_dump', '-U', 'dbowner', '-Fc', '--exclude-table-data=choreograph.hooks',
	  '-f', "$dir/owner.dump", 'src' ],
	'the owner\'s pg_dump without the outbox\'s rows');
$node->command_ok([ 'pg_restore', '-f', "$dir/owner.sql", "$dir/owner.dump" ],
	'the owner\'s dump as SQL');
my $owner_sql = slurp_file("$dir/owner.sql");
unlike($owner_sql, qr/of (dbowner|alice|bob)/, 'the owner\'s dump holds no hook payload');
like($owner_sql, qr/alice_flow/, 'it holds every role\'s definitions (everyone may read them)');

$node->command_ok([ 'pg_dump', '-Fc', '-f', "$dir/super.dump", 'src' ], 'a superuser\'s pg_dump');

# A target database of the owner's, where a superuser created the extension
sub target
{
	my ($db, $owner) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db" . ($owner ? " OWNER $owner" : ''));
	$node->safe_psql($db, 'CREATE EXTENSION choreograph');
}

# what the owner's own rows of the source are
my $owner_only = {
	steps => $node->safe_psql('src', "SELECT schema, pipeline, position, step, precheck, job FROM choreo_steps WHERE pipeline = 'owner_flow' ORDER BY 1, 2, 3"),
	pipelines => $node->safe_psql('src', "SELECT namespace, name, owner FROM choreograph.pipelines WHERE owner = 'dbowner'::regrole ORDER BY 1, 2"),
	buffers => $node->safe_psql('src', "SELECT schema, name, target, max_batch, owner FROM choreo_buffers WHERE owner = 'dbowner'::regrole ORDER BY 1, 2"),
	hooks => $node->safe_psql('src', "SELECT callback, role, payload, attempts FROM choreograph.hooks WHERE role = 'dbowner'::regrole ORDER BY role"),
	activities => $node->safe_psql('src', "SELECT namespace, name, stream, processor, owner FROM choreograph.activities WHERE owner = 'dbowner'::regrole ORDER BY 1, 2"),
	cursors => $node->safe_psql('src', "SELECT schema, activity, entity, tail, head FROM choreo_activities WHERE activity = 'owner_watch' ORDER BY 1, 2, 3") };
like($owner_only->{cursors}, qr/owner_watch\|o1\|3\|3/, 'the owner has a cursor of its own');
like($owner_only->{steps}, qr/owner_flow\|2\|two/, 'the owner has steps of its own');

for my $dump ('owner', 'super')
{
	my $db = "restored_${dump}_by_owner";
	target($db, 'dbowner');
	my $log_offset = -s $node->logfile;
	$node->command_ok(
		[ 'pg_restore', '-U', 'dbowner', '--exit-on-error', '-d', $db, "$dir/$dump.dump" ],
		"the owner restores the $dump dump with no option");
	my $restored = contents($db);
	is($restored->{events}, $source->{events}, "$dump dump restored by the owner: every event");
	is($restored->{inbox}, $source->{inbox}, "$dump dump restored by the owner: every outstanding eventbox event");
	is($restored->{states}, $source->{states}, "$dump dump restored by the owner: every eventbox state");
	for my $table ('steps', 'pipelines', 'buffers', 'activities', 'cursors')
	{
		is($restored->{$table}, $owner_only->{$table},
			"$dump dump restored by the owner: the owner's $table and nobody else's");
	}
	is($restored->{hooks}, $dump eq 'super' ? $owner_only->{hooks} : '',
		"$dump dump restored by the owner: " . ($dump eq 'super' ? 'the owner\'s hook only' : 'no hooks'));
	my $log = substr(slurp_file($node->logfile), $log_offset);
	like($log, qr/WARNING:  2 rows were not written into choreograph\.pipelines/,
		"$dump dump: the server log says which pipelines were skipped");
	like($log, qr/Rows of roles whose privileges role dbowner does not have: alice, bob\./,
		"$dump dump: and whose they were");
	if ($dump eq 'super')
	{
		like($log, qr/hook \d+ of role alice was not written into choreograph\.hooks/,
			'super dump: the server log names each hook skipped');
	}
	# what was restored works
	is($node->safe_psql($db, q{SET ROLE dbowner;
		SELECT choreo_run('owner_flow', '{}'::jsonb)->'bag'->'two'->>'job';
		SELECT choreo_fire_and_wait('owner_events', '{"kind": "after restore"}')->>'who'}),
		"dbowner\ndbowner", "$dump dump restored by the owner: its pipeline runs, its buffer writes");
	# and the streams go on numbering where they were
	is($node->safe_psql($db, q{SET ROLE dbowner;
		SELECT choreo_emit_and_wait('orders', 'o1', '{}');
		SELECT (choreo_run_activity('owner_watch', 'o1')).tail}),
		"4\n4", "$dump dump restored by the owner: the stream numbers on, the activity runs from its tail");
	# the eventbox goes on from its state, new events after the old
	is($node->safe_psql($db, q{SET ROLE dbowner;
		SELECT choreo_send('box', '"after restore"');
		SELECT choreo_process_batch('box', 'box_proc(text, jsonb, jsonb)')->>'eversion';
		SELECT string_agg(value::text, ' ' ORDER BY id) FROM choreo_inbox('box')}),
		qq{\n2\n{"i": 3} {"i": 4} "from alice" "after restore"},
		"$dump dump restored by the owner: the eventbox goes on from its state and ids");
}

# A superuser's dump restored by a superuser is the source
target('restored_by_superuser');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', 'restored_by_superuser', "$dir/super.dump" ],
	'a superuser restores a superuser\'s dump');
is_deeply(contents('restored_by_superuser'), $source,
	'restored by a superuser: every role\'s definitions and hooks');

# The owner's dump restored by a superuser: every definition, no hook
target('owner_dump_by_superuser');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', 'owner_dump_by_superuser', "$dir/owner.dump" ],
	'a superuser restores the owner\'s dump');
my $from_owner_dump = contents('owner_dump_by_superuser');
is_deeply([ @$from_owner_dump{qw(steps pipelines buffers activities cursors events inbox states)} ],
	[ @$source{qw(steps pipelines buffers activities cursors events inbox states)} ],
	'the owner\'s dump restored by a superuser: every definition');
is($from_owner_dump->{hooks}, '', 'and no hook');

# The owner reads no other role's payload in the source either
my ($rc, $out, $err) = $node->psql('src', 'SET ROLE dbowner; SELECT payload FROM choreograph.hooks');
like($err, qr/permission denied for table hooks/, 'the owner may not read the outbox');
is($node->safe_psql('src', 'SET ROLE dbowner; SELECT role FROM choreo_hooks'), 'dbowner',
	'choreo_hooks shows the owner its own hook only');

done_testing();
