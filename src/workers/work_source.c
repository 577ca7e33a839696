/*
 * workers/work_source.c
 *		The registry of work sources (work_source.h): the capabilities whose
 *		work the background workers run.
 *
 * Sources register from _PG_init while the postmaster preloads the
 * library, so every process forked from it (workers and backends alike)
 * has the same sources under the same indexes, which is what lets the
 * commit queue in shared memory name a source by its index.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "workers/workers.h"

static const WorkSource *sources[MAX_WORK_SOURCES];
static int	nsources = 0;

/* Registers a source of work for the workers; called from _PG_init when preloaded */
void
WorkSourceRegister(const WorkSource *source)
{
	/* programming errors, found at the first start */
	if (!process_shared_preload_libraries_in_progress)
		elog(ERROR, "work source \"%s\" must be registered while the library is preloaded",
			 source->name);
	if (nsources >= MAX_WORK_SOURCES)
		elog(ERROR, "too many work sources (at most %d)", MAX_WORK_SOURCES);
	if (source->name == NULL || source->find_due == NULL || source->take_step == NULL ||
		source->run_step == NULL || source->step_failed == NULL)
		elog(ERROR, "work source \"%s\" lacks a callback",
			 source->name != NULL ? source->name : "(unnamed)");
	if (WorkSourceFind(source->name) >= 0)
		elog(ERROR, "work source \"%s\" is registered already", source->name);
	sources[nsources++] = source;
}

/* How many sources there are; their indexes run from 0 */
int
WorkSourceCount(void)
{
	return nsources;
}

/* The source with this index */
const WorkSource *
WorkSourceGet(int id)
{
	Assert(id >= 0 && id < nsources);
	return sources[id];
}

/* The index of the source of this name, -1 for none */
int
WorkSourceFind(const char *name)
{
	for (int i = 0; i < nsources; i++)
		if (sources[i]->name == name || strcmp(sources[i]->name, name) == 0)
			return i;
	return -1;
}
