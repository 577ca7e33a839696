/*
 * pipelines/pipeline_cache.c
 *		The per-backend cache of pipeline definitions.
 *
 * A run must not read the definition tables: definitions are loaded once
 * per backend, with their functions' lookup info, and kept until they are
 * invalidated.  Changes to the definition tables register a relcache
 * invalidation of the changed table (a statement trigger does it, so even
 * direct DML and pg_restore count), which PostgreSQL delivers to this
 * backend at its next command and to every other backend when the change
 * commits, and undoes on rollback.  Changes to a function a step uses
 * arrive as pg_proc syscache invalidations; role changes as pg_authid and
 * pg_auth_members ones, which only force the EXECUTE checks to be redone.
 *
 * Pipelines are cached by identity (schema, name); the name a run is given
 * is resolved to one through names.c's cache, which checks on every call
 * that the search path and role it was resolved for still hold.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "pipelines/pipelines.h"
#include "shared/pg_compat.h"

typedef struct PipelineCacheEntry
{
	DefinitionId id;			/* hash key */
	Pipeline   *pipeline;
} PipelineCacheEntry;

static HTAB *pipeline_cache = NULL;
static NameCache *pipeline_names = NULL;	/* names as written, resolved */
static MemoryContext pipeline_cache_cxt = NULL;

/* the definition tables, as known when definitions were last loaded */
static Oid	steps_relid = InvalidOid;
static Oid	pipelines_relid = InvalidOid;

/* bumped by every invalidation that may concern a definition being loaded */
static uint64 invalidation_count = 0;

/* bumped when roles change, so EXECUTE rights are checked again */
static uint64 acl_generation = 1;

/* Frees a pipeline now, or marks it to be freed when its last run ends */
static void
PipelineDiscard(Pipeline *pipeline)
{
	pipeline->stale = true;
	if (pipeline->pins == 0)
		MemoryContextDelete(pipeline->cxt);
}

/* Forgets every cached definition */
void
PipelineCacheReset(void)
{
	HASH_SEQ_STATUS status;
	PipelineCacheEntry *entry;

	invalidation_count++;
	if (pipeline_cache == NULL)
		return;
	/* a pipeline created or dropped may change what a name refers to */
	NameCacheReset(pipeline_names);

	hash_seq_init(&status, pipeline_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		Pipeline   *pipeline = entry->pipeline;

		hash_search(pipeline_cache, &entry->id, HASH_REMOVE, NULL);
		PipelineDiscard(pipeline);
	}
}

/* Relcache callback: a definition table changed (or everything did) */
static void
DefinitionsChanged(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == steps_relid || relid == pipelines_relid)
	{
		PipelineCacheReset();
		steps_relid = InvalidOid;
		pipelines_relid = InvalidOid;
	}
}

static bool
FunctionMatchesHash(StepFunction *function, uint32 hashvalue)
{
	return function != NULL && function->hashvalue == hashvalue;
}

/* Syscache callback on pg_proc: forget pipelines using the changed function */
static void
FunctionChanged(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS status;
	PipelineCacheEntry *entry;

	invalidation_count++;
	if (pipeline_cache == NULL)
		return;
	if (hashvalue == 0)
	{
		PipelineCacheReset();
		return;
	}

	hash_seq_init(&status, pipeline_cache);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		Pipeline   *pipeline = entry->pipeline;

		for (int i = 0; i < pipeline->nsteps; i++)
		{
			PipelineStep *step = &pipeline->steps[i];

			if (FunctionMatchesHash(step->precheck, hashvalue) ||
				FunctionMatchesHash(&step->job, hashvalue))
			{
				hash_search(pipeline_cache, &entry->id, HASH_REMOVE, NULL);
				PipelineDiscard(pipeline);
				break;
			}
		}
	}
}

/* Syscache callback on roles and memberships: recheck EXECUTE rights */
static void
RolesChanged(Datum arg, int cacheid, uint32 hashvalue)
{
	acl_generation++;
}

/* Sets up the cache and its invalidation callbacks; called from _PG_init */
void
PipelineCacheInit(void)
{
	pipeline_cache_cxt = AllocSetContextCreate(TopMemoryContext,
											   "choreograph pipeline cache",
											   ALLOCSET_DEFAULT_SIZES);
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(DefinitionId);
		ctl.entrysize = sizeof(PipelineCacheEntry);
		ctl.hcxt = pipeline_cache_cxt;
		pipeline_cache = hash_create("choreograph pipeline cache", 64, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	pipeline_names = NameCacheCreate(&PipelineKind, pipeline_cache_cxt);

	CacheRegisterRelcacheCallback(DefinitionsChanged, (Datum) 0);
	CacheRegisterSyscacheCallback(PROCOID, FunctionChanged, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, RolesChanged, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, RolesChanged, (Datum) 0);
}

/* Resolves a step's function; a dropped one is kept, marked as missing */
static void
ResolveStepFunction(StepFunction *function, Oid oid, MemoryContext cxt)
{
	HeapTuple	tuple;
	Form_pg_proc proc;

	memset(function, 0, sizeof(StepFunction));
	function->oid = oid;
	function->hashvalue = GetSysCacheHashValue1(PROCOID, ObjectIdGetDatum(oid));

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(oid));
	if (!HeapTupleIsValid(tuple))
		return;
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	function->exists = true;
	function->strict = proc->proisstrict;
	function->nargs = proc->pronargs;
	function->argtype = proc->pronargs > 0 ? proc->proargtypes.values[0] : InvalidOid;
	function->rettype = proc->prorettype;
	ReleaseSysCache(tuple);
	if (OidIsValid(function->argtype))
		function->collation = get_typcollation(function->argtype);

	fmgr_info_cxt(oid, &function->flinfo, cxt);
}

/* qsort_arg comparator: step indexes by their names' jsonb key order */
static int
CompareStepKeys(const void *a, const void *b, void *arg)
{
	Pipeline   *pipeline = (Pipeline *) arg;

	return JsonbKeyCompare(pipeline->steps[*(const int *) a].name,
						   pipeline->steps[*(const int *) b].name);
}

/* the outcomes of a step, as reports name them */
static const char *const outcome_names[] = {
	[OUTCOME_NOT_RUN] = "not_run",
	[OUTCOME_DONE] = "done",
	[OUTCOME_SKIPPED] = "skipped",
	[OUTCOME_FAILED] = "failed",
	[OUTCOME_CANCELED] = "canceled",
};

/*
 * Writes, once per pipeline, each step's report entry {"step", "outcome"}
 * for every outcome, so that a report copies them instead of writing them
 * field by field.  Returns an array of jbvBinary values, indexed by
 * step * NUM_STEP_OUTCOMES + outcome, in the current memory context.
 */
static JsonbValue *
BuildStepEntries(Pipeline *pipeline)
{
	JsonbValue *entries = palloc(sizeof(JsonbValue) * NUM_STEP_OUTCOMES *
								 Max(pipeline->nsteps, 1));

	StaticAssertStmt(lengthof(outcome_names) == NUM_STEP_OUTCOMES,
					 "NUM_STEP_OUTCOMES does not match StepOutcome");
	for (int i = 0; i < pipeline->nsteps; i++)
		for (int o = 0; o < NUM_STEP_OUTCOMES; o++)
		{
			JsonbWriter writer;

			JsonbWriterInit(&writer);
			JsonbWriterBeginObject(&writer, 2);
			JsonbWriterString(&writer, "step", 4);
			JsonbWriterString(&writer, "outcome", 7);
			JsonbWriterCString(&writer, pipeline->steps[i].name);
			JsonbWriterCString(&writer, outcome_names[o]);
			JsonbWriterEnd(&writer);
			JsonbToValue(JsonbWriterFinish(&writer), &entries[i * NUM_STEP_OUTCOMES + o]);
		}
	return entries;
}

/*
 * Reads one pipeline's definition from the tables into a new memory
 * context.  The context starts as a child of the caller's, so an error
 * half-way leaves nothing behind; the caller adopts it on success.
 */
static Pipeline *
LoadPipeline(const DefinitionId *id)
{
	static const char *query =
		"SELECT s.step, s.precheck::pg_catalog.oid, s.job::pg_catalog.oid"
		"  FROM " CHOREO_SCHEMA ".pipelines p"
		"  LEFT JOIN " CHOREO_SCHEMA ".steps s"
		"    ON s.namespace OPERATOR(pg_catalog.=) p.namespace"
		"   AND s.pipeline OPERATOR(pg_catalog.=) p.name"
		" WHERE p.namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
		"   AND p.name OPERATOR(pg_catalog.=) $2"
		" ORDER BY s.position";
	const char *name = NameStr(id->name);
	MemoryContext cxt;
	MemoryContext old;
	Pipeline   *pipeline;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2];
	int			rc;
	uint64		nrows;

	cxt = AllocSetContextCreate(CurrentMemoryContext, "choreograph pipeline",
								ALLOCSET_SMALL_SIZES);
	pipeline = MemoryContextAllocZero(cxt, sizeof(Pipeline));
	pipeline->cxt = cxt;
	pipeline->name = MemoryContextStrdup(cxt, name);
	pipeline->namespace = id->namespace;
	MemoryContextSetIdentifier(cxt, pipeline->name);

	args[0] = ObjectIdGetDatum(id->namespace);
	args[1] = CStringGetTextDatum(name);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args(query, 2, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the definition of pipeline \"%s\": %s",
			 name, SPI_result_code_string(rc));

	nrows = SPI_processed;
	if (nrows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name)));

	old = MemoryContextSwitchTo(cxt);
	pipeline->steps = palloc0(sizeof(PipelineStep) * nrows);
	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		PipelineStep *step = &pipeline->steps[pipeline->nsteps];
		bool		isnull;
		Datum		value;

		value = SPI_getbinval(row, desc, 1, &isnull);
		if (isnull)				/* a pipeline without steps */
			break;
		step->name = TextDatumGetCString(value);

		value = SPI_getbinval(row, desc, 2, &isnull);
		if (!isnull)
		{
			step->precheck = palloc(sizeof(StepFunction));
			ResolveStepFunction(step->precheck, DatumGetObjectId(value), cxt);
		}
		value = SPI_getbinval(row, desc, 3, &isnull);
		ResolveStepFunction(&step->job, DatumGetObjectId(value), cxt);
		pipeline->nsteps++;
	}
	pipeline->key_order = palloc(sizeof(int) * Max(pipeline->nsteps, 1));
	for (int i = 0; i < pipeline->nsteps; i++)
		pipeline->key_order[i] = i;
	qsort_arg(pipeline->key_order, pipeline->nsteps, sizeof(int),
			  CompareStepKeys, pipeline);
	pipeline->step_entries = BuildStepEntries(pipeline);
	MemoryContextSwitchTo(old);

	/* remember which tables to watch */
	steps_relid = ChoreoRelationOid("steps", false);
	pipelines_relid = ChoreoRelationOid("pipelines", false);

	SPI_finish();
	return pipeline;
}

/* Returns a pipeline by identity, loading it on first use, pinned */
static Pipeline *
PipelineAcquireId(const DefinitionId *resolved)
{
	PipelineCacheEntry *entry;
	Pipeline   *pipeline;
	DefinitionId id = *resolved;	/* resolving again (invalidations) may change it */

	entry = hash_search(pipeline_cache, &id, HASH_FIND, NULL);
	if (entry != NULL)
		pipeline = entry->pipeline;
	else
	{
		/*
		 * An invalidation processed while loading may describe a change
		 * that the load did not see; load again until none arrives.
		 */
		for (;;)
		{
			uint64		before = invalidation_count;

			pipeline = LoadPipeline(&id);
			if (invalidation_count == before)
				break;
			MemoryContextDelete(pipeline->cxt);
			CHECK_FOR_INTERRUPTS();
		}
		MemoryContextSetParent(pipeline->cxt, pipeline_cache_cxt);
		entry = hash_search(pipeline_cache, &id, HASH_ENTER, NULL);
		entry->pipeline = pipeline;
	}
	pipeline->pins++;
	return pipeline;
}

/*
 * Returns the pipeline a name (as written) refers to for the current role
 * and search path, loading it on first use, pinned for the caller, who
 * must PipelineRelease it (also on error).
 */
Pipeline *
PipelineAcquire(const char *name)
{
	return PipelineAcquireId(NameCacheResolve(pipeline_names, name, strlen(name)));
}

/*
 * PipelineAcquire for a call site that keeps a PipelineRef (zeroed at
 * first): the same name again, resolved as before, finds the same pipeline
 * without hashing anything, as long as no invalidation arrived (the only
 * way a cached pipeline is freed) and the name's resolution holds.
 */
Pipeline *
PipelineAcquireRef(const char *name, int len, PipelineRef *ref)
{
	Pipeline   *pipeline = ref->pipeline;
	const char *written;
	int			written_len;

	if (pipeline != NULL && ref->generation == invalidation_count &&
		(written = NameRefWritten(ref->name, &written_len), written_len == len) &&
		memcmp(written, name, len) == 0 && NameRefHolds(ref->name) &&
		NameRefId(ref->name)->namespace == pipeline->namespace &&
		strcmp(NameStr(NameRefId(ref->name)->name), pipeline->name) == 0)
	{
		pipeline->pins++;
		return pipeline;
	}

	ref->pipeline = NULL;
	ref->name = NameCacheLookup(pipeline_names, name, len);
	pipeline = PipelineAcquireId(NameRefId(ref->name));
	ref->pipeline = pipeline;
	ref->generation = invalidation_count;
	return pipeline;
}

/* Unpins a pipeline; frees it if it was invalidated meanwhile */
void
PipelineRelease(Pipeline *pipeline)
{
	Assert(pipeline->pins > 0);
	pipeline->pins--;
	if (pipeline->pins == 0 && pipeline->stale)
		MemoryContextDelete(pipeline->cxt);
}

/* Raises an error for a step function that was dropped */
static void
CheckStepFunctionExists(Pipeline *pipeline, PipelineStep *step,
						StepFunction *function, const char *role)
{
	if (!function->exists)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("step \"%s\" of pipeline \"%s\" uses a function that no longer exists",
						step->name, pipeline->name),
				 errdetail("Its %s was the function with OID %u, which has been dropped.",
						   role, function->oid),
				 errhint("Remove the step with choreo_remove_step and add it again.")));
}

/*
 * Before a step function is called: if the pipeline was invalidated while
 * its run was under way (a step may drop a later step's function), checks
 * that the function still exists.
 */
void
PipelineCheckStillCallable(Pipeline *pipeline, int stepno, StepFunction *function,
						   const char *role)
{
	if (!pipeline->stale)
		return;
	if (function->exists &&
		!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(function->oid)))
		function->exists = false;
	CheckStepFunctionExists(pipeline, &pipeline->steps[stepno], function, role);
}

/* Raises an error for a step function that was dropped or may not be run */
static void
CheckStepFunction(Pipeline *pipeline, PipelineStep *step,
				  StepFunction *function, const char *role, Oid user)
{
	CheckStepFunctionExists(pipeline, step, function, role);
	if (compat_proc_aclcheck(function->oid, user, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s",
						get_func_name(function->oid)),
				 errdetail("Step \"%s\" of pipeline \"%s\" calls it as its %s, and steps run with the privileges of the caller.",
						   step->name, pipeline->name, role)));
}

/*
 * Checks, before a run starts, that every function of the pipeline still
 * exists and that the current role may execute it.  The result is
 * remembered per role until roles or the functions change.
 */
void
PipelineCheckCallable(Pipeline *pipeline)
{
	Oid			user = GetUserId();

	if (pipeline->acl_checked_user == user &&
		pipeline->acl_checked_generation == acl_generation)
		return;

	for (int i = 0; i < pipeline->nsteps; i++)
	{
		PipelineStep *step = &pipeline->steps[i];

		if (step->precheck != NULL)
			CheckStepFunction(pipeline, step, step->precheck, "precheck", user);
		CheckStepFunction(pipeline, step, &step->job, "job", user);
	}
	pipeline->acl_checked_user = user;
	pipeline->acl_checked_generation = acl_generation;
}
