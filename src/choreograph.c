/*
 * choreograph.c
 *		Module entry point.
 *
 * _PG_init does nothing but define the settings (shared/settings.c) and
 * have each capability register what it does: its transaction work, its
 * definitions' cache and kind, the guard of its tables' rows.  The library
 * can be loaded on first use (pipelines, pre-commit hooks, buffers, streams
 * and manual activities need nothing more) or preloaded through shared_preload_libraries, which
 * post-commit hooks and the other activities need: only then are the shared memory and the
 * background workers set up.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "buffers/buffers.h"
#include "eventbox/eventbox.h"
#include "hooks/hooks.h"
#include "pipelines/pipelines.h"
#include "streams/streams.h"
#include "workers/workers.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	SettingsDefine();
	NamesInit();
	TransactionCallbacksInit();

	PipelineCacheInit();
	PipelineRowsGuard();
	SessionResetRegister(RunStateReset);

	/* in this order: hooks' pre-commit work first, then the buffers' flush */
	PreCommitHooksInit();
	PostCommitHooksInit();
	HookRowsGuard();

	BufferCacheInit();
	BuffersInit();

	StreamsInit();
	CursorAnnouncementsInit();
	ActivitiesInit();
	EventboxInit();
	if (choreo_preloaded)
	{
		SharedStateInit();
		/* the sources of the workers' work, before the workers */
		PostCommitSourceRegister();
		ActivitySourceRegister();
		WorkersRegister();
	}
}
