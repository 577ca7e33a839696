/*
 * hooks/hooks.h
 *		Commit hooks: pre-commit hooks, run in the committing transaction,
 *		and post-commit hooks, an outbox the background workers run.
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

#endif							/* CHOREOGRAPH_HOOKS_H */
