/*
 * streams/stream.c
 *		Entity streams as SQL sees them: choreo_emit, choreo_emit_and_wait
 *		and choreo_events, and the arguments that name streams and
 *		entities.
 *
 * A stream's emits in a transaction are the items of one pending state
 * (buffers/buffer_pending.c) written through the stream sink
 * (stream_sink.c), so they are batched, savepoint-exact and flushed at
 * pre-commit like a buffer's; they are numbered when they are written.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "access/xact.h"

#include "streams/streams.h"

/* events kept in memory before they are written (and numbered) */
#define STREAM_MAX_BATCH 5000

static PendingBuffer *last_emitted = NULL;	/* fast path for emitting in a loop */
static uint64 last_emitted_forgotten = 0;

/* A stream's name: not NULL, not empty, at most NAMEDATALEN - 1 bytes */
char *
StreamNameArgument(FunctionCallInfo fcinfo, int argno)
{
	char	   *name = NameArgument(fcinfo, argno, "stream");

	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stream name \"%s\" is too long", name),
				 errdetail("A stream's name is at most %d bytes long.", NAMEDATALEN - 1)));
	return name;
}

/*
 * An entity: not NULL, not empty, of any length, and kept on this node
 * (shared/entity_placement.c)
 */
char *
EntityArgument(FunctionCallInfo fcinfo, int argno)
{
	char	   *entity = NameArgument(fcinfo, argno, "entity");

	EnsureEntityIsHere("entity", entity, strlen(entity));
	return entity;
}

/* The transaction's pending state of a stream, made at its first emit */
static PendingBuffer *
PendingStream(const char *stream)
{
	DefinitionId id;
	PendingBuffer *buffer;

	memset(&id, 0, sizeof(id));
	id.namespace = InvalidOid;
	namestrcpy(&id.name, stream);
	buffer = PendingBufferFind(&StreamKind, &id);
	if (buffer != NULL && PendingBufferTakesItems(buffer))
		return buffer;
	return PendingBufferCreate(&StreamKind, &id, &StreamSink,
							   ChoreoRelationOid("events", false), STREAM_MAX_BATCH);
}

/* Checks the entity (kept on this node too) and makes the values of its item */
static void
EmitValues(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	text	   *entity;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("entity name must not be null")));
	entity = PG_GETARG_TEXT_PP(1);
	if (VARSIZE_ANY_EXHDR(entity) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("entity name must not be empty")));
	EnsureEntityIsHere("entity", VARDATA_ANY(entity), VARSIZE_ANY_EXHDR(entity));
	values[0] = PointerGetDatum(entity);
	nulls[0] = false;
	nulls[1] = PG_ARGISNULL(2);
	values[1] = nulls[1] ? (Datum) 0 : PointerGetDatum(PG_GETARG_JSONB_P(2));
}

PG_FUNCTION_INFO_V1(choreo_emit);

/* Keeps an event to be numbered and written at the stream's next flush */
Datum
choreo_emit(PG_FUNCTION_ARGS)
{
	PendingBuffer *buffer = NULL;
	Datum		values[2];
	bool		nulls[2];

	PreventInSecurityRestrictedOperation("emit into a stream");
	/* emitting in a loop names the same stream again and again */
	if (last_emitted != NULL && last_emitted_forgotten == pending_buffers_forgotten &&
		!PG_ARGISNULL(0))
	{
		text	   *name = PG_GETARG_TEXT_PP(0);
		int			len = VARSIZE_ANY_EXHDR(name);

		if (len == (int) strlen(last_emitted->name) &&
			memcmp(VARDATA_ANY(name), last_emitted->name, len) == 0 &&
			PendingBufferTakesItems(last_emitted))
			buffer = last_emitted;
	}
	if (buffer == NULL)
	{
		buffer = last_emitted = PendingStream(StreamNameArgument(fcinfo, 0));
		last_emitted_forgotten = pending_buffers_forgotten;
	}
	EmitValues(fcinfo, values, nulls);
	BufferFireValues(buffer, values, nulls);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(choreo_emit_and_wait);

/* Writes the stream's pending events, then this one; returns its seq */
Datum
choreo_emit_and_wait(PG_FUNCTION_ARGS)
{
	char	   *stream = StreamNameArgument(fcinfo, 0);
	PendingBuffer *buffer;
	BufferItem *item;
	Datum		values[2];
	bool		nulls[2];

	PreventInSecurityRestrictedOperation("emit into a stream");
	EmitValues(fcinfo, values, nulls);
	buffer = PendingStream(stream);
	item = BufferItemAloneValues(buffer, values, nulls);
	(void) PendingBufferFlush(buffer);
	PG_RETURN_DATUM(buffer->sink->write_returning(buffer, item));
}

PG_FUNCTION_INFO_V1(choreo_events);

/* The committed (and this transaction's flushed) events of an entity after a seq */
Datum
choreo_events(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr entity_plan = NULL;
	static SPIPlanPtr plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *stream = StreamNameArgument(fcinfo, 0);
	char	   *entity = EntityArgument(fcinfo, 1);
	int64		after;
	int32		max;
	Datum		args[3];
	int			rc;

	if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of choreo_events must not be null",
						PG_ARGISNULL(2) ? "after" : "max")));
	after = PG_GETARG_INT64(2);
	max = PG_GETARG_INT32(3);
	if (after < 0 || max < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of choreo_events must not be negative",
						after < 0 ? "after" : "max")));

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/*
	 * The entity's id with a snapshot taken now: a REPEATABLE READ
	 * transaction that emitted into an entity made after its snapshot
	 * still reads its own events (the events, with its own snapshot)
	 */
	if (entity_plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};

		entity_plan = PrepareKeptPlan("SELECT id FROM " CHOREO_SCHEMA ".stream_entities"
									  " WHERE stream OPERATOR(pg_catalog.=) $1"
									  "   AND entity OPERATOR(pg_catalog.=) $2", 2, argtypes);
	}
	if (plan == NULL)
	{
		Oid			argtypes[3] = {INT8OID, INT8OID, INT4OID};

		plan = PrepareKeptPlan("SELECT e.seq, e.payload, e.created_at"
							   "  FROM " CHOREO_SCHEMA ".events e"
							   " WHERE e.entity_id OPERATOR(pg_catalog.=) $1"
							   "   AND e.seq OPERATOR(pg_catalog.>) $2"
							   " ORDER BY e.seq LIMIT $3",
							   3, argtypes);
	}
	args[0] = CStringGetTextDatum(stream);
	args[1] = CStringGetTextDatum(entity);
	rc = SPI_execute_snapshot(entity_plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot,
							  true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read an entity: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		SPI_finish();
		return (Datum) 0;
	}
	{
		bool		isnull;

		args[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	}
	args[1] = Int64GetDatum(after);
	args[2] = Int32GetDatum(max);
	rc = SPI_execute_plan(plan, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read events: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		row[3];
		bool		rownulls[3];

		for (int c = 0; c < 3; c++)
			row[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1,
								   &rownulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	SPI_finish();
	return (Datum) 0;
}
