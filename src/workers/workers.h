/*
 * workers/workers.h
 *		The background workers: their registration, the state they share
 *		with the backends that wake them, and their sessions.
 */
#ifndef CHOREOGRAPH_WORKERS_H
#define CHOREOGRAPH_WORKERS_H

#include "executor/spi.h"

#include "shared/shared.h"

/* shmem.c: state shared with the background workers */
extern void SharedStateInit(void);
extern void WorkersWake(uint64 txid);
extern int	CommitQueueTake(uint64 *txids, int max, bool *look_everywhere);
extern bool WorkerMaySleep(int index);
extern void WorkerAwake(int index);
extern void WorkerSlotAttach(int index);
extern bool WorkerClaimGroup(int index, uint64 group);
extern void WorkerSetRunning(int index, int64 hook_id);
extern long WorkerStartDelay(int index);
extern void WorkerStarted(int index);

/* the most workers choreograph.max_workers allows */
#define MAX_CHOREO_WORKERS 64

/* worker.c: the background workers running post-commit hooks */
extern void WorkersRegister(void);

/* worker_transaction.c: the transactions and queries of the workers */
typedef struct WorkerQuery
{
	const char *sql;
	int			nargs;
	Oid			argtypes[5];
	SPIPlanPtr	plan;			/* prepared on first use, kept */
} WorkerQuery;

extern MemoryContext BeginWorkerTransaction(void);
extern void CommitWorkerTransaction(MemoryContext caller);
extern void EndFailedWorkerTransaction(MemoryContext caller);
extern void ExecuteWorkerQuery(WorkerQuery *query, Datum *args, int expected);

/* worker_session.c: a worker's session made fresh again between hooks */
extern void WorkerSessionReset(void);
extern bool WorkerSessionServes(Oid role);

#endif							/* CHOREOGRAPH_WORKERS_H */
