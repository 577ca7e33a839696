/*
 * buffers/buffer_catalog.c
 *		Buffer definitions: choreo_create_buffer, choreo_drop_buffer, and
 *		the per-backend cache of definitions that firing consults.
 *
 * A definition is a row of choreograph.buffers (schema, name, target
 * table, max_batch, owner).  Like pipeline definitions, the rows are
 * readable by everyone and written, after an ownership check, as the
 * tables' owner; a buffer's name is resolved (and a new one's schema
 * chosen, which needs CREATE on it) as names.c says.  The statement trigger
 * on the table invalidates every backend's cache.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "buffers/buffers.h"

#define MAX_BATCH_LIMIT 100000

const DefinitionKind BufferKind = {"buffer", "buffers"};

static DefinitionCache *buffer_cache = NULL;

static HeapTuple BufferRowAllowed(Oid user, TriggerData *trigdata);

/*
 * Reads a definition from the table into cxt (the definition cache's load
 * method); NULL when there is none
 */
static void *
LoadBufferDef(const DefinitionId *id, MemoryContext cxt)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2] = {ObjectIdGetDatum(id->namespace),
	CStringGetTextDatum(NameStr(id->name))};
	BufferDef  *def = NULL;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* this node's copy of the table (shared/node_tables.c) */
	if (SPI_execute_with_args(QueryForThisNode("SELECT target::pg_catalog.oid, max_batch, owner::pg_catalog.oid"
											   "  FROM " CHOREO_TABLE_HERE("buffers")
											   " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
											   "   AND name OPERATOR(pg_catalog.=) $2"),
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the definition of buffer \"%s\"", NameStr(id->name));
	if (SPI_processed == 1)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		def = MemoryContextAlloc(cxt, sizeof(BufferDef));
		def->id = *id;
		def->target = DatumGetObjectId(SPI_getbinval(row, desc, 1, &isnull));
		def->max_batch = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
		def->owner = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
	}
	SPI_finish();
	return def;
}

static const char *const buffer_tables[] = {"buffers", NULL};

static const DefinitionCacheMethods buffer_cache_methods = {
	.kind = &BufferKind,
	.tables = buffer_tables,
	.load = LoadBufferDef,
};

/* Sets up the cache and the rows' guard; called from _PG_init */
void
BufferCacheInit(void)
{
	DefinitionKindRegister(&BufferKind);
	buffer_cache = DefinitionCacheCreate(&buffer_cache_methods);
	RowGuardRegister("buffers", BufferRowAllowed);
}

/*
 * A number that changes whenever a buffer definition may have changed, in
 * this transaction or by one that committed: pending state made for a
 * definition is checked again when it moves on.
 */
uint64
BufferDefinitionsGeneration(void)
{
	return DefinitionCacheGeneration(buffer_cache);
}

/*
 * Looks a buffer up by its identity, loading it on first use; raises 42704
 * when there is no such buffer (it was dropped).
 */
void
BufferLookupId(const DefinitionId *id, BufferDef *def)
{
	BufferDef  *cached = DefinitionCacheLookup(buffer_cache, id);

	if (cached == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("buffer \"%s\" does not exist", NameStr(id->name))));
	*def = *cached;
}

/*
 * The buffer a name (as written, len bytes) refers to for the current role
 * and search path; raises when there is none.  Valid until the next call.
 */
const DefinitionId *
BufferResolve(const char *written, int len)
{
	return NameCacheResolve(DefinitionCacheNames(buffer_cache), written, len);
}

/* The same, as the name's entry in the cache of resolved names */
NameRef *
BufferNameLookup(const char *written, int len)
{
	return NameCacheLookup(DefinitionCacheNames(buffer_cache), written, len);
}

/*
 * Checks that a buffer can write into a table: a plain or partitioned
 * table, not a temporary one.
 */
void
ValidateBufferTarget(const char *name, Oid target)
{
	char		relkind = get_rel_relkind(target);

	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", target)));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(target)),
				 errdetail("A buffer writes into a table.")));
	if (get_rel_persistence(target) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("buffer \"%s\" cannot write into temporary table \"%s\"",
						name, get_rel_name(target)),
				 errdetail("A buffer is defined for every session and outlives this one; a temporary table does not.")));
}

/*
 * A buffers row written without choreo_create_buffer (pg_restore, a role's
 * own INSERT; see shared/row_guard.c): the inserter's, in a schema where
 * it may create, into a table a buffer can write into
 */
static HeapTuple
BufferRowAllowed(Oid user, TriggerData *trigdata)
{
	Datum		target;
	Datum		name;

	if (!RowGuardMayWriteFor(user, trigdata, "owner") || !RowGuardMayCreateIn(user, trigdata))
		return NULL;
	if (RowGuardValue(trigdata, "target", &target))
		ValidateBufferTarget(RowGuardValue(trigdata, "name", &name) ?
							 TextDatumGetCString(name) : "", DatumGetObjectId(target));
	return trigdata->tg_trigtuple;
}

PG_FUNCTION_INFO_V1(choreo_create_buffer);

/* Defines a buffer writing into a table, owned by the caller */
Datum
choreo_create_buffer(PG_FUNCTION_ARGS)
{
	char	   *written = NameArgument(fcinfo, 0, "buffer");
	DefinitionName parsed;
	DefinitionId id;
	const char *name;
	Oid			target;
	int32		max_batch;
	ExtensionWrite write;
	Oid			argtypes[5] = {OIDOID, TEXTOID, OIDOID, INT4OID, OIDOID};
	Datum		args[5];

	ParseDefinitionName(&BufferKind, written, &parsed);
	name = parsed.display;
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target table of buffer \"%s\" must not be null", name)));
	target = PG_GETARG_OID(1);
	ValidateBufferTarget(name, target);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_batch of buffer \"%s\" must not be null", name)));
	max_batch = PG_GETARG_INT32(2);
	if (max_batch < 1 || max_batch > MAX_BATCH_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_batch %d is out of range", max_batch),
				 errdetail("A buffer writes between 1 and %d rows per statement.",
						   MAX_BATCH_LIMIT)));

	/* as the caller, with the caller's search_path: needs CREATE there */
	DefinitionCreationId(&BufferKind, &parsed, &id);

	BeginExtensionWrite(&write, true);
	args[0] = ObjectIdGetDatum(id.namespace);
	args[1] = CStringGetTextDatum(NameStr(id.name));
	args[2] = ObjectIdGetDatum(target);
	args[3] = Int32GetDatum(max_batch);
	args[4] = ObjectIdGetDatum(write.caller);
	if (ExecuteExtensionQuery("INSERT INTO " CHOREO_SCHEMA ".buffers (namespace, name, target, max_batch, owner)"
							  " VALUES ($1::pg_catalog.regnamespace, $2, $3::pg_catalog.regclass, $4,"
							  "         $5::pg_catalog.regrole)"
							  " ON CONFLICT (namespace, name) DO NOTHING",
							  5, argtypes, args, SPI_OK_INSERT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("buffer \"%s\" already exists", name)));
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_drop_buffer);

/*
 * Drops a buffer's definition.  Items already fired into it in this
 * transaction are still written.
 */
Datum
choreo_drop_buffer(PG_FUNCTION_ARGS)
{
	DefinitionName name;
	DefinitionId id;
	ExtensionWrite write;

	BeginDefinitionChange(&BufferKind, NameArgument(fcinfo, 0, "buffer"), &write, &name, &id);
	DeleteDefinition(&BufferKind, &id);
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}
