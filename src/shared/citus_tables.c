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
 * Nothing here links against Citus: its catalog is read by name
 * (pg_catalog.pg_dist_partition, keyed by its first column, logicalrelid)
 * and a database without it costs one syscache lookup per question.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/pg_namespace.h"
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

/* Reads Citus's catalog: whether it has a row for the relation */
static bool
ReadCitusTable(Oid catalog, Oid index, Oid relid)
{
	Relation	rel = table_open(catalog, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	bool		found;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, index, OidIsValid(index), NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Whether Citus manages the relation (false wherever Citus is not installed) */
bool
RelationIsCitusTable(Oid relid)
{
	Oid			catalog = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	CitusTableEntry *entry;
	bool		found;

	if (!OidIsValid(catalog))
		return false;
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
	if (entry != NULL)
		return entry->managed;
	{
		Oid			index = get_relname_relid("pg_dist_partition_logical_relid_index",
											  PG_CATALOG_NAMESPACE);
		bool		managed = ReadCitusTable(catalog, index, relid);

		entry = hash_search(citus_tables, &relid, HASH_ENTER, &found);
		entry->managed = managed;
	}
	return entry->managed;
}
