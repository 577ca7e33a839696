/*
 * jsonb_util.c
 *		Turning SQL values into jsonb, and building jsonb objects.
 *
 * Values of any type are rendered exactly as to_jsonb() renders them, by
 * calling to_jsonb through the function manager.  to_jsonb learns its
 * argument's type from the call expression, so we keep, per type, a
 * FmgrInfo whose fn_expr carries a dummy argument of that type; the lookup
 * is done once per backend and type.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "choreograph.h"

typedef struct JsonbConverter
{
	Oid			type;			/* hash key */
	FmgrInfo	to_jsonb;
} JsonbConverter;

static HTAB *converters = NULL;
static MemoryContext converter_cxt = NULL;
static Jsonb *jsonb_null = NULL;

/* Returns the to_jsonb call info for values of the given type */
static FmgrInfo *
ConverterFor(Oid type)
{
	JsonbConverter *converter;
	bool		found;

	if (converters == NULL)
	{
		HASHCTL		ctl;

		converter_cxt = AllocSetContextCreate(TopMemoryContext,
											  "choreograph jsonb converters",
											  ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(JsonbConverter);
		ctl.hcxt = converter_cxt;
		converters = hash_create("choreograph jsonb converters", 32, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	converter = hash_search(converters, &type, HASH_FIND, NULL);
	if (converter == NULL)
	{
		FmgrInfo	flinfo;
		MemoryContext old = MemoryContextSwitchTo(converter_cxt);

		/* build first, so that a failure leaves no half-made entry */
		fmgr_info_cxt(F_TO_JSONB, &flinfo, converter_cxt);
		flinfo.fn_expr = (Node *)
			makeFuncExpr(F_TO_JSONB, JSONBOID,
						 list_make1(makeNullConst(type, -1, InvalidOid)),
						 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
		MemoryContextSwitchTo(old);

		converter = hash_search(converters, &type, HASH_ENTER, &found);
		converter->to_jsonb = flinfo;
	}
	return &converter->to_jsonb;
}

/* The jsonb value null, built once per backend and shared (never freed) */
Jsonb *
JsonbNull(void)
{
	if (jsonb_null == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		JsonbValue	v;

		v.type = jbvNull;
		jsonb_null = JsonbValueToJsonb(&v);
		MemoryContextSwitchTo(old);
	}
	return jsonb_null;
}

/*
 * Renders a value as to_jsonb() would; SQL NULL and void become the jsonb
 * null.  A jsonb value is returned as is (detoasted), so the result may
 * share memory with the value: copy it to keep it.
 */
Jsonb *
DatumToJsonb(Datum value, bool isnull, Oid type)
{
	if (isnull || type == VOIDOID || !OidIsValid(type))
		return JsonbNull();
	if (type == JSONBOID)
		return DatumGetJsonbP(value);
	return DatumGetJsonbP(FunctionCall1(ConverterFor(type), value));
}

/* Adds a jsonb value to an object or array being built */
void
PushJsonbDatum(JsonbParseState **state, JsonbIteratorToken seq, Jsonb *value)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(value))
		JsonbExtractScalar(&value->root, &v);
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &value->root;
		v.val.binary.len = VARSIZE(value) - VARHDRSZ;
	}
	pushJsonbValue(state, seq, &v);
}

/* Adds a string (a key or a value) to an object or array being built */
void
PushJsonbCString(JsonbParseState **state, JsonbIteratorToken seq, const char *str)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) str;
	v.val.string.len = strlen(str);
	pushJsonbValue(state, seq, &v);
}

/* Adds a null to an object or array being built */
void
PushJsonbNull(JsonbParseState **state, JsonbIteratorToken seq)
{
	JsonbValue	v;

	v.type = jbvNull;
	pushJsonbValue(state, seq, &v);
}
