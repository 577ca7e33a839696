/*
 * hooks/hooks.h
 *		Commit hooks: pre-commit hooks, run in the committing transaction,
 *		and post-commit hooks, an outbox the background workers run (the
 *		workers' first source of work, workers/work_source.h).
 */
#ifndef CHOREOGRAPH_HOOKS_H
#define CHOREOGRAPH_HOOKS_H

#include "shared/shared.h"

/* hook_call.c: a hook's callback */
extern Oid	CheckHookCallback(Datum callback, const char *kind);
extern void CallHookFunction(Oid callback, Jsonb *payload, Oid userid);
extern const char *HookName(Oid callback);

/* hook_keys.c: the keys used so far in a transaction, savepoint-exact */
typedef struct TransactionKeys
{
	struct HTAB *hash;			/* of const char *: "role/key" */
	List	   *entries;		/* of KeyEntry, a savepoint list */
	const char *last;			/* the key added or found last: a fast path */
	const char *last_text;		/* its text after the role */
	Oid			last_role;
} TransactionKeys;

extern bool TransactionKeysAdd(TransactionKeys *keys, text *key_text);
extern void TransactionKeysAtSubAbort(TransactionKeys *keys, int nest_level);
extern void TransactionKeysAtSubCommit(TransactionKeys *keys, int nest_level);
extern void TransactionKeysReset(TransactionKeys *keys);

/* pre_commit.c, post_commit.c: each registers its transaction work */
extern void PreCommitHooksInit(void);
extern void PostCommitHooksInit(void);

/* hook_rows.c */
extern void HookRowsGuard(void);

/*
 * post_commit_source.c: post-commit hooks as a source of the workers' work,
 * named so in WorkersWake: an item is a transaction's hooks, its key the
 * transaction's id
 */
#define POST_COMMIT_SOURCE "post-commit hooks"
extern void PostCommitSourceRegister(void);

#endif							/* CHOREOGRAPH_HOOKS_H */
