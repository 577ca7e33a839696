/*
 * hooks/hooks.h
 *		Commit hooks: pre-commit hooks, run in the committing transaction,
 *		and post-commit hooks, an outbox the background workers run (the
 *		workers' first source of work, workers/work_source.h).
 */
#ifndef CHOREOGRAPH_HOOKS_H
#define CHOREOGRAPH_HOOKS_H

#include "shared/shared.h"

/* hooks.c: pre-commit and post-commit hooks */
extern void HooksRegisterTransactionWork(void);
extern Oid	CheckHookCallback(Datum callback, const char *kind);
extern void CallHookFunction(Oid callback, Jsonb *payload, Oid userid);

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
