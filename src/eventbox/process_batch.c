/*
 * eventbox/process_batch.c
 *		choreo_process_batch: a recipient's oldest outstanding events handed
 *		to a processor, its transitions and garbage applied, and the state
 *		saved with its eversion, all in the caller's transaction.
 *
 * Why a batch sees everything committed before it, and no batch is lost:
 * the recipient is locked first, with a lock of its own (an advisory lock
 * class, shared/advisory_lock.c) held to the end of the transaction, not
 * a row lock: the state row may not exist yet, and senders, who insert
 * into the inbox and never take that lock, never wait for it.  Having the
 * lock, the state and the batch are read with a snapshot taken after it
 * was granted, as the stream flush reads an entity's head: every batch of
 * the recipient before has committed or rolled back, so what is read is
 * its outcome, whatever the caller's isolation level.  Two processors of
 * a recipient are thus one after the other, and garbage chosen by one is
 * deleted in its own transaction: it goes with the state if that commits
 * and comes back if it rolls back, which luci-go's eventbox, whose garbage
 * is deleted outside the transaction, must ask its processors to make
 * safe by choosing the same garbage.
 *
 * The processor runs as the caller, in the caller's transaction: what it
 * writes (side effects, choreo_post_commit for after the commit) commits
 * or rolls back with the state.  Its result is read in full before
 * anything is applied (batch_result.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lockdefs.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "eventbox/eventbox.h"

/* A batch as read: its events' ids and the array handed to the processor */
typedef struct Batch
{
	int			nevents;
	int64	   *ids;
	Jsonb	   *events;			/* [{"id": 17, "value": ...}, ...] */
} Batch;

/* The recipients whose processors are running in this backend, innermost first */
typedef struct ProcessingFrame
{
	const char *recipient;
	struct ProcessingFrame *outer;
} ProcessingFrame;

static ProcessingFrame *processing = NULL;

/* Checks that a function can be a processor and that the caller may run it */
static char *
CheckEventboxProcessor(Oid processor)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(processor));
	Form_pg_proc proc;
	static const Oid expected[3] = {TEXTOID, JSONBOID, JSONBOID};
	bool		shaped;
	char	   *signature;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", processor)));
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	signature = format_procedure(processor);
	shaped = proc->pronargs == 3 && proc->prokind == PROKIND_FUNCTION;
	for (int i = 0; shaped && i < 3; i++)
		shaped = proc->proargtypes.values[i] == expected[i];
	if (!shaped)
	{
		ReleaseSysCache(tuple);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("%s cannot be the processor of an eventbox", signature),
				 errdetail("A processor is a plain function of (recipient text, state jsonb, events jsonb) returning jsonb.")));
	}
	if (proc->proisstrict)
	{
		ReleaseSysCache(tuple);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("STRICT function %s cannot be the processor of an eventbox", signature),
				 errdetail("A processor is handed a NULL state for a recipient that has none, which a STRICT function would not be called for."),
				 errhint("Declare it CALLED ON NULL INPUT.")));
	}
	if (proc->proretset || proc->prorettype != JSONBOID)
	{
		char	   *returns = format_type_be(proc->prorettype);
		bool		retset = proc->proretset;

		ReleaseSysCache(tuple);
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("processor %s must return jsonb, not %s%s",
						signature, retset ? "setof " : "", returns)));
	}
	ReleaseSysCache(tuple);
	if (compat_proc_aclcheck(processor, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", get_func_name(processor)),
				 errdetail("An eventbox's processor runs as the role that calls choreo_process_batch.")));
	return signature;
}

/*
 * Reads the oldest max_events outstanding events, in send order, with a
 * snapshot taken now, and makes the array the processor is handed in
 * cxt.  Between BeginExtensionWrite and EndExtensionWrite.
 */
static void
ReadBatch(const char *recipient, int max_events, MemoryContext cxt, Batch *batch)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[2];
	int			rc;
	JsonbWriter writer;
	MemoryContext old;

	if (plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, INT4OID};

		plan = PrepareKeptPlan("SELECT id, value FROM " CHOREO_SCHEMA ".inbox"
							   " WHERE recipient OPERATOR(pg_catalog.=) $1"
							   " ORDER BY id LIMIT $2", 2, argtypes);
	}
	args[0] = CStringGetTextDatum(recipient);
	args[1] = Int32GetDatum(max_events);
	CommandCounterIncrement();
	rc = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							  true, false, max_events);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read a batch: %s", SPI_result_code_string(rc));

	old = MemoryContextSwitchTo(cxt);
	batch->nevents = (int) SPI_processed;
	batch->ids = palloc(sizeof(int64) * Max(batch->nevents, 1));
	JsonbWriterInit(&writer);
	JsonbWriterBeginArray(&writer, batch->nevents);
	for (int i = 0; i < batch->nevents; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		value;
		JsonbValue	id;

		CHECK_FOR_INTERRUPTS();
		batch->ids[i] = DatumGetInt64(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
		value = SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull);
		JsonbWriterBeginObject(&writer, 2);
		JsonbWriterCString(&writer, "id");
		JsonbWriterCString(&writer, "value");
		id.type = jbvNumeric;
		id.val.numeric = int64_to_numeric(batch->ids[i]);
		JsonbWriterValue(&writer, &id);
		if (isnull)
			JsonbWriterNull(&writer);
		else
		{
			Jsonb	   *jsonb = DatumGetJsonbP(value);
			JsonbValue	contained;

			contained.type = jbvBinary;
			contained.val.binary.data = &jsonb->root;
			contained.val.binary.len = VARSIZE(jsonb) - VARHDRSZ;
			JsonbWriterValue(&writer, &contained);
		}
		JsonbWriterEnd(&writer);
	}
	JsonbWriterEnd(&writer);
	batch->events = JsonbWriterFinish(&writer);
	MemoryContextSwitchTo(old);
}

/* Calls the processor as the caller; raises 22023 if it returns NULL */
static Jsonb *
CallProcessor(Oid processor, const char *signature, const char *recipient,
			  const RecipientState *loaded, const Batch *batch)
{
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 3);
	ProcessingFrame frame = {recipient, processing};
	Datum		result;

	fmgr_info(processor, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 3, DEFAULT_COLLATION_OID, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(recipient);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = loaded->state != NULL ? JsonbPGetDatum(loaded->state) : (Datum) 0;
	fcinfo->args[1].isnull = loaded->state == NULL;
	fcinfo->args[2].value = JsonbPGetDatum(batch->events);
	fcinfo->args[2].isnull = false;
	/* a nested batch of the same recipient would consume this one's events */
	processing = &frame;
	PG_TRY();
	{
		result = FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		processing = frame.outer;
	}
	PG_END_TRY();
	if (fcinfo->isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("processor %s returned null", signature),
				 errdetail("A processor returns an object, {} when it leaves every event outstanding.")));
	return DatumGetJsonbP(result);
}

/* Raises when this backend is running a processor of the recipient */
static void
CheckNotProcessing(const char *recipient)
{
	for (ProcessingFrame *frame = processing; frame != NULL; frame = frame->outer)
		if (strcmp(frame->recipient, recipient) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("recipient \"%s\" is being processed by this transaction", recipient),
					 errdetail("A processor cannot process its own recipient.")));
}

/* Deletes the consumed and garbage events; between Begin/EndExtensionWrite */
static void
DeleteEvents(const char *recipient, const Batch *batch, const BatchResult *result)
{
	static SPIPlanPtr plan = NULL;
	int			ndelete = result->consumed + result->garbage;
	Datum	   *ids;
	int			n = 0;
	Datum		args[2];
	int			rc;

	if (ndelete == 0)
		return;
	if (plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, INT8ARRAYOID};

		plan = PrepareKeptPlan("DELETE FROM " CHOREO_SCHEMA ".inbox"
							   " WHERE recipient OPERATOR(pg_catalog.=) $1"
							   "   AND id OPERATOR(pg_catalog.=) ANY ($2)", 2, argtypes);
	}
	ids = palloc(sizeof(Datum) * ndelete);
	for (int i = 0; i < batch->nevents; i++)
		if (result->fates[i] != EVENT_OUTSTANDING)
			ids[n++] = Int64GetDatum(batch->ids[i]);
	args[0] = CStringGetTextDatum(recipient);
	args[1] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	CommandCounterIncrement();
	rc = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							  false, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not delete events: %s", SPI_result_code_string(rc));
	if ((int) SPI_processed != n)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("events of recipient \"%s\" were deleted while its batch was processed",
						recipient),
				 errdetail("%d of the %d events to delete were gone.", n - (int) SPI_processed, n)));
}

/*
 * Saves the state with its eversion: a recipient without a row gets one,
 * owned by owner (eversion 1 if the state changed, else 0); one with a row
 * is updated if changed.  Between Begin/EndExtensionWrite.
 */
static void
SaveState(const char *recipient, const RecipientState *loaded, bool changed, Jsonb *state,
		  Oid owner)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr update_plan = NULL;
	SPIPlanPtr	plan;
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int			rc;

	if (loaded->exists && !changed)
		return;

	if (insert_plan == NULL)
	{
		Oid			argtypes[4] = {TEXTOID, JSONBOID, OIDOID, INT8OID};

		insert_plan = PrepareKeptPlan("INSERT INTO " CHOREO_SCHEMA ".eventbox_states"
									  " (recipient, state, eversion, owner)"
									  " VALUES ($1, $2, $4, $3::pg_catalog.regrole)", 4, argtypes);
	}
	if (update_plan == NULL)
	{
		Oid			argtypes[3] = {TEXTOID, JSONBOID, INT8OID};

		update_plan = PrepareKeptPlan("UPDATE " CHOREO_SCHEMA ".eventbox_states"
									  "   SET state = $2, eversion = $3, updated_at = pg_catalog.now()"
									  " WHERE recipient OPERATOR(pg_catalog.=) $1", 3, argtypes);
	}
	args[0] = CStringGetTextDatum(recipient);
	args[1] = state != NULL ? JsonbPGetDatum(state) : (Datum) 0;
	nulls[1] = state != NULL ? ' ' : 'n';
	if (loaded->exists)
	{
		plan = update_plan;
		args[2] = Int64GetDatum(loaded->eversion + 1);
	}
	else
	{
		plan = insert_plan;
		args[2] = ObjectIdGetDatum(owner);
		args[3] = Int64GetDatum(changed ? 1 : 0);
	}
	CommandCounterIncrement();
	rc = SPI_execute_snapshot(plan, args, nulls, GetLatestSnapshot(), InvalidSnapshot,
							  false, false, 0);
	if (rc != (loaded->exists ? SPI_OK_UPDATE : SPI_OK_INSERT) || SPI_processed != 1)
		elog(ERROR, "could not save the state of recipient \"%s\"", recipient);
}

/* The recipient's outstanding events now; between Begin/EndExtensionWrite */
static int64
CountOutstanding(const char *recipient)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[1];
	bool		isnull;
	int			rc;

	if (plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		plan = PrepareKeptPlan("SELECT pg_catalog.count(*) FROM " CHOREO_SCHEMA ".inbox"
							   " WHERE recipient OPERATOR(pg_catalog.=) $1", 1, argtypes);
	}
	args[0] = CStringGetTextDatum(recipient);
	CommandCounterIncrement();
	rc = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							  true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not count an inbox: %s", SPI_result_code_string(rc));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									   &isnull));
}

static bool
SameState(Jsonb *a, Jsonb *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return compareJsonbContainers(&a->root, &b->root) == 0;
}

static void
WriteCount(JsonbWriter *writer, int64 n)
{
	JsonbValue	value;

	value.type = jbvNumeric;
	value.val.numeric = int64_to_numeric(n);
	JsonbWriterValue(writer, &value);
}

/* {"consumed": n, "garbage": n, "eversion": v, "remaining": n} */
static Jsonb *
BatchSummary(int consumed, int garbage, int64 eversion, int64 remaining)
{
	JsonbWriter writer;

	JsonbWriterInit(&writer);
	/* jsonb's key order: shorter first, then bytewise */
	JsonbWriterBeginObject(&writer, 4);
	JsonbWriterCString(&writer, "garbage");
	JsonbWriterCString(&writer, "consumed");
	JsonbWriterCString(&writer, "eversion");
	JsonbWriterCString(&writer, "remaining");
	WriteCount(&writer, garbage);
	WriteCount(&writer, consumed);
	WriteCount(&writer, eversion);
	WriteCount(&writer, remaining);
	JsonbWriterEnd(&writer);
	return JsonbWriterFinish(&writer);
}

PG_FUNCTION_INFO_V1(choreo_process_batch);

/*
 * Processes a batch of a recipient's outstanding events (spec/eventbox.md);
 * returns what became of them
 */
Datum
choreo_process_batch(PG_FUNCTION_ARGS)
{
	char	   *recipient = RecipientArgument(fcinfo, 0);
	Oid			processor;
	int32		max_events;
	bool		wait;
	char	   *signature;
	RecipientState loaded;
	Batch		batch;
	BatchResult result;
	ExtensionWrite write;
	MemoryContext cxt = CurrentMemoryContext;
	bool		changed;
	int64		eversion;
	int64		remaining;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("processor must not be null")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_events of choreo_process_batch must not be null")));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("wait of choreo_process_batch must not be null")));
	processor = PG_GETARG_OID(1);
	max_events = PG_GETARG_INT32(2);
	wait = PG_GETARG_BOOL(3);
	if (max_events < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events of choreo_process_batch must be at least 1, not %d",
						max_events)));
	PreventInSecurityRestrictedOperation("process an eventbox");
	PreventCommandIfReadOnly("choreo_process_batch");
	signature = CheckEventboxProcessor(processor);
	CheckNotProcessing(recipient);

	/*
	 * Another role's recipient is refused before its lock is asked for: a
	 * role that may not process it must not hold it either.  A recipient
	 * once owned stays owned, so this check cannot be outdated by the time
	 * the lock is granted; the one after it catches a recipient owned
	 * meanwhile.
	 */
	BeginExtensionWrite(&write, false);
	RecipientStateRead(recipient, true, cxt, &loaded);
	RecipientCheckAccess(recipient, &loaded, write.caller, RECIPIENT_PROCESS);
	EndExtensionWrite(&write);

	if (!ChoreoLockAcquire(CHOREO_LOCK_RECIPIENT, ChoreoLockKey(recipient, NULL, 0),
						   ExclusiveLock, wait))
		ereport(ERROR,
				(errcode(ERRCODE_CHOREO_CONTENTION),
				 errmsg("recipient \"%s\" is being processed by another transaction", recipient),
				 errhint("Pass wait => true to wait for it, or try again later.")));
	/* this transaction's sends are outstanding events too */
	InboxFlushPending();

	BeginExtensionWrite(&write, false);
	RecipientStateRead(recipient, true, cxt, &loaded);
	RecipientCheckAccess(recipient, &loaded, write.caller, RECIPIENT_PROCESS);
	ReadBatch(recipient, max_events, cxt, &batch);
	EndExtensionWrite(&write);
	if (batch.nevents == 0)
		PG_RETURN_JSONB_P(BatchSummary(0, 0, loaded.eversion, 0));

	result.nevents = batch.nevents;
	result.ids = batch.ids;
	BatchResultRead(CallProcessor(processor, signature, recipient, &loaded, &batch),
					signature, &result);
	/* what the processor sent, to this recipient too, is outstanding now */
	InboxFlushPending();

	changed = result.moved && !SameState(result.state, loaded.state);
	eversion = loaded.eversion + (changed ? 1 : 0);
	BeginExtensionWrite(&write, false);
	DeleteEvents(recipient, &batch, &result);
	/* the first batch handed events makes the recipient its caller's */
	SaveState(recipient, &loaded, changed, result.state, write.caller);
	remaining = CountOutstanding(recipient);
	EndExtensionWrite(&write);
	PG_RETURN_JSONB_P(BatchSummary(result.consumed, result.garbage, eversion, remaining));
}
