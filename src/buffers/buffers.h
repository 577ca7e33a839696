/*
 * buffers/buffers.h
 *		Batched buffers: their definitions (buffer_catalog.c), a
 *		transaction's pending items (buffer.c), writing them
 *		(buffer_write.c), and choreo_capture (capture.c).
 */
#ifndef CHOREOGRAPH_BUFFERS_H
#define CHOREOGRAPH_BUFFERS_H

#include "shared/shared.h"

/* buffer_catalog.c: buffer definitions */
extern const DefinitionKind BufferKind;

typedef struct BufferDef
{
	DefinitionId id;
	Oid			target;
	int			max_batch;
	Oid			owner;
} BufferDef;

extern void BufferCacheInit(void);
extern void ValidateBufferTarget(const char *name, Oid target);
extern void BufferLookupId(const DefinitionId *id, BufferDef *def);
extern const DefinitionId *BufferResolve(const char *written, int len);
extern NameRef *BufferNameLookup(const char *written, int len);
extern uint64 BufferDefinitionsGeneration(void);

/* buffer.c: batched buffers */
typedef struct PendingBuffer PendingBuffer;

extern PendingBuffer *PendingBufferFor(const char *written, int len, NameRef **ref);
extern int	PendingBufferColumn(PendingBuffer *buffer, const char *column);
extern void BufferFireJsonb(PendingBuffer *buffer, int column, Jsonb *document);
extern void BuffersInit(void);
extern int64 BuffersFlushAll(void);
extern void InsertPlansInvalidate(Oid relid);


/* A column of a buffer's target table, as read at the first fire */
typedef struct BufferColumn
{
	NameData	name;
	AttrNumber	attnum;
	Oid			type;
	int32		typmod;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	char		generated;		/* attgenerated */
	char		identity;		/* attidentity */
	JsonColumnConverter converter;
} BufferColumn;

/* The columns an item names, as indexes into the buffer's columns */
typedef struct ColumnSet
{
	int			ncolumns;
	int		   *columns;		/* ascending */
	char	   *signature;		/* "attnum:type:typmod,...": key of its insert plan */
	DirectInsertColumns direct; /* the same columns, for DirectInsertRows */
} ColumnSet;

typedef struct BufferItem
{
	SavepointTag tag;			/* the subtransaction level that fired it */
	Oid			userid;			/* the role that fired it */
	ColumnSet  *set;
	Datum	   *values;
	bool	   *nulls;
} BufferItem;

struct PendingBuffer
{
	MemoryContext cxt;			/* everything below, batches included */
	DefinitionId id;			/* hash key: the definition's identity */
	char	   *name;			/* its name in its schema, for messages */
	Oid			target;
	int			max_batch;
	char	   *target_name;	/* schema-qualified and quoted, for messages */
	uint64		def_generation; /* BufferDefinitionsGeneration() when checked */
	bool		target_changed; /* the table's definition may have changed */
	bool		outdated;		/* new items go to a newer pending state */
	bool		dropped_items;	/* a rollback dropped items: compact the batches */
	int			created_level;	/* the subtransaction level that made it */
	int			ncolumns;
	BufferColumn *columns;
	List	   *sets;			/* of ColumnSet *, interned */
	List	   *batches;		/* of Batch *, oldest first */
	int			npending;		/* items in pending batches */
};

/* buffer_write.c */
extern void BufferWriteItems(PendingBuffer *buffer, BufferItem **items, int nitems);
extern Datum BufferWriteReturning(PendingBuffer *buffer, BufferItem *item);
extern void BufferWriteAtEnd(void);

#endif							/* CHOREOGRAPH_BUFFERS_H */
