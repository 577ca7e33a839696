/*
 * workers/worker_transaction.c
 *		The transactions of the background workers and the queries they
 *		run in them: used by the loop for each step and by the sources for
 *		their looks and the failures they record.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "workers/workers.h"

/*
 * Starts a transaction of the worker's, with SPI and a snapshot; returns
 * the memory context to go back to when it ends (CommitWorkerTransaction,
 * RollbackWorkerTransaction, EndFailedWorkerTransaction), since ending a
 * transaction leaves TopMemoryContext current, where nothing of a pass may
 * land.
 */
MemoryContext
BeginWorkerTransaction(void)
{
	MemoryContext caller = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	return caller;
}

/* Commits, reports the transaction's statistics, returns to the caller's memory */
void
CommitWorkerTransaction(MemoryContext caller)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	/* counts the sources' dead rows and the steps' writes, for autovacuum */
	pgstat_report_stat(false);
}

/* Rolls back a transaction that raised nothing (a step left to another session) */
void
RollbackWorkerTransaction(MemoryContext caller)
{
	SPI_finish();
	PopActiveSnapshot();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(caller);
	pgstat_report_stat(false);
}

/* Rolls back a transaction that raised (from a PG_CATCH block) */
void
EndFailedWorkerTransaction(MemoryContext caller)
{
	AbortCurrentTransaction();
	MemoryContextSwitchTo(caller);
	pgstat_report_stat(false);
}

/*
 * Runs a worker query.  Plans are prepared once and kept, maybe while a
 * source's table was nearly empty: sequential scans are turned off for
 * them, so that a plan made then does not scan a table that has since
 * grown (or filled with dead rows: an outbox is a queue) row by row, and
 * JIT is off for them.
 */
void
ExecuteWorkerQuery(WorkerQuery *query, Datum *args, int expected)
{
	int			rc;
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/*
	 * A table with no index for a query (a queue such as stream_news is
	 * read whole) then costs a disabled plan's 1e10, far above every JIT
	 * threshold: these small queries would be compiled each time.
	 */
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	(void) KeptPlanForThisNode(query->sql, query->nargs, query->argtypes, &query->plan,
							   &query->prepared);
	rc = SPI_execute_plan(query->plan, args, NULL, false, 0);
	AtEOXact_GUC(true, nestlevel);
	if (rc != expected)
		elog(ERROR, "could not execute \"%s\": %s", query->sql,
			 SPI_result_code_string(rc));
}
