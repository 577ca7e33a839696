/*
 * choreograph.c
 *		Module entry point and the extension's settings.
 *
 * _PG_init does nothing but define the settings and call one Init function
 * per subsystem.  The library can be loaded on first use (pipelines,
 * pre-commit hooks and buffers need nothing more) or preloaded through
 * shared_preload_libraries, which post-commit hooks need: only then are
 * the shared memory and the background workers set up.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "buffers/buffers.h"
#include "hooks/hooks.h"
#include "pipelines/pipelines.h"
#include "workers/workers.h"

PG_MODULE_MAGIC;

int			choreo_max_depth = 32;
char	   *choreo_database = NULL;
int			choreo_max_workers = 2;
int			choreo_hook_max_attempts = 5;
int			choreo_error_max_length = 120;
bool		choreo_hook_synchronous_commit = false;
bool		choreo_preloaded = false;

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

	DefineCustomIntVariable("choreograph.hook_max_attempts",
							"Sets how many times a failing post-commit hook is tried.",
							"After the last attempt the hook stays, marked failed, until choreo_retry_hook.",
							&choreo_hook_max_attempts,
							5, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("choreograph.hook_synchronous_commit",
							 "Sets whether the workers wait for each post-commit hook's commit to reach disk.",
							 "Off, a crash can lose a hook's last moments of work; the hook then "
							 "runs again, since its outbox row comes back with it.",
							 &choreo_hook_synchronous_commit,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("choreograph.error_max_length",
							"Sets how many characters of an error message are kept.",
							NULL,
							&choreo_error_max_length,
							120, 10, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	/*
	 * The workers' settings can only be defined while the postmaster loads
	 * the library: a backend loading it on first use would fail.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomStringVariable("choreograph.database",
								   "Sets the database whose post-commit hooks the background workers run.",
								   NULL,
								   &choreo_database,
								   "postgres",
								   PGC_POSTMASTER,
								   0,
								   NULL, NULL, NULL);

		DefineCustomIntVariable("choreograph.max_workers",
								"Sets how many background workers run post-commit hooks at once.",
								NULL,
								&choreo_max_workers,
								2, 1, MAX_CHOREO_WORKERS,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	}

	MarkGUCPrefixReserved("choreograph");
}

void
_PG_init(void)
{
	choreo_preloaded = process_shared_preload_libraries_in_progress;
	DefineSettings();
	NamesInit();
	TransactionCallbacksInit();

	PipelineCacheInit();
	PipelineRowsGuard();
	SessionResetRegister(RunStateReset);

	/* in this order: hooks' pre-commit work first, then the buffers' flush */
	HooksRegisterTransactionWork();
	HookRowsGuard();

	BufferCacheInit();
	BuffersInit();
	if (choreo_preloaded)
	{
		SharedStateInit();
		/* the sources of the workers' work, before the workers */
		PostCommitSourceRegister();
		WorkersRegister();
	}
}
