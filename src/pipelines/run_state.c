/*
 * pipelines/run_state.c
 *		The state of pipeline runs: the stack of active runs, the bag, step
 *		outcomes and error stack of each, the report built from them, and
 *		the SQL functions that let steps (and callers) read them.
 *
 * A run's state lives in its own memory context under TopMemoryContext, so
 * that it survives the rollback of a failed step and even of the caller's
 * transaction: after a run ends, fatally or not, it is kept as the session's
 * "last run" until the next run ends, which is what choreo_bag() and
 * choreo_errors() show outside any run.  The workers forget it between
 * post-commit hooks (RunStateReset), as they run hooks of many roles.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pipelines/pipelines.h"

static Run *current_run = NULL;	/* innermost active run */
static Run *last_run = NULL;	/* most recently ended run */
static int	run_depth = 0;

/* an emptied run context kept for the next run: most runs then create none */
static MemoryContext spare_cxt = NULL;

static const char *const status_names[] = {
	[RUN_RUNNING] = "running",
	[RUN_COMPLETED] = "completed",
	[RUN_FAILED] = "failed",
	[RUN_CANCELED] = "canceled",
};

const char *
StepPhaseName(StepPhase phase)
{
	switch (phase)
	{
		case PHASE_PRECHECK:
			return "precheck";
		case PHASE_JOB:
			return "job";
		default:
			return NULL;
	}
}

/*
 * Starts a run of a pinned pipeline; the run takes over the pin.  Raises
 * the depth error before creating anything.
 */
Run *
RunBegin(Pipeline *pipeline)
{
	MemoryContext cxt;
	Run		   *run;

	if (spare_cxt != NULL)
	{
		cxt = spare_cxt;
		spare_cxt = NULL;
	}
	else
		cxt = AllocSetContextCreate(TopMemoryContext, "choreograph run",
									ALLOCSET_SMALL_SIZES);
	run = MemoryContextAllocZero(cxt, sizeof(Run));
	run->cxt = cxt;
	run->pipeline = pipeline;
	run->status = RUN_RUNNING;
	run->current_step = -1;
	run->results = MemoryContextAllocZero(cxt, sizeof(StepResult) * Max(pipeline->nsteps, 1));

	run->outer = current_run;
	run->depth = ++run_depth;
	current_run = run;
	return run;
}

/* Raises an error if starting one more run would nest too deep */
void
RunCheckDepth(const char *pipeline_name)
{
	if (run_depth >= choreo_max_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("pipeline runs nested too deeply when starting pipeline \"%s\"",
						pipeline_name),
				 errdetail("The limit is %d nested runs.", choreo_max_depth),
				 errhint("A step probably runs its own pipeline, directly or not; "
						 "the limit is set by \"choreograph.max_depth\".")));
	check_stack_depth();
}

static void
RunFree(Run *run)
{
	MemoryContext cxt = run->cxt;

	PipelineRelease(run->pipeline);
	if (spare_cxt == NULL)
	{
		MemoryContextReset(cxt);
		spare_cxt = cxt;
	}
	else
		MemoryContextDelete(cxt);
}

/*
 * Ends the innermost run (normally or from an error handler: nothing here
 * can fail) and keeps it as the session's last run.
 */
void
RunEnd(Run *run)
{
	Assert(current_run == run);
	current_run = run->outer;
	run_depth--;
	run->outer = NULL;
	run->current_step = -1;
	run->current_phase = PHASE_NONE;

	if (last_run != NULL)
		RunFree(last_run);
	last_run = run;
}

/*
 * Forgets the session's last run, so that choreo_bag() and choreo_errors()
 * show nothing, as in a new session: called by the workers between hooks,
 * outside any run.  Runs still active (none should be: every run ends, from
 * an error handler too) are dropped as well.
 */
void
RunStateReset(void)
{
	while (current_run != NULL)
	{
		Run		   *run = current_run;

		current_run = run->outer;
		RunFree(run);
	}
	run_depth = 0;
	if (last_run != NULL)
	{
		RunFree(last_run);
		last_run = NULL;
	}
}

Run *
RunCurrent(void)
{
	return current_run;
}

/* The run whose state steps and callers see: the active one, or the last */
static Run *
RunVisible(void)
{
	return current_run != NULL ? current_run : last_run;
}

/* Pushes an error onto a run's error stack */
void
RunRecordError(Run *run, int step, StepPhase phase, int sqlerrcode,
			   const char *message)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);
	RunError   *error = palloc(sizeof(RunError));

	error->step = step;
	error->phase = phase;
	error->sqlerrcode = sqlerrcode;
	error->message = pstrdup(message != NULL ? message : "");
	run->errors = lappend(run->errors, error);
	MemoryContextSwitchTo(old);
}

/* Writes a string, or null */
static void
WriteStringOrNull(JsonbWriter *writer, const char *str)
{
	if (str != NULL)
		JsonbWriterCString(writer, str);
	else
		JsonbWriterNull(writer);
}

/*
 * Writes the bag of a run: {"step": {"job": ..., "precheck": ...}} for the
 * steps that left data, keys in jsonb order.
 */
static void
WriteBag(JsonbWriter *writer, Run *run)
{
	Pipeline   *pipeline = run->pipeline;
	int			nentries = 0;

	for (int i = 0; i < pipeline->nsteps; i++)
		if (run->results[i].has_precheck_data || run->results[i].has_job_data)
			nentries++;

	JsonbWriterBeginObject(writer, nentries);
	for (int k = 0; k < pipeline->nsteps; k++)
	{
		int			i = pipeline->key_order[k];

		if (run->results[i].has_precheck_data || run->results[i].has_job_data)
			JsonbWriterCString(writer, pipeline->steps[i].name);
	}
	for (int k = 0; k < pipeline->nsteps; k++)
	{
		StepResult *result = &run->results[pipeline->key_order[k]];

		if (!result->has_precheck_data && !result->has_job_data)
			continue;
		JsonbWriterBeginObject(writer, result->has_job_data + result->has_precheck_data);
		if (result->has_job_data)
			JsonbWriterString(writer, "job", 3);
		if (result->has_precheck_data)
			JsonbWriterString(writer, "precheck", 8);
		if (result->has_job_data)
			JsonbWriterValue(writer, &result->job_data);
		if (result->has_precheck_data)
			JsonbWriterValue(writer, &result->precheck_data);
		JsonbWriterEnd(writer);
	}
	JsonbWriterEnd(writer);
}

/* Returns the bag of a run as a jsonb object, in the current context */
Jsonb *
RunBuildBag(Run *run)
{
	JsonbWriter writer;

	JsonbWriterInit(&writer);
	WriteBag(&writer, run);
	return JsonbWriterFinish(&writer);
}

/* Returns the report of a finished run, in the current memory context */
Jsonb *
RunBuildReport(Run *run)
{
	Pipeline   *pipeline = run->pipeline;
	JsonbWriter writer;
	ListCell   *lc;

	/* keys in jsonb order: by length, then bytewise */
	JsonbWriterInit(&writer);
	JsonbWriterBeginObject(&writer, 5);
	JsonbWriterString(&writer, "bag", 3);
	JsonbWriterString(&writer, "steps", 5);
	JsonbWriterString(&writer, "errors", 6);
	JsonbWriterString(&writer, "status", 6);
	JsonbWriterString(&writer, "pipeline", 8);

	WriteBag(&writer, run);

	JsonbWriterBeginArray(&writer, pipeline->nsteps);
	for (int i = 0; i < pipeline->nsteps; i++)
		JsonbWriterValue(&writer, &pipeline->step_entries[i * NUM_STEP_OUTCOMES +
														  run->results[i].outcome]);
	JsonbWriterEnd(&writer);

	JsonbWriterBeginArray(&writer, list_length(run->errors));
	foreach(lc, run->errors)
	{
		RunError   *error = lfirst(lc);

		JsonbWriterBeginObject(&writer, 4);
		JsonbWriterString(&writer, "step", 4);
		JsonbWriterString(&writer, "phase", 5);
		JsonbWriterString(&writer, "message", 7);
		JsonbWriterString(&writer, "sqlstate", 8);
		WriteStringOrNull(&writer, error->step >= 0 ?
						  pipeline->steps[error->step].name : NULL);
		WriteStringOrNull(&writer, StepPhaseName(error->phase));
		JsonbWriterCString(&writer, error->message);
		JsonbWriterCString(&writer, unpack_sql_state(error->sqlerrcode));
		JsonbWriterEnd(&writer);
	}
	JsonbWriterEnd(&writer);

	JsonbWriterCString(&writer, status_names[run->status]);
	JsonbWriterCString(&writer, pipeline->name);
	JsonbWriterEnd(&writer);
	return JsonbWriterFinish(&writer);
}

/* Finds a step of a run's pipeline by name; -1 when there is none */
static int
RunFindStep(Run *run, text *step_name)
{
	char	   *name = text_to_cstring(step_name);
	Pipeline   *pipeline = run->pipeline;

	for (int i = 0; i < pipeline->nsteps; i++)
		if (strcmp(pipeline->steps[i].name, name) == 0)
			return i;
	return -1;
}

PG_FUNCTION_INFO_V1(choreo_bag);

/* The bag of the active run, or of the last one outside any run */
Datum
choreo_bag(PG_FUNCTION_ARGS)
{
	Run		   *run = RunVisible();

	if (run == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(RunBuildBag(run));
}

/* Shared body of choreo_precheck_data and choreo_job_data */
static Datum
StepData(FunctionCallInfo fcinfo, StepPhase phase)
{
	Run		   *run = RunVisible();
	StepResult *result;
	int			step;

	if (run == NULL || PG_ARGISNULL(0))
		PG_RETURN_NULL();
	step = RunFindStep(run, PG_GETARG_TEXT_PP(0));
	if (step < 0)
		PG_RETURN_NULL();
	result = &run->results[step];
	if (phase == PHASE_PRECHECK && result->has_precheck_data)
		PG_RETURN_JSONB_P(JsonbValueToJsonb(&result->precheck_data));
	if (phase == PHASE_JOB && result->has_job_data)
		PG_RETURN_JSONB_P(JsonbValueToJsonb(&result->job_data));
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(choreo_precheck_data);

/* What a step's precheck returned in the active (or last) run */
Datum
choreo_precheck_data(PG_FUNCTION_ARGS)
{
	return StepData(fcinfo, PHASE_PRECHECK);
}

PG_FUNCTION_INFO_V1(choreo_job_data);

/* What a step's job returned in the active (or last) run */
Datum
choreo_job_data(PG_FUNCTION_ARGS)
{
	return StepData(fcinfo, PHASE_JOB);
}

PG_FUNCTION_INFO_V1(choreo_errors);

/* The error stack of the active (or last) run, oldest first */
Datum
choreo_errors(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Run		   *run = RunVisible();
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	if (run == NULL)
		return (Datum) 0;

	foreach(lc, run->errors)
	{
		RunError   *error = lfirst(lc);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		const char *phase = StepPhaseName(error->phase);

		if (error->step >= 0)
			values[0] = CStringGetTextDatum(run->pipeline->steps[error->step].name);
		else
			nulls[0] = true;
		if (phase != NULL)
			values[1] = CStringGetTextDatum(phase);
		else
			nulls[1] = true;
		values[2] = CStringGetTextDatum(unpack_sql_state(error->sqlerrcode));
		values[3] = CStringGetTextDatum(error->message);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
