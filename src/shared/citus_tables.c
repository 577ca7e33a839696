/*
 * shared/citus_tables.c
 *		Whether a relation is a table Citus manages (distributed, reference
 *		or a local table it tracks), read from Citus's catalog when Citus is
 *		installed, and cached per backend until the relation changes.
 *
 * Such a table's rows live in shards, on the nodes of the cluster, and
 * only Citus's planner and executor put them there; on the coordinator
 * the relation itself is an empty shell.  A write that bypasses the
 * executor (shared/direct_insert.c writes a heap directly) would leave the
 * rows in that shell, where no query ever sees them: those writes must
 * ask here first and go through a planned statement instead.
 *
 * A reference table has one shard, a copy of it on every node: which
 * relation that copy is here is read too (node_tables.c reads the
 * extension's definitions from it).
 *
 * Citus runs a query for a row on the node holding it, rewritten for the
 * shard: a trigger then fires on the shard, and a whole-row reference has
 * the shard's row type.  Which table a shard belongs to is read here too,
 * so that such rows can be handed on as the table's (shard_rows.c).
 *
 * Nothing here links against Citus: its catalog is read by name
 * (pg_catalog.pg_dist_partition and pg_dist_shard, through their indexes
 * on logicalrelid and shardid) and a database without it costs one syscache
 * lookup per question.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "shared/shared.h"

typedef struct CitusTableEntry
{
	Oid			relid;			/* hash key */
	bool		managed;
	Oid			local_shard;	/* a reference table's copy on this node, if any */
	Oid			shard_of;		/* for a shard: its Citus table */
} CitusTableEntry;

static HTAB *citus_tables = NULL;	/* in CacheMemoryContext */
static uint64 citus_tables_invalidations = 0;	/* to notice one while reading */

/* A relation changed (InvalidOid: every one): what was read of it may not hold */
static void
CitusTablesInvalidate(Datum arg, Oid relid)
{
	citus_tables_invalidations++;
	if (citus_tables == NULL)
		return;
	if (OidIsValid(relid))
		(void) hash_search(citus_tables, &relid, HASH_REMOVE, NULL);
	else
	{
		HASH_SEQ_STATUS status;
		CitusTableEntry *entry;

		hash_seq_init(&status, citus_tables);
		while ((entry = hash_seq_search(&status)) != NULL)
			(void) hash_search(citus_tables, &entry->relid, HASH_REMOVE, NULL);
	}
}

/*
 * Reads one of Citus's catalogs through the index on its column keyattr
 * (an oid or bigint column, compared with eqproc): how many rows have key
 * there (0, 1, or 2 for more), and in *value the column attnum of the
 * first, when asked, which must be of type valuetype
 */
static int
ReadCitusCatalog(const char *catalog_name, const char *index_name,
				 AttrNumber keyattr, RegProcedure eqproc, Datum key,
				 AttrNumber attnum, Oid valuetype, Datum *value)
{
	Oid			catalog = get_relname_relid(catalog_name, PG_CATALOG_NAMESPACE);
	Oid			index = get_relname_relid(index_name, PG_CATALOG_NAMESPACE);
	Relation	rel;
	ScanKeyData scankey;
	SysScanDesc scan;
	HeapTuple	tuple;
	int			found = 0;

	if (!OidIsValid(catalog))
		return 0;
	rel = table_open(catalog, AccessShareLock);
	ScanKeyInit(&scankey, keyattr, BTEqualStrategyNumber, eqproc, key);
	scan = systable_beginscan(rel, index, OidIsValid(index), NULL, 1, &scankey);
	while (found < 2 && HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		if (found++ == 0 && value != NULL)
		{
			TupleDesc	desc = RelationGetDescr(rel);
			bool		isnull;

			if (attnum > desc->natts ||
				TupleDescAttr(desc, attnum - 1)->atttypid != valuetype)
				elog(ERROR, "unexpected layout of Citus's catalog %s", catalog_name);
			*value = heap_getattr(tuple, attnum, desc, &isnull);
			if (isnull)
				elog(ERROR, "unexpected null in Citus's catalog %s", catalog_name);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* pg_dist_partition and pg_dist_shard: logicalrelid, then (the latter) shardid */
#define Anum_citus_logicalrelid 1
#define Anum_citus_shardid 2

/*
 * The name Citus gives a table's shard (AppendShardIdToName in Citus): the
 * table's name, an underscore and the shard id; a name too long for that
 * is cut (at a character boundary) and followed by its hash
 */
static void
CitusShardName(const char *relname, int64 shardid, char *name)
{
	char		suffix[32];
	int			len = strlen(relname);

	snprintf(suffix, sizeof(suffix), "_" INT64_FORMAT, shardid);
	if (len < NAMEDATALEN - (int) strlen(suffix))
		snprintf(name, NAMEDATALEN, "%s%s", relname, suffix);
	else
	{
		uint32		hash = DatumGetUInt32(hash_any((const unsigned char *) relname, len));
		int			clip = pg_mbcliplen(relname, len, NAMEDATALEN - strlen(suffix) - 10);

		snprintf(name, NAMEDATALEN, "%.*s_%.8x%s", clip, relname, hash, suffix);
	}
}

/*
 * The shard of a Citus table stored on this node, when the table has
 * exactly one (a reference table, or a table Citus keeps on one node):
 * Citus names a shard after its table and its id
 */
static Oid
ReadLocalShard(Oid relid)
{
	Datum		shardid;
	char		name[NAMEDATALEN];
	char	   *relname = get_rel_name(relid);

	if (relname == NULL ||
		ReadCitusCatalog("pg_dist_shard", "pg_dist_shard_logical_relid_index",
						 Anum_citus_logicalrelid, F_OIDEQ, ObjectIdGetDatum(relid),
						 Anum_citus_shardid, INT8OID, &shardid) != 1)
		return InvalidOid;
	CitusShardName(relname, DatumGetInt64(shardid), name);
	return get_relname_relid(name, get_rel_namespace(relid));
}

/*
 * The Citus table the relation is a shard of, if it is one: a shard's name
 * ends in an underscore and its shard id, the shard id's row in
 * pg_dist_shard names the table, and the table's shard of that id has
 * exactly this name, in the same schema
 */
static Oid
ReadShardOwner(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *suffix;
	char	   *end;
	int64		shardid;
	Datum		owner;
	char	   *owner_name;
	char		expected[NAMEDATALEN];

	if (relname == NULL || (suffix = strrchr(relname, '_')) == NULL ||
		!isdigit((unsigned char) suffix[1]))
		return InvalidOid;
	errno = 0;
	shardid = strtoi64(suffix + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return InvalidOid;
	if (ReadCitusCatalog("pg_dist_shard", "pg_dist_shard_shardid_index",
						 Anum_citus_shardid, F_INT8EQ, Int64GetDatum(shardid),
						 Anum_citus_logicalrelid, REGCLASSOID, &owner) != 1)
		return InvalidOid;
	/* not a table of the user's that merely looks like a shard */
	owner_name = get_rel_name(DatumGetObjectId(owner));
	if (owner_name == NULL)
		return InvalidOid;
	CitusShardName(owner_name, shardid, expected);
	if (strcmp(expected, relname) != 0 ||
		get_rel_namespace(DatumGetObjectId(owner)) != get_rel_namespace(relid))
		return InvalidOid;
	return DatumGetObjectId(owner);
}

/* What is known of the relation, read on first use */
static CitusTableEntry *
CitusTableLookup(Oid relid)
{
	CitusTableEntry *entry;
	bool		found;

	if (citus_tables == NULL)
	{
		HASHCTL		ctl;

		if (CacheMemoryContext == NULL)
			CreateCacheMemoryContext();
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CitusTableEntry);
		ctl.hcxt = CacheMemoryContext;
		citus_tables = hash_create("choreograph Citus tables", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		ListenForRelationChanges(CitusTablesInvalidate, (Datum) 0);
	}
	entry = hash_search(citus_tables, &relid, HASH_FIND, NULL);
	if (entry == NULL)
	{
		bool		managed;
		Oid			local_shard;
		Oid			shard_of;
		uint64		invalidations;

		/*
		 * Reading takes locks, which take in invalidations: one that came
		 * meanwhile found no entry to drop, so what was read may be stale
		 * already; read again then
		 */
		do
		{
			invalidations = citus_tables_invalidations;
			managed = ReadCitusCatalog("pg_dist_partition",
									   "pg_dist_partition_logical_relid_index",
									   Anum_citus_logicalrelid, F_OIDEQ,
									   ObjectIdGetDatum(relid), 0, InvalidOid, NULL) > 0;
			local_shard = managed ? ReadLocalShard(relid) : InvalidOid;
			shard_of = managed ? InvalidOid : ReadShardOwner(relid);
		} while (invalidations != citus_tables_invalidations);

		entry = hash_search(citus_tables, &relid, HASH_ENTER, &found);
		entry->managed = managed;
		entry->local_shard = local_shard;
		entry->shard_of = shard_of;
	}
	return entry;
}

/* Whether this database has Citus's catalog: one syscache lookup */
bool
CitusIsInstalled(void)
{
	return OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE));
}

/* Whether Citus manages the relation (false wherever Citus is not installed) */
bool
RelationIsCitusTable(Oid relid)
{
	if (!CitusIsInstalled())
		return false;
	return CitusTableLookup(relid)->managed;
}

/*
 * The Citus table the relation is a shard of, or InvalidOid: the relation
 * a trigger or a whole-row reference sees when Citus runs a query on a
 * shard, where users mean the table
 */
Oid
CitusShardOwner(Oid relid)
{
	if (!CitusIsInstalled())
		return InvalidOid;
	return CitusTableLookup(relid)->shard_of;
}

/*
 * Whether Citus refuses distributed queries in this session: a session a
 * Citus node opened to run queries on this node's shards (Citus names such
 * sessions by their application_name), unless the user allowed nested
 * execution (citus.allow_nested_distributed_execution).  Citus makes
 * exceptions while a trigger or a delegated call runs (for colocated
 * shards of the same node), but none at commit, where buffers write.
 */
bool
CitusRefusesDistributedQueries(void)
{
	const char *application = GetConfigOption("application_name", true, false);
	const char *nested = GetConfigOption("citus.allow_nested_distributed_execution", true, false);

	if (!CitusIsInstalled() || application == NULL ||
		strncmp(application, "citus_internal gpid=", strlen("citus_internal gpid=")) != 0)
		return false;
	return nested == NULL || strcmp(nested, "on") != 0;
}

/*
 * A reference table's copy on this node (its one shard), or InvalidOid:
 * for a table that is no Citus table, or has no copy here
 */
Oid
CitusLocalShard(Oid relid)
{
	if (!CitusIsInstalled())
		return InvalidOid;
	return CitusTableLookup(relid)->local_shard;
}
