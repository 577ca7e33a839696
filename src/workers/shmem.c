/*
 * workers/shmem.c
 *		The little state the backends share with the background workers:
 *		each worker's latch (so that a committing backend can wake them),
 *		the hook each is running (for the choreo_hooks view) and the
 *		transaction whose hooks it is working through (so that two workers
 *		never run one transaction's hooks out of order).
 *
 * Set up only when the library is preloaded.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"

#include "workers/workers.h"

typedef struct WorkerSlot
{
	pid_t		pid;			/* 0 when no worker uses the slot */
	Latch	   *latch;
	bool		sleeping;		/* waiting on its latch for work */
	int64		running_hook;	/* id of the hook being run, 0 for none */
	uint64		group;			/* transaction whose hooks it runs, 0 for none */
} WorkerSlot;

/* how many committed transactions the commit queue holds */
#define COMMIT_QUEUE_SIZE 4096

typedef struct SharedState
{
	LWLock	   *lock;
	int			nworkers;

	/*
	 * The commit queue: transactions that committed post-commit hooks, so
	 * that the workers find new hooks by transaction, without looking
	 * through the outbox (which, being a queue, is mostly dead rows).
	 * head and tail only grow; when the queue is full, or for work it
	 * cannot describe (COMMIT PREPARED, retries), look_everywhere is set.
	 */
	uint64		queue_head;
	uint64		queue_tail;
	bool		look_everywhere;
	uint64		queue[COMMIT_QUEUE_SIZE];

	/*
	 * Per worker, how many times in a row it started without reaching its
	 * database (dropped, say): kept across its restarts, unlike its slot.
	 */
	int			failed_starts[MAX_CHOREO_WORKERS];

	WorkerSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} SharedState;

static SharedState *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
SharedStateSize(void)
{
	return add_size(offsetof(SharedState, slots),
					mul_size(sizeof(WorkerSlot), choreo_max_workers));
}

static void
SharedStateRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(SharedStateSize());
	RequestNamedLWLockTranche("choreograph", 1);
}

static void
SharedStateStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("choreograph", SharedStateSize(), &found);
	if (!found)
	{
		memset(shared, 0, SharedStateSize());
		shared->lock = &(GetNamedLWLockTranche("choreograph"))->lock;
		shared->nworkers = choreo_max_workers;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Installs the shared memory hooks; called from _PG_init when preloaded */
void
SharedStateInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = SharedStateRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = SharedStateStartup;
}

/*
 * Tells the workers that a transaction committed post-commit hooks (0: that
 * there may be work anywhere in the outbox), and wakes one that sleeps: a
 * worker that is busy looks at the queue again before it sleeps, and
 * waking costs the committing backend a system call.  Cheap, and safe to
 * call from a commit callback: it cannot fail.
 */
void
WorkersWake(uint64 txid)
{
	if (shared == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (txid == 0 || shared->queue_head - shared->queue_tail >= COMMIT_QUEUE_SIZE)
		shared->look_everywhere = true;
	else
		shared->queue[shared->queue_head++ % COMMIT_QUEUE_SIZE] = txid;
	for (int i = 0; i < shared->nworkers; i++)
	{
		WorkerSlot *slot = &shared->slots[i];

		if (slot->latch != NULL && slot->sleeping)
		{
			slot->sleeping = false;
			SetLatch(slot->latch);
			break;
		}
	}
	LWLockRelease(shared->lock);
}

/*
 * Marks a worker as sleeping, unless work arrived meanwhile: returns false
 * then, and the worker looks again instead of waiting on its latch.
 */
bool
WorkerMaySleep(int index)
{
	bool		may_sleep;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	may_sleep = shared->queue_tail == shared->queue_head && !shared->look_everywhere;
	shared->slots[index].sleeping = may_sleep;
	LWLockRelease(shared->lock);
	return may_sleep;
}

/* Marks a worker as awake (it may have woken by itself: a timeout) */
void
WorkerAwake(int index)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->slots[index].sleeping = false;
	LWLockRelease(shared->lock);
}

/*
 * Takes up to max transactions off the commit queue; sets *look_everywhere
 * (and clears the flag) when the outbox must be looked through.
 */
int
CommitQueueTake(uint64 *txids, int max, bool *look_everywhere)
{
	int			n = 0;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	while (n < max && shared->queue_tail < shared->queue_head)
		txids[n++] = shared->queue[shared->queue_tail++ % COMMIT_QUEUE_SIZE];
	*look_everywhere = shared->look_everywhere;
	shared->look_everywhere = false;
	LWLockRelease(shared->lock);
	return n;
}

static void
WorkerSlotDetach(int code, Datum arg)
{
	WorkerSlot *slot = &shared->slots[DatumGetInt32(arg)];

	/* a successor may have taken the slot already (worker.c) */
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
		memset(slot, 0, sizeof(WorkerSlot));
	LWLockRelease(shared->lock);
}

/* Publishes a worker's latch, before it first looks for work */
void
WorkerSlotAttach(int index)
{
	WorkerSlot *slot = &shared->slots[index];

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	slot->pid = MyProcPid;
	slot->latch = MyLatch;
	slot->running_hook = 0;
	slot->group = 0;
	LWLockRelease(shared->lock);
	on_shmem_exit(WorkerSlotDetach, Int32GetDatum(index));
}

/*
 * Claims a transaction's hooks for a worker; false when another worker is
 * running hooks of that transaction.  Claiming group 0 releases the claim.
 */
bool
WorkerClaimGroup(int index, uint64 group)
{
	bool		claimed = true;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < shared->nworkers && group != 0; i++)
		if (i != index && shared->slots[i].group == group)
			claimed = false;
	if (claimed)
		shared->slots[index].group = group;
	LWLockRelease(shared->lock);
	return claimed;
}

/*
 * Called by a worker before it connects to its database: counts the start,
 * and returns how long to wait first, doubling with each start in a row
 * that did not connect (1 s, 2 s, ... at most a minute).  The postmaster
 * restarts a worker that failed to connect every second; without the
 * wait, a dropped database would fill the log at that rate.
 */
long
WorkerStartDelay(int index)
{
	int			failed;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	failed = shared->failed_starts[index]++;
	LWLockRelease(shared->lock);
	if (failed == 0)
		return 0;
	return Min(1000L << Min(failed - 1, 6), 60000L);
}

/* Called once a worker has connected: its next start waits for nothing */
void
WorkerStarted(int index)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->failed_starts[index] = 0;
	LWLockRelease(shared->lock);
}

/* Records which hook a worker is running (0: none) */
void
WorkerSetRunning(int index, int64 hook_id)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->slots[index].running_hook = hook_id;
	LWLockRelease(shared->lock);
}

PG_FUNCTION_INFO_V1(choreo_running_hooks);

/* The ids of the post-commit hooks the workers are running right now */
Datum
choreo_running_hooks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (shared == NULL)
		return (Datum) 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (int i = 0; i < shared->nworkers; i++)
	{
		Datum		value = Int64GetDatum(shared->slots[i].running_hook);
		bool		isnull = false;

		if (shared->slots[i].running_hook != 0)
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	LWLockRelease(shared->lock);
	return (Datum) 0;
}
