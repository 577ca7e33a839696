/*
 * streams/activity_catalog.c
 *		Activity definitions: choreo_create_activity (its processor's shape
 *		and its options), choreo_drop_activity, choreo_pause_activity,
 *		choreo_resume_activity, and reading a definition for the functions
 *		that act on one (ActivityOpen).
 *
 * A definition is a row of choreograph.activities.  Like pipelines and
 * buffers, its name belongs to a schema (names.c), the rows are readable
 * by everyone and written, after an ownership check, as the tables'
 * owner.  Its options are checked once, here, and kept both as given and
 * as the columns they come to, so that what runs reads plain columns.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "catalog/dependency.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "streams/streams.h"
#include "workers/workers.h"

#define MAX_BATCH_SIZE 100000
#define MAX_ACTIVITY_CONCURRENCY 1000
#define MAX_ACTIVITY_ATTEMPTS 1000

const DefinitionKind ActivityKind = {"activity", "activities"};

/* What the options of choreo_create_activity come to */
typedef struct ActivityOptions
{
	const char *engine;
	char	   *interval;		/* NULL unless engine is cron */
	int			batch_size;
	int			initial_batch_size; /* 0: batch_size */
	int			max_concurrency;
	int			max_attempts;
	char	   *backoff_base;
	char	   *backoff_max;
	bool		auto_start;
	char	   *serialize_group;
} ActivityOptions;

/* Whether a type is the extension's choreo_outcome (wherever search_path points) */
static bool
IsOutcomeType(Oid type)
{
	Oid			extension = get_extension_oid("choreograph", true);
	HeapTuple	tuple;
	bool		named;

	if (!OidIsValid(extension))
		return false;
	tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	if (!HeapTupleIsValid(tuple))
		return false;
	named = strcmp(NameStr(((Form_pg_type) GETSTRUCT(tuple))->typname), "choreo_outcome") == 0;
	ReleaseSysCache(tuple);
	return named && getExtensionOfObject(TypeRelationId, type) == extension;
}

/*
 * Checks that a processor is a plain function of (text, bigint, jsonb,
 * boolean) returning choreo_outcome
 */
void
CheckProcessorShape(Oid processor)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(processor));
	Form_pg_proc proc;
	static const Oid expected[4] = {TEXTOID, INT8OID, JSONBOID, BOOLOID};
	bool		shaped;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", processor)));
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	shaped = proc->pronargs == 4;
	for (int i = 0; shaped && i < 4; i++)
		shaped = proc->proargtypes.values[i] == expected[i];
	if (!shaped || proc->prokind != PROKIND_FUNCTION)
	{
		char	   *signature = format_procedure(processor);

		ReleaseSysCache(tuple);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("%s cannot be the processor of an activity", signature),
				 errdetail("A processor is a plain function of (entity text, tail bigint, events jsonb, initial boolean) returning choreo_outcome.")));
	}
	if (proc->proretset || !IsOutcomeType(proc->prorettype))
	{
		char	   *signature = format_procedure(processor);
		char	   *returns = format_type_be(proc->prorettype);

		ReleaseSysCache(tuple);
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("processor %s must return choreo_outcome, not %s%s",
						signature, proc->proretset ? "setof " : "", returns)));
	}
	ReleaseSysCache(tuple);
}

pg_noreturn static void
BadOption(const char *key, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for activity option \"%s\"", key),
			 errdetail("%s", detail)));
}

static int
IntegerOption(const char *key, JsonbValue *value, int min, int max)
{
	Datum		number;
	int64		n;

	if (value->type != jbvNumeric)
		BadOption(key, "It must be a number.");
	number = NumericGetDatum(value->val.numeric);
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, number,
										  DirectFunctionCall2(numeric_trunc, number,
															  Int32GetDatum(0)))))
		BadOption(key, "It must be a whole number.");
	if (DatumGetBool(DirectFunctionCall2(numeric_gt, number,
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(max)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_lt, number,
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(min)))))
		BadOption(key, psprintf("It must be between %d and %d.", min, max));
	n = DatumGetInt64(DirectFunctionCall1(numeric_int8, number));
	return (int) n;
}

static char *
StringOption(const char *key, JsonbValue *value)
{
	if (value->type != jbvString)
		BadOption(key, "It must be a string.");
	return pnstrdup(value->val.string.val, value->val.string.len);
}

/* An interval's text, parsed in a subtransaction (its input errors are the option's) */
typedef struct IntervalParse
{
	const char *text;
	Interval	value;
} IntervalParse;

static void
ParseInterval(void *arg)
{
	IntervalParse *parse = arg;
	Datum		parsed = DirectFunctionCall3(interval_in, CStringGetDatum(parse->text),
											 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	parse->value = *DatumGetIntervalP(parsed);
}

/* An interval option: a string such as "1 second", greater than zero */
static char *
IntervalOption(const char *key, JsonbValue *value, Interval *out)
{
	IntervalParse parse;
	ErrorData  *edata;
	Interval	zero = {0};

	parse.text = StringOption(key, value);
	edata = CallInSubTransaction(ParseInterval, &parse, CurrentMemoryContext);
	if (edata != NULL)
	{
		/* a value that is no interval is the option's error; anything else is raised again */
		if (ERRCODE_TO_CATEGORY(edata->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			ReThrowError(edata);
		BadOption(key, psprintf("\"%s\" is not an interval: %s", parse.text, edata->message));
	}
	*out = parse.value;
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(out),
										  IntervalPGetDatum(&zero))) <= 0)
		BadOption(key, "It must be an interval greater than zero.");
	return (char *) parse.text;
}

/* Reads the options object of choreo_create_activity; raises 22023 */
static void
ParseActivityOptions(Jsonb *options, ActivityOptions *out)
{
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	value;
	JsonbIteratorToken token;
	Interval	base = {0};
	Interval	max = {0};
	bool		has_base = false;
	bool		has_max = false;

	out->engine = "lazy";
	out->interval = NULL;
	out->batch_size = 1000;
	out->initial_batch_size = 0;
	out->max_concurrency = 0;
	out->max_attempts = 5;
	out->backoff_base = "1 second";
	out->backoff_max = "5 minutes";
	out->auto_start = true;
	out->serialize_group = NULL;
	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options of an activity must be a JSON object")));

	it = JsonbIteratorInit(&options->root);
	(void) JsonbIteratorNext(&it, &key, true);
	while ((token = JsonbIteratorNext(&it, &key, true)) == WJB_KEY)
	{
		char	   *name = pnstrdup(key.val.string.val, key.val.string.len);

		token = JsonbIteratorNext(&it, &value, true);
		Assert(token == WJB_VALUE);
		if (strcmp(name, "engine") == 0)
		{
			char	   *engine = StringOption(name, &value);

			if (strcmp(engine, "lazy") != 0 && strcmp(engine, "cron") != 0 &&
				strcmp(engine, "manual") != 0)
				BadOption(name, "It must be \"lazy\", \"cron\" or \"manual\".");
			out->engine = engine;
		}
		else if (strcmp(name, "interval") == 0)
		{
			Interval	interval;

			out->interval = IntervalOption(name, &value, &interval);
		}
		else if (strcmp(name, "batch_size") == 0)
			out->batch_size = IntegerOption(name, &value, 1, MAX_BATCH_SIZE);
		else if (strcmp(name, "initial_batch_size") == 0)
			out->initial_batch_size = IntegerOption(name, &value, 1, MAX_BATCH_SIZE);
		else if (strcmp(name, "max_concurrency") == 0)
			out->max_concurrency = IntegerOption(name, &value, 0, MAX_ACTIVITY_CONCURRENCY);
		else if (strcmp(name, "max_attempts") == 0)
			out->max_attempts = IntegerOption(name, &value, 1, MAX_ACTIVITY_ATTEMPTS);
		else if (strcmp(name, "backoff_base") == 0)
		{
			out->backoff_base = IntervalOption(name, &value, &base);
			has_base = true;
		}
		else if (strcmp(name, "backoff_max") == 0)
		{
			out->backoff_max = IntervalOption(name, &value, &max);
			has_max = true;
		}
		else if (strcmp(name, "auto_start") == 0)
		{
			if (value.type != jbvBool)
				BadOption(name, "It must be true or false.");
			out->auto_start = value.val.boolean;
		}
		else if (strcmp(name, "serialize_group") == 0)
		{
			if (value.type != jbvNull)
			{
				out->serialize_group = StringOption(name, &value);
				if (out->serialize_group[0] == '\0')
					BadOption(name, "It must not be empty.");
			}
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown activity option \"%s\"", name),
					 errhint("The options are engine, interval, batch_size, initial_batch_size, max_concurrency, max_attempts, backoff_base, backoff_max, auto_start and serialize_group.")));
	}

	if (strcmp(out->engine, "cron") == 0 && out->interval == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an activity of engine \"cron\" needs an interval"),
				 errhint("Add an option such as \"interval\": \"1 minute\".")));
	if (strcmp(out->engine, "cron") != 0 && out->interval != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"interval\" is for activities of engine \"cron\"")));
	if (has_base || has_max)
	{
		Datum		b;
		Datum		m;

		b = has_base ? IntervalPGetDatum(&base) :
			DirectFunctionCall3(interval_in, CStringGetDatum(out->backoff_base),
								ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		m = has_max ? IntervalPGetDatum(&max) :
			DirectFunctionCall3(interval_in, CStringGetDatum(out->backoff_max),
								ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		if (DatumGetInt32(DirectFunctionCall2(interval_cmp, b, m)) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backoff_base %s is greater than backoff_max %s",
							out->backoff_base, out->backoff_max)));
	}
}

/*
 * With auto_start, the entities a new activity's stream already has on
 * this node get the activity, from their first event; the workers start on
 * them at commit.  Between BeginExtensionWrite and EndExtensionWrite, after
 * the activity's row is written (choreo_create_activity; on a Citus
 * cluster, every node's trigger on its copy of the table).
 */
static void
StartForExistingEntities(const char *display, Oid namespace, const char *name,
						 const char *stream, const char *engine, bool auto_start)
{
	SPIPlanPtr	plan;
	Oid			types[2] = {OIDOID, TEXTOID};
	Datum		args[2] = {ObjectIdGetDatum(namespace), CStringGetTextDatum(name)};

	if (strcmp(engine, "manual") == 0)
		return;

	/*
	 * From now on the stream's flushes leave news for the workers; the
	 * lock waits for those that began without (stream_sink.c), so that the
	 * entities they wrote are seen below.
	 */
	StreamWatchBegins(stream);
	if (!auto_start)
		return;
	/* the activity just written, read from this node's copy */
	plan = SPI_prepare(QueryForThisNode("INSERT INTO " CHOREO_SCHEMA ".activity_cursors (activity_id, entity_id, next_run_at)"
										" SELECT a.id, s.id, pg_catalog.now()"
										"   FROM " CHOREO_TABLE_HERE("activities") " a, " CHOREO_SCHEMA ".stream_entities s"
										"  WHERE a.namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
										"    AND a.name OPERATOR(pg_catalog.=) $2"
										"    AND s.stream OPERATOR(pg_catalog.=) a.stream"
										" ON CONFLICT (activity_id, entity_id) DO NOTHING"),
					   2, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare the cursors of activity \"%s\"", display);
	/* a snapshot taken after the lock, at any isolation level */
	CommandCounterIncrement();
	if (SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 false, true, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not start activity \"%s\" for its stream's entities", display);
	SPI_freeplan(plan);
	CursorsAnnounceAtCommit(0);
}

PG_FUNCTION_INFO_V1(choreo_create_activity);

/* Defines an activity of a stream, owned by the caller */
Datum
choreo_create_activity(PG_FUNCTION_ARGS)
{
	char	   *written = NameArgument(fcinfo, 0, "activity");
	char	   *stream;
	DefinitionName parsed;
	DefinitionId id;
	Oid			processor;
	ActivityOptions options;
	ExtensionWrite write;
	Datum		args[16];
	char		nulls[16];

	ParseDefinitionName(&ActivityKind, written, &parsed);
	stream = StreamNameArgument(fcinfo, 1);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("processor of activity \"%s\" must not be null", parsed.display)));
	processor = PG_GETARG_OID(2);
	CheckProcessorShape(processor);
	if (compat_proc_aclcheck(processor, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", get_func_name(processor)),
				 errdetail("The processor of an activity runs as the role that created it.")));
	ParseActivityOptions(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &options);
	if (strcmp(options.engine, "manual") != 0 && !choreo_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("activities of engine \"%s\" need choreograph's background workers",
						options.engine),
				 errhint("Add choreograph to shared_preload_libraries and restart the server, or use \"engine\": \"manual\".")));

	/* as the caller, with the caller's search_path: needs CREATE there */
	DefinitionCreationId(&ActivityKind, &parsed, &id);

	BeginExtensionWrite(&write, true);
	memset(nulls, ' ', sizeof(nulls));
	args[0] = ObjectIdGetDatum(id.namespace);
	args[1] = CStringGetTextDatum(NameStr(id.name));
	args[2] = CStringGetTextDatum(stream);
	args[3] = ObjectIdGetDatum(processor);
	args[4] = PG_ARGISNULL(3) ? DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")) :
		PointerGetDatum(PG_GETARG_JSONB_P(3));
	args[5] = CStringGetTextDatum(options.engine);
	args[6] = options.interval != NULL ? CStringGetTextDatum(options.interval) : (Datum) 0;
	nulls[6] = options.interval != NULL ? ' ' : 'n';
	args[7] = Int32GetDatum(options.batch_size);
	args[8] = Int32GetDatum(options.initial_batch_size > 0 ?
							options.initial_batch_size : options.batch_size);
	args[9] = Int32GetDatum(options.max_concurrency);
	args[10] = Int32GetDatum(options.max_attempts);
	args[11] = CStringGetTextDatum(options.backoff_base);
	args[12] = CStringGetTextDatum(options.backoff_max);
	args[13] = BoolGetDatum(options.auto_start);
	args[14] = options.serialize_group != NULL ?
		CStringGetTextDatum(options.serialize_group) : (Datum) 0;
	nulls[14] = options.serialize_group != NULL ? ' ' : 'n';
	args[15] = ObjectIdGetDatum(write.caller);
	{
		Oid			argtypes[16] = {OIDOID, TEXTOID, TEXTOID, OIDOID, JSONBOID, TEXTOID, TEXTOID,
		INT4OID, INT4OID, INT4OID, INT4OID, TEXTOID, TEXTOID, BOOLOID, TEXTOID, OIDOID};

		if (SPI_execute_with_args("INSERT INTO " CHOREO_SCHEMA ".activities"
								  " (namespace, name, stream, processor, options, engine, cron_interval,"
								  "  batch_size, initial_batch_size, max_concurrency, max_attempts,"
								  "  backoff_base, backoff_max, auto_start, serialize_group, owner)"
								  " VALUES ($1::pg_catalog.regnamespace, $2, $3, $4::pg_catalog.regprocedure,"
								  "         $5, $6, $7::pg_catalog.interval, $8, $9, $10, $11,"
								  "         $12::pg_catalog.interval, $13::pg_catalog.interval, $14, $15,"
								  "         $16::pg_catalog.regrole)"
								  " ON CONFLICT (namespace, name) DO NOTHING",
								  16, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert activity \"%s\"", parsed.display);
	}
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("activity \"%s\" already exists", parsed.display)));

	StartForExistingEntities(parsed.display, id.namespace, NameStr(id.name), stream,
							 options.engine, options.auto_start);
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}

/*
 * Reads the activity a name (as written) refers to, and checks that the
 * caller has the privileges of its owner (42501); locks its row against a
 * concurrent drop (FOR KEY SHARE), or for a change (FOR UPDATE) when lock.
 * Between BeginExtensionWrite and EndExtensionWrite, which must have been
 * begun after the name was resolved: call it through ActivityOpen.
 */
static void
ReadActivity(const DefinitionName *name, const DefinitionId *id, Oid caller, bool lock,
			 Activity *activity)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2] = {ObjectIdGetDatum(id->namespace), CStringGetTextDatum(NameStr(id->name))};
	/* this node's copy (shared/node_tables.c), whose row lock every change meets */
	char	   *query = psprintf("SELECT " ACTIVITY_COLUMNS("") " FROM " CHOREO_TABLE_HERE("activities")
								 " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
								 "   AND name OPERATOR(pg_catalog.=) $2 FOR %s",
								 lock ? "UPDATE" : "KEY SHARE");

	if (SPI_execute_with_args(QueryForThisNode(query), 2, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read activity \"%s\"", name->display);
	if (SPI_processed != 1)
		DefinitionNotFound(&ActivityKind, name);
	ActivityFromRow(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, activity);
	/* messages name it as written */
	activity->name = pstrdup(name->display);

	if (!has_privs_of_role(caller, activity->owner))
	{
		char	   *owner_name = GetUserNameFromId(activity->owner, true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of activity \"%s\"", name->display),
				 owner_name != NULL ?
				 errdetail("It belongs to role \"%s\".", owner_name) :
				 errdetail("It belongs to a role that was dropped (OID %u).", activity->owner)));
	}
}

/*
 * Finds the activity a name (as written) refers to, as the caller would,
 * begins writing as the tables' owner (EndExtensionWrite ends it), and
 * reads it with ReadActivity.  Raises 42704 when there is none.
 */
void
ActivityOpen(const char *written, bool lock, Activity *activity, ExtensionWrite *write)
{
	DefinitionName name;
	DefinitionId id;
	bool		found;

	ParseDefinitionName(&ActivityKind, written, &name);
	found = FindDefinition(&ActivityKind, &name, &id);
	BeginExtensionWrite(write, true);
	if (!found)
		DefinitionNotFound(&ActivityKind, &name);
	ReadActivity(&name, &id, write->caller, lock, activity);
}

PG_FUNCTION_INFO_V1(choreo_drop_activity);

/* Drops an activity, with its cursors */
Datum
choreo_drop_activity(PG_FUNCTION_ARGS)
{
	DefinitionName name;
	DefinitionId id;
	ExtensionWrite write;

	BeginDefinitionChange(&ActivityKind, NameArgument(fcinfo, 0, "activity"), &write, &name, &id);
	DeleteDefinition(&ActivityKind, &id);
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}

/* Pauses or resumes an activity; resumed, the workers look for its due entities */
static void
SetPaused(FunctionCallInfo fcinfo, bool paused)
{
	Activity	activity;
	ExtensionWrite write;
	Oid			argtypes[2] = {INT4OID, BOOLOID};
	Datum		args[2];

	ActivityOpen(NameArgument(fcinfo, 0, "activity"), true, &activity, &write);
	args[0] = Int32GetDatum(activity.id);
	args[1] = BoolGetDatum(paused);
	ExecuteExtensionQuery("UPDATE " CHOREO_SCHEMA ".activities SET paused = $2"
						  " WHERE id OPERATOR(pg_catalog.=) $1",
						  2, argtypes, args, SPI_OK_UPDATE);
	if (!paused)
		CursorsAnnounceAtCommit(0);
	EndExtensionWrite(&write);
}

PG_FUNCTION_INFO_V1(choreo_pause_activity);

Datum
choreo_pause_activity(PG_FUNCTION_ARGS)
{
	SetPaused(fcinfo, true);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_resume_activity);

Datum
choreo_resume_activity(PG_FUNCTION_ARGS)
{
	SetPaused(fcinfo, false);
	PG_RETURN_VOID();
}

/*
 * An activities row written without choreo_create_activity (pg_restore, a
 * role's own INSERT; see shared/row_guard.c): the inserter's, in a schema
 * where it may create, with a processor of the right shape
 */
static HeapTuple
ActivityRowAllowed(Oid user, TriggerData *trigdata)
{
	Datum		processor;

	if (!RowGuardMayWriteFor(user, trigdata, "owner") || !RowGuardMayCreateIn(user, trigdata))
		return NULL;
	if (RowGuardValue(trigdata, "processor", &processor))
		CheckProcessorShape(DatumGetObjectId(processor));
	return trigdata->tg_trigtuple;
}

/*
 * An activity_cursors row written by hand (pg_restore by a database
 * owner): its activity must be there (the restore may have left it out)
 * and the inserter's.  The activity is locked, as a foreign key would,
 * so that it cannot go before the statement ends.
 */
static HeapTuple
CursorRowAllowed(Oid user, TriggerData *trigdata)
{
	Datum		activity_id;
	Oid			argtypes[1] = {INT4OID};
	Oid			saved_userid;
	int			saved_sec_context;
	bool		found;
	Oid			owner = InvalidOid;

	if (!RowGuardValue(trigdata, "activity_id", &activity_id))
		return NULL;
	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	SetUserIdAndSecContext(trigdata->tg_relation->rd_rel->relowner,
						   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(QueryForThisNode("SELECT owner::pg_catalog.oid FROM " CHOREO_TABLE_HERE("activities")
											   " WHERE id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE"),
							  1, argtypes, &activity_id, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the activity of a cursor");
	SetUserIdAndSecContext(saved_userid, saved_sec_context);
	found = SPI_processed == 1;
	if (found)
	{
		bool		isnull;

		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	if (!found)
	{
		RowGuardSkipOrphan();
		return NULL;
	}
	if (!has_privs_of_role(user, owner))
	{
		RowGuardSkipForRole(owner);
		return NULL;
	}
	return trigdata->tg_trigtuple;
}

/* Registers activities as a kind of definition, and their rows' guard; from _PG_init */
void
ActivitiesInit(void)
{
	DefinitionKindRegister(&ActivityKind);
	RowGuardRegister("activities", ActivityRowAllowed);
	RowGuardRegister("activity_cursors", CursorRowAllowed);
}

PG_FUNCTION_INFO_V1(choreo_activity_created);

/*
 * On a Citus cluster (choreo_distribute()), a trigger on every node's copy
 * of the activities: the activity created on the coordinator starts there
 * for the entities each node holds, in the same distributed transaction
 */
Datum
choreo_activity_created(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	row;
	ExtensionWrite write;
	bool		isnull[5];
	Datum		namespace;
	Datum		name;
	Datum		stream;
	Datum		engine;
	Datum		auto_start;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || !TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("choreo_activity_created() must be called as an AFTER INSERT row trigger")));
	/* only on the activities (this node's copy): not a row of the caller's making */
	if (RelationGetRelid(trigdata->tg_relation) != ChoreoTableToRead("activities") &&
		RelationGetRelid(trigdata->tg_relation) != ChoreoRelationOid("activities", false))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("choreo_activity_created() fires only on choreograph.activities")));
	desc = RelationGetDescr(trigdata->tg_relation);
	row = trigdata->tg_trigtuple;
	namespace = heap_getattr(row, SPI_fnumber(desc, "namespace"), desc, &isnull[0]);
	name = heap_getattr(row, SPI_fnumber(desc, "name"), desc, &isnull[1]);
	stream = heap_getattr(row, SPI_fnumber(desc, "stream"), desc, &isnull[2]);
	engine = heap_getattr(row, SPI_fnumber(desc, "engine"), desc, &isnull[3]);
	auto_start = heap_getattr(row, SPI_fnumber(desc, "auto_start"), desc, &isnull[4]);
	for (int i = 0; i < 5; i++)
		if (isnull[i])
			elog(ERROR, "unexpected null in a row of choreograph.activities");

	BeginExtensionWrite(&write, true);
	StartForExistingEntities(TextDatumGetCString(name), DatumGetObjectId(namespace),
							 TextDatumGetCString(name), TextDatumGetCString(stream),
							 TextDatumGetCString(engine), DatumGetBool(auto_start));
	EndExtensionWrite(&write);
	return PointerGetDatum(NULL);
}
