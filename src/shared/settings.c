/*
 * shared/settings.c
 *		The extension's settings (choreograph.*), which every capability
 *		reads, and whether the library was preloaded.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"

#include "shared/shared.h"

int			choreo_max_depth = 32;
char	   *choreo_database = NULL;
int			choreo_max_workers = 2;
int			choreo_hook_max_attempts = 5;
int			choreo_error_max_length = 120;
bool		choreo_hook_synchronous_commit = false;
bool		choreo_preloaded = false;

/* Defines the choreograph.* settings; called first from _PG_init */
void
SettingsDefine(void)
{
	choreo_preloaded = process_shared_preload_libraries_in_progress;

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
