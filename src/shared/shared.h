/*
 * shared/shared.h
 *		What every capability of choreograph builds on: its SQLSTATEs and
 *		settings, names of definitions, writing the extension's tables,
 *		jsonb reading and writing, row triggers, the transaction callbacks
 *		each capability registers into, and writing rows without planning.
 *
 * The capabilities (pipelines/, hooks/, buffers/, workers/) each have a
 * folder and a header of their own and include this one; nothing here
 * knows any of them.
 */
#ifndef CHOREOGRAPH_SHARED_H
#define CHOREOGRAPH_SHARED_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/elog.h"
#include "utils/inval.h"
#include "utils/jsonb.h"

#include "shared/pg_compat.h"

struct TriggerData;

/* The extension's own SQLSTATEs (class CH) */
#define ERRCODE_CHOREO_CANCELED		MAKE_SQLSTATE('C','H','0','0','1')
#define ERRCODE_CHOREO_SKIP			MAKE_SQLSTATE('C','H','0','0','2')
#define ERRCODE_CHOREO_CONTENTION	MAKE_SQLSTATE('C','H','0','0','3')

/* Schema holding the extension's internal tables */
#define CHOREO_SCHEMA "choreograph"

/*
 * One of the extension's tables in a query that only reads it, to be read
 * from this node's own copy (on a Citus cluster, a reference table's
 * shard; shared/node_tables.c says why): QueryForThisNode() puts the
 * name in.  The marker is a control character no query has otherwise.
 */
#define CHOREO_TABLE_HERE(name) "\001" name "\001"

/* Settings (settings.c) */
extern void SettingsDefine(void);

/* the most workers choreograph.max_workers allows */
#define MAX_CHOREO_WORKERS 64

extern int	choreo_max_depth;
extern char *choreo_database;
extern int	choreo_max_workers;
extern int	choreo_hook_max_attempts;
extern int	choreo_error_max_length;
extern bool choreo_hook_synchronous_commit;
extern bool choreo_preloaded;	/* loaded through shared_preload_libraries */
/*
 * advisory_lock.c: locks of things that are not rows, one class each
 * (their values are part of the on-disk contract of nothing, but a
 * running server's: never reuse one for something else)
 */
typedef enum ChoreoLockClass
{
	CHOREO_LOCK_ENTITY = 0x4348,	/* a stream's entity: numbering its events */
	CHOREO_LOCK_CONCURRENCY = 0x4349,	/* an activity's concurrency slot */
	CHOREO_LOCK_GROUP = 0x434A, /* a serialize group's entity */
	CHOREO_LOCK_STREAM = 0x434B,	/* a stream: flushes against new activities */
	CHOREO_LOCK_RUN = 0x434C,	/* an activity's run of an entity */
	CHOREO_LOCK_RECIPIENT = 0x434D	/* an eventbox recipient being processed */
} ChoreoLockClass;

extern bool ChoreoLockAcquire(ChoreoLockClass lock_class, uint64 key, int mode, bool wait);
extern uint64 ChoreoLockKey(const char *first, const char *second, int len);

/* extension_write.c: arguments, and writing the extension's tables */
extern Oid	ChoreoRelationOid(const char *relname, bool missing_ok);
extern char *NameArgument(FunctionCallInfo fcinfo, int argno, const char *what);
extern void PreventInSecurityRestrictedOperation(const char *action);

/*
 * names.c: names of definitions (pipelines, buffers), which belong to
 * schemas.  Each capability registers its kind of definition.
 */
typedef struct DefinitionKind
{
	const char *noun;			/* "pipeline", "buffer": for messages */
	const char *table;			/* its table in CHOREO_SCHEMA */
} DefinitionKind;

extern void DefinitionKindRegister(const DefinitionKind *kind);
extern const DefinitionKind *const *DefinitionKinds(int *count);
extern bool ExtensionTablesExist(void);

/* A definition's identity: its schema and its name in it (a hash key) */
typedef struct DefinitionId
{
	Oid			namespace;
	NameData	name;
} DefinitionId;

/* A name as written, parsed */
typedef struct DefinitionName
{
	List	   *names;			/* of String, as stringToQualifiedNameList */
	char	   *schema;			/* NULL when unqualified */
	char	   *name;
	char	   *display;		/* schema.name or name, for messages */
} DefinitionName;

typedef struct NameCache NameCache;
typedef struct NameCacheEntry NameRef;	/* a name as written, and what it resolved to */

extern void NamesInit(void);
extern void ParseDefinitionName(const DefinitionKind *kind, const char *written,
								DefinitionName *out);
extern Oid *DefinitionSearchPath(const DefinitionName *name, int *count);
extern bool FindDefinition(const DefinitionKind *kind, const DefinitionName *name,
						   DefinitionId *id);
extern void DefinitionCreationId(const DefinitionKind *kind, const DefinitionName *name,
								 DefinitionId *id);
extern bool FindOrChooseDefinition(const DefinitionKind *kind, const DefinitionName *name,
								   DefinitionId *id);
pg_noreturn extern void DefinitionNotFound(const DefinitionKind *kind,
										   const DefinitionName *name);
extern NameCache *NameCacheCreate(const DefinitionKind *kind, MemoryContext parent);
extern void NameCacheReset(NameCache *cache);
extern const DefinitionId *NameCacheResolve(NameCache *cache, const char *written, int len);
extern NameRef *NameCacheLookup(NameCache *cache, const char *written, int len);
extern bool NameRefHolds(NameRef *ref);
extern const DefinitionId *NameRefId(NameRef *ref);
extern const char *NameRefWritten(NameRef *ref, int *len);

/*
 * definition_cache.c: per-backend caches of definitions, invalidated when
 * their tables change.  load reads a definition into cxt, a memory context
 * made for it, or returns NULL when there is none; forget (NULL: delete
 * cxt) is told when it leaves the cache, and must delete cxt, now or once
 * the definition is no longer in use.
 */
typedef struct DefinitionCacheMethods
{
	const DefinitionKind *kind;
	const char *const *tables;	/* its tables in CHOREO_SCHEMA, NULL-terminated */
	void	   *(*load) (const DefinitionId *id, MemoryContext cxt);
	void		(*forget) (void *definition, MemoryContext cxt);
} DefinitionCacheMethods;

typedef struct DefinitionCache DefinitionCache;

extern DefinitionCache *DefinitionCacheCreate(const DefinitionCacheMethods *methods);
extern void *DefinitionCacheLookup(DefinitionCache *cache, const DefinitionId *id);
extern void DefinitionCacheInvalidate(DefinitionCache *cache);
extern void DefinitionCacheForgetIf(DefinitionCache *cache,
									bool (*uses) (void *definition, void *arg), void *arg);
extern uint64 DefinitionCacheGeneration(DefinitionCache *cache);
extern NameCache *DefinitionCacheNames(DefinitionCache *cache);

/* What BeginExtensionWrite changed, for EndExtensionWrite to undo */
typedef struct ExtensionWrite
{
	Oid			caller;			/* the role on whose behalf we write */
	Oid			saved_userid;
	int			saved_sec_context;
	int			saved_nestlevel;
} ExtensionWrite;

extern void BeginExtensionWrite(ExtensionWrite *write, bool pin_search_path);
extern void EndExtensionWrite(ExtensionWrite *write);
extern struct _SPI_plan *PrepareKeptPlan(const char *query, int nargs, Oid *argtypes);
extern uint64 ExecuteExtensionQuery(const char *query, int nargs, Oid *argtypes,
									Datum *args, int expected);
extern void InsertExtensionRows(const char *table, AttrNumber *attnums, Oid *types,
								int ncolumns, int nrows, Datum **values, bool **nulls);
typedef enum RowOwnership
{
	ROW_ABSENT,					/* no such row */
	ROW_CALLERS,				/* locked, and the caller may change it */
	ROW_OTHERS					/* locked, but it is another role's */
} RowOwnership;

extern RowOwnership LockRowOfRole(ExtensionWrite *write, const char *query, int nargs,
								  Oid *argtypes, Datum *args, Oid *role);
extern bool LockOwnedDefinition(const DefinitionKind *kind, ExtensionWrite *write,
								const DefinitionId *id, const char *display);
extern void BeginDefinitionChange(const DefinitionKind *kind, const char *written,
								  ExtensionWrite *write, DefinitionName *name,
								  DefinitionId *id);
extern void DeleteDefinition(const DefinitionKind *kind, const DefinitionId *id);
extern struct HTAB *StringPointerHashCreate(const char *name, long nelem, Size entrysize,
											MemoryContext cxt);

/* jsonb_util.c */
extern Jsonb *DatumToJsonb(Datum value, bool isnull, Oid type);
extern void DatumToJsonbValue(Datum value, bool isnull, Oid type,
							  JsonbValue *out, MemoryContext cxt);
extern void JsonbToValue(Jsonb *jsonb, JsonbValue *out);
extern int	JsonbKeyCompare(const char *a, const char *b);
extern bool JsonbIsNullScalar(Jsonb *jsonb);

/* jsonb_writer.c: writing jsonb documents in one pass */
#define JSONB_WRITER_MAX_DEPTH 8

typedef struct JsonbWriterLevel
{
	int			base;			/* where the container starts (before padding) */
	int			jentries;		/* where its JEntry array starts */
	int			count;			/* JEntries (an object has two per pair) */
	int			index;			/* the next one to fill */
	uint32		totallen;		/* length of the children written so far */
} JsonbWriterLevel;

typedef struct JsonbWriter
{
	StringInfoData buf;			/* the document, varlena header first */
	int			depth;
	JsonbWriterLevel levels[JSONB_WRITER_MAX_DEPTH];
} JsonbWriter;

extern void JsonbWriterInit(JsonbWriter *writer);
extern void JsonbWriterBeginObject(JsonbWriter *writer, int npairs);
extern void JsonbWriterBeginArray(JsonbWriter *writer, int nelems);
extern void JsonbWriterEnd(JsonbWriter *writer);
extern void JsonbWriterString(JsonbWriter *writer, const char *str, int len);
extern void JsonbWriterCString(JsonbWriter *writer, const char *str);
extern void JsonbWriterNull(JsonbWriter *writer);
extern void JsonbWriterValue(JsonbWriter *writer, JsonbValue *value);
extern Jsonb *JsonbWriterFinish(JsonbWriter *writer);

/* json_to_column.c: JSON values to column types, as jsonb_populate_record */
typedef enum JsonConversion
{
	CONVERT_TEXT,				/* a string into text */
	CONVERT_NUMERIC,			/* a number into an unconstrained numeric */
	CONVERT_BOOL,				/* a boolean into boolean */
	CONVERT_JSONB,				/* anything into jsonb */
	CONVERT_INPUT,				/* through the type's input function */
	CONVERT_POPULATE			/* arrays, composites: through jsonb_to_record */
} JsonConversion;

typedef struct JsonColumnConverter
{
	Oid			type;
	int32		typmod;
	Oid			base_type;		/* the type, or a domain's base type */
	bool		is_domain;
	JsonConversion how;
	MemoryContext cxt;			/* for what is looked up on first use */
	bool		input_ready;
	FmgrInfo	input;
	Oid			ioparam;
	TupleDesc	record_desc;	/* (v type), for jsonb_to_record */
	FmgrInfo	to_record;
	uint64		to_record_generation;	/* catalog changes it has seen */
} JsonColumnConverter;

extern void JsonColumnConverterInit(JsonColumnConverter *converter, Oid type, int32 typmod);
extern bool JsonColumnConversionMayFail(JsonColumnConverter *converter, JsonbValue *value);
extern Datum JsonColumnConvert(JsonColumnConverter *converter, JsonbValue *value,
							   bool *isnull);

/* How rows of one tuple descriptor are rendered as jsonb objects */
typedef struct RowJsonbLayout
{
	TupleDesc	desc;
	int			nattrs;			/* live attributes */
	int		   *order;			/* their indexes, in jsonb key order */
} RowJsonbLayout;

extern RowJsonbLayout *RowJsonbLayoutFor(TupleDesc desc, MemoryContext cxt);
extern void JsonbWriterRow(JsonbWriter *writer, RowJsonbLayout *layout, HeapTuple tuple);

/* trigger_row.c: what the C row triggers share */
extern Datum TriggerRowDatum(struct TriggerData *trigdata);
extern Jsonb *TriggerEnvelope(struct TriggerData *trigdata, FmgrInfo *flinfo);
extern struct TriggerData *RowTriggerData(FunctionCallInfo fcinfo, const char *function,
										  int min_args, int max_args,
										  const char *purpose, const char *arguments,
										  const char *example);
extern Datum RowTriggerUnchanged(struct TriggerData *trigdata);


/*
 * transaction.c: the transaction callbacks all features hang off.  Each
 * capability registers what it does at each point of a transaction; any
 * member may be NULL.  The pre-commit rounds run each participant's
 * run_pre_commit in registration order until none is pending; at_commit,
 * at_end (after COMMIT, ABORT or PREPARE) and the subtransaction members
 * must not raise.
 */
typedef struct TransactionParticipant
{
	bool		(*pending) (void);
	void		(*run_pre_commit) (void);
	void		(*at_commit) (void);
	void		(*at_end) (void);
	void		(*at_sub_abort) (int nest_level);
	void		(*at_sub_commit) (int nest_level);
	void		(*after_commit_prepared) (void);
} TransactionParticipant;

extern void TransactionCallbacksInit(void);
extern void TransactionRegisterParticipant(const TransactionParticipant *participant);

/* relation_changes.c: one relcache callback, for every cache of the extension */
extern void ListenForRelationChanges(RelcacheCallbackFunction function, Datum arg);

/* citus_tables.c: tables whose rows Citus keeps in shards */
extern bool CitusIsInstalled(void);
extern bool RelationIsCitusTable(Oid relid);
extern Oid	CitusShardOwner(Oid relid);
extern bool CitusRefusesDistributedQueries(void);
extern Oid	CitusLocalShard(Oid relid);

/* node_tables.c: the extension's tables as this node reads them */
extern Oid	ChoreoTableToRead(const char *relname);
extern char *QueryForThisNode(const char *query);
extern SPIPlanPtr KeptPlanForThisNode(const char *query, int nargs, Oid *argtypes,
									  SPIPlanPtr *plan, char **prepared);

/* entity_placement.c: the node of a Citus cluster that keeps an entity */
extern void EnsureEntityIsHere(const char *what, const char *entity, int len);

/* shard_rows.c: rows of a Citus shard seen as rows of its table */
extern Oid	ShardRowTableType(Oid rowtype);
extern Datum ShardRowAsTableRow(Oid rowtype, Datum row);

/* direct_insert.c: writing rows without planning an INSERT */
typedef struct DirectInsertColumns
{
	int			ncolumns;
	AttrNumber *attnums;		/* the columns each row gives values for */
	Oid		   *types;			/* their types and typmods, as last read */
	int32	   *typmods;
} DirectInsertColumns;

extern bool DirectInsertRows(Oid relid, const DirectInsertColumns *columns, int nrows,
							 Datum *const *values, bool *const *nulls);

/* function_shape.c: a function given as a step's or a hook's */
typedef struct FunctionShape
{
	const char *serves_as;		/* "The job of step ...", for details */
	Oid			only_argument_type; /* InvalidOid: any real type */
	const char *argument;		/* what its argument is: "the payload" */
} FunctionShape;

extern void CheckFunctionShape(Oid function, const FunctionShape *shape);

/* subtransaction.c: work whose failure rolls back only its own writes */
extern ErrorData *CallInSubTransaction(void (*work) (void *arg), void *arg,
									   MemoryContext error_cxt);

/*
 * savepoint_list.c: lists whose entries belong to the savepoint that made
 * them.  An entry's first member is its SavepointTag.
 */
typedef struct SavepointTag
{
	int			nest_level;		/* the subtransaction level that made it */
} SavepointTag;

extern void SavepointTagSet(SavepointTag *tag);
extern List *SavepointListAtSubAbort(List *list, int nest_level, int keep,
									 void (*forget) (void *entry, void *arg), void *arg);
extern void SavepointListAtSubCommit(List *list, int nest_level);
extern void SavepointLevelAtSubCommit(int *level, int nest_level);

/*
 * row_guard.c: rows written into the extension's tables without its
 * functions (pg_restore, a role's own INSERT).  Each capability registers
 * the check of its tables' rows, which returns the row to write (maybe
 * changed) or NULL to skip it, counting why with RowGuardSkip*.
 */
typedef HeapTuple (*RowGuardCheck) (Oid user, struct TriggerData *trigdata);

extern void RowGuardRegister(const char *table, RowGuardCheck check);
extern bool RowGuardValue(struct TriggerData *trigdata, const char *column, Datum *value);
extern bool RowGuardMayWriteFor(Oid user, struct TriggerData *trigdata, const char *column);
extern bool RowGuardMayCreateIn(Oid user, struct TriggerData *trigdata);
extern void RowGuardSkipForRole(Oid role);
extern void RowGuardSkipOrphan(void);

/*
 * session_reset.c: what capabilities keep per session that a fresh
 * session would not have; the workers reset it between items of work.
 */
extern void SessionResetRegister(void (*reset) (void));
extern void SessionResetAll(void);

#endif							/* CHOREOGRAPH_SHARED_H */
