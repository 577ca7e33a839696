/*
 * hooks/hook_rows.c
 *		Rows of the outbox (choreograph.hooks) written without
 *		choreo_post_commit (pg_restore, a role's own INSERT): what the
 *		shared row guard (shared/row_guard.c) lets through of them.
 *
 * Every hook registration is an INSERT into the outbox, so it has no
 * statement triggers (they would cost each registration more than the row
 * trigger): a skipped hook is reported on its own.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "hooks/hooks.h"

/*
 * A hook row as choreo_post_commit would have written it: the columns the
 * function chooses are not the inserter's to choose.  Its id comes from
 * the sequence (a chosen one could take the ids of other roles' coming
 * hooks), its transaction is this one (a chosen one could join, and hold
 * up, another transaction's hooks, which run in order), its attempts are
 * within [0, choreograph.hook_max_attempts] and its next attempt is not
 * later than now (a failed hook, NULL, stays failed).
 */
static HeapTuple
HookRowAsRegistered(TriggerData *trigdata)
{
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	int			columns[4];
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	Datum		value;
	int			n = 0;

	columns[n] = SPI_fnumber(desc, "id");
	values[n++] = Int64GetDatum(nextval_internal(ChoreoRelationOid("hooks_id_seq", false), false));
	columns[n] = SPI_fnumber(desc, "txid");
	values[n++] = Int64GetDatum((int64) U64FromFullTransactionId(GetTopFullTransactionId()));
	columns[n] = SPI_fnumber(desc, "attempts");
	values[n++] = Int32GetDatum(RowGuardValue(trigdata, "attempts", &value) ?
								Max(0, Min(DatumGetInt32(value), choreo_hook_max_attempts)) : 0);
	if (RowGuardValue(trigdata, "next_attempt_at", &value) &&
		DatumGetTimestampTz(value) > GetCurrentTransactionStartTimestamp())
	{
		columns[n] = SPI_fnumber(desc, "next_attempt_at");
		values[n++] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	}
	for (int i = 0; i < n; i++)
		if (columns[i] <= 0)
			elog(ERROR, "table %s lacks a column of the outbox",
				 RelationGetRelationName(trigdata->tg_relation));
	return heap_modify_tuple_by_cols(trigdata->tg_trigtuple, desc, n, columns, values, nulls);
}


/*
 * A hooks row: of a role whose privileges the inserter has, with a
 * callback choreo_post_commit accepts, as registered
 */
static HeapTuple
HookRowAllowed(Oid user, TriggerData *trigdata)
{
	Datum		value;

	if (RowGuardValue(trigdata, "role", &value) &&
		!has_privs_of_role(user, DatumGetObjectId(value)))
	{
		char	   *role = GetUserNameFromId(DatumGetObjectId(value), true);
		Datum		id;

		if (role == NULL)
			role = psprintf("%u", DatumGetObjectId(value));
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("hook %lld of role %s was not written into %s.hooks",
						RowGuardValue(trigdata, "id", &id) ? (long long) DatumGetInt64(id) : 0,
						quote_identifier(role), CHOREO_SCHEMA),
				 errdetail("Role %s does not have the privileges of role %s.",
						   quote_identifier(GetUserNameFromId(user, false)),
						   quote_identifier(role)),
				 errhint("A role writes only its own pipelines, buffers and hooks, in schemas where it may create; a superuser may restore the others.")));
		return NULL;
	}
	if (RowGuardValue(trigdata, "callback", &value))
		(void) CheckHookCallback(value, "post-commit");
	return HookRowAsRegistered(trigdata);
}

/* Guards the outbox's rows; called from _PG_init */
void
HookRowsGuard(void)
{
	RowGuardRegister("hooks", HookRowAllowed);
}
