/*
 * shared/direct_insert.c
 *		Writes a batch of rows into a table the way COPY FROM does, without
 *		planning an INSERT: slots are filled with the given values and the
 *		other columns' defaults, checked against the table's constraints,
 *		written with table_multi_insert (one WAL record and one buffer lock
 *		per page rather than per row), then indexed.
 *
 * Only tables that need nothing else of a planned INSERT take this path:
 * plain tables (not partitioned, no rules, not managed by Citus) without BEFORE or INSTEAD OF
 * row triggers on INSERT and without row-level security for the writing
 * role, in a read-write transaction.  For those it does everything the
 * INSERT would: the same privilege check on the named columns, defaults
 * (identity and serial columns, domain defaults and domain NOT NULL),
 * stored generated columns, NOT NULL and CHECK constraints, a partition's
 * bounds (for a buffer on a leaf partition), unique and
 * exclusion indexes (deferrable ones rechecked at commit), statement and
 * AFTER row triggers (foreign keys among them) with transition tables.
 * Defaults are evaluated before their rows are written, which no query
 * can tell apart: rows written by a command are invisible to it anyway.
 * Every other table is written by a planned INSERT (table_sink.c), so that
 * rules, row security and BEFORE triggers see exactly what they expect.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "rewrite/rewriteHandler.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "shared/shared.h"
#include "shared/pg_compat.h"

/* Rows and bytes held in slots before they are written, as COPY does */
#define DIRECT_INSERT_MAX_ROWS	1000
#define DIRECT_INSERT_MAX_BYTES	65536

/* A column the rows do not name, and the expression that fills it */
typedef struct ColumnDefault
{
	AttrNumber	attnum;
	ExprState  *expr;
} ColumnDefault;

typedef struct DirectInsert
{
	Relation	rel;
	TupleDesc	slot_desc;		/* a copy that slots need not pin */
	EState	   *estate;
	ResultRelInfo *result;
	TransitionCaptureState *transition;
	CommandId	cid;
	MemoryContext chunk_cxt;	/* what table_multi_insert leaves behind */
	TupleTableSlot **slots;
	int			nslots;			/* created */
	int			nused;			/* holding rows not yet written */
	Size		bytes;			/* their size, roughly */
} DirectInsert;

/*
 * Whether rows naming these columns can be written without a planned
 * INSERT; false also when the INSERT would fail in a way it should report
 * itself (read-only or parallel mode), or when the table changed since the
 * caller read its columns.
 */
static bool
DirectInsertPossible(Relation rel, const DirectInsertColumns *columns)
{
	TriggerDesc *triggers = rel->trigdesc;
	TupleDesc	desc = RelationGetDescr(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rules != NULL)
		return false;
	/* Citus's shell of a table: only its executor writes where the rows belong */
	if (RelationIsCitusTable(RelationGetRelid(rel)))
		return false;
	if (triggers != NULL &&
		(triggers->trig_insert_before_row || triggers->trig_insert_instead_row))
		return false;
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED)
		return false;
	if ((XactReadOnly && rel->rd_rel->relpersistence != RELPERSISTENCE_TEMP) ||
		IsInParallelMode())
		return false;

	for (int i = 0; i < columns->ncolumns; i++)
	{
		AttrNumber	attnum = columns->attnums[i];
		Form_pg_attribute attr;

		if (attnum < 1 || attnum > desc->natts)
			return false;
		attr = TupleDescAttr(desc, attnum - 1);
		/* (the planned INSERT raises what a column that changed calls for) */
		if (attr->attisdropped || attr->attgenerated != '\0' ||
			attr->attidentity == ATTRIBUTE_IDENTITY_ALWAYS ||
			attr->atttypid != columns->types[i] ||
			attr->atttypmod != columns->typmods[i])
			return false;
	}
	return true;
}

/* The expressions filling the columns the rows do not name */
static ColumnDefault *
PrepareDefaults(Relation rel, const DirectInsertColumns *columns, int *ndefaults)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool	   *named = palloc0(sizeof(bool) * (desc->natts + 1));
	ColumnDefault *defaults = palloc(sizeof(ColumnDefault) * Max(desc->natts, 1));

	*ndefaults = 0;
	for (int i = 0; i < columns->ncolumns; i++)
		named[columns->attnums[i]] = true;

	for (AttrNumber attnum = 1; attnum <= desc->natts; attnum++)
	{
		Form_pg_attribute attr = TupleDescAttr(desc, attnum - 1);
		Node	   *expr;

		/* generated columns are computed once the row is complete */
		if (named[attnum] || attr->attisdropped || attr->attgenerated != '\0')
			continue;
		expr = build_column_default(rel, attnum);
		if (expr == NULL && get_typtype(attr->atttypid) == TYPTYPE_DOMAIN)
		{
			/* no default: a NULL the domain must accept, as INSERT checks */
			expr = coerce_to_domain((Node *) makeNullConst(attr->atttypid, -1,
														   attr->attcollation),
									InvalidOid, -1, attr->atttypid,
									COERCION_IMPLICIT, COERCE_IMPLICIT_CAST, -1, false);
		}
		if (expr == NULL)
			continue;
		defaults[*ndefaults].attnum = attnum;
		defaults[*ndefaults].expr = ExecInitExpr(expression_planner((Expr *) expr), NULL);
		(*ndefaults)++;
	}
	pfree(named);
	return defaults;
}

/* Opens the table as the executor would for an INSERT naming the columns */
static void
BeginDirectInsert(DirectInsert *state, Relation rel, const DirectInsertColumns *columns)
{
	Bitmapset  *inserted_cols = NULL;
	List	   *range_table;
	List	   *perminfos;

	for (int i = 0; i < columns->ncolumns; i++)
		inserted_cols = bms_add_member(inserted_cols,
									   columns->attnums[i] - FirstLowInvalidHeapAttributeNumber);
	range_table = compat_insert_range_table(rel, inserted_cols, &perminfos);

	/* raises the error the INSERT would raise */
	(void) compat_ExecCheckPermissions(range_table, perminfos, true);

	memset(state, 0, sizeof(DirectInsert));
	state->rel = rel;
	state->estate = CreateExecutorState();
	state->cid = GetCurrentCommandId(true);
	state->estate->es_output_cid = state->cid;
	compat_ExecInitRangeTable(state->estate, range_table, perminfos);
	state->result = makeNode(ResultRelInfo);
	ExecInitResultRelation(state->estate, state->result, 1);
	compat_CheckValidResultRel(state->result, CMD_INSERT);
	ExecOpenIndices(state->result, false);
	state->chunk_cxt = AllocSetContextCreate(CurrentMemoryContext,
											 "choreograph direct insert",
											 ALLOCSET_DEFAULT_SIZES);
	state->slots = palloc0(sizeof(TupleTableSlot *) * DIRECT_INSERT_MAX_ROWS);

	/*
	 * Slots made on the relation's own descriptor would each pin it with
	 * the resource owner, which costs more than the slot itself.
	 */
	state->slot_desc = CreateTupleDescCopy(RelationGetDescr(rel));

	AfterTriggerBeginQuery();
	state->transition = MakeTransitionCaptureState(rel->trigdesc, RelationGetRelid(rel),
												   CMD_INSERT);
	ExecBSInsertTriggers(state->estate, state->result);
}

/* Writes the rows held in slots, indexes them and queues their triggers */
static void
WriteHeldRows(DirectInsert *state)
{
	MemoryContext old;

	if (state->nused == 0)
		return;

	old = MemoryContextSwitchTo(state->chunk_cxt);
	table_multi_insert(state->rel, state->slots, state->nused, state->cid, 0, NULL);
	MemoryContextSwitchTo(old);

	for (int i = 0; i < state->nused; i++)
	{
		TupleTableSlot *slot = state->slots[i];
		List	   *recheck = NIL;

		if (state->result->ri_NumIndices > 0)
			recheck = compat_ExecInsertIndexTuples(state->result, slot, state->estate,
												   false, false, NULL, NIL);
		ExecARInsertTriggers(state->estate, state->result, slot, recheck,
							 state->transition);
		list_free(recheck);
		ExecClearTuple(slot);
		ResetPerTupleExprContext(state->estate);
	}
	MemoryContextReset(state->chunk_cxt);
	state->nused = 0;
	state->bytes = 0;
}

/* Fires the statement's AFTER triggers and closes what Begin opened */
static void
EndDirectInsert(DirectInsert *state)
{
	ExecASInsertTriggers(state->estate, state->result, state->transition);
	AfterTriggerEndQuery(state->estate);
	/* trigger firing made slots in the executor state: they pin the table */
	ExecResetTupleTable(state->estate->es_tupleTable, false);

	for (int i = 0; i < state->nslots; i++)
		ExecDropSingleTupleTableSlot(state->slots[i]);
	ExecCloseResultRelations(state->estate);
	ExecCloseRangeTableRelations(state->estate);
	FreeExecutorState(state->estate);
	MemoryContextDelete(state->chunk_cxt);
	pfree(state->slots);
	FreeTupleDesc(state->slot_desc);
}

/*
 * Writes nrows rows, each giving values for the columns described, into
 * the table, as the current user; returns false, having done nothing, when
 * the table needs a planned INSERT.  The caller holds RowExclusiveLock on
 * the table and has an active snapshot.
 */
bool
DirectInsertRows(Oid relid, const DirectInsertColumns *columns, int nrows,
				 Datum *const *values, bool *const *nulls)
{
	Relation	rel = table_open(relid, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		has_generated = desc->constr != NULL && desc->constr->has_generated_stored;
	DirectInsert state;
	ColumnDefault *defaults;
	int			ndefaults;
	ExprContext *econtext;

	if (!DirectInsertPossible(rel, columns))
	{
		table_close(rel, NoLock);
		return false;
	}

	BeginDirectInsert(&state, rel, columns);
	defaults = PrepareDefaults(rel, columns, &ndefaults);
	econtext = GetPerTupleExprContext(state.estate);

	for (int row = 0; row < nrows; row++)
	{
		TupleTableSlot *slot;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();

		if (state.nused == state.nslots)
			state.slots[state.nslots++] = MakeSingleTupleTableSlot(state.slot_desc,
																   table_slot_callbacks(rel));
		slot = state.slots[state.nused];

		ExecClearTuple(slot);
		memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
		for (int i = 0; i < columns->ncolumns; i++)
		{
			int			at = columns->attnums[i] - 1;

			slot->tts_values[at] = values[row][i];
			slot->tts_isnull[at] = nulls[row][i];
			if (!nulls[row][i] && TupleDescAttr(desc, at)->attlen == -1)
				state.bytes += VARSIZE_ANY(DatumGetPointer(values[row][i]));
		}

		old = MemoryContextSwitchTo(GetPerTupleMemoryContext(state.estate));
		for (int i = 0; i < ndefaults; i++)
		{
			int			at = defaults[i].attnum - 1;

			slot->tts_values[at] = ExecEvalExpr(defaults[i].expr, econtext,
												&slot->tts_isnull[at]);
		}
		ExecStoreVirtualTuple(slot);
		if (has_generated)
			ExecComputeStoredGenerated(state.result, state.estate, slot, CMD_INSERT);
		if (desc->constr != NULL)
			ExecConstraints(state.result, slot, state.estate);
		/* a partition written directly keeps to its bounds, as INSERT checks */
		if (rel->rd_rel->relispartition)
			ExecPartitionCheck(state.result, slot, state.estate, true);
		MemoryContextSwitchTo(old);

		/* the slot keeps its own copy: the per-row memory is reset */
		ExecMaterializeSlot(slot);
		ResetPerTupleExprContext(state.estate);

		state.bytes += MAXALIGN(SizeofHeapTupleHeader) + sizeof(Datum) * desc->natts;
		if (++state.nused == DIRECT_INSERT_MAX_ROWS || state.bytes >= DIRECT_INSERT_MAX_BYTES)
			WriteHeldRows(&state);
	}
	WriteHeldRows(&state);
	EndDirectInsert(&state);
	pfree(defaults);
	table_close(rel, NoLock);
	return true;
}
