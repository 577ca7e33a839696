/*
 * workers/work_source.h
 *		The work-source interface: what a capability registers so that the
 *		background workers run its work, and what the workers offer it.
 *
 * The workers' loop (worker.c) knows no capability.  A capability whose
 * work runs in the workers (post-commit hooks today, activities next)
 * registers a WorkSource from _PG_init, when the library is preloaded,
 * with WorkSourceRegister.  Everything the loop does is in terms of
 * sources and their items:
 *
 * Items and keys.  An item is a unit of work of one source, named by a
 * key (a uint64, never 0) that the source chooses and that identifies the
 * item exactly: two items with one key are one item to the workers.  The
 * key is also the unit of mutual exclusion: a worker claims an item's key
 * before it runs anything of it, so no two workers run one item at once.
 * Examples: a post-commit hook's item is its transaction (its hooks run in
 * order, one after another); an activity's would be one (activity,
 * entity); a cron engine's, its timer.
 *
 * Steps.  A worker runs an item step by step, each step in a transaction
 * of its own that the loop begins: take_step takes the item's next due
 * step (and says which role it runs as), run_step runs it as that role,
 * and the loop commits, still as the role, so that what the step queued
 * for its commit (deferred triggers, a cursor WITH HOLD) runs as the role
 * too.  After a step that was taken, committed or not, the worker's
 * session is reset (worker_session.c); a failed step's error is then
 * given to step_failed, which records it (a retry with backoff) in a
 * transaction of its own.  The worker runs steps of its item until none
 * is due, then releases the claim; if the item was announced again
 * meanwhile (see below), it runs it once more first.  A session serves
 * one role (worker_session.c says why): a step of another role is rolled
 * back untouched, the item released, and at the end of its pass the
 * worker hands over to a fresh process, whose first look finds the item.
 *
 * Finding work.  Work is found in two ways:
 * - announced: a transaction that commits work calls WorkersWake(source
 *   name, key) at commit; the commit queue (shmem.c) carries (source, key)
 *   pairs, so a worker finds new work without looking through the
 *   source's tables.  Key 0, or a full queue, means "somewhere in this
 *   source": that source is looked through;
 * - looked for: find_due lists the items due now, a bounded batch at a
 *   time, from a position on (the loop asks for batch after batch until
 *   one is short), and the time until the source's earliest item that is
 *   not due yet falls due (a retry, a timer).  The loop looks through a
 *   source at the start, when the queue says so, when a step's failure
 *   changed its schedule (step_failed returned true), when its earliest
 *   time falls due, and at least once a minute.
 * A worker sleeps on its latch until a commit wakes it or the earliest
 * time of all sources falls due.
 *
 * How the pool is shared.  choreograph.max_workers workers serve every
 * source; none is dedicated to one.  A source may limit how many of them
 * run its items at once (max_concurrency; 0: as many as there are), and
 * may limit how many steps of one item a worker runs before it lets the
 * item go to the back of the commit queue (steps_per_claim; 0: until the
 * item has no step due).
 *
 * Why it cannot deadlock.  A worker holds at most one claim at a time,
 * and never waits for one: when an item's key is claimed by another
 * worker, it tells that worker to run the item once more before it lets
 * go (so nothing announced is lost) and moves on; when the item's source
 * is at its concurrency limit, it marks the source "passed over" and
 * moves on, and the worker that next releases a claim of that source has
 * the source looked through again (and wakes a sleeping worker for it), so
 * nothing passed over is lost either.  No worker ever waits for another,
 * so no combination of claims and limits can deadlock the pool.
 *
 * Why it cannot starve a source.  Announced items of all sources share
 * one commit queue, taken in order, so an item waits only for those
 * announced before it.  Every pass of every worker looks through every
 * source that needs a look.  A source whose limit is below the number of
 * workers always leaves workers to the others; an item that could keep a
 * worker forever (an entity whose events never stop) is cut into turns by
 * steps_per_claim.  A source that sets neither must have finite items: a
 * post-commit hook's transaction, for instance, has the hooks it
 * committed and no more.
 *
 * For the next source: fill in a WorkSource (static, const), register it
 * in _PG_init when preloaded, announce work with WorkersWake(name, key) at
 * commit (from a TransactionParticipant's at_commit: it cannot fail), and
 * write find_due and step_failed with the helpers below
 * (BeginWorkerTransaction, ExecuteWorkerQuery).  The source's own views of
 * what runs read WorkersRunning.
 */
#ifndef CHOREOGRAPH_WORK_SOURCE_H
#define CHOREOGRAPH_WORK_SOURCE_H

#include "postgres.h"

#include "executor/spi.h"

/* the most sources that may register */
#define MAX_WORK_SOURCES 8

/* how many items one find_due returns at most (and the commit queue takes at once) */
#define WORK_BATCH 64

/* the position a look through a source starts from */
#define WORK_LOOK_START PG_INT64_MIN

/* An item a look found due */
typedef struct WorkItem
{
	uint64		key;			/* the item, and what a claim covers; never 0 */
	int64		position;		/* where the look goes on after this item */
} WorkItem;

/* A step taken by take_step, in the step's memory (reset before the next) */
typedef struct WorkStep
{
	int64		id;				/* what it runs (a hook's id), for views and
								 * messages; 0 until a step is taken */
	Oid			role;			/* the role it runs as */
	void	   *arg;			/* the source's own, for run_step */
} WorkStep;

typedef struct WorkSource
{
	/* names the source in WorkersWake, WorkersRunning and messages */
	const char *name;

	/* how many workers may run its items at once; 0: any number */
	int			max_concurrency;

	/* steps of one item a worker runs before the item waits its turn; 0: all */
	int			steps_per_claim;

	/*
	 * Lists up to max items due now that come after position after (or
	 * from WORK_LOOK_START), in the source's order, into items; returns
	 * how many.  When it returns fewer than max, it lowers *wait_ms to the
	 * milliseconds until its earliest item that is not due yet falls due
	 * (leaving it, at most a minute, when there is none).  Called outside
	 * any transaction: it begins its own.
	 */
	int			(*find_due) (int64 after, WorkItem *items, int max, long *wait_ms);

	/*
	 * In the step's transaction (begun by the loop, SPI connected, a
	 * snapshot pushed), as the worker's own user: takes the next due step
	 * of item key so that a rollback puts it back (deletes or updates what
	 * marks it as waiting), and returns false when none is due.  Sets
	 * step->id as soon as a step is taken (an error from then on is the
	 * step's failure, before that the item's), then step->role and
	 * step->arg, and raises an error if the step can no longer run (its
	 * role or function gone).
	 */
	bool		(*take_step) (uint64 key, WorkStep *step);

	/*
	 * Runs the step taken, in the same transaction and SPI connection (what
	 * take_step kept in SPI's memory is still there), as step->role with
	 * SECURITY_LOCAL_USERID_CHANGE, inside a GUC nest level the loop rolls
	 * back.  An error is the step's failure.
	 */
	void		(*run_step) (WorkStep *step);

	/*
	 * After a failure: outside any transaction, after the rollback and, if
	 * a step was taken (step->id set), the session's reset.  step->arg may
	 * point into memory that went with the transaction.  Logs the error
	 * and records it (in a transaction of its own); returns true when that
	 * changed when the source next has work due (a retry was scheduled),
	 * so that the loop looks through it again before it sleeps.
	 */
	bool		(*step_failed) (uint64 key, WorkStep *step, ErrorData *edata);

	/*
	 * Optional: sets what the source needs in the worker's session (with
	 * PGC_S_OVERRIDE, which a step cannot change and RESET ALL keeps), at
	 * the worker's start and after each reload of the configuration.
	 */
	void		(*apply_settings) (void);
} WorkSource;

/* work_source.c: the registered sources */
extern void WorkSourceRegister(const WorkSource *source);
extern int	WorkSourceCount(void);
extern const WorkSource *WorkSourceGet(int id);
extern int	WorkSourceFind(const char *name);

/* shmem.c: what sources use of the shared state */
extern void WorkersWake(const char *source, uint64 key);
extern int	WorkersRunning(const char *source, int64 *ids, int max);

/* worker_transaction.c: the transactions and queries of the workers */
typedef struct WorkerQuery
{
	const char *sql;			/* may name tables with CHOREO_TABLE_HERE */
	int			nargs;
	Oid			argtypes[5];
	SPIPlanPtr	plan;			/* prepared on first use, kept */
	char	   *prepared;		/* the text it was prepared from, if sql has markers */
} WorkerQuery;

extern MemoryContext BeginWorkerTransaction(void);
extern void CommitWorkerTransaction(MemoryContext caller);
extern void RollbackWorkerTransaction(MemoryContext caller);
extern void EndFailedWorkerTransaction(MemoryContext caller);
extern void ExecuteWorkerQuery(WorkerQuery *query, Datum *args, int expected);

#endif							/* CHOREOGRAPH_WORK_SOURCE_H */
