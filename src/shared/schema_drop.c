/*
 * shared/schema_drop.c
 *		Definitions go with their schema: the event triggers that make DROP
 *		SCHEMA refuse while a schema holds definitions of any kind
 *		registered with names.c (pipelines, buffers; unless CASCADE), and
 *		that delete the definitions of every dropped schema.
 *
 * Definitions are rows, not catalog objects, so PostgreSQL records no
 * dependency of theirs on a schema.  These two triggers give them the one
 * a function has: DROP SCHEMA s (RESTRICT) fails with the error PostgreSQL
 * raises for a schema that holds objects, and whatever drops a schema
 * (DROP SCHEMA ... CASCADE, DROP OWNED, DROP EXTENSION of an extension
 * owning one) drops its definitions with it, in the same transaction.
 * Where event triggers do not fire (single-user mode, or disabled by a
 * superuser) a definition left behind is harmless: names are looked up in
 * existing schemas only, and pg_dump leaves it out (the tables' dump
 * condition).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"

#include "shared/shared.h"

/* at most this many definitions are listed in the error, as PostgreSQL does */
#define MAX_REPORTED_DEPS 100

static EventTriggerData *
EventTriggerDataOf(FunctionCallInfo fcinfo, const char *function)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() was not called by the event trigger manager", function)));
	return (EventTriggerData *) fcinfo->context;
}

/*
 * Raises PostgreSQL's error for a schema with dependent objects if the
 * schema holds definitions, naming them as its DETAIL names objects.
 */
static void
CheckSchemaEmpty(const char *schema, Oid namespace)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(namespace)};
	StringInfoData detail;
	uint64		count;
	ExtensionWrite write;

	int			nkinds;
	const DefinitionKind *const *kinds = DefinitionKinds(&nkinds);
	StringInfoData query;

	initStringInfo(&query);
	appendStringInfoString(&query, "SELECT kind, pg_catalog.quote_ident(name) FROM (");
	for (int i = 0; i < nkinds; i++)
		appendStringInfo(&query, "%s SELECT '%s' AS kind, name FROM %s.%s"
						 " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace",
						 i > 0 ? " UNION ALL" : "", kinds[i]->noun, CHOREO_SCHEMA,
						 kinds[i]->table);
	appendStringInfoString(&query, ") AS definitions ORDER BY 1 DESC, 2");

	/* as the tables' owner: whoever drops a schema may see what is in it */
	BeginExtensionWrite(&write, true);
	if (SPI_execute_with_args(query.data, 1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the definitions of schema \"%s\"", schema);
	count = SPI_processed;
	if (count == 0)
	{
		EndExtensionWrite(&write);
		return;
	}

	initStringInfo(&detail);
	for (uint64 i = 0; i < count && i < MAX_REPORTED_DEPS; i++)
		appendStringInfo(&detail, "%s%s %s.%s depends on schema %s",
						 i > 0 ? "\n" : "",
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
						 quote_identifier(schema),
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2),
						 quote_identifier(schema));
	if (count > MAX_REPORTED_DEPS)
		appendStringInfo(&detail, "\nand %llu other objects (see server log for list)",
						 (unsigned long long) (count - MAX_REPORTED_DEPS));
	ereport(ERROR,
			(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
			 errmsg("cannot drop schema %s because other objects depend on it",
					quote_identifier(schema)),
			 errdetail("%s", detail.data),
			 errhint("Use DROP ... CASCADE to drop the dependent objects too.")));
}

PG_FUNCTION_INFO_V1(choreo_schema_drop_check);

/*
 * ddl_command_start trigger of DROP SCHEMA: without CASCADE, a schema that
 * holds definitions is not dropped.
 */
Datum
choreo_schema_drop_check(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = EventTriggerDataOf(fcinfo, "choreo_schema_drop_check");
	DropStmt   *stmt = (DropStmt *) trigdata->parsetree;
	ListCell   *lc;

	if (!IsA(stmt, DropStmt) || stmt->removeType != OBJECT_SCHEMA ||
		stmt->behavior == DROP_CASCADE || !ExtensionTablesExist())
		PG_RETURN_VOID();

	foreach(lc, stmt->objects)
	{
		const char *schema = strVal(lfirst(lc));
		Oid			namespace = get_namespace_oid(schema, true);

		/* an unknown schema: PostgreSQL says so (or IF EXISTS skips it) */
		if (OidIsValid(namespace))
			CheckSchemaEmpty(schema, namespace);
	}
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_schemas_dropped);

/*
 * sql_drop trigger: deletes the definitions of the schemas the command
 * dropped (their steps go with the pipelines).
 */
Datum
choreo_schemas_dropped(PG_FUNCTION_ARGS)
{
	ExtensionWrite write;
	uint64		count;
	int			nkinds;
	const DefinitionKind *const *kinds = DefinitionKinds(&nkinds);
	StringInfoData query;

	(void) EventTriggerDataOf(fcinfo, "choreo_schemas_dropped");
	/* DROP EXTENSION choreograph itself: nothing is left to clean */
	if (!ExtensionTablesExist())
		PG_RETURN_VOID();

	initStringInfo(&query);
	appendStringInfoString(&query,
						   "WITH dropped AS ("
						   "  SELECT objid, object_name"
						   "    FROM pg_catalog.pg_event_trigger_dropped_objects()"
						   "   WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass)");
	for (int i = 0; i < nkinds; i++)
		appendStringInfo(&query,
						 ", kind%d AS ("
						 "  DELETE FROM %s.%s"
						 "   WHERE namespace::pg_catalog.oid IN (SELECT objid FROM dropped)"
						 "  RETURNING '%s' AS kind, namespace::pg_catalog.oid AS namespace, name)",
						 i, CHOREO_SCHEMA, kinds[i]->table, kinds[i]->noun);
	appendStringInfoString(&query,
						   " SELECT d.kind OPERATOR(pg_catalog.||) ' '"
						   "        OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.object_name)"
						   "        OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(d.name)"
						   "   FROM (");
	for (int i = 0; i < nkinds; i++)
		appendStringInfo(&query, "%sSELECT * FROM kind%d", i > 0 ? " UNION ALL " : "", i);
	appendStringInfoString(&query,
						   ") AS d"
						   "   JOIN dropped s ON s.objid OPERATOR(pg_catalog.=) d.namespace"
						   "  ORDER BY 1");

	BeginExtensionWrite(&write, true);
	count = ExecuteExtensionQuery(query.data, 0, NULL, NULL, SPI_OK_SELECT);
	/* say what went, as PostgreSQL says what a drop cascades to */
	if (count == 1)
		ereport(NOTICE,
				(errmsg("drop cascades to %s",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1))));
	else if (count > 1)
	{
		StringInfoData detail;

		initStringInfo(&detail);
		for (uint64 i = 0; i < count; i++)
			appendStringInfo(&detail, "%sdrop cascades to %s", i > 0 ? "\n" : "",
							 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		ereport(NOTICE,
				(errmsg("drop cascades to %llu other objects", (unsigned long long) count),
				 errdetail("%s", detail.data)));
	}
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}
