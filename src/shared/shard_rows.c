/*
 * shared/shard_rows.c
 *		Rows of a Citus shard seen as rows of its table.
 *
 * When Citus runs a query on the node holding a row, it rewrites the
 * query for the shard: a whole-row reference (choreo_run('flow', o)) then
 * has the shard's row type (orders_102008), and a trigger fires on the
 * shard.  Users and their step functions mean the table (orders): such a
 * row is handed on as a row of the table's type, its columns matched by
 * name (a shard made after a column was dropped lacks the dropped column,
 * so the two layouts may differ).
 *
 * What is known of a row type is kept per backend and forgotten on any
 * relation change; a conversion looks it up and uses it in one go, so no
 * caller holds it across an invalidation.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tupconvert.h"
#include "funcapi.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "shared/shared.h"

typedef struct ShardRowType
{
	Oid			shard_type;		/* hash key */
	Oid			table_type;		/* InvalidOid: not a shard's row type */
	TupleDesc	table_desc;
	TupleConversionMap *map;	/* NULL when the layouts are the same */
} ShardRowType;

static MemoryContext shard_rows_cxt = NULL;
static HTAB *shard_row_types = NULL;
static bool shard_rows_stale = false;

/*
 * Any relation changed: what was read may not hold.  Only marked here, as
 * an invalidation may arrive while an entry is being made; the next
 * lookup starts afresh.
 */
static void
ShardRowsInvalidate(Datum arg, Oid relid)
{
	shard_rows_stale = true;
}

/* A copy of a row type's current descriptor, in the current context */
static TupleDesc
RowTypeDescCopy(Oid rowtype)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(rowtype, -1);
	TupleDesc	copy = CreateTupleDescCopy(desc);

	ReleaseTupleDesc(desc);
	return copy;
}

static ShardRowType *
ShardRowTypeLookup(Oid rowtype)
{
	ShardRowType *entry;
	Oid			shard;
	Oid			table = InvalidOid;
	TupleDesc	table_desc = NULL;
	TupleConversionMap *map = NULL;
	bool		found;

	if (shard_rows_cxt == NULL)
	{
		shard_rows_cxt = AllocSetContextCreate(CacheMemoryContext, "choreograph shard rows",
											   ALLOCSET_SMALL_SIZES);
		ListenForRelationChanges(ShardRowsInvalidate, (Datum) 0);
		shard_rows_stale = true;
	}
	if (shard_rows_stale)
	{
		HASHCTL		ctl;

		MemoryContextReset(shard_rows_cxt);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(ShardRowType);
		ctl.hcxt = shard_rows_cxt;
		shard_row_types = hash_create("choreograph shard rows", 16, &ctl,
									  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		shard_rows_stale = false;
	}
	entry = hash_search(shard_row_types, &rowtype, HASH_FIND, NULL);
	if (entry != NULL)
		return entry;

	shard = get_typ_typrelid(rowtype);
	if (OidIsValid(shard))
		table = CitusShardOwner(shard);
	if (OidIsValid(table))
	{
		MemoryContext old = MemoryContextSwitchTo(shard_rows_cxt);
		TupleDesc	shard_desc = RowTypeDescCopy(rowtype);

		table_desc = RowTypeDescCopy(get_rel_type_id(table));
		map = convert_tuples_by_name(shard_desc, table_desc);
		MemoryContextSwitchTo(old);
	}
	/* an invalidation meanwhile dropped the table this entry would go in */
	if (shard_rows_stale)
		return ShardRowTypeLookup(rowtype);
	entry = hash_search(shard_row_types, &rowtype, HASH_ENTER, &found);
	entry->table_type = OidIsValid(table) ? table_desc->tdtypeid : InvalidOid;
	entry->table_desc = table_desc;
	entry->map = map;
	return entry;
}

/*
 * The row type of the Citus table whose shard has row type rowtype, or
 * InvalidOid when it is no shard's (always, where Citus is not installed)
 */
Oid
ShardRowTableType(Oid rowtype)
{
	if (!CitusIsInstalled())
		return InvalidOid;
	return ShardRowTypeLookup(rowtype)->table_type;
}

/* A row of a shard's row type as a row of its table's: a new datum */
Datum
ShardRowAsTableRow(Oid rowtype, Datum row)
{
	ShardRowType *entry = ShardRowTypeLookup(rowtype);
	HeapTupleHeader header = DatumGetHeapTupleHeader(row);
	HeapTupleData tuple;

	if (!OidIsValid(entry->table_type))
		elog(ERROR, "type %u is not the row type of a Citus shard", rowtype);
	tuple.t_len = HeapTupleHeaderGetDatumLength(header);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = header;
	if (entry->map != NULL)
		return heap_copy_tuple_as_datum(execute_attr_map_tuple(&tuple, entry->map),
										entry->table_desc);
	return heap_copy_tuple_as_datum(&tuple, entry->table_desc);
}
