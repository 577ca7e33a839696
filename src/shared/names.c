/*
 * shared/names.c
 *		Names of pipelines and buffers, which belong to schemas as functions
 *		do: parsing a name as PostgreSQL parses a qualified name, finding the
 *		definition a name refers to (a qualified name in its schema, an
 *		unqualified one through search_path), choosing the schema a new
 *		definition goes into (which needs CREATE on it), and a per-backend
 *		cache of what names resolved to.
 *
 * The model is PostgreSQL's own for functions, so that claiming a name
 * needs the privilege that creating a function of that name in the same
 * place needs: a definition is created in the named schema, or in the
 * first schema of search_path, only by a role with CREATE on it; an
 * unqualified name is looked up in search_path (pg_catalog first unless it
 * is listed), never in pg_temp, which only an explicit pg_temp.name would
 * reach; and no definition is created in a temporary schema at all, since
 * it is every session's and outlives this one.
 *
 * The cache keeps, per name as written, the definition it resolved to and
 * the search path it was resolved with.  A call checks that the active
 * search path is still that one (cheap: PostgreSQL counts its changes),
 * that the role is the same or may still use a named schema, and that no
 * definition of the kind, no schema and no role changed since; otherwise
 * the name is resolved again.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "shared/shared.h"
#include "shared/pg_compat.h"

/* the kinds of definitions, in registration order */
#define MAX_DEFINITION_KINDS 8

static const DefinitionKind *kinds[MAX_DEFINITION_KINDS];
static int	nkinds = 0;

/* bumped when schemas or roles change: every resolution is checked again */
static uint64 names_generation = 1;

/*
 * Adds a kind of definition (a capability's) to those that live in
 * schemas; called from _PG_init
 */
void
DefinitionKindRegister(const DefinitionKind *kind)
{
	if (nkinds >= MAX_DEFINITION_KINDS)
		elog(ERROR, "too many kinds of choreograph definitions");
	kinds[nkinds++] = kind;
}

/* Every kind of definition, as registered */
const DefinitionKind *const *
DefinitionKinds(int *count)
{
	*count = nkinds;
	return kinds;
}

/*
 * Whether the extension's tables are there: not while DROP EXTENSION
 * choreograph drops them (event triggers fire then too)
 */
bool
ExtensionTablesExist(void)
{
	return nkinds > 0 && OidIsValid(ChoreoRelationOid(kinds[0]->table, true));
}

/* Syscache callback on schemas and roles */
static void
NamesChanged(Datum arg, int cacheid, uint32 hashvalue)
{
	names_generation++;
}

/* Registers the invalidation callbacks; called from _PG_init */
void
NamesInit(void)
{
	CacheRegisterSyscacheCallback(NAMESPACEOID, NamesChanged, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, NamesChanged, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, NamesChanged, (Datum) 0);
}

/*
 * Parses a name as written ('name', 'schema.name', '"Quoted Name"') the way
 * PostgreSQL parses qualified names (stringToQualifiedNameList): unquoted
 * identifiers are folded to lower case, quoted ones kept as they are, both
 * truncated to NAMEDATALEN - 1 bytes.
 */
void
ParseDefinitionName(const DefinitionKind *kind, const char *written, DefinitionName *out)
{
	char	   *raw = pstrdup(written);
	List	   *parts;
	ListCell   *lc;

	memset(out, 0, sizeof(DefinitionName));
	if (!SplitIdentifierString(raw, '.', &parts) || parts == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid %s name \"%s\"", kind->noun, written),
				 errdetail("A %s name is an identifier, optionally qualified by a schema name, as in schema.name.",
						   kind->noun),
				 errhint("Write other characters (spaces, dots, upper case) inside double quotes, as in '\"Order Flow\"'.")));
	foreach(lc, parts)
		out->names = lappend(out->names, makeString(pstrdup(lfirst(lc))));
	/* raises for too many dotted names and for other databases */
	DeconstructQualifiedName(out->names, &out->schema, &out->name);
	out->display = NameListToString(out->names);
}

/* Raises 42704 for a name that resolves to no definition */
void
DefinitionNotFound(const DefinitionKind *kind, const DefinitionName *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("%s \"%s\" does not exist", kind->noun, name->display)));
}

/*
 * The schemas an unqualified name is looked up in, in order: search_path as
 * functions see it (pg_catalog first unless listed, schemas without USAGE
 * left out, the temporary schema never).
 */
static Oid *
LookupPath(int *count)
{
	Oid			fixed[16];
	Oid		   *path;
	int			n = fetch_search_path_array(fixed, lengthof(fixed));

	path = palloc(sizeof(Oid) * Max(n, 1));
	if (n <= (int) lengthof(fixed))
		memcpy(path, fixed, sizeof(Oid) * n);
	else
		n = fetch_search_path_array(path, n);
	*count = n;
	return path;
}

/*
 * The schemas a parsed name may refer to, in order: the named one (which
 * must exist and be usable: 3F000, 42501, as for functions), else the
 * lookup path.
 */
Oid *
DefinitionSearchPath(const DefinitionName *name, int *count)
{
	Oid		   *path;

	if (name->schema == NULL)
		return LookupPath(count);
	path = palloc(sizeof(Oid));
	path[0] = LookupExplicitNamespace(name->schema, false);
	*count = 1;
	return path;
}

/* Fills a definition's identity */
static void
SetDefinitionId(DefinitionId *id, Oid namespace, const char *name)
{
	memset(id, 0, sizeof(DefinitionId));
	id->namespace = namespace;
	namestrcpy(&id->name, name);
}

/*
 * Raises 55000 when the database's definitions are still in the layout of
 * a version before schemas (the library was installed, the extension not
 * yet updated).
 */
static void
CheckDefinitionsUpdated(const DefinitionKind *kind)
{
	if (get_attnum(ChoreoRelationOid(kind->table, false), "namespace") == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"choreograph\" must be updated before %ss can be used",
						kind->noun),
				 errdetail("The library is a newer version than the extension in this database."),
				 errhint("Run ALTER EXTENSION choreograph UPDATE.")));
}

/*
 * Finds the definition a parsed name refers to: in the first schema of
 * DefinitionSearchPath that has one.  Returns false when there is none.
 */
bool
FindDefinition(const DefinitionKind *kind, const DefinitionName *name, DefinitionId *id)
{
	Oid		   *path;
	int			npath;
	char	   *query;
	Oid			argtypes[2] = {TEXTOID, OIDARRAYOID};
	Datum		args[2];
	Datum	   *elems;
	Oid			found = InvalidOid;
	int			best = INT_MAX;

	CheckDefinitionsUpdated(kind);
	path = DefinitionSearchPath(name, &npath);
	if (npath == 0)
		return false;

	elems = palloc(sizeof(Datum) * npath);
	for (int i = 0; i < npath; i++)
		elems[i] = ObjectIdGetDatum(path[i]);
	args[0] = CStringGetTextDatum(name->name);
	args[1] = PointerGetDatum(construct_array(elems, npath, OIDOID, sizeof(Oid), true,
											  TYPALIGN_INT));
	/* this node's copy of the table (shared/node_tables.c) */
	query = psprintf("SELECT namespace::pg_catalog.oid FROM " CHOREO_TABLE_HERE("%s")
					 " WHERE name OPERATOR(pg_catalog.=) $1"
					 "   AND namespace::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($2)",
					 kind->table);
	query = QueryForThisNode(query);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(query, 2, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look up %s \"%s\"", kind->noun, name->display);
	/* the first schema of the path that has one */
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		Oid			namespace = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[row],
															   SPI_tuptable->tupdesc,
															   1, &isnull));

		for (int i = 0; i < npath && i < best; i++)
			if (path[i] == namespace)
			{
				best = i;
				found = namespace;
			}
	}
	SPI_finish();

	if (!OidIsValid(found))
		return false;
	SetDefinitionId(id, found, name->name);
	return true;
}

/*
 * Chooses the schema a new definition of a parsed name goes into, as
 * CREATE FUNCTION does: the named one, else the first schema of
 * search_path.  The caller must have CREATE on it (42501, in PostgreSQL's
 * words); a temporary schema is refused.
 */
void
DefinitionCreationId(const DefinitionKind *kind, const DefinitionName *name, DefinitionId *id)
{
	Oid			namespace;
	char	   *objname;
	AclResult	aclresult;

	if (name->schema != NULL && strcmp(name->schema, "pg_temp") == 0)
		namespace = InvalidOid; /* refused below, without making one */
	else
		namespace = QualifiedNameGetCreationNamespace(name->names, &objname);
	if (!OidIsValid(namespace) || isAnyTempNamespace(namespace))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot create %s \"%s\" in a temporary schema",
						kind->noun, name->name),
				 errdetail("A %s is defined for every session and outlives this one; a temporary schema does not.",
						   kind->noun),
				 name->schema == NULL ?
				 errhint("The first schema of search_path is pg_temp: name another schema, as in schema.name.") : 0));

	aclresult = compat_namespace_aclcheck(namespace, GetUserId(), ACL_CREATE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_SCHEMA, get_namespace_name(namespace));
	SetDefinitionId(id, namespace, name->name);
}

/*
 * Finds the definition a name refers to, or the identity a new one would
 * have: true if it exists.
 */
bool
FindOrChooseDefinition(const DefinitionKind *kind, const DefinitionName *name,
					   DefinitionId *id)
{
	if (FindDefinition(kind, name, id))
		return true;
	DefinitionCreationId(kind, name, id);
	return false;
}

/* The cache of resolved names ------------------------------------------- */

/* A hash key: a name as written, not NUL-terminated */
typedef struct WrittenName
{
	const char *str;
	int			len;
} WrittenName;

/* (typedef'd as NameRef in choreograph.h) */
struct NameCacheEntry
{
	WrittenName key;			/* points to written */
	struct NameCache *cache;	/* the cache it belongs to */
	char	   *written;
	DefinitionId id;
	Oid			user;			/* who resolved it */
	uint64		names_generation;
	uint64		cache_generation;
	CompatSearchPath *path;	/* what it was resolved with; NULL: qualified */
};
typedef struct NameCacheEntry NameCacheEntry;

struct NameCache
{
	const DefinitionKind *kind;
	MemoryContext cxt;
	HTAB	   *hash;
	uint64		generation;		/* bumped by NameCacheReset */
};

static uint32
WrittenNameHash(const void *key, Size keysize)
{
	const WrittenName *name = key;

	return hash_bytes((const unsigned char *) name->str, name->len);
}

static int
WrittenNameMatch(const void *key1, const void *key2, Size keysize)
{
	const WrittenName *a = key1;
	const WrittenName *b = key2;

	if (a->len != b->len)
		return 1;
	return memcmp(a->str, b->str, a->len);
}

/* A cache of the names of one kind of definition, in a child of parent */
NameCache *
NameCacheCreate(const DefinitionKind *kind, MemoryContext parent)
{
	NameCache  *cache = MemoryContextAllocZero(parent, sizeof(NameCache));
	HASHCTL		ctl;

	cache->kind = kind;
	cache->cxt = AllocSetContextCreate(parent, "choreograph names", ALLOCSET_SMALL_SIZES);
	cache->generation = 1;
	ctl.keysize = sizeof(WrittenName);
	ctl.entrysize = sizeof(NameCacheEntry);
	ctl.hash = WrittenNameHash;
	ctl.match = WrittenNameMatch;
	ctl.hcxt = cache->cxt;
	cache->hash = hash_create("choreograph names", 64, &ctl,
							  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	return cache;
}

/* Every name is resolved again at its next use (definitions changed) */
void
NameCacheReset(NameCache *cache)
{
	cache->generation++;
}

/* Whether a resolution still holds for the current role and search path */
static bool
ResolutionHolds(NameCache *cache, NameCacheEntry *entry)
{
	Oid			user;

	if (entry->names_generation != names_generation ||
		entry->cache_generation != cache->generation)
		return false;
	if (entry->path != NULL)
		return compat_SearchPathMatchesCurrent(entry->path);
	/* a named schema: another role must be allowed to use it too */
	user = GetUserId();
	if (entry->user != user)
	{
		if (compat_namespace_aclcheck(entry->id.namespace, user, ACL_USAGE) != ACLCHECK_OK)
			return false;
		entry->user = user;
	}
	return true;
}

/*
 * Whether what a name resolved to still holds, for the current role and
 * search path; cheap enough for every call.  Callers that keep a NameRef
 * (entries are never removed, so it stays valid) skip the hashing of the
 * name.
 */
bool
NameRefHolds(NameRef *ref)
{
	return ResolutionHolds(ref->cache, ref);
}

/* The definition a name resolved to (valid while the resolution holds) */
const DefinitionId *
NameRefId(NameRef *ref)
{
	return &ref->id;
}

/* The name a NameRef is for, as written, and its length */
const char *
NameRefWritten(NameRef *ref, int *len)
{
	*len = ref->key.len;
	return ref->written;
}

/*
 * The definition a name (as written, len bytes) refers to, for the current
 * role and search path; raises if there is none.  The result is valid
 * until the next call.
 */
const DefinitionId *
NameCacheResolve(NameCache *cache, const char *written, int len)
{
	return NameRefId(NameCacheLookup(cache, written, len));
}

/*
 * The entry of a name (as written, len bytes), resolved for the current
 * role and search path (again if the last resolution no longer holds);
 * raises if the name refers to no definition.
 */
NameRef *
NameCacheLookup(NameCache *cache, const char *written, int len)
{
	WrittenName key = {written, len};
	NameCacheEntry *entry;
	DefinitionName name;
	DefinitionId id;
	CompatSearchPath *path = NULL;
	uint64		names_before;
	uint64		cache_before;
	bool		found;
	MemoryContext old;

	entry = hash_search(cache->hash, &key, HASH_FIND, NULL);
	if (entry != NULL && ResolutionHolds(cache, entry))
		return entry;

	/*
	 * Resolve it again.  What changes meanwhile (the lookup reads a table,
	 * and so takes invalidations) is not in the result: the generations
	 * from before it make the next call resolve the name once more.
	 */
	names_before = names_generation;
	cache_before = cache->generation;
	ParseDefinitionName(cache->kind, pnstrdup(written, len), &name);
	if (name.schema == NULL)
		path = compat_GetSearchPath(CurrentMemoryContext);
	if (!FindDefinition(cache->kind, &name, &id))
		DefinitionNotFound(cache->kind, &name);

	if (entry == NULL)
	{
		char	   *copy = MemoryContextAlloc(cache->cxt, len + 1);

		memcpy(copy, written, len);
		copy[len] = '\0';
		key.str = copy;
		entry = hash_search(cache->hash, &key, HASH_ENTER, &found);
		entry->cache = cache;
		entry->written = copy;
		entry->path = NULL;
	}
	else if (entry->path != NULL)
	{
		list_free(entry->path->schemas);
		pfree(entry->path);
	}
	old = MemoryContextSwitchTo(cache->cxt);
	entry->id = id;
	entry->path = path != NULL ? compat_CopySearchPath(path) : NULL;
	entry->user = GetUserId();
	entry->names_generation = names_before;
	entry->cache_generation = cache_before;
	MemoryContextSwitchTo(old);
	return entry;
}

/*
 * Locks a definition's row and checks that the caller may change it (it
 * has the privileges of the definition's owner).  Returns false, having
 * locked nothing, when there is no such definition.
 */
bool
LockOwnedDefinition(const DefinitionKind *kind, ExtensionWrite *write,
					const DefinitionId *id, const char *display)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2] = {ObjectIdGetDatum(id->namespace),
	CStringGetTextDatum(NameStr(id->name))};
	char	   *query;
	Oid			owner = InvalidOid;
	char	   *owner_name;

	query = psprintf("SELECT owner::pg_catalog.oid FROM %s.%s"
					 " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
					 "   AND name OPERATOR(pg_catalog.=) $2 FOR UPDATE",
					 CHOREO_SCHEMA, kind->table);
	switch (LockRowOfRole(write, query, 2, argtypes, args, &owner))
	{
		case ROW_ABSENT:
			return false;
		case ROW_CALLERS:
			return true;
		case ROW_OTHERS:
			break;
	}
	owner_name = GetUserNameFromId(owner, true);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("must be owner of %s \"%s\"", kind->noun, display),
			 owner_name != NULL ?
			 errdetail("It belongs to role \"%s\".", owner_name) :
			 errdetail("It belongs to a role that was dropped (OID %u).", owner)));
	return false;				/* keep the compiler quiet */
}

/*
 * Begins a change to the definition a name (as written) refers to: finds
 * it as the caller would, begins writing as the tables' owner
 * (BeginExtensionWrite: EndExtensionWrite ends it), locks the definition's
 * row and checks that the caller may change it.  Raises 42704 when there
 * is no such definition.
 */
void
BeginDefinitionChange(const DefinitionKind *kind, const char *written, ExtensionWrite *write,
					  DefinitionName *name, DefinitionId *id)
{
	bool		found;

	ParseDefinitionName(kind, written, name);
	found = FindDefinition(kind, name, id);
	BeginExtensionWrite(write, true);
	if (!found || !LockOwnedDefinition(kind, write, id, name->display))
		DefinitionNotFound(kind, name);
}

/* Deletes a definition's row, in a change BeginDefinitionChange began */
void
DeleteDefinition(const DefinitionKind *kind, const DefinitionId *id)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2] = {ObjectIdGetDatum(id->namespace),
	CStringGetTextDatum(NameStr(id->name))};

	ExecuteExtensionQuery(psprintf("DELETE FROM %s.%s"
								   " WHERE namespace OPERATOR(pg_catalog.=) $1::pg_catalog.regnamespace"
								   "   AND name OPERATOR(pg_catalog.=) $2",
								   CHOREO_SCHEMA, kind->table),
						  2, argtypes, args, SPI_OK_DELETE);
}
