/*
 * shared/json_to_column.c
 *		Converting a JSON value to a column's type exactly as
 *		jsonb_populate_record converts it: what buffers do with each value
 *		of a fired item.
 *
 * The common cases are converted here directly: a JSON string into text,
 * a number into an unconstrained numeric, a boolean into boolean, any
 * value into jsonb.  Scalars of other types (and domains over them) get
 * the text jsonb_populate_record would give their input function: a JSON
 * string's text, a number's or a boolean's JSON text, a container's JSON
 * text, or for json-based types the value's JSON text.  Arrays, composites
 * and domains over them are taken apart element by element or field by
 * field, which PostgreSQL's own jsonb_to_record does, so they are handed
 * to it: the value is wrapped in a one-key object and jsonb_to_record is
 * called with a one-column row description, the way a query with a column
 * definition list calls it.
 *
 * A JSON null gives SQL NULL, but a domain's constraints are checked on it
 * first, as jsonb_populate_record checks them.  The result is always in
 * the current memory context, never pointing into the JSON value.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "nodes/execnodes.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "shared/shared.h"

/* Decides how values of a type are converted; looks up nothing else yet */
void
JsonColumnConverterInit(JsonColumnConverter *converter, Oid type, int32 typmod)
{
	Oid			base_type = getBaseType(type);

	memset(converter, 0, sizeof(JsonColumnConverter));
	converter->type = type;
	converter->typmod = typmod;
	converter->base_type = base_type;
	converter->is_domain = base_type != type;

	if (type == JSONBOID)
		converter->how = CONVERT_JSONB;
	else if (type_is_array(base_type) || type_is_rowtype(base_type))
		converter->how = CONVERT_POPULATE;
	else if (type == TEXTOID || (type == VARCHAROID && typmod < 0))
		converter->how = CONVERT_TEXT;
	else if (type == NUMERICOID && typmod < 0)
		converter->how = CONVERT_NUMERIC;
	else if (type == BOOLOID)
		converter->how = CONVERT_BOOL;
	else
		converter->how = CONVERT_INPUT;
}

/*
 * Whether converting a value may run code that can fail or reach user
 * code (input functions, domain constraints): the fast conversions cannot.
 */
bool
JsonColumnConversionMayFail(JsonColumnConverter *converter, JsonbValue *value)
{
	switch (converter->how)
	{
		case CONVERT_JSONB:
			return false;
		case CONVERT_TEXT:
			return value->type != jbvString && value->type != jbvNull;
		case CONVERT_NUMERIC:
			return value->type != jbvNumeric && value->type != jbvNull;
		case CONVERT_BOOL:
			return value->type != jbvBool && value->type != jbvNull;
		default:
			return true;
	}
}

/* Calls the type's input function (a domain's checks its constraints) */
static Datum
CallInput(JsonColumnConverter *converter, char *text)
{
	if (!converter->input_ready)
	{
		Oid			input;

		getTypeInputInfo(converter->type, &input, &converter->ioparam);
		fmgr_info_cxt(input, &converter->input, converter->cxt);
		converter->input_ready = true;
	}
	return InputFunctionCall(&converter->input, text, converter->ioparam,
							 converter->typmod);
}

/* The JSON text of a value */
static char *
JsonText(JsonbValue *value)
{
	if (value->type == jbvBinary)
		return JsonbToCString(NULL, value->val.binary.data, value->val.binary.len);
	else
	{
		Jsonb	   *jsonb = JsonbValueToJsonb(value);

		return JsonbToCString(NULL, &jsonb->root, VARSIZE(jsonb));
	}
}

/* What jsonb_populate_record hands a scalar type's input function */
static char *
InputText(JsonColumnConverter *converter, JsonbValue *value)
{
	if (converter->base_type == JSONOID || converter->base_type == JSONBOID)
		return JsonText(value);
	switch (value->type)
	{
		case jbvString:
			return pnstrdup(value->val.string.val, value->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(value->val.numeric)));
		case jbvBool:
			return pstrdup(value->val.boolean ? "true" : "false");
		default:
			return JsonText(value);
	}
}

/*
 * jsonb_to_record keeps what it learnt of a composite type (its fields) in
 * its call info; a type or table changed since (ALTER TYPE ... ADD
 * ATTRIBUTE) makes the converters start afresh, as a new statement would.
 */
static uint64 catalog_generation = 0;

static void
CatalogChanged(Datum arg, Oid relid)
{
	catalog_generation++;
}

static void
TypeChanged(Datum arg, int cacheid, uint32 hashvalue)
{
	catalog_generation++;
}

/* Sets up jsonb_to_record's call info, afresh after catalog changes */
static void
PreparePopulate(JsonColumnConverter *converter)
{
	static bool callbacks_registered = false;

	if (!callbacks_registered)
	{
		ListenForRelationChanges(CatalogChanged, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, TypeChanged, (Datum) 0);
		callbacks_registered = true;
	}
	if (converter->record_desc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(converter->cxt);
		TupleDesc	desc = CreateTemplateTupleDesc(1);

		/* an anonymous record type: nothing is registered for it */
		TupleDescInitEntry(desc, 1, "v", converter->type, converter->typmod, 0);
		converter->record_desc = desc;
		MemoryContextSwitchTo(old);
	}
	else if (converter->to_record_generation == catalog_generation)
		return;
	fmgr_info_cxt(F_JSONB_TO_RECORD, &converter->to_record, converter->cxt);
	converter->to_record_generation = catalog_generation;
}

/*
 * Converts an array, composite or domain over one through jsonb_to_record,
 * given {"v": value} and the row description (v type).
 */
static Datum
Populate(JsonColumnConverter *converter, JsonbValue *value, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 1);
	ReturnSetInfo rsinfo;
	JsonbWriter writer;
	HeapTupleData tuple;
	Datum		record;

	PreparePopulate(converter);
	JsonbWriterInit(&writer);
	JsonbWriterBeginObject(&writer, 1);
	JsonbWriterString(&writer, "v", 1);
	JsonbWriterValue(&writer, value);
	JsonbWriterEnd(&writer);

	/* jsonb_to_record learns its row type from the expected description */
	memset(&rsinfo, 0, sizeof(ReturnSetInfo));
	rsinfo.type = T_ReturnSetInfo;
	rsinfo.expectedDesc = converter->record_desc;
	rsinfo.allowedModes = SFRM_ValuePerCall;
	InitFunctionCallInfoData(*fcinfo, &converter->to_record, 1, InvalidOid,
							 NULL, (Node *) &rsinfo);
	fcinfo->args[0].value = JsonbPGetDatum(JsonbWriterFinish(&writer));
	fcinfo->args[0].isnull = false;
	record = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		elog(ERROR, "jsonb_to_record returned null");

	tuple.t_len = HeapTupleHeaderGetDatumLength(DatumGetHeapTupleHeader(record));
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = DatumGetHeapTupleHeader(record);
	return heap_getattr(&tuple, 1, converter->record_desc, isnull);
}

/*
 * Converts a JSON value to the column's type, in the current memory
 * context; memory for lookups made on first use comes from converter->cxt,
 * which the caller sets.
 */
Datum
JsonColumnConvert(JsonColumnConverter *converter, JsonbValue *value, bool *isnull)
{
	*isnull = false;
	if (value->type == jbvNull)
	{
		*isnull = true;
		if (!converter->is_domain)
			return (Datum) 0;
		/* a domain's constraints apply to NULL too */
		if (converter->how == CONVERT_POPULATE)
			return Populate(converter, value, isnull);
		return CallInput(converter, NULL);
	}

	switch (converter->how)
	{
		case CONVERT_JSONB:
			return JsonbPGetDatum(JsonbValueToJsonb(value));
		case CONVERT_POPULATE:
			return Populate(converter, value, isnull);
		case CONVERT_TEXT:
			if (value->type == jbvString)
				return PointerGetDatum(cstring_to_text_with_len(value->val.string.val,
																value->val.string.len));
			break;
		case CONVERT_NUMERIC:
			/* a copy with a full header (the jsonb may hold a short one) */
			if (value->type == jbvNumeric)
				return NumericGetDatum(DatumGetNumericCopy(NumericGetDatum(value->val.numeric)));
			break;
		case CONVERT_BOOL:
			if (value->type == jbvBool)
				return BoolGetDatum(value->val.boolean);
			break;
		case CONVERT_INPUT:
			break;
	}
	return CallInput(converter, InputText(converter, value));
}
