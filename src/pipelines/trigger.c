/*
 * pipelines/trigger.c
 *		choreo_trigger: running a pipeline from a row trigger.
 *
 * The run's input is the row (NEW, or OLD for DELETE), for steps that take
 * the table's row type; steps that take jsonb get an envelope telling the
 * operation: {"op", "table", "new", "old"} (trigger_row.c).  Both are made
 * only if a step asks for them (run.c).  On a Citus cluster the trigger
 * fires on the shard holding the row, on its node; the row and the
 * envelope are the table's all the same.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "utils/rel.h"

#include "pipelines/pipelines.h"

PG_FUNCTION_INFO_V1(choreo_trigger);

/*
 * Row trigger running the pipeline named by its argument.  Before and
 * instead-of triggers return the row unchanged; a fatal step error fails
 * the statement (or, for a deferred constraint trigger, the commit).
 */
Datum
choreo_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = RowTriggerData(fcinfo, "choreo_trigger", 1, 1,
										   "runs a pipeline per row", "one pipeline",
										   "'pipeline'");
	RunInput	input;
	Oid			table_type;

	memset(&input, 0, sizeof(RunInput));
	input.type = RelationGetDescr(trigdata->tg_relation)->tdtypeid;
	/* a trigger Citus fires on a shard: the run sees a row of the table */
	table_type = ShardRowTableType(input.type);
	if (OidIsValid(table_type))
	{
		input.shard_type = input.type;
		input.type = table_type;
	}
	input.trigger = trigdata;
	input.trigger_flinfo = fcinfo->flinfo;
	(void) RunPipeline(trigdata->tg_trigger->tgargs[0], NULL, &input, false, false);
	return RowTriggerUnchanged(trigdata);
}
