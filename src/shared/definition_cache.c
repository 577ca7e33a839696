/*
 * shared/definition_cache.c
 *		The per-backend cache of one kind of definition (pipelines,
 *		buffers), kept until a change to its tables invalidates it, and
 *		the cache of names resolved to definitions of the kind.
 *
 * Definitions are read from the extension's tables once per backend, so
 * that a run or a fire reads no table.  A change to those tables registers
 * a relcache invalidation of the changed table (a statement trigger does
 * it, so direct DML and pg_restore count too), which PostgreSQL delivers to
 * this backend at its next command, and to every other backend when the
 * change commits, and undoes on rollback.  One relcache callback serves
 * every cache: PostgreSQL allows few of them per backend, for all
 * extensions together.
 *
 * An invalidation processed while a definition is being read may describe
 * a change the read did not see, so a read is repeated until none arrives
 * meanwhile.  A definition lives in a memory context of its own, a child
 * of the caller's while it is read (an error half-way leaves nothing
 * behind) and of the cache's once it is kept.  A capability whose
 * definitions may be in use when they are invalidated (a pipeline being
 * run) frees them itself, through its forget method.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#include "shared/shared.h"

#define MAX_DEFINITION_CACHES 8
#define MAX_WATCHED_TABLES 4

typedef struct DefinitionCacheEntry
{
	DefinitionId id;			/* hash key */
	void	   *definition;
	MemoryContext cxt;			/* holds it */
} DefinitionCacheEntry;

struct DefinitionCache
{
	const DefinitionCacheMethods *methods;
	MemoryContext cxt;
	HTAB	   *hash;
	NameCache  *names;			/* names as written, resolved */
	Oid			relids[MAX_WATCHED_TABLES]; /* its tables, once read */
	uint64		generation;		/* bumped by every change it may have missed */
	bool		loading;		/* a definition is being read */
};

static DefinitionCache *caches[MAX_DEFINITION_CACHES];
static int	ncaches = 0;

/* Relcache callback: a definition table changed (or everything did) */
static void
DefinitionTablesChanged(Datum arg, Oid relid)
{
	for (int i = 0; i < ncaches; i++)
	{
		DefinitionCache *cache = caches[i];
		bool		watched = !OidIsValid(relid);

		for (int t = 0; !watched && t < MAX_WATCHED_TABLES; t++)
			watched = cache->relids[t] == relid && OidIsValid(relid);
		if (watched)
		{
			DefinitionCacheInvalidate(cache);
			memset(cache->relids, 0, sizeof(cache->relids));
		}
		else if (cache->loading)
			cache->generation++;	/* its tables may not be known yet: read again */
	}
}

/* Makes the cache of a kind of definition; called from _PG_init */
DefinitionCache *
DefinitionCacheCreate(const DefinitionCacheMethods *methods)
{
	DefinitionCache *cache;
	HASHCTL		ctl;
	int			ntables = 0;

	while (methods->tables[ntables] != NULL)
		ntables++;
	if (ncaches >= MAX_DEFINITION_CACHES || ntables > MAX_WATCHED_TABLES)
		elog(ERROR, "too many choreograph definition caches or tables");

	cache = MemoryContextAllocZero(TopMemoryContext, sizeof(DefinitionCache));
	cache->methods = methods;
	cache->cxt = AllocSetContextCreate(TopMemoryContext, "choreograph definitions",
									   ALLOCSET_DEFAULT_SIZES);
	MemoryContextSetIdentifier(cache->cxt, methods->kind->table);
	ctl.keysize = sizeof(DefinitionId);
	ctl.entrysize = sizeof(DefinitionCacheEntry);
	ctl.hcxt = cache->cxt;
	cache->hash = hash_create("choreograph definitions", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	cache->names = NameCacheCreate(methods->kind, cache->cxt);
	cache->generation = 1;

	if (ncaches == 0)
		ListenForRelationChanges(DefinitionTablesChanged, (Datum) 0);
	caches[ncaches++] = cache;
	return cache;
}

/* Forgets one entry's definition (the hash entry is the caller's to remove) */
static void
ForgetEntry(DefinitionCache *cache, DefinitionCacheEntry *entry)
{
	if (cache->methods->forget != NULL)
		cache->methods->forget(entry->definition, entry->cxt);
	else
		MemoryContextDelete(entry->cxt);
}

/* Forgets every cached definition, and what names resolved to */
void
DefinitionCacheInvalidate(DefinitionCache *cache)
{
	HASH_SEQ_STATUS status;
	DefinitionCacheEntry *entry;

	cache->generation++;
	/* a definition created or dropped may change what a name refers to */
	NameCacheReset(cache->names);
	hash_seq_init(&status, cache->hash);
	while ((entry = hash_seq_search(&status)) != NULL)
	{
		ForgetEntry(cache, entry);
		hash_search(cache->hash, &entry->id, HASH_REMOVE, NULL);
	}
}

/*
 * Forgets the definitions for which uses(definition, arg) is true (those
 * calling a function that changed, say); a change the capability saw
 * elsewhere also counts as one that a definition being read may have
 * missed.
 */
void
DefinitionCacheForgetIf(DefinitionCache *cache, bool (*uses) (void *definition, void *arg),
						void *arg)
{
	HASH_SEQ_STATUS status;
	DefinitionCacheEntry *entry;

	cache->generation++;
	hash_seq_init(&status, cache->hash);
	while ((entry = hash_seq_search(&status)) != NULL)
		if (uses(entry->definition, arg))
		{
			ForgetEntry(cache, entry);
			hash_search(cache->hash, &entry->id, HASH_REMOVE, NULL);
		}
}

/*
 * A number that changes whenever a definition of the cache may have
 * changed, in this transaction or by one that committed: what was made
 * from a definition is checked again when the number moved on.
 */
uint64
DefinitionCacheGeneration(DefinitionCache *cache)
{
	return cache->generation;
}

/* The cache of the kind's names, as written, resolved */
NameCache *
DefinitionCacheNames(DefinitionCache *cache)
{
	return cache->names;
}

/*
 * The definition of the given identity, read on first use; NULL when there
 * is none.  Valid until the next invalidation is processed (at the next
 * command, or the next read of a definition).
 */
void *
DefinitionCacheLookup(DefinitionCache *cache, const DefinitionId *resolved)
{
	DefinitionCacheEntry *entry;
	DefinitionId id = *resolved;	/* reading (invalidations) may change *resolved */
	MemoryContext cxt;
	void	   *volatile definition;

	entry = hash_search(cache->hash, &id, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->definition;

	for (;;)
	{
		uint64		before = cache->generation;

		cxt = AllocSetContextCreate(CurrentMemoryContext, "choreograph definition",
									ALLOCSET_SMALL_SIZES);
		definition = NULL;
		cache->loading = true;
		PG_TRY();
		{
			definition = cache->methods->load(&id, cxt);
			/* which tables to watch, now that they are known to be there */
			for (int t = 0; definition != NULL && cache->methods->tables[t] != NULL; t++)
				cache->relids[t] = ChoreoTableToRead(cache->methods->tables[t]);
		}
		PG_FINALLY();
		{
			cache->loading = false;
		}
		PG_END_TRY();
		if (definition == NULL)
		{
			MemoryContextDelete(cxt);
			return NULL;
		}
		if (cache->generation == before)
			break;
		MemoryContextDelete(cxt);
		CHECK_FOR_INTERRUPTS();
	}

	MemoryContextSetParent(cxt, cache->cxt);
	entry = hash_search(cache->hash, &id, HASH_ENTER, NULL);
	entry->definition = definition;
	entry->cxt = cxt;
	return definition;
}

PG_FUNCTION_INFO_V1(choreo_definitions_changed);

/*
 * Statement trigger on the definition tables: queues a relcache
 * invalidation of the table, which PostgreSQL applies here at the next
 * command, everywhere else at commit, and undoes on rollback.
 */
Datum
choreo_definitions_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("choreo_definitions_changed() was not called by the trigger manager")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	PG_RETURN_POINTER(NULL);
}
