/*
 * eventbox/batch_result.c
 *		What a processor returned, checked against the batch it was handed:
 *		the fate of each event (consumed by a transition, garbage, or left
 *		outstanding) and the state the transitions end in.
 *
 * The result is {"transitions": [{"events": [ids], "state": s}, ...],
 * "garbage": [ids]}, either key left out meaning none.  Nothing is applied
 * until all of it has been read: any flaw raises 22023 before a row is
 * touched.  The state of the last transition is the final state, the
 * earlier ones having been passed through on the way; a JSON null state
 * is no state (the SQL NULL a recipient starts with).
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "eventbox/eventbox.h"

/* problem is a sentence: what is wrong with the result */
pg_noreturn static void
Malformed(const char *processor, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("processor %s returned a malformed result", processor),
			 errdetail_internal("%s", problem),
			 errhint("A processor returns {\"transitions\": [{\"events\": [ids], \"state\": state}, ...], \"garbage\": [ids]}, naming each event of its batch at most once.")));
}

static const char *
ValueTypeName(const JsonbValue *value)
{
	switch (value->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		case jbvBinary:
			return JsonContainerIsObject(value->val.binary.data) ? "an object" : "an array";
		default:
			return "a value";
	}
}

static bool
IsContainer(const JsonbValue *value, bool object)
{
	if (value->type != jbvBinary || JsonContainerIsScalar(value->val.binary.data))
		return false;
	return object ? JsonContainerIsObject(value->val.binary.data) :
		JsonContainerIsArray(value->val.binary.data);
}

/*
 * An event id as written: an integer, else the result is malformed; false
 * for one no event can have (below 1, beyond bigint)
 */
static bool
EventId(const JsonbValue *value, const char *processor, int64 *id)
{
	Datum		number;

	if (value->type != jbvNumeric)
		Malformed(processor, psprintf("An event id is %s, not a number.", ValueTypeName(value)));
	number = NumericGetDatum(value->val.numeric);
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, number,
										  DirectFunctionCall2(numeric_trunc, number,
															  Int32GetDatum(0)))))
		Malformed(processor, psprintf("Event id %s is not an integer.",
									  DatumGetCString(DirectFunctionCall1(numeric_out, number))));
	if (DatumGetBool(DirectFunctionCall2(numeric_lt, number,
										 NumericGetDatum(int64_to_numeric(1)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_gt, number,
										 NumericGetDatum(int64_to_numeric(PG_INT64_MAX)))))
		return false;
	*id = DatumGetInt64(DirectFunctionCall1(numeric_int8, number));
	return true;
}

/* Gives each id of an array (a container) its fate */
static void
MarkEvents(const JsonbValue *array, const char *what, EventFate fate, const char *processor,
		   BatchResult *out)
{
	JsonbIterator *it;
	JsonbValue	value;
	JsonbIteratorToken token;

	if (!IsContainer(array, false))
		Malformed(processor, psprintf("The value of \"%s\" is %s, not an array.", what,
									  ValueTypeName(array)));
	it = JsonbIteratorInit(array->val.binary.data);
	while ((token = JsonbIteratorNext(&it, &value, true)) != WJB_DONE)
	{
		int64		id = 0;
		int			low = 0;
		int			high = out->nevents - 1;
		int			found = -1;

		if (token != WJB_ELEM)
			continue;
		if (!EventId(&value, processor, &id))
			high = -1;			/* in no batch */
		while (low <= high)
		{
			int			middle = low + (high - low) / 2;

			if (out->ids[middle] == id)
			{
				found = middle;
				break;
			}
			if (out->ids[middle] < id)
				low = middle + 1;
			else
				high = middle - 1;
		}
		if (found < 0)
			Malformed(processor, psprintf("Event %s is not in the batch.",
										  DatumGetCString(DirectFunctionCall1(numeric_out,
																			  NumericGetDatum(value.val.numeric)))));
		if (out->fates[found] != EVENT_OUTSTANDING)
			Malformed(processor, psprintf("Event " INT64_FORMAT " is named twice.", id));
		out->fates[found] = fate;
		if (fate == EVENT_CONSUMED)
			out->consumed++;
		else
			out->garbage++;
	}
}

/* Reads one transition: its events are consumed; returns its state in *state */
static void
ReadTransition(const JsonbValue *transition, const char *processor, BatchResult *out,
			   JsonbValue *state)
{
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	value;
	JsonbIteratorToken token;
	bool		has_events = false;
	bool		has_state = false;

	if (!IsContainer(transition, true))
		Malformed(processor, psprintf("A transition is %s, not an object.",
									  ValueTypeName(transition)));
	it = JsonbIteratorInit(transition->val.binary.data);
	while ((token = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		if (token != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &value, true);
		if (key.val.string.len == 6 && memcmp(key.val.string.val, "events", 6) == 0)
		{
			MarkEvents(&value, "events", EVENT_CONSUMED, processor, out);
			has_events = true;
		}
		else if (key.val.string.len == 5 && memcmp(key.val.string.val, "state", 5) == 0)
		{
			*state = value;
			has_state = true;
		}
		else
			Malformed(processor, psprintf("A transition has an unknown key \"%.*s\".",
										  key.val.string.len, key.val.string.val));
	}
	if (!has_state)
		Malformed(processor, "A transition has no \"state\".");
	if (!has_events)
		Malformed(processor, "A transition has no \"events\".");
}

/*
 * Reads a processor's result; out->nevents and out->ids (ascending) are
 * set by the caller.  processor names it in messages.
 */
void
BatchResultRead(Jsonb *result, const char *processor, BatchResult *out)
{
	JsonbIterator *it;
	JsonbValue	key;
	JsonbValue	value;
	JsonbValue	last_state;
	JsonbIteratorToken token;

	out->fates = palloc0(sizeof(EventFate) * out->nevents);
	out->consumed = 0;
	out->garbage = 0;
	out->moved = false;
	out->state = NULL;
	if (!JB_ROOT_IS_OBJECT(result))
	{
		JsonbValue	root;

		if (JB_ROOT_IS_SCALAR(result))
			(void) JsonbExtractScalar(&result->root, &root);
		else
			root.type = jbvBinary, root.val.binary.data = &result->root;
		Malformed(processor, psprintf("The result is %s, not an object.", ValueTypeName(&root)));
	}
	it = JsonbIteratorInit(&result->root);
	while ((token = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		if (token != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&it, &value, true);
		if (key.val.string.len == 11 && memcmp(key.val.string.val, "transitions", 11) == 0)
		{
			JsonbIterator *transitions;
			JsonbValue	transition;

			if (!IsContainer(&value, false))
				Malformed(processor, psprintf("The value of \"transitions\" is %s, not an array.",
											  ValueTypeName(&value)));
			transitions = JsonbIteratorInit(value.val.binary.data);
			while ((token = JsonbIteratorNext(&transitions, &transition, true)) != WJB_DONE)
			{
				if (token != WJB_ELEM)
					continue;
				ReadTransition(&transition, processor, out, &last_state);
				out->moved = true;
			}
		}
		else if (key.val.string.len == 7 && memcmp(key.val.string.val, "garbage", 7) == 0)
			MarkEvents(&value, "garbage", EVENT_GARBAGE, processor, out);
		else
			Malformed(processor, psprintf("The result has an unknown key \"%.*s\".",
										  key.val.string.len, key.val.string.val));
	}
	if (out->moved && last_state.type != jbvNull)
		out->state = JsonbValueToJsonb(&last_state);
}
