/*
 * hooks/pre_commit.c
 *		Pre-commit hooks: choreo_pre_commit queues a function that the
 *		committing transaction runs, in registration order, before it
 *		commits (shared/transaction.c calls them at PRE_COMMIT and
 *		PRE_PREPARE, before the buffers are flushed).
 *
 * The queue is kept in TopTransactionContext as a savepoint list
 * (shared/savepoint_list.c), so that a rolled-back savepoint forgets
 * exactly its own hooks; keys are deduplicated the same way (hook_keys.c).
 * A hook registering hooks starts a new generation, bounded by
 * choreograph.max_depth.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/regproc.h"

#include "hooks/hooks.h"

typedef struct PreCommitHook
{
	SavepointTag tag;			/* first: a savepoint list's entry */
	Oid			callback;
	Oid			userid;			/* the registering role: the hook runs as it */
	Jsonb	   *payload;		/* NULL for SQL NULL */
	bool		log_errors;		/* on_error => 'log' */
	int			generation;		/* 1, or one more than the hook registering it */
} PreCommitHook;

static List *pre_commit_hooks = NIL;	/* of PreCommitHook *, in TopTransactionContext */
static int	next_pre_commit_hook = 0;	/* index of the next one to run */
static int	running_generation = 0; /* of the pre-commit hook running now */
static TransactionKeys pre_commit_keys;

/*
 * A hook in 'log' mode, in its own subtransaction.  The deferred
 * constraint checks its writes queued are fired inside it, so that a
 * violation counts as the hook's error.
 */
static void
CallLoggedHook(void *arg)
{
	PreCommitHook *hook = (PreCommitHook *) arg;

	CallHookFunction(hook->callback, hook->payload, hook->userid);
	AfterTriggerFireDeferred();
}

/* Runs one pre-commit hook; in 'log' mode, its error is only a warning */
static void
RunPreCommitHook(PreCommitHook *hook)
{
	running_generation = hook->generation;
	if (!hook->log_errors)
		CallHookFunction(hook->callback, hook->payload, hook->userid);
	else
	{
		ErrorData  *edata;

		/* deferred checks queued by earlier work are not this hook's to swallow */
		AfterTriggerFireDeferred();
		edata = CallInSubTransaction(CallLoggedHook, hook, CurrentMemoryContext);
		if (edata != NULL)
		{
			if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
				ReThrowError(edata);
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("pre-commit hook %s failed: %s",
							HookName(hook->callback), edata->message),
					 errdetail("The hook was registered with on_error => 'log': its writes were rolled back and the commit goes on.")));
			FreeErrorData(edata);
		}
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

/* Frees a hook of a rolled-back savepoint */
static void
ForgetHook(void *entry, void *arg)
{
	PreCommitHook *hook = (PreCommitHook *) entry;

	if (hook->payload != NULL)
		pfree(hook->payload);
	pfree(hook);
}

static void
PreCommitHooksAtSubAbort(int nest_level)
{
	/* the hooks that ran already are not taken back */
	pre_commit_hooks = SavepointListAtSubAbort(pre_commit_hooks, nest_level,
											   next_pre_commit_hook, ForgetHook, NULL);
	TransactionKeysAtSubAbort(&pre_commit_keys, nest_level);
}

static void
PreCommitHooksAtSubCommit(int nest_level)
{
	SavepointListAtSubCommit(pre_commit_hooks, nest_level);
	TransactionKeysAtSubCommit(&pre_commit_keys, nest_level);
}

/* Forgets everything at the end of the transaction (memory goes with it) */
static void
PreCommitHooksAtEnd(void)
{
	pre_commit_hooks = NIL;
	next_pre_commit_hook = 0;
	running_generation = 0;
	TransactionKeysReset(&pre_commit_keys);
}

static const TransactionParticipant pre_commit_participant = {
	.pending = PreCommitHooksPending,
	.run_pre_commit = PreCommitHooksRun,
	.at_end = PreCommitHooksAtEnd,
	.at_sub_abort = PreCommitHooksAtSubAbort,
	.at_sub_commit = PreCommitHooksAtSubCommit,
};

/* Registers the pre-commit hooks' transaction work; from _PG_init, before the buffers' */
void
PreCommitHooksInit(void)
{
	TransactionRegisterParticipant(&pre_commit_participant);
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
	SavepointTagSet(&hook->tag);
	hook->generation = generation;
	pre_commit_hooks = lappend(pre_commit_hooks, hook);
	MemoryContextSwitchTo(old);
	PG_RETURN_VOID();
}

