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
 * The extension's definition tables become Citus reference tables on a
 * cluster (choreo_distribute()): one shard, a copy of it on every node,
 * written by Citus on all of them in one distributed transaction.  The
 * definitions are read from this node's copy, the shard itself, rather
 * than through Citus's planner: that costs no distributed planning, and it
 * works where Citus refuses a distributed query, inside a query Citus sent
 * to a shard (a run or a trigger pushed down to the node holding the row).
 *
 * Nothing here links against Citus: its catalog is read by name
 * (pg_catalog.pg_dist_partition and pg_dist_shard, keyed by their first
 * column, logicalrelid) and a database without it costs one syscache
 * lookup per question.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
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
} CitusTableEntry;

static HTAB *citus_tables = NULL;	/* in CacheMemoryContext */

/* A relation changed (InvalidOid: every one): what was read of it may not hold */
static void
CitusTablesInvalidate(Datum arg, Oid relid)
{
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
 * Reads one of Citus's catalogs keyed by relation (pg_dist_partition,
 * pg_dist_shard): how many rows it has for it (0, 1, or 2 for more), and
 * the value of column attnum (a bigint) of the first, when asked
 */
static int
ReadCitusCatalog(const char *catalog_name, const char *index_name, Oid relid,
				 AttrNumber attnum, int64 *value)
{
	Oid			catalog = get_relname_relid(catalog_name, PG_CATALOG_NAMESPACE);
	Oid			index = get_relname_relid(index_name, PG_CATALOG_NAMESPACE);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	int			found = 0;

	if (!OidIsValid(catalog))
		return 0;
	rel = table_open(catalog, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, index, OidIsValid(index), NULL, 1, &key);
	while (found < 2 && HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		if (found++ == 0 && value != NULL)
		{
			bool		isnull;
			Datum		datum = heap_getattr(tuple, attnum, RelationGetDescr(rel), &isnull);

			if (isnull || TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid != INT8OID)
				elog(ERROR, "unexpected layout of Citus's catalog %s", catalog_name);
			*value = DatumGetInt64(datum);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * The shard of a Citus table stored on this node, when the table has
 * exactly one (a reference table, or a table Citus keeps on one node):
 * Citus names a shard after its table and its id
 */
static Oid
ReadLocalShard(Oid relid)
{
	int64		shardid;
	char		name[NAMEDATALEN * 2];
	char	   *relname = get_rel_name(relid);

	if (relname == NULL ||
		ReadCitusCatalog("pg_dist_shard", "pg_dist_shard_logical_relid_index", relid,
						 2, &shardid) != 1)
		return InvalidOid;
	snprintf(name, sizeof(name), "%s_" INT64_FORMAT, relname, shardid);
	if (strlen(name) >= NAMEDATALEN)
		return InvalidOid;		/* Citus shortens such names; ours are short */
	return get_relname_relid(name, get_rel_namespace(relid));
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
		CacheRegisterRelcacheCallback(CitusTablesInvalidate, (Datum) 0);
	}
	entry = hash_search(citus_tables, &relid, HASH_FIND, NULL);
	if (entry == NULL)
	{
		bool		managed = ReadCitusCatalog("pg_dist_partition",
											   "pg_dist_partition_logical_relid_index",
											   relid, 0, NULL) > 0;
		Oid			local_shard = managed ? ReadLocalShard(relid) : InvalidOid;

		entry = hash_search(citus_tables, &relid, HASH_ENTER, &found);
		entry->managed = managed;
		entry->local_shard = local_shard;
	}
	return entry;
}

/* Whether Citus manages the relation (false wherever Citus is not installed) */
bool
RelationIsCitusTable(Oid relid)
{
	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return false;
	return CitusTableLookup(relid)->managed;
}

/*
 * The relation to read one of the extension's tables from on this node:
 * the table, or its copy here when it is a Citus reference table
 */
Oid
ChoreoTableToRead(const char *relname)
{
	Oid			relid = ChoreoRelationOid(relname, false);
	CitusTableEntry *entry;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return relid;
	entry = CitusTableLookup(relid);
	return OidIsValid(entry->local_shard) ? entry->local_shard : relid;
}

/* The same, as a qualified name for a query */
char *
ChoreoTableToReadName(const char *relname)
{
	Oid			relid = ChoreoTableToRead(relname);

	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}
