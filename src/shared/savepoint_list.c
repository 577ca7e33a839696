/*
 * shared/savepoint_list.c
 *		Lists kept per transaction whose entries belong to the savepoint
 *		that made them: a rolled-back savepoint drops exactly its entries,
 *		a released one hands them to its parent.
 *
 * Each entry starts with a SavepointTag, the subtransaction nesting level
 * that made it.  Entries are appended in the order they are made, and a
 * nesting level only grows inside a subtransaction, so levels never
 * decrease along a list: a rolled-back savepoint's entries are always its
 * tail, and so are a released one's.  Both callbacks therefore look at the
 * tail only.  Neither allocates: they run inside subtransaction abort and
 * commit, where an out-of-memory error would abort the abort.  Pre-commit
 * hooks, hook keys and buffered items are kept this way.
 */
#include "postgres.h"

#include "access/xact.h"

#include "shared/shared.h"

/* Marks an entry as made by the current subtransaction */
void
SavepointTagSet(SavepointTag *tag)
{
	tag->nest_level = GetCurrentTransactionNestLevel();
}

/*
 * Removes from the list the entries made at or below a rolled-back
 * nesting level, but never the first keep entries (those already used:
 * pre-commit hooks that ran, say); forget (if not NULL) is called on each
 * after it left the list.  Returns the list.
 */
List *
SavepointListAtSubAbort(List *list, int nest_level, int keep,
						void (*forget) (void *entry, void *arg), void *arg)
{
	while (list_length(list) > keep)
	{
		SavepointTag *tag = llast(list);

		if (tag->nest_level < nest_level)
			break;
		list = list_delete_last(list);
		if (forget != NULL)
			forget(tag, arg);
	}
	return list;
}

/* Gives the entries of a released nesting level to its parent */
void
SavepointListAtSubCommit(List *list, int nest_level)
{
	for (int i = list_length(list) - 1; i >= 0; i--)
	{
		SavepointTag *tag = list_nth(list, i);

		if (tag->nest_level < nest_level)
			break;
		tag->nest_level = nest_level - 1;
	}
}

/* The same for one level kept outside a list (where a state was made, say) */
void
SavepointLevelAtSubCommit(int *level, int nest_level)
{
	if (*level >= nest_level)
		*level = nest_level - 1;
}
