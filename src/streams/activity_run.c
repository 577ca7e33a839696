/*
 * streams/activity_run.c
 *		One run of an activity's processor over a batch of an entity's
 *		events: reading the batch, calling the processor, checking its
 *		outcome and storing it in the cursor, in the run's transaction;
 *		and the locks that keep runs within max_concurrency and their
 *		serialize_group.
 *
 * The workers (activity_source.c) and choreo_run_activity
 * (activity_cursor.c) both run through here, so a processor sees the
 * same arguments and its outcome means the same whoever runs it.  The
 * cursor is written in the same transaction as the processor's own
 * writes: they commit together or not at all, so effects inside the
 * database happen once.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
#include "catalog/pg_collation.h"
#include "common/hashfn.h"

#include "streams/streams.h"

/* Reads an activity's columns (ACTIVITY_COLUMNS) from a row, from column first on */
void
ActivityFromRow(HeapTuple row, TupleDesc desc, int first, Activity *activity)
{
	bool		isnull;
	char	   *engine;
	Datum		group;
	int			c = first;

	activity->id = DatumGetInt32(SPI_getbinval(row, desc, c++, &isnull));
	activity->name = TextDatumGetCString(SPI_getbinval(row, desc, c++, &isnull));
	activity->stream = TextDatumGetCString(SPI_getbinval(row, desc, c++, &isnull));
	activity->processor = DatumGetObjectId(SPI_getbinval(row, desc, c++, &isnull));
	activity->owner = DatumGetObjectId(SPI_getbinval(row, desc, c++, &isnull));
	engine = TextDatumGetCString(SPI_getbinval(row, desc, c++, &isnull));
	activity->engine = strcmp(engine, "cron") == 0 ? ENGINE_CRON :
		strcmp(engine, "manual") == 0 ? ENGINE_MANUAL : ENGINE_LAZY;
	activity->batch_size = DatumGetInt32(SPI_getbinval(row, desc, c++, &isnull));
	activity->initial_batch_size = DatumGetInt32(SPI_getbinval(row, desc, c++, &isnull));
	activity->auto_start = DatumGetBool(SPI_getbinval(row, desc, c++, &isnull));
	activity->paused = DatumGetBool(SPI_getbinval(row, desc, c++, &isnull));
	activity->max_attempts = DatumGetInt32(SPI_getbinval(row, desc, c++, &isnull));
	activity->max_concurrency = DatumGetInt32(SPI_getbinval(row, desc, c++, &isnull));
	group = SPI_getbinval(row, desc, c++, &isnull);
	activity->serialize_group = isnull ? NULL : TextDatumGetCString(group);
}

/*
 * Takes, without waiting, what a run of the activity for the entity needs
 * beside its cursor: its serialize_group's lock of the entity, and (when
 * concurrency) one of the activity's max_concurrency slots.  Returns
 * false when one is held elsewhere; what was taken is then held to the
 * end of the transaction, which the caller ends soon.
 */
bool
ActivityTryLocks(const Activity *activity, const char *entity, bool concurrency)
{
	if (activity->serialize_group != NULL)
	{
		uint64		key = ChoreoLockKey(activity->serialize_group, entity, strlen(entity));

		if (!ChoreoLockAcquire(CHOREO_LOCK_GROUP, key, ExclusiveLock, false))
			return false;
	}
	if (concurrency && activity->max_concurrency > 0)
	{
		for (int slot = 0; slot < activity->max_concurrency; slot++)
			if (ChoreoLockAcquire(CHOREO_LOCK_CONCURRENCY,
								  ((uint64) (uint32) activity->id << 32) | (uint32) slot,
								  ExclusiveLock, false))
				return true;
		return false;
	}
	return true;
}

/*
 * Reads the batch of events a run hands over: up to the batch size after
 * the tail, oldest first, and whether more lie beyond.  run->cursor_id,
 * entity_id, entity, tail and initial are set by the caller.
 */
void
ActivityRunPrepare(const Activity *activity, ActivityRun *run)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[3];
	bool		isnull;
	Datum		last;
	HeapTuple	row;
	TupleDesc	desc;
	int			rc;

	if (plan == NULL)
	{
		Oid			argtypes[3] = {INT8OID, INT8OID, INT4OID};

		plan = PrepareKeptPlan("SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
							   "           'seq', e.seq, 'payload', e.payload, 'created_at', e.created_at)"
							   "         ORDER BY e.seq) FILTER (WHERE e.n OPERATOR(pg_catalog.<=) $3), '[]'),"
							   "       pg_catalog.count(*) FILTER (WHERE e.n OPERATOR(pg_catalog.<=) $3),"
							   "       pg_catalog.max(e.seq) FILTER (WHERE e.n OPERATOR(pg_catalog.<=) $3),"
							   "       pg_catalog.count(*) OPERATOR(pg_catalog.>) $3"
							   "  FROM (SELECT v.seq, v.payload, v.created_at,"
							   "               pg_catalog.row_number() OVER (ORDER BY v.seq) AS n"
							   "          FROM " CHOREO_SCHEMA ".events v"
							   "         WHERE v.entity_id OPERATOR(pg_catalog.=) $1"
							   "           AND v.seq OPERATOR(pg_catalog.>) $2"
							   "         ORDER BY v.seq LIMIT $3 OPERATOR(pg_catalog.+) 1) e",
							   3, argtypes);
	}
	args[0] = Int64GetDatum(run->entity_id);
	args[1] = Int64GetDatum(run->tail);
	args[2] = Int32GetDatum(run->initial ? activity->initial_batch_size : activity->batch_size);
	rc = SPI_execute_plan(plan, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read a batch of events: %s", SPI_result_code_string(rc));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	run->events = DatumGetJsonbPCopy(SPI_getbinval(row, desc, 1, &isnull));
	run->nevents = (int) DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	last = SPI_getbinval(row, desc, 3, &isnull);
	run->last_handed = isnull ? run->tail : DatumGetInt64(last);
	run->more = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
}

/* Calls the processor, as the current user; returns its outcome (a composite) */
Datum
ActivityRunCall(const Activity *activity, ActivityRun *run, bool *isnull)
{
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 4);
	Datum		result;

	fmgr_info(activity->processor, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 4, DEFAULT_COLLATION_OID, NULL, NULL);
	fcinfo->args[0].value = CStringGetTextDatum(run->entity);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = Int64GetDatum(run->tail);
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = JsonbPGetDatum(run->events);
	fcinfo->args[2].isnull = false;
	fcinfo->args[3].value = BoolGetDatum(run->initial);
	fcinfo->args[3].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

pg_noreturn static void
BadOutcome(const Activity *activity, ActivityRun *run, const char *message)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("processor of activity \"%s\" returned %s for entity \"%s\"",
					activity->name, message, run->entity)));
}

/*
 * Checks a processor's outcome and stores it in the cursor, in the run's
 * transaction (as the tables' owner); raises 22023 for an outcome that
 * does not fit the batch.
 */
void
ActivityRunStore(const Activity *activity, ActivityRun *run, Datum result, bool isnull)
{
	static SPIPlanPtr plan = NULL;
	static char *prepared = NULL;
	HeapTupleHeader outcome;
	bool		field_null;
	Datum		field;
	int64		tail;
	char	   *status;
	Datum		retry_at = (Datum) 0;
	bool		retry_at_null = true;
	bool		more;
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	ExtensionWrite write;

	if (isnull)
		BadOutcome(activity, run, "NULL");
	outcome = DatumGetHeapTupleHeader(result);
	field = GetAttributeByNum(outcome, 1, &field_null);
	if (field_null)
		BadOutcome(activity, run, "an outcome without a tail");
	tail = DatumGetInt64(field);
	field = GetAttributeByNum(outcome, 2, &field_null);
	status = field_null ? "" : TextDatumGetCString(field);
	if (strcmp(status, "eof") != 0 && strcmp(status, "done") != 0 && strcmp(status, "retry") != 0)
		BadOutcome(activity, run,
				   psprintf("an outcome of unknown status \"%s\"", status));
	if (tail > run->last_handed)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("processor of activity \"%s\" returned tail " INT64_FORMAT " for entity \"%s\", beyond the last event handed over (" INT64_FORMAT ")",
						activity->name, tail, run->entity, run->last_handed)));
	if (tail < run->tail)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("processor of activity \"%s\" returned tail " INT64_FORMAT " for entity \"%s\", below its stored tail (" INT64_FORMAT ")",
						activity->name, tail, run->entity, run->tail)));
	if (strcmp(status, "retry") == 0)
	{
		retry_at = GetAttributeByNum(outcome, 3, &retry_at_null);
		field = GetAttributeByNum(outcome, 4, &field_null);
		if (field_null || !DatumGetBool(field))
			ereport(LOG,
					(errmsg("choreograph activity \"%s\" entity \"%s\" will retry%s",
							activity->name, run->entity,
							retry_at_null ? " after a backoff" :
							psprintf(" at %s", timestamptz_to_str(DatumGetTimestampTz(retry_at))))));
	}
	/* the engine goes on at once when events wait beyond the tail */
	more = tail < run->last_handed || run->more;

	/* the update names everything with its schema: no search_path to pin */
	BeginExtensionWrite(&write, false);
	{
		Oid			argtypes[6] = {INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID, BOOLOID, INT4OID};

		/* the activity read from this node's copy (shared/node_tables.c) */
		(void) KeptPlanForThisNode("UPDATE " CHOREO_SCHEMA ".activity_cursors c"
							   "   SET tail = $2, has_run = true, updated_at = pg_catalog.now(),"
							   "       state = CASE WHEN $3 OPERATOR(pg_catalog.=) 'done' THEN 'done' ELSE 'active' END,"
							   "       attempts = CASE WHEN $3 OPERATOR(pg_catalog.=) 'retry'"
							   "                  THEN c.attempts OPERATOR(pg_catalog.+) 1 ELSE 0 END,"
							   "       errors = 0,"
							   "       last_error = CASE WHEN $3 OPERATOR(pg_catalog.=) 'retry'"
							   "                    THEN c.last_error END,"
							   "       next_run_at = CASE"
							   "           WHEN $3 OPERATOR(pg_catalog.=) 'done' THEN NULL"
							   "           WHEN $3 OPERATOR(pg_catalog.=) 'retry' THEN COALESCE($4,"
							   "               pg_catalog.now() OPERATOR(pg_catalog.+) LEAST(a.backoff_base"
							   "                 OPERATOR(pg_catalog.*) pg_catalog.power(2, LEAST(c.attempts, 30)),"
							   "                 a.backoff_max))"
							   "           WHEN a.engine OPERATOR(pg_catalog.=) 'manual' THEN NULL"
							   "           WHEN $5 THEN pg_catalog.now()"
							   "           ELSE NULL END"
							   "  FROM " CHOREO_TABLE_HERE("activities") " a"
							   " WHERE a.id OPERATOR(pg_catalog.=) c.activity_id"
							   "   AND a.id OPERATOR(pg_catalog.=) $6"
							   "   AND c.id OPERATOR(pg_catalog.=) $1",
							   6, argtypes, &plan, &prepared);
	}
	args[0] = Int64GetDatum(run->cursor_id);
	args[1] = Int64GetDatum(tail);
	args[2] = CStringGetTextDatum(status);
	args[3] = retry_at;
	nulls[3] = retry_at_null ? 'n' : ' ';
	args[4] = BoolGetDatum(more);
	args[5] = Int32GetDatum(activity->id);
	if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_UPDATE || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("activity \"%s\" no longer has entity \"%s\"", activity->name, run->entity)));
	EndExtensionWrite(&write);
	/* a retry changes when the source next has work: the workers look at commit */
	if (strcmp(status, "retry") == 0)
		CursorsAnnounceAtCommit(0);
}
