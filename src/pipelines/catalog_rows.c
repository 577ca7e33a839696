/*
 * pipelines/catalog_rows.c
 *		Rows of choreograph.pipelines and choreograph.steps written without
 *		the functions (pg_restore, a role's own INSERT): what the shared row
 *		guard (shared/row_guard.c) lets through of them.
 *
 * A pipeline row must be the inserter's, in a schema where it may create;
 * a step row must belong to a pipeline that is there and the inserter's,
 * and use functions of the shape choreo_add_step accepts.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "pipelines/pipelines.h"

/* A pipelines row: the inserter's, in a schema where it may create */
static HeapTuple
PipelineRowAllowed(Oid user, TriggerData *trigdata)
{
	if (RowGuardMayWriteFor(user, trigdata, "owner") && RowGuardMayCreateIn(user, trigdata))
		return trigdata->tg_trigtuple;
	return NULL;
}

/* A steps row: its pipeline must be there and the inserter's */
static HeapTuple
StepRowAllowed(Oid user, TriggerData *trigdata)
{
	Datum		namespace;
	Datum		pipeline;
	Datum		step;
	Datum		function;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2];
	Oid			owner = InvalidOid;
	Oid			saved_userid;
	int			saved_sec_context;
	bool		found;
	char	   *pipeline_name;
	char	   *step_name;

	if (!RowGuardValue(trigdata, "namespace", &namespace) ||
		!RowGuardValue(trigdata, "pipeline", &pipeline) ||
		!RowGuardValue(trigdata, "step", &step))
		return trigdata->tg_trigtuple;
	args[0] = namespace;
	args[1] = pipeline;

	/*
	 * The pipeline is locked until this transaction ends: otherwise it
	 * could be dropped, and created again by another role, between this
	 * check and the foreign key's at the end of the statement, and the step
	 * would join the other role's pipeline.  Locking needs UPDATE, which
	 * only the tables' owner has; the query names everything with its
	 * schema.
	 */
	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	SetUserIdAndSecContext(trigdata->tg_relation->rd_rel->relowner,
						   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT owner::pg_catalog.oid FROM " CHOREO_SCHEMA ".pipelines"
							  " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
							  "   AND name OPERATOR(pg_catalog.=) $2"
							  " FOR KEY SHARE",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the pipeline of a step");
	SetUserIdAndSecContext(saved_userid, saved_sec_context);
	found = SPI_processed == 1;
	if (found)
	{
		bool		isnull;

		owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();

	if (!found)
	{
		RowGuardSkipOrphan();
		return NULL;
	}
	if (!has_privs_of_role(user, owner))
	{
		RowGuardSkipForRole(owner);
		return NULL;
	}

	pipeline_name = TextDatumGetCString(pipeline);
	step_name = TextDatumGetCString(step);
	if (RowGuardValue(trigdata, "job", &function))
		ValidateStepFunction(DatumGetObjectId(function), "job", pipeline_name, step_name);
	if (RowGuardValue(trigdata, "precheck", &function))
		ValidateStepFunction(DatumGetObjectId(function), "precheck", pipeline_name, step_name);
	return trigdata->tg_trigtuple;
}


/* Guards the definition tables' rows; called from _PG_init */
void
PipelineRowsGuard(void)
{
	RowGuardRegister("pipelines", PipelineRowAllowed);
	RowGuardRegister("steps", StepRowAllowed);
}
