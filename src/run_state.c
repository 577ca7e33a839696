/*
 * run_state.c
 *		The state of pipeline runs: the stack of active runs, the bag, step
 *		outcomes and error stack of each, the report built from them, and
 *		the SQL functions that let steps (and callers) read them.
 *
 * A run's state lives in its own memory context under TopMemoryContext, so
 * that it survives the rollback of a failed step and even of the caller's
 * transaction: after a run ends, fatally or not, it is kept as the session's
 * "last run" until the next run ends, which is what choreo_bag() and
 * choreo_errors() show outside any run.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "choreograph.h"

static Run *current_run = NULL;	/* innermost active run */
static Run *last_run = NULL;	/* most recently ended run */
static int	run_depth = 0;

static const char *const outcome_names[] = {
	[OUTCOME_NOT_RUN] = "not_run",
	[OUTCOME_DONE] = "done",
	[OUTCOME_SKIPPED] = "skipped",
	[OUTCOME_FAILED] = "failed",
	[OUTCOME_CANCELED] = "canceled",
};

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
	PipelineRelease(run->pipeline);
	MemoryContextDelete(run->cxt);
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

/*
 * Adds the bag of a run, as an object value, to a jsonb being built;
 * returns the object when it is the whole jsonb.
 */
static JsonbValue *
PushBag(JsonbParseState **state, Run *run)
{
	Pipeline   *pipeline = run->pipeline;

	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < pipeline->nsteps; i++)
	{
		StepResult *result = &run->results[i];

		if (result->precheck_data == NULL && result->job_data == NULL)
			continue;
		PushJsonbCString(state, WJB_KEY, pipeline->steps[i].name);
		pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
		if (result->precheck_data != NULL)
		{
			PushJsonbCString(state, WJB_KEY, "precheck");
			PushJsonbDatum(state, WJB_VALUE, result->precheck_data);
		}
		if (result->job_data != NULL)
		{
			PushJsonbCString(state, WJB_KEY, "job");
			PushJsonbDatum(state, WJB_VALUE, result->job_data);
		}
		pushJsonbValue(state, WJB_END_OBJECT, NULL);
	}
	return pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

/* Returns the bag of a run as a jsonb object, in the current context */
Jsonb *
RunBuildBag(Run *run)
{
	JsonbParseState *state = NULL;

	return JsonbValueToJsonb(PushBag(&state, run));
}

/* Adds one "key": "string" pair to an object being built */
static void
PushPair(JsonbParseState **state, const char *key, const char *value)
{
	PushJsonbCString(state, WJB_KEY, key);
	if (value != NULL)
		PushJsonbCString(state, WJB_VALUE, value);
	else
		PushJsonbNull(state, WJB_VALUE);
}

/* Returns the report of a finished run, in the current memory context */
Jsonb *
RunBuildReport(Run *run)
{
	Pipeline   *pipeline = run->pipeline;
	JsonbParseState *state = NULL;
	JsonbValue *result;
	ListCell   *lc;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	PushPair(&state, "pipeline", pipeline->name);
	PushPair(&state, "status", status_names[run->status]);

	PushJsonbCString(&state, WJB_KEY, "steps");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < pipeline->nsteps; i++)
	{
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		PushPair(&state, "step", pipeline->steps[i].name);
		PushPair(&state, "outcome", outcome_names[run->results[i].outcome]);
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);

	PushJsonbCString(&state, WJB_KEY, "bag");
	(void) PushBag(&state, run);

	PushJsonbCString(&state, WJB_KEY, "errors");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, run->errors)
	{
		RunError   *error = lfirst(lc);

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		PushPair(&state, "step",
				 error->step >= 0 ? pipeline->steps[error->step].name : NULL);
		PushPair(&state, "phase", StepPhaseName(error->phase));
		/* unpack_sql_state() reuses a static buffer: copy it */
		PushPair(&state, "sqlstate", pstrdup(unpack_sql_state(error->sqlerrcode)));
		PushPair(&state, "message", error->message);
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);

	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(result);
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

static Jsonb *
CopyJsonb(Jsonb *value)
{
	Jsonb	   *copy = palloc(VARSIZE(value));

	memcpy(copy, value, VARSIZE(value));
	return copy;
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
	int			step;
	Jsonb	   *data;

	if (run == NULL || PG_ARGISNULL(0))
		PG_RETURN_NULL();
	step = RunFindStep(run, PG_GETARG_TEXT_PP(0));
	if (step < 0)
		PG_RETURN_NULL();
	data = phase == PHASE_PRECHECK ? run->results[step].precheck_data
		: run->results[step].job_data;
	if (data == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(CopyJsonb(data));
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
