/*
 * capture.c
 *		choreo_capture: change capture into a buffer, from a row trigger.
 *
 * Each row fires one item into the buffer named by the trigger's first
 * argument: the envelope {"op", "table", "new", "old"} in the column named
 * by the second (default "payload"), every other column defaulted.  All in
 * C, so the per-row path runs no PL/pgSQL; the write happens in batches.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "utils/rel.h"

#include "choreograph.h"

PG_FUNCTION_INFO_V1(choreo_capture);

Datum
choreo_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	PendingBuffer *buffer;
	const char *column;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("choreo_capture() was not called by the trigger manager")));
	trigger = trigdata->tg_trigger;
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("trigger \"%s\" on table \"%s\" must be fired for each row",
						trigger->tgname, RelationGetRelationName(trigdata->tg_relation)),
				 errhint("choreo_capture() fires one item per row; create the trigger with FOR EACH ROW.")));
	if (trigger->tgnargs < 1 || trigger->tgnargs > 2 || trigger->tgargs[0][0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" on table \"%s\" must name a buffer, and optionally a column",
						trigger->tgname, RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Create it with EXECUTE FUNCTION choreo_capture('buffer', 'column').")));

	column = trigger->tgnargs > 1 ? trigger->tgargs[1] : "payload";
	buffer = PendingBufferFor(trigger->tgargs[0]);
	BufferFireJsonb(buffer, PendingBufferColumn(buffer, column),
					TriggerEnvelope(trigdata, fcinfo->flinfo));

	if (TRIGGER_FIRED_AFTER(trigdata->tg_event))
		return PointerGetDatum(NULL);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return PointerGetDatum(trigdata->tg_newtuple);
	return PointerGetDatum(trigdata->tg_trigtuple);
}
