/*
 * workers/worker.c
 *		The background workers' loop: it runs the work of the registered
 *		sources (work_source.h says what a source is, and how the pool is
 *		shared between them), and knows none of them.
 *
 * choreograph.max_workers workers are registered at startup when the
 * library is preloaded.  Each sleeps on its latch until a transaction that
 * committed work wakes it (and says on the commit queue which items) or
 * the earliest time a source gave falls due.  Announced items are run as
 * they come off the queue; each source is also looked through (find_due)
 * at the start, when the queue overflowed or cannot name its items, when
 * a failure changed its schedule, when its time falls due, and once a
 * minute, a safety net for wake-ups that cannot be sent.
 *
 * An item is claimed (shmem.c), then run step by step, each step in its
 * own transaction, as the role the source says, up to and including its
 * commit (what the step queued for the commit, deferred triggers or a
 * cursor WITH HOLD, runs as that role too); then the worker's session is
 * made fresh again (worker_session.c), so that the next step, maybe of
 * another role, sees nothing it left behind.  A failing step's
 * transaction is rolled back and the source records the failure; the
 * worker itself goes on.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "workers/workers.h"

PGDLLEXPORT void choreo_worker_main(Datum main_arg);

/* the longest sleep, a safety net for wake-ups that cannot be sent */
#define MAX_SLEEP_MS 60000L

/* this worker's number, from 0 */
static int	worker_index = -1;

/* the memory of one pass over an announced item or a batch of a look */
static MemoryContext pass_cxt = NULL;

/* the memory of one step's run, reset before the next */
static MemoryContext step_cxt = NULL;

/* per source: when to look through it next (0: at once) */
static TimestampTz next_look[MAX_WORK_SOURCES];

/* per source: a failure changed its schedule; look through it before sleeping */
static bool look_again[MAX_WORK_SOURCES];

/*
 * Items a worker takes off the commit queue at a time: one, so that the
 * rest stay for the workers woken for them (a worker holding a batch runs
 * it alone, one item after another, however long each takes, while the
 * others sleep)
 */
#define QUEUE_TAKE 1

/*
 * A session serves one role (worker_session.c): a step of another role is
 * left as it was, and once the worker has run what it can of its own
 * role's, at the end of its pass, it hands over to a fresh process.
 */
static bool another_role_waits = false;

/* What came of one step (RunStep) */
typedef enum StepResult
{
	STEP_NONE,					/* no step of the item was due */
	STEP_RAN,					/* a step ran (committed, or failed) */
	STEP_RESCHEDULED,			/* a step failed and its source's schedule changed */
	STEP_OTHER_ROLE,			/* the next step is another role's: left as it was */
} StepResult;

/* bgw_extra[0] of a worker started by its predecessor */
#define WORKER_SUCCESSOR 1

/* Describes worker number index (from 0) */
static void
DescribeWorker(BackgroundWorker *worker, int index)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = 1;
	strlcpy(worker->bgw_library_name, "choreograph", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, "choreo_worker_main", BGW_MAXLEN);
	strlcpy(worker->bgw_type, "choreograph worker", BGW_MAXLEN);
	snprintf(worker->bgw_name, BGW_MAXLEN, "choreograph worker %d", index + 1);
	worker->bgw_main_arg = Int32GetDatum(index);
}

/* Registers the workers; called from _PG_init when preloaded, after the sources */
void
WorkersRegister(void)
{
	BackgroundWorker worker;

	for (int i = 0; i < choreo_max_workers; i++)
	{
		DescribeWorker(&worker, i);
		RegisterBackgroundWorker(&worker);
	}
}

/*
 * Ends this worker so that a new process, with a session no role has used
 * yet, runs the steps of other roles it left (worker_session.c says why a
 * session serves one role).  The successor is started at once as a
 * dynamic background worker with the same number, and this one exits with
 * status 0, which tells the postmaster not to restart it; when no slot is
 * free for the successor, this one exits with status 1 and the postmaster
 * restarts it a second later.  The items left stay where their sources
 * keep them, and the successor's first look through every source finds
 * them, with whatever this one took from the commit queue.
 */
static void
RestartForAnotherRole(void)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	(void) WorkerClaimRelease(worker_index, false);
	DescribeWorker(&worker, worker_index);
	worker.bgw_extra[0] = WORKER_SUCCESSOR;
	if (RegisterDynamicBackgroundWorker(&worker, &handle))
		proc_exit(0);
	ereport(LOG,
			(errmsg("choreograph worker %d restarts to run work of another role",
					worker_index + 1),
			 errdetail("No background worker slot was free to start its successor at once."),
			 errhint("Raise max_worker_processes.")));
	proc_exit(1);
}

/*
 * Runs the next due step of an item, in a transaction of its own: the
 * source takes it, the session is checked to serve its role, and the
 * source runs it as that role, through the commit.  Everything it
 * allocates is in step_cxt, reset each time.
 */
static StepResult
RunStep(const WorkSource *source, uint64 key)
{
	WorkStep   *step;
	ErrorData  *volatile edata = NULL;
	volatile bool other_role = false;
	Oid			worker_userid;
	int			worker_sec_context;

	GetUserIdAndSecContext(&worker_userid, &worker_sec_context);
	MemoryContextReset(step_cxt);
	MemoryContextSwitchTo(step_cxt);
	/* in memory, not a local: what take_step sets survives an error */
	step = palloc0(sizeof(WorkStep));
	PG_TRY();
	{
		MemoryContext cxt = BeginWorkerTransaction();

		if (source->take_step(key, step))
		{
			Assert(step->id != 0 && OidIsValid(step->role));
			WorkerSetRunning(worker_index, step->id);
			if (!WorkerSessionServes(step->role))
				other_role = true;
			else
			{
				int			nestlevel;

				/*
				 * From here to the end of the commit, the transaction is the
				 * step's: the commit runs what it queued for it (deferred
				 * triggers, the query of a cursor WITH HOLD, pre-commit hooks
				 * it registered, which then queue more), and none of it may
				 * run as the worker's superuser.  Nor may it change role.
				 */
				SetUserIdAndSecContext(step->role,
									   worker_sec_context | SECURITY_LOCAL_USERID_CHANGE);
				/* whatever settings the step changes, the next one will not see */
				nestlevel = NewGUCNestLevel();
				source->run_step(step);
				AtEOXact_GUC(false, nestlevel);
			}
		}
		if (other_role)
			RollbackWorkerTransaction(cxt); /* the step stays as it was */
		else
			CommitWorkerTransaction(cxt);
		SetUserIdAndSecContext(worker_userid, worker_sec_context);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(step_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* the abort goes back to the worker's role; so does a failure after the commit */
		EndFailedWorkerTransaction(step_cxt);
		SetUserIdAndSecContext(worker_userid, worker_sec_context);
	}
	PG_END_TRY();

	if (other_role)
	{
		/* nothing of the step ran: the rest of its item waits too */
		another_role_waits = true;
		WorkerSetRunning(worker_index, 0);
		pgstat_report_activity(STATE_IDLE, NULL);
		return STEP_OTHER_ROLE;
	}

	/* nothing the step left in the session may reach the next one */
	if (step->id != 0)
		WorkerSessionReset();
	WorkerSetRunning(worker_index, 0);
	if (edata != NULL)
	{
		bool		rescheduled = source->step_failed(key, step, edata);

		FreeErrorData(edata);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (step->id != 0)
			return rescheduled ? STEP_RESCHEDULED : STEP_RAN;
		return STEP_NONE;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	return step->id != 0 ? STEP_RAN : STEP_NONE;
}

/*
 * Claims an item of source number source_id and runs its steps until none
 * is due (and it was not announced again meanwhile), its role is not this
 * session's, or it has had its turn (steps_per_claim).  Returns what the
 * claim came to: an item another worker holds, or whose source is at its
 * limit, is left to them (shmem.c).
 */
static WorkClaim
RunItem(int source_id, uint64 key)
{
	const WorkSource *source = WorkSourceGet(source_id);
	WorkClaim	claim = WorkerClaim(worker_index, source_id, key, source->max_concurrency);
	int			steps = 0;

	if (claim != WORK_CLAIMED)
		return claim;
	for (;;)
	{
		StepResult	result = RunStep(source, key);

		CHECK_FOR_INTERRUPTS();
		if (result == STEP_RESCHEDULED)
			look_again[source_id] = true;
		if (result == STEP_OTHER_ROLE)
		{
			/* the successor's first look finds it, announced or not */
			(void) WorkerClaimRelease(worker_index, false);
			break;
		}
		if (result == STEP_NONE)
		{
			if (WorkerClaimRelease(worker_index, true))
				break;
			continue;			/* announced again meanwhile: once more */
		}
		if (source->steps_per_claim > 0 && ++steps >= source->steps_per_claim)
		{
			/* its turn is over: to the back of the queue */
			(void) WorkerClaimRelease(worker_index, false);
			WorkQueueAnnounce(source_id, key);
			break;
		}
	}
	return WORK_CLAIMED;
}

/*
 * Looks through a source and runs its due items until a look finds none
 * this worker can run; returns how long to sleep before the source's next
 * item falls due.  Used when the commit queue cannot tell where the work
 * is: at start, after the queue overflowed, for retries, and once a minute.
 */
static long
LookThrough(int source_id)
{
	const WorkSource *source = WorkSourceGet(source_id);
	int64		after = WORK_LOOK_START;

	for (;;)
	{
		WorkItem	items[WORK_BATCH];
		long		wait_ms = MAX_SLEEP_MS;
		int			n;

		MemoryContextReset(pass_cxt);
		MemoryContextSwitchTo(pass_cxt);
		n = source->find_due(after, items, WORK_BATCH, &wait_ms);
		Assert(n >= 0 && n <= WORK_BATCH);
		for (int i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			/* at its limit: looked through again when a claim of it ends */
			if (RunItem(source_id, items[i].key) == WORK_AT_LIMIT)
				return wait_ms;
			after = items[i].position;
		}
		if (n < WORK_BATCH)
			return wait_ms;
	}
}

/* Applies what each source sets in the worker's session */
static void
ApplySourceSettings(void)
{
	for (int s = 0; s < WorkSourceCount(); s++)
		if (WorkSourceGet(s)->apply_settings != NULL)
			WorkSourceGet(s)->apply_settings();
}

/*
 * Shows in pg_stat_activity until when an idle worker sleeps, unless a
 * commit wakes it, and since when (each pass of its loop, a reload
 * included, shows a new "since"):
 * "choreograph: idle until 2026-12-01 23:19:06.715+00 (since 2026-12-01 23:19:05.1+00)"
 */
static void
ReportIdleUntil(TimestampTz wake_at)
{
	char		activity[160];
	char		since[MAXDATELEN + 1];

	strlcpy(since, timestamptz_to_str(GetCurrentTimestamp()), sizeof(since));
	snprintf(activity, sizeof(activity), "choreograph: idle until %s (since %s)",
			 timestamptz_to_str(wake_at), since);
	pgstat_report_activity(STATE_IDLE, activity);
}

/* Waits out the delay WorkerStartDelay gave, before connecting */
static void
WaitBeforeConnecting(long start_delay)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), start_delay);
	long		left;

	ereport(LOG,
			(errmsg("choreograph worker %d waits %ld ms before it connects to database \"%s\" again",
					worker_index + 1, start_delay, choreo_database),
			 errdetail("It could not connect when it last started.")));

	/* the latch is set when a process starts: wait out the whole delay */
	while ((left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until)) > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Entry point of each worker */
void
choreo_worker_main(Datum main_arg)
{
	long		start_delay;

	worker_index = DatumGetInt32(main_arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* after starts that could not connect (no such database), wait longer each time */
	start_delay = WorkerStartDelay(worker_index);
	if (start_delay > 0)
		WaitBeforeConnecting(start_delay);
	BackgroundWorkerInitializeConnection(choreo_database, NULL, 0);
	WorkerStarted(worker_index);

	pass_cxt = AllocSetContextCreate(TopMemoryContext, "choreograph worker",
									 ALLOCSET_DEFAULT_SIZES);
	step_cxt = AllocSetContextCreate(TopMemoryContext, "choreograph step",
									 ALLOCSET_DEFAULT_SIZES);
	/* published before the first look, so no commit after it goes unseen */
	WorkerSlotAttach(worker_index);
	ApplySourceSettings();
	/* a successor (RestartForAnotherRole) starts as often as roles change */
	ereport(MyBgworkerEntry->bgw_extra[0] == WORKER_SUCCESSOR ? DEBUG1 : LOG,
			(errmsg("choreograph worker %d started in database \"%s\"",
					worker_index + 1, choreo_database)));

	/* every source is looked through at once: next_look is 0 */
	for (;;)
	{
		WorkEntry	entries[QUEUE_TAKE];
		bool		look_everywhere[MAX_WORK_SOURCES];
		int			nentries;
		TimestampTz wake_at;
		long		sleep_ms;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			ApplySourceSettings();
		}

		/* the items committed transactions announced since the last look */
		nentries = WorkQueueTake(entries, QUEUE_TAKE, look_everywhere);
		for (int i = 0; i < nentries; i++)
		{
			MemoryContextReset(pass_cxt);
			MemoryContextSwitchTo(pass_cxt);
			CHECK_FOR_INTERRUPTS();
			(void) RunItem(entries[i].source, entries[i].key);
		}

		for (int s = 0; s < WorkSourceCount(); s++)
		{
			long		wait_ms;

			if (!look_everywhere[s] && !look_again[s] && GetCurrentTimestamp() < next_look[s])
				continue;
			/* a step that failed meanwhile set a retry: when it is due is now known */
			do
			{
				look_again[s] = false;
				wait_ms = LookThrough(s);
			} while (look_again[s]);
			next_look[s] = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
		}
		if (another_role_waits)
			RestartForAnotherRole();
		if (nentries > 0)
			continue;			/* the queue may hold more */

		/* until the earliest time of all sources (a minute at most) */
		wake_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), MAX_SLEEP_MS);
		for (int s = 0; s < WorkSourceCount(); s++)
			wake_at = Min(wake_at, next_look[s]);
		sleep_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), wake_at);
		if (!WorkerMaySleep(worker_index))
			continue;			/* work was announced meanwhile */
		pgstat_report_stat(true);
		ReportIdleUntil(wake_at);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 1), PG_WAIT_EXTENSION);
		WorkerAwake(worker_index);
	}
}
