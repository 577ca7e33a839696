/*
 * eventbox/inbox_sink.c
 *		The inbox sink (buffers/sink.h): the flush of choreo_send's pending
 *		events into choreograph.inbox, and the eventbox's registration.
 *
 * All of a transaction's sends are the items of one pending state (the
 * inbox has one identity), so they are batched, savepoint-exact and
 * flushed at pre-commit like a buffer's.  Each is given its id, which is
 * its place in send order, when it is written.  The flush inserts rows and
 * takes no other lock: a recipient being processed holds a lock of its
 * own (process_batch.c) that nothing here asks for, so sending never
 * waits for processing.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lmgr.h"

#include "eventbox/eventbox.h"

/* the pending state's key: the inbox is not a definition, it has no schema */
const DefinitionKind InboxKind = {"inbox", "inbox"};

/* The recipient and value of an inbox's items: text and jsonb */
static void
InboxSinkOpen(PendingBuffer *buffer)
{
	static const char *const names[2] = {"recipient", "value"};
	static const Oid types[2] = {TEXTOID, JSONBOID};

	buffer->target_name = pstrdup("the eventbox's inbox");
	BufferDescribeValues(buffer, 2, names, types);
	/* as an INSERT into the inbox would, until the end */
	LockRelationOid(buffer->target, RowExclusiveLock);
}

static bool
InboxSinkColumnsUnchanged(PendingBuffer *buffer)
{
	return true;
}

static void
InboxSinkCheckWritable(PendingBuffer *buffer, List *sets)
{
}

/* Inserts the items as rows (recipient, value), their ids and times by default */
static void
InboxSinkWrite(PendingBuffer *buffer, BufferItem **items, int nitems)
{
	static AttrNumber attnums[2] = {1, 3};
	static Oid	types[2] = {TEXTOID, JSONBOID};
	Datum	  **values = palloc(sizeof(Datum *) * nitems);
	bool	  **nulls = palloc(sizeof(bool *) * nitems);
	ExtensionWrite write;

	PreventCommandIfReadOnly("choreo_send");
	for (int i = 0; i < nitems; i++)
	{
		values[i] = items[i]->values;
		nulls[i] = items[i]->nulls;
	}
	/* the statement below names no object: no search_path to pin */
	BeginExtensionWrite(&write, false);
	InsertExtensionRows("inbox", attnums, types, 2, nitems, values, nulls);
	EndExtensionWrite(&write);
	pfree(values);
	pfree(nulls);
}

/* Nothing fires and waits into an inbox; were it asked, it writes the item */
static Datum
InboxSinkWriteReturning(PendingBuffer *buffer, BufferItem *item)
{
	InboxSinkWrite(buffer, &item, 1);
	return (Datum) 0;
}

const BufferSink InboxSink = {
	.name = "inbox",
	.open = InboxSinkOpen,
	.columns_unchanged = InboxSinkColumnsUnchanged,
	.check_writable = InboxSinkCheckWritable,
	.write = InboxSinkWrite,
	.write_returning = InboxSinkWriteReturning,
	.relation_changed = NULL,
	.at_end = NULL,
};

/* Registers the inbox sink; from _PG_init */
void
EventboxInit(void)
{
	BufferSinkRegister(&InboxSink);
}
