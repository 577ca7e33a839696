/*
 * streams/stream_sink.c
 *		The stream sink (buffers/sink.h): the flush of choreo_emit's pending
 *		items, which numbers each entity's events and writes them; the
 *		lock of an entity and its head; and waking the workers at commit.
 *
 * Why the numbers are gap-free and increase in commit order, while
 * emitters of one entity stay concurrent until their pre-commit:
 *
 * Emitting only keeps the item in the transaction's memory; nothing is
 * locked.  The flush (at pre-commit, or earlier for a full batch, a
 * choreo_flush or a choreo_emit_and_wait) locks each entity it writes
 * with a transaction-level lock of its own (an advisory lock of a class no
 * SQL function takes), in the order of the entities' hashes so that two
 * flushes cannot wait for each other, and holds it to the end of the
 * transaction (a prepared transaction holds it until COMMIT PREPARED).
 * Having the lock, it reads the entity's head with a snapshot taken after
 * the lock was granted: every transaction that numbered events of the
 * entity before has ended, so the head read is the last committed seq,
 * whatever the transaction's isolation level.  It numbers its events on
 * from there.  Until this transaction ends nobody else can number events
 * of the entity, so a number given is never seen out of commit order: a
 * reader that has seen seq N has seen every committed seq below it.
 * A rollback (of the transaction, or of a savepoint, whose locks go with
 * it) takes the numbers back with the rows, and the pending state writes
 * those items again later, numbered afresh: no gap.
 *
 * The head is read once per entity and transaction: while the lock is
 * held it can only move by this transaction's own writes, which the cache
 * below follows.  A savepoint's rollback empties the cache (its locks may
 * have gone with it).
 *
 * Each entity first written in a transaction, in a stream that has
 * activities the workers run, also gets a row in stream_news, which the workers look through to find what has work
 * (activity_source.c): what they read is what is new, never all entities.
 * They are woken at commit (activity_announce.c).
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "streams/streams.h"

/* the pending state's key: streams are not definitions, they have no schema */
const DefinitionKind StreamKind = {"stream", "events"};

/* An entity this transaction holds the lock of */
typedef struct LockedEntity
{
	char	   *key;			/* hash key: "<length of stream>:<stream><entity>" */
	int64		id;				/* its row of stream_entities */
	int64		head;			/* its last seq, as this transaction sees it */
} LockedEntity;

static HTAB *locked_entities = NULL;	/* in TopTransactionContext */

/* Whether a stream has activities the workers run (a definition cache entry) */
typedef struct StreamWatch
{
	bool		watched;
} StreamWatch;

static DefinitionCache *watch_cache = NULL;

/* What a flush knows of one entity it writes */
typedef struct FlushEntity
{
	uint64		hash;
	const char *entity;			/* points into an item */
	int			len;
	LockedEntity *locked;
} FlushEntity;

static char *
EntityKey(const char *stream, const char *entity, int entity_len)
{
	return psprintf("%zu:%s%.*s", strlen(stream), stream, entity_len, entity);
}

static uint64
EntityHash(const char *stream, const char *entity, int len)
{
	return ChoreoLockKey(stream, entity, len);
}

/*
 * Reads whether a stream has activities that are not manual (the
 * definition cache's load method): only then do its entities need news
 */
static void *
LoadStreamWatch(const DefinitionId *id, MemoryContext cxt)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(NameStr(id->name))};
	StreamWatch *watch;
	bool		isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* this node's copy of the table (shared/node_tables.c) */
	if (SPI_execute_with_args(QueryForThisNode("SELECT EXISTS (SELECT FROM " CHOREO_TABLE_HERE("activities")
											   " WHERE stream OPERATOR(pg_catalog.=) $1"
											   "   AND engine OPERATOR(pg_catalog.<>) 'manual')"),
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the activities of stream \"%s\"", NameStr(id->name));
	watch = MemoryContextAlloc(cxt, sizeof(StreamWatch));
	watch->watched = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
												&isnull));
	SPI_finish();
	return watch;
}

static const char *const watch_tables[] = {"activities", NULL};

static const DefinitionCacheMethods watch_cache_methods = {
	.kind = &StreamKind,
	.tables = watch_tables,
	.load = LoadStreamWatch,
	.forget = NULL,
};

/*
 * Whether the entities this transaction writes in a stream need news
 * rows: whether the stream has activities the workers run.  A flush holds
 * the stream's lock in share mode to the end of its transaction, and
 * choreo_create_activity takes it exclusively (StreamWatchBegins) before
 * it gives the stream's entities their cursors: a flush that saw no
 * activity has committed by then, and its entities are seen; one that
 * comes after sees the activity.
 */
static bool
StreamWatched(const char *stream)
{
	DefinitionId id;
	StreamWatch *watch;

	(void) ChoreoLockAcquire(CHOREO_LOCK_STREAM, ChoreoLockKey(stream, NULL, 0), ShareLock, true);
	/* what committed before the lock was granted is seen */
	AcceptInvalidationMessages();
	memset(&id, 0, sizeof(id));
	namestrcpy(&id.name, stream);
	watch = DefinitionCacheLookup(watch_cache, &id);
	return watch != NULL && watch->watched;
}

/*
 * Waits until no transaction that flushed events into the stream without
 * news is running, and keeps new ones from flushing until this one ends
 * (choreo_create_activity)
 */
void
StreamWatchBegins(const char *stream)
{
	(void) ChoreoLockAcquire(CHOREO_LOCK_STREAM, ChoreoLockKey(stream, NULL, 0), ExclusiveLock,
							 true);
}

/*
 * Reads (with a snapshot taken now, not the transaction's) an entity's id
 * and head; false when it has no row
 */
static bool
ReadEntity(const char *stream, const char *entity, int len, int64 *id, int64 *head)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[2];
	bool		isnull;
	int			rc;

	if (plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};

		plan = PrepareKeptPlan("SELECT s.id, COALESCE((SELECT e.seq FROM " CHOREO_SCHEMA ".events e"
							   "  WHERE e.entity_id OPERATOR(pg_catalog.=) s.id"
							   "  ORDER BY e.seq DESC LIMIT 1), 0)"
							   "  FROM " CHOREO_SCHEMA ".stream_entities s"
							   " WHERE s.stream OPERATOR(pg_catalog.=) $1"
							   "   AND s.entity OPERATOR(pg_catalog.=) $2",
							   2, argtypes);
	}
	args[0] = CStringGetTextDatum(stream);
	args[1] = PointerGetDatum(cstring_to_text_with_len(entity, len));
	CommandCounterIncrement();
	rc = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							  true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read an entity's head: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return false;
	*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*head = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return true;
}

/* Makes an entity's row; the caller holds its lock, so none can be racing */
static int64
CreateEntity(const char *stream, const char *entity, int len)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[2];
	bool		isnull;
	int			rc;

	if (plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};

		plan = PrepareKeptPlan("INSERT INTO " CHOREO_SCHEMA ".stream_entities (stream, entity)"
							   " VALUES ($1, $2) RETURNING id", 2, argtypes);
	}
	args[0] = CStringGetTextDatum(stream);
	args[1] = PointerGetDatum(cstring_to_text_with_len(entity, len));
	rc = SPI_execute_plan(plan, args, NULL, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not insert an entity: %s", SPI_result_code_string(rc));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Locks an entity for this transaction (if it does not hold it yet) and
 * returns what it knows of it, creating its row if needed.  Between
 * BeginExtensionWrite and EndExtensionWrite.
 */
static LockedEntity *
LockEntity(const char *stream, const char *entity, int len, uint64 hash, bool *first)
{
	char	   *key = EntityKey(stream, entity, len);
	LockedEntity *locked;
	bool		found;

	if (locked_entities == NULL)
		locked_entities = StringPointerHashCreate("choreograph locked entities", 64,
												  sizeof(LockedEntity), TopTransactionContext);
	locked = hash_search(locked_entities, &key, HASH_FIND, NULL);
	*first = (locked == NULL);
	if (locked != NULL)
		return locked;

	(void) ChoreoLockAcquire(CHOREO_LOCK_ENTITY, hash, ExclusiveLock, true);
	{
		int64		id;
		int64		head;

		if (!ReadEntity(stream, entity, len, &id, &head))
		{
			id = CreateEntity(stream, entity, len);
			head = 0;
		}
		key = MemoryContextStrdup(TopTransactionContext, key);
		locked = hash_search(locked_entities, &key, HASH_ENTER, &found);
		locked->key = key;
		locked->id = id;
		locked->head = head;
	}
	return locked;
}

/*
 * The id of an entity's row (choreo_start_activity), made if create and
 * there is none (under the entity's lock, so never twice); 0 when there
 * is none and create is false.  Between BeginExtensionWrite and
 * EndExtensionWrite.
 */
int64
StreamEntityLock(const char *stream, const char *entity, bool create)
{
	int			len = strlen(entity);
	int64		id;
	int64		head;
	bool		first;

	if (ReadEntity(stream, entity, len, &id, &head))
		return id;
	if (!create)
		return 0;
	return LockEntity(stream, entity, len, EntityHash(stream, entity, len), &first)->id;
}

/* The entity and payload of a stream's items: text and jsonb */
static void
StreamSinkOpen(PendingBuffer *buffer)
{
	static const char *const names[2] = {"entity", "payload"};
	static const Oid types[2] = {TEXTOID, JSONBOID};

	buffer->target_name = psprintf("stream \"%s\"", buffer->name);
	BufferDescribeValues(buffer, 2, names, types);
	/* as an INSERT into the events table would, until the end */
	LockRelationOid(buffer->target, RowExclusiveLock);
}

static bool
StreamSinkColumnsUnchanged(PendingBuffer *buffer)
{
	return true;
}

static void
StreamSinkCheckWritable(PendingBuffer *buffer, List *sets)
{
}

static int
CompareFlushEntities(const void *a, const void *b)
{
	const FlushEntity *x = a;
	const FlushEntity *y = b;
	int			c;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	c = memcmp(x->entity, y->entity, Min(x->len, y->len));
	if (c != 0)
		return c;
	return x->len - y->len;
}

/*
 * Numbers a flush's events and writes them: the entities in hash order,
 * each locked (once per transaction), then every event on from its head.
 * Returns the seq of the last item.
 */
static int64
WriteEvents(PendingBuffer *buffer, BufferItem **items, int nitems)
{
	FlushEntity *entities = palloc(sizeof(FlushEntity) * nitems);
	int		   *entity_of = palloc(sizeof(int) * nitems);
	int			nentities = 0;
	int			nnews = 0;
	int64	   *news = palloc(sizeof(int64) * nitems);
	HTAB	   *seen;
	ExtensionWrite write;
	Datum	  **values = palloc(sizeof(Datum *) * nitems);
	bool	  **nulls = palloc(sizeof(bool *) * nitems);
	Datum	   *rows = palloc(sizeof(Datum) * nitems * 4);
	bool	   *rownulls = palloc0(sizeof(bool) * nitems * 4);
	Datum		created_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	int64		last_seq = 0;
	bool		watched;

	PreventCommandIfReadOnly("choreo_emit");
	watched = StreamWatched(buffer->name);

	/* the entities of the flush, each once */
	seen = StringPointerHashCreate("choreograph flush entities", Max(nitems / 4, 16),
								   sizeof(char *) + sizeof(int), CurrentMemoryContext);
	for (int i = 0; i < nitems; i++)
	{
		text	   *entity = DatumGetTextPP(items[i]->values[0]);
		const char *data = VARDATA_ANY(entity);
		int			len = VARSIZE_ANY_EXHDR(entity);
		char	   *key = pnstrdup(data, len);
		bool		found;
		char	  **entry;

		entry = hash_search(seen, &key, HASH_ENTER, &found);
		if (!found)
		{
			*entry = key;
			*(int *) (entry + 1) = nentities;
			entities[nentities].entity = key;
			entities[nentities].len = len;
			entities[nentities].hash = EntityHash(buffer->name, data, len);
			entities[nentities].locked = NULL;
			nentities++;
		}
		else
			pfree(key);
		entity_of[i] = *(int *) (entry + 1);
	}

	/* locked in hash order: two flushes never wait for each other in a circle */
	{
		int		   *order = palloc(sizeof(int) * nentities);
		FlushEntity *sorted = palloc(sizeof(FlushEntity) * nentities);

		memcpy(sorted, entities, sizeof(FlushEntity) * nentities);
		qsort(sorted, nentities, sizeof(FlushEntity), CompareFlushEntities);
		/* every name below is qualified: no search_path to pin (it costs a flush) */
		BeginExtensionWrite(&write, false);
		for (int i = 0; i < nentities; i++)
		{
			bool		first;
			char	  **entry;
			char	   *key = (char *) sorted[i].entity;

			CHECK_FOR_INTERRUPTS();
			entry = hash_search(seen, &key, HASH_FIND, NULL);
			order[i] = *(int *) (entry + 1);
			entities[order[i]].locked = LockEntity(buffer->name, sorted[i].entity,
												   sorted[i].len, sorted[i].hash, &first);
			if (first && watched)
				news[nnews++] = entities[order[i]].locked->id;
		}
	}

	/* numbered in firing order */
	for (int i = 0; i < nitems; i++)
	{
		LockedEntity *locked = entities[entity_of[i]].locked;
		Datum	   *row = &rows[i * 4];
		bool	   *rownull = &rownulls[i * 4];

		row[0] = Int64GetDatum(locked->id);
		row[1] = Int64GetDatum(++locked->head);
		row[2] = items[i]->values[1];
		rownull[2] = items[i]->nulls[1];
		row[3] = created_at;
		values[i] = row;
		nulls[i] = rownull;
		last_seq = locked->head;
	}
	{
		AttrNumber	attnums[4] = {1, 2, 3, 4};
		Oid			types[4] = {INT8OID, INT8OID, JSONBOID, TIMESTAMPTZOID};

		InsertExtensionRows("events", attnums, types, 4, nitems, values, nulls);
	}
	if (nnews > 0)
	{
		AttrNumber	attnums[1] = {1};
		Oid			types[1] = {INT8OID};

		for (int i = 0; i < nnews; i++)
		{
			rows[i] = Int64GetDatum(news[i]);
			rownulls[i] = false;
			values[i] = &rows[i];
			nulls[i] = &rownulls[i];
		}
		InsertExtensionRows("stream_news", attnums, types, 1, nnews, values, nulls);
	}
	EndExtensionWrite(&write);
	/* the workers look for the activities of the entities at commit */
	if (nnews > 0)
		CursorsAnnounceAtCommit(0);
	return last_seq;
}

static void
StreamSinkWrite(PendingBuffer *buffer, BufferItem **items, int nitems)
{
	(void) WriteEvents(buffer, items, nitems);
}

/* choreo_emit_and_wait: one event, numbered; returns its seq */
static Datum
StreamSinkWriteReturning(PendingBuffer *buffer, BufferItem *item)
{
	return Int64GetDatum(WriteEvents(buffer, &item, 1));
}

const BufferSink StreamSink = {
	.name = "stream",
	.open = StreamSinkOpen,
	.columns_unchanged = StreamSinkColumnsUnchanged,
	.check_writable = StreamSinkCheckWritable,
	.write = StreamSinkWrite,
	.write_returning = StreamSinkWriteReturning,
	.relation_changed = NULL,
	.at_end = NULL,
};

/* A savepoint's rollback may have released locks and taken back numbers */
static void
StreamsAtSubAbort(int nest_level)
{
	if (locked_entities != NULL)
	{
		hash_destroy(locked_entities);
		locked_entities = NULL;
	}
}

static void
StreamsAtEnd(void)
{
	locked_entities = NULL;
}

static const TransactionParticipant streams_participant = {
	.at_end = StreamsAtEnd,
	.at_sub_abort = StreamsAtSubAbort,
};

/* Registers the stream sink and the streams' transaction work; from _PG_init */
void
StreamsInit(void)
{
	BufferSinkRegister(&StreamSink);
	TransactionRegisterParticipant(&streams_participant);
	watch_cache = DefinitionCacheCreate(&watch_cache_methods);
}
