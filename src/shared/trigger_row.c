/*
 * shared/trigger_row.c
 *		What C row triggers share (choreo_trigger runs a pipeline per row,
 *		choreo_capture fires an item per row): checking how they were
 *		called, the row they hand on, what they return, and the envelope
 *		{"op", "table", "new", "old"} of a change.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "shared/shared.h"

/* The row a row trigger hands on: NEW, or OLD for a DELETE */
static HeapTuple
TriggerRow(TriggerData *trigdata)
{
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return trigdata->tg_newtuple;
	return trigdata->tg_trigtuple;
}

static const char *
TriggerOperation(TriggerData *trigdata)
{
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		return "INSERT";
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return "UPDATE";
	return "DELETE";
}

/* The row of a trigger run as a datum of the table's row type */
Datum
TriggerRowDatum(TriggerData *trigdata)
{
	return heap_copy_tuple_as_datum(TriggerRow(trigdata),
									RelationGetDescr(trigdata->tg_relation));
}

/*
 * What envelopes of one trigger call site need, kept in the trigger's
 * fn_extra (which lives as long as the statement, whose table cannot
 * change meanwhile): the table's name and how to render its rows.
 */
typedef struct EnvelopeCache
{
	Oid			relid;
	char	   *table;			/* schema-qualified, quoted */
	RowJsonbLayout *layout;
} EnvelopeCache;

static EnvelopeCache *
EnvelopeCacheFor(FmgrInfo *flinfo, Relation rel)
{
	EnvelopeCache *cache = flinfo != NULL ? (EnvelopeCache *) flinfo->fn_extra : NULL;

	if (cache == NULL || cache->relid != RelationGetRelid(rel) ||
		cache->layout->desc != RelationGetDescr(rel))
	{
		MemoryContext cxt = flinfo != NULL ? flinfo->fn_mcxt : CurrentMemoryContext;

		/* a Citus shard's rows are its table's, in the name users know */
		Oid			table = CitusShardOwner(RelationGetRelid(rel));

		if (!OidIsValid(table))
			table = RelationGetRelid(rel);
		cache = MemoryContextAlloc(cxt, sizeof(EnvelopeCache));
		cache->relid = RelationGetRelid(rel);
		cache->table = MemoryContextStrdup(cxt,
										   quote_qualified_identifier(get_namespace_name(get_rel_namespace(table)),
																	  get_rel_name(table)));
		cache->layout = RowJsonbLayoutFor(RelationGetDescr(rel), cxt);
		if (flinfo != NULL)
			flinfo->fn_extra = cache;
	}
	return cache;
}

/* Writes a row as an object, or null */
static void
WriteRow(JsonbWriter *writer, EnvelopeCache *cache, HeapTuple tuple)
{
	if (tuple != NULL)
		JsonbWriterRow(writer, cache->layout, tuple);
	else
		JsonbWriterNull(writer);
}

/*
 * The envelope {"op", "table", "new", "old"} of a trigger call, written in
 * one pass.  flinfo (the trigger's call info) caches what does not change
 * from row to row.
 */
Jsonb *
TriggerEnvelope(TriggerData *trigdata, FmgrInfo *flinfo)
{
	EnvelopeCache *cache = EnvelopeCacheFor(flinfo, trigdata->tg_relation);
	JsonbWriter writer;
	HeapTuple	newrow = NULL;
	HeapTuple	oldrow = NULL;

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		newrow = trigdata->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		newrow = trigdata->tg_newtuple;
		oldrow = trigdata->tg_trigtuple;
	}
	else
		oldrow = trigdata->tg_trigtuple;

	/* keys in jsonb order: by length, then bytewise */
	JsonbWriterInit(&writer);
	JsonbWriterBeginObject(&writer, 4);
	JsonbWriterString(&writer, "op", 2);
	JsonbWriterString(&writer, "new", 3);
	JsonbWriterString(&writer, "old", 3);
	JsonbWriterString(&writer, "table", 5);
	JsonbWriterCString(&writer, TriggerOperation(trigdata));
	WriteRow(&writer, cache, newrow);
	WriteRow(&writer, cache, oldrow);
	JsonbWriterCString(&writer, cache->table);
	JsonbWriterEnd(&writer);
	return JsonbWriterFinish(&writer);
}

/*
 * Checks that a C trigger function was called as a row trigger with an
 * accepted number of arguments, the first non-empty; returns its data.
 * The messages say what it does per row ("purpose"), what its arguments
 * name ("arguments") and how to write them ("example").
 */
TriggerData *
RowTriggerData(FunctionCallInfo fcinfo, const char *function, int min_args,
			   int max_args, const char *purpose, const char *arguments,
			   const char *example)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s() was not called by the trigger manager", function)));
	trigger = trigdata->tg_trigger;
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("trigger \"%s\" on table \"%s\" must be fired for each row",
						trigger->tgname, RelationGetRelationName(trigdata->tg_relation)),
				 errhint("%s() %s; create the trigger with FOR EACH ROW.",
						 function, purpose)));
	if (trigger->tgnargs < min_args || trigger->tgnargs > max_args ||
		trigger->tgargs[0][0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" on table \"%s\" must name %s",
						trigger->tgname, RelationGetRelationName(trigdata->tg_relation),
						arguments),
				 errhint("Create it with EXECUTE FUNCTION %s(%s).", function, example)));
	return trigdata;
}

/*
 * What a row trigger that leaves the row alone returns: NULL after the
 * event, else the row as it came.
 */
Datum
RowTriggerUnchanged(TriggerData *trigdata)
{
	if (TRIGGER_FIRED_AFTER(trigdata->tg_event))
		return PointerGetDatum(NULL);
	return PointerGetDatum(TriggerRow(trigdata));
}
