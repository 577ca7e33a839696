/*
 * streams/streams.h
 *		Entity streams and activities: the stream sink that numbers events
 *		(stream_sink.c), choreo_emit and choreo_events (stream.c), waking
 *		the workers at commit (activity_announce.c), activity definitions
 *		(activity_catalog.c), running a processor over a batch of events
 *		(activity_run.c), the functions that act on one entity's cursor
 *		(activity_cursor.c), and activities as a work source of the workers
 *		(activity_source.c).
 */
#ifndef CHOREOGRAPH_STREAMS_H
#define CHOREOGRAPH_STREAMS_H

#include "shared/shared.h"
#include "buffers/buffers.h"

/* the work source activities register with the workers */
#define ACTIVITY_SOURCE "activities"

/* stream_sink.c: events written and numbered at the flush */
extern const DefinitionKind StreamKind;
extern const BufferSink StreamSink;

extern void StreamsInit(void);
extern char *StreamNameArgument(FunctionCallInfo fcinfo, int argno);
extern char *EntityArgument(FunctionCallInfo fcinfo, int argno);
extern int64 StreamEntityLock(const char *stream, const char *entity, bool create);
extern void StreamWatchBegins(const char *stream);

/* activity_announce.c: cursors made due, announced to the workers at commit */
extern void CursorAnnouncementsInit(void);
extern void CursorsAnnounceAtCommit(int64 cursor_id);

/* an activity's definition, as what runs it reads it */
typedef enum ActivityEngine
{
	ENGINE_LAZY,
	ENGINE_CRON,
	ENGINE_MANUAL
} ActivityEngine;

typedef struct Activity
{
	int32		id;
	char	   *name;			/* for messages */
	char	   *stream;
	Oid			processor;
	Oid			owner;
	ActivityEngine engine;
	int			batch_size;
	int			initial_batch_size;
	bool		auto_start;
	bool		paused;
	int			max_attempts;
	int			max_concurrency;
	char	   *serialize_group;	/* NULL: none */
} Activity;

/* activity_run.c: a processor run over a batch of events */

/* the columns of choreograph.activities ActivityFromRow reads, in order */
#define ACTIVITY_COLUMNS(a) \
	a "id, " a "name, " a "stream, " a "processor::pg_catalog.oid, " a "owner::pg_catalog.oid, " \
	a "engine, " a "batch_size, " a "initial_batch_size, " a "auto_start, " a "paused, " \
	a "max_attempts, " a "max_concurrency, " a "serialize_group"
#define ACTIVITY_NCOLUMNS 13

typedef struct ActivityRun
{
	int64		cursor_id;
	int64		entity_id;
	char	   *entity;
	int64		tail;			/* stored before the run */
	bool		initial;
	int64		last_handed;	/* the last seq handed over (tail if none) */
	int			nevents;
	bool		more;			/* more events lie beyond the batch */
	Jsonb	   *events;
} ActivityRun;

extern void ActivityFromRow(HeapTuple row, TupleDesc desc, int first, Activity *activity);
extern bool ActivityTryLocks(const Activity *activity, const char *entity, bool concurrency);
extern void ActivityRunPrepare(const Activity *activity, ActivityRun *run);
extern Datum ActivityRunCall(const Activity *activity, ActivityRun *run, bool *isnull);
extern void ActivityRunStore(const Activity *activity, ActivityRun *run, Datum result,
							 bool isnull);

/* activity_catalog.c: activity definitions */
extern const DefinitionKind ActivityKind;

extern void ActivitiesInit(void);
extern void ActivityOpen(const char *written, bool lock, Activity *activity,
						 ExtensionWrite *write);
extern void CheckProcessorShape(Oid processor);

/* activity_source.c: activities as a work source of the workers */
extern void ActivitySourceRegister(void);

#endif							/* CHOREOGRAPH_STREAMS_H */
