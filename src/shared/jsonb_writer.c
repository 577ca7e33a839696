/*
 * shared/jsonb_writer.c
 *		Writing jsonb documents directly in their binary format.
 *
 * The documents choreograph builds on its hot paths (a run's report, bag,
 * a trigger's envelope) have a shape known in advance, with keys it can
 * list in jsonb's order (shorter first, then bytewise).  Writing them in
 * one pass, straight into the result, costs a fraction of building a
 * JsonbValue tree and converting it: no tree, no sort, and values that are
 * already jsonb containers are copied, not taken apart and rebuilt.
 *
 * The format is PostgreSQL's (see utils/jsonb.h): a container is a header
 * word (count and kind), one JEntry per child (for an object: the keys,
 * then the values), then the children's data; each JEntry holds its
 * child's type and length, or every JB_OFFSET_STRIDE'th one the end
 * offset; numerics and containers start int-aligned, the padding counting
 * in their length.  The caller writes an object's keys first, in jsonb
 * order and without duplicates, then its values in the same order.
 */
#include "postgres.h"

#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "shared/shared.h"

/* Pads the buffer with zeros to an int boundary; returns the padding */
static int
PadToInt(StringInfo buf)
{
	int			padlen = INTALIGN(buf->len) - buf->len;

	if (padlen > 0)
	{
		enlargeStringInfo(buf, padlen);
		memset(buf->data + buf->len, 0, padlen);
		buf->len += padlen;
		buf->data[buf->len] = '\0';
	}
	return padlen;
}

/* Records a finished child of the innermost container: its JEntry */
static void
ChildDone(JsonbWriter *writer, uint32 meta)
{
	JsonbWriterLevel *level = &writer->levels[writer->depth - 1];
	JEntry	   *slot;

	Assert(level->index < level->count);
	level->totallen += JBE_OFFLENFLD(meta);
	if (level->totallen > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("total size of jsonb elements exceeds the maximum of %u bytes",
						JENTRY_OFFLENMASK)));
	if (level->index % JB_OFFSET_STRIDE == 0)
		meta = (meta & JENTRY_TYPEMASK) | level->totallen | JENTRY_HAS_OFF;
	slot = (JEntry *) (writer->buf.data + level->jentries) + level->index;
	*slot = meta;
	level->index++;
}

/* Starts a document */
void
JsonbWriterInit(JsonbWriter *writer)
{
	initStringInfo(&writer->buf);
	writer->depth = 0;
	/* room for the varlena header */
	enlargeStringInfo(&writer->buf, VARHDRSZ);
	writer->buf.len = VARHDRSZ;
}

/* Starts a container of count children (an object: count pairs) */
static void
BeginContainer(JsonbWriter *writer, uint32 flags, int count)
{
	JsonbWriterLevel *level;
	int			nentries = (flags & JB_FOBJECT) ? count * 2 : count;
	uint32		header = (uint32) count | flags;

	if (writer->depth >= JSONB_WRITER_MAX_DEPTH)
		elog(ERROR, "jsonb writer nesting too deep");
	level = &writer->levels[writer->depth++];
	level->base = writer->buf.len;
	PadToInt(&writer->buf);
	appendBinaryStringInfo(&writer->buf, (char *) &header, sizeof(uint32));
	level->jentries = writer->buf.len;
	enlargeStringInfo(&writer->buf, nentries * sizeof(JEntry));
	writer->buf.len += nentries * sizeof(JEntry);
	level->count = nentries;
	level->index = 0;
	level->totallen = 0;
}

void
JsonbWriterBeginObject(JsonbWriter *writer, int npairs)
{
	BeginContainer(writer, JB_FOBJECT, npairs);
}

void
JsonbWriterBeginArray(JsonbWriter *writer, int nelems)
{
	BeginContainer(writer, JB_FARRAY, nelems);
}

/* Ends the innermost container */
void
JsonbWriterEnd(JsonbWriter *writer)
{
	JsonbWriterLevel *level = &writer->levels[writer->depth - 1];
	uint32		total = writer->buf.len - level->base;

	Assert(level->index == level->count);
	writer->depth--;
	if (writer->depth > 0)
		ChildDone(writer, JENTRY_ISCONTAINER | total);
}

/* Adds a string: a key, or a value */
void
JsonbWriterString(JsonbWriter *writer, const char *str, int len)
{
	if (len > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("string too long to represent as jsonb string")));
	appendBinaryStringInfo(&writer->buf, str, len);
	ChildDone(writer, JENTRY_ISSTRING | len);
}

void
JsonbWriterCString(JsonbWriter *writer, const char *str)
{
	JsonbWriterString(writer, str, strlen(str));
}

void
JsonbWriterNull(JsonbWriter *writer)
{
	ChildDone(writer, JENTRY_ISNULL);
}

/*
 * Adds a value: a scalar, or a container (jbvBinary) copied as it is, or
 * an object or array (a tree), written out.
 */
void
JsonbWriterValue(JsonbWriter *writer, JsonbValue *value)
{
	int			padlen;

	switch (value->type)
	{
		case jbvNull:
			JsonbWriterNull(writer);
			break;
		case jbvString:
			JsonbWriterString(writer, value->val.string.val, value->val.string.len);
			break;
		case jbvBool:
			ChildDone(writer, value->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE);
			break;
		case jbvNumeric:
			{
				int			numlen = VARSIZE_ANY(value->val.numeric);

				padlen = PadToInt(&writer->buf);
				appendBinaryStringInfo(&writer->buf, (char *) value->val.numeric, numlen);
				ChildDone(writer, JENTRY_ISNUMERIC | (padlen + numlen));
				break;
			}
		case jbvBinary:
			{
				JsonbContainer *container = value->val.binary.data;

				if (JsonContainerIsScalar(container))
				{
					JsonbValue	scalar;

					JsonbExtractScalar(container, &scalar);
					JsonbWriterValue(writer, &scalar);
					break;
				}
				/* offsets inside a container are relative to its start */
				padlen = PadToInt(&writer->buf);
				appendBinaryStringInfo(&writer->buf, (char *) container,
									   value->val.binary.len);
				ChildDone(writer, JENTRY_ISCONTAINER | (padlen + value->val.binary.len));
				break;
			}
		case jbvArray:
			JsonbWriterBeginArray(writer, value->val.array.nElems);
			for (int i = 0; i < value->val.array.nElems; i++)
				JsonbWriterValue(writer, &value->val.array.elems[i]);
			JsonbWriterEnd(writer);
			break;
		case jbvObject:
			JsonbWriterBeginObject(writer, value->val.object.nPairs);
			for (int i = 0; i < value->val.object.nPairs; i++)
				JsonbWriterValue(writer, &value->val.object.pairs[i].key);
			for (int i = 0; i < value->val.object.nPairs; i++)
				JsonbWriterValue(writer, &value->val.object.pairs[i].value);
			JsonbWriterEnd(writer);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) value->type);
	}
}

/* Finishes the document (whose root container has ended) */
Jsonb *
JsonbWriterFinish(JsonbWriter *writer)
{
	Jsonb	   *result = (Jsonb *) writer->buf.data;

	Assert(writer->depth == 0);
	SET_VARSIZE(result, writer->buf.len);
	return result;
}
