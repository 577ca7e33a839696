/*
 * buffers/table_sink.c
 *		The table sink (sink.h): a buffer's items written into its table.
 *		It reads the table's columns at the first fire, checks them again
 *		when the table changes, and writes each flush without planning
 *		anything where the table allows it (direct_insert.c, the way COPY
 *		writes), else with a planned
 *
 *     INSERT INTO target AS choreo_target (named columns)
 *         SELECT * FROM choreograph.choreo_buffer_rows($2) AS r(their types)
 *
 *		where choreo_buffer_rows() returns the items being written, to the
 *		INSERT that passes it the write's random key and names the items'
 *		own types: nothing else can read them, nor read them as other
 *		types (user code runs during the write: triggers, defaults).  Either
 *		way the write happens as the role that fired the items, and
 *		triggers, constraints, rules, row-level security and privileges
 *		apply as to a plain INSERT.
 *
 * Insert plans are prepared once per backend for a table and the columns
 * (attribute numbers and types) a set of items names.  The plan's text
 * names the table, the columns and their types, so it is written again
 * from their OIDs before each batch and the plan prepared again if it
 * changed (a renamed table, column, type or schema); a plan is also
 * prepared again when the table changes.  A plan
 * may be running when that happens (a trigger on the table fires enough
 * items to write another batch): it is freed only once no batch uses it.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "buffers/buffers.h"

/* A prepared INSERT, and how many batches are being written with it */
typedef struct KeptPlan
{
	SPIPlanPtr	plan;
	int			users;
	bool		retired;		/* replaced: free when the last user is done */
} KeptPlan;

/* An insert plan, kept per backend for a table and a column set */
typedef struct InsertPlan
{
	char	   *key;			/* hash key: "relid/returning/signature" */
	Oid			target;
	char	   *query;			/* the plan's text */
	bool		stale;			/* the table changed: prepare again */
	KeptPlan   *kept;
} InsertPlan;

static HTAB *insert_plans = NULL;	/* in TopMemoryContext */

/* the items the INSERT being executed reads, through choreo_buffer_rows() */
static BufferItem **writing_items = NULL;
static int	writing_count = 0;
static int64 writing_key = 0;	/* random, per write: its INSERT's $2 */

/*
 * Reads the columns of a buffer's table into its new pending state,
 * locking the table as an INSERT would, until the end of the transaction
 */
static void
TableSinkOpen(PendingBuffer *buffer)
{
	Relation	rel = try_table_open(buffer->target, RowExclusiveLock);
	TupleDesc	desc;

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the table of buffer \"%s\" no longer exists", buffer->name),
				 errhint("Drop the buffer and create it again.")));
	buffer->target_name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													 RelationGetRelationName(rel));
	/* refused now rather than by Citus at commit, with the transaction's other writes */
	if (RelationIsCitusTable(buffer->target) && CitusRefusesDistributedQueries())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("buffer \"%s\" cannot write into Citus table %s from a query Citus runs on a shard",
						buffer->name, buffer->target_name),
				 errdetail("Citus runs no distributed query from there, and the buffer writes through Citus."),
				 errhint("Fire into the buffer from a session of your own, or give the buffer a table each node has of its own (see docs/scaling.md).")));
	desc = RelationGetDescr(rel);
	buffer->columns = palloc0(sizeof(BufferColumn) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		BufferColumn *column = &buffer->columns[buffer->ncolumns];

		if (attr->attisdropped)
			continue;
		column->name = attr->attname;
		column->attnum = attr->attnum;
		column->type = attr->atttypid;
		column->typmod = attr->atttypmod;
		column->generated = attr->attgenerated;
		column->identity = attr->attidentity;
		get_typlenbyvalalign(attr->atttypid, &column->typlen, &column->typbyval,
							 &column->typalign);
		JsonColumnConverterInit(&column->converter, attr->atttypid, attr->atttypmod);
		column->converter.cxt = buffer->cxt;
		buffer->ncolumns++;
	}
	table_close(rel, NoLock);
}

/* Whether the table's columns are still those read at the first fire */
static bool
TableSinkColumnsUnchanged(PendingBuffer *buffer)
{
	Relation	rel = RelationIdGetRelation(buffer->target);
	TupleDesc	desc;
	int			live = 0;
	bool		same = true;

	if (!RelationIsValid(rel))
		return false;
	desc = RelationGetDescr(rel);
	for (int i = 0; i < desc->natts && same; i++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, i);
		BufferColumn *column = &buffer->columns[live];

		if (attr->attisdropped)
			continue;
		same = live < buffer->ncolumns && column->attnum == attr->attnum &&
			column->type == attr->atttypid && column->typmod == attr->atttypmod &&
			column->generated == attr->attgenerated &&
			column->identity == attr->attidentity &&
			strcmp(NameStr(column->name), NameStr(attr->attname)) == 0;
		live++;
	}
	RelationClose(rel);
	return same && live == buffer->ncolumns;
}

/* Raises the error for an item's column that the table can no longer take */
static void
CheckColumnWritable(PendingBuffer *buffer, TupleDesc desc, BufferColumn *column)
{
	Form_pg_attribute attr = column->attnum <= desc->natts ?
		TupleDescAttr(desc, column->attnum - 1) : NULL;

	if (attr == NULL || attr->attisdropped || attr->atttypid != column->type)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s of buffer \"%s\" was altered after items were fired into it",
						buffer->target_name, buffer->name),
				 errdetail("Column \"%s\", which items fired in this transaction name, was dropped or changed type.",
						   NameStr(column->name)),
				 errhint("Flush the buffer before altering its table.")));
	if (attr->attgenerated != '\0' || attr->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot insert a non-DEFAULT value into column \"%s\"",
						NameStr(attr->attname)),
				 errdetail("Column \"%s\" became %s after items naming it were fired.",
						   NameStr(attr->attname),
						   attr->attgenerated != '\0' ? "a generated column"
						   : "an identity column defined as GENERATED ALWAYS")));
}

/*
 * Raises an error if the table can no longer take the items a buffer
 * holds (which name the given column sets): it was dropped, or a column
 * they name was dropped, changed type or became generated since they were
 * fired.
 */
static void
TableSinkCheckWritable(PendingBuffer *buffer, List *sets)
{
	Relation	rel = RelationIdGetRelation(buffer->target);
	ListCell   *lc;

	if (!RelationIsValid(rel))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table %s of buffer \"%s\" was dropped before its items were written",
						buffer->target_name, buffer->name),
				 errdetail("%d items fired into the buffer in this transaction cannot be written.",
						   buffer->npending)));
	/* (an error leaves the relation to the resource owner to close) */
	foreach(lc, sets)
	{
		ColumnSet  *set = lfirst(lc);

		for (int i = 0; i < set->ncolumns; i++)
			CheckColumnWritable(buffer, RelationGetDescr(rel),
								&buffer->columns[set->columns[i]]);
	}
	RelationClose(rel);
}

/* Marks the insert plans of a table (or all) to be prepared again */
static void
InsertPlansInvalidate(Oid relid)
{
	HASH_SEQ_STATUS status;
	InsertPlan *plan;

	if (insert_plans == NULL)
		return;
	hash_seq_init(&status, insert_plans);
	while ((plan = hash_seq_search(&status)) != NULL)
		if (!OidIsValid(relid) || plan->target == relid)
			plan->stale = true;
}

/* replaced plans no batch writes with any more, freed at the next prepare */
static List *retired_plans = NIL;	/* of KeptPlan *, in TopMemoryContext */

/* Counts a batch done with a plan; a replaced one is freed later, safely */
static void
ReleaseKeptPlan(KeptPlan *kept)
{
	kept->users--;
	if (kept->retired && kept->users == 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		retired_plans = lappend(retired_plans, kept);
		MemoryContextSwitchTo(old);
	}
}

/* Frees the replaced plans no batch uses (not from an error handler) */
static void
FreeRetiredPlans(void)
{
	ListCell   *lc;

	foreach(lc, retired_plans)
	{
		KeptPlan   *kept = lfirst(lc);

		SPI_freeplan(kept->plan);
		pfree(kept);
	}
	list_free(retired_plans);
	retired_plans = NIL;
}

/* The table's schema-qualified, quoted name, as it is now */
static char *
CurrentTableName(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname = relname != NULL ? get_namespace_name(get_rel_namespace(relid)) : NULL;

	if (relname == NULL || nspname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return quote_qualified_identifier(nspname, relname);
}

/* Writes the text of the INSERT of a column set */
static char *
InsertQuery(PendingBuffer *buffer, ColumnSet *set, const char *table, bool returning)
{
	StringInfoData query;
	TupleDesc	desc;
	Relation	rel = RelationIdGetRelation(buffer->target);

	if (!RelationIsValid(rel))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", buffer->target)));
	desc = RelationGetDescr(rel);

	initStringInfo(&query);
	appendStringInfo(&query, "INSERT INTO %s AS choreo_target", table);
	if (set->ncolumns == 0)
	{
		/* every column takes its default */
		appendStringInfoString(&query, " SELECT FROM pg_catalog.generate_series(1, $1)");
	}
	else
	{
		appendStringInfoString(&query, " (");
		for (int i = 0; i < set->ncolumns; i++)
		{
			/* columns by their names now: they may have been renamed */
			AttrNumber	attnum = set->direct.attnums[i];

			appendStringInfo(&query, "%s%s", i > 0 ? ", " : "",
							 quote_identifier(NameStr(TupleDescAttr(desc, attnum - 1)->attname)));
		}
		appendStringInfoString(&query, ") SELECT * FROM " CHOREO_SCHEMA ".choreo_buffer_rows($2) AS r(");
		for (int i = 0; i < set->ncolumns; i++)
			appendStringInfo(&query, "%sc%d %s", i > 0 ? ", " : "", i + 1,
							 format_type_extended(set->direct.types[i], set->direct.typmods[i],
												  FORMAT_TYPE_TYPEMOD_GIVEN |
												  FORMAT_TYPE_FORCE_QUALIFY));
		appendStringInfoChar(&query, ')');
	}
	if (returning)
		appendStringInfoString(&query, " RETURNING pg_catalog.to_jsonb(choreo_target.*)");
	RelationClose(rel);
	return query.data;
}

/*
 * Returns the insert plan of a column set, preparing it on first use and
 * whenever the table changed, counted as used until ReleaseKeptPlan.
 */
static KeptPlan *
InsertPlanFor(PendingBuffer *buffer, ColumnSet *set, bool returning)
{
	char	   *key = psprintf("%u/%d/%s", buffer->target, returning, set->signature);
	InsertPlan *entry;
	bool		found;
	char	   *query;
	Oid			argtypes[2] = {INT4OID, INT8OID};	/* the count, the key */
	SPIPlanPtr	plan;
	KeptPlan   *kept;

	if (insert_plans == NULL)
		insert_plans = StringPointerHashCreate("choreograph insert plans", 16,
											   sizeof(InsertPlan), TopMemoryContext);

	/*
	 * The text names the table, its columns and their types as they are
	 * named now: a rename (of a schema, say) that leaves the table itself
	 * alone would otherwise make the plan resolve those names again, to
	 * other objects or to none, the next time it is revalidated.
	 */
	query = InsertQuery(buffer, set, CurrentTableName(buffer->target), returning);
	entry = hash_search(insert_plans, &key, HASH_FIND, &found);
	if (entry != NULL && !entry->stale && strcmp(entry->query, query) == 0)
	{
		entry->kept->users++;
		return entry->kept;
	}

	FreeRetiredPlans();
	plan = SPI_prepare(query, 2, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", query,
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	kept = MemoryContextAllocZero(TopMemoryContext, sizeof(KeptPlan));
	kept->plan = plan;

	if (entry != NULL)
	{
		/* a batch may still be writing with it (this one's trigger fired us) */
		entry->kept->retired = true;
		entry->kept->users++;
		ReleaseKeptPlan(entry->kept);
		pfree(entry->query);
	}
	else
	{
		char	   *kept_key = MemoryContextStrdup(TopMemoryContext, key);

		entry = hash_search(insert_plans, &kept_key, HASH_ENTER, &found);
		entry->key = kept_key;
	}
	entry->target = buffer->target;
	entry->query = MemoryContextStrdup(TopMemoryContext, query);
	entry->stale = false;
	entry->kept = kept;
	kept->users++;
	return kept;
}

/*
 * Writes items without planning an INSERT when their table allows it
 * (direct_insert.c); false when it needs the planned INSERT.  Like SPI,
 * the write gets a fresh snapshot and the command counter moves on after
 * it, so that what follows sees the rows.
 */
static bool
WriteItemsDirectly(PendingBuffer *buffer, BufferItem **items, int nitems)
{
	Datum	  **values = palloc(sizeof(Datum *) * nitems);
	bool	  **nulls = palloc(sizeof(bool *) * nitems);
	bool		written;

	for (int i = 0; i < nitems; i++)
	{
		values[i] = items[i]->values;
		nulls[i] = items[i]->nulls;
	}
	CommandCounterIncrement();
	PushCopiedSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	written = DirectInsertRows(buffer->target, &items[0]->set->direct, nitems,
							   values, nulls);
	PopActiveSnapshot();
	if (written)
		CommandCounterIncrement();
	pfree(values);
	pfree(nulls);
	return written;
}

/*
 * Executes an insert plan reading the given items.  choreo_buffer_rows()
 * returns them to every scan of this INSERT (a rule's action scans it
 * again); a trigger writing items of its own meanwhile must not leave
 * them behind, even when it fails.
 */
static int
ExecuteInsertPlan(KeptPlan *kept, BufferItem **items, int nitems)
{
	BufferItem **outer_items = writing_items;
	int			outer_count = writing_count;
	int64		outer_key = writing_key;
	int64		key;
	Datum		args[2];
	volatile int rc = 0;

	if (!pg_strong_random(&key, sizeof(key)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random key for a buffer write")));
	args[0] = Int32GetDatum(nitems);
	args[1] = Int64GetDatum(key);
	writing_items = items;
	writing_count = nitems;
	writing_key = key;
	PG_TRY();
	{
		rc = SPI_execute_plan(kept->plan, args, NULL, false, 0);
	}
	PG_CATCH();
	{
		writing_items = outer_items;
		writing_count = outer_count;
		writing_key = outer_key;
		ReleaseKeptPlan(kept);
		PG_RE_THROW();
	}
	PG_END_TRY();
	writing_items = outer_items;
	writing_count = outer_count;
	writing_key = outer_key;
	ReleaseKeptPlan(kept);
	return rc;
}

/*
 * Writes items[from, to), which name the same columns and were fired by
 * the same role, as one INSERT; inside SPI.  With returning, returns the
 * (last) written row as jsonb, in the SPI result's memory, or 0 when
 * nothing was written (a BEFORE trigger skipped the row).
 */
static Datum
InsertItems(PendingBuffer *buffer, BufferItem **items, int from, int to,
			bool returning)
{
	ColumnSet  *set = items[from]->set;
	Oid			saved_userid;
	int			saved_sec_context;
	int			rc;
	Datum		row = (Datum) 0;

	/* the write happens with the rights of the role that fired the items */
	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	if (items[from]->userid != saved_userid)
		SetUserIdAndSecContext(items[from]->userid,
							   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);

	if (!returning && WriteItemsDirectly(buffer, items + from, to - from))
	{
		SetUserIdAndSecContext(saved_userid, saved_sec_context);
		return (Datum) 0;
	}

	rc = ExecuteInsertPlan(InsertPlanFor(buffer, set, returning),
						   items + from, to - from);
	SetUserIdAndSecContext(saved_userid, saved_sec_context);
	if (rc < 0)
		elog(ERROR, "could not write into buffer \"%s\": %s", buffer->name,
			 SPI_result_code_string(rc));
	/* a rule may have turned the INSERT into another command, with its RETURNING */
	if (returning && SPI_tuptable != NULL && SPI_processed > 0)
	{
		bool		isnull;

		row = SPI_getbinval(SPI_tuptable->vals[SPI_processed - 1],
							SPI_tuptable->tupdesc, 1, &isnull);
		if (isnull)
			row = (Datum) 0;
	}
	return row;
}

/* Writes items in runs of the same role and column set */
static void
TableSinkWrite(PendingBuffer *buffer, BufferItem **items, int nitems)
{
	int			from = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	while (from < nitems)
	{
		int			to = from + 1;

		while (to < nitems && items[to]->set == items[from]->set &&
			   items[to]->userid == items[from]->userid)
			to++;
		(void) InsertItems(buffer, items, from, to, false);
		from = to;
	}
	SPI_finish();
}

/*
 * Writes one item and returns the row written as jsonb, in the caller's
 * memory; 0 when nothing was written.
 */
static Datum
TableSinkWriteReturning(PendingBuffer *buffer, BufferItem *item)
{
	Datum		row;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	row = InsertItems(buffer, &item, 0, 1, true);
	/* copied into the caller's memory, which SPI_finish leaves alone */
	if (row != (Datum) 0)
		row = SPI_datumTransfer(row, false, -1);
	SPI_finish();
	return row;
}

/* Forgets the items being written (at the end of the transaction) */
static void
TableSinkAtEnd(void)
{
	writing_items = NULL;
	writing_count = 0;
	writing_key = 0;
}

const BufferSink TableSink = {
	.name = "table",
	.open = TableSinkOpen,
	.columns_unchanged = TableSinkColumnsUnchanged,
	.check_writable = TableSinkCheckWritable,
	.write = TableSinkWrite,
	.write_returning = TableSinkWriteReturning,
	/* its insert plans name the table's columns */
	.relation_changed = InsertPlansInvalidate,
	.at_end = TableSinkAtEnd,
};

PG_FUNCTION_INFO_V1(choreo_buffer_rows);

/*
 * The rows an INSERT of a buffer's batch reads: the items being written.
 * Only the extension's own INSERTs, which know the write's key, may call
 * it: the items are the firing role's, and the function is executable by
 * everyone because the firing role runs that INSERT.
 */
Datum
choreo_buffer_rows(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BufferItem **items;
	int			count = writing_count;

	if (writing_items == NULL || PG_ARGISNULL(0) || PG_GETARG_INT64(0) != writing_key)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("choreo_buffer_rows() may be called only by choreograph's own INSERT")));
	items = writing_items;
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	/* only the types the items hold: anything else would read them as another type */
	if (rsinfo->setDesc->natts != items[0]->set->ncolumns)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("choreo_buffer_rows() must be called with the columns of the batch being written")));
	for (int i = 0; i < rsinfo->setDesc->natts; i++)
		if (TupleDescAttr(rsinfo->setDesc, i)->atttypid != items[0]->set->direct.types[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("choreo_buffer_rows() must be called with the columns of the batch being written")));

	for (int i = 0; i < count; i++)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
							 items[i]->values, items[i]->nulls);
	return (Datum) 0;
}
