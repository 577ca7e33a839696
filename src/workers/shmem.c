/*
 * workers/shmem.c
 *		The little state the backends share with the background workers:
 *		each worker's latch (so that a committing backend can wake them),
 *		the commit queue of (source, key) pairs that committed transactions
 *		announced, each worker's claim of an item (so that no two workers
 *		run one item at once, and no source runs in more workers than its
 *		limit), and what step each is running (for the sources' views).
 *
 * Fixed in size, whatever the sources: MAX_WORK_SOURCES flags per source,
 * COMMIT_QUEUE_SIZE entries, one slot per worker.  Set up only when the
 * library is preloaded.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "workers/workers.h"

typedef struct WorkerSlot
{
	pid_t		pid;			/* 0 when no worker uses the slot */
	Latch	   *latch;
	bool		sleeping;		/* waiting on its latch for work */
	int			claim_source;	/* the source of the item claimed */
	uint64		claim_key;		/* the item claimed, 0 for none */
	bool		claim_announced;	/* announced again while claimed */
	int64		running;		/* id of the step being run, 0 for none */
} WorkerSlot;

/* how many announced items the commit queue holds */
#define COMMIT_QUEUE_SIZE 4096

typedef struct SharedState
{
	LWLock	   *lock;
	int			nworkers;

	/*
	 * The commit queue: items that committed transactions announced, so
	 * that the workers find new work without looking through the sources'
	 * tables (an outbox, being a queue, is mostly dead rows).  head and
	 * tail only grow; when the queue is full, or for work a source cannot
	 * name (COMMIT PREPARED, retries), that source's look_everywhere is set.
	 */
	uint64		queue_head;
	uint64		queue_tail;
	bool		look_everywhere[MAX_WORK_SOURCES];
	WorkEntry	queue[COMMIT_QUEUE_SIZE];

	/*
	 * Per source, whether an item was passed over because the source was
	 * at its concurrency limit: the next claim of the source to end has
	 * the source looked through again.
	 */
	bool		passed_over[MAX_WORK_SOURCES];

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
 * Wakes one sleeping worker, holding the lock: a worker that is busy looks
 * at the queue again before it sleeps, and waking costs the caller a
 * system call.
 */
static void
WakeOneWorker(void)
{
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
}

/*
 * Puts an item of source number source on the commit queue (key 0: there
 * may be work anywhere in the source), and wakes a worker that sleeps.
 * Cheap, and safe to call from a commit callback: it cannot fail.
 */
void
WorkQueueAnnounce(int source, uint64 key)
{
	Assert(source >= 0 && source < MAX_WORK_SOURCES);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (key == 0 || shared->queue_head - shared->queue_tail >= COMMIT_QUEUE_SIZE)
		shared->look_everywhere[source] = true;
	else
	{
		WorkEntry  *entry = &shared->queue[shared->queue_head++ % COMMIT_QUEUE_SIZE];

		entry->source = source;
		entry->key = key;
	}
	WakeOneWorker();
	LWLockRelease(shared->lock);
}

/*
 * Tells the workers that a transaction committed work of the named source:
 * item key, or 0 for work anywhere in it (a retry, say).  Sources are
 * named rather than passed, so that the code announcing work needs only
 * the name, not the code that runs it.  Called at commit: cannot fail.
 */
void
WorkersWake(const char *source, uint64 key)
{
	int			id;

	if (shared == NULL)
		return;
	id = WorkSourceFind(source);
	Assert(id >= 0);
	if (id >= 0)
		WorkQueueAnnounce(id, key);
}

/* True when work is announced, holding the lock */
static bool
WorkAnnounced(void)
{
	if (shared->queue_tail != shared->queue_head)
		return true;
	for (int i = 0; i < MAX_WORK_SOURCES; i++)
		if (shared->look_everywhere[i])
			return true;
	return false;
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
	may_sleep = !WorkAnnounced();
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
 * Takes up to max items off the commit queue, oldest first; sets
 * look_everywhere[s] (and clears the flag) for each source s that must be
 * looked through.  If items are left, another sleeping worker is woken for
 * them.
 */
int
WorkQueueTake(WorkEntry *entries, int max, bool *look_everywhere)
{
	int			n = 0;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	while (n < max && shared->queue_tail < shared->queue_head)
		entries[n++] = shared->queue[shared->queue_tail++ % COMMIT_QUEUE_SIZE];
	if (shared->queue_tail < shared->queue_head)
		WakeOneWorker();
	for (int i = 0; i < MAX_WORK_SOURCES; i++)
	{
		look_everywhere[i] = shared->look_everywhere[i];
		shared->look_everywhere[i] = false;
	}
	LWLockRelease(shared->lock);
	return n;
}

/*
 * Ends a slot's claim, holding the lock.  If an item of its source was
 * passed over for the source's limit, there is room now: the source is
 * looked through again, by this worker (it is awake) or one woken for it.
 */
static void
EndClaim(WorkerSlot *slot)
{
	if (slot->claim_key != 0 && shared->passed_over[slot->claim_source])
	{
		shared->passed_over[slot->claim_source] = false;
		shared->look_everywhere[slot->claim_source] = true;
		WakeOneWorker();
	}
	slot->claim_key = 0;
	slot->claim_announced = false;
	slot->running = 0;
}

static void
WorkerSlotDetach(int code, Datum arg)
{
	WorkerSlot *slot = &shared->slots[DatumGetInt32(arg)];

	/* a successor may have taken the slot already (worker.c) */
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
	{
		EndClaim(slot);
		memset(slot, 0, sizeof(WorkerSlot));
	}
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
	slot->claim_key = 0;
	slot->claim_announced = false;
	slot->running = 0;
	LWLockRelease(shared->lock);
	on_shmem_exit(WorkerSlotDetach, Int32GetDatum(index));
}

/*
 * Claims an item for a worker, which holds no other claim.  Never waits:
 * when another worker holds the item, that worker is told to run it once
 * more before it lets go (WORK_HELD); when the source already runs in
 * max_concurrency workers (0: no limit), the source is marked as passed
 * over (WORK_AT_LIMIT), so that it is looked through again once one of
 * them lets go.
 */
WorkClaim
WorkerClaim(int index, int source, uint64 key, int max_concurrency)
{
	int			running = 0;

	Assert(key != 0);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	Assert(shared->slots[index].claim_key == 0);
	for (int i = 0; i < shared->nworkers; i++)
	{
		WorkerSlot *slot = &shared->slots[i];

		if (i == index || slot->claim_key == 0 || slot->claim_source != source)
			continue;
		if (slot->claim_key == key)
		{
			slot->claim_announced = true;
			LWLockRelease(shared->lock);
			return WORK_HELD;
		}
		running++;
	}
	if (max_concurrency > 0 && running >= max_concurrency)
	{
		shared->passed_over[source] = true;
		LWLockRelease(shared->lock);
		return WORK_AT_LIMIT;
	}
	shared->slots[index].claim_source = source;
	shared->slots[index].claim_key = key;
	shared->slots[index].claim_announced = false;
	LWLockRelease(shared->lock);
	return WORK_CLAIMED;
}

/*
 * Releases a worker's claim (if it has one).  With unless_announced, keeps
 * it instead when the item was announced again while claimed, and returns
 * false: the worker then runs the item once more.
 */
bool
WorkerClaimRelease(int index, bool unless_announced)
{
	WorkerSlot *slot = &shared->slots[index];
	bool		released = true;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (unless_announced && slot->claim_announced)
	{
		slot->claim_announced = false;
		released = false;
	}
	else
		EndClaim(slot);
	LWLockRelease(shared->lock);
	return released;
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

/* Records which step of its claimed item a worker is running (0: none) */
void
WorkerSetRunning(int index, int64 id)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	Assert(id == 0 || shared->slots[index].claim_key != 0);
	shared->slots[index].running = id;
	LWLockRelease(shared->lock);
}

/*
 * Lists into ids (at most max) the steps of the named source the workers
 * are running right now (for a source's view); returns how many.
 */
int
WorkersRunning(const char *source, int64 *ids, int max)
{
	int			id;
	int			n = 0;

	if (shared == NULL || (id = WorkSourceFind(source)) < 0)
		return 0;
	LWLockAcquire(shared->lock, LW_SHARED);
	for (int i = 0; i < shared->nworkers && n < max; i++)
	{
		WorkerSlot *slot = &shared->slots[i];

		if (slot->claim_key != 0 && slot->claim_source == id && slot->running != 0)
			ids[n++] = slot->running;
	}
	LWLockRelease(shared->lock);
	return n;
}
