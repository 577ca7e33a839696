/*
 * shared/extension_write.c
 *		SPI and privilege helpers every capability uses: the name argument
 *		of a choreo_* function, refusing work in security-restricted
 *		operations, finding the extension's tables, writing them on a
 *		caller's behalf as their owner (by query, or rows without one),
 *		and hash tables keyed by strings.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "shared/shared.h"

/*
 * Returns the OID of one of the extension's tables.  Errors (or returns
 * InvalidOid) when the extension is not installed in this database.
 */
Oid
ChoreoRelationOid(const char *relname, bool missing_ok)
{
	Oid			namespace = get_namespace_oid(CHOREO_SCHEMA, true);
	Oid			relid = InvalidOid;

	if (OidIsValid(namespace))
		relid = get_relname_relid(relname, namespace);
	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"choreograph\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION choreograph.")));
	return relid;
}

/* Returns a name argument as a C string; null and empty names are errors */
char *
NameArgument(FunctionCallInfo fcinfo, int argno, const char *what)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s name must not be null", what)));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s name must not be empty", what)));
	return name;
}

/* The role owning the extension's tables (the extension's owner) */
static Oid
ExtensionTablesOwner(void)
{
	Oid			relid = ChoreoRelationOid("pipelines", false);
	HeapTuple	tuple;
	Oid			owner;

	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * Switches to the extension tables' owner, with a safe search_path unless
 * the caller's statements cannot depend on it, and connects to SPI.  An error on the way is undone by the (sub)transaction
 * abort, which restores the user and the settings.
 */
void
BeginExtensionWrite(ExtensionWrite *write, bool pin_search_path)
{
	Oid			owner = ExtensionTablesOwner();

	write->caller = GetUserId();
	GetUserIdAndSecContext(&write->saved_userid, &write->saved_sec_context);
	SetUserIdAndSecContext(owner, write->saved_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	write->saved_nestlevel = 0;
	if (pin_search_path)
	{
		write->saved_nestlevel = NewGUCNestLevel();
		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
EndExtensionWrite(ExtensionWrite *write)
{
	SPI_finish();
	if (write->saved_nestlevel > 0)
		AtEOXact_GUC(true, write->saved_nestlevel);
	SetUserIdAndSecContext(write->saved_userid, write->saved_sec_context);
}

/*
 * A query's plan, prepared once and kept for the backend's life (its
 * callers keep it in a static pointer, asking only while it is NULL)
 */
SPIPlanPtr
PrepareKeptPlan(const char *query, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(query, nargs, argtypes);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\": %s", query,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/* Runs one statement between Begin/EndExtensionWrite; returns rows processed */
uint64
ExecuteExtensionQuery(const char *query, int nargs, Oid *argtypes,
					   Datum *args, int expected)
{
	int			rc = SPI_execute_with_args(query, nargs, argtypes, args,
										   NULL, false, 0);

	if (rc != expected)
		elog(ERROR, "could not execute \"%s\": %s", query,
			 SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * Runs a query that locks a row of the extension's tables (FOR UPDATE) and
 * returns, as its first column, the oid of the role the row belongs to (a
 * definition's owner, a hook's role); says whether there was such a row,
 * and whether the caller has that role's privileges, as only the role,
 * its members and superusers may change it.
 */
RowOwnership
LockRowOfRole(ExtensionWrite *write, const char *query, int nargs, Oid *argtypes,
			  Datum *args, Oid *role)
{
	bool		isnull;

	if (ExecuteExtensionQuery(query, nargs, argtypes, args, SPI_OK_SELECT) == 0)
		return ROW_ABSENT;
	*role = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	return has_privs_of_role(write->caller, *role) ? ROW_CALLERS : ROW_OTHERS;
}

/*
 * Inserts rows into one of the extension's tables without planning an
 * INSERT (DirectInsertRows), between Begin/EndExtensionWrite, with the
 * snapshot and command id an INSERT of the next command would have.  The
 * columns not named take their defaults.
 */
void
InsertExtensionRows(const char *table, AttrNumber *attnums, Oid *types, int ncolumns,
					int nrows, Datum **values, bool **nulls)
{
	Oid			relid = ChoreoRelationOid(table, false);
	int32	   *typmods = palloc(sizeof(int32) * ncolumns);
	DirectInsertColumns columns = {ncolumns, attnums, types, typmods};
	bool		written;

	for (int i = 0; i < ncolumns; i++)
		typmods[i] = -1;
	CommandCounterIncrement();
	PushCopiedSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	LockRelationOid(relid, RowExclusiveLock);
	written = DirectInsertRows(relid, &columns, nrows, values, nulls);
	PopActiveSnapshot();
	if (!written)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write into %s.%s", CHOREO_SCHEMA, table),
				 errdetail("The table has triggers, rules or row security of its own, which choreograph's tables must not have.")));
	CommandCounterIncrement();
	pfree(typmods);
}

/* Hash function for tables keyed by a string pointer (const char *) */
static uint32
StringPointerHash(const void *key, Size keysize)
{
	const char *str = *(const char *const *) key;

	return hash_bytes((const unsigned char *) str, strlen(str));
}

/* Match function for tables keyed by a string pointer */
static int
StringPointerMatch(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(const char *const *) key1, *(const char *const *) key2);
}

/*
 * A hash table in a memory context whose entries start with a string
 * pointer, the key: the string lives with the entry's owner, not in the
 * table.
 */
HTAB *
StringPointerHashCreate(const char *name, long nelem, Size entrysize,
						MemoryContext cxt)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(const char *);
	ctl.entrysize = entrysize;
	ctl.hash = StringPointerHash;
	ctl.match = StringPointerMatch;
	ctl.hcxt = cxt;
	return hash_create(name, nelem, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * Refuses to queue work inside a security-restricted operation (an index
 * expression during another role's CREATE INDEX, REFRESH MATERIALIZED
 * VIEW, VACUUM, ANALYZE): the work would run later, after the restriction
 * has been lifted, in the session of the role that started the operation.
 * PostgreSQL refuses deferred triggers there for the same reason.
 */
void
PreventInSecurityRestrictedOperation(const char *action)
{
	if (InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot %s within security-restricted operation", action)));
}
