/*
 * shared/node_tables.c
 *		The extension's tables as this node reads them, and the queries and
 *		kept plans that name them so.
 *
 * On a Citus cluster the definition tables are reference tables
 * (choreo_distribute()): one shard, a copy of it on every node, written by
 * Citus on all of them in one distributed transaction.  The definitions
 * are read from this node's copy, the shard itself, rather than through
 * Citus's planner: that costs no distributed planning, and it works where
 * Citus refuses a distributed query, inside a query Citus sent to a shard
 * (a run or a trigger pushed down to the node holding the row).  A query
 * names such a table with CHOREO_TABLE_HERE; without Citus, the name put
 * in is the table's own.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "shared/shared.h"

/*
 * The relation to read one of the extension's tables from on this node:
 * the table, or its copy here when it is a Citus reference table
 */
Oid
ChoreoTableToRead(const char *relname)
{
	Oid			relid = ChoreoRelationOid(relname, false);
	Oid			local_shard = CitusLocalShard(relid);

	return OidIsValid(local_shard) ? local_shard : relid;
}

/*
 * Reading a reference table's own shard is reading what Citus writes there
 * in this backend, by local execution, within the same transaction; with
 * local execution off, Citus writes it over a connection of its own, which
 * would wait for the row locks taken here (and this transaction for it)
 */
static void
RequireCitusLocalExecution(void)
{
	const char *local = GetConfigOption("citus.enable_local_execution", true, false);

	if (local != NULL && strcmp(local, "off") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("choreograph needs citus.enable_local_execution on a Citus cluster"),
				 errdetail("choreograph reads its definitions from this node's copy of them, which Citus writes in the same session only by local execution."),
				 errhint("SET citus.enable_local_execution = on.")));
}

/*
 * A query with each CHOREO_TABLE_HERE(name) in it replaced by the
 * qualified name of the relation to read that table from on this node,
 * in the current memory context
 */
char *
QueryForThisNode(const char *query)
{
	StringInfoData buf;
	const char *p = query;
	const char *marker;

	initStringInfo(&buf);
	while ((marker = strchr(p, '\001')) != NULL)
	{
		const char *end = strchr(marker + 1, '\001');
		char	   *name;
		Oid			relid;

		if (end == NULL)
			elog(ERROR, "unterminated table marker in query \"%s\"", query);
		appendBinaryStringInfo(&buf, p, marker - p);
		name = pnstrdup(marker + 1, end - marker - 1);
		relid = ChoreoTableToRead(name);
		if (relid != ChoreoRelationOid(name, false))
			RequireCitusLocalExecution();
		{
			char	   *relname = get_rel_name(relid);
			char	   *nspname = get_namespace_name(get_rel_namespace(relid));

			if (relname == NULL || nspname == NULL)
				elog(ERROR, "could not find the copy of table %s.%s on this node",
					 CHOREO_SCHEMA, name);
			appendStringInfoString(&buf, quote_qualified_identifier(nspname, relname));
		}
		pfree(name);
		p = end + 1;
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

/*
 * A kept plan of a query that may name tables with CHOREO_TABLE_HERE:
 * prepared on first use, and again whenever the relations it would read
 * on this node are no longer the ones it was prepared for (a table that
 * became a Citus reference table is read from its shard from then on;
 * planning the old text again would still read the table).  *prepared
 * keeps the text it was prepared from, in TopMemoryContext.
 */
SPIPlanPtr
KeptPlanForThisNode(const char *query, int nargs, Oid *argtypes, SPIPlanPtr *plan,
					char **prepared)
{
	char	   *text;

	/* without Citus, every table is read where it is: as prepared */
	if (*plan != NULL && (strchr(query, '\001') == NULL || !CitusIsInstalled()))
		return *plan;
	text = QueryForThisNode(query);
	if (*plan != NULL && strcmp(text, *prepared) == 0)
	{
		pfree(text);
		return *plan;
	}
	if (*plan != NULL)
	{
		SPI_freeplan(*plan);
		*plan = NULL;
	}
	*plan = PrepareKeptPlan(text, nargs, argtypes);
	if (*prepared != NULL)
		pfree(*prepared);
	*prepared = MemoryContextStrdup(TopMemoryContext, text);
	pfree(text);
	return *plan;
}
