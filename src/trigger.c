/*
 * trigger.c
 *		choreo_trigger: running a pipeline from a row trigger.
 *
 * The run's input is the row (NEW, or OLD for DELETE), for steps that take
 * the table's row type; steps that take jsonb get an envelope telling the
 * operation: {"op", "table", "new", "old"}.  Both are made only if a step
 * asks for them.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "choreograph.h"

/* The row a trigger run hands to steps: NEW, or OLD for a DELETE */
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

/* Adds a row, or null, as the value of an envelope's key */
static void
PushRow(JsonbParseState **state, const char *key, HeapTuple tuple,
		TupleDesc desc)
{
	PushJsonbCString(state, WJB_KEY, key);
	if (tuple == NULL)
		PushJsonbNull(state, WJB_VALUE);
	else
		PushJsonbDatum(state, WJB_VALUE,
					   DatumToJsonb(heap_copy_tuple_as_datum(tuple, desc),
									false, desc->tdtypeid));
}

/* The envelope {"op", "table", "new", "old"} of a trigger run */
Jsonb *
TriggerEnvelope(TriggerData *trigdata)
{
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	JsonbParseState *state = NULL;
	HeapTuple	newrow = NULL;
	HeapTuple	oldrow = NULL;
	char	   *table;

	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		newrow = trigdata->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		newrow = trigdata->tg_newtuple;
		oldrow = trigdata->tg_trigtuple;
	}
	else
		oldrow = trigdata->tg_trigtuple;

	table = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									   RelationGetRelationName(rel));

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	PushJsonbCString(&state, WJB_KEY, "op");
	PushJsonbCString(&state, WJB_VALUE, TriggerOperation(trigdata));
	PushJsonbCString(&state, WJB_KEY, "table");
	PushJsonbCString(&state, WJB_VALUE, table);
	PushRow(&state, "new", newrow, desc);
	PushRow(&state, "old", oldrow, desc);
	return JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

PG_FUNCTION_INFO_V1(choreo_trigger);

/*
 * Row trigger running the pipeline named by its argument.  Before and
 * instead-of triggers return the row unchanged; a fatal step error fails
 * the statement (or, for a deferred constraint trigger, the commit).
 */
Datum
choreo_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	RunInput	input;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("choreo_trigger() was not called by the trigger manager")));
	trigger = trigdata->tg_trigger;
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("trigger \"%s\" on table \"%s\" must be fired for each row",
						trigger->tgname, RelationGetRelationName(trigdata->tg_relation)),
				 errhint("choreo_trigger() runs a pipeline per row; create the trigger with FOR EACH ROW.")));
	if (trigger->tgnargs != 1 || trigger->tgargs[0][0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" on table \"%s\" must name one pipeline",
						trigger->tgname, RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Create it with EXECUTE FUNCTION choreo_trigger('pipeline').")));

	memset(&input, 0, sizeof(RunInput));
	input.type = RelationGetDescr(trigdata->tg_relation)->tdtypeid;
	input.trigger = trigdata;
	(void) RunPipeline(trigger->tgargs[0], &input, false, false);

	if (TRIGGER_FIRED_AFTER(trigdata->tg_event))
		return PointerGetDatum(NULL);
	return PointerGetDatum(TriggerRow(trigdata));
}
