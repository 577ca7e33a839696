/*
 * shared/entity_placement.c
 *		Which node of a Citus cluster keeps an entity's state, and refusing
 *		to keep it anywhere else.
 *
 * Streams, activity cursors and the eventbox keep their rows in tables of
 * each node's own.  Once choreo_distribute() has made
 * choreograph.entity_shards a distributed table, an entity (a stream's
 * entity, an eventbox recipient) belongs to the node holding the shard its
 * name hashes to, as a row of that table with the name as its distribution
 * column would: Citus delegates the entry points taking an entity to that
 * node, and each node's workers serve the entities it holds.  A call that
 * runs elsewhere (a statement Citus did not delegate, a job of a run on a
 * node holding another entity) would split an entity's events between
 * nodes, each numbering them apart, and hide them from the other: it is
 * refused instead.
 *
 * A shard Citus moves to another node (a rebalance) leaves its entities'
 * state behind: choreograph.entity_homes, a reference table, records the
 * node that served each shard, and an entity whose shard is here but
 * whose home is elsewhere is refused too, until choreo_rehome_entities()
 * moves the home of a shard that left nothing behind.
 *
 * The hash is the one Citus routes text with (hashtext, which for the
 * deterministic collation a database has by default hashes the bytes);
 * the shards' ranges and placements are read from Citus's catalog once
 * and again whenever the table's metadata changes (Citus invalidates the
 * table's relcache entry on every shard or placement change).  Where
 * Citus is not installed, or the table is not distributed, a call costs
 * one test of a cached flag.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "shared/shared.h"

typedef struct EntityShard
{
	int32		min_hash;
	int32		max_hash;
	bool		here;			/* a placement of it is on this node */
	char	   *node;			/* host:port of a node holding it */
	bool		home_elsewhere; /* its entities' state is on another node */
	char	   *home;			/* host:port of that node */
} EntityShard;

static MemoryContext placement_cxt = NULL;
static bool placement_known = false;
static bool placement_invalidated = false;	/* while it was being read */
static Oid	anchor_relid = InvalidOid;	/* choreograph.entity_shards */
static Oid	homes_relid = InvalidOid;	/* this node's copy of choreograph.entity_homes */
static EntityShard *shards = NULL;	/* NULL: entities are not placed */
static int	nshards = 0;

static void
PlacementChanged(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == anchor_relid || relid == homes_relid ||
		!OidIsValid(anchor_relid))
	{
		placement_known = false;
		placement_invalidated = true;
	}
}

/*
 * Reads the shards of choreograph.entity_shards, if Citus distributes it;
 * known from then on unless an invalidation arrived meanwhile (or the
 * reading failed)
 */
static void
LoadPlacement(void)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];

	if (placement_cxt == NULL)
	{
		placement_cxt = AllocSetContextCreate(CacheMemoryContext, "choreograph entity placement",
											  ALLOCSET_SMALL_SIZES);
		ListenForRelationChanges(PlacementChanged, (Datum) 0);
	}
	MemoryContextReset(placement_cxt);
	shards = NULL;
	nshards = 0;
	placement_invalidated = false;
	anchor_relid = ChoreoRelationOid("entity_shards", true);
	if (!OidIsValid(anchor_relid) || !RelationIsCitusTable(anchor_relid))
	{
		placement_known = !placement_invalidated;
		return;
	}

	args[0] = ObjectIdGetDatum(anchor_relid);
	homes_relid = ChoreoTableToRead("entity_homes");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(QueryForThisNode("SELECT s.shardminvalue::pg_catalog.int4, s.shardmaxvalue::pg_catalog.int4,"
											   "       pg_catalog.bool_or(p.groupid OPERATOR(pg_catalog.=) l.groupid),"
											   "       pg_catalog.min(n.nodename OPERATOR(pg_catalog.||) ':'"
											   "                      OPERATOR(pg_catalog.||) n.nodeport),"
											   "       pg_catalog.bool_or(h.groupid OPERATOR(pg_catalog.<>) l.groupid),"
											   "       pg_catalog.min(hn.nodename OPERATOR(pg_catalog.||) ':'"
											   "                      OPERATOR(pg_catalog.||) hn.nodeport)"
											   "  FROM pg_catalog.pg_dist_shard s"
											   "  JOIN pg_catalog.pg_dist_placement p"
											   "    ON p.shardid OPERATOR(pg_catalog.=) s.shardid"
											   "  JOIN pg_catalog.pg_dist_node n"
											   "    ON n.groupid OPERATOR(pg_catalog.=) p.groupid"
											   "  LEFT JOIN " CHOREO_TABLE_HERE("entity_homes") " h"
											   "    ON h.shardid OPERATOR(pg_catalog.=) s.shardid"
											   "  LEFT JOIN pg_catalog.pg_dist_node hn"
											   "    ON hn.groupid OPERATOR(pg_catalog.=) h.groupid"
											   "   AND hn.noderole OPERATOR(pg_catalog.=) 'primary',"
											   "       pg_catalog.pg_dist_local_group l"
											   " WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1"
											   " GROUP BY 1, 2 ORDER BY 1"),
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the shards of choreograph.entity_shards");
	if (SPI_processed > 0)
	{
		EntityShard *loaded = MemoryContextAllocZero(placement_cxt,
													 sizeof(EntityShard) * SPI_processed);

		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tuple = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull[6];
			Datum		min_hash = SPI_getbinval(tuple, desc, 1, &isnull[0]);
			Datum		max_hash = SPI_getbinval(tuple, desc, 2, &isnull[1]);
			Datum		here = SPI_getbinval(tuple, desc, 3, &isnull[2]);
			Datum		node = SPI_getbinval(tuple, desc, 4, &isnull[3]);
			Datum		home_elsewhere = SPI_getbinval(tuple, desc, 5, &isnull[4]);
			Datum		home = SPI_getbinval(tuple, desc, 6, &isnull[5]);

			if (isnull[0] || isnull[1] || isnull[2] || isnull[3])
				elog(ERROR, "unexpected null in the shards of choreograph.entity_shards");
			loaded[i].min_hash = DatumGetInt32(min_hash);
			loaded[i].max_hash = DatumGetInt32(max_hash);
			loaded[i].here = DatumGetBool(here);
			loaded[i].node = MemoryContextStrdup(placement_cxt, TextDatumGetCString(node));
			/* no home recorded (a shard made since): its entities are new */
			loaded[i].home_elsewhere = !isnull[4] && DatumGetBool(home_elsewhere);
			loaded[i].home = MemoryContextStrdup(placement_cxt,
												 isnull[5] ? "(a node no longer in the cluster)" :
												 TextDatumGetCString(home));
		}
		shards = loaded;
		nshards = (int) SPI_processed;
	}
	SPI_finish();
	placement_known = !placement_invalidated;
}

/* The shard an entity's name hashes into, or NULL if none covers it */
static EntityShard *
ShardOfEntity(const char *entity, int len)
{
	int32		hash = DatumGetInt32(hash_any((const unsigned char *) entity, len));
	int			low = 0;
	int			high = nshards - 1;

	while (low <= high)
	{
		int			mid = low + (high - low) / 2;

		if (hash < shards[mid].min_hash)
			high = mid - 1;
		else if (hash > shards[mid].max_hash)
			low = mid + 1;
		else
			return &shards[mid];
	}
	return NULL;
}

/*
 * Refuses an entity (what: "entity" or "recipient") this node does not
 * hold, once choreo_distribute() has placed entities on the nodes
 */
void
EnsureEntityIsHere(const char *what, const char *entity, int len)
{
	EntityShard *shard;

	if (!placement_known)
		LoadPlacement();
	if (shards == NULL)
		return;
	shard = ShardOfEntity(entity, len);
	if (shard == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("no shard of choreograph.entity_shards covers %s \"%.*s\"",
						what, len, entity)));
	if (!shard->here)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s \"%.*s\" is kept on node %s, not on this one", what, len, entity,
						shard->node),
				 errdetail("On a Citus cluster an entity's events, cursors and state live on the node holding its shard."),
				 errhint("Call the function on its own, so that Citus delegates it to that node, or from a transaction Citus delegated there (see docs/scaling.md).")));
	if (shard->home_elsewhere)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s \"%.*s\" was moved to this node, but its state is still on node %s",
						what, len, entity, shard->home),
				 errdetail("Citus moved the shard of choreograph.entity_shards that holds it; the events, cursors and eventbox state of its entities do not move with it."),
				 errhint("Move the shard back, or move its entities' rows and call choreo_rehome_entities() (see docs/scaling.md).")));
}
