/*
 * shared/pg_compat.h
 *		Every difference between the PostgreSQL major versions choreograph
 *		builds against (15, 17 and 18), in one place.
 *
 * Call sites use the compat_ names below; on PostgreSQL 15 each is the
 * very call the code made before this header existed, so 15's behaviour
 * and code paths are unchanged.  A block per API, newest version first
 * where the versions differ.
 */
#ifndef CHOREO_PG_COMPAT_H
#define CHOREO_PG_COMPAT_H

#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "executor/executor.h"
#include "nodes/bitmapset.h"
#include "nodes/execnodes.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "storage/lockdefs.h"
#include "utils/acl.h"
#include "utils/rel.h"

#if PG_VERSION_NUM >= 160000
#include "parser/parse_relation.h"
#endif

/*
 * A function that does not return.  18 replaced pg_attribute_noreturn(),
 * written after the declarator, by pg_noreturn, written before the
 * declaration; before 18 the attribute goes before it just as well.
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * EXECUTE on a function.  16 replaced pg_proc_aclcheck by object_aclcheck
 * on the catalog.
 */
static inline AclResult
compat_proc_aclcheck(Oid proc_oid, Oid roleid, AclMode mode)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(ProcedureRelationId, proc_oid, roleid, mode);
#else
	return pg_proc_aclcheck(proc_oid, roleid, mode);
#endif
}

/* USAGE (or CREATE) on a schema: pg_namespace_aclcheck in 15 */
static inline AclResult
compat_namespace_aclcheck(Oid nsp_oid, Oid roleid, AclMode mode)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(NamespaceRelationId, nsp_oid, roleid, mode);
#else
	return pg_namespace_aclcheck(nsp_oid, roleid, mode);
#endif
}

/*
 * A snapshot of the search_path, to tell later whether it still holds.
 * 16 renamed OverrideSearchPath (whose overriding use went away) to
 * SearchPathMatcher; the fields read here (schemas) stayed.
 */
#if PG_VERSION_NUM >= 160000
typedef SearchPathMatcher CompatSearchPath;
#define compat_GetSearchPath(context) GetSearchPathMatcher(context)
#define compat_CopySearchPath(path) CopySearchPathMatcher(path)
#define compat_SearchPathMatchesCurrent(path) SearchPathMatchesCurrentEnvironment(path)
#else
typedef OverrideSearchPath CompatSearchPath;
#define compat_GetSearchPath(context) GetOverrideSearchPath(context)
#define compat_CopySearchPath(path) CopyOverrideSearchPath(path)
#define compat_SearchPathMatchesCurrent(path) OverrideSearchPathMatchesCurrent(path)
#endif

/*
 * The range table of an INSERT into rel naming the columns in inserted_cols
 * (attribute numbers offset by FirstLowInvalidHeapAttributeNumber), as the
 * parser would make it.  16 moved the privileges an entry requires out of
 * the RangeTblEntry into an RTEPermissionInfo, returned in *perminfos
 * (NIL before 16).
 */
static inline List *
compat_insert_range_table(Relation rel, Bitmapset *inserted_cols, List **perminfos)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	*perminfos = NIL;
#if PG_VERSION_NUM >= 160000
	{
		RTEPermissionInfo *perminfo = addRTEPermissionInfo(perminfos, rte);

		perminfo->requiredPerms = ACL_INSERT;
		perminfo->insertedCols = inserted_cols;
	}
#else
	rte->requiredPerms = ACL_INSERT;
	rte->insertedCols = inserted_cols;
#endif
	return list_make1(rte);
}

/* The executor's privilege check of a range table (ExecCheckRTPerms in 15) */
static inline bool
compat_ExecCheckPermissions(List *range_table, List *perminfos, bool ereport_on_violation)
{
#if PG_VERSION_NUM >= 160000
	return ExecCheckPermissions(range_table, perminfos, ereport_on_violation);
#else
	return ExecCheckRTPerms(range_table, ereport_on_violation);
#endif
}

/*
 * Sets up the executor state's range table.  16 added the permission
 * infos; 18 the entries left after pruning (here: all of them, the one).
 */
static inline void
compat_ExecInitRangeTable(EState *estate, List *range_table, List *perminfos)
{
#if PG_VERSION_NUM >= 180000
	ExecInitRangeTable(estate, range_table, perminfos,
					   bms_add_range(NULL, 1, list_length(range_table)));
#elif PG_VERSION_NUM >= 160000
	ExecInitRangeTable(estate, range_table, perminfos);
#else
	ExecInitRangeTable(estate, range_table);
#endif
}

/*
 * Whether the result relation can take the command.  17 added the MERGE
 * actions, 18 the ON CONFLICT action; a plain INSERT has neither.
 */
static inline void
compat_CheckValidResultRel(ResultRelInfo *result, CmdType operation)
{
#if PG_VERSION_NUM >= 180000
	CheckValidResultRel(result, operation, ONCONFLICT_NONE, NIL);
#elif PG_VERSION_NUM >= 170000
	CheckValidResultRel(result, operation, NIL);
#else
	CheckValidResultRel(result, operation);
#endif
}

/*
 * Inserts a new row's index entries.  16 added onlySummarizing (true only
 * for a HOT update's summarizing indexes): false for a new row.
 */
static inline List *
compat_ExecInsertIndexTuples(ResultRelInfo *result, TupleTableSlot *slot, EState *estate,
							 bool update, bool noDupErr, bool *specConflict,
							 List *arbiterIndexes)
{
#if PG_VERSION_NUM >= 160000
	return ExecInsertIndexTuples(result, slot, estate, update, noDupErr, specConflict,
								 arbiterIndexes, false);
#else
	return ExecInsertIndexTuples(result, slot, estate, update, noDupErr, specConflict,
								 arbiterIndexes);
#endif
}

#endif							/* CHOREO_PG_COMPAT_H */
