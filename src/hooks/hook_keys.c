/*
 * hooks/hook_keys.c
 *		The keys hooks are registered with: per transaction and role,
 *		savepoint-exact, so that a key seen before makes a registration a
 *		no-op and a rolled-back savepoint forgets the keys it added.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "hooks/hooks.h"

typedef struct KeyEntry
{
	SavepointTag tag;			/* first: a savepoint list's entry */
	char	   *key;
} KeyEntry;

/*
 * Adds a key of the current role; returns false when the transaction
 * already has it.  Keys are the registering role's own: another role's
 * code (a SECURITY DEFINER function the transaction calls) registering the
 * same key must not make this role's registration a no-op.  A loop
 * registering with one key (the common case) compares it with the last key
 * and allocates nothing.
 */
bool
TransactionKeysAdd(TransactionKeys *keys, text *key_text)
{
	const char *data = VARDATA_ANY(key_text);
	int			len = VARSIZE_ANY_EXHDR(key_text);
	Oid			role = GetUserId();
	MemoryContext old;
	KeyEntry   *entry;
	bool		found;
	char	   *copy;
	char	   *key;

	if (keys->last != NULL && keys->last_role == role &&
		strncmp(keys->last_text, data, len) == 0 && keys->last_text[len] == '\0')
		return false;

	old = MemoryContextSwitchTo(TopTransactionContext);
	key = psprintf("%u/%.*s", role, len, data);

	if (keys->hash == NULL)
		keys->hash = StringPointerHashCreate("choreograph hook keys", 64, sizeof(char *),
											 TopTransactionContext);
	entry = hash_search(keys->hash, &key, HASH_FIND, &found);
	if (found)
	{
		keys->last = *(char **) entry;
		keys->last_text = strchr(keys->last, '/') + 1;
		keys->last_role = role;
		pfree(key);
		MemoryContextSwitchTo(old);
		return false;
	}

	copy = key;
	entry = palloc(sizeof(KeyEntry));
	entry->key = copy;
	SavepointTagSet(&entry->tag);
	keys->entries = lappend(keys->entries, entry);
	*(char **) hash_search(keys->hash, &copy, HASH_ENTER, NULL) = copy;
	keys->last = copy;
	keys->last_text = strchr(copy, '/') + 1;
	keys->last_role = role;
	MemoryContextSwitchTo(old);
	return true;
}

/* Forgets a key of a rolled-back savepoint: nothing allocated */
static void
ForgetKey(void *entry, void *arg)
{
	TransactionKeys *keys = (TransactionKeys *) arg;
	KeyEntry   *key = (KeyEntry *) entry;

	hash_search(keys->hash, &key->key, HASH_REMOVE, NULL);
	keys->last = NULL;
	/* a loop of failing exception blocks must not grow the memory */
	pfree(key->key);
	pfree(key);
}

/* Forgets the keys added at or below a rolled-back nesting level */
void
TransactionKeysAtSubAbort(TransactionKeys *keys, int nest_level)
{
	keys->entries = SavepointListAtSubAbort(keys->entries, nest_level, 0, ForgetKey, keys);
}

/* Hands the keys of a released subtransaction to its parent */
void
TransactionKeysAtSubCommit(TransactionKeys *keys, int nest_level)
{
	SavepointListAtSubCommit(keys->entries, nest_level);
}

/* Forgets every key at the end of the transaction (the memory goes with it) */
void
TransactionKeysReset(TransactionKeys *keys)
{
	memset(keys, 0, sizeof(TransactionKeys));
}
