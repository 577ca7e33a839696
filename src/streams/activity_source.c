/*
 * streams/activity_source.c
 *		Activities as a source of work for the background workers
 *		(workers/work_source.h): finding the (activity, entity) cursors
 *		that have work, from what is new; taking and running one batch per
 *		step; recording failures with backoff; which cursors run now.
 *
 * An item is a cursor (its key is the cursor's id): the claim of the key
 * is what keeps two runs of one (activity, entity) apart.  A step is one
 * batch: the processor's call and the cursor's new tail, in one
 * transaction.
 *
 * Finding work costs what is new.  A flush of events leaves a row per
 * entity in stream_news (stream_sink.c); the workers are woken at commit
 * and a look through this source first takes those rows (SKIP LOCKED, so
 * workers looking at once share them), makes the entity's cursors due
 * (creating those of auto_start activities), and only then lists the due
 * cursors, from the partial index of those that have a next_run_at.  An
 * entity that is caught up has no such row and costs nothing.  A cursor
 * that is locked while its news is taken (a worker runs it, or
 * choreo_run_activity does) is announced by its key instead: the worker
 * holding it runs it once more, and the others announce it at commit, so
 * no event committed during a run is left behind; its news is written
 * again, in case the run ends without committing (a crash, a SIGTERM).
 *
 * How the pool is shared: activities use at most choreograph.max_workers
 * - 1 workers (when there are two or more), so a post-commit hook always
 * finds one; a claim runs at most STEPS_PER_CLAIM batches, then the
 * entity goes to the back of the commit queue behind everything announced
 * meanwhile, so an entity whose events never stop cannot keep a worker;
 * max_concurrency and serialize_group are locks taken without waiting
 * when a run begins (activity_run.c): a run that cannot have them is put
 * back a little later and the worker moves on.  Nothing ever waits for
 * another run, so no mix of limits can deadlock the pool.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "streams/streams.h"
#include "workers/workers.h"

/* batches one claim runs before the entity waits its turn */
#define STEPS_PER_CLAIM 4

/* news rows one look takes at most per round, and rounds per look */
#define NEWS_PER_ROUND 1000
#define NEWS_ROUNDS 10

/* how long a run that could not have its locks waits before it is tried again */
#define LOCKED_OUT_RETRY "20 milliseconds"

/* the cursors of activities the workers run: active, of an engine that is not manual, not paused */
#define RUNNABLE(c, a) \
	c ".state OPERATOR(pg_catalog.=) 'active' AND " a ".engine OPERATOR(pg_catalog.<>) 'manual'"

/* when a cron activity's next tick is: the next multiple of its interval */
#define NEXT_TICK(a) \
	"pg_catalog.to_timestamp(pg_catalog.ceil(pg_catalog.date_part('epoch', pg_catalog.now())" \
	" OPERATOR(pg_catalog./) pg_catalog.date_part('epoch', " a ".cron_interval))" \
	" OPERATOR(pg_catalog.*) pg_catalog.date_part('epoch', " a ".cron_interval))"

#define DUE_AT(a) \
	"CASE WHEN " a ".engine OPERATOR(pg_catalog.=) 'cron' THEN " NEXT_TICK(a) " ELSE pg_catalog.now() END"

/* takes a round of news: the entities that got events */
static WorkerQuery take_news = {
	"WITH taken AS (DELETE FROM " CHOREO_SCHEMA ".stream_news n"
	"                WHERE n.ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
	"                      SELECT ctid FROM " CHOREO_SCHEMA ".stream_news LIMIT $1"
	"                         FOR UPDATE SKIP LOCKED))"
	"               RETURNING n.entity_id)"
	"SELECT pg_catalog.array_agg(DISTINCT entity_id), pg_catalog.count(*) FROM taken",
	1, {INT4OID}, NULL, NULL
};

/* the cursors of auto_start activities that the entities do not have yet */
static WorkerQuery start_cursors = {
	"INSERT INTO " CHOREO_SCHEMA ".activity_cursors (activity_id, entity_id, next_run_at)"
	" SELECT a.id, s.id, " DUE_AT("a")
	"   FROM " CHOREO_SCHEMA ".stream_entities s"
	"   JOIN " CHOREO_TABLE_HERE("activities") " a ON a.stream OPERATOR(pg_catalog.=) s.stream"
	"  WHERE s.id OPERATOR(pg_catalog.=) ANY ($1)"
	"    AND a.auto_start AND a.engine OPERATOR(pg_catalog.<>) 'manual'"
	" ON CONFLICT (activity_id, entity_id) DO NOTHING",
	1, {INT8ARRAYOID}, NULL, NULL
};

/*
 * makes the entities' idle cursors due, and lists those locked elsewhere
 * (to be announced); a WITH's UPDATE runs whether it is read or not
 */
static WorkerQuery wake_cursors = {
	"WITH mine AS (SELECT c.id FROM " CHOREO_SCHEMA ".activity_cursors c"
	"                JOIN " CHOREO_TABLE_HERE("activities") " a ON a.id OPERATOR(pg_catalog.=) c.activity_id"
	"               WHERE c.entity_id OPERATOR(pg_catalog.=) ANY ($1) AND " RUNNABLE("c", "a")
	"                 FOR UPDATE OF c SKIP LOCKED),"
	"     woken AS (UPDATE " CHOREO_SCHEMA ".activity_cursors c SET next_run_at = " DUE_AT("a")
	"                 FROM " CHOREO_TABLE_HERE("activities") " a"
	"                WHERE a.id OPERATOR(pg_catalog.=) c.activity_id"
	"                  AND c.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM mine))"
	"                  AND c.next_run_at IS NULL"
	"               RETURNING c.id)"
	"SELECT c.id FROM " CHOREO_SCHEMA ".activity_cursors c"
	"  JOIN " CHOREO_TABLE_HERE("activities") " a ON a.id OPERATOR(pg_catalog.=) c.activity_id"
	" WHERE c.entity_id OPERATOR(pg_catalog.=) ANY ($1) AND " RUNNABLE("c", "a")
	"   AND c.id OPERATOR(pg_catalog.<>) ALL (ARRAY(SELECT id FROM mine))",
	1, {INT8ARRAYOID}, NULL, NULL
};

/*
 * news kept for the entities of cursors a run holds: the run may end
 * without its transaction (a crash, a SIGTERM), and the news it was told
 * of by its key must then still be there
 */
static WorkerQuery keep_news = {
	"INSERT INTO " CHOREO_SCHEMA ".stream_news (entity_id)"
	" SELECT DISTINCT entity_id FROM " CHOREO_SCHEMA ".activity_cursors"
	"  WHERE id OPERATOR(pg_catalog.=) ANY ($1)",
	1, {INT8ARRAYOID}, NULL, NULL
};

/* due cursors after an id, in id order */
static WorkerQuery due_cursors = {
	"SELECT c.id FROM " CHOREO_SCHEMA ".activity_cursors c"
	"  JOIN " CHOREO_TABLE_HERE("activities") " a ON a.id OPERATOR(pg_catalog.=) c.activity_id"
	" WHERE c.next_run_at OPERATOR(pg_catalog.<=) pg_catalog.now()"
	"   AND c.id OPERATOR(pg_catalog.>) $1 AND " RUNNABLE("c", "a") " AND NOT a.paused"
	" ORDER BY c.id LIMIT $2",
	2, {INT8OID, INT4OID}, NULL, NULL
};

/* milliseconds until the earliest cursor that is not due yet is */
static WorkerQuery next_due = {
	"SELECT pg_catalog.ceil(pg_catalog.date_part('epoch', c.next_run_at OPERATOR(pg_catalog.-) pg_catalog.now())"
	"       OPERATOR(pg_catalog.*) 1000)::pg_catalog.int8"
	"  FROM " CHOREO_SCHEMA ".activity_cursors c"
	"  JOIN " CHOREO_TABLE_HERE("activities") " a ON a.id OPERATOR(pg_catalog.=) c.activity_id"
	" WHERE c.next_run_at OPERATOR(pg_catalog.>) pg_catalog.now()"
	"   AND " RUNNABLE("c", "a") " AND NOT a.paused"
	" ORDER BY c.next_run_at LIMIT 1",
	0, {0}, NULL, NULL
};

/* a cursor to run, locked unless another transaction holds it */
static WorkerQuery take_cursor = {
	"SELECT c.entity_id, c.tail, c.has_run, c.state OPERATOR(pg_catalog.=) 'active',"
	"       c.next_run_at OPERATOR(pg_catalog.<=) pg_catalog.now(), c.next_run_at IS NULL,"
	"       EXISTS (SELECT FROM " CHOREO_SCHEMA ".events v"
	"                WHERE v.entity_id OPERATOR(pg_catalog.=) c.entity_id"
	"                  AND v.seq OPERATOR(pg_catalog.>) c.tail),"
	"       s.entity, c.attempts, " ACTIVITY_COLUMNS("a.")
	"  FROM " CHOREO_SCHEMA ".activity_cursors c"
	"  JOIN " CHOREO_TABLE_HERE("activities") " a ON a.id OPERATOR(pg_catalog.=) c.activity_id"
	"  JOIN " CHOREO_SCHEMA ".stream_entities s ON s.id OPERATOR(pg_catalog.=) c.entity_id"
	" WHERE c.id OPERATOR(pg_catalog.=) $1"
	"   FOR UPDATE OF c SKIP LOCKED",
	1, {INT8OID}, NULL, NULL
};

/* a cursor not run now: due at its next tick, soon, or (idle) when events come */
static WorkerQuery put_back = {
	"UPDATE " CHOREO_SCHEMA ".activity_cursors c"
	"   SET next_run_at = CASE $2 WHEN 'tick' THEN " NEXT_TICK("a")
	"                             WHEN 'soon' THEN pg_catalog.now() OPERATOR(pg_catalog.+) '" LOCKED_OUT_RETRY "'"
	"                             END"
	"  FROM " CHOREO_TABLE_HERE("activities") " a"
	" WHERE a.id OPERATOR(pg_catalog.=) c.activity_id AND c.id OPERATOR(pg_catalog.=) $1",
	2, {INT8OID, TEXTOID}, NULL, NULL
};

/* an entity that cannot run at all any more */
static WorkerQuery fail_cursor = {
	"UPDATE " CHOREO_SCHEMA ".activity_cursors"
	"   SET state = 'failed', next_run_at = NULL, updated_at = pg_catalog.now(),"
	"       last_error = pg_catalog.left($2, $3)"
	" WHERE id OPERATOR(pg_catalog.=) $1",
	3, {INT8OID, TEXTOID, INT4OID}, NULL, NULL
};

/* a run that raised: counted, and retried with backoff or failed for good */
static WorkerQuery record_error = {
	"UPDATE " CHOREO_SCHEMA ".activity_cursors c"
	"   SET attempts = c.attempts OPERATOR(pg_catalog.+) 1, errors = c.errors OPERATOR(pg_catalog.+) 1,"
	"       last_error = pg_catalog.left($2, $3), updated_at = pg_catalog.now(),"
	"       state = CASE WHEN c.errors OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=) a.max_attempts"
	"               THEN 'failed' ELSE c.state END,"
	"       next_run_at = CASE WHEN c.errors OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.>=) a.max_attempts"
	"               THEN NULL"
	"               ELSE pg_catalog.now() OPERATOR(pg_catalog.+) LEAST(a.backoff_base"
	"                    OPERATOR(pg_catalog.*) pg_catalog.power(2, LEAST(c.attempts, 30)),"
	"                    a.backoff_max) END"
	"  FROM " CHOREO_TABLE_HERE("activities") " a"
	" WHERE a.id OPERATOR(pg_catalog.=) c.activity_id AND c.id OPERATOR(pg_catalog.=) $1"
	" RETURNING c.state",
	3, {INT8OID, TEXTOID, INT4OID}, NULL, NULL
};

/* A run taken, for run_step (and step_failed's messages) */
typedef struct TakenRun
{
	Activity	activity;
	ActivityRun run;
} TakenRun;

/*
 * Takes rounds of news and makes the entities' cursors due, in find_due's
 * transaction; lists those locked elsewhere, to be announced once it has
 * committed (-1: max_announce of them, and more, or news left for another look)
 */
static int
TakeNews(int64 *announce, int max_announce)
{
	int			nannounce = 0;

	for (int round = 0; round < NEWS_ROUNDS; round++)
	{
		Datum		args[1] = {Int32GetDatum(NEWS_PER_ROUND)};
		bool		isnull;
		Datum		entities;
		int64		taken;

		ExecuteWorkerQuery(&take_news, args, SPI_OK_SELECT);
		entities = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		taken = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
											&isnull));
		if (taken == 0)
			return nannounce;
		entities = PointerGetDatum(PG_DETOAST_DATUM_COPY(entities));
		ExecuteWorkerQuery(&start_cursors, &entities, SPI_OK_INSERT);
		ExecuteWorkerQuery(&wake_cursors, &entities, SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			int			nheld = (int) SPI_processed;
			Datum	   *held = palloc(sizeof(Datum) * nheld);
			Datum		array;
			bool		full = false;

			for (int i = 0; i < nheld; i++)
			{
				held[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
				if (nannounce < max_announce)
					announce[nannounce++] = DatumGetInt64(held[i]);
				else
					full = true;
			}
			array = PointerGetDatum(construct_array(held, nheld, INT8OID, sizeof(int64),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			ExecuteWorkerQuery(&keep_news, &array, SPI_OK_INSERT);
			if (full)
				return -1;		/* too many: those listed, and another look */
		}
		if (taken < NEWS_PER_ROUND)
			return nannounce;
		CHECK_FOR_INTERRUPTS();
	}
	/* more news than a look takes: another look takes the rest */
	return -1;
}

/*
 * Lists the due cursors after an id (find_due), and announces all but the
 * first of them once its transaction has committed (before, a worker
 * taking one would find it locked by the look): the loop runs the list
 * one item after another, and the idle workers, woken for the others,
 * take their share meanwhile (an item one of them holds already is left
 * to it, one it finished is found not due).  The first look of a pass
 * takes the news first.  Lowers *wait_ms to the time until the next
 * cursor is due.
 */
static int
FindDueCursors(int64 after, WorkItem *items, int max, long *wait_ms)
{
	MemoryContext cxt;
	int			ndue = 0;
	int64		announce[WORK_BATCH * 2];
	int			nannounce = 0;
	bool		more_news = false;

	cxt = BeginWorkerTransaction();
	pgstat_report_activity(STATE_RUNNING, "choreograph: looking for due activities");

	/* the extension may not be installed, or not updated, in this database */
	if (OidIsValid(ChoreoRelationOid("stream_news", true)))
	{
		bool		isnull;
		Datum		args[2] = {Int64GetDatum(after == WORK_LOOK_START ? 0 : after),
		Int32GetDatum(max)};

		if (after == WORK_LOOK_START)
		{
			nannounce = TakeNews(announce, WORK_BATCH);
			if (nannounce < 0)
			{
				nannounce = WORK_BATCH;
				more_news = true;
			}
		}
		ExecuteWorkerQuery(&due_cursors, args, SPI_OK_SELECT);
		ndue = Min((int) SPI_processed, max);
		for (int i = 0; i < ndue; i++)
		{
			int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));

			items[i].key = (uint64) id;
			items[i].position = id;
			if (i > 0)
				announce[nannounce++] = id;
		}
		if (ndue < max)
		{
			ExecuteWorkerQuery(&next_due, NULL, SPI_OK_SELECT);
			if (SPI_processed == 1)
			{
				Datum		next = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
												 &isnull);

				if (!isnull)
					*wait_ms = Max(1, Min(DatumGetInt64(next), *wait_ms));
			}
		}
	}
	CommitWorkerTransaction(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);

	for (int i = 0; i < nannounce; i++)
		WorkersWake(ACTIVITY_SOURCE, (uint64) announce[i]);
	if (more_news)
		WorkersWake(ACTIVITY_SOURCE, 0);
	return ndue;
}

/* Marks a cursor failed for a reason that no retry can cure */
static void
FailCursor(int64 id, const char *message)
{
	Datum		args[3] = {Int64GetDatum(id), CStringGetTextDatum(message),
	Int32GetDatum(choreo_error_max_length)};

	ExecuteWorkerQuery(&fail_cursor, args, SPI_OK_UPDATE);
}

static void
PutBack(int64 id, const char *when)
{
	Datum		args[2] = {Int64GetDatum(id), CStringGetTextDatum(when)};

	ExecuteWorkerQuery(&put_back, args, SPI_OK_UPDATE);
	/* its new time is seen by the workers' next look, right after commit */
	CursorsAnnounceAtCommit(0);
}

/*
 * Takes the next batch of a cursor if it is due (take_step): it is when
 * its time came, or when it waits for events and has some (or never ran).
 * A cron activity's cursor with events gets its next tick instead.
 */
static bool
TakeCursor(uint64 key, WorkStep *step)
{
	Datum		args[1] = {Int64GetDatum((int64) key)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	bool		active;
	bool		due;
	bool		waiting;
	bool		pending;
	bool		has_run;
	int32		attempts;
	TakenRun   *taken;
	MemoryContext step_cxt = GetMemoryChunkContext(step);
	MemoryContext old;
	char		activity_line[64];

	ExecuteWorkerQuery(&take_cursor, args, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return false;			/* gone, or held: its holder announces it */
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	old = MemoryContextSwitchTo(step_cxt);
	taken = palloc0(sizeof(TakenRun));
	ActivityFromRow(row, desc, 10, &taken->activity);
	taken->run.entity = TextDatumGetCString(SPI_getbinval(row, desc, 8, &isnull));
	MemoryContextSwitchTo(old);

	taken->run.cursor_id = (int64) key;
	taken->run.entity_id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	taken->run.tail = DatumGetInt64(SPI_getbinval(row, desc, 2, &isnull));
	has_run = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
	active = DatumGetBool(SPI_getbinval(row, desc, 4, &isnull));
	due = DatumGetBool(SPI_getbinval(row, desc, 5, &isnull)) && !isnull;
	waiting = DatumGetBool(SPI_getbinval(row, desc, 6, &isnull));
	pending = DatumGetBool(SPI_getbinval(row, desc, 7, &isnull));
	attempts = DatumGetInt32(SPI_getbinval(row, desc, 9, &isnull));
	taken->run.initial = !has_run;

	if (!active || taken->activity.paused || taken->activity.engine == ENGINE_MANUAL)
		return false;
	if (!due)
	{
		if (!waiting || !(pending || !has_run))
			return false;
		if (taken->activity.engine == ENGINE_CRON)
		{
			PutBack((int64) key, "tick");
			return false;
		}
	}
	else if (has_run && !pending && attempts == 0)
	{
		/* woken with nothing to do (a reset, say): it waits for events */
		PutBack((int64) key, "idle");
		return false;
	}

	/* what no retry can cure fails the entity at once */
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(taken->activity.processor)))
	{
		char	   *message = psprintf("processor (function %u) of activity \"%s\" no longer exists",
									   taken->activity.processor, taken->activity.name);

		ereport(LOG,
				(errmsg("choreograph activity \"%s\" entity \"%s\" failed: %s",
						taken->activity.name, taken->run.entity, message)));
		FailCursor((int64) key, message);
		return false;
	}
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(taken->activity.owner)))
	{
		char	   *message = psprintf("role %u, the owner of activity \"%s\", no longer exists",
									   taken->activity.owner, taken->activity.name);

		ereport(LOG,
				(errmsg("choreograph activity \"%s\" entity \"%s\" failed: %s",
						taken->activity.name, taken->run.entity, message)));
		FailCursor((int64) key, message);
		return false;
	}
	if (!ActivityTryLocks(&taken->activity, taken->run.entity, true))
	{
		PutBack((int64) key, "soon");
		return false;
	}

	step->id = (int64) key;
	step->role = taken->activity.owner;
	step->arg = taken;
	snprintf(activity_line, sizeof(activity_line), "choreograph: running activity cursor " INT64_FORMAT,
			 (int64) key);
	pgstat_report_activity(STATE_RUNNING, activity_line);
	return true;
}

/* Runs a batch taken (run_step), as the activity's owner */
static void
RunCursor(WorkStep *step)
{
	TakenRun   *taken = step->arg;
	Datum		result;
	bool		isnull;

	ActivityRunPrepare(&taken->activity, &taken->run);
	result = ActivityRunCall(&taken->activity, &taken->run, &isnull);
	ActivityRunStore(&taken->activity, &taken->run, result, isnull);
}

/* Logs a failed run and records it against its cursor (step_failed) */
static bool
CursorFailed(uint64 key, WorkStep *step, ErrorData *edata)
{
	TakenRun   *taken = step->arg;
	MemoryContext cxt;
	Datum		args[3];

	if (step->id == 0)
	{
		ereport(LOG,
				(errcode(edata->sqlerrcode),
				 errmsg("choreograph worker could not take activity cursor %llu: %s",
						(unsigned long long) key, edata->message)));
		return false;
	}
	ereport(LOG,
			(errcode(edata->sqlerrcode),
			 errmsg("choreograph activity \"%s\" entity \"%s\" failed: %s",
					taken->activity.name, taken->run.entity, edata->message)));
	args[0] = Int64GetDatum((int64) key);
	args[1] = CStringGetTextDatum(edata->message != NULL ? edata->message : "");
	args[2] = Int32GetDatum(choreo_error_max_length);
	cxt = BeginWorkerTransaction();
	ExecuteWorkerQuery(&record_error, args, SPI_OK_UPDATE_RETURNING);
	CommitWorkerTransaction(cxt);
	return true;
}

static WorkSource activity_source = {
	.name = ACTIVITY_SOURCE,
	.max_concurrency = 0,
	.steps_per_claim = STEPS_PER_CLAIM,
	.find_due = FindDueCursors,
	.take_step = TakeCursor,
	.run_step = RunCursor,
	.step_failed = CursorFailed,
	.apply_settings = NULL,
};

/* Registers activities with the workers; called from _PG_init when preloaded */
void
ActivitySourceRegister(void)
{
	/* one worker is always left to the other sources */
	activity_source.max_concurrency = choreo_max_workers > 1 ? choreo_max_workers - 1 : 0;
	WorkSourceRegister(&activity_source);
}

PG_FUNCTION_INFO_V1(choreo_running_activities);

/* The cursors the workers are running right now */
Datum
choreo_running_activities(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		ids[MAX_CHOREO_WORKERS];
	int			n;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	n = WorkersRunning(ACTIVITY_SOURCE, ids, MAX_CHOREO_WORKERS);
	for (int i = 0; i < n; i++)
	{
		Datum		value = Int64GetDatum(ids[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}
