/*
 * shared/row_guard.c
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

#include "shared/shared.h"
#include "shared/pg_compat.h"

/* What the rows of the current statement that were skipped were */
static int	skipped_rows = 0;
static List *skipped_roles = NIL;	/* of Oid: roles not the inserter's */
static List *skipped_schemas = NIL; /* of Oid: schemas it may not create in */
static int	skipped_orphans = 0;	/* steps of pipelines not written */

/* the tables guarded, each with its capability's check */
#define MAX_GUARDED_TABLES 16

typedef struct GuardedTable
{
	const char *table;			/* its name in CHOREO_SCHEMA */
	RowGuardCheck check;
} GuardedTable;

static GuardedTable guarded[MAX_GUARDED_TABLES];
static int	nguarded = 0;

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

/* Counts a row skipped because the inserter lacks the privileges of a role */
void
RowGuardSkipForRole(Oid role)
{
	SkipFor(&skipped_roles, role);
}

/* Counts a row skipped because what it belongs to (a step's pipeline) is not there */
void
RowGuardSkipOrphan(void)
{
	skipped_orphans++;
	skipped_rows++;
}

/* Adds the check of a table's rows; from _PG_init */
void
RowGuardRegister(const char *table, RowGuardCheck check)
{
	if (nguarded >= MAX_GUARDED_TABLES)
		elog(ERROR, "too many choreograph tables to guard");
	guarded[nguarded].table = table;
	guarded[nguarded].check = check;
	nguarded++;
}

/* A column of the row being inserted, by name; NULL columns are left to the constraints */
bool
RowGuardValue(TriggerData *trigdata, const char *column, Datum *value)
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
bool
RowGuardMayWriteFor(Oid user, TriggerData *trigdata, const char *column)
{
	Datum		role;

	if (!RowGuardValue(trigdata, column, &role))
		return true;
	if (has_privs_of_role(user, DatumGetObjectId(role)))
		return true;
	RowGuardSkipForRole(DatumGetObjectId(role));
	return false;
}

/* Whether the inserter may claim a name in the row's schema; records the skip if not */
bool
RowGuardMayCreateIn(Oid user, TriggerData *trigdata)
{
	Datum		namespace;

	if (!RowGuardValue(trigdata, "namespace", &namespace))
		return true;
	if (!isAnyTempNamespace(DatumGetObjectId(namespace)) &&
		compat_namespace_aclcheck(DatumGetObjectId(namespace), user, ACL_CREATE) == ACLCHECK_OK)
		return true;
	SkipFor(&skipped_schemas, DatumGetObjectId(namespace));
	return false;
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
	for (int i = 0; i < nguarded; i++)
		if (strcmp(table, guarded[i].table) == 0)
			return PointerGetDatum(guarded[i].check(user, trigdata));
	elog(ERROR, "choreo_guard_row() does not know table \"%s\"", table);
	return (Datum) 0;			/* keep the compiler quiet */
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
