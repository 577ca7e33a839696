/*
 * shared/relation_changes.c
 *		One relcache invalidation callback for the whole extension, handing
 *		each relation change on to every cache of the extension that listens.
 *
 * PostgreSQL keeps at most ten relcache callbacks per backend, for all the
 * modules loaded together (Citus takes several of them, and the plan cache
 * one): a module that takes one per cache runs out on a Citus node
 * ("out of relcache_callback_list slots").  So the extension takes one.
 */
#include "postgres.h"

#include "utils/inval.h"

#include "shared/shared.h"

#define MAX_RELATION_LISTENERS 8

typedef struct RelationListener
{
	RelcacheCallbackFunction function;
	Datum		arg;
} RelationListener;

static RelationListener listeners[MAX_RELATION_LISTENERS];
static int	nlisteners = 0;

static void
RelationChanged(Datum arg, Oid relid)
{
	for (int i = 0; i < nlisteners; i++)
		listeners[i].function(listeners[i].arg, relid);
}

/*
 * Calls function(arg, relid) on every relcache invalidation from now on
 * (relid InvalidOid: every relation), like CacheRegisterRelcacheCallback
 */
void
ListenForRelationChanges(RelcacheCallbackFunction function, Datum arg)
{
	if (nlisteners >= MAX_RELATION_LISTENERS)
		elog(FATAL, "out of choreograph's relation change listener slots");
	if (nlisteners == 0)
		CacheRegisterRelcacheCallback(RelationChanged, (Datum) 0);
	listeners[nlisteners].function = function;
	listeners[nlisteners].arg = arg;
	nlisteners++;
}
