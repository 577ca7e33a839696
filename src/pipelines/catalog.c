/*
 * pipelines/catalog.c
 *		Pipeline definitions: choreo_add_step, choreo_remove_step,
 *		choreo_drop_pipeline, and their validation and ownership rules.
 *
 * Definitions are rows of choreograph.pipelines and choreograph.steps.
 * Those tables are readable by everyone but writable only by their owner
 * (the role that created the extension): the functions here resolve the
 * pipeline's name as the caller (names.c: a new pipeline needs CREATE on
 * its schema), check that the caller owns it, then write as the tables'
 * owner, with a fixed search_path so that nothing of the caller's can be
 * resolved with the owner's rights.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "pipelines/pipelines.h"

const DefinitionKind PipelineKind = {"pipeline", "pipelines"};

/*
 * Checks that a function can serve as a step's precheck or job: a plain
 * function, not returning a set, taking zero or one argument of a real type.
 */
void
ValidateStepFunction(Oid function, const char *role, const char *pipeline,
					 const char *step)
{
	FunctionShape shape;

	shape.serves_as = psprintf("The %s of step \"%s\" of pipeline \"%s\"",
							   role, step, pipeline);
	shape.only_argument_type = InvalidOid;
	shape.argument = "the run's input";
	CheckFunctionShape(function, &shape);
}

PG_FUNCTION_INFO_V1(choreo_add_step);

/*
 * Appends a step to a pipeline, or inserts it at a 1-based position.  The
 * name is looked up as a run looks it up; when it finds no pipeline, one is
 * created, owned by the caller, in the named schema or the first schema of
 * search_path, which needs CREATE on it.
 */
Datum
choreo_add_step(PG_FUNCTION_ARGS)
{
	char	   *written = NameArgument(fcinfo, 0, "pipeline");
	char	   *step = NameArgument(fcinfo, 1, "step");
	DefinitionName name;
	DefinitionId id;
	bool		exists;
	const char *pipeline;
	Oid			job;
	Oid			precheck = InvalidOid;
	ExtensionWrite write;
	Oid			argtypes[6] = {OIDOID, TEXTOID, TEXTOID, INT4OID, OIDOID, OIDOID};
	Datum		args[6] = {0};
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		nsteps;
	int32		position;

	ParseDefinitionName(&PipelineKind, written, &name);
	pipeline = name.display;
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job of step \"%s\" of pipeline \"%s\" must not be null",
						step, pipeline)));
	job = PG_GETARG_OID(2);
	ValidateStepFunction(job, "job", pipeline, step);
	if (!PG_ARGISNULL(3))
	{
		precheck = PG_GETARG_OID(3);
		ValidateStepFunction(precheck, "precheck", pipeline, step);
	}
	if (!PG_ARGISNULL(4) && PG_GETARG_INT32(4) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("position %d is out of range", PG_GETARG_INT32(4)),
				 errdetail("Positions start at 1.")));
	/* as the caller, with the caller's search_path */
	exists = FindOrChooseDefinition(&PipelineKind, &name, &id);

	BeginExtensionWrite(&write, true);

	args[0] = ObjectIdGetDatum(id.namespace);
	args[1] = CStringGetTextDatum(NameStr(id.name));
	args[2] = ObjectIdGetDatum(write.caller);
	if (!exists)
	{
		Oid			pipeline_argtypes[3] = {OIDOID, TEXTOID, OIDOID};

		ExecuteExtensionQuery("INSERT INTO " CHOREO_SCHEMA ".pipelines (namespace, name, owner)"
							  " VALUES ($1::pg_catalog.regnamespace, $2, $3::pg_catalog.regrole)"
							  " ON CONFLICT (namespace, name) DO NOTHING",
							  3, pipeline_argtypes, args, SPI_OK_INSERT);
	}
	if (!LockOwnedDefinition(&PipelineKind, &write, &id, pipeline))
		DefinitionNotFound(&PipelineKind, &name);	/* dropped concurrently */

	args[2] = CStringGetTextDatum(step);
	ExecuteExtensionQuery("SELECT pg_catalog.count(*),"
						  "       pg_catalog.count(*) FILTER (WHERE step OPERATOR(pg_catalog.=) $3)"
						  "  FROM " CHOREO_SCHEMA ".steps"
						  " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
						  "   AND pipeline OPERATOR(pg_catalog.=) $2",
						  3, argtypes, args, SPI_OK_SELECT);
	nsteps = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									SPI_tuptable->tupdesc, 2, &isnull)) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("step \"%s\" already exists in pipeline \"%s\"",
						step, pipeline)));

	position = PG_ARGISNULL(4) ? (int32) nsteps + 1 : PG_GETARG_INT32(4);
	if (position > nsteps + 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("position %d is out of range for pipeline \"%s\"",
						position, pipeline),
				 errdetail("The pipeline has %lld steps; a new step's position must be between 1 and %lld.",
						   (long long) nsteps, (long long) nsteps + 1)));
	args[3] = Int32GetDatum(position);

	if (position <= nsteps)
		ExecuteExtensionQuery("UPDATE " CHOREO_SCHEMA ".steps"
							  "   SET position = position OPERATOR(pg_catalog.+) 1"
							  " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
							  "   AND pipeline OPERATOR(pg_catalog.=) $2"
							  "   AND position OPERATOR(pg_catalog.>=) $4",
							  4, argtypes, args, SPI_OK_UPDATE);

	args[4] = ObjectIdGetDatum(job);
	args[5] = ObjectIdGetDatum(precheck);
	if (!OidIsValid(precheck))
		nulls[5] = 'n';
	if (SPI_execute_with_args("INSERT INTO " CHOREO_SCHEMA ".steps"
							  " (namespace, pipeline, step, position, job, precheck)"
							  " VALUES ($1::pg_catalog.regnamespace, $2, $3, $4,"
							  "         $5::pg_catalog.regprocedure, $6::pg_catalog.regprocedure)",
							  6, argtypes, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert step \"%s\" of pipeline \"%s\"", step, pipeline);

	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_remove_step);

/* Removes a step; later steps move up one position */
Datum
choreo_remove_step(PG_FUNCTION_ARGS)
{
	char	   *written = NameArgument(fcinfo, 0, "pipeline");
	char	   *step = NameArgument(fcinfo, 1, "step");
	DefinitionName name;
	DefinitionId id;
	ExtensionWrite write;
	Oid			argtypes[4] = {OIDOID, TEXTOID, TEXTOID, INT4OID};
	Datum		args[4];
	bool		isnull;

	BeginDefinitionChange(&PipelineKind, written, &write, &name, &id);

	args[0] = ObjectIdGetDatum(id.namespace);
	args[1] = CStringGetTextDatum(NameStr(id.name));
	args[2] = CStringGetTextDatum(step);
	if (ExecuteExtensionQuery("DELETE FROM " CHOREO_SCHEMA ".steps"
							  " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
							  "   AND pipeline OPERATOR(pg_catalog.=) $2"
							  "   AND step OPERATOR(pg_catalog.=) $3"
							  " RETURNING position",
							  3, argtypes, args, SPI_OK_DELETE_RETURNING) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("step \"%s\" of pipeline \"%s\" does not exist",
						step, name.display)));
	args[3] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

	ExecuteExtensionQuery("UPDATE " CHOREO_SCHEMA ".steps"
						  "   SET position = position OPERATOR(pg_catalog.-) 1"
						  " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
						  "   AND pipeline OPERATOR(pg_catalog.=) $2"
						  "   AND position OPERATOR(pg_catalog.>) $4",
						  4, argtypes, args, SPI_OK_UPDATE);

	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_drop_pipeline);

/* Drops a pipeline and all its steps */
Datum
choreo_drop_pipeline(PG_FUNCTION_ARGS)
{
	DefinitionName name;
	DefinitionId id;
	ExtensionWrite write;

	/* its steps go with it (ON DELETE CASCADE) */
	BeginDefinitionChange(&PipelineKind, NameArgument(fcinfo, 0, "pipeline"), &write,
						  &name, &id);
	DeleteDefinition(&PipelineKind, &id);
	EndExtensionWrite(&write);
	PG_RETURN_VOID();
}
