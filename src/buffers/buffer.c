/*
 * buffers/buffer.c
 *		Batched buffers as SQL sees them: choreo_fire_forget,
 *		choreo_fire_and_wait and choreo_flush, and which pending state
 *		(buffer_pending.c) a buffer's name refers to, written through which
 *		sink (its table: table_sink.c).
 *
 * A buffer's pending state is current while its definition is the one it
 * was made for (same table, same max_batch) and its table's columns are
 * those read at the first fire; otherwise the items fired next go to a new
 * pending state, and the earlier ones still go where they were fired.
 */
#include "postgres.h"

#include "utils/jsonb.h"

#include "buffers/buffers.h"

static PendingBuffer *last_fired = NULL;	/* fast path for firing in a loop */
static NameRef *last_fired_name = NULL; /* the name it was fired by, resolved */
static uint64 last_fired_forgotten = 0; /* pending_buffers_forgotten then */

/*
 * Whether new items may go to a buffer's pending state: not once the
 * buffer was dropped and created again (even under the same name) or its
 * table's columns changed in this transaction; those items get a new
 * pending state, and the items fired before still go where they were
 * fired.  Raises 42704 if the buffer no longer exists.
 */
static bool
PendingBufferCurrent(PendingBuffer *buffer)
{
	BufferDef	def;
	uint64		generation = BufferDefinitionsGeneration();

	if (!PendingBufferTakesItems(buffer))
		return false;
	if (buffer->def_generation == generation)
		return true;
	BufferLookupId(&buffer->id, &def);
	if (def.target != buffer->target || def.max_batch != buffer->max_batch)
	{
		buffer->outdated = true;
		return false;
	}
	buffer->def_generation = generation;
	return true;
}

/*
 * Returns the transaction's pending state of the buffer a name (as
 * written, len bytes) refers to, setting it up on the first fire into it
 * in this transaction (or since its definition changed): the target is
 * locked as an INSERT would lock it, until the end of the transaction.
 * ref, if not NULL, is set to the name's resolution.
 */
PendingBuffer *
PendingBufferFor(const char *written, int len, NameRef **ref)
{
	PendingBuffer *buffer;
	DefinitionId id;
	BufferDef	def;
	uint64		generation;

	{
		NameRef    *resolved = BufferNameLookup(written, len);

		id = *NameRefId(resolved);
		if (ref != NULL)
			*ref = resolved;
	}
	buffer = PendingBufferFind(&BufferKind, &id);
	if (buffer != NULL && PendingBufferCurrent(buffer))
		return buffer;

	generation = BufferDefinitionsGeneration();
	BufferLookupId(&id, &def);
	buffer = PendingBufferCreate(&BufferKind, &id, &TableSink, def.target, def.max_batch);
	buffer->def_generation = generation;
	return buffer;
}

/*
 * Registers the buffers' transaction work, their targets' invalidation and
 * the sinks they write through; called from _PG_init, after the hooks'
 * transaction work
 */
void
BuffersInit(void)
{
	PendingBuffersInit();
	BufferSinkRegister(&TableSink);
}

PG_FUNCTION_INFO_V1(choreo_fire_forget);

/* Keeps an item to be written into the buffer's table in a later batch */
Datum
choreo_fire_forget(PG_FUNCTION_ARGS)
{
	PendingBuffer *buffer = NULL;

	PreventInSecurityRestrictedOperation("fire into a buffer");
	/*
	 * Firing in a loop names the same buffer again and again: the same name
	 * as last time, still resolving as it did, is the same buffer.
	 */
	if (last_fired != NULL && last_fired_forgotten == pending_buffers_forgotten &&
		!PG_ARGISNULL(0))
	{
		text	   *name = PG_GETARG_TEXT_PP(0);
		int			len = VARSIZE_ANY_EXHDR(name);
		int			last_len;
		const char *last = NameRefWritten(last_fired_name, &last_len);

		if (len == last_len && memcmp(VARDATA_ANY(name), last, len) == 0 &&
			NameRefHolds(last_fired_name) &&
			memcmp(NameRefId(last_fired_name), &last_fired->id, sizeof(DefinitionId)) == 0 &&
			PendingBufferCurrent(last_fired))
			buffer = last_fired;
	}
	if (buffer == NULL)
	{
		char	   *name = NameArgument(fcinfo, 0, "buffer");

		buffer = last_fired = PendingBufferFor(name, strlen(name), &last_fired_name);
		last_fired_forgotten = pending_buffers_forgotten;
	}

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item fired into buffer \"%s\" must not be null", buffer->name)));
	BufferFire(buffer, PG_GETARG_JSONB_P(1));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_fire_and_wait);

/*
 * Writes the buffer's pending items, then this one, and returns the row
 * written, as jsonb (with its defaults and generated values); NULL when
 * nothing was written (a BEFORE trigger left the row out).
 */
Datum
choreo_fire_and_wait(PG_FUNCTION_ARGS)
{
	char	   *name = NameArgument(fcinfo, 0, "buffer");
	PendingBuffer *buffer;
	BufferItem *item;
	Datum		row;

	PreventInSecurityRestrictedOperation("fire into a buffer");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item fired into buffer \"%s\" must not be null", name)));
	buffer = PendingBufferFor(name, strlen(name), NULL);
	item = BufferItemAlone(buffer, PG_GETARG_JSONB_P(1));
	(void) PendingBufferFlush(buffer);

	row = buffer->sink->write_returning(buffer, item);
	if (row == (Datum) 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(row);
}

PG_FUNCTION_INFO_V1(choreo_flush);

/*
 * Writes the pending items of one buffer (or all); returns how many.  The
 * name may also refer to a buffer dropped in this transaction whose items
 * are still pending: it refers to the first schema of its search path that
 * has a definition or pending items of that name.
 */
Datum
choreo_flush(PG_FUNCTION_ARGS)
{
	DefinitionName name;
	DefinitionId id;
	Oid		   *path;
	int			npath;
	int			best;
	int64		written = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_INT64(BuffersFlushAll());

	ParseDefinitionName(&BufferKind, NameArgument(fcinfo, 0, "buffer"), &name);
	path = DefinitionSearchPath(&name, &npath);
	best = npath;
	if (FindDefinition(&BufferKind, &name, &id))
		for (best = 0; best < npath && path[best] != id.namespace; best++)
			;
	for (int i = 0; i < PendingBufferCount(); i++)
	{
		PendingBuffer *buffer = PendingBufferNth(i);

		if (buffer->kind != &BufferKind || strcmp(buffer->name, name.name) != 0)
			continue;
		for (int k = 0; k < best; k++)
			if (path[k] == buffer->id.namespace)
				best = k;
	}
	if (best == npath)
		DefinitionNotFound(&BufferKind, &name);

	/* every pending state of the definition: it may have been made again */
	for (int i = 0; i < PendingBufferCount(); i++)
	{
		PendingBuffer *buffer = PendingBufferNth(i);

		if (buffer->kind == &BufferKind && buffer->id.namespace == path[best] &&
			strcmp(buffer->name, name.name) == 0)
			written += PendingBufferFlush(buffer);
	}
	PG_RETURN_INT64(written);
}
