/*
 * buffers/buffer.c
 *		Batched buffers: items fired with choreo_fire_forget (or
 *		choreo_capture) are kept in backend memory and written in batches
 *		through the buffer's sink (sink.h; a table: table_sink.c), one
 *		write per flush, when a buffer is full, on choreo_flush, on
 *		choreo_fire_and_wait and at pre-commit.
 *
 * Per transaction, each buffer fired into gets a PendingBuffer, in a memory
 * context of its own: the target's columns, described by the sink at the
 * first fire, and its items, in batches.  An item is converted to the
 * columns' types when fired, so bad values fail then, not at commit;
 * unnamed columns take their defaults when written.  A buffer dropped and
 * created again, or a table altered in the transaction, gets a new
 * PendingBuffer for the items fired afterwards; the earlier ones are
 * written as they were fired, or refused with a clear error if their
 * columns are gone.
 *
 * Savepoints: each batch's items are a savepoint list (shared/
 * savepoint_list.c), tagged with the subtransaction level that fired them,
 * so a rollback drops exactly its items.  The delicate case is a flush
 * inside a subtransaction that writes items fired outside it: if that
 * subtransaction rolls back, so does their write, so such a batch is kept
 * ("exposed") until its subtransaction is released to a level that fired
 * all its items, and queued again if it rolls back.  Memory thus stays
 * bounded by max_batch items per buffer (per open savepoint level at
 * worst): the memory of dropped items is given back once they outnumber
 * the kept ones, and a PendingBuffer made in a rolled-back subtransaction
 * is freed with it.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

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

static int64 FlushBuffer(PendingBuffer *buffer);
static void CompactBatches(PendingBuffer *buffer);

static HTAB *pending_buffers = NULL;	/* in TopTransactionContext */
static PendingBuffer *last_fired = NULL;	/* fast path for firing in a loop */
static NameRef *last_fired_name = NULL; /* the name it was fired by, resolved */
static List *pending_order = NIL;	/* of PendingBuffer *, first fired first */

/* the sinks registered (BufferSinkRegister), for their per-sink members */
#define MAX_SINKS 4
static const BufferSink *sinks[MAX_SINKS];
static int	nsinks = 0;

/* Adds a sink whose relation_changed and at_end are to be called; from _PG_init */
static void
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

/* Marks the pending buffers of a table (or all) to have it read again */
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
static bool
PendingBufferRecheckTarget(PendingBuffer *buffer)
{
	buffer->target_changed = false;
	if (buffer->sink->columns_unchanged(buffer))
		return true;
	buffer->outdated = true;
	return false;
}

/* Whether new items may go to a pending state, as far as its target goes */
static inline bool
PendingBufferTakesItems(PendingBuffer *buffer)
{
	if (buffer->outdated)
		return false;
	if (unlikely(buffer->target_changed))
		return PendingBufferRecheckTarget(buffer);
	return true;
}

/* The newest pending state of a definition in this transaction, or NULL */
static PendingBuffer *
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

/*
 * Makes the newest pending state of a definition, to be written through a
 * sink into a target; the sink opens it.
 */
static PendingBuffer *
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

/* Finds a column by name (not NUL-terminated); -1 when there is none */
static int
FindColumn(PendingBuffer *buffer, const char *name, int len)
{
	for (int i = 0; i < buffer->ncolumns; i++)
	{
		const char *column = NameStr(buffer->columns[i].name);

		if (strncmp(column, name, len) == 0 && column[len] == '\0')
			return i;
	}
	return -1;
}

/* Finds a column that items may name; raises 42703 / 428C9 otherwise */
static int
InsertableColumn(PendingBuffer *buffer, const char *name, int len)
{
	int			i = FindColumn(buffer, name, len);
	BufferColumn *column;

	if (i < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						pnstrdup(name, len), buffer->target_name),
				 errdetail("Items fired into buffer \"%s\" name columns of its table.",
						   buffer->name)));
	column = &buffer->columns[i];
	if (column->generated != '\0' || column->identity == ATTRIBUTE_IDENTITY_ALWAYS)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot insert a non-DEFAULT value into column \"%s\"",
						NameStr(column->name)),
				 errdetail("Column \"%s\" is %s.", NameStr(column->name),
						   column->generated != '\0' ? "a generated column"
						   : "an identity column defined as GENERATED ALWAYS")));
	return i;
}

/* The column index for choreo_capture; raises like a fired key would */
int
PendingBufferColumn(PendingBuffer *buffer, const char *column)
{
	return InsertableColumn(buffer, column, strlen(column));
}

/* Returns the interned set of the given (ascending) column indexes */
static ColumnSet *
InternColumnSet(PendingBuffer *buffer, int *columns, int ncolumns)
{
	ListCell   *lc;
	ColumnSet  *set;
	MemoryContext old;
	StringInfoData signature;

	foreach(lc, buffer->sets)
	{
		set = lfirst(lc);
		if (set->ncolumns == ncolumns &&
			memcmp(set->columns, columns, sizeof(int) * ncolumns) == 0)
			return set;
	}

	old = MemoryContextSwitchTo(buffer->cxt);
	set = palloc(sizeof(ColumnSet));
	set->ncolumns = ncolumns;
	set->columns = palloc(sizeof(int) * Max(ncolumns, 1));
	memcpy(set->columns, columns, sizeof(int) * ncolumns);
	initStringInfo(&signature);
	for (int i = 0; i < ncolumns; i++)
	{
		BufferColumn *column = &buffer->columns[columns[i]];

		appendStringInfo(&signature, "%s%d:%u:%d", i > 0 ? "," : "",
						 column->attnum, column->type, column->typmod);
	}
	set->signature = signature.data;
	set->direct.ncolumns = ncolumns;
	set->direct.attnums = palloc(sizeof(AttrNumber) * Max(ncolumns, 1));
	set->direct.types = palloc(sizeof(Oid) * Max(ncolumns, 1));
	set->direct.typmods = palloc(sizeof(int32) * Max(ncolumns, 1));
	for (int i = 0; i < ncolumns; i++)
	{
		BufferColumn *column = &buffer->columns[columns[i]];

		set->direct.attnums[i] = column->attnum;
		set->direct.types[i] = column->type;
		set->direct.typmods[i] = column->typmod;
	}
	buffer->sets = lappend(buffer->sets, set);
	MemoryContextSwitchTo(old);
	return set;
}

/*
 * An item being built: its values, converted in scratch memory where the
 * conversion can fail or run user code (input functions, domain checks),
 * else still JSON, converted straight into the item's memory once it is
 * placed.  So a failing fire leaves nothing in a batch, and code run by a
 * conversion (which may fire into the same buffer, even flush it) never
 * sees a half-built item.
 */
typedef struct ItemDraft
{
	ColumnSet  *set;
	JsonbValue *json;			/* per column of the set */
	Datum	   *values;
	bool	   *nulls;
	bool	   *converted;		/* values[i] holds the converted value */
} ItemDraft;

/* scratch memory of drafts, reset for each; nested drafts make their own */
static MemoryContext draft_cxt = NULL;
static bool draft_cxt_busy = false;
static int	draft_cxt_level = 0;	/* the nesting level that took it */

/* Starts a draft's memory; returns the context to restore at the end */
static MemoryContext
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
static void
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
static void
FreeDraftMemory(MemoryContext scratch)
{
	if (scratch != draft_cxt)
		MemoryContextDelete(scratch);
}

/* Converts the values of a draft whose conversion can fail or run code */
static void
ConvertRiskyValues(PendingBuffer *buffer, ItemDraft *draft)
{
	for (int i = 0; i < draft->set->ncolumns; i++)
	{
		BufferColumn *column = &buffer->columns[draft->set->columns[i]];

		draft->converted[i] = JsonColumnConversionMayFail(&column->converter,
														  &draft->json[i]);
		if (draft->converted[i])
			draft->values[i] = JsonColumnConvert(&column->converter, &draft->json[i],
												 &draft->nulls[i]);
	}
}

/*
 * Drafts a fired item, in the current (scratch) memory: it must be a JSON
 * object whose keys name insertable columns, with values that convert to
 * their types.  The draft's JSON values point into json.
 */
static void
DraftItem(PendingBuffer *buffer, Jsonb *json, ItemDraft *draft)
{
	JsonbIterator *it;
	JsonbValue	key;
	int		   *columns;
	int			n = 0;
	int			size;
	JsonbIteratorToken token;

	if (!JB_ROOT_IS_OBJECT(json))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("item fired into buffer \"%s\" is not a JSON object", buffer->name),
				 errdetail("An item is an object whose keys name columns of table %s.",
						   buffer->target_name)));

	size = Max(JB_ROOT_COUNT(json), 1);
	draft->json = palloc(sizeof(JsonbValue) * size);
	draft->values = palloc(sizeof(Datum) * size);
	draft->nulls = palloc(sizeof(bool) * size);
	draft->converted = palloc(sizeof(bool) * size);
	columns = palloc(sizeof(int) * size);
	it = JsonbIteratorInit(&json->root);
	if (JsonbIteratorNext(&it, &key, true) != WJB_BEGIN_OBJECT)
		elog(ERROR, "unexpected jsonb object layout");
	while ((token = JsonbIteratorNext(&it, &key, true)) == WJB_KEY)
	{
		int			column = InsertableColumn(buffer, key.val.string.val, key.val.string.len);
		int			at = n++;

		token = JsonbIteratorNext(&it, &draft->json[at], true);
		Assert(token == WJB_VALUE);
		/* keep the columns ascending (an insertion sort: items are small) */
		while (at > 0 && columns[at - 1] > column)
		{
			JsonbValue	swap = draft->json[at];

			columns[at] = columns[at - 1];
			draft->json[at] = draft->json[at - 1];
			draft->json[at - 1] = swap;
			at--;
		}
		columns[at] = column;
	}

	draft->set = InternColumnSet(buffer, columns, n);
	ConvertRiskyValues(buffer, draft);
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
static BufferItem *
PlaceItem(PendingBuffer *buffer, ItemDraft *draft, MemoryContext cxt)
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
static void
AddItem(PendingBuffer *buffer, ItemDraft *draft)
{
	Batch	   *batch;
	BufferItem *item;
	MemoryContext old;

	CompactBatches(buffer);
	batch = CurrentBatch(buffer);
	item = PlaceItem(buffer, draft, batch->cxt);
	old = MemoryContextSwitchTo(batch->cxt);
	batch->items = lappend(batch->items, item);
	MemoryContextSwitchTo(old);
	if (++buffer->npending >= buffer->max_batch)
		(void) FlushBuffer(buffer);
}

/* Fires a JSON object into a buffer */
static void
FireItem(PendingBuffer *buffer, Jsonb *json)
{
	ItemDraft	draft;
	MemoryContext scratch;
	MemoryContext old = BeginDraftMemory(&scratch);

	DraftItem(buffer, json, &draft);
	EndDraftMemory(scratch, old);
	AddItem(buffer, &draft);
	FreeDraftMemory(scratch);
}

/*
 * Fires an item with one column set to a jsonb document (choreo_capture's
 * envelope), converted if the column is not jsonb.
 */
void
BufferFireJsonb(PendingBuffer *buffer, int column, Jsonb *document)
{
	ItemDraft	draft;
	JsonbValue	value;
	MemoryContext scratch;
	MemoryContext old = BeginDraftMemory(&scratch);

	JsonbToValue(document, &value);
	draft.set = InternColumnSet(buffer, &column, 1);
	draft.json = &value;
	draft.values = palloc(sizeof(Datum));
	draft.nulls = palloc(sizeof(bool));
	draft.converted = palloc(sizeof(bool));
	ConvertRiskyValues(buffer, &draft);
	EndDraftMemory(scratch, old);
	AddItem(buffer, &draft);
	FreeDraftMemory(scratch);
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
static int64
FlushBuffer(PendingBuffer *buffer)
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
			(void) FlushBuffer(earlier);
	}

	if (buffer->npending == 0)
		return 0;

	/* a trigger on the table may fire into the buffer, and so flush it again */
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
		written += FlushBuffer(list_nth(pending_order, i));
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
 * are gone, and so is its lock on the table.  The name goes back to the
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

	if (buffer == last_fired)
		last_fired = NULL;
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
		sinks[i]->at_end();
	/* the last item's draft (it may have been large) */
	if (draft_cxt != NULL)
		MemoryContextReset(draft_cxt);
	draft_cxt_busy = false;
	pending_buffers = NULL;
	pending_order = NIL;
	last_fired = NULL;
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

/* Relcache callback: a target table changed (or everything did) */
static void
TargetsChanged(Datum arg, Oid relid)
{
	for (int i = 0; i < nsinks; i++)
		sinks[i]->relation_changed(relid);
	/* the items pending for it were checked against its columns */
	PendingBuffersTargetChanged(relid);
}

/*
 * Registers the buffers' transaction work and their targets' invalidation;
 * called from _PG_init, after the hooks' transaction work
 */
void
BuffersInit(void)
{
	TransactionRegisterParticipant(&buffers_participant);
	CacheRegisterRelcacheCallback(TargetsChanged, (Datum) 0);
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
	if (last_fired != NULL && !PG_ARGISNULL(0))
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
	}

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item fired into buffer \"%s\" must not be null", buffer->name)));
	FireItem(buffer, PG_GETARG_JSONB_P(1));
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
	ItemDraft	draft;
	BufferItem *item;
	MemoryContext scratch;
	MemoryContext old;
	Datum		row;

	PreventInSecurityRestrictedOperation("fire into a buffer");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("item fired into buffer \"%s\" must not be null", name)));
	buffer = PendingBufferFor(name, strlen(name), NULL);
	old = BeginDraftMemory(&scratch);
	DraftItem(buffer, PG_GETARG_JSONB_P(1), &draft);
	EndDraftMemory(scratch, old);
	item = PlaceItem(buffer, &draft, CurrentMemoryContext);
	FreeDraftMemory(scratch);
	(void) FlushBuffer(buffer);

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
	for (int i = 0; i < list_length(pending_order); i++)
	{
		PendingBuffer *buffer = list_nth(pending_order, i);

		if (buffer->kind != &BufferKind || strcmp(buffer->name, name.name) != 0)
			continue;
		for (int k = 0; k < best; k++)
			if (path[k] == buffer->id.namespace)
				best = k;
	}
	if (best == npath)
		DefinitionNotFound(&BufferKind, &name);

	/* every pending state of the definition: it may have been made again */
	for (int i = 0; i < list_length(pending_order); i++)
	{
		PendingBuffer *buffer = list_nth(pending_order, i);

		if (buffer->kind == &BufferKind && buffer->id.namespace == path[best] &&
			strcmp(buffer->name, name.name) == 0)
			written += FlushBuffer(buffer);
	}
	PG_RETURN_INT64(written);
}
