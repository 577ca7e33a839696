/*
 * shared/subtransaction.c
 *		Running a piece of work in a subtransaction of its own, so that
 *		its failure rolls back only its writes and the caller goes on: a
 *		pipeline's precheck, a job under choreo_try_run, a pre-commit hook
 *		in 'log' mode.
 *
 * BeginInternalSubTransaction, ReleaseCurrentSubTransaction and
 * RollbackAndReleaseCurrentSubTransaction change the current memory
 * context and resource owner; every caller needs them back as they were,
 * and needs the error as data (to record, or to raise again) with the
 * error state cleared.  What to do with the error is the caller's: a query
 * cancel, say, must be raised again, never swallowed.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "shared/shared.h"

/*
 * Calls work(arg) in a new subtransaction.  Returns NULL when it succeeded
 * (its subtransaction is released into the caller's), else the error it
 * raised, copied into error_cxt, with its subtransaction rolled back.
 * Either way the caller's memory context and resource owner are current.
 */
ErrorData *
CallInSubTransaction(void (*work) (void *arg), void *arg, MemoryContext error_cxt)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller_cxt);
	PG_TRY();
	{
		work(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(error_cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller_cxt);
	CurrentResourceOwner = caller_owner;
	return edata;
}
