/*
 * workers/workers.h
 *		The background workers: their registration, the sources of work they
 *		run (work_source.h), the state they share with the backends that
 *		wake them, and their sessions.
 */
#ifndef CHOREOGRAPH_WORKERS_H
#define CHOREOGRAPH_WORKERS_H

#include "shared/shared.h"
#include "workers/work_source.h"

/* An entry of the commit queue: an item a committed transaction announced */
typedef struct WorkEntry
{
	int			source;			/* index of the source (work_source.c) */
	uint64		key;
} WorkEntry;

/* What a worker's claim of an item came to (WorkerClaim) */
typedef enum WorkClaim
{
	WORK_CLAIMED,				/* the worker runs the item */
	WORK_HELD,					/* another worker runs it, and will run it again */
	WORK_AT_LIMIT,				/* its source is at its concurrency limit */
} WorkClaim;

/* shmem.c: state shared with the background workers */
extern void SharedStateInit(void);
extern void WorkQueueAnnounce(int source, uint64 key);
extern int	WorkQueueTake(WorkEntry *entries, int max, bool *look_everywhere);
extern bool WorkerMaySleep(int index);
extern void WorkerAwake(int index);
extern void WorkerSlotAttach(int index);
extern WorkClaim WorkerClaim(int index, int source, uint64 key, int max_concurrency);
extern bool WorkerClaimRelease(int index, bool unless_announced);
extern void WorkerSetRunning(int index, int64 id);
extern long WorkerStartDelay(int index);
extern void WorkerStarted(int index);

/* worker.c: the background workers, running the sources' work */
extern void WorkersRegister(void);

/* worker_session.c: a worker's session made fresh again between steps */
extern void WorkerSessionReset(void);
extern bool WorkerSessionServes(Oid role);

#endif							/* CHOREOGRAPH_WORKERS_H */
