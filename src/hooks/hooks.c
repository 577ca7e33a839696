/*
 * hooks/hooks.c
 *		Commit hooks: choreo_pre_commit (run in the committing transaction)
 *		and choreo_post_commit / choreo_retry_hook (an outbox row, run later
 *		by a background worker, see worker.c).
 *
 * Pre-commit hooks are kept in TopTransactionContext, in registration
 * order, each with the subtransaction nesting level that registered it, so
 * that a rolled-back savepoint forgets exactly its own hooks (they are
 * always the tail of the queue).  Keys are deduplicated through a hash
 * table, per transaction and savepoint-exact in the same way.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "hooks/hooks.h"
#include "workers/workers.h"
#include "shared/pg_compat.h"

/* The keys used so far in this transaction, savepoint-exact */
typedef struct TransactionKeys
{
	HTAB	   *hash;			/* of const char *: "role/key" */
	List	   *entries;		/* of KeyEntry, in registration order */
	const char *last;			/* the key added or found last: a fast path */
	const char *last_text;		/* its text after the role */
	Oid			last_role;
} TransactionKeys;

typedef struct KeyEntry
{
	char	   *key;
	int			nest_level;
} KeyEntry;

typedef struct PreCommitHook
{
	Oid			callback;
	Oid			userid;			/* the registering role: the hook runs as it */
	Jsonb	   *payload;		/* NULL for SQL NULL */
	bool		log_errors;		/* on_error => 'log' */
	int			nest_level;
	int			generation;		/* 1, or one more than the hook registering it */
} PreCommitHook;

static List *pre_commit_hooks = NIL;	/* of PreCommitHook *, in TopTransactionContext */
static int	next_pre_commit_hook = 0;	/* index of the next one to run */
static int	running_generation = 0; /* of the pre-commit hook running now */
static TransactionKeys pre_commit_keys;
static TransactionKeys post_commit_keys;

/* the transaction whose post-commit hooks to announce at commit; 0: none */
static uint64 announce_at_commit = 0;
static bool wake_workers_at_commit = false;

/* the outbox INSERT, prepared once per backend */
static SPIPlanPtr outbox_insert = NULL;

/*
 * Adds a key of the current role; returns false when the transaction
 * already has it.  Keys are the registering role's own: another role's
 * code (a SECURITY DEFINER function the transaction calls) registering the
 * same key must not make this role's registration a no-op.  A loop
 * registering with one key (the common case) compares it with the last key
 * and allocates nothing.
 */
static bool
TransactionKeysAdd(TransactionKeys *keys, text *key_text)
{
	const char *data = VARDATA_ANY(key_text);
	int			len = VARSIZE_ANY_EXHDR(key_text);
	Oid			role = GetUserId();
	MemoryContext old;
	KeyEntry   *entry;
	bool		found;
	char	   *copy;
	char	   *key;

	if (keys->last != NULL && keys->last_role == role &&
		strncmp(keys->last_text, data, len) == 0 && keys->last_text[len] == '\0')
		return false;

	old = MemoryContextSwitchTo(TopTransactionContext);
	key = psprintf("%u/%.*s", role, len, data);

	if (keys->hash == NULL)
		keys->hash = StringPointerHashCreate("choreograph hook keys", 64, sizeof(char *),
											 TopTransactionContext);
	entry = hash_search(keys->hash, &key, HASH_FIND, &found);
	if (found)
	{
		keys->last = *(char **) entry;
		keys->last_text = strchr(keys->last, '/') + 1;
		keys->last_role = role;
		pfree(key);
		MemoryContextSwitchTo(old);
		return false;
	}

	copy = key;
	entry = palloc(sizeof(KeyEntry));
	entry->key = copy;
	entry->nest_level = GetCurrentTransactionNestLevel();
	keys->entries = lappend(keys->entries, entry);
	*(char **) hash_search(keys->hash, &copy, HASH_ENTER, NULL) = copy;
	keys->last = copy;
	keys->last_text = strchr(copy, '/') + 1;
	keys->last_role = role;
	MemoryContextSwitchTo(old);
	return true;
}

/* Forgets the keys added at or below a rolled-back nesting level */
static void
TransactionKeysAtSubAbort(TransactionKeys *keys, int nest_level)
{
	while (keys->entries != NIL)
	{
		KeyEntry   *entry = llast(keys->entries);

		if (entry->nest_level < nest_level)
			break;
		hash_search(keys->hash, &entry->key, HASH_REMOVE, NULL);
		keys->entries = list_delete_last(keys->entries);
		keys->last = NULL;
		/* a loop of failing exception blocks must not grow the memory */
		pfree(entry->key);
		pfree(entry);
	}
}

/*
 * Hands the keys of a released subtransaction to its parent.  Levels never
 * decrease along the list, so only its tail needs looking at.
 */
static void
TransactionKeysAtSubCommit(TransactionKeys *keys, int nest_level)
{
	for (int i = list_length(keys->entries) - 1; i >= 0; i--)
	{
		KeyEntry   *entry = list_nth(keys->entries, i);

		if (entry->nest_level < nest_level)
			break;
		entry->nest_level = nest_level - 1;
	}
}

/*
 * Checks that a function can be a hook callback: a plain function taking
 * nothing or one jsonb (the payload), which the current role may execute.
 */
Oid
CheckHookCallback(Datum callback, const char *kind)
{
	Oid			function = DatumGetObjectId(callback);
	HeapTuple	tuple;
	Form_pg_proc proc;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(function));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", function)));
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	if (proc->prokind != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s is not a function", format_procedure(function)),
				 errdetail("A %s hook's callback must be a plain function.", kind)));
	if (proc->pronargs > 1 ||
		(proc->pronargs == 1 && proc->proargtypes.values[0] != JSONBOID))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function %s cannot be a %s hook", format_procedure(function), kind),
				 errdetail("A hook's callback takes no argument, or one jsonb argument (the payload).")));
	if (proc->proretset)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("function %s returns a set", format_procedure(function)),
				 errdetail("A %s hook's callback must return a single value or void.", kind)));
	/* a trigger function (or another pseudo-type's) cannot be called as one */
	if (get_typtype(proc->prorettype) == TYPTYPE_PSEUDO &&
		proc->prorettype != VOIDOID && proc->prorettype != RECORDOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("function %s returns pseudo-type %s", format_procedure(function),
						format_type_be(proc->prorettype)),
				 errdetail("A %s hook's callback must return a value or void.", kind)));
	ReleaseSysCache(tuple);

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
static const char *
HookName(Oid callback)
{
	char	   *name = format_procedure_extended(callback, FORMAT_PROC_INVALID_AS_NULL);

	return name != NULL ? name : "(a dropped function)";
}

/* Runs one pre-commit hook; in 'log' mode, its error is only a warning */
static void
RunPreCommitHook(PreCommitHook *hook)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	running_generation = hook->generation;
	if (!hook->log_errors)
		CallHookFunction(hook->callback, hook->payload, hook->userid);
	else
	{
		/*
		 * Deferred constraint checks queued by earlier work are not this
		 * hook's to swallow: fire them first.  Those this hook's writes
		 * queue are fired inside its subtransaction, so that a violation
		 * counts as the hook's error.
		 */
		AfterTriggerFireDeferred();
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			CallHookFunction(hook->callback, hook->payload, hook->userid);
			AfterTriggerFireDeferred();
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
			if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
				ReThrowError(edata);
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("pre-commit hook %s failed: %s",
							HookName(hook->callback), edata->message),
					 errdetail("The hook was registered with on_error => 'log': its writes were rolled back and the commit goes on.")));
			FreeErrorData(edata);
		}
		PG_END_TRY();
	}
	running_generation = 0;
	CommandCounterIncrement();
}

static bool
PreCommitHooksPending(void)
{
	return next_pre_commit_hook < list_length(pre_commit_hooks);
}

/*
 * Runs the queued pre-commit hooks in order, including those they queue;
 * called at PRE_COMMIT and PRE_PREPARE.
 */
static void
PreCommitHooksRun(void)
{
	while (PreCommitHooksPending())
	{
		PreCommitHook *hook = list_nth(pre_commit_hooks, next_pre_commit_hook++);

		CHECK_FOR_INTERRUPTS();
		RunPreCommitHook(hook);
	}
}

static void
HooksAtSubAbort(int nest_level)
{
	while (pre_commit_hooks != NIL &&
		   list_length(pre_commit_hooks) > next_pre_commit_hook)
	{
		PreCommitHook *hook = llast(pre_commit_hooks);

		if (hook->nest_level < nest_level)
			break;
		pre_commit_hooks = list_delete_last(pre_commit_hooks);
		if (hook->payload != NULL)
			pfree(hook->payload);
		pfree(hook);
	}
	TransactionKeysAtSubAbort(&pre_commit_keys, nest_level);
	TransactionKeysAtSubAbort(&post_commit_keys, nest_level);
}

static void
HooksAtSubCommit(int nest_level)
{
	for (int i = list_length(pre_commit_hooks) - 1; i >= 0; i--)
	{
		PreCommitHook *hook = list_nth(pre_commit_hooks, i);

		if (hook->nest_level < nest_level)
			break;
		hook->nest_level = nest_level - 1;
	}
	TransactionKeysAtSubCommit(&pre_commit_keys, nest_level);
	TransactionKeysAtSubCommit(&post_commit_keys, nest_level);
}

/* Forgets everything at the end of the transaction (memory goes with it) */
static void
HooksAtEnd(void)
{
	pre_commit_hooks = NIL;
	next_pre_commit_hook = 0;
	running_generation = 0;
	memset(&pre_commit_keys, 0, sizeof(TransactionKeys));
	memset(&post_commit_keys, 0, sizeof(TransactionKeys));
	wake_workers_at_commit = false;
	announce_at_commit = 0;
}

/*
 * Asks for the background workers to be woken when this transaction
 * commits, and told that transaction txid has hooks for them (0: work
 * that is not a new transaction's, such as a retry).
 */
static void
WakeWorkersAtCommit(uint64 txid)
{
	if (!wake_workers_at_commit)
		announce_at_commit = txid;
	else if (announce_at_commit != txid)
		announce_at_commit = 0; /* two kinds of work: "look everywhere" */
	wake_workers_at_commit = true;
}

static void
HooksAtCommit(void)
{
	if (wake_workers_at_commit)
		WorkersWake(POST_COMMIT_SOURCE, announce_at_commit);
}

/* COMMIT PREPARED may commit post-commit hooks another session registered */
static void
HooksAfterCommitPrepared(void)
{
	WorkersWake(POST_COMMIT_SOURCE, 0);	/* whose hooks: not known here */
}

static const TransactionParticipant hooks_participant = {
	.pending = PreCommitHooksPending,
	.run_pre_commit = PreCommitHooksRun,
	.at_commit = HooksAtCommit,
	.at_end = HooksAtEnd,
	.at_sub_abort = HooksAtSubAbort,
	.at_sub_commit = HooksAtSubCommit,
	.after_commit_prepared = HooksAfterCommitPrepared,
};

/* Registers the hooks' transaction work; called from _PG_init, before the buffers' */
void
HooksRegisterTransactionWork(void)
{
	TransactionRegisterParticipant(&hooks_participant);
}

PG_FUNCTION_INFO_V1(choreo_pre_commit);

/* Queues a function to run when the transaction commits, before it does */
Datum
choreo_pre_commit(PG_FUNCTION_ARGS)
{
	PreCommitHook *hook;
	MemoryContext old;
	bool		log_errors;
	Oid			callback;
	int			generation = running_generation + 1;

	PreventInSecurityRestrictedOperation("register a pre-commit hook");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pre-commit hook callback must not be null")));
	/* a key seen before makes this a no-op: O(1), nothing else to check */
	if (!PG_ARGISNULL(3) &&
		!TransactionKeysAdd(&pre_commit_keys, PG_GETARG_TEXT_PP(3)))
		PG_RETURN_VOID();
	callback = CheckHookCallback(PG_GETARG_DATUM(0), "pre-commit");
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("on_error must not be null")));
	else
	{
		char	   *on_error = text_to_cstring(PG_GETARG_TEXT_PP(2));

		if (strcmp(on_error, "abort") == 0)
			log_errors = false;
		else if (strcmp(on_error, "log") == 0)
			log_errors = true;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid on_error value \"%s\"", on_error),
					 errhint("Use 'abort' (the error aborts the transaction) or 'log' (the error is logged, the commit goes on).")));
	}
	if (generation > choreo_max_depth)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("pre-commit hooks registered hooks %d levels deep", generation),
				 errdetail("Hook %s would start level %d; the limit is set by \"choreograph.max_depth\" (%d).",
						   format_procedure(callback), generation, choreo_max_depth),
				 errhint("A hook that must run once per transaction can be registered with a key.")));

	old = MemoryContextSwitchTo(TopTransactionContext);
	hook = palloc(sizeof(PreCommitHook));
	hook->callback = callback;
	hook->userid = GetUserId();
	hook->payload = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P_COPY(1);
	hook->log_errors = log_errors;
	hook->nest_level = GetCurrentTransactionNestLevel();
	hook->generation = generation;
	pre_commit_hooks = lappend(pre_commit_hooks, hook);
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}

/* Raises an error unless background workers run this database's hooks */
static void
RequireWorkers(void)
{
	static bool database_checked = false;
	char	   *database;

	if (database_checked)
		return;
	if (!choreo_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("post-commit hooks need choreograph's background workers"),
				 errhint("Add choreograph to shared_preload_libraries and restart the server.")));
	database = get_database_name(MyDatabaseId);
	if (strcmp(database, choreo_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("post-commit hooks are run in database \"%s\" only, not in \"%s\"",
						choreo_database, database),
				 errhint("Set choreograph.database to \"%s\" and restart the server.", database)));
	database_checked = true;	/* neither can change in this backend */
}

PG_FUNCTION_INFO_V1(choreo_post_commit);

/*
 * Queues a function to run after the transaction commits, in a background
 * worker: an outbox row written in this transaction.
 */
Datum
choreo_post_commit(PG_FUNCTION_ARGS)
{
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	ExtensionWrite write;
	Oid			callback;
	uint64		txid;

	PreventInSecurityRestrictedOperation("register a post-commit hook");
	RequireWorkers();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("post-commit hook callback must not be null")));
	callback = CheckHookCallback(PG_GETARG_DATUM(0), "post-commit");
	if (!PG_ARGISNULL(2) &&
		!TransactionKeysAdd(&post_commit_keys, PG_GETARG_TEXT_PP(2)))
		PG_RETURN_VOID();

	txid = U64FromFullTransactionId(GetTopFullTransactionId());
	args[0] = Int64GetDatum((int64) txid);
	args[1] = ObjectIdGetDatum(callback);
	args[2] = ObjectIdGetDatum(GetUserId());
	if (PG_ARGISNULL(1))
		nulls[3] = 'n';
	else
		args[3] = PG_GETARG_DATUM(1);

	/*
	 * The prepared INSERT names everything with its schema and calls no
	 * operator or function by name, so it needs no fixed search_path.
	 */
	BeginExtensionWrite(&write, false);
	if (outbox_insert == NULL)
	{
		static const char *query =
			"INSERT INTO " CHOREO_SCHEMA ".hooks (txid, callback, role, payload)"
			" VALUES ($1, $2::pg_catalog.regprocedure, $3::pg_catalog.regrole, $4)";
		Oid			argtypes[4] = {INT8OID, OIDOID, OIDOID, JSONBOID};
		SPIPlanPtr	plan = SPI_prepare(query, 4, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare \"%s\": %s", query,
				 SPI_result_code_string(SPI_result));
		outbox_insert = plan;
	}
	if (SPI_execute_plan(outbox_insert, args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not queue post-commit hook");
	EndExtensionWrite(&write);

	WakeWorkersAtCommit(txid);
	PG_RETURN_VOID();
}

/*
 * Locks a post-commit hook's outbox row and checks that the caller may act
 * on it: the registering role, its members and superusers may.  A hook
 * being run is locked by its worker: this waits for the attempt to end
 * (and then finds the row gone if the hook succeeded).
 */
static void
LockOwnedHook(ExtensionWrite *write, int64 id, const char *action)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(id)};
	bool		isnull;
	Oid			role;

	if (ExecuteExtensionQuery("SELECT role::pg_catalog.oid FROM " CHOREO_SCHEMA ".hooks"
							  " WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
							  1, argtypes, args, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("post-commit hook %lld does not exist", (long long) id)));
	role = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(write->caller, role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s post-commit hook %lld", action, (long long) id),
				 errdetail("Only the role that registered a hook, its members and superusers may %s it.",
						   action)));
}

/* The hook id argument of choreo_retry_hook and choreo_discard_hook */
static int64
HookIdArgument(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("hook id must not be null")));
	return PG_GETARG_INT64(0);
}

PG_FUNCTION_INFO_V1(choreo_retry_hook);

/* Queues a failed (or waiting) post-commit hook to run again now */
Datum
choreo_retry_hook(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	ExtensionWrite write;
	int64		id;

	RequireWorkers();
	id = HookIdArgument(fcinfo);
	args[0] = Int64GetDatum(id);

	BeginExtensionWrite(&write, true);
	LockOwnedHook(&write, id, "retry");
	ExecuteExtensionQuery("UPDATE " CHOREO_SCHEMA ".hooks"
						  "   SET attempts = 0, next_attempt_at = pg_catalog.now()"
						  " WHERE id OPERATOR(pg_catalog.=) $1",
						  1, argtypes, args, SPI_OK_UPDATE);
	EndExtensionWrite(&write);

	WakeWorkersAtCommit(0);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_discard_hook);

/*
 * Removes a queued or failed post-commit hook: it will not run (again).
 * Like any write, it takes effect when the caller's transaction commits.
 */
Datum
choreo_discard_hook(PG_FUNCTION_ARGS)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	ExtensionWrite write;
	int64		id;

	id = HookIdArgument(fcinfo);
	args[0] = Int64GetDatum(id);

	BeginExtensionWrite(&write, true);
	LockOwnedHook(&write, id, "discard");
	ExecuteExtensionQuery("DELETE FROM " CHOREO_SCHEMA ".hooks"
						  " WHERE id OPERATOR(pg_catalog.=) $1",
						  1, argtypes, args, SPI_OK_DELETE);
	EndExtensionWrite(&write);

	/* later hooks of its transaction no longer wait for it */
	WakeWorkersAtCommit(0);
	PG_RETURN_VOID();
}
