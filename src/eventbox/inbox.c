/*
 * eventbox/inbox.c
 *		The eventbox as senders and readers see it: choreo_send,
 *		choreo_inbox and choreo_state; and what every entry point asks of a
 *		recipient: its name, its state row, and whether a role may act on it.
 *
 * A recipient belongs to nobody until its first batch that handed a
 * processor events (which makes its row of eventbox_states); from then on
 * it belongs to the role that ran that batch, and only that role's
 * members (and superusers) may process it or read its inbox and state.  Anyone may send to any recipient (EXECUTE on choreo_send is
 * PUBLIC's, and can be revoked).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "eventbox/eventbox.h"

/* events kept in memory before they are written */
#define INBOX_MAX_BATCH 5000

static PendingBuffer *last_inbox = NULL;	/* fast path for sending in a loop */
static uint64 last_inbox_forgotten = 0;

/* Refuses a recipient's name that is empty or too long */
static void
CheckRecipientLength(int len)
{
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient name must not be empty")));
	if (len > RECIPIENT_MAX_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recipient name is too long"),
				 errdetail("A recipient's name is at most %d bytes long; this one has %d.",
						   RECIPIENT_MAX_BYTES, len)));
}

/*
 * A recipient's name: not NULL, not empty, at most RECIPIENT_MAX_BYTES,
 * and kept on this node (shared/entity_placement.c)
 */
char *
RecipientArgument(FunctionCallInfo fcinfo, int argno)
{
	char	   *name;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recipient name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	CheckRecipientLength(strlen(name));
	EnsureEntityIsHere("recipient", name, strlen(name));
	return name;
}

/* The inbox's identity as a pending state's key: it has one */
static void
InboxId(DefinitionId *id)
{
	memset(id, 0, sizeof(*id));
	id->namespace = InvalidOid;
	namestrcpy(&id->name, InboxKind.table);
}

/* The transaction's pending sends that take items, made if there are none */
static PendingBuffer *
PendingInbox(void)
{
	DefinitionId id;
	PendingBuffer *buffer;

	InboxId(&id);
	buffer = PendingBufferFind(&InboxKind, &id);
	if (buffer != NULL && PendingBufferTakesItems(buffer))
		return buffer;
	return PendingBufferCreate(&InboxKind, &id, &InboxSink,
							   ChoreoRelationOid("inbox", false), INBOX_MAX_BATCH);
}

/*
 * Writes the transaction's pending sends, so that what reads or processes
 * an inbox next in this transaction sees them
 */
void
InboxFlushPending(void)
{
	DefinitionId id;
	PendingBuffer *buffer;

	InboxId(&id);
	buffer = PendingBufferFind(&InboxKind, &id);
	if (buffer != NULL && buffer->npending > 0)
		(void) PendingBufferFlush(buffer);
}

/*
 * Reads a recipient's row of eventbox_states, with a snapshot taken now
 * when latest (the recipient's lock is held: what committed before it was
 * granted is seen), else with the caller's.  The state is copied into
 * cxt.  Between BeginExtensionWrite and EndExtensionWrite.
 */
void
RecipientStateRead(const char *recipient, bool latest, MemoryContext cxt,
				   RecipientState *out)
{
	static SPIPlanPtr plan = NULL;
	Datum		args[1];
	bool		isnull;
	Datum		state;
	int			rc;

	if (plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		plan = PrepareKeptPlan("SELECT state, eversion, owner::pg_catalog.oid"
							   "  FROM " CHOREO_SCHEMA ".eventbox_states"
							   " WHERE recipient OPERATOR(pg_catalog.=) $1",
							   1, argtypes);
	}
	args[0] = CStringGetTextDatum(recipient);
	CommandCounterIncrement();
	if (latest)
		rc = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
								  true, false, 1);
	else
		rc = SPI_execute_plan(plan, args, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read a recipient's state: %s", SPI_result_code_string(rc));
	out->exists = SPI_processed > 0;
	out->state = NULL;
	out->eversion = 0;
	out->owner = InvalidOid;
	if (!out->exists)
		return;
	state = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Jsonb	   *jsonb = DatumGetJsonbPCopy(state);

		MemoryContextSwitchTo(old);
		/* a JSON null state is no state, as the processor is handed it */
		if (!JsonbIsNullScalar(jsonb))
			out->state = jsonb;
	}
	out->eversion = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												2, &isnull));
	out->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												3, &isnull));
}

/*
 * Raises 42501 unless role may act on the recipient: it belongs to nobody
 * yet, or role has the privileges of its owner
 */
void
RecipientCheckAccess(const char *recipient, const RecipientState *state, Oid role,
					 RecipientAccess access)
{
	const char *owner;

	if (!state->exists || has_privs_of_role(role, state->owner))
		return;
	owner = GetUserNameFromId(state->owner, true);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 access == RECIPIENT_PROCESS ?
			 errmsg("permission denied to process recipient \"%s\"", recipient) :
			 access == RECIPIENT_READ_INBOX ?
			 errmsg("permission denied to read the inbox of recipient \"%s\"", recipient) :
			 errmsg("permission denied to read the state of recipient \"%s\"", recipient),
			 owner != NULL ?
			 errdetail("The recipient belongs to role \"%s\": only its members may process it or read its inbox and state.", owner) :
			 errdetail("The recipient belongs to a role that was dropped (%u): only a superuser may act on it.", state->owner)));
}

PG_FUNCTION_INFO_V1(choreo_send);

/* Keeps an event for the recipient, written at the next flush of the sends */
Datum
choreo_send(PG_FUNCTION_ARGS)
{
	PendingBuffer *buffer;
	Datum		values[2];
	bool		nulls[2];
	text	   *recipient;

	PreventInSecurityRestrictedOperation("send to an eventbox");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recipient name must not be null")));
	recipient = PG_GETARG_TEXT_PP(0);
	CheckRecipientLength(VARSIZE_ANY_EXHDR(recipient));
	EnsureEntityIsHere("recipient", VARDATA_ANY(recipient), VARSIZE_ANY_EXHDR(recipient));
	/* sending in a loop finds the same pending state again and again */
	buffer = last_inbox;
	if (buffer == NULL || last_inbox_forgotten != pending_buffers_forgotten ||
		!PendingBufferTakesItems(buffer))
	{
		buffer = last_inbox = PendingInbox();
		last_inbox_forgotten = pending_buffers_forgotten;
	}
	values[0] = PointerGetDatum(recipient);
	nulls[0] = false;
	nulls[1] = PG_ARGISNULL(1);
	values[1] = nulls[1] ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(1));
	BufferFireValues(buffer, values, nulls);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_inbox);

/*
 * A recipient's outstanding events, in send order: the committed ones and
 * this transaction's (its pending sends are written first)
 */
Datum
choreo_inbox(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *recipient = RecipientArgument(fcinfo, 0);
	RecipientState state;
	ExtensionWrite write;
	Datum		args[1];
	int			rc;

	InboxFlushPending();
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	BeginExtensionWrite(&write, false);
	RecipientStateRead(recipient, false, CurrentMemoryContext, &state);
	RecipientCheckAccess(recipient, &state, write.caller, RECIPIENT_READ_INBOX);
	if (plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		plan = PrepareKeptPlan("SELECT id, value, created_at FROM " CHOREO_SCHEMA ".inbox"
							   " WHERE recipient OPERATOR(pg_catalog.=) $1 ORDER BY id",
							   1, argtypes);
	}
	args[0] = CStringGetTextDatum(recipient);
	/* not read-only: a snapshot that sees the sends just written */
	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read an inbox: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[3];
		bool		nulls[3];

		CHECK_FOR_INTERRUPTS();
		for (int c = 0; c < 3; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1,
									  &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	EndExtensionWrite(&write);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(choreo_state);

/* A recipient's state and eversion: NULL and 0 for one never processed */
Datum
choreo_state(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *recipient = RecipientArgument(fcinfo, 0);
	RecipientState state;
	ExtensionWrite write;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	MemoryContext cxt = CurrentMemoryContext;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	BeginExtensionWrite(&write, false);
	RecipientStateRead(recipient, false, cxt, &state);
	RecipientCheckAccess(recipient, &state, write.caller, RECIPIENT_READ_STATE);
	EndExtensionWrite(&write);
	nulls[0] = (state.state == NULL);
	values[0] = nulls[0] ? (Datum) 0 : JsonbPGetDatum(state.state);
	values[1] = Int64GetDatum(state.eversion);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
