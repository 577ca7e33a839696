/*
 * pipelines/run.c
 *		Executing a pipeline: choreo_run, choreo_try_run, and the
 *		choreo_cancel / choreo_skip signals a precheck can raise.
 *
 * A run calls its steps' functions through the function manager, in the
 * caller's transaction.  A precheck runs in a subtransaction, because its
 * errors are not fatal and whatever it wrote must be rolled back before the
 * run goes on; so does a job under choreo_try_run, whose failure must leave
 * the earlier steps' writes in place.  A job under choreo_run needs none:
 * its error ends the run and fails the caller's statement.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/resowner.h"

#include "pipelines/pipelines.h"

/* What a precheck decided */
typedef enum PrecheckVerdict
{
	PRECHECK_RUN_JOB,
	PRECHECK_SKIP_JOB,
	PRECHECK_CANCEL				/* only returned by choreo_try_run */
} PrecheckVerdict;

/* Adds the pipeline and step being run to the CONTEXT of any message */
static void
RunErrorContext(void *arg)
{
	Run		   *run = (Run *) arg;

	if (run->current_step >= 0)
		errcontext("choreograph pipeline \"%s\", step \"%s\", %s",
				   run->pipeline->name,
				   run->pipeline->steps[run->current_step].name,
				   StepPhaseName(run->current_phase));
	else
		errcontext("choreograph pipeline \"%s\"", run->pipeline->name);
}

/* Copies a jsonb value into the run's memory */
static Jsonb *
KeepJsonb(Run *run, Jsonb *value)
{
	Jsonb	   *copy = MemoryContextAlloc(run->cxt, VARSIZE(value));

	memcpy(copy, value, VARSIZE(value));
	return copy;
}

/* The input as a datum of its own type */
static void
InputValue(RunInput *input, Datum *value, bool *isnull)
{
	if (!input->value_ready)
	{
		Assert(input->trigger != NULL);
		input->value = TriggerRowDatum(input->trigger);
		if (OidIsValid(input->shard_type))
			input->value = ShardRowAsTableRow(input->shard_type, input->value);
		input->isnull = false;
		input->value_ready = true;
	}
	*value = input->value;
	*isnull = input->isnull;
}

/* The input as jsonb: to_jsonb(input), or a trigger run's envelope */
static Jsonb *
InputJsonb(RunInput *input)
{
	if (input->jsonb == NULL)
	{
		if (input->trigger != NULL)
			input->jsonb = TriggerEnvelope(input->trigger, input->trigger_flinfo);
		else
			input->jsonb = DatumToJsonb(input->value, input->isnull, input->type);
	}
	return input->jsonb;
}

/*
 * Decides how a one-argument step function takes the input: as is, or as
 * jsonb.  The decision is cached per function for the last input type.
 */
static StepArgMode
ArgumentMode(Run *run, StepFunction *function, RunInput *input)
{
	StepArgMode mode = STEP_ARG_INPUT;

	if (function->mode_resolved && function->mode_input_type == input->type)
		return function->mode;

	if (function->argtype == input->type ||
		IsBinaryCoercible(input->type, function->argtype))
		mode = STEP_ARG_INPUT;
	else if (function->argtype == JSONBOID)
		mode = STEP_ARG_JSONB;
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("step \"%s\" of pipeline \"%s\" takes type %s, but the input has type %s",
						run->pipeline->steps[run->current_step].name,
						run->pipeline->name, format_type_be(function->argtype),
						format_type_be(input->type)),
				 errdetail("Its %s, %s, must take the input's type or jsonb.",
						   StepPhaseName(run->current_phase),
						   format_procedure(function->oid))));

	function->mode = mode;
	function->mode_input_type = input->type;
	function->mode_resolved = true;
	return mode;
}

/* Marks the step function the run was calling as free again */
static void
RunReleaseFunction(Run *run)
{
	if (run->calling != NULL)
	{
		run->calling->in_use = false;
		run->calling = NULL;
	}
}

/*
 * Calls a step function with the run's input; returns its result, and the
 * result rendered as jsonb in the run's memory.
 */
static void
CallStepFunction(Run *run, StepFunction *function, RunInput *input,
				 Datum *result, bool *result_isnull, JsonbValue *data)
{
	LOCAL_FCINFO(fcinfo, 1);
	FmgrInfo   *flinfo = &function->flinfo;
	Datum		arg = (Datum) 0;
	bool		argnull = true;

	if (function->nargs == 1)
	{
		/* a run without input hands NULL to any one-argument function */
		if (OidIsValid(input->type))
		{
			if (ArgumentMode(run, function, input) == STEP_ARG_INPUT)
				InputValue(input, &arg, &argnull);
			else
			{
				arg = JsonbPGetDatum(InputJsonb(input));
				argnull = false;
			}
		}
		if (argnull && function->strict)
		{
			*result = (Datum) 0;
			*result_isnull = true;
			data->type = jbvNull;
			return;
		}
	}

	/*
	 * A function's cached call info may hold state of a call in progress
	 * (SQL functions keep their executor state in fn_extra), so a nested
	 * run calling the same step function gets a fresh copy of its own.
	 */
	if (function->in_use)
	{
		flinfo = MemoryContextAlloc(run->cxt, sizeof(FmgrInfo));
		fmgr_info_copy(flinfo, &function->flinfo, run->cxt);
	}
	else
	{
		function->in_use = true;
		run->calling = function;
	}

	InitFunctionCallInfoData(*fcinfo, flinfo, function->nargs,
							 function->collation, NULL, NULL);
	fcinfo->args[0].value = arg;
	fcinfo->args[0].isnull = argnull;
	*result = FunctionCallInvoke(fcinfo);
	*result_isnull = fcinfo->isnull;
	RunReleaseFunction(run);
	DatumToJsonbValue(*result, *result_isnull, function->rettype, data, run->cxt);
}

/* A step's precheck, called in a subtransaction of its own */
typedef struct PrecheckCall
{
	Run		   *run;
	int			stepno;
	RunInput   *input;
	bool		skip_job;		/* set when it returned false or NULL */
} PrecheckCall;

static void
CallPrecheck(void *arg)
{
	PrecheckCall *call = (PrecheckCall *) arg;
	StepFunction *precheck = call->run->pipeline->steps[call->stepno].precheck;
	StepResult *result = &call->run->results[call->stepno];
	Datum		value;
	bool		isnull;

	CallStepFunction(call->run, precheck, call->input, &value, &isnull,
					 &result->precheck_data);
	result->has_precheck_data = true;
	call->skip_job = precheck->rettype == BOOLOID && (isnull || !DatumGetBool(value));
}

/*
 * Runs a step's precheck in a subtransaction and decides whether its job
 * runs.  Errors are recorded and skip the job; a cancel (and a query
 * cancel) is re-raised, or for choreo_try_run, returned as PRECHECK_CANCEL.
 */
static PrecheckVerdict
RunPrecheck(Run *run, int stepno, RunInput *input, bool try_only)
{
	StepResult *result = &run->results[stepno];
	PrecheckCall call = {run, stepno, input, false};
	ErrorData  *edata;

	run->current_phase = PHASE_PRECHECK;
	run->skip_data = NULL;

	edata = CallInSubTransaction(CallPrecheck, &call, run->cxt);
	if (edata == NULL)
		return call.skip_job ? PRECHECK_SKIP_JOB : PRECHECK_RUN_JOB;

	RunReleaseFunction(run);
	RunRecordError(run, stepno, PHASE_PRECHECK, edata->sqlerrcode, edata->message);
	result->has_precheck_data = false;
	switch (edata->sqlerrcode)
	{
		case ERRCODE_CHOREO_SKIP:
			/* choreo_skip()'s data is the step's precheck data */
			result->has_precheck_data = run->skip_data != NULL;
			if (run->skip_data != NULL)
				JsonbToValue(run->skip_data, &result->precheck_data);
			return PRECHECK_SKIP_JOB;
		case ERRCODE_CHOREO_CANCELED:
			result->outcome = OUTCOME_CANCELED;
			if (!try_only)
			{
				run->fatal_recorded = true;
				ReThrowError(edata);
			}
			return PRECHECK_CANCEL;
		case ERRCODE_QUERY_CANCELED:
			run->fatal_recorded = true;
			ReThrowError(edata);
			break;
		default:
			break;
	}
	return PRECHECK_SKIP_JOB;
}

/* Runs a job under choreo_run: its error ends the run */
static void
RunJob(Run *run, int stepno, RunInput *input)
{
	StepFunction *job = &run->pipeline->steps[stepno].job;
	StepResult *result = &run->results[stepno];
	Datum		value;
	bool		isnull;

	run->current_phase = PHASE_JOB;
	CallStepFunction(run, job, input, &value, &isnull, &result->job_data);
	result->has_job_data = true;
}

/* A job under choreo_try_run, called in a subtransaction of its own */
typedef struct JobCall
{
	Run		   *run;
	int			stepno;
	RunInput   *input;
} JobCall;

static void
CallJob(void *arg)
{
	JobCall    *call = (JobCall *) arg;

	RunJob(call->run, call->stepno, call->input);
}

/*
 * Runs a job under choreo_try_run, in a subtransaction so that a failure
 * rolls back its writes only.  Returns false when the job failed.
 */
static bool
TryJob(Run *run, int stepno, RunInput *input)
{
	JobCall		call = {run, stepno, input};
	ErrorData  *edata;
	bool		canceled;

	edata = CallInSubTransaction(CallJob, &call, run->cxt);
	if (edata == NULL)
		return true;

	RunReleaseFunction(run);
	canceled = edata->sqlerrcode == ERRCODE_CHOREO_CANCELED;
	RunRecordError(run, stepno, PHASE_JOB, edata->sqlerrcode, edata->message);
	run->fatal_recorded = true;
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(edata);

	run->results[stepno].has_job_data = false;
	run->results[stepno].outcome = canceled ? OUTCOME_CANCELED : OUTCOME_FAILED;
	run->status = canceled ? RUN_CANCELED : RUN_FAILED;
	return false;
}

/*
 * Checks, before any step runs, that every step function can take the
 * input, so that a mismatch fails the run as a whole (for choreo_try_run
 * too) rather than half-way or, worse, as a precheck error that merely
 * skips a job.  The answer is cached per function and input type.
 */
static void
CheckInputTypes(Run *run, RunInput *input)
{
	Pipeline   *pipeline = run->pipeline;

	if (!OidIsValid(input->type))
		return;
	for (int i = 0; i < pipeline->nsteps; i++)
	{
		PipelineStep *step = &pipeline->steps[i];

		run->current_step = i;
		if (step->precheck != NULL && step->precheck->nargs == 1)
		{
			run->current_phase = PHASE_PRECHECK;
			(void) ArgumentMode(run, step->precheck, input);
		}
		if (step->job.nargs == 1)
		{
			run->current_phase = PHASE_JOB;
			(void) ArgumentMode(run, &step->job, input);
		}
	}
	run->current_step = -1;
	run->current_phase = PHASE_NONE;
}

/* Runs the steps in order; stops early on a canceled or failed step */
static void
RunSteps(Run *run, RunInput *input, bool try_only)
{
	Pipeline   *pipeline = run->pipeline;

	for (int i = 0; i < pipeline->nsteps; i++)
	{
		PipelineStep *step = &pipeline->steps[i];
		StepResult *result = &run->results[i];

		run->current_step = i;
		if (step->precheck != NULL)
		{
			PrecheckVerdict verdict;

			/* a definition error, outside the step's subtransaction: raised */
			run->current_phase = PHASE_PRECHECK;
			PipelineCheckStillCallable(pipeline, i, step->precheck, "precheck");
			verdict = RunPrecheck(run, i, input, try_only);

			if (verdict == PRECHECK_CANCEL)
			{
				run->status = RUN_CANCELED;
				return;
			}
			if (verdict == PRECHECK_SKIP_JOB)
			{
				result->outcome = OUTCOME_SKIPPED;
				continue;
			}
		}

		run->current_phase = PHASE_JOB;
		PipelineCheckStillCallable(pipeline, i, &step->job, "job");
		if (try_only)
		{
			if (!TryJob(run, i, input))
				return;
		}
		else
			RunJob(run, i, input);
		result->outcome = OUTCOME_DONE;
	}
	run->status = RUN_COMPLETED;
}

/*
 * Records the error that is ending a run (unless a step handler did) and
 * marks the step it came from.  Called from a PG_CATCH block; leaves the
 * error state intact for re-throwing.
 */
static void
RecordFatalError(Run *run)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);
	ErrorData  *edata = CopyErrorData();
	bool		canceled = edata->sqlerrcode == ERRCODE_CHOREO_CANCELED;

	MemoryContextSwitchTo(old);
	if (!run->fatal_recorded)
		RunRecordError(run, run->current_step, run->current_phase,
					   edata->sqlerrcode, edata->message);
	if (run->current_step >= 0 && run->current_phase == PHASE_JOB)
		run->results[run->current_step].outcome =
			canceled ? OUTCOME_CANCELED : OUTCOME_FAILED;
	run->status = canceled ? RUN_CANCELED : RUN_FAILED;
	FreeErrorData(edata);
}

/*
 * Runs a pipeline and returns its report, in the caller's memory context,
 * or NULL when the caller wants none (a trigger).  try_only: step errors
 * are reported rather than raised (choreo_try_run).
 */
Jsonb *
RunPipeline(const char *pipeline_name, PipelineRef *ref, RunInput *input, bool try_only,
			bool want_report)
{
	Pipeline   *pipeline;
	Run		   *run;
	Jsonb	   *volatile report = NULL;
	ErrorContextCallback errcallback;

	RunCheckDepth(pipeline_name);
	pipeline = ref != NULL ? PipelineAcquireRef(pipeline_name, strlen(pipeline_name), ref)
		: PipelineAcquire(pipeline_name);
	run = RunBegin(pipeline);

	errcallback.callback = RunErrorContext;
	errcallback.arg = run;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	PG_TRY();
	{
		PipelineCheckCallable(pipeline);
		CheckInputTypes(run, input);
		RunSteps(run, input, try_only);
		run->current_step = -1;
		run->current_phase = PHASE_NONE;
		if (want_report)
			report = RunBuildReport(run);
	}
	PG_CATCH();
	{
		RunReleaseFunction(run);
		RecordFatalError(run);
		RunEnd(run);
		PG_RE_THROW();
	}
	PG_END_TRY();

	error_context_stack = errcallback.previous;
	RunEnd(run);
	return report;
}

/*
 * What a choreo_run call site keeps from call to call (in fn_extra): the
 * pipeline name it was last called with, and its input's type, so that a
 * run per row neither converts the name nor looks the type up again.
 */
typedef struct RunCallCache
{
	char	   *name;
	int			len;
	Oid			input_type;
	Oid			table_type;		/* input_type is a Citus shard's: its table's */
	PipelineRef pipeline;		/* what the name found last */
} RunCallCache;

/* The pipeline name of a call, as a C string (cached per call site) */
static char *
PipelineNameOf(FunctionCallInfo fcinfo, RunCallCache *cache)
{
	if (!PG_ARGISNULL(0))
	{
		text	   *name = PG_GETARG_TEXT_PP(0);
		int			len = VARSIZE_ANY_EXHDR(name);

		if (cache->name != NULL && len == cache->len &&
			memcmp(cache->name, VARDATA_ANY(name), len) == 0)
			return cache->name;
	}
	if (cache->name != NULL)
		pfree(cache->name);
	cache->name = NULL;			/* in case NameArgument raises */
	cache->name = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt,
									  NameArgument(fcinfo, 0, "pipeline"));
	cache->len = strlen(cache->name);
	return cache->name;
}

/* The call site cache of a choreo_run or choreo_try_run call */
static RunCallCache *
CallCacheOf(FunctionCallInfo fcinfo)
{
	if (fcinfo->flinfo->fn_extra == NULL)
		fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
														  sizeof(RunCallCache));
	return (RunCallCache *) fcinfo->flinfo->fn_extra;
}

/* The input of a choreo_run(pipeline, input) call */
static void
InputFromCall(FunctionCallInfo fcinfo, RunCallCache *cache, RunInput *input)
{
	memset(input, 0, sizeof(RunInput));
	if (PG_NARGS() < 2)
		return;					/* a run without input */

	if (!OidIsValid(cache->input_type))
	{
		Oid			type = get_fn_expr_argtype(fcinfo->flinfo, 1);

		if (!OidIsValid(type))
			ereport(ERROR,
					(errcode(ERRCODE_INDETERMINATE_DATATYPE),
					 errmsg("could not determine the type of the pipeline's input")));
		/* a whole-row reference Citus rewrote for the shard holding the row */
		cache->table_type = ShardRowTableType(type);
		cache->input_type = type;
	}
	input->type = cache->input_type;
	input->value = PG_GETARG_DATUM(1);
	input->isnull = PG_ARGISNULL(1);
	input->value_ready = true;
	if (OidIsValid(cache->table_type))
	{
		input->type = cache->table_type;
		if (!input->isnull)
			input->value = ShardRowAsTableRow(cache->input_type, input->value);
	}
}

PG_FUNCTION_INFO_V1(choreo_run);

/* Runs a pipeline; a step's fatal error is raised to the caller */
Datum
choreo_run(PG_FUNCTION_ARGS)
{
	RunCallCache *cache = CallCacheOf(fcinfo);
	char	   *pipeline = PipelineNameOf(fcinfo, cache);
	RunInput	input;

	InputFromCall(fcinfo, cache, &input);
	PG_RETURN_JSONB_P(RunPipeline(pipeline, &cache->pipeline, &input, false, true));
}

PG_FUNCTION_INFO_V1(choreo_try_run);

/* Runs a pipeline; a step's fatal error is reported, not raised */
Datum
choreo_try_run(PG_FUNCTION_ARGS)
{
	RunCallCache *cache = CallCacheOf(fcinfo);
	char	   *pipeline = PipelineNameOf(fcinfo, cache);
	RunInput	input;

	InputFromCall(fcinfo, cache, &input);
	PG_RETURN_JSONB_P(RunPipeline(pipeline, &cache->pipeline, &input, true, true));
}

PG_FUNCTION_INFO_V1(choreo_cancel);

/* Cancels the running pipeline: raises choreo_canceled (CH001) */
Datum
choreo_cancel(PG_FUNCTION_ARGS)
{
	ereport(ERROR,
			(errcode(ERRCODE_CHOREO_CANCELED),
			 errmsg("%s", PG_ARGISNULL(0) ? "pipeline run canceled"
					: text_to_cstring(PG_GETARG_TEXT_PP(0)))));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_skip);

/*
 * Skips the job of the step whose precheck calls it: raises choreo_skip
 * (CH002), leaving data as the step's precheck data.
 */
Datum
choreo_skip(PG_FUNCTION_ARGS)
{
	Run		   *run = RunCurrent();

	if (run != NULL && !PG_ARGISNULL(0))
		run->skip_data = KeepJsonb(run, PG_GETARG_JSONB_P(0));
	ereport(ERROR,
			(errcode(ERRCODE_CHOREO_SKIP),
			 errmsg("%s", PG_ARGISNULL(1) ? "job skipped by its precheck"
					: text_to_cstring(PG_GETARG_TEXT_PP(1)))));
	PG_RETURN_VOID();
}
