/*
 * workers/worker_session.c
 *		What a step of work (a post-commit hook, say) leaves in the worker's
 *		session is removed before the next step runs, and a session serves
 *		one role.
 *
 * A worker runs the steps of every source and every role, one after
 * another, in one long-lived session.  Whatever session state a step
 * leaves behind would be seen by the next step, maybe of another role: a
 * temporary table named like one a superuser's hook writes without a
 * schema (pg_temp is searched first for relations), with a trigger, runs
 * the trigger as the superuser.  So after every step, whether it committed
 * or failed, the worker puts its session back into the state of a fresh
 * worker session: the equivalent of DISCARD ALL (discard.c), plus
 * random()'s seed and choreograph's own session state.
 *
 * DISCARD ALL itself cannot be used: its C function is static, and the
 * statement refuses to run inside a transaction block, where SPI would run
 * it; it would also take a transaction for all of it, when only dropping
 * the temporary objects needs one.  Each step is done here instead, in the
 * transaction state it needs, and only when there may be something to
 * remove where that costs more than a look (a worker drains thousands of
 * steps a second).
 *
 * Not reset, and why:
 * - the plan cache: a cached plan shows nothing of the step that made it
 *   and is checked again whenever it runs: the current role's permissions
 *   at executor start, and it is planned again for another role if row
 *   security applied, for another search path (a temporary schema
 *   included), and after a change to an object it uses; dropping the plans
 *   would only cost the next steps their planning;
 * - session_authorization and role: a step cannot change them (it runs with
 *   SECURITY_LOCAL_USERID_CHANGE, under which PostgreSQL refuses both);
 * - LISTEN: PostgreSQL refuses it in background processes, which have no
 *   way to collect notifications;
 * - state that other extensions' C code keeps (dblink's named connections,
 *   postgres_fdw's connection cache, PL/Perl's %_SHARED, PL/Python's GD):
 *   it cannot be reached from here; docs/hooks.md says what to avoid in
 *   a hook.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"

#include "workers/workers.h"

/*
 * Drops the objects in the session's temporary schema, if it has one, in a
 * transaction of its own.  The schema itself stays, as after DISCARD TEMP:
 * PostgreSQL offers no way to forget it, so once a step has used temporary
 * objects, the worker pays this transaction after every step (an empty
 * schema costs one look at pg_depend).
 */
static void
DropTemporaryObjects(void)
{
	Oid			temp_namespace;
	Oid			temp_toast_namespace;
	MemoryContext caller = CurrentMemoryContext;

	GetTempNamespaceState(&temp_namespace, &temp_toast_namespace);
	if (!OidIsValid(temp_namespace))
		return;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	ResetTempTableNamespace();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
}

/* The steps; see WorkerSessionReset */
static void
ResetSession(void)
{
	/*
	 * Cursors WITH HOLD: the only portals left once the step's transaction
	 * has ended, materialized and holding no resources of a transaction, so
	 * they are dropped without one.
	 */
	PortalHashTableDeleteAll();

	/* prepared statements (DEALLOCATE ALL) */
	DropAllPreparedStatements();

	/* session advisory locks; the worker itself takes none */
	LockReleaseAll(USER_LOCKMETHOD, true);

	/* what currval() and lastval() remember */
	ResetSequenceCaches();

	/*
	 * random()'s seed: setseed() in one step would make the next step's
	 * random() predictable.  DISCARD ALL leaves it; a new session seeds it
	 * from a strong source, and so does this (not from the process's own
	 * generator, whose state a step could work out from what it draws; that
	 * is only the fallback should the strong source fail).
	 */
	{
		uint64		seed;

		if (!pg_strong_random(&seed, sizeof(seed)))
			seed = pg_prng_uint64(&pg_global_prng_state);
		(void) DirectFunctionCall1(setseed,
								   Float8GetDatum((double) (seed >> 11) / (double) (UINT64CONST(1) << 53) * 2.0 - 1.0));
	}

	/*
	 * Settings (RESET ALL).  A step's own SETs, set_config(..., false)
	 * included, are already undone: it runs inside a GUC nest level that
	 * the worker rolls back.  This catches those made at its commit, by
	 * what it queued for the commit (a pre-commit hook a post-commit hook
	 * registered, the query of a cursor WITH HOLD).
	 * The worker's own settings survive: it sets them with PGC_S_OVERRIDE,
	 * which RESET ALL keeps, or inside a nest level of its own.
	 */
	ResetAllOptions();

	/* what capabilities keep per session: choreo_bag()'s last run, say */
	SessionResetAll();

	/* temporary tables, functions, operators, types... (DISCARD TEMP) */
	DropTemporaryObjects();
}

/*
 * Returns the worker's session to the state of a fresh one; called after
 * each step, committed or failed, outside any transaction.  If that fails,
 * the next step must not run in this session: the worker exits, and is
 * started again with a new one.
 */
void
WorkerSessionReset(void)
{
	MemoryContext caller = CurrentMemoryContext;

	Assert(!IsTransactionState());
	PG_TRY();
	{
		ResetSession();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(FATAL,
				(errcode(edata->sqlerrcode),
				 errmsg("choreograph worker could not reset its session after a step of work: %s",
						edata->message),
				 errdetail("The worker exits so that no work runs in a session that earlier work has left state in; it is started again.")));
	}
	PG_END_TRY();
}

/*
 * The role whose work this session runs.  Some session state cannot be
 * reset at all: PL/pgSQL compiles a function once per backend, resolving
 * the types of its variables through the search_path of its first caller,
 * so a role that calls another role's function first (a hook's, say),
 * with a schema of its own ahead of pg_catalog, plants its own types (and
 * their input and check functions) in that function for as long as the
 * process lives.  The same holds for state other extensions keep in C.
 * So a worker's session serves one role: the first step binds it, and a
 * step of any other role is left to a new process (worker.c).
 */
static Oid	session_role = InvalidOid;

/*
 * True when the session may run a step of this role, binding it to the
 * role on first use: session_user and is_superuser then report the role,
 * as in a session the role had opened, while the worker's own queries keep
 * running as the user that connected (the caller's current user), which
 * is restored here.
 */
bool
WorkerSessionServes(Oid role)
{
	Oid			worker_userid;
	int			worker_sec_context;

	if (OidIsValid(session_role))
		return role == session_role;

	GetUserIdAndSecContext(&worker_userid, &worker_sec_context);
	SetSessionAuthorization(role, superuser_arg(role));
	SetUserIdAndSecContext(worker_userid, worker_sec_context);
	session_role = role;
	return true;
}
