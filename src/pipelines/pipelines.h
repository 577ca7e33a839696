/*
 * pipelines/pipelines.h
 *		Pipelines: their cached definitions, runs and the run state steps
 *		can inspect (the bag, outcomes, errors).
 *
 * catalog.c writes definitions, pipeline_cache.c keeps them per backend,
 * run.c executes them, run_state.c holds what a run produced, trigger.c
 * starts runs from row triggers.
 */
#ifndef CHOREOGRAPH_PIPELINES_H
#define CHOREOGRAPH_PIPELINES_H

#include "shared/shared.h"


/*
 * A function used by a step (a precheck or a job), resolved once per
 * backend.  The argument mode depends on the type of the run's input, so
 * it is resolved on first use and kept for the last input type seen.
 */
typedef enum StepArgMode
{
	STEP_ARG_NONE,				/* takes no argument */
	STEP_ARG_INPUT,				/* takes the input as is */
	STEP_ARG_JSONB				/* takes the input converted to jsonb */
} StepArgMode;

typedef struct StepFunction
{
	Oid			oid;
	FmgrInfo	flinfo;
	bool		exists;			/* false once the function has been dropped */
	bool		strict;
	int16		nargs;			/* 0 or 1 */
	Oid			argtype;
	Oid			rettype;
	Oid			collation;		/* passed to the call: the argument type's */
	uint32		hashvalue;		/* PROCOID syscache hash, for invalidation */
	Oid			mode_input_type;	/* input type the mode was resolved for */
	StepArgMode mode;
	bool		mode_resolved;
	bool		in_use;			/* a call through flinfo is in progress */
} StepFunction;

typedef struct PipelineStep
{
	char	   *name;
	StepFunction *precheck;		/* NULL when the step has none */
	StepFunction job;
} PipelineStep;

/*
 * A pipeline definition as cached by one backend.  It lives in its own
 * memory context; runs pin it so that an invalidation arriving while a step
 * executes (a step may itself redefine pipelines) cannot free it under them.
 */
typedef struct Pipeline
{
	char	   *name;			/* its name in its schema */
	Oid			namespace;
	MemoryContext cxt;
	int			nsteps;
	PipelineStep *steps;
	int		   *key_order;		/* step indexes in jsonb key order, for the bag */
	JsonbValue *step_entries;	/* per step and outcome, its report entry */
	int			pins;
	bool		stale;			/* no longer in the cache; free at last unpin */
	Oid			acl_checked_user;	/* role whose EXECUTE rights were checked */
	uint64		acl_checked_generation;
} Pipeline;

/* how many outcomes a step can have (StepOutcome) */
#define NUM_STEP_OUTCOMES 5

/* pipeline_cache.c */
extern void PipelineCacheInit(void);
extern Pipeline *PipelineAcquire(const char *name);

/* What a call site keeps to find its pipeline again without hashing */
typedef struct PipelineRef
{
	struct NameCacheEntry *name;	/* the name's resolution (a NameRef) */
	Pipeline   *pipeline;		/* what it found; not pinned */
	uint64		generation;		/* the cache's invalidations when found */
} PipelineRef;

extern Pipeline *PipelineAcquireRef(const char *name, int len, PipelineRef *ref);
extern void PipelineRelease(Pipeline *pipeline);
extern void PipelineCheckCallable(Pipeline *pipeline);
extern void PipelineCheckStillCallable(Pipeline *pipeline, int stepno,
									   StepFunction *function, const char *role);
extern void PipelineCacheReset(void);

/* catalog.c: pipelines and steps, the definition tables */
extern const DefinitionKind PipelineKind;

/* catalog_rows.c */
extern void PipelineRowsGuard(void);

/* catalog.c */
extern void ValidateStepFunction(Oid function, const char *role, const char *pipeline,
								 const char *step);


/* run.c */
/*
 * The input of a run.  Both forms are made on first use: a trigger run only
 * builds the row datum if a step takes the row, and the jsonb form (which
 * for a trigger run is the envelope) if a step takes jsonb.  A row of a
 * Citus shard is the input as a row of its table (shared/shard_rows.c).
 */
typedef struct RunInput
{
	Oid			type;			/* InvalidOid for a run without input */
	Oid			shard_type;		/* a trigger on a Citus shard: the row's own type */
	bool		value_ready;
	Datum		value;
	bool		isnull;
	Jsonb	   *jsonb;			/* NULL until made */
	struct TriggerData *trigger;	/* set for runs started by choreo_trigger */
	FmgrInfo   *trigger_flinfo; /* its call info, which caches the envelope's layout */
} RunInput;

extern Jsonb *RunPipeline(const char *pipeline_name, PipelineRef *ref, RunInput *input,
						  bool try_only, bool want_report);


/* run_state.c: the bag, outcomes and error stack of runs */
typedef enum StepOutcome
{
	OUTCOME_NOT_RUN,
	OUTCOME_DONE,
	OUTCOME_SKIPPED,
	OUTCOME_FAILED,
	OUTCOME_CANCELED
} StepOutcome;

typedef enum RunStatus
{
	RUN_RUNNING,
	RUN_COMPLETED,
	RUN_FAILED,
	RUN_CANCELED
} RunStatus;

typedef enum StepPhase
{
	PHASE_NONE,
	PHASE_PRECHECK,
	PHASE_JOB
} StepPhase;

/* What one step produced; values live in the run's memory */
typedef struct StepResult
{
	StepOutcome outcome;
	bool		has_precheck_data;
	bool		has_job_data;
	JsonbValue	precheck_data;	/* a scalar, or a container (jbvBinary) */
	JsonbValue	job_data;
} StepResult;

typedef struct RunError
{
	int			step;			/* index into the pipeline, -1 for none */
	StepPhase	phase;
	int			sqlerrcode;
	char	   *message;
} RunError;

typedef struct Run
{
	MemoryContext cxt;			/* holds this struct and everything below */
	Pipeline   *pipeline;		/* pinned for as long as the run is kept */
	struct Run *outer;			/* the run this one is nested in */
	int			depth;
	RunStatus	status;
	int			current_step;	/* -1 outside steps */
	StepPhase	current_phase;
	StepResult *results;		/* one per step */
	List	   *errors;			/* of RunError *, oldest first */
	bool		fatal_recorded;
	Jsonb	   *skip_data;		/* set by choreo_skip() for the running precheck */
	StepFunction *calling;		/* the function whose flinfo is in use by us */
} Run;

extern void RunCheckDepth(const char *pipeline_name);
extern Run *RunBegin(Pipeline *pipeline);
extern void RunEnd(Run *run);
extern Run *RunCurrent(void);
extern void RunStateReset(void);
extern void RunRecordError(Run *run, int step, StepPhase phase,
						   int sqlerrcode, const char *message);
extern Jsonb *RunBuildBag(Run *run);
extern Jsonb *RunBuildReport(Run *run);
extern const char *StepPhaseName(StepPhase phase);

#endif							/* CHOREOGRAPH_PIPELINES_H */
