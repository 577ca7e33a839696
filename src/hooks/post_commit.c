/*
 * hooks/post_commit.c
 *		Post-commit hooks as the registering transaction sees them:
 *		choreo_post_commit writes an outbox row (choreograph.hooks) in the
 *		caller's transaction, and the background workers are woken when it
 *		commits; choreo_retry_hook and choreo_discard_hook act on a row.
 *
 * The outbox row commits or rolls back with the transaction, savepoints
 * included, so nothing needs undoing here but the keys (hook_keys.c).  The
 * workers' side, running the rows, is post_commit_source.c.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "hooks/hooks.h"
#include "workers/workers.h"

static TransactionKeys post_commit_keys;

/* the transaction whose post-commit hooks to announce at commit; 0: none */
static uint64 announce_at_commit = 0;
static bool wake_workers_at_commit = false;

/* the outbox INSERT, prepared once per backend */
static SPIPlanPtr outbox_insert = NULL;

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

static void
PostCommitHooksAtSubAbort(int nest_level)
{
	TransactionKeysAtSubAbort(&post_commit_keys, nest_level);
}

static void
PostCommitHooksAtSubCommit(int nest_level)
{
	TransactionKeysAtSubCommit(&post_commit_keys, nest_level);
}

static void
PostCommitHooksAtEnd(void)
{
	TransactionKeysReset(&post_commit_keys);
	wake_workers_at_commit = false;
	announce_at_commit = 0;
}

static const TransactionParticipant post_commit_participant = {
	.at_commit = HooksAtCommit,
	.at_end = PostCommitHooksAtEnd,
	.at_sub_abort = PostCommitHooksAtSubAbort,
	.at_sub_commit = PostCommitHooksAtSubCommit,
	.after_commit_prepared = HooksAfterCommitPrepared,
};

/* Registers the post-commit hooks' transaction work; from _PG_init */
void
PostCommitHooksInit(void)
{
	TransactionRegisterParticipant(&post_commit_participant);
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
	Oid			role;

	switch (LockRowOfRole(write, "SELECT role::pg_catalog.oid FROM " CHOREO_SCHEMA ".hooks"
						  " WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
						  1, argtypes, args, &role))
	{
		case ROW_ABSENT:
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("post-commit hook %lld does not exist", (long long) id)));
			break;
		case ROW_OTHERS:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to %s post-commit hook %lld", action, (long long) id),
					 errdetail("Only the role that registered a hook, its members and superusers may %s it.",
							   action)));
			break;
		case ROW_CALLERS:
			break;
	}
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

