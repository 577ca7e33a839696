/*
 * shared/advisory_lock.c
 *		The locks choreograph takes on things that are not rows (an entity
 *		of a stream, a stream, a recipient of an eventbox, an activity's
 *		run of an entity, its concurrency slots, a serialize group), and
 *		the hash of the names that key them.
 *
 * Each is an advisory lock of a class of its own (ChoreoLockClass; SQL's
 * advisory lock functions use classes 1 and 2, so no SQL call takes one
 * of these by accident), keyed by 64 bits, held to the end of the
 * transaction (a prepared transaction keeps it until COMMIT PREPARED; a
 * savepoint's rollback releases what was taken after it).  Two names with
 * the same hash share a lock: that costs, very rarely, a wait that was
 * not needed, never a lost exclusion.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/lock.h"

#include "shared/shared.h"

/*
 * Takes a lock of the class and key in mode, waiting for it if wait;
 * returns whether it was granted (always, when wait)
 */
bool
ChoreoLockAcquire(ChoreoLockClass lock_class, uint64 key, int mode, bool wait)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (key >> 32), (uint32) key,
						 (uint16) lock_class);
	return LockAcquire(&tag, mode, false, !wait) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * The key of one or two names (the second may be NULL): a stream and an
 * entity, a group and an entity, a recipient.  len is the second's length.
 */
uint64
ChoreoLockKey(const char *first, const char *second, int len)
{
	uint64		h = hash_bytes_extended((const unsigned char *) first, strlen(first), 0);

	if (second != NULL)
		h = hash_bytes_extended((const unsigned char *) second, len, h);
	return h;
}
