/*
 * row_guard.c
 *		Rows written into the extension's tables without its functions, as
 *		pg_restore writes them (COPY) or a role's own INSERT does: a row
 *		trigger lets through only what the inserting role could have written
 *		through the functions, and statement triggers say what it left out.
 *
 * The tables are extension configuration tables, so pg_restore restores
 * their rows as the restoring role.  Any role may insert into them (a
 * database owner who is not a superuser restoring into a database where a
 * superuser created the extension, as on hosted services), but:
 * - a row of a role whose privileges the inserter does not have (a
 *   definition's owner, a hook's role) is skipped: nobody plants a
 *   definition owned by another role, or a hook that runs as one;
 * - a pipeline or buffer in a schema where the inserter may not create, or
 *   in a temporary schema, is skipped: a name is claimed only with CREATE,
 *   as choreo_add_step and choreo_create_buffer require;
 * - a step of a pipeline that is not there (it was skipped, say) or is not
 *   the inserter's is skipped;
 * - what is left is checked as the functions check it (step functions'
 *   shape, a buffer's table, a hook's callback), with their errors.
 * Superusers and the tables' owner (whose writes these are when the
 * functions write) are not checked.  Skipping rather than failing lets a
 * restore keep the rows that are the restoring role's: COPY is all or
 * nothing (the outbox, which every registration writes, reports each
 * skipped hook instead: statement triggers would slow registrations).
 * Row-level security could not do this: pg_dump and pg_restore
 * set row_security = off, under which a query that RLS would filter fails,
 * and COPY FROM refuses tables with RLS.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "choreograph.h"
#include "pg_compat.h"

/* What the rows of the current statement that were skipped were */
static int	skipped_rows = 0;
static List *skipped_roles = NIL;	/* of Oid: roles not the inserter's */
static List *skipped_schemas = NIL; /* of Oid: schemas it may not create in */
static int	skipped_orphans = 0;	/* steps of pipelines not written */

static void
ResetSkipped(void)
{
	skipped_rows = 0;
	skipped_orphans = 0;
	list_free(skipped_roles);
	list_free(skipped_schemas);
	skipped_roles = NIL;
	skipped_schemas = NIL;
}

/* Counts a skipped row, and the role or schema it was skipped for (once) */
static void
SkipFor(List **why, Oid oid)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	*why = list_append_unique_oid(*why, oid);
	MemoryContextSwitchTo(old);
	skipped_rows++;
}

#define SkipForRole(role) SkipFor(&skipped_roles, (role))
#define SkipForSchema(namespace) SkipFor(&skipped_schemas, (namespace))

/* A column of the row being inserted, by name; NULL columns are left to the constraints */
static bool
RowValue(TriggerData *trigdata, const char *column, Datum *value)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	int			attnum = SPI_fnumber(desc, column);
	bool		isnull;

	if (attnum <= 0)
		elog(ERROR, "table %s has no column \"%s\"",
			 RelationGetRelationName(trigdata->tg_relation), column);
	*value = heap_getattr(trigdata->tg_trigtuple, attnum, desc, &isnull);
	return !isnull;
}

/* Whether the inserter may own a row of this role; records the skip if not */
static bool
MayWriteFor(Oid user, TriggerData *trigdata, const char *column)
{
	Datum		role;

	if (!RowValue(trigdata, column, &role))
		return true;
	if (has_privs_of_role(user, DatumGetObjectId(role)))
		return true;
	SkipForRole(DatumGetObjectId(role));
	return false;
}

/* Whether the inserter may claim a name in the row's schema; records the skip if not */
static bool
MayCreateIn(Oid user, TriggerData *trigdata)
{
	Datum		namespace;

	if (!RowValue(trigdata, "namespace", &namespace))
		return true;
	if (!isAnyTempNamespace(DatumGetObjectId(namespace)) &&
		compat_namespace_aclcheck(DatumGetObjectId(namespace), user, ACL_CREATE) == ACLCHECK_OK)
		return true;
	SkipForSchema(DatumGetObjectId(namespace));
	return false;
}

/*
 * A hook row as choreo_post_commit would have written it: the columns the
 * function chooses are not the inserter's to choose.  Its id comes from
 * the sequence (a chosen one could take the ids of other roles' coming
 * hooks), its transaction is this one (a chosen one could join, and hold
 * up, another transaction's hooks, which run in order), its attempts are
 * within [0, choreograph.hook_max_attempts] and its next attempt is not
 * later than now (a failed hook, NULL, stays failed).
 */
static HeapTuple
HookRowAsRegistered(TriggerData *trigdata)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	int			columns[4];
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	Datum		value;
	int			n = 0;

	columns[n] = SPI_fnumber(desc, "id");
	values[n++] = Int64GetDatum(nextval_internal(ChoreoRelationOid("hooks_id_seq", false), false));
	columns[n] = SPI_fnumber(desc, "txid");
	values[n++] = Int64GetDatum((int64) U64FromFullTransactionId(GetTopFullTransactionId()));
	columns[n] = SPI_fnumber(desc, "attempts");
	values[n++] = Int32GetDatum(RowValue(trigdata, "attempts", &value) ?
								Max(0, Min(DatumGetInt32(value), choreo_hook_max_attempts)) : 0);
	if (RowValue(trigdata, "next_attempt_at", &value) &&
		DatumGetTimestampTz(value) > GetCurrentTransactionStartTimestamp())
	{
		columns[n] = SPI_fnumber(desc, "next_attempt_at");
		values[n++] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	}
	for (int i = 0; i < n; i++)
		if (columns[i] <= 0)
			elog(ERROR, "table %s lacks a column of the outbox",
				 RelationGetRelationName(trigdata->tg_relation));
	return heap_modify_tuple_by_cols(trigdata->tg_trigtuple, desc, n, columns, values, nulls);
}

/* A steps row: its pipeline must be there and the inserter's */
static bool
StepRowAllowed(Oid user, TriggerData *trigdata)
{
	Datum		namespace;
	Datum		pipeline;
	Datum		step;
	Datum		function;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2];
	Oid			owner = InvalidOid;
	Oid			saved_userid;
	int			saved_sec_context;
	bool		found;
	char	   *pipeline_name;
	char	   *step_name;

	if (!RowValue(trigdata, "namespace", &namespace) ||
		!RowValue(trigdata, "pipeline", &pipeline) ||
		!RowValue(trigdata, "step", &step))
		return true;
	args[0] = namespace;
	args[1] = pipeline;

	/*
	 * The pipeline is locked until this transaction ends: otherwise it
	 * could be dropped, and created again by another role, between this
	 * check and the foreign key's at the end of the statement, and the step
	 * would join the other role's pipeline.  Locking needs UPDATE, which
	 * only the tables' owner has; the query names everything with its
	 * schema.
	 */
	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	SetUserIdAndSecContext(trigdata->tg_relation->rd_rel->relowner,
						   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT owner::pg_catalog.oid FROM " CHOREO_SCHEMA ".pipelines"
							  " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
							  "   AND name OPERATOR(pg_catalog.=) $2"
							  " FOR KEY SHARE",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the pipeline of a step");
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
		skipped_orphans++;
		skipped_rows++;
		return false;
	}
	if (!has_privs_of_role(user, owner))
	{
		SkipForRole(owner);
		return false;
	}

	pipeline_name = TextDatumGetCString(pipeline);
	step_name = TextDatumGetCString(step);
	if (RowValue(trigdata, "job", &function))
		ValidateStepFunction(DatumGetObjectId(function), "job", pipeline_name, step_name);
	if (RowValue(trigdata, "precheck", &function))
		ValidateStepFunction(DatumGetObjectId(function), "precheck", pipeline_name, step_name);
	return true;
}

PG_FUNCTION_INFO_V1(choreo_guard_row);

/*
 * BEFORE INSERT row trigger of the extension's tables; its argument names
 * the table.  Returns the row, or NULL to skip it.
 */
Datum
choreo_guard_row(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			user = GetUserId();
	const char *table;
	Datum		value;
	bool		allowed = true;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || trigdata->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("choreo_guard_row() must be fired before INSERT for each row, with the table's name")));

	/* the functions write as the tables' owner; superusers may write anything */
	if (superuser() || has_privs_of_role(user, trigdata->tg_relation->rd_rel->relowner))
		return PointerGetDatum(trigdata->tg_trigtuple);

	table = trigdata->tg_trigger->tgargs[0];
	if (strcmp(table, "pipelines") == 0)
		allowed = MayWriteFor(user, trigdata, "owner") && MayCreateIn(user, trigdata);
	else if (strcmp(table, "buffers") == 0)
	{
		allowed = MayWriteFor(user, trigdata, "owner") && MayCreateIn(user, trigdata);
		if (allowed && RowValue(trigdata, "target", &value))
		{
			Datum		name;

			ValidateBufferTarget(RowValue(trigdata, "name", &name) ?
								 TextDatumGetCString(name) : "", DatumGetObjectId(value));
		}
	}
	else if (strcmp(table, "steps") == 0)
		allowed = StepRowAllowed(user, trigdata);
	else if (strcmp(table, "hooks") == 0)
	{
		/*
		 * Every hook registration is an INSERT here, so the outbox has no
		 * statement triggers (they would cost each registration more than
		 * the row trigger): a skipped hook is reported on its own.
		 */
		if (RowValue(trigdata, "role", &value) &&
			!has_privs_of_role(user, DatumGetObjectId(value)))
		{
			char	   *role = GetUserNameFromId(DatumGetObjectId(value), true);
			Datum		id;

			if (role == NULL)
				role = psprintf("%u", DatumGetObjectId(value));
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("hook %lld of role %s was not written into %s.hooks",
							RowValue(trigdata, "id", &id) ? (long long) DatumGetInt64(id) : 0,
							quote_identifier(role), CHOREO_SCHEMA),
					 errdetail("Role %s does not have the privileges of role %s.",
							   quote_identifier(GetUserNameFromId(user, false)),
							   quote_identifier(role)),
					 errhint("A role writes only its own pipelines, buffers and hooks, in schemas where it may create; a superuser may restore the others.")));
			allowed = false;
		}
		else
		{
			if (RowValue(trigdata, "callback", &value))
				(void) CheckHookCallback(value, "post-commit");
			return PointerGetDatum(HookRowAsRegistered(trigdata));
		}
	}
	else
		elog(ERROR, "choreo_guard_row() does not know table \"%s\"", table);

	return allowed ? PointerGetDatum(trigdata->tg_trigtuple) : PointerGetDatum(NULL);
}

/* "a, b, c": the names of roles or schemas, for a message */
static char *
NameList(List *oids, bool roles)
{
	StringInfoData names;
	ListCell   *lc;

	initStringInfo(&names);
	foreach(lc, oids)
	{
		char	   *name = roles ? GetUserNameFromId(lfirst_oid(lc), true)
			: get_namespace_name(lfirst_oid(lc));

		if (names.len > 0)
			appendStringInfoString(&names, ", ");
		if (name != NULL)
			appendStringInfoString(&names, quote_identifier(name));
		else
			appendStringInfo(&names, "%u", lfirst_oid(lc));
	}
	return names.data;
}

PG_FUNCTION_INFO_V1(choreo_guard_statement);

/*
 * INSERT statement trigger of the extension's tables: before, forgets what
 * an earlier statement skipped; after, warns of the rows this one skipped.
 */
Datum
choreo_guard_statement(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	StringInfoData detail;
	char	   *user;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("choreo_guard_statement() must be fired for each statement")));
	if (TRIGGER_FIRED_BEFORE(trigdata->tg_event))
	{
		ResetSkipped();
		return PointerGetDatum(NULL);
	}
	if (skipped_rows == 0)
		return PointerGetDatum(NULL);

	user = GetUserNameFromId(GetUserId(), false);
	initStringInfo(&detail);
	if (skipped_roles != NIL)
		appendStringInfo(&detail, "Rows of roles whose privileges role %s does not have: %s.",
						 quote_identifier(user), NameList(skipped_roles, true));
	if (skipped_schemas != NIL)
		appendStringInfo(&detail, "%sRows in schemas where role %s may not create: %s.",
						 detail.len > 0 ? "\n" : "", quote_identifier(user),
						 NameList(skipped_schemas, false));
	if (skipped_orphans > 0)
		appendStringInfo(&detail, "%sSteps of pipelines that are not there: %d.",
						 detail.len > 0 ? "\n" : "", skipped_orphans);
	ereport(WARNING,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg_plural("%d row was not written into %s.%s",
						   "%d rows were not written into %s.%s",
						   skipped_rows, skipped_rows, CHOREO_SCHEMA,
						   RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("%s", detail.data),
			 errhint("A role writes only its own pipelines, buffers and hooks, in schemas where it may create; a superuser may restore the others.")));
	ResetSkipped();
	return PointerGetDatum(NULL);
}
