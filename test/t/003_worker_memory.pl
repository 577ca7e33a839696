# The post-commit hook workers' memory stays flat however many hooks fail:
# with choreograph.hook_max_attempts = 1, after a first batch of failing
# hooks (which warms the workers' caches up), a thousand more failing hooks
# (in transactions of one hook and of ten) leave each worker's memory where
# it was.  A worker's memory is read from the server log, where
# pg_log_backend_memory_contexts(pid) writes its memory contexts and, last,
# "Grand total: N bytes in B blocks; F free (C chunks); U used".  The
# growth is measured on U, the bytes in use: N counts whole blocks, which
# a context allocates in sizes doubling up to 8 MB, so one small allocation
# may add a large block to N, while a leak grows U by every chunk it keeps.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# how much the workers' memory in use may grow, all workers together, over
# a thousand failing hooks
my $max_growth = 100 * 1024;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'choreograph'
choreograph.max_workers = 2
choreograph.hook_max_attempts = 1
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION choreograph;
CREATE FUNCTION failing(p jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hook % fails on purpose', p->>'n'
        USING DETAIL = 'a detail', HINT = 'a hint';
END $$;
});

my @workers = split /,/, $node->safe_psql('postgres', q{
	SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
	 WHERE backend_type = 'choreograph worker'});
is(scalar @workers, 2, 'two workers run');

# fail_hooks FIRST, COUNT: registers COUNT failing hooks numbered from
# FIRST, half in transactions of one hook, half in transactions of ten,
# and waits until every one of them has failed
sub fail_hooks
{
	my ($first, $count) = @_;
	my $sql = '';
	my $n = $first;
	while ($n < $first + $count / 2)
	{
		$sql .= "SELECT choreo_post_commit('failing(jsonb)', '{\"n\": $n}');\n";
		$n++;
	}
	while ($n < $first + $count)
	{
		my $last = $n + 9;
		$sql .= "BEGIN;\nSELECT count(choreo_post_commit('failing(jsonb)',"
		  . " jsonb_build_object('n', g))) FROM generate_series($n, $last) g;\nCOMMIT;\n";
		$n += 10;
	}
	$node->safe_psql('postgres', $sql);
	$node->poll_query_until('postgres', qq{
		SELECT count(*) = $count FROM choreo_hooks
		 WHERE status = 'failed'
		   AND (payload->>'n')::int BETWEEN $first AND @{[$first + $count - 1]}})
	  or die "hooks $first to @{[$first + $count - 1]} did not all fail";
	return;
}

# memory_in_use PID: logs the memory contexts of a worker, returns the
# numbers of its Grand total line: (total bytes, bytes in use)
sub memory_in_use
{
	my ($pid) = @_;
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $line = qr/\[$pid\] LOG:  Grand total: (\d+) bytes in \d+ blocks; \d+ free \(\d+ chunks\); (\d+) used/;
	$node->wait_for_log($line, $offset);
	my ($total, $used) = slurp_file($node->logfile, $offset) =~ $line;
	return ($total, $used);
}

# warm-up
fail_hooks(1, 200);
my %before;
$before{$_} = [ memory_in_use($_) ] for @workers;

# a thousand more
fail_hooks(1001, 1000);
my %after;
$after{$_} = [ memory_in_use($_) ] for @workers;

is( $node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE attempts = 1 AND last_error LIKE 'hook % fails on purpose'),
		       count(*)
		  FROM choreo_hooks WHERE status = 'failed'}),
	'1200|1200',
	'every hook was tried once and kept as failed with its error');
is( $node->safe_psql('postgres', q{
		SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity
		 WHERE backend_type = 'choreograph worker'}),
	join(',', @workers),
	'the same workers ran them all (none restarted)');

my ($growth, $total_growth) = (0, 0);
for my $pid (@workers)
{
	my ($total0, $used0) = @{ $before{$pid} };
	my ($total1, $used1) = @{ $after{$pid} };
	diag(sprintf('worker %d: %d bytes in use (%d in all) after the warm-up, '
		  . '%d (%d) after 1,000 more failing hooks: %+d bytes in use',
		  $pid, $used0, $total0, $used1, $total1, $used1 - $used0));
	$growth += $used1 - $used0;
	$total_growth += $total1 - $total0;
}

cmp_ok($growth, '<', $max_growth,
	sprintf('1,000 failing hooks grew the workers\' memory in use by %d bytes'
		  . ' (%d in all), less than %d', $growth, $total_growth, $max_growth));

done_testing();
