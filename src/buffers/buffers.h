/*
 * buffers/buffers.h
 *		Batched buffers: their definitions (buffer_catalog.c), the SQL
 *		functions (buffer.c), a transaction's pending items
 *		(buffer_pending.c), drafting them (buffer_draft.c), the sinks that
 *		write them (sink.h; the table: table_sink.c), and choreo_capture
 *		(capture.c).
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

/* buffer.c: batched buffers, as SQL sees them */
extern PendingBuffer *PendingBufferFor(const char *written, int len, NameRef **ref);
extern void BuffersInit(void);

/* buffer_pending.c: a transaction's pending states, their items and flushes */
extern uint64 pending_buffers_forgotten;

extern void PendingBuffersInit(void);
extern void BufferSinkRegister(const BufferSink *sink);
extern PendingBuffer *PendingBufferFind(const DefinitionKind *kind, const DefinitionId *id);
extern PendingBuffer *PendingBufferCreate(const DefinitionKind *kind, const DefinitionId *id,
										  const BufferSink *sink, Oid target, int max_batch);
extern bool PendingBufferRecheckTarget(PendingBuffer *buffer);
extern int	PendingBufferCount(void);
extern PendingBuffer *PendingBufferNth(int i);
extern int64 PendingBufferFlush(PendingBuffer *buffer);
extern int64 BuffersFlushAll(void);

/*
 * An item being built: its values, converted in scratch memory where the
 * conversion can fail or run user code (input functions, domain checks),
 * else still JSON, converted straight into the item's memory once it is
 * placed.  So a failing fire leaves nothing in a batch, and code run by a
 * conversion (which may fire into the same buffer, even flush it) never
 * sees a half-built item.
 */
typedef struct ItemDraft
{
	ColumnSet  *set;
	JsonbValue *json;			/* per column of the set */
	Datum	   *values;
	bool	   *nulls;
	bool	   *converted;		/* values[i] holds the converted value */
} ItemDraft;

/* Whether new items may go to a pending state, as far as its target goes */
static inline bool
PendingBufferTakesItems(PendingBuffer *buffer)
{
	if (buffer->outdated)
		return false;
	if (unlikely(buffer->target_changed))
		return PendingBufferRecheckTarget(buffer);
	return true;
}

extern MemoryContext BeginDraftMemory(MemoryContext *scratch);
extern void EndDraftMemory(MemoryContext scratch, MemoryContext old);
extern void FreeDraftMemory(MemoryContext scratch);
extern BufferItem *PendingBufferPlaceItem(PendingBuffer *buffer, ItemDraft *draft,
										  MemoryContext cxt);
extern void PendingBufferAddItem(PendingBuffer *buffer, ItemDraft *draft);

/* buffer_draft.c: items as fired, checked and converted */
extern int	PendingBufferColumn(PendingBuffer *buffer, const char *column);
extern void BufferFire(PendingBuffer *buffer, Jsonb *json);
extern void BufferFireJsonb(PendingBuffer *buffer, int column, Jsonb *document);
extern BufferItem *BufferItemAlone(PendingBuffer *buffer, Jsonb *json);
extern void BufferDescribeValues(PendingBuffer *buffer, int ncolumns,
								 const char *const *names, const Oid *types);
extern void BufferFireValues(PendingBuffer *buffer, Datum *values, bool *nulls);
extern BufferItem *BufferItemAloneValues(PendingBuffer *buffer, Datum *values, bool *nulls);

#endif							/* CHOREOGRAPH_BUFFERS_H */
