/*
 * shared/session_reset.c
 *		What capabilities keep per session beyond a transaction (the last
 *		run that choreo_bag() shows, say), for a session that serves one
 *		piece of work after another to make fresh again between them.
 *
 * Capabilities register their reset at _PG_init; the background workers
 * call them all after each item of work, outside any transaction.  A reset
 * must not depend on catalog access.
 */
#include "postgres.h"

#include "shared/shared.h"

#define MAX_SESSION_RESETS 8

static void (*resets[MAX_SESSION_RESETS]) (void);
static int	nresets = 0;

/* Adds a capability's reset; called from _PG_init */
void
SessionResetRegister(void (*reset) (void))
{
	if (nresets >= MAX_SESSION_RESETS)
		elog(ERROR, "too many choreograph session resets");
	resets[nresets++] = reset;
}

/* Forgets what every capability kept for the session */
void
SessionResetAll(void)
{
	for (int i = 0; i < nresets; i++)
		resets[i] ();
}
