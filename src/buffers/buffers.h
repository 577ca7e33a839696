/*
 * buffers/buffers.h
 *		Batched buffers: their definitions (buffer_catalog.c), a
 *		transaction's pending items (buffer.c), the sinks that write them
 *		(sink.h; the table: table_sink.c), and choreo_capture (capture.c).
 */
#ifndef CHOREOGRAPH_BUFFERS_H
#define CHOREOGRAPH_BUFFERS_H

#include "shared/shared.h"
#include "buffers/sink.h"

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
extern PendingBuffer *PendingBufferFor(const char *written, int len, NameRef **ref);
extern int	PendingBufferColumn(PendingBuffer *buffer, const char *column);
extern void BufferFireJsonb(PendingBuffer *buffer, int column, Jsonb *document);
extern void BuffersInit(void);
extern int64 BuffersFlushAll(void);

#endif							/* CHOREOGRAPH_BUFFERS_H */
