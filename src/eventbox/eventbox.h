/*
 * eventbox/eventbox.h
 *		The eventbox: each recipient's outstanding events and its
 *		versioned state.  The inbox sink that writes choreo_send's events
 *		(inbox_sink.c), the SQL functions that send and read (inbox.c), the
 *		check of a processor's result (batch_result.c), and
 *		choreo_process_batch (process_batch.c).
 */
#ifndef CHOREOGRAPH_EVENTBOX_H
#define CHOREOGRAPH_EVENTBOX_H

#include "shared/shared.h"
#include "buffers/buffers.h"

/* a recipient's name is at most this long: it keys two indexes */
#define RECIPIENT_MAX_BYTES 1024

/* inbox_sink.c: choreo_send's events, written at the flush */
extern const DefinitionKind InboxKind;
extern const BufferSink InboxSink;

extern void EventboxInit(void);

/* inbox.c: sending, reading, and what both ask of a recipient */
typedef struct RecipientState
{
	bool		exists;			/* it has a row of eventbox_states (an owner) */
	Jsonb	   *state;			/* NULL: none (a JSON null is none too) */
	int64		eversion;		/* 0 when it has no row */
	Oid			owner;			/* InvalidOid when it has no row */
} RecipientState;

/* what a role asks to do with a recipient */
typedef enum RecipientAccess
{
	RECIPIENT_PROCESS,
	RECIPIENT_READ_INBOX,
	RECIPIENT_READ_STATE
} RecipientAccess;

extern char *RecipientArgument(FunctionCallInfo fcinfo, int argno);
extern void InboxFlushPending(void);
extern void RecipientStateRead(const char *recipient, bool latest, MemoryContext cxt,
							   RecipientState *out);
extern void RecipientCheckAccess(const char *recipient, const RecipientState *state,
								 Oid role, RecipientAccess access);

/* batch_result.c: what a processor returned, checked against its batch */
typedef enum EventFate
{
	EVENT_OUTSTANDING,
	EVENT_CONSUMED,
	EVENT_GARBAGE
} EventFate;

typedef struct BatchResult
{
	int			nevents;
	const int64 *ids;			/* the batch's, ascending */
	EventFate  *fates;			/* per event of the batch */
	int			consumed;
	int			garbage;
	bool		moved;			/* a transition gave a state */
	Jsonb	   *state;			/* the last transition's (NULL: none) */
} BatchResult;

extern void BatchResultRead(Jsonb *result, const char *processor, BatchResult *out);

#endif							/* CHOREOGRAPH_EVENTBOX_H */
