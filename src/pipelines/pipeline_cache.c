/*
 * pipelines/pipeline_cache.c
 *		The per-backend cache of pipeline definitions.
 *
 * A run must not read the definition tables: definitions are loaded once
 * per backend, with their functions' lookup info, into the shared
 * definition cache (shared/definition_cache.c), which forgets them when
 * the definition tables change.  Changes to a function a step uses arrive
 * as pg_proc syscache invalidations and forget the pipelines using it;
 * role changes as pg_authid and pg_auth_members ones, which only force the
 * EXECUTE checks to be redone.  A pipeline forgotten while runs use it
 * (a step may itself redefine pipelines) is freed at its last unpin.
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

static DefinitionCache *pipeline_cache = NULL;

/* bumped when roles change, so EXECUTE rights are checked again */
static uint64 acl_generation = 1;

/*
 * The cache forgets a pipeline: it is freed now, or when its last run ends
 * (it lives in cxt)
 */
static void
PipelineForget(void *definition, MemoryContext cxt)
{
	Pipeline   *pipeline = (Pipeline *) definition;

	pipeline->stale = true;
	if (pipeline->pins == 0)
		MemoryContextDelete(cxt);
}

/* Forgets every cached pipeline */
void
PipelineCacheReset(void)
{
	DefinitionCacheInvalidate(pipeline_cache);
}

static bool
FunctionMatchesHash(StepFunction *function, uint32 hashvalue)
{
	return function != NULL && function->hashvalue == hashvalue;
}

/* Whether a pipeline calls a function of the given PROCOID hash value */
static bool
PipelineUsesFunction(void *definition, void *arg)
{
	Pipeline   *pipeline = (Pipeline *) definition;
	uint32		hashvalue = *(uint32 *) arg;

	for (int i = 0; i < pipeline->nsteps; i++)
	{
		PipelineStep *step = &pipeline->steps[i];

		if (FunctionMatchesHash(step->precheck, hashvalue) ||
			FunctionMatchesHash(&step->job, hashvalue))
			return true;
	}
	return false;
}

/* Syscache callback on pg_proc: forget pipelines using the changed function */
static void
FunctionChanged(Datum arg, int cacheid, uint32 hashvalue)
{
	if (hashvalue == 0)
		PipelineCacheReset();
	else
		DefinitionCacheForgetIf(pipeline_cache, PipelineUsesFunction, &hashvalue);
}

/* Syscache callback on roles and memberships: recheck EXECUTE rights */
static void
RolesChanged(Datum arg, int cacheid, uint32 hashvalue)
{
	acl_generation++;
}

static void *LoadPipeline(const DefinitionId *id, MemoryContext cxt);

static const char *const pipeline_tables[] = {"pipelines", "steps", NULL};

static const DefinitionCacheMethods pipeline_cache_methods = {
	.kind = &PipelineKind,
	.tables = pipeline_tables,
	.load = LoadPipeline,
	.forget = PipelineForget,
};

/* Sets up the cache and its invalidation callbacks; called from _PG_init */
void
PipelineCacheInit(void)
{
	DefinitionKindRegister(&PipelineKind);
	pipeline_cache = DefinitionCacheCreate(&pipeline_cache_methods);
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
 * Reads one pipeline's definition from the tables into cxt (the definition
 * cache's load method); NULL when there is no such pipeline.
 */
static void *
LoadPipeline(const DefinitionId *id, MemoryContext cxt)
{
	/* this node's copies of the tables (shared/node_tables.c) */
	char	   *query = QueryForThisNode("SELECT s.step, s.precheck::pg_catalog.oid, s.job::pg_catalog.oid"
										 "  FROM " CHOREO_TABLE_HERE("pipelines") " p"
										 "  LEFT JOIN " CHOREO_TABLE_HERE("steps") " s"
										 "    ON s.namespace OPERATOR(pg_catalog.=) p.namespace"
										 "   AND s.pipeline OPERATOR(pg_catalog.=) p.name"
										 " WHERE p.namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
										 "   AND p.name OPERATOR(pg_catalog.=) $2"
										 " ORDER BY s.position");
	const char *name = NameStr(id->name);
	MemoryContext old;
	Pipeline   *pipeline;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2];
	int			rc;
	uint64		nrows;

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
	{
		SPI_finish();
		return NULL;
	}

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

	SPI_finish();
	return pipeline;
}

/* Returns a pipeline by identity, loading it on first use, pinned */
static Pipeline *
PipelineAcquireId(const DefinitionId *id)
{
	Pipeline   *pipeline = DefinitionCacheLookup(pipeline_cache, id);

	if (pipeline == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", NameStr(id->name))));
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
	return PipelineAcquireId(NameCacheResolve(DefinitionCacheNames(pipeline_cache), name, strlen(name)));
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

	if (pipeline != NULL && ref->generation == DefinitionCacheGeneration(pipeline_cache) &&
		(written = NameRefWritten(ref->name, &written_len), written_len == len) &&
		memcmp(written, name, len) == 0 && NameRefHolds(ref->name) &&
		NameRefId(ref->name)->namespace == pipeline->namespace &&
		strcmp(NameStr(NameRefId(ref->name)->name), pipeline->name) == 0)
	{
		pipeline->pins++;
		return pipeline;
	}

	ref->pipeline = NULL;
	ref->name = NameCacheLookup(DefinitionCacheNames(pipeline_cache), name, len);
	pipeline = PipelineAcquireId(NameRefId(ref->name));
	ref->pipeline = pipeline;
	ref->generation = DefinitionCacheGeneration(pipeline_cache);
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
