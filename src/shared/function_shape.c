/*
 * shared/function_shape.c
 *		What a function given to choreograph must look like to be called
 *		as a step's precheck or job, or as a hook's callback: a plain
 *		function, taking nothing or one argument, returning one value (or
 *		void).  Checked when it is given, so that a bad one fails there
 *		with a clear error rather than when it would run.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "shared/shared.h"

/*
 * Raises an error unless the function has the shape: the errors name the
 * function, and their details say what it serves as and what it must be.
 * Hook registrations call this every time: nothing is formatted unless it
 * is raised.
 */
void
CheckFunctionShape(Oid function, const FunctionShape *shape)
{
	HeapTuple	tuple;
	Form_pg_proc proc;
	Oid			argtype;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(function));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", function)));
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	argtype = proc->pronargs == 1 ? proc->proargtypes.values[0] : InvalidOid;

	if (proc->prokind != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a function", format_procedure(function)),
				 errdetail("%s must be a plain function, not a procedure or an aggregate.",
						   shape->serves_as)));
	if (proc->pronargs > 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s takes %d arguments", format_procedure(function), proc->pronargs),
				 errdetail("%s must take no argument, or one (%s).",
						   shape->serves_as, shape->argument)));
	if (OidIsValid(argtype) && OidIsValid(shape->only_argument_type) &&
		argtype != shape->only_argument_type)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s takes an argument of type %s, not %s", format_procedure(function),
						format_type_be(argtype), format_type_be(shape->only_argument_type)),
				 errdetail("%s must take no argument, or one of type %s (%s).",
						   shape->serves_as, format_type_be(shape->only_argument_type),
						   shape->argument)));
	if (OidIsValid(argtype) && get_typtype(argtype) == TYPTYPE_PSEUDO)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("function %s takes an argument of pseudo-type %s",
						format_procedure(function), format_type_be(argtype)),
				 errdetail("%s must take an argument of a real type, such as a table's row type or jsonb.",
						   shape->serves_as)));
	if (proc->proretset)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("function %s returns a set", format_procedure(function)),
				 errdetail("%s must return a single value.", shape->serves_as)));
	/* a trigger function (or another pseudo-type's) cannot be called as one */
	if (get_typtype(proc->prorettype) == TYPTYPE_PSEUDO &&
		proc->prorettype != VOIDOID && proc->prorettype != RECORDOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("function %s returns pseudo-type %s",
						format_procedure(function), format_type_be(proc->prorettype)),
				 errdetail("%s must return a value or void.", shape->serves_as)));
	ReleaseSysCache(tuple);
}
