/*
 * buffers/sink.h
 *		The target of a flush, as an interface (BufferSink): what a sink is
 *		given (a pending state, the columns it described at the first fire,
 *		the items fired) and what it must do with them.  A buffer's table
 *		(table_sink.c) is the first sink.
 *
 * A pending state (PendingBuffer, buffer_pending.c) belongs to a definition
 * (its kind and identity) and is written through one sink.  The pending
 * state code keeps the items, in batches, savepoint-exact, and decides when
 * to write them (a full batch, a flush, pre-commit); the sink only writes.
 * Its members, in the order they are called:
 *
 *	open			once, when the state is made (its memory current): lock
 *					the target as its writes will, until the end of the
 *					transaction, and describe it: target_name and the columns
 *					items may name.  May keep its own state in sink_state.
 *	columns_unchanged	at the next fire after the relation in target changed
 *					(relcache): whether the columns open described still hold;
 *					if not, later items go to a new state, opened afresh.
 *	check_writable	before flushing a state that is outdated or whose target
 *					changed: raises if the target can no longer take items
 *					naming these column sets.
 *	write			once per flush (never per item), with every item the flush
 *					writes, oldest first, in batches' order; raises on failure,
 *					and the pending state code then keeps the items.  Called
 *					inside the transaction, from a full batch, choreo_flush,
 *					a fire-and-wait or the pre-commit rounds; it may write
 *					in a subtransaction that later rolls back, and then gets
 *					the same items again later.
 *	write_returning	one item alone, after the state's pending items were
 *					written: what a fire-and-wait returns (0 for NULL).
 *	relation_changed, at_end	per sink, not per state, once it is registered
 *					(BufferSinkRegister): a relation changed (InvalidOid:
 *					every one), and the transaction ended; either may be
 *					NULL, and neither may raise.
 *
 * Only open, columns_unchanged and check_writable read the catalogs; write
 * is the one indirect call per batch, so items cost nothing more for being
 * written through a sink.
 *
 * How the next sinks plug in, without touching the pending state code:
 *
 * - A stream (choreo_emit, streams/stream_sink.c): a kind of its own
 *	 (StreamKind, not a definition: a stream needs none) and the StreamSink.
 *	 choreo_emit finds or makes the state of (StreamKind, stream) and fires
 *	 an item of two values (entity, payload) with BufferFireValues.  write
 *	 gets every pending event of the flush at once, oldest first, locks each
 *	 entity in hash order with a transaction-level lock, reads its head with
 *	 a snapshot taken after the lock, numbers the events in firing order and
 *	 inserts them; stream_sink.c's header says why that is gap-free and in
 *	 commit order.  write_returning numbers one event and returns its seq.
 * - An inbox (choreo_send, spec/eventbox.md): a kind with one identity (the
 *	 extension's inbox table) and an InboxSink whose open describes
 *	 (recipient, value), and whose write inserts as the extension
 *	 (BeginExtensionWrite), with DirectInsertRows; it never locks a
 *	 recipient's state row, so sending never waits for processing.
 */
#ifndef CHOREOGRAPH_BUFFERS_SINK_H
#define CHOREOGRAPH_BUFFERS_SINK_H

#include "shared/shared.h"

/* A column of a sink's target, as described at the first fire */
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

/* The columns an item names, as indexes into the state's columns */
typedef struct ColumnSet
{
	int			ncolumns;
	int		   *columns;		/* ascending */
	char	   *signature;		/* "attnum:type:typmod,...": key of its insert plan */
	DirectInsertColumns direct; /* the same columns, for DirectInsertRows */
} ColumnSet;

/* A fired item; a batch's items are a savepoint list (shared/savepoint_list.c) */
typedef struct BufferItem
{
	SavepointTag tag;			/* the subtransaction level that fired it */
	Oid			userid;			/* the role that fired it */
	ColumnSet  *set;
	Datum	   *values;
	bool	   *nulls;
} BufferItem;

typedef struct BufferSink BufferSink;

/* A definition's items pending in this transaction, written through one sink */
typedef struct PendingBuffer
{
	MemoryContext cxt;			/* everything below, batches included */
	const DefinitionKind *kind; /* with id, the hash key: the definition */
	DefinitionId id;
	char	   *name;			/* its name in its schema, for messages */
	const BufferSink *sink;		/* where its items are written */
	void	   *sink_state;		/* the sink's own, in cxt */
	Oid			target;			/* the relation the sink writes (watched) */
	char	   *target_name;	/* schema-qualified and quoted, for messages */
	int			max_batch;
	uint64		def_generation; /* for the definition's owner: when checked */
	bool		target_changed; /* the target's definition may have changed */
	bool		outdated;		/* new items go to a newer pending state */
	bool		dropped_items;	/* a rollback dropped items: compact the batches */
	int			created_level;	/* the subtransaction level that made it */
	int			ncolumns;
	BufferColumn *columns;
	List	   *sets;			/* of ColumnSet *, interned */
	List	   *batches;		/* of Batch *, oldest first */
	int			npending;		/* items in pending batches */
} PendingBuffer;

/* Where a flush writes; see the comment at the top */
struct BufferSink
{
	const char *name;			/* "table": for debugging */
	void		(*open) (PendingBuffer *buffer);
	bool		(*columns_unchanged) (PendingBuffer *buffer);
	void		(*check_writable) (PendingBuffer *buffer, List *sets);
	void		(*write) (PendingBuffer *buffer, BufferItem **items, int nitems);
	Datum		(*write_returning) (PendingBuffer *buffer, BufferItem *item);
	void		(*relation_changed) (Oid relid);
	void		(*at_end) (void);
};

/* table_sink.c: the buffer's table, written as by an INSERT of its items */
extern const BufferSink TableSink;

#endif							/* CHOREOGRAPH_BUFFERS_SINK_H */
