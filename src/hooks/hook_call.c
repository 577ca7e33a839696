/*
 * hooks/hook_call.c
 *		What a hook's callback must be, and calling it with its payload as
 *		the role that registered it: for pre-commit hooks in the committing
 *		transaction, for post-commit hooks in a background worker.
 */
#include "postgres.h"

#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "hooks/hooks.h"

/*
 * Checks that a function can be a hook callback: a plain function taking
 * nothing or one jsonb (the payload), which the current role may execute.
 */
Oid
CheckHookCallback(Datum callback, const char *kind)
{
	static const FunctionShape pre_commit_shape = {"A pre-commit hook's callback", JSONBOID, "the payload"};
	static const FunctionShape post_commit_shape = {"A post-commit hook's callback", JSONBOID, "the payload"};
	Oid			function = DatumGetObjectId(callback);

	/* made once: every registration checks its callback */
	CheckFunctionShape(function, strcmp(kind, "pre-commit") == 0 ?
					   &pre_commit_shape : &post_commit_shape);

	if (compat_proc_aclcheck(function, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", format_procedure(function))));
	return function;
}

/* Adds the hook being called to the CONTEXT of its messages */
static void
HookErrorContext(void *arg)
{
	errcontext("choreograph hook %s", (const char *) arg);
}

/*
 * Calls a hook's callback with its payload, as the given role (which may
 * not change role: SECURITY_LOCAL_USERID_CHANGE).  Used for pre-commit
 * hooks and, by the workers, for post-commit hooks.
 */
void
CallHookFunction(Oid callback, Jsonb *payload, Oid userid)
{
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 1);
	Oid			saved_userid;
	int			saved_sec_context;
	ErrorContextCallback errcallback;

	/* the function may have been dropped since the hook was registered */
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(callback)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the function of a commit hook was dropped after the hook was registered"),
				 errdetail("The hook's function had OID %u.", callback)));

	errcallback.callback = HookErrorContext;
	errcallback.arg = format_procedure(callback);
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	fmgr_info(callback, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, flinfo.fn_nargs, InvalidOid,
							 NULL, NULL);
	fcinfo->args[0].value = PointerGetDatum(payload);
	fcinfo->args[0].isnull = payload == NULL;

	GetUserIdAndSecContext(&saved_userid, &saved_sec_context);
	SetUserIdAndSecContext(userid, saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PushActiveSnapshot(GetTransactionSnapshot());

	if (!(flinfo.fn_strict && flinfo.fn_nargs == 1 && payload == NULL))
		(void) FunctionCallInvoke(fcinfo);

	PopActiveSnapshot();
	SetUserIdAndSecContext(saved_userid, saved_sec_context);
	error_context_stack = errcallback.previous;
}

/* A hook's function for messages, also once it has been dropped */
const char *
HookName(Oid callback)
{
	char	   *name = format_procedure_extended(callback, FORMAT_PROC_INVALID_AS_NULL);

	return name != NULL ? name : "(a dropped function)";
}

