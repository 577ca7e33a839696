# Buffers and post-commit hooks under concurrency: several sessions at once
# fire into the same buffers (choreo_fire_forget, a choreo_capture trigger;
# some batches written when full or by choreo_flush, the rest at COMMIT) and
# register post-commit hooks, in many transactions each: committed ones,
# with savepoints released and rolled back (nested too), PL/pgSQL exception
# blocks caught and not, single statements, and aborted ones (ROLLBACK, an
# error, a COMMIT failing on a batch that breaks a constraint).  Every item
# and hook is named by (session, transaction, sequence number); afterwards
# every item and every hook of committed work has arrived exactly once, and
# nothing of aborted work has: the sets are compared exactly, not counted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $sessions = 4;
my $transactions = 300;    # per session

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 2
max_connections = 20
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
-- small batches, so that many are written when full, in mid-transaction
CREATE TABLE items_a (sess int NOT NULL, tx int NOT NULL, seq int NOT NULL CHECK (seq >= 0));
SELECT choreo_create_buffer('a', 'items_a', max_batch => 5);
CREATE TABLE items_b (sess int NOT NULL, tx int NOT NULL, seq int NOT NULL CHECK (seq >= 0),
                      note text);
SELECT choreo_create_buffer('b', 'items_b', max_batch => 50);
-- every row inserted into source fires its envelope into the buffer changes
CREATE TABLE source (sess int, tx int, seq int);
CREATE TABLE changes (id bigserial PRIMARY KEY, payload jsonb NOT NULL);
SELECT choreo_create_buffer('changes', 'changes', max_batch => 7);
CREATE TRIGGER source_capture AFTER INSERT ON source
    FOR EACH ROW EXECUTE FUNCTION choreo_capture('changes');
-- the post-commit hook
CREATE TABLE hook_runs (sess int, tx int, seq int);
CREATE FUNCTION record_hook(p jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO hook_runs VALUES ((p->>'sess')::int, (p->>'tx')::int, (p->>'seq')::int)
$$;
CREATE FUNCTION fail_on_purpose(s int, t int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'aborted on purpose (session %, transaction %)', s, t;
END $$;
CREATE TABLE expected (kind text, sess int, tx int, seq int);
});

# The sessions' scripts.  While writing them, what each transaction does is
# noted in scopes (one per open savepoint or block): what a committed
# transaction kept is expected, the rest must never arrive.
my @expected;    # [kind, session, transaction, sequence number]
my $discarded = 0;
my %kinds_run;
my ($s, $t, $q, @scopes);

# an action: fires an item, inserts a captured row or registers a hook;
# returns it as an SQL statement and as a PL/pgSQL one
sub action
{
	my $r = int(rand(10));
	$q++;
	my $key = qq('{"sess": $s, "tx": $t, "seq": $q}');
	my ($kind, $expr);
	if ($r < 4)
	{
		($kind, $expr) = ('a', "choreo_fire_forget('a', $key)");
	}
	elsif ($r < 6)
	{
		($kind, $expr) =
		  ('b', qq{choreo_fire_forget('b', ${key}::jsonb || '{"note": "n$q"}')});
	}
	elsif ($r < 8)
	{
		push @{ $scopes[-1] }, [ 'change', $s, $t, $q ];
		my $insert = "INSERT INTO source VALUES ($s, $t, $q);";
		return ($insert, $insert);
	}
	else
	{
		($kind, $expr) = ('hook', "choreo_post_commit('record_hook(jsonb)', $key)");
	}
	push @{ $scopes[-1] }, [ $kind, $s, $t, $q ];
	return ("SELECT $expr;", "PERFORM $expr;");
}

# actions N [PLPGSQL]: N actions (and sometimes a flush), as SQL or PL/pgSQL
sub actions
{
	my ($n, $plpgsql) = @_;
	my @lines;
	for (1 .. $n)
	{
		my ($sql, $pl) = action();
		push @lines, $plpgsql ? $pl : $sql;
		if (rand() < 0.15)
		{
			my $which = rand() < 0.5 ? "'a'" : '';
			push @lines, ($plpgsql ? 'PERFORM' : 'SELECT') . " choreo_flush($which);";
		}
	}
	return join("\n", @lines);
}

sub some { return 1 + int(rand(6)); }
sub open_scope { push @scopes, []; return; }
sub keep_scope { my $kept = pop @scopes; push @{ $scopes[-1] }, @$kept; return; }
sub drop_scope { $discarded += @{ pop @scopes }; return; }

my @shapes = qw(commit single released rolled_back nested nested_outer_rolled_back
  exception_block rollback error commit_fails);

# one transaction of session $s: its SQL; notes what it keeps and the error
# it raises on purpose, if any
sub transaction
{
	my ($shape, $errors) = @_;
	$q = 0;
	@scopes = ([]);
	my @sql;
	my $committed = 1;
	if ($shape eq 'commit')
	{
		push @sql, 'BEGIN;', actions(some()), 'COMMIT;';
	}
	elsif ($shape eq 'single')
	{
		my ($statement) = action();
		push @sql, $statement;
	}
	elsif ($shape eq 'released')
	{
		push @sql, 'BEGIN;', actions(some()), 'SAVEPOINT s1;';
		open_scope();
		push @sql, actions(some()), 'RELEASE SAVEPOINT s1;';
		keep_scope();
		push @sql, actions(some()), 'COMMIT;';
	}
	elsif ($shape eq 'rolled_back')
	{
		push @sql, 'BEGIN;', actions(some()), 'SAVEPOINT s1;';
		open_scope();
		push @sql, actions(some()), 'SELECT choreo_flush();', actions(some()),
		  'ROLLBACK TO SAVEPOINT s1;', 'RELEASE SAVEPOINT s1;';
		drop_scope();
		push @sql, actions(some()), 'COMMIT;';
	}
	elsif ($shape eq 'nested')
	{
		push @sql, 'BEGIN;', actions(some()), 'SAVEPOINT s1;';
		open_scope();
		push @sql, actions(some()), 'SAVEPOINT s2;';
		open_scope();
		push @sql, actions(some()), 'ROLLBACK TO SAVEPOINT s2;', 'RELEASE SAVEPOINT s2;';
		drop_scope();
		push @sql, actions(some()), 'RELEASE SAVEPOINT s1;';
		keep_scope();
		push @sql, actions(some()), 'COMMIT;';
	}
	elsif ($shape eq 'nested_outer_rolled_back')
	{
		push @sql, 'BEGIN;', actions(some()), 'SAVEPOINT s1;';
		open_scope();
		push @sql, actions(some()), 'SAVEPOINT s2;';
		open_scope();
		push @sql, actions(some()), 'RELEASE SAVEPOINT s2;';
		keep_scope();
		push @sql, actions(some()), 'ROLLBACK TO SAVEPOINT s1;', 'RELEASE SAVEPOINT s1;';
		drop_scope();
		push @sql, actions(some()), 'COMMIT;';
	}
	elsif ($shape eq 'exception_block')
	{
		push @sql, 'BEGIN;', actions(some()), 'DO $$', 'BEGIN', actions(some(), 1), 'BEGIN';
		open_scope();
		push @sql, actions(some(), 1), 'PERFORM choreo_flush();', actions(some(), 1),
		  "RAISE EXCEPTION 'caught on purpose';",
		  'EXCEPTION WHEN raise_exception THEN NULL;', 'END;';
		drop_scope();
		push @sql, actions(some(), 1), 'BEGIN';
		open_scope();
		push @sql, actions(some(), 1), 'EXCEPTION WHEN others THEN RAISE;', 'END;';
		keep_scope();
		push @sql, 'END $$;', actions(some()), 'COMMIT;';
	}
	elsif ($shape eq 'rollback')
	{
		push @sql, 'BEGIN;', actions(some()), 'SELECT choreo_flush();', actions(some()),
		  'ROLLBACK;';
		$committed = 0;
	}
	elsif ($shape eq 'error')
	{
		push @sql, 'BEGIN;', actions(some()), 'SELECT choreo_flush();', actions(some()),
		  "SELECT fail_on_purpose($s, $t);", (action())[0], 'ROLLBACK;';
		push @$errors, "aborted on purpose (session $s, transaction $t)";
		$committed = 0;
		# the action after the error was refused with its own error
		push @$errors, 'current transaction is aborted, commands ignored until end of transaction block';
	}
	elsif ($shape eq 'commit_fails')
	{
		# the last item breaks items_b's CHECK: its batch fails when
		# written, at COMMIT (or when the buffer fills), and the
		# transaction aborts
		push @sql, 'BEGIN;', actions(some()),
		  qq{SELECT choreo_fire_forget('b', '{"sess": $s, "tx": $t, "seq": -1}');},
		  'COMMIT;';
		push @$errors,
		  'new row for relation "items_b" violates check constraint "items_b_seq_check"';
		$committed = 0;
	}
	$kinds_run{$shape}++;
	if ($committed)
	{
		push @expected, @{ $scopes[0] };
	}
	else
	{
		$discarded += @{ $scopes[0] };
	}
	return join("\n", @sql) . "\n";
}

# same_lines GOT EXPECTED NAME: a test that two lists of lines are the same,
# showing the first difference (not both lists) when they are not
sub same_lines
{
	my ($got, $expected, $name) = @_;
	my $i = 0;
	$i++ while $i < @$got && $i < @$expected && $got->[$i] eq $expected->[$i];
	my $same = $i == @$got && $i == @$expected;
	ok($same, $name)
	  or diag sprintf("%d lines, %d expected; line %d is:\n  %s\nexpected:\n  %s",
		scalar @$got, scalar @$expected, $i + 1,
		$got->[$i] // '(no more lines)', $expected->[$i] // '(no more lines)');
	return $same;
}

my (@scripts, @expected_errors);
for my $session (1 .. $sessions)
{
	# (the subroutines see $s and $t: a foreach variable would be
	# another variable of the same name)
	$s = $session;
	srand(4242 + $s);
	my @errors;
	# wait at the barrier: the test holds advisory lock 1 until every
	# session is waiting for it, so that they all start at once
	my $script = "\\set VERBOSITY terse\nSET client_min_messages = warning;\n"
	  . "SELECT pg_advisory_lock_shared(1);\nSELECT pg_advisory_unlock_shared(1);\n";
	for my $transaction (1 .. $transactions)
	{
		$t = $transaction;
		my $shape = $shapes[ ($t + $s) % @shapes ];
		$script .= transaction($shape, \@errors);
	}
	push @scripts, $script;
	push @expected_errors, \@errors;
}

# Run them all at once (psql reads its script from a file and writes to
# files: nothing to pump meanwhile)
my $dir = PostgreSQL::Test::Utils::tempdir;
my $barrier = $node->background_psql('postgres');
$barrier->query_safe('SELECT pg_advisory_lock(1)');
my @runs;
for my $i (1 .. $sessions)
{
	open my $fh, '>', "$dir/session$i.sql" or die "could not write $dir/session$i.sql: $!";
	print $fh $scripts[ $i - 1 ];
	close $fh;
	push @runs,
	  IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-f', "$dir/session$i.sql" ],
		'>', "$dir/session$i.out", '2>', "$dir/session$i.err",
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}
$node->poll_query_until('postgres', qq{
	SELECT count(*) = $sessions FROM pg_locks
	 WHERE locktype = 'advisory' AND objid = 1 AND NOT granted})
  or die "the $sessions sessions did not all reach the barrier";
$barrier->query_safe('SELECT pg_advisory_unlock(1)');
for my $i (1 .. $sessions)
{
	eval { $runs[ $i - 1 ]->finish; 1 }
	  or die "session $i did not finish within "
	  . "$PostgreSQL::Test::Utils::timeout_default seconds: $@";
	is($runs[ $i - 1 ]->result(0), 0, "session $i: psql ran its whole script");
	my @errors = map { /ERROR:  (.*)$/ ? $1 : "unexpected output: $_" }
	  split /\n/, slurp_file("$dir/session$i.err");
	same_lines(\@errors, $expected_errors[ $i - 1 ],
		"session $i: the errors raised on purpose, and no other");
}
$barrier->quit;

note "transactions per shape: "
  . join(', ', map { "$_ $kinds_run{$_}" } sort keys %kinds_run);
note scalar(@expected) . " items and hooks committed, $discarded discarded";
ok(@expected > 1000 && $discarded > 1000, 'much was committed, much was discarded');

# Every hook of a committed transaction runs
ok( $node->poll_query_until(
		'postgres', 'SELECT NOT EXISTS (SELECT FROM choreograph.hooks)'),
	'the workers ran every hook')
  or diag $node->safe_psql('postgres',
	'SELECT id, status, attempts, last_error FROM choreo_hooks ORDER BY id LIMIT 20');

# What arrived, compared with what was expected
my @rows = map { "('$_->[0]', $_->[1], $_->[2], $_->[3])" } @expected;
while (my @chunk = splice(@rows, 0, 1000))
{
	$node->safe_psql('postgres', 'INSERT INTO expected VALUES ' . join(', ', @chunk));
}
for my $kind (
	[ 'a', 'items fired into buffer a' ],
	[ 'b', 'items fired into buffer b' ],
	[ 'change', 'changes captured into buffer changes' ],
	[ 'hook', 'post-commit hooks' ])
{
	my ($name, $what) = @$kind;
	is( $node->safe_psql('postgres', qq{
		WITH arrived AS (
		    SELECT 'a' AS kind, sess, tx, seq FROM items_a
		    UNION ALL SELECT 'b', sess, tx, seq FROM items_b
		    UNION ALL SELECT 'change', (payload->'new'->>'sess')::int,
		                     (payload->'new'->>'tx')::int, (payload->'new'->>'seq')::int
		                FROM changes
		    UNION ALL SELECT 'hook', sess, tx, seq FROM hook_runs),
		counted AS (
		    SELECT kind, sess, tx, seq, count(*) AS n FROM arrived
		     WHERE kind = '$name' GROUP BY 1, 2, 3, 4),
		wanted AS (SELECT * FROM expected WHERE kind = '$name')
		SELECT format('session %s, transaction %s, #%s: %s',
		              coalesce(w.sess, c.sess), coalesce(w.tx, c.tx), coalesce(w.seq, c.seq),
		              CASE WHEN w.kind IS NULL THEN 'arrived ' || c.n || ' times, never committed'
		                   WHEN c.kind IS NULL THEN 'committed, never arrived'
		                   ELSE 'arrived ' || c.n || ' times' END)
		  FROM wanted w FULL JOIN counted c
		       ON c.sess = w.sess AND c.tx = w.tx AND c.seq = w.seq
		 WHERE w.kind IS NULL OR c.kind IS NULL OR c.n <> 1
		 ORDER BY coalesce(w.sess, c.sess), coalesce(w.tx, c.tx), coalesce(w.seq, c.seq)
		 LIMIT 20}),
		'',
		"$what: each committed one arrived once, no other");
}
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM expected WHERE kind = 'change'}),
	$node->safe_psql('postgres', 'SELECT count(*) FROM source'),
	'one captured change per row of the source table');

done_testing();
