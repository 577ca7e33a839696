/*
 * workers/worker.c
 *		The background workers that run post-commit hooks.
 *
 * choreograph.max_workers workers are registered at startup when the
 * library is preloaded.  Each sleeps on its latch until a transaction that
 * registered hooks commits (transaction.c puts it on the commit queue and
 * wakes them) or a retry falls due.  New hooks are found by their
 * transaction, never by looking through the outbox, which being a queue is
 * mostly dead rows; that look is kept for the start, retries, a full commit
 * queue and a once-a-minute safety net.
 *
 * Each hook runs in its own transaction, as the role that registered it,
 * up to and including its commit (what it queued for the commit, deferred
 * triggers or a cursor WITH HOLD, runs as that role too), and then the
 * worker's session is made fresh again (worker_session.c), so that the next
 * hook, maybe of another role, sees nothing it left behind.  The hook's
 * writes and the deletion of its outbox row commit together, so
 * its effects in the database happen exactly once, whatever crashes.  A
 * failing hook's transaction is rolled back and the failure recorded in a
 * new one, with exponential backoff; the worker itself goes on.  Hooks of
 * one transaction run in registration order: a hook waits until the
 * earlier hooks of its transaction have run (or failed for good), and a
 * worker claims a transaction's hooks (shmem.c) so that no two workers run
 * them at once.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "hooks/hooks.h"
#include "workers/workers.h"
#include "shared/pg_compat.h"

PGDLLEXPORT void choreo_worker_main(Datum main_arg);

/* how many due hooks one look at the outbox returns */
#define DUE_HOOKS_BATCH 64
/* the longest sleep, a safety net for wake-ups that cannot be sent */
#define MAX_SLEEP_MS 60000L

/* set when a failure scheduled a retry: look through the outbox soon */
static bool retry_scheduled = false;

/* the memory of one hook's run, reset before the next */
static MemoryContext hook_cxt = NULL;

typedef struct DueHook
{
	int64		id;
	uint64		group;			/* the registering transaction */
} DueHook;

/*
 * A session serves one role (worker_session.c): a hook of another role is
 * left queued, and once the worker has run what it can of its own role's,
 * at the end of its pass, it hands over to a fresh process.
 */
static bool skipping_for_role = false;	/* the hook just taken: not ours */
static bool another_role_waits = false;

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

/* Registers the workers; called from _PG_init when preloaded */
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
 * yet, runs the hooks of other roles it left (worker_session.c says why a
 * session serves one role).  The successor is started at once as a dynamic background worker
 * with the same number, and this one exits with status 0, which tells the
 * postmaster not to restart it; when no slot is free for the successor,
 * this one exits with status 1 and the postmaster restarts it a second
 * later.  The hooks left stay queued, and the successor's first look
 * through the outbox finds them, with whatever this one took from the
 * commit queue.
 */
static void
RestartForAnotherRole(int index)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	WorkerSetRunning(index, 0);
	(void) WorkerClaimGroup(index, 0);
	DescribeWorker(&worker, index);
	worker.bgw_extra[0] = WORKER_SUCCESSOR;
	if (RegisterDynamicBackgroundWorker(&worker, &handle))
		proc_exit(0);
	ereport(LOG,
			(errmsg("choreograph worker %d restarts to run a hook of another role", index + 1),
			 errdetail("No background worker slot was free to start its successor at once."),
			 errhint("Raise max_worker_processes.")));
	proc_exit(1);
}

/*
 * The oldest due hooks after a given id whose transaction has no earlier
 * hook waiting (a look through the outbox moves on from batch to batch)
 */
static WorkerQuery due_hooks = {
	"SELECT h.id, h.txid FROM " CHOREO_SCHEMA ".hooks h"
	" WHERE h.id OPERATOR(pg_catalog.>) $1"
	"   AND h.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
	"   AND NOT EXISTS (SELECT FROM " CHOREO_SCHEMA ".hooks e"
	"                    WHERE e.txid OPERATOR(pg_catalog.=) h.txid"
	"                      AND e.id OPERATOR(pg_catalog.<) h.id"
	"                      AND e.next_attempt_at IS NOT NULL)"
	" ORDER BY h.id LIMIT " CppAsString2(DUE_HOOKS_BATCH),
	1, {INT8OID}, NULL
};

/* milliseconds until the next retry falls due */
static WorkerQuery next_due = {
	"SELECT pg_catalog.ceil(pg_catalog.date_part('epoch',"
	"       pg_catalog.min(next_attempt_at) OPERATOR(pg_catalog.-) pg_catalog.now())"
	"       OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8"
	"  FROM " CHOREO_SCHEMA ".hooks"
	" WHERE next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()",
	0, {0}, NULL
};

/*
 * Takes the next waiting hook of a transaction out of the outbox, if it is
 * due, in the transaction that runs it: if the hook fails, the rollback
 * puts the row back.  (No other worker can be after the same row: a worker
 * claims a whole transaction's hooks.)
 */
static WorkerQuery take_next_hook = {
	"DELETE FROM " CHOREO_SCHEMA ".hooks"
	" WHERE id OPERATOR(pg_catalog.=) (SELECT id FROM " CHOREO_SCHEMA ".hooks"
	"                                   WHERE txid OPERATOR(pg_catalog.=) $1"
	"                                     AND next_attempt_at IS NOT NULL"
	"                                   ORDER BY id LIMIT 1)"
	"   AND next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
	" RETURNING id, callback::pg_catalog.oid, role::pg_catalog.oid, payload",
	1, {INT8OID}, NULL
};

/*
 * Counts a failed attempt: retry after 1, 2, 4... seconds, or give up.
 * The count read is kept within [0, $4] (a superuser's restore writes it
 * as it finds it): never an overflow, nor retries without backoff.
 */
#define ATTEMPTS_SO_FAR \
	"LEAST(GREATEST(attempts, 0), $4)"
#define RECORD_FAILURE(set_sqlstate) \
	"UPDATE " CHOREO_SCHEMA ".hooks" \
	"   SET attempts = " ATTEMPTS_SO_FAR " OPERATOR(pg_catalog.+) 1," \
	"       last_error = pg_catalog.left($2, $3)," \
	set_sqlstate \
	"       next_attempt_at = CASE" \
	"         WHEN " ATTEMPTS_SO_FAR " OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=) $4 THEN NULL" \
	"         ELSE pg_catalog.now() OPERATOR(pg_catalog.+)" \
	"              pg_catalog.make_interval(secs => LEAST(2 OPERATOR(pg_catalog.^) " ATTEMPTS_SO_FAR ", 3600))" \
	"       END" \
	" WHERE id OPERATOR(pg_catalog.=) $1"

static WorkerQuery record_failure = {
	RECORD_FAILURE("       last_sqlstate = $5,"),
	5, {INT8OID, TEXTOID, INT4OID, INT4OID, TEXTOID}, NULL
};

/* the same, for an outbox of version 0.2 (not yet updated) */
static WorkerQuery record_failure_without_sqlstate = {
	RECORD_FAILURE(""),
	5, {INT8OID, TEXTOID, INT4OID, INT4OID, TEXTOID}, NULL
};

/*
 * Lists the hooks due now whose transaction has no earlier hook still
 * waiting, oldest first, into *due (in the caller's memory context).
 * Returns how many, and sets *sleep_ms to the time until the next retry.
 */
static int
FindDueHooks(int64 after, DueHook **due, long *sleep_ms)
{
	MemoryContext cxt;
	int			ndue = 0;

	*sleep_ms = MAX_SLEEP_MS;
	cxt = BeginWorkerTransaction();
	pgstat_report_activity(STATE_RUNNING, "choreograph: looking for due hooks");

	/* the extension may not be installed (yet) in this database */
	if (OidIsValid(ChoreoRelationOid("hooks", true)))
	{
		bool		isnull;
		Datum		args[1] = {Int64GetDatum(after)};

		ExecuteWorkerQuery(&due_hooks, args, SPI_OK_SELECT);
		ndue = (int) SPI_processed;
		*due = MemoryContextAlloc(cxt, sizeof(DueHook) * Max(ndue, 1));
		for (int i = 0; i < ndue; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];

			(*due)[i].id = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
			(*due)[i].group = (uint64) DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
		}

		/* about to sleep: until when? */
		if (ndue < DUE_HOOKS_BATCH)
		{
			Datum		next;

			ExecuteWorkerQuery(&next_due, NULL, SPI_OK_SELECT);
			next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				*sleep_ms = Max(1, Min(DatumGetInt64(next), MAX_SLEEP_MS));
		}
	}

	CommitWorkerTransaction(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ndue;
}

/* Records a failed attempt (its message and SQLSTATE), in a transaction of its own */
static void
RecordHookFailure(int64 id, ErrorData *edata)
{
	Datum		args[5];
	MemoryContext cxt;

	args[0] = Int64GetDatum(id);
	args[1] = CStringGetTextDatum(edata->message != NULL ? edata->message : "");
	args[2] = Int32GetDatum(choreo_error_max_length);
	args[3] = Int32GetDatum(choreo_hook_max_attempts);
	args[4] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));

	cxt = BeginWorkerTransaction();
	if (get_attnum(ChoreoRelationOid("hooks", false), "last_sqlstate") != InvalidAttrNumber)
		ExecuteWorkerQuery(&record_failure, args, SPI_OK_UPDATE);
	else
		ExecuteWorkerQuery(&record_failure_without_sqlstate, args, SPI_OK_UPDATE);
	CommitWorkerTransaction(cxt);
}

/* Raises an error if a hook can no longer run as it was registered */
static void
CheckHookRunnable(int64 id, Oid callback, Oid role)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role %u of post-commit hook %lld no longer exists",
						role, (long long) id)));
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(callback)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %u of post-commit hook %lld no longer exists",
						callback, (long long) id)));
	if (compat_proc_aclcheck(callback, role, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", get_func_name(callback)),
				 errdetail("Post-commit hook %lld runs as role \"%s\".", (long long) id,
						   GetUserNameFromId(role, false))));
}

/*
 * Runs the next waiting hook of a transaction, if due, in a transaction of
 * its own which also deletes its outbox row.  Returns false when there was
 * none to run.  Everything it allocates is in hook_cxt, reset each time.
 */
static bool
RunNextHook(int index, uint64 txid)
{
	ErrorData  *volatile edata = NULL;
	volatile int64 id = 0;
	Oid			worker_userid;
	int			worker_sec_context;

	GetUserIdAndSecContext(&worker_userid, &worker_sec_context);
	MemoryContextReset(hook_cxt);
	MemoryContextSwitchTo(hook_cxt);
	PG_TRY();
	{
		Datum		args[1] = {Int64GetDatum((int64) txid)};
		MemoryContext cxt = BeginWorkerTransaction();

		ExecuteWorkerQuery(&take_next_hook, args, SPI_OK_DELETE_RETURNING);
		if (SPI_processed == 1)
		{
			HeapTuple	row = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Oid			callback = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
			Oid			role = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
			bool		no_payload;
			Datum		payload = SPI_getbinval(row, desc, 4, &no_payload);
			int			nestlevel;

			id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
			WorkerSetRunning(index, id);
			{
				char		activity[64];

				/* pg_stat_activity shows which hook a worker is running */
				snprintf(activity, sizeof(activity),
						 "choreograph: running post-commit hook " INT64_FORMAT, id);
				pgstat_report_activity(STATE_RUNNING, activity);
			}
			CheckHookRunnable(id, callback, role);
			if (!WorkerSessionServes(role))
			{
				/* rolled back below: the hook stays queued */
				skipping_for_role = true;
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("choreograph worker %d leaves post-commit hook %lld to a new session",
								index + 1, (long long) id)));
			}

			/*
			 * From here to the end of the commit, the transaction is the
			 * hook's: the commit runs what the hook queued for it (deferred
			 * triggers, the query of a cursor WITH HOLD, the pre-commit
			 * hooks it registered, which then queue more), and none of it
			 * may run as the worker's superuser.  Nor may it change role.
			 */
			SetUserIdAndSecContext(role, worker_sec_context | SECURITY_LOCAL_USERID_CHANGE);

			/* whatever settings the hook changes, the next hook will not see */
			nestlevel = NewGUCNestLevel();
			CallHookFunction(callback, no_payload ? NULL : DatumGetJsonbPCopy(payload), role);
			AtEOXact_GUC(false, nestlevel);
		}
		CommitWorkerTransaction(cxt);
		SetUserIdAndSecContext(worker_userid, worker_sec_context);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(hook_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* the abort goes back to the worker's role; so does a failure after the commit */
		EndFailedWorkerTransaction(hook_cxt);
		SetUserIdAndSecContext(worker_userid, worker_sec_context);
	}
	PG_END_TRY();
	if (skipping_for_role)
	{
		/* nothing of the hook ran: the rest of its transaction waits too */
		skipping_for_role = false;
		another_role_waits = true;
		FreeErrorData(edata);
		WorkerSetRunning(index, 0);
		pgstat_report_activity(STATE_IDLE, NULL);
		return false;
	}

	/* nothing the hook left in the session may reach the next one */
	if (id != 0)
		WorkerSessionReset();

	WorkerSetRunning(index, 0);
	if (edata != NULL && id == 0)
	{
		/*
		 * A failure before a hook was taken (a lock_timeout waiting for the
		 * row that choreo_retry_hook holds, say) is logged; the hook is
		 * still queued, and found by a later look through the outbox.
		 */
		ereport(LOG,
				(errcode(edata->sqlerrcode),
				 errmsg("choreograph worker could not take a hook of transaction %llu: %s",
						(unsigned long long) txid, edata->message)));
		FreeErrorData(edata);
		edata = NULL;
	}
	if (edata != NULL)
	{
		ereport(LOG,
				(errmsg("choreograph post-commit hook %lld failed: %s",
						(long long) id, edata->message)));
		RecordHookFailure(id, edata);
		retry_scheduled = true;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	return id != 0;
}

/*
 * Runs the hooks of a transaction that just committed, in order, each in a
 * transaction of its own, until none is left or one must wait for a retry.
 */
static void
RunTransactionHooks(int index, uint64 txid)
{
	/* another worker may be at it already */
	if (!WorkerClaimGroup(index, txid))
		return;
	while (RunNextHook(index, txid))
		CHECK_FOR_INTERRUPTS();
	(void) WorkerClaimGroup(index, 0);
}

/*
 * Looks through the outbox and runs due hooks until a look finds none this
 * worker can run; returns how long to sleep before the next retry falls
 * due.  Used when the commit queue cannot tell where the work is: at
 * start, after the queue overflowed, for retries, and once a minute.
 */
static long
RunDueHooks(int index, MemoryContext cxt)
{
	int64		after = PG_INT64_MIN;	/* ids a superuser restored may be any */
	long		sleep_ms;

	for (;;)
	{
		DueHook    *due = NULL;
		int			ndue;

		MemoryContextReset(cxt);
		MemoryContextSwitchTo(cxt);
		ndue = FindDueHooks(after, &due, &sleep_ms);
		for (int i = 0; i < ndue; i++)
		{
			CHECK_FOR_INTERRUPTS();
			/* the first waiting hook of its transaction: run them all */
			RunTransactionHooks(index, due[i].group);
			after = due[i].id;
		}
		if (ndue < DUE_HOOKS_BATCH)
			return sleep_ms;
	}
}

/*
 * Applies choreograph.hook_synchronous_commit to the worker's transactions.
 * Not waiting for the disk is safe for hooks: a hook's writes and the
 * deletion of its outbox row are in the same transaction, so a crash that
 * loses one loses both, and the hook runs again.
 */
static void
ApplyWorkerSettings(void)
{
	SetConfigOption("synchronous_commit",
					choreo_hook_synchronous_commit ? "on" : "off",
					PGC_SUSET, PGC_S_OVERRIDE);
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

/* Entry point of each worker */
void
choreo_worker_main(Datum main_arg)
{
	int			index = DatumGetInt32(main_arg);
	MemoryContext cxt;
	TimestampTz next_look = 0;	/* look through the outbox at once */

	long		start_delay;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* after starts that could not connect (no such database), wait longer each time */
	start_delay = WorkerStartDelay(index);
	if (start_delay > 0)
	{
		ereport(LOG,
				(errmsg("choreograph worker %d waits %ld ms before it connects to database \"%s\" again",
						index + 1, start_delay, choreo_database),
				 errdetail("It could not connect when it last started.")));
	}
	if (start_delay > 0)
	{
		TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), start_delay);
		long		left;

		/* the latch is set when a process starts: wait out the whole delay */
		while ((left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until)) > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 left, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	BackgroundWorkerInitializeConnection(choreo_database, NULL, 0);
	WorkerStarted(index);

	cxt = AllocSetContextCreate(TopMemoryContext, "choreograph worker",
								ALLOCSET_DEFAULT_SIZES);
	hook_cxt = AllocSetContextCreate(TopMemoryContext, "choreograph hook",
									 ALLOCSET_DEFAULT_SIZES);
	/* published before the first look, so no commit after it goes unseen */
	WorkerSlotAttach(index);
	ApplyWorkerSettings();
	/* a successor (RestartForAnotherRole) starts as often as roles change */
	ereport(MyBgworkerEntry->bgw_extra[0] == WORKER_SUCCESSOR ? DEBUG1 : LOG,
			(errmsg("choreograph worker %d started in database \"%s\"",
					index + 1, choreo_database)));

	for (;;)
	{
		uint64		txids[DUE_HOOKS_BATCH];
		bool		look_everywhere;
		int			ntxids;
		long		sleep_ms = MAX_SLEEP_MS;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			ApplyWorkerSettings();
		}

		/* the transactions that committed hooks since the last look */
		ntxids = CommitQueueTake(txids, DUE_HOOKS_BATCH, &look_everywhere);
		for (int i = 0; i < ntxids; i++)
		{
			MemoryContextReset(cxt);
			MemoryContextSwitchTo(cxt);
			RunTransactionHooks(index, txids[i]);
		}

		if (look_everywhere || retry_scheduled || GetCurrentTimestamp() >= next_look)
		{
			/* a hook that failed meanwhile set a retry: when it is due is now known */
			do
			{
				retry_scheduled = false;
				sleep_ms = RunDueHooks(index, cxt);
			} while (retry_scheduled);
			next_look = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), sleep_ms);
		}
		if (another_role_waits)
			RestartForAnotherRole(index);
		if (ntxids > 0)
			continue;			/* the queue may hold more */

		sleep_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_look);
		if (!WorkerMaySleep(index))
			continue;			/* a commit came in meanwhile */
		pgstat_report_stat(true);
		ReportIdleUntil(next_look);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(sleep_ms, 1), PG_WAIT_EXTENSION);
		WorkerAwake(index);
	}
}
