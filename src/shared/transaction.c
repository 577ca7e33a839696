/*
 * shared/transaction.c
 *		The transaction callbacks, registered once per backend, and the
 *		work of each capability they call: capabilities register as
 *		participants (TransactionParticipant), in the order their work
 *		runs, and this file knows none of them.
 *
 * At PRE_COMMIT (and PRE_PREPARE) the pending work is done in rounds until
 * none is left: run the queued pre-commit hooks, flush the buffers, then
 * fire the deferred triggers that this work queued.  PostgreSQL fires
 * deferred triggers before calling PRE_COMMIT callbacks and discards any
 * queued afterwards (AfterTriggerEndXact), so without that last step a
 * hook's insert into a table with a deferred foreign key would commit
 * unchecked.  COMMIT and ABORT only reset state and wake the workers; they
 * never raise.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"

#include "shared/shared.h"

/* a bound on rounds of pre-commit work, so that a feedback loop ends */
#define MAX_PRE_COMMIT_ROUNDS 1000

/* hooks and buffers; room for streams and the eventbox */
#define MAX_PARTICIPANTS 8

static const TransactionParticipant *participants[MAX_PARTICIPANTS];
static int	nparticipants = 0;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* Adds a capability's transaction work, after those registered before; from _PG_init */
void
TransactionRegisterParticipant(const TransactionParticipant *participant)
{
	if (nparticipants >= MAX_PARTICIPANTS)
		elog(ERROR, "too many choreograph transaction participants");
	participants[nparticipants++] = participant;
}

/* Whether any participant has pre-commit work waiting */
static bool
PreCommitWorkPending(void)
{
	for (int i = 0; i < nparticipants; i++)
		if (participants[i]->pending != NULL && participants[i]->pending())
			return true;
	return false;
}

/*
 * Runs pre-commit hooks and flushes buffers until nothing is left to do.
 * Each round ends as CommitTransaction's own pre-commit loop does: the
 * deferred triggers this work queued are fired, and the portals it opened
 * (a cursor a hook left open) are closed, or made holdable for WITH HOLD
 * cursors; PostgreSQL did both before calling us and will not again, so a
 * portal left open here would outlive the transaction on freed resources.
 */
static void
RunPreCommitWork(bool is_prepare)
{
	int			rounds = 0;
	bool		portals_changed;

	if (!PreCommitWorkPending())
		return;

	/* queries need a snapshot; COMMIT's own was released already */
	PushActiveSnapshot(GetTransactionSnapshot());
	do
	{
		if (++rounds > MAX_PRE_COMMIT_ROUNDS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("pre-commit work did not finish after %d rounds",
							MAX_PRE_COMMIT_ROUNDS),
					 errdetail("Pre-commit hooks and buffer flushes kept queueing more work."),
					 errhint("Look for a trigger on a buffer's table that fires into a buffer, or a hook that registers hooks without a key.")));
		for (int i = 0; i < nparticipants; i++)
			if (participants[i]->run_pre_commit != NULL)
				participants[i]->run_pre_commit();
		AfterTriggerFireDeferred();
		portals_changed = PreCommit_Portals(is_prepare);
	} while (portals_changed || PreCommitWorkPending());
	PopActiveSnapshot();
}

/* Forgets the transaction's pending work; must not raise */
static void
ResetTransactionState(void)
{
	for (int i = 0; i < nparticipants; i++)
		if (participants[i]->at_end != NULL)
			participants[i]->at_end();
}

static void
TransactionCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			RunPreCommitWork(false);
			break;
		case XACT_EVENT_PRE_PREPARE:
			RunPreCommitWork(true);
			break;
		case XACT_EVENT_COMMIT:
			for (int i = 0; i < nparticipants; i++)
				if (participants[i]->at_commit != NULL)
					participants[i]->at_commit();
			ResetTransactionState();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction's workers are woken by COMMIT PREPARED */
			ResetTransactionState();
			break;
		default:
			break;
	}
}

/*
 * Subtransaction callback: what was registered or fired in a rolled-back
 * subtransaction is forgotten; a released one's belongs to its parent.
 */
static void
SubTransactionCallback(SubXactEvent event, SubTransactionId subid,
					   SubTransactionId parent_subid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			for (int i = 0; i < nparticipants; i++)
				if (participants[i]->at_sub_abort != NULL)
					participants[i]->at_sub_abort(level);
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			for (int i = 0; i < nparticipants; i++)
				if (participants[i]->at_sub_commit != NULL)
					participants[i]->at_sub_commit(level);
			break;
		default:
			break;
	}
}

/*
 * COMMIT PREPARED commits work another session prepared (post-commit
 * hooks, say), of which this session's participants know nothing but
 * that it committed.
 */
static void
ChoreoProcessUtility(PlannedStmt *pstmt, const char *queryString,
					 bool readOnlyTree, ProcessUtilityContext context,
					 ParamListInfo params, QueryEnvironment *queryEnv,
					 DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		for (int i = 0; i < nparticipants; i++)
			if (participants[i]->after_commit_prepared != NULL)
				participants[i]->after_commit_prepared();
}

/* Registers the callbacks; called from _PG_init */
void
TransactionCallbacksInit(void)
{
	RegisterXactCallback(TransactionCallback, NULL);
	RegisterSubXactCallback(SubTransactionCallback, NULL);
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = ChoreoProcessUtility;
}
