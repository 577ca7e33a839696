/*
 * buffers/capture.c
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

#include "buffers/buffers.h"

PG_FUNCTION_INFO_V1(choreo_capture);

Datum
choreo_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = RowTriggerData(fcinfo, "choreo_capture", 1, 2,
										   "fires one item per row",
										   "a buffer, and optionally a column",
										   "'buffer', 'column'");
	Trigger    *trigger = trigdata->tg_trigger;
	const char *column = trigger->tgnargs > 1 ? trigger->tgargs[1] : "payload";
	PendingBuffer *buffer;

	PreventInSecurityRestrictedOperation("capture a change into a buffer");
	buffer = PendingBufferFor(trigger->tgargs[0], strlen(trigger->tgargs[0]), NULL);

	BufferFireJsonb(buffer, PendingBufferColumn(buffer, column),
					TriggerEnvelope(trigdata, fcinfo->flinfo));
	return RowTriggerUnchanged(trigdata);
}
