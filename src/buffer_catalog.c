/*
 * buffer_catalog.c
 *		Buffer definitions: choreo_create_buffer, choreo_drop_buffer, and
 *		the per-backend cache of definitions that firing consults.
 *
 * A definition is a row of choreograph.buffers (name, target table,
 * max_batch, owner).  Like pipeline definitions, the rows are readable by
 * everyone and written, after an ownership check, as the tables' owner;
 * the statement trigger on the table invalidates every backend's cache.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "choreograph.h"

#define MAX_BATCH_LIMIT 100000

typedef struct BufferCacheEntry
{
	const char *name;			/* hash key, points to def.name */
	BufferDef	def;
} BufferCacheEntry;

static HTAB *buffer_cache = NULL;
static MemoryContext buffer_cache_cxt = NULL;
static Oid	buffers_relid = InvalidOid;
static uint64 buffer_invalidations = 0;

/* Forgets every cached definition */
static void
BufferCacheReset(void)
{
	buffer_invalidations++;
	if (buffer_cache_cxt != NULL)
	{
		MemoryContextDelete(buffer_cache_cxt);
		buffer_cache_cxt = NULL;
		buffer_cache = NULL;
	}
}

/* Relcache callback: the buffers table changed (or everything did) */
static void
BuffersChanged(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == buffers_relid)
	{
		BufferCacheReset();
		buffers_relid = InvalidOid;
	}
	/* a target table changed: its insert plans name its columns */
	InsertPlansInvalidate(relid);
	PendingBuffersTargetChanged(relid);
}

/* Registers the invalidation callback; called from _PG_init */
void
BufferCacheInit(void)
{
	CacheRegisterRelcacheCallback(BuffersChanged, (Datum) 0);
}

/*
 * A number that changes whenever a buffer definition may have changed, in
 * this transaction or by one that committed: pending state made for a
 * definition is checked again when it moves on.
 */
uint64
BufferDefinitionsGeneration(void)
{
	return buffer_invalidations;
}

/* Reads a definition from the table; false when there is none */
static bool
LoadBufferDef(const char *name, BufferDef *def)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		found;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT target::pg_catalog.oid, max_batch, owner::pg_catalog.oid"
							  "  FROM " CHOREO_SCHEMA ".buffers"
							  " WHERE name OPERATOR(pg_catalog.=) $1",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the definition of buffer \"%s\"", name);
	found = SPI_processed == 1;
	if (found)
	{
		HeapTuple	row = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		def->target = DatumGetObjectId(SPI_getbinval(row, desc, 1, &isnull));
		def->max_batch = DatumGetInt32(SPI_getbinval(row, desc, 2, &isnull));
		def->owner = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
	}
	buffers_relid = ChoreoRelationOid("buffers", false);
	SPI_finish();
	return found;
}

/*
 * Looks a buffer up by name, loading it on first use; raises 42704 when
 * there is no such buffer.  The definition is copied out: the caller's
 * copy is not affected by later invalidations.
 */
void
BufferLookup(const char *name, BufferDef *def)
{
	BufferCacheEntry *entry = NULL;

	if (buffer_cache != NULL)
		entry = hash_search(buffer_cache, &name, HASH_FIND, NULL);
	if (entry == NULL)
	{
		BufferDef	loaded;
		uint64		before;

		/* a change seen while loading may not be in what was loaded */
		do
		{
			before = buffer_invalidations;
			if (!LoadBufferDef(name, &loaded))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("buffer \"%s\" does not exist", name)));
		} while (before != buffer_invalidations);

		if (buffer_cache == NULL)
		{
			buffer_cache_cxt = AllocSetContextCreate(TopMemoryContext,
													 "choreograph buffer cache",
													 ALLOCSET_SMALL_SIZES);
			buffer_cache = StringPointerHashCreate("choreograph buffer cache", 16,
												   sizeof(BufferCacheEntry), buffer_cache_cxt);
		}
		loaded.name = MemoryContextStrdup(buffer_cache_cxt, name);
		entry = hash_search(buffer_cache, &loaded.name, HASH_ENTER, NULL);
		entry->name = loaded.name;
		entry->def = loaded;
	}
	*def = entry->def;
	def->name = NULL;			/* the cache's copy may go away */
}

/* Locks a buffer's row and checks that the caller may change it */
static void
LockOwnedBuffer(ExtensionWrite *write, const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Oid			owner;

	if (ExecuteExtensionQuery("SELECT owner::pg_catalog.oid FROM " CHOREO_SCHEMA ".buffers"
							  " WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
							  1, argtypes, args, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("buffer \"%s\" does not exist", name)));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(write->caller, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of buffer \"%s\"", name)));
}

PG_FUNCTION_INFO_V1(choreo_create_buffer);

/* Defines a buffer writing into a table, owned by the caller */
Datum
choreo_create_buffer(PG_FUNCTION_ARGS)
{
	char	   *name = NameArgument(fcinfo, 0, "buffer");
	Oid			target;
	int32		max_batch;
	char		relkind;
	ExtensionWrite write;
	Oid			argtypes[4] = {TEXTOID, OIDOID, INT4OID, OIDOID};
	Datum		args[4];

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target table of buffer \"%s\" must not be null", name)));
	target = PG_GETARG_OID(1);
	relkind = get_rel_relkind(target);
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

	BeginExtensionWrite(&write, true);
	args[0] = CStringGetTextDatum(name);
	args[1] = ObjectIdGetDatum(target);
	args[2] = Int32GetDatum(max_batch);
	args[3] = ObjectIdGetDatum(write.caller);
	if (ExecuteExtensionQuery("INSERT INTO " CHOREO_SCHEMA ".buffers (name, target, max_batch, owner)"
							  " VALUES ($1, $2::pg_catalog.regclass, $3, $4::pg_catalog.regrole)"
							  " ON CONFLICT (name) DO NOTHING",
							  4, argtypes, args, SPI_OK_INSERT) == 0)
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
	char	   *name = NameArgument(fcinfo, 0, "buffer");
	ExtensionWrite write;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	BeginExtensionWrite(&write, true);
	LockOwnedBuffer(&write, name);
	args[0] = CStringGetTextDatum(name);
	ExecuteExtensionQuery("DELETE FROM " CHOREO_SCHEMA ".buffers"
						  " WHERE name OPERATOR(pg_catalog.=) $1",
						  1, argtypes, args, SPI_OK_DELETE);
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}
