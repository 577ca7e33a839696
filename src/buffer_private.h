/*
 * buffer_private.h
 *		What buffer.c (pending items) and buffer_write.c (writing them)
 *		share: the shapes of a transaction's pending buffers and items.
 */
#ifndef CHOREOGRAPH_BUFFER_PRIVATE_H
#define CHOREOGRAPH_BUFFER_PRIVATE_H

#include "choreograph.h"

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
	int			nest_level;		/* subtransaction level that fired it */
	Oid			userid;			/* the role that fired it */
	ColumnSet  *set;
	Datum	   *values;
	bool	   *nulls;
} BufferItem;

/* (typedef'd in choreograph.h) */
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
	int			created_level;
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

#endif							/* CHOREOGRAPH_BUFFER_PRIVATE_H */
