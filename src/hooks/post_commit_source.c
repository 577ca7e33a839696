/*
 * hooks/post_commit_source.c
 *		Post-commit hooks as a source of work for the background workers
 *		(workers/work_source.h): finding the due hooks in the outbox
 *		(choreograph.hooks), taking and running them, recording their
 *		failures with backoff, and which hooks the workers run right now
 *		(the choreo_hooks view's "running").
 *
 * An item is a transaction that committed hooks (its key is the txid, as
 * choreo_post_commit announces it at commit), and a step is one of its
 * hooks: the workers find new hooks by their transaction, never by
 * looking through the outbox, which being a queue is mostly dead rows;
 * that look (find_due) is kept for the start, retries, a full commit
 * queue and a once-a-minute safety net.
 *
 * Each hook runs in its own transaction, as the role that registered it.
 * Its writes and the deletion of its outbox row commit together, so its
 * effects in the database happen exactly once, whatever crashes.  A
 * failing hook's transaction is rolled back and the failure recorded in a
 * new one, with exponential backoff.  Hooks of one transaction run in
 * registration order: a hook waits until the earlier hooks of its
 * transaction have run (or failed for good), and the worker's claim of
 * the transaction (its item) keeps any other worker from running them at
 * once.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "hooks/hooks.h"
#include "workers/workers.h"
#include "shared/pg_compat.h"

/* A hook taken from the outbox, for run_step */
typedef struct TakenHook
{
	Oid			callback;
	Jsonb	   *payload;		/* NULL for SQL NULL */
} TakenHook;

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
	" ORDER BY h.id LIMIT " CppAsString2(WORK_BATCH),
	1, {INT8OID}, NULL, NULL
};

/* milliseconds until the next retry falls due */
static WorkerQuery next_due = {
	"SELECT pg_catalog.ceil(pg_catalog.date_part('epoch',"
	"       pg_catalog.min(next_attempt_at) OPERATOR(pg_catalog.-) pg_catalog.now())"
	"       OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8"
	"  FROM " CHOREO_SCHEMA ".hooks"
	" WHERE next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()",
	0, {0}, NULL, NULL
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
	1, {INT8OID}, NULL, NULL
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
	5, {INT8OID, TEXTOID, INT4OID, INT4OID, TEXTOID}, NULL, NULL
};

/* the same, for an outbox of version 0.2 (not yet updated) */
static WorkerQuery record_failure_without_sqlstate = {
	RECORD_FAILURE(""),
	5, {INT8OID, TEXTOID, INT4OID, INT4OID, TEXTOID}, NULL, NULL
};

/*
 * Lists the hooks due now whose transaction has no earlier hook still
 * waiting, oldest first, after a given id (find_due): each is the item of
 * its transaction.  Lowers *wait_ms to the time until the next retry.
 */
static int
FindDueHooks(int64 after, WorkItem *items, int max, long *wait_ms)
{
	MemoryContext cxt;
	int			ndue = 0;

	cxt = BeginWorkerTransaction();
	pgstat_report_activity(STATE_RUNNING, "choreograph: looking for due hooks");

	/* the extension may not be installed (yet) in this database */
	if (OidIsValid(ChoreoRelationOid("hooks", true)))
	{
		bool		isnull;
		Datum		args[1] = {Int64GetDatum(after)};

		Assert(max <= WORK_BATCH);
		ExecuteWorkerQuery(&due_hooks, args, SPI_OK_SELECT);
		ndue = Min((int) SPI_processed, max);
		for (int i = 0; i < ndue; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];

			items[i].position = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
			items[i].key = (uint64) DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
		}

		/* about to sleep: until when? */
		if (ndue < max)
		{
			Datum		next;

			ExecuteWorkerQuery(&next_due, NULL, SPI_OK_SELECT);
			next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				*wait_ms = Max(1, Min(DatumGetInt64(next), *wait_ms));
		}
	}

	CommitWorkerTransaction(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ndue;
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
 * Takes the next waiting hook of a transaction out of the outbox, if it is
 * due (take_step), in the transaction that runs it.
 */
static bool
TakeNextHook(uint64 txid, WorkStep *step)
{
	Datum		args[1] = {Int64GetDatum((int64) txid)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	bool		no_payload;
	Datum		payload;
	TakenHook  *hook;
	char		activity[64];

	ExecuteWorkerQuery(&take_next_hook, args, SPI_OK_DELETE_RETURNING);
	if (SPI_processed != 1)
		return false;

	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	step->id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	step->role = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
	hook = palloc(sizeof(TakenHook));
	hook->callback = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
	payload = SPI_getbinval(row, desc, 4, &no_payload);
	hook->payload = no_payload ? NULL : DatumGetJsonbPCopy(payload);
	step->arg = hook;

	/* pg_stat_activity shows which hook a worker is running */
	snprintf(activity, sizeof(activity),
			 "choreograph: running post-commit hook " INT64_FORMAT, step->id);
	pgstat_report_activity(STATE_RUNNING, activity);
	CheckHookRunnable(step->id, hook->callback, step->role);
	return true;
}

/* Runs a hook taken (run_step), as its role */
static void
RunHook(WorkStep *step)
{
	TakenHook  *hook = step->arg;

	CallHookFunction(hook->callback, hook->payload, step->role);
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

/* Logs a failure and records it against its hook (step_failed) */
static bool
HookFailed(uint64 txid, WorkStep *step, ErrorData *edata)
{
	if (step->id == 0)
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
		return false;
	}
	ereport(LOG,
			(errmsg("choreograph post-commit hook %lld failed: %s",
					(long long) step->id, edata->message)));
	RecordHookFailure(step->id, edata);
	return true;
}

/*
 * Applies choreograph.hook_synchronous_commit to the worker's transactions.
 * Not waiting for the disk is safe for hooks: a hook's writes and the
 * deletion of its outbox row are in the same transaction, so a crash that
 * loses one loses both, and the hook runs again.
 */
static void
ApplyHookSettings(void)
{
	SetConfigOption("synchronous_commit",
					choreo_hook_synchronous_commit ? "on" : "off",
					PGC_SUSET, PGC_S_OVERRIDE);
}

static const WorkSource post_commit_source = {
	.name = POST_COMMIT_SOURCE,
	.max_concurrency = 0,		/* a transaction's hooks are finite */
	.steps_per_claim = 0,		/* a transaction's hooks run back to back */
	.find_due = FindDueHooks,
	.take_step = TakeNextHook,
	.run_step = RunHook,
	.step_failed = HookFailed,
	.apply_settings = ApplyHookSettings,
};

/* Registers post-commit hooks with the workers; called from _PG_init when preloaded */
void
PostCommitSourceRegister(void)
{
	WorkSourceRegister(&post_commit_source);
}

PG_FUNCTION_INFO_V1(choreo_running_hooks);

/* The ids of the post-commit hooks the workers are running right now */
Datum
choreo_running_hooks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		ids[MAX_CHOREO_WORKERS];
	int			n;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	n = WorkersRunning(POST_COMMIT_SOURCE, ids, MAX_CHOREO_WORKERS);
	for (int i = 0; i < n; i++)
	{
		Datum		value = Int64GetDatum(ids[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}
