/*
 * choreograph.h
 *		Declarations shared by the files of the choreograph extension.
 *
 * Each .c file owns one concern; this header only carries what crosses
 * file boundaries: the extension's SQLSTATEs, its settings, the cached
 * pipeline definitions and the run state that steps can inspect.
 */
#ifndef CHOREOGRAPH_H
#define CHOREOGRAPH_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

#include "pg_compat.h"

/* The extension's own SQLSTATEs (class CH) */
#define ERRCODE_CHOREO_CANCELED		MAKE_SQLSTATE('C','H','0','0','1')
#define ERRCODE_CHOREO_SKIP			MAKE_SQLSTATE('C','H','0','0','2')
#define ERRCODE_CHOREO_CONTENTION	MAKE_SQLSTATE('C','H','0','0','3')

/* Schema holding the extension's internal tables */
#define CHOREO_SCHEMA "choreograph"

/* Settings (choreograph.c) */
extern int	choreo_max_depth;
extern char *choreo_database;
extern int	choreo_max_workers;
extern int	choreo_hook_max_attempts;
extern int	choreo_error_max_length;
extern bool choreo_hook_synchronous_commit;
extern bool choreo_preloaded;	/* loaded through shared_preload_libraries */

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

/* catalog.c */
extern void ValidateStepFunction(Oid function, const char *role, const char *pipeline,
								 const char *step);

/* util.c */
extern Oid	ChoreoRelationOid(const char *relname, bool missing_ok);
extern char *NameArgument(FunctionCallInfo fcinfo, int argno, const char *what);
extern void PreventInSecurityRestrictedOperation(const char *action);

/* names.c: names of pipelines and buffers, which belong to schemas */
typedef struct DefinitionKind
{
	const char *noun;			/* "pipeline", "buffer": for messages */
	const char *table;			/* its table in CHOREO_SCHEMA */
} DefinitionKind;

extern const DefinitionKind PipelineKind;
extern const DefinitionKind BufferKind;

/* A definition's identity: its schema and its name in it (a hash key) */
typedef struct DefinitionId
{
	Oid			namespace;
	NameData	name;
} DefinitionId;

/* A name as written, parsed */
typedef struct DefinitionName
{
	List	   *names;			/* of String, as stringToQualifiedNameList */
	char	   *schema;			/* NULL when unqualified */
	char	   *name;
	char	   *display;		/* schema.name or name, for messages */
} DefinitionName;

typedef struct NameCache NameCache;
typedef struct NameCacheEntry NameRef;	/* a name as written, and what it resolved to */

extern void NamesInit(void);
extern void ParseDefinitionName(const DefinitionKind *kind, const char *written,
								DefinitionName *out);
extern Oid *DefinitionSearchPath(const DefinitionName *name, int *count);
extern bool FindDefinition(const DefinitionKind *kind, const DefinitionName *name,
						   DefinitionId *id);
extern void DefinitionCreationId(const DefinitionKind *kind, const DefinitionName *name,
								 DefinitionId *id);
extern bool FindOrChooseDefinition(const DefinitionKind *kind, const DefinitionName *name,
								   DefinitionId *id);
pg_noreturn extern void DefinitionNotFound(const DefinitionKind *kind,
										   const DefinitionName *name);
extern NameCache *NameCacheCreate(const DefinitionKind *kind, MemoryContext parent);
extern void NameCacheReset(NameCache *cache);
extern const DefinitionId *NameCacheResolve(NameCache *cache, const char *written, int len);
extern NameRef *NameCacheLookup(NameCache *cache, const char *written, int len);
extern bool NameRefHolds(NameRef *ref);
extern const DefinitionId *NameRefId(NameRef *ref);
extern const char *NameRefWritten(NameRef *ref, int *len);

/* What BeginExtensionWrite changed, for EndExtensionWrite to undo */
typedef struct ExtensionWrite
{
	Oid			caller;			/* the role on whose behalf we write */
	Oid			saved_userid;
	int			saved_sec_context;
	int			saved_nestlevel;
} ExtensionWrite;

extern void BeginExtensionWrite(ExtensionWrite *write, bool pin_search_path);
extern void EndExtensionWrite(ExtensionWrite *write);
extern uint64 ExecuteExtensionQuery(const char *query, int nargs, Oid *argtypes,
									Datum *args, int expected);
extern struct HTAB *StringPointerHashCreate(const char *name, long nelem, Size entrysize,
											MemoryContext cxt);

/* jsonb_util.c */
extern Jsonb *DatumToJsonb(Datum value, bool isnull, Oid type);
extern void DatumToJsonbValue(Datum value, bool isnull, Oid type,
							  JsonbValue *out, MemoryContext cxt);
extern void JsonbToValue(Jsonb *jsonb, JsonbValue *out);
extern int	JsonbKeyCompare(const char *a, const char *b);

/* jsonb_writer.c: writing jsonb documents in one pass */
#define JSONB_WRITER_MAX_DEPTH 8

typedef struct JsonbWriterLevel
{
	int			base;			/* where the container starts (before padding) */
	int			jentries;		/* where its JEntry array starts */
	int			count;			/* JEntries (an object has two per pair) */
	int			index;			/* the next one to fill */
	uint32		totallen;		/* length of the children written so far */
} JsonbWriterLevel;

typedef struct JsonbWriter
{
	StringInfoData buf;			/* the document, varlena header first */
	int			depth;
	JsonbWriterLevel levels[JSONB_WRITER_MAX_DEPTH];
} JsonbWriter;

extern void JsonbWriterInit(JsonbWriter *writer);
extern void JsonbWriterBeginObject(JsonbWriter *writer, int npairs);
extern void JsonbWriterBeginArray(JsonbWriter *writer, int nelems);
extern void JsonbWriterEnd(JsonbWriter *writer);
extern void JsonbWriterString(JsonbWriter *writer, const char *str, int len);
extern void JsonbWriterCString(JsonbWriter *writer, const char *str);
extern void JsonbWriterNull(JsonbWriter *writer);
extern void JsonbWriterValue(JsonbWriter *writer, JsonbValue *value);
extern Jsonb *JsonbWriterFinish(JsonbWriter *writer);

/* json_to_column.c: JSON values to column types, as jsonb_populate_record */
typedef enum JsonConversion
{
	CONVERT_TEXT,				/* a string into text */
	CONVERT_NUMERIC,			/* a number into an unconstrained numeric */
	CONVERT_BOOL,				/* a boolean into boolean */
	CONVERT_JSONB,				/* anything into jsonb */
	CONVERT_INPUT,				/* through the type's input function */
	CONVERT_POPULATE			/* arrays, composites: through jsonb_to_record */
} JsonConversion;

typedef struct JsonColumnConverter
{
	Oid			type;
	int32		typmod;
	Oid			base_type;		/* the type, or a domain's base type */
	bool		is_domain;
	JsonConversion how;
	MemoryContext cxt;			/* for what is looked up on first use */
	bool		input_ready;
	FmgrInfo	input;
	Oid			ioparam;
	TupleDesc	record_desc;	/* (v type), for jsonb_to_record */
	FmgrInfo	to_record;
	uint64		to_record_generation;	/* catalog changes it has seen */
} JsonColumnConverter;

extern void JsonColumnConverterInit(JsonColumnConverter *converter, Oid type, int32 typmod);
extern bool JsonColumnConversionMayFail(JsonColumnConverter *converter, JsonbValue *value);
extern Datum JsonColumnConvert(JsonColumnConverter *converter, JsonbValue *value,
							   bool *isnull);

/* How rows of one tuple descriptor are rendered as jsonb objects */
typedef struct RowJsonbLayout
{
	TupleDesc	desc;
	int			nattrs;			/* live attributes */
	int		   *order;			/* their indexes, in jsonb key order */
} RowJsonbLayout;

extern RowJsonbLayout *RowJsonbLayoutFor(TupleDesc desc, MemoryContext cxt);
extern void JsonbWriterRow(JsonbWriter *writer, RowJsonbLayout *layout, HeapTuple tuple);

/* run.c */
/*
 * The input of a run.  Both forms are made on first use: a trigger run only
 * builds the row datum if a step takes the row, and the jsonb form (which
 * for a trigger run is the envelope) if a step takes jsonb.
 */
typedef struct RunInput
{
	Oid			type;			/* InvalidOid for a run without input */
	bool		value_ready;
	Datum		value;
	bool		isnull;
	Jsonb	   *jsonb;			/* NULL until made */
	struct TriggerData *trigger;	/* set for runs started by choreo_trigger */
	FmgrInfo   *trigger_flinfo; /* its call info, which caches the envelope's layout */
} RunInput;

extern Jsonb *RunPipeline(const char *pipeline_name, PipelineRef *ref, RunInput *input,
						  bool try_only, bool want_report);

/* trigger_row.c: what the C row triggers share */
extern Datum TriggerRowDatum(struct TriggerData *trigdata);
extern Jsonb *TriggerEnvelope(struct TriggerData *trigdata, FmgrInfo *flinfo);
extern struct TriggerData *RowTriggerData(FunctionCallInfo fcinfo, const char *function,
										  int min_args, int max_args,
										  const char *purpose, const char *arguments,
										  const char *example);
extern Datum RowTriggerUnchanged(struct TriggerData *trigdata);

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

/*
 * transaction.c: the transaction callbacks all features hang off.  Each
 * capability registers what it does at each point of a transaction; any
 * member may be NULL.  The pre-commit rounds run each participant's
 * run_pre_commit in registration order until none is pending; at_commit,
 * at_end (after COMMIT, ABORT or PREPARE) and the subtransaction members
 * must not raise.
 */
typedef struct TransactionParticipant
{
	bool		(*pending) (void);
	void		(*run_pre_commit) (void);
	void		(*at_commit) (void);
	void		(*at_end) (void);
	void		(*at_sub_abort) (int nest_level);
	void		(*at_sub_commit) (int nest_level);
	void		(*after_commit_prepared) (void);
} TransactionParticipant;

extern void TransactionCallbacksInit(void);
extern void TransactionRegisterParticipant(const TransactionParticipant *participant);

/* hooks.c: pre-commit and post-commit hooks */
extern void HooksRegisterTransactionWork(void);
extern Oid	CheckHookCallback(Datum callback, const char *kind);
extern void CallHookFunction(Oid callback, Jsonb *payload, Oid userid);

/* buffer_catalog.c: buffer definitions */
typedef struct BufferDef
{
	DefinitionId id;
	Oid			target;
	int			max_batch;
	Oid			owner;
} BufferDef;

extern void BufferCacheInit(void);
extern void ValidateBufferTarget(const char *name, Oid target);
extern void BufferLookupId(const DefinitionId *id, BufferDef *def);
extern const DefinitionId *BufferResolve(const char *written, int len);
extern NameRef *BufferNameLookup(const char *written, int len);
extern uint64 BufferDefinitionsGeneration(void);

/* buffer.c: batched buffers */
typedef struct PendingBuffer PendingBuffer;

extern PendingBuffer *PendingBufferFor(const char *written, int len, NameRef **ref);
extern int	PendingBufferColumn(PendingBuffer *buffer, const char *column);
extern void BufferFireJsonb(PendingBuffer *buffer, int column, Jsonb *document);
extern void BuffersInit(void);
extern int64 BuffersFlushAll(void);
extern void InsertPlansInvalidate(Oid relid);

/* direct_insert.c: writing rows without planning an INSERT */
typedef struct DirectInsertColumns
{
	int			ncolumns;
	AttrNumber *attnums;		/* the columns each row gives values for */
	Oid		   *types;			/* their types and typmods, as last read */
	int32	   *typmods;
} DirectInsertColumns;

extern bool DirectInsertRows(Oid relid, const DirectInsertColumns *columns, int nrows,
							 Datum *const *values, bool *const *nulls);

/* shmem.c: state shared with the background workers */
extern void SharedStateInit(void);
extern void WorkersWake(uint64 txid);
extern int	CommitQueueTake(uint64 *txids, int max, bool *look_everywhere);
extern bool WorkerMaySleep(int index);
extern void WorkerAwake(int index);
extern void WorkerSlotAttach(int index);
extern bool WorkerClaimGroup(int index, uint64 group);
extern void WorkerSetRunning(int index, int64 hook_id);
extern long WorkerStartDelay(int index);
extern void WorkerStarted(int index);

/* the most workers choreograph.max_workers allows */
#define MAX_CHOREO_WORKERS 64

/* worker.c: the background workers running post-commit hooks */
extern void WorkersRegister(void);

/* worker_session.c: a worker's session made fresh again between hooks */
extern void WorkerSessionReset(void);
extern bool WorkerSessionServes(Oid role);

#endif							/* CHOREOGRAPH_H */
