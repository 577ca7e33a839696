/*
 * choreograph.c
 *		Module entry point and the extension's settings.
 *
 * _PG_init does nothing but define the settings and call one Init function
 * per subsystem.  The library can be loaded on first use (pipelines need
 * nothing more) or preloaded through shared_preload_libraries (needed by
 * the features that rely on the background worker).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "choreograph.h"

PG_MODULE_MAGIC;

int			choreo_max_depth = 32;

void		_PG_init(void);

/* Defines the choreograph.* settings */
static void
DefineSettings(void)
{
	DefineCustomIntVariable("choreograph.max_depth",
							"Sets the maximum nesting depth of pipeline runs.",
							"A run started from inside a step counts one level "
							"deeper; exceeding the limit raises an error.",
							&choreo_max_depth,
							32, 1, 1000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("choreograph");
}

void
_PG_init(void)
{
	DefineSettings();
	PipelineCacheInit();
}
