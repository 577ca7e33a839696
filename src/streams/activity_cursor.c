/*
 * streams/activity_cursor.c
 *		The functions that act on one (activity, entity) cursor:
 *		choreo_start_activity, choreo_reset_activity and
 *		choreo_run_activity.
 *
 * A cursor is a row of activity_cursors.  Each function here locks it
 * for the rest of its transaction, so it never acts on a cursor a worker
 * is running (the workers lock it too, and skip a cursor locked
 * elsewhere), and announces it to the workers at commit
 * (activity_announce.c), which then look at it again.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "common/hashfn.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "streams/streams.h"
#include "workers/workers.h"

/* A cursor as locked: what a run needs of it */
typedef struct LockedCursor
{
	int64		id;
	int64		entity_id;
	int64		tail;
	bool		has_run;
	char	   *state;
	int64		head;
} LockedCursor;

/*
 * Makes the cursor of an activity for an entity if it has none (and
 * create), as the tables' owner.  Returns false when there is none.  A
 * new cursor of a lazy or cron activity is due at once: its initial run
 * comes without waiting for an event.
 */
static bool
EnsureCursor(const Activity *activity, const char *entity, bool create)
{
	int64		entity_id = StreamEntityLock(activity->stream, entity, create);
	Oid			argtypes[3] = {INT4OID, INT8OID, BOOLOID};
	Datum		args[3];

	if (entity_id == 0)
		return false;
	args[0] = Int32GetDatum(activity->id);
	args[1] = Int64GetDatum(entity_id);
	args[2] = BoolGetDatum(activity->engine != ENGINE_MANUAL);
	if (!create)
		return true;
	ExecuteExtensionQuery("INSERT INTO " CHOREO_SCHEMA ".activity_cursors (activity_id, entity_id, next_run_at)"
						  " VALUES ($1, $2, CASE WHEN $3 THEN pg_catalog.now() END)"
						  " ON CONFLICT (activity_id, entity_id) DO NOTHING",
						  3, argtypes, args, SPI_OK_INSERT);
	return true;
}

/*
 * Locks the cursor of an activity for an entity, without waiting: raises
 * CH003 when a worker runs it or another transaction holds it.  Returns
 * false when there is no such cursor.
 */
static bool
LockCursor(const Activity *activity, const char *entity, LockedCursor *cursor)
{
	Oid			argtypes[3] = {INT4OID, TEXTOID, TEXTOID};
	Datum		args[3];
	bool		isnull;
	HeapTuple	row;
	TupleDesc	desc;
	int64		running[MAX_CHOREO_WORKERS];
	int			nrunning;

	args[0] = Int32GetDatum(activity->id);
	args[1] = CStringGetTextDatum(activity->stream);
	args[2] = CStringGetTextDatum(entity);
	if (SPI_execute_with_args("SELECT c.id"
							  "  FROM " CHOREO_SCHEMA ".activity_cursors c"
							  "  JOIN " CHOREO_SCHEMA ".stream_entities s"
							  "    ON s.id OPERATOR(pg_catalog.=) c.entity_id"
							  " WHERE c.activity_id OPERATOR(pg_catalog.=) $1"
							  "   AND s.stream OPERATOR(pg_catalog.=) $2"
							  "   AND s.entity OPERATOR(pg_catalog.=) $3",
							  3, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read a cursor of activity \"%s\"", activity->name);
	if (SPI_processed == 0)
		return false;
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	cursor->id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));

	nrunning = WorkersRunning(ACTIVITY_SOURCE, running, MAX_CHOREO_WORKERS);
	for (int i = 0; i < nrunning; i++)
		if (running[i] == cursor->id)
			ereport(ERROR,
					(errcode(ERRCODE_CHOREO_CONTENTION),
					 errmsg("activity \"%s\" is running for entity \"%s\"", activity->name, entity),
					 errdetail("A background worker is running it now.")));

	args[0] = Int64GetDatum(cursor->id);
	if (SPI_execute_with_args("SELECT c.id, c.entity_id, c.tail, c.has_run, c.state,"
							  "       COALESCE((SELECT v.seq FROM " CHOREO_SCHEMA ".events v"
							  "                  WHERE v.entity_id OPERATOR(pg_catalog.=) c.entity_id"
							  "                  ORDER BY v.seq DESC LIMIT 1), 0)"
							  "  FROM " CHOREO_SCHEMA ".activity_cursors c"
							  " WHERE c.id OPERATOR(pg_catalog.=) $1"
							  "   FOR UPDATE SKIP LOCKED",
							  1, (Oid[]) {INT8OID}, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock a cursor of activity \"%s\"", activity->name);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHOREO_CONTENTION),
				 errmsg("activity \"%s\" is running for entity \"%s\"", activity->name, entity),
				 errdetail("Another transaction holds it.")));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	cursor->entity_id = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	cursor->tail = DatumGetInt64(SPI_getbinval(row, desc, 3, &isnull));
	cursor->has_run = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
	cursor->state = TextDatumGetCString(SPI_getbinval(row, desc, 5, &isnull));
	cursor->head = DatumGetInt64(SPI_getbinval(row, desc, 6, &isnull));
	return true;
}

/* A tail argument: not negative, not beyond the entity's head */
static void
CheckTail(const Activity *activity, const char *entity, int64 tail, int64 head)
{
	if (tail < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tail " INT64_FORMAT " is negative", tail)));
	if (tail > head)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tail " INT64_FORMAT " is beyond the last event of entity \"%s\" (" INT64_FORMAT ")",
						tail, entity, head),
				 errdetail("Activity \"%s\" reads stream \"%s\".", activity->name, activity->stream)));
}

PG_FUNCTION_INFO_V1(choreo_start_activity);

/*
 * Starts an activity for an entity (idempotent); a tail greater than zero
 * moves its cursor there
 */
Datum
choreo_start_activity(PG_FUNCTION_ARGS)
{
	char	   *written = NameArgument(fcinfo, 0, "activity");
	char	   *entity = EntityArgument(fcinfo, 1);
	int64		tail = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2);
	Activity	activity;
	ExtensionWrite write;
	LockedCursor cursor;

	if (tail < 0)
		CheckTail(NULL, entity, tail, 0);
	ActivityOpen(written, false, &activity, &write);
	(void) EnsureCursor(&activity, entity, true);
	if (tail > 0)
	{
		Datum		args[2];

		if (!LockCursor(&activity, entity, &cursor))
			elog(ERROR, "cursor of activity \"%s\" for entity \"%s\" vanished", activity.name, entity);
		CheckTail(&activity, entity, tail, cursor.head);
		args[0] = Int64GetDatum(cursor.id);
		args[1] = Int64GetDatum(tail);
		ExecuteExtensionQuery("UPDATE " CHOREO_SCHEMA ".activity_cursors"
							  "   SET tail = $2, updated_at = pg_catalog.now()"
							  " WHERE id OPERATOR(pg_catalog.=) $1",
							  2, (Oid[]) {INT8OID, INT8OID}, args, SPI_OK_UPDATE);
		CursorsAnnounceAtCommit(cursor.id);
	}
	else
		CursorsAnnounceAtCommit(0);
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_reset_activity);

/*
 * Clears an entity's failure or completion, its attempts and last error;
 * a tail (not NULL) moves its cursor.  The workers run it at once if
 * events lie beyond its tail (or it never ran).
 */
Datum
choreo_reset_activity(PG_FUNCTION_ARGS)
{
	char	   *written = NameArgument(fcinfo, 0, "activity");
	char	   *entity = EntityArgument(fcinfo, 1);
	Activity	activity;
	ExtensionWrite write;
	LockedCursor cursor;
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};

	ActivityOpen(written, false, &activity, &write);
	if (!LockCursor(&activity, entity, &cursor))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("activity \"%s\" was not started for entity \"%s\"", activity.name, entity)));
	if (!PG_ARGISNULL(2))
		CheckTail(&activity, entity, PG_GETARG_INT64(2), cursor.head);
	args[0] = Int64GetDatum(cursor.id);
	args[1] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[1] = PG_ARGISNULL(2) ? 'n' : ' ';
	args[2] = BoolGetDatum(activity.engine != ENGINE_MANUAL);
	if (SPI_execute_with_args("UPDATE " CHOREO_SCHEMA ".activity_cursors"
							  "   SET state = 'active', attempts = 0, errors = 0, last_error = NULL,"
							  "       tail = COALESCE($2, tail), updated_at = pg_catalog.now(),"
							  "       next_run_at = CASE WHEN $3 THEN pg_catalog.now() END"
							  " WHERE id OPERATOR(pg_catalog.=) $1",
							  3, (Oid[]) {INT8OID, INT8OID, BOOLOID}, args, nulls,
							  false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not reset a cursor of activity \"%s\"", activity.name);
	CursorsAnnounceAtCommit(cursor.id);
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}

/*
 * Takes, without waiting, the lock choreo_run_activity holds on an
 * (activity, entity) to the end of its transaction: a second caller gets
 * CH003 at once, rather than waiting on the first's cursor row (even one
 * the first is still making)
 */
static bool
TryLockRunOf(const Activity *activity, const char *entity)
{
	uint32		h = hash_bytes((const unsigned char *) entity, strlen(entity));

	return ChoreoLockAcquire(CHOREO_LOCK_RUN, ((uint64) (uint32) activity->id << 32) | h,
							 ExclusiveLock, false);
}

PG_FUNCTION_INFO_V1(choreo_run_activity);

/*
 * Runs an activity's processor for an entity in the caller's transaction,
 * as the caller; returns its outcome, or NULL when there was nothing to
 * run (no event beyond the tail after the initial run, or the entity is
 * done or failed).  Raises CH003 when a worker runs it right now.
 */
Datum
choreo_run_activity(PG_FUNCTION_ARGS)
{
	char	   *written = NameArgument(fcinfo, 0, "activity");
	char	   *entity = EntityArgument(fcinfo, 1);
	Activity	activity;
	ExtensionWrite write;
	LockedCursor cursor;
	ActivityRun run;
	Datum		result;
	bool		isnull;

	PreventInSecurityRestrictedOperation("run an activity");
	ActivityOpen(written, false, &activity, &write);
	if (!TryLockRunOf(&activity, entity))
		ereport(ERROR,
				(errcode(ERRCODE_CHOREO_CONTENTION),
				 errmsg("activity \"%s\" is running for entity \"%s\"", activity.name, entity),
				 errdetail("Another transaction runs it.")));
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(activity.processor)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("processor (function %u) of activity \"%s\" no longer exists",
						activity.processor, activity.name),
				 errhint("Drop the activity and create it again with a processor that exists.")));
	if (!EnsureCursor(&activity, entity, activity.auto_start) ||
		!LockCursor(&activity, entity, &cursor))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("activity \"%s\" was not started for entity \"%s\"", activity.name, entity),
				 errhint("Its auto_start is false: start it with choreo_start_activity.")));
	if (!ActivityTryLocks(&activity, entity, false))
		ereport(ERROR,
				(errcode(ERRCODE_CHOREO_CONTENTION),
				 errmsg("activity \"%s\" cannot run for entity \"%s\" now", activity.name, entity),
				 errdetail("Another activity of serialize group \"%s\" is running for it.",
						   activity.serialize_group)));
	EndExtensionWrite(&write);
	/* whatever the outcome, the workers look at the cursor after commit */
	CursorsAnnounceAtCommit(cursor.id);
	if (strcmp(cursor.state, "active") != 0)
		PG_RETURN_NULL();

	memset(&run, 0, sizeof(run));
	run.cursor_id = cursor.id;
	run.entity_id = cursor.entity_id;
	run.entity = entity;
	run.tail = cursor.tail;
	run.initial = !cursor.has_run;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ActivityRunPrepare(&activity, &run);
	if (run.nevents == 0 && !run.initial)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	result = ActivityRunCall(&activity, &run, &isnull);
	ActivityRunStore(&activity, &run, result, isnull);
	if (!isnull)
		result = SPI_datumTransfer(result, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(result);
}
