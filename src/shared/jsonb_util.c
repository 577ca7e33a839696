/*
 * shared/jsonb_util.c
 *		Turning SQL values into jsonb, and building jsonb documents fast.
 *
 * Values of any type are rendered exactly as to_jsonb() renders them.  The
 * common scalar types (boolean, integers, numeric, text, jsonb) are
 * converted here directly; the others go through to_jsonb itself, called
 * through the function manager.  to_jsonb learns its argument's type from
 * the call expression, so we keep, per type, a FmgrInfo whose fn_expr
 * carries a dummy argument of that type.
 *
 * Documents built on hot paths are written directly (jsonb_writer.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "shared/shared.h"

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

		converter = hash_search(converters, &type, HASH_ENTER, NULL);
		converter->to_jsonb = flinfo;
	}
	return &converter->to_jsonb;
}

/* The jsonb value null, built once per backend and shared (never freed) */
static Jsonb *
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

/*
 * Describes a jsonb document as a JsonbValue: its scalar, or its root
 * container (jbvBinary, pointing into the document).
 */
void
JsonbToValue(Jsonb *jsonb, JsonbValue *out)
{
	if (JB_ROOT_IS_SCALAR(jsonb))
		JsonbExtractScalar(&jsonb->root, out);
	else
	{
		out->type = jbvBinary;
		out->val.binary.data = &jsonb->root;
		out->val.binary.len = VARSIZE(jsonb) - VARHDRSZ;
	}
}

/*
 * Renders a value as to_jsonb() would, as a JsonbValue whose memory is in
 * cxt.  Common scalar types are converted without going through to_jsonb.
 */
void
DatumToJsonbValue(Datum value, bool isnull, Oid type, JsonbValue *out,
				  MemoryContext cxt)
{
	MemoryContext old;
	Jsonb	   *jsonb;

	if (isnull || type == VOIDOID || !OidIsValid(type))
	{
		out->type = jbvNull;
		return;
	}

	switch (type)
	{
		case BOOLOID:
			out->type = jbvBool;
			out->val.boolean = DatumGetBool(value);
			return;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			old = MemoryContextSwitchTo(cxt);
			out->type = jbvNumeric;
			out->val.numeric = int64_to_numeric(type == INT8OID ? DatumGetInt64(value)
												: type == INT4OID ? DatumGetInt32(value)
												: DatumGetInt16(value));
			MemoryContextSwitchTo(old);
			return;
		case NUMERICOID:
			{
				Numeric		num = DatumGetNumeric(value);

				/* to_jsonb renders NaN and infinities as strings */
				if (numeric_is_nan(num) || numeric_is_inf(num))
					break;
				out->type = jbvNumeric;
				out->val.numeric = MemoryContextAlloc(cxt, VARSIZE(num));
				memcpy(out->val.numeric, num, VARSIZE(num));
				return;
			}
		case TEXTOID:
		case VARCHAROID:
			{
				text	   *txt = DatumGetTextPP(value);
				int			len = VARSIZE_ANY_EXHDR(txt);

				out->type = jbvString;
				out->val.string.len = len;
				out->val.string.val = MemoryContextAlloc(cxt, len + 1);
				memcpy(out->val.string.val, VARDATA_ANY(txt), len);
				out->val.string.val[len] = '\0';
				return;
			}
		default:
			break;
	}

	jsonb = DatumToJsonb(value, false, type);
	jsonb = memcpy(MemoryContextAlloc(cxt, VARSIZE(jsonb)), jsonb, VARSIZE(jsonb));
	JsonbToValue(jsonb, out);
}

/* Compares two object keys as jsonb orders them: shorter first, then bytewise */
int
JsonbKeyCompare(const char *a, const char *b)
{
	size_t		alen = strlen(a);
	size_t		blen = strlen(b);

	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen);
}

/* qsort_arg comparator: attribute indexes by their names' jsonb key order */
static int
CompareAttributeKeys(const void *a, const void *b, void *arg)
{
	TupleDesc	desc = (TupleDesc) arg;

	return JsonbKeyCompare(NameStr(TupleDescAttr(desc, *(const int *) a)->attname),
						   NameStr(TupleDescAttr(desc, *(const int *) b)->attname));
}

/*
 * Prepares, in cxt, what RowToJsonbValue needs to render rows of a tuple
 * descriptor: its live attributes in jsonb key order.
 */
RowJsonbLayout *
RowJsonbLayoutFor(TupleDesc desc, MemoryContext cxt)
{
	RowJsonbLayout *layout = MemoryContextAllocZero(cxt, sizeof(RowJsonbLayout));

	layout->desc = desc;
	layout->order = MemoryContextAlloc(cxt, sizeof(int) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			layout->order[layout->nattrs++] = i;
	qsort_arg(layout->order, layout->nattrs, sizeof(int), CompareAttributeKeys, desc);
	return layout;
}

/*
 * Writes a row as to_jsonb(row) would render it: keys already in jsonb
 * order, common types converted directly, others through to_jsonb.
 */
void
JsonbWriterRow(JsonbWriter *writer, RowJsonbLayout *layout, HeapTuple tuple)
{
	TupleDesc	desc = layout->desc;
	Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));

	heap_deform_tuple(tuple, desc, values, nulls);
	JsonbWriterBeginObject(writer, layout->nattrs);
	for (int k = 0; k < layout->nattrs; k++)
		JsonbWriterCString(writer, NameStr(TupleDescAttr(desc, layout->order[k])->attname));
	for (int k = 0; k < layout->nattrs; k++)
	{
		int			i = layout->order[k];
		JsonbValue	value;

		DatumToJsonbValue(values[i], nulls[i], TupleDescAttr(desc, i)->atttypid,
						  &value, CurrentMemoryContext);
		JsonbWriterValue(writer, &value);
	}
	JsonbWriterEnd(writer);
	pfree(values);
	pfree(nulls);
}

/* Whether a document is the JSON null (SQL NULL's stand-in in jsonb) */
bool
JsonbIsNullScalar(Jsonb *jsonb)
{
	JsonbValue	scalar;

	return JB_ROOT_IS_SCALAR(jsonb) && JsonbExtractScalar(&jsonb->root, &scalar) &&
		scalar.type == jbvNull;
}
