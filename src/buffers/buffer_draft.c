/*
 * buffers/buffer_draft.c
 *		Items as fired: a JSON object whose keys name columns of the
 *		target, checked against the columns its sink described and
 *		converted to their types when fired, so that bad values fail then,
 *		not at commit (unnamed columns take their defaults when written);
 *		and the interned column sets items name.
 *
 * Values whose conversion can fail or run user code are converted in the
 * draft's scratch memory (buffer_pending.c); the others stay JSON until the
 * item is placed in its batch, and are converted straight into it.
 */
#include "postgres.h"

#include "catalog/pg_attribute.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "buffers/buffers.h"

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

/* Fires a JSON object into a buffer */
void
BufferFire(PendingBuffer *buffer, Jsonb *json)
{
	ItemDraft	draft;
	MemoryContext scratch;
	MemoryContext old = BeginDraftMemory(&scratch);

	DraftItem(buffer, json, &draft);
	EndDraftMemory(scratch, old);
	PendingBufferAddItem(buffer, &draft);
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
	PendingBufferAddItem(buffer, &draft);
	FreeDraftMemory(scratch);
}

/*
 * Makes the item of a JSON object, in the current memory, for writing
 * alone (choreo_fire_and_wait): it joins no batch.
 */
BufferItem *
BufferItemAlone(PendingBuffer *buffer, Jsonb *json)
{
	ItemDraft	draft;
	BufferItem *item;
	MemoryContext scratch;
	MemoryContext old = BeginDraftMemory(&scratch);

	DraftItem(buffer, json, &draft);
	EndDraftMemory(scratch, old);
	item = PendingBufferPlaceItem(buffer, &draft, CurrentMemoryContext);
	FreeDraftMemory(scratch);
	return item;
}

/*
 * Describes the columns of a sink whose items are values, not JSON (a
 * stream's, an inbox's): names and types, in the state's memory (a sink's
 * open)
 */
void
BufferDescribeValues(PendingBuffer *buffer, int ncolumns, const char *const *names,
					 const Oid *types)
{
	buffer->ncolumns = ncolumns;
	buffer->columns = MemoryContextAllocZero(buffer->cxt, sizeof(BufferColumn) * ncolumns);
	for (int i = 0; i < ncolumns; i++)
	{
		BufferColumn *column = &buffer->columns[i];

		namestrcpy(&column->name, names[i]);
		column->attnum = i + 1;
		column->type = types[i];
		column->typmod = -1;
		get_typlenbyvalalign(types[i], &column->typlen, &column->typbyval, &column->typalign);
		JsonColumnConverterInit(&column->converter, types[i], -1);
		column->converter.cxt = buffer->cxt;
	}
}

/*
 * Drafts an item naming every column of the state, from values already of
 * the columns' types (a stream's entity and payload), in the current memory
 */
static void
DraftValues(PendingBuffer *buffer, Datum *values, bool *nulls, ItemDraft *draft)
{
	int		   *columns = palloc(sizeof(int) * buffer->ncolumns);

	for (int i = 0; i < buffer->ncolumns; i++)
		columns[i] = i;
	draft->set = InternColumnSet(buffer, columns, buffer->ncolumns);
	draft->json = NULL;
	draft->values = values;
	draft->nulls = nulls;
	draft->converted = palloc(sizeof(bool) * buffer->ncolumns);
	memset(draft->converted, true, sizeof(bool) * buffer->ncolumns);
}

/* Fires an item of values of the columns' types, one per column */
void
BufferFireValues(PendingBuffer *buffer, Datum *values, bool *nulls)
{
	ItemDraft	draft;
	MemoryContext scratch;
	MemoryContext old = BeginDraftMemory(&scratch);

	DraftValues(buffer, values, nulls, &draft);
	EndDraftMemory(scratch, old);
	PendingBufferAddItem(buffer, &draft);
	FreeDraftMemory(scratch);
}

/* The item of such values, in the current memory, for writing alone */
BufferItem *
BufferItemAloneValues(PendingBuffer *buffer, Datum *values, bool *nulls)
{
	ItemDraft	draft;
	BufferItem *item;
	MemoryContext scratch;
	MemoryContext old = BeginDraftMemory(&scratch);

	DraftValues(buffer, values, nulls, &draft);
	EndDraftMemory(scratch, old);
	item = PendingBufferPlaceItem(buffer, &draft, CurrentMemoryContext);
	FreeDraftMemory(scratch);
	return item;
}
