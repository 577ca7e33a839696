/*
 * buffers/buffer_pending.c
 *		A transaction's pending states (PendingBuffer): per definition,
 *		the items fired into it, in batches, kept savepoint-exact in
 *		backend memory, and written through its sink (sink.h) when a batch
 *		is full, on a flush, and in the pre-commit rounds.  Also the memory
 *		items are drafted in, which a rollback or the end of the
 *		transaction takes back.
 *
 * Each pending state has a memory context of its own: the target's
 * columns, described by the sink at the first fire, and its items, in
 * batches.  A definition dropped and created again, or a target altered
 * in the transaction, gets a new pending state for the items fired
 * afterwards (its owner says when: PendingBufferCreate); the earlier ones
 * are written first, as they were fired, or refused by the sink with a
 * clear error if their columns are gone.  This file knows no definition
 * and no sink: it calls them only through BufferSink.
 *
 * Savepoints: each batch's items are a savepoint list (shared/
 * savepoint_list.c), tagged with the subtransaction level that fired them,
 * so a rollback drops exactly its items.  The delicate case is a flush
 * inside a subtransaction that writes items fired outside it: if that
 * subtransaction rolls back, so does their write, so such a batch is kept
 * ("exposed") until its subtransaction is released to a level that fired
 * all its items, and queued again if it rolls back.  Memory thus stays
 * bounded by max_batch items per pending state (per open savepoint level
 * at worst): the memory of dropped items is given back once they
 * outnumber the kept ones, and a pending state made in a rolled-back
 * subtransaction is freed with it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"

#include "buffers/buffers.h"

typedef struct Batch
{
	MemoryContext cxt;			/* holds the items and this list's cells */
	List	   *items;			/* of BufferItem *, in firing order */
	int			flushed_level;	/* 0: pending; else the level that wrote it */
	int			ndropped;		/* items dropped since its memory was compacted */
} Batch;

/* The hash key of a pending state: the definition it belongs to */
typedef struct PendingBufferKey
{
	const DefinitionKind *kind;
	DefinitionId id;
} PendingBufferKey;

/* An entry of the per-transaction table of pending buffers */
typedef struct PendingBufferEntry
{
	PendingBufferKey key;
	PendingBuffer *buffer;		/* the newest pending state of the definition */
} PendingBufferEntry;

/* Whether two pending states are of one definition (maybe dropped and made again) */
#define SameDefinition(a, b) \
	((a)->kind == (b)->kind && memcmp(&(a)->id, &(b)->id, sizeof(DefinitionId)) == 0)

static void CompactBatches(PendingBuffer *buffer);

static HTAB *pending_buffers = NULL;	/* in TopTransactionContext */
static List *pending_order = NIL;	/* of PendingBuffer *, first fired first */

/* pending states freed so far: a pointer kept across calls checks it */
uint64		pending_buffers_forgotten = 0;

/* the sinks registered (BufferSinkRegister), for their per-sink members */
#define MAX_SINKS 4
static const BufferSink *sinks[MAX_SINKS];
static int	nsinks = 0;

/* Adds a sink whose relation_changed and at_end are to be called; from _PG_init */
void
BufferSinkRegister(const BufferSink *sink)
{
	if (nsinks >= MAX_SINKS)
		elog(ERROR, "too many choreograph buffer sinks");
	sinks[nsinks++] = sink;
}

/* Fills a hash key (its padding too: the hash reads its bytes) */
static void
PendingBufferKeyFor(const DefinitionKind *kind, const DefinitionId *id,
					PendingBufferKey *key)
{
	memset(key, 0, sizeof(PendingBufferKey));
	key->kind = kind;
	key->id = *id;
}

/* Marks the pending states of a target (or all) to have it checked again */
static void
PendingBuffersTargetChanged(Oid relid)
{
	ListCell   *lc;

	foreach(lc, pending_order)
	{
		PendingBuffer *buffer = lfirst(lc);

		if (!OidIsValid(relid) || buffer->target == relid)
			buffer->target_changed = true;
	}
}

/*
 * After its target changed: whether a pending state's columns still hold;
 * if not, new items go to a new pending state
 */
bool
PendingBufferRecheckTarget(PendingBuffer *buffer)
{
	buffer->target_changed = false;
	if (buffer->sink->columns_unchanged(buffer))
		return true;
	buffer->outdated = true;
	return false;
}

/* The newest pending state of a definition in this transaction, or NULL */
PendingBuffer *
PendingBufferFind(const DefinitionKind *kind, const DefinitionId *id)
{
	PendingBufferKey key;
	PendingBufferEntry *entry;

	if (pending_buffers == NULL)
		return NULL;
	PendingBufferKeyFor(kind, id, &key);
	entry = hash_search(pending_buffers, &key, HASH_FIND, NULL);
	return entry != NULL ? entry->buffer : NULL;
}

/* How many pending states the transaction has made (and still holds) */
int
PendingBufferCount(void)
{
	return list_length(pending_order);
}

/* The i-th of them, first fired first */
PendingBuffer *
PendingBufferNth(int i)
{
	return list_nth(pending_order, i);
}

/*
 * Makes the newest pending state of a definition, to be written through a
 * sink into a target; the sink opens it.
 */
PendingBuffer *
PendingBufferCreate(const DefinitionKind *kind, const DefinitionId *id,
					const BufferSink *sink, Oid target, int max_batch)
{
	PendingBuffer *buffer;
	PendingBufferKey key;
	PendingBufferEntry *entry;
	MemoryContext cxt;
	MemoryContext old;

	/*
	 * Made in the (sub)transaction's memory, and moved to the top
	 * transaction's once the sink opened it: if the sink raises, the abort
	 * frees it.
	 */
	cxt = AllocSetContextCreate(CurTransactionContext, "choreograph pending buffer",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	buffer = palloc0(sizeof(PendingBuffer));
	buffer->cxt = cxt;
	buffer->kind = kind;
	buffer->id = *id;
	buffer->name = pstrdup(NameStr(id->name));
	buffer->sink = sink;
	buffer->target = target;
	buffer->max_batch = max_batch;
	buffer->created_level = GetCurrentTransactionNestLevel();
	sink->open(buffer);
	MemoryContextSetParent(cxt, TopTransactionContext);

	if (pending_buffers == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(PendingBufferKey);
		ctl.entrysize = sizeof(PendingBufferEntry);
		ctl.hcxt = TopTransactionContext;
		pending_buffers = hash_create("choreograph pending buffers", 16, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	/* the entry names the newest pending state of the definition */
	MemoryContextSwitchTo(TopTransactionContext);
	PendingBufferKeyFor(kind, id, &key);
	entry = hash_search(pending_buffers, &key, HASH_ENTER, NULL);
	entry->buffer = buffer;
	pending_order = lappend(pending_order, buffer);
	MemoryContextSwitchTo(old);
	return buffer;
}

/* scratch memory of drafts, reset for each; nested drafts make their own */
static MemoryContext draft_cxt = NULL;
static bool draft_cxt_busy = false;
static int	draft_cxt_level = 0;	/* the nesting level that took it */

/* Starts a draft's memory; returns the context to restore at the end */
MemoryContext
BeginDraftMemory(MemoryContext *scratch)
{
	if (draft_cxt_busy)
		*scratch = AllocSetContextCreate(CurrentMemoryContext,
										 "choreograph nested item",
										 ALLOCSET_SMALL_SIZES);
	else
	{
		if (draft_cxt == NULL)
			draft_cxt = AllocSetContextCreate(TopMemoryContext, "choreograph item",
											  ALLOCSET_SMALL_SIZES);
		else
			MemoryContextReset(draft_cxt);
		draft_cxt_busy = true;
		draft_cxt_level = GetCurrentTransactionNestLevel();
		*scratch = draft_cxt;
	}
	return MemoryContextSwitchTo(*scratch);
}

/* Ends a draft's memory (its contents stay valid until the next draft) */
void
EndDraftMemory(MemoryContext scratch, MemoryContext old)
{
	MemoryContextSwitchTo(old);
	if (scratch == draft_cxt)
		draft_cxt_busy = false;
}

/*
 * Frees a nested draft's memory once its item is placed; the shared one is
 * reset by the next draft.
 */
void
FreeDraftMemory(MemoryContext scratch)
{
	if (scratch != draft_cxt)
		MemoryContextDelete(scratch);
}

/* A new item naming the given columns, in the current memory context */
static BufferItem *
NewItem(ColumnSet *set)
{
	int			n = Max(set->ncolumns, 1);
	BufferItem *item = palloc(MAXALIGN(sizeof(BufferItem)) +
							  n * sizeof(Datum) + n * sizeof(bool));

	SavepointTagSet(&item->tag);
	item->userid = GetUserId();
	item->set = set;
	item->values = (Datum *) ((char *) item + MAXALIGN(sizeof(BufferItem)));
	item->nulls = (bool *) (item->values + n);
	return item;
}

/*
 * Makes the item of a draft in the given memory: values converted in the
 * draft are copied, the others converted there (which cannot fail).
 */
BufferItem *
PendingBufferPlaceItem(PendingBuffer *buffer, ItemDraft *draft, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	BufferItem *item = NewItem(draft->set);

	for (int i = 0; i < draft->set->ncolumns; i++)
	{
		BufferColumn *column = &buffer->columns[draft->set->columns[i]];

		if (!draft->converted[i])
			item->values[i] = JsonColumnConvert(&column->converter, &draft->json[i],
												&item->nulls[i]);
		else
		{
			item->nulls[i] = draft->nulls[i];
			item->values[i] = draft->nulls[i] ? (Datum) 0 :
				datumCopy(draft->values[i], column->typbyval, column->typlen);
		}
	}
	MemoryContextSwitchTo(old);
	return item;
}

/* Returns the batch new items go to, starting one if needed */
static Batch *
CurrentBatch(PendingBuffer *buffer)
{
	Batch	   *batch = buffer->batches != NIL ? llast(buffer->batches) : NULL;
	MemoryContext old;

	if (batch != NULL && batch->flushed_level == 0)
		return batch;

	old = MemoryContextSwitchTo(buffer->cxt);
	batch = palloc0(sizeof(Batch));
	batch->cxt = AllocSetContextCreate(buffer->cxt, "choreograph buffer batch",
									   ALLOCSET_DEFAULT_SIZES);
	buffer->batches = lappend(buffer->batches, batch);
	MemoryContextSwitchTo(old);
	return batch;
}

/* Adds a draft's item to the buffer's current batch; flushes when full */
void
PendingBufferAddItem(PendingBuffer *buffer, ItemDraft *draft)
{
	Batch	   *batch;
	BufferItem *item;
	MemoryContext old;

	CompactBatches(buffer);
	batch = CurrentBatch(buffer);
	item = PendingBufferPlaceItem(buffer, draft, batch->cxt);
	old = MemoryContextSwitchTo(batch->cxt);
	batch->items = lappend(batch->items, item);
	MemoryContextSwitchTo(old);
	if (++buffer->npending >= buffer->max_batch)
		(void) PendingBufferFlush(buffer);
}

/* Recounts the items waiting in pending batches */
static void
CountPending(PendingBuffer *buffer)
{
	ListCell   *lc;

	buffer->npending = 0;
	foreach(lc, buffer->batches)
	{
		Batch	   *batch = lfirst(lc);

		if (batch->flushed_level == 0)
			buffer->npending += list_length(batch->items);
	}
}

/* Frees a batch and its items */
static void
FreeBatch(Batch *batch)
{
	MemoryContextDelete(batch->cxt);
	pfree(batch);
}

/*
 * Rebuilds a buffer's batch list as: the batches that were there before a
 * flush began, then the given ones, then those started during the flush.
 */
static void
SpliceBatches(PendingBuffer *buffer, List *before, List *middle)
{
	MemoryContext old = MemoryContextSwitchTo(buffer->cxt);
	List	   *batches = list_concat(list_copy(before), middle);

	batches = list_concat(batches, list_copy_tail(buffer->batches, list_length(before)));
	list_free(buffer->batches);
	buffer->batches = batches;
	MemoryContextSwitchTo(old);
}

/* The column sets the items of a buffer's batches name, first named first */
static List *
PendingColumnSets(PendingBuffer *buffer)
{
	List	   *sets = NIL;
	ListCell   *lc;

	foreach(lc, buffer->batches)
	{
		ListCell   *ic;

		foreach(ic, ((Batch *) lfirst(lc))->items)
		{
			ColumnSet  *set = ((BufferItem *) lfirst(ic))->set;

			if (!list_member_ptr(sets, set))
				sets = lappend(sets, set);
		}
	}
	return sets;
}

/*
 * Writes a buffer's pending items, oldest first; returns how many.  The
 * batches are taken out while written, so that items fired meanwhile (by
 * triggers on the target) queue up behind them.
 */
int64
PendingBufferFlush(PendingBuffer *buffer)
{
	int			level = GetCurrentTransactionNestLevel();
	List	   *flushing = NIL;
	List	   *kept = NIL;
	List	   *before = NIL;
	int			nitems = 0;
	BufferItem **items;
	ListCell   *lc;
	MemoryContext old;

	/* items fired under an earlier definition of the name come first */
	for (int i = 0; i < list_length(pending_order); i++)
	{
		PendingBuffer *earlier = list_nth(pending_order, i);

		if (earlier == buffer)
			break;
		if (earlier->npending > 0 && SameDefinition(earlier, buffer))
			(void) PendingBufferFlush(earlier);
	}

	if (buffer->npending == 0)
		return 0;

	/* a trigger on the target may fire into the buffer, and so flush it again */
	check_stack_depth();
	CompactBatches(buffer);
	if (buffer->outdated || buffer->target_changed)
	{
		List	   *sets = PendingColumnSets(buffer);

		buffer->sink->check_writable(buffer, sets);
		list_free(sets);
	}

	foreach(lc, buffer->batches)
	{
		Batch	   *batch = lfirst(lc);

		if (batch->flushed_level != 0)
			before = lappend(before, batch);
		else if (batch->items != NIL)
		{
			flushing = lappend(flushing, batch);
			nitems += list_length(batch->items);
		}
		else
			FreeBatch(batch);
	}
	old = MemoryContextSwitchTo(buffer->cxt);
	list_free(buffer->batches);
	buffer->batches = list_copy(before);
	buffer->npending = 0;
	MemoryContextSwitchTo(old);

	items = palloc(sizeof(BufferItem *) * nitems);
	nitems = 0;
	foreach(lc, flushing)
	{
		Batch	   *batch = lfirst(lc);
		ListCell   *ic;

		foreach(ic, batch->items)
			items[nitems++] = lfirst(ic);
	}

	PG_TRY();
	{
		buffer->sink->write(buffer, items, nitems);
	}
	PG_CATCH();
	{
		/*
		 * Put the items back: if the error is caught by a savepoint deeper
		 * than some of them, those must still be written later.
		 */
		SpliceBatches(buffer, before, flushing);
		CountPending(buffer);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* a batch holding items fired outside this subtransaction is exposed */
	foreach(lc, flushing)
	{
		Batch	   *batch = lfirst(lc);
		BufferItem *first = linitial(batch->items);

		if (first->tag.nest_level < level)
		{
			batch->flushed_level = level;
			kept = lappend(kept, batch);
		}
		else
			FreeBatch(batch);
	}
	SpliceBatches(buffer, before, kept);
	list_free(before);
	list_free(flushing);
	pfree(items);
	return nitems;
}

/* Whether any pending state has items to write */
static bool
BuffersPending(void)
{
	ListCell   *lc;

	foreach(lc, pending_order)
		if (((PendingBuffer *) lfirst(lc))->npending > 0)
			return true;
	return false;
}

/* Flushes every buffer, in the order they were first fired into */
int64
BuffersFlushAll(void)
{
	int64		written = 0;

	/* a flush may start new buffers (triggers firing elsewhere) */
	for (int i = 0; i < list_length(pending_order); i++)
		written += PendingBufferFlush(list_nth(pending_order, i));
	return written;
}

/* A copy of an item, in the current memory context */
static BufferItem *
CopyItem(PendingBuffer *buffer, BufferItem *item)
{
	BufferItem *copy = NewItem(item->set);

	copy->tag = item->tag;
	copy->userid = item->userid;
	for (int i = 0; i < item->set->ncolumns; i++)
	{
		BufferColumn *column = &buffer->columns[item->set->columns[i]];

		copy->nulls[i] = item->nulls[i];
		copy->values[i] = item->nulls[i] ? (Datum) 0 :
			datumCopy(item->values[i], column->typbyval, column->typlen);
	}
	return copy;
}

/*
 * Gives back the memory of a batch's dropped items once they outnumber
 * its items (a loop of exception blocks that fire and fail would otherwise
 * grow it without bound): its items move to new memory.  Done at the next
 * fire or flush, not when the subtransaction aborts: what runs then must
 * not allocate (an out-of-memory error there would abort the abort).
 */
static void
CompactBatch(PendingBuffer *buffer, Batch *batch)
{
	MemoryContext cxt;
	MemoryContext old;
	List	   *items = NIL;
	ListCell   *lc;

	if (batch->ndropped < Max(list_length(batch->items), 32))
		return;
	cxt = AllocSetContextCreate(buffer->cxt, "choreograph buffer batch",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	foreach(lc, batch->items)
		items = lappend(items, CopyItem(buffer, lfirst(lc)));
	MemoryContextSwitchTo(old);
	MemoryContextDelete(batch->cxt);
	batch->cxt = cxt;
	batch->items = items;
	batch->ndropped = 0;
}

/* Compacts the batches that dropped items, if a rollback left any */
static void
CompactBatches(PendingBuffer *buffer)
{
	ListCell   *lc;

	if (!buffer->dropped_items)
		return;
	foreach(lc, buffer->batches)
	{
		CompactBatch(buffer, lfirst(lc));
	}
	buffer->dropped_items = false;
}

/*
 * Forgets a pending state made in a rolled-back subtransaction: its items
 * are gone, and so is its lock on its target.  The name goes back to the
 * newest pending state of it that is left (the hash entry is changed in
 * place: nothing may be allocated while a subtransaction aborts).
 */
static void
ForgetPendingBuffer(PendingBuffer *buffer)
{
	PendingBufferKey key;
	PendingBufferEntry *entry;

	PendingBufferKeyFor(buffer->kind, &buffer->id, &key);
	entry = hash_search(pending_buffers, &key, HASH_FIND, NULL);

	pending_buffers_forgotten++;
	if (entry != NULL && entry->buffer == buffer)
	{
		PendingBuffer *newest = NULL;
		ListCell   *lc;

		foreach(lc, pending_order)
		{
			PendingBuffer *other = lfirst(lc);

			if (other != buffer && SameDefinition(other, buffer))
				newest = other;
		}
		if (newest != NULL)
			entry->buffer = newest;
		else
			hash_search(pending_buffers, &key, HASH_REMOVE, NULL);
	}
	MemoryContextDelete(buffer->cxt);
}

/*
 * Subtransaction ends.  Nothing here allocates (an error while a
 * subtransaction aborts would abort the abort): lists are changed in
 * place, and memory given back later (CompactBatches).
 */
static void
BuffersAtSubAbort(int nest_level)
{
	ListCell   *lc;

	/* a draft interrupted by the error is not being built any more */
	if (draft_cxt_busy && draft_cxt_level >= nest_level)
		draft_cxt_busy = false;

	foreach(lc, pending_order)
	{
		PendingBuffer *buffer = lfirst(lc);
		ListCell   *bc;

		if (buffer->created_level >= nest_level)
		{
			pending_order = foreach_delete_current(pending_order, lc);
			ForgetPendingBuffer(buffer);
			continue;
		}

		foreach(bc, buffer->batches)
		{
			Batch	   *batch = lfirst(bc);

			/* a batch written in the rolled-back subtransaction is pending again */
			if (batch->flushed_level >= nest_level)
				batch->flushed_level = 0;
			if (batch->flushed_level == 0)
			{
				int			nitems = list_length(batch->items);

				batch->items = SavepointListAtSubAbort(batch->items, nest_level, 0,
													   NULL, NULL);
				batch->ndropped += nitems - list_length(batch->items);
			}
			if (batch->items == NIL)
			{
				buffer->batches = foreach_delete_current(buffer->batches, bc);
				FreeBatch(batch);
			}
			else if (batch->ndropped > 0)
				buffer->dropped_items = true;
		}
		CountPending(buffer);
	}
}

/* Hands a released subtransaction's items to its parent */
static void
BuffersAtSubCommit(int nest_level)
{
	ListCell   *lc;

	foreach(lc, pending_order)
	{
		PendingBuffer *buffer = lfirst(lc);
		ListCell   *bc;

		SavepointLevelAtSubCommit(&buffer->created_level, nest_level);

		foreach(bc, buffer->batches)
		{
			Batch	   *batch = lfirst(bc);

			SavepointListAtSubCommit(batch->items, nest_level);
			SavepointLevelAtSubCommit(&batch->flushed_level, nest_level);

			/* written at a level that fired all its items: safe now */
			if (batch->flushed_level > 0 &&
				((BufferItem *) linitial(batch->items))->tag.nest_level >= batch->flushed_level)
			{
				buffer->batches = foreach_delete_current(buffer->batches, bc);
				FreeBatch(batch);
			}
		}
	}
}

/* Forgets everything at the end of the transaction (memory goes with it) */
static void
BuffersAtEnd(void)
{
	for (int i = 0; i < nsinks; i++)
		if (sinks[i]->at_end != NULL)
			sinks[i]->at_end();
	/* the last item's draft (it may have been large) */
	if (draft_cxt != NULL)
		MemoryContextReset(draft_cxt);
	draft_cxt_busy = false;
	pending_buffers = NULL;
	pending_order = NIL;
	pending_buffers_forgotten++;
}

/* a pre-commit round writes every pending item */
static void
BuffersFlushAtPreCommit(void)
{
	(void) BuffersFlushAll();
}

static const TransactionParticipant buffers_participant = {
	.pending = BuffersPending,
	.run_pre_commit = BuffersFlushAtPreCommit,
	.at_end = BuffersAtEnd,
	.at_sub_abort = BuffersAtSubAbort,
	.at_sub_commit = BuffersAtSubCommit,
};

/* Relcache callback: a target changed (or everything did) */
static void
TargetsChanged(Datum arg, Oid relid)
{
	for (int i = 0; i < nsinks; i++)
		if (sinks[i]->relation_changed != NULL)
			sinks[i]->relation_changed(relid);
	/* the items pending for it were checked against its columns */
	PendingBuffersTargetChanged(relid);
}

/*
 * Registers the pending states' transaction work and the watching of
 * their targets; from _PG_init, after the hooks' transaction work
 */
void
PendingBuffersInit(void)
{
	TransactionRegisterParticipant(&buffers_participant);
	ListenForRelationChanges(TargetsChanged, (Datum) 0);
}
