# choreograph: transactional orchestration inside PostgreSQL (PGXS build)

EXTENSION = choreograph
MODULE_big = choreograph
OBJS = \
	src/choreograph.o \
	src/shared/advisory_lock.o \
	src/shared/citus_tables.o \
	src/shared/definition_cache.o \
	src/shared/direct_insert.o \
	src/shared/entity_placement.o \
	src/shared/extension_write.o \
	src/shared/function_shape.o \
	src/shared/json_to_column.o \
	src/shared/jsonb_util.o \
	src/shared/jsonb_writer.o \
	src/shared/names.o \
	src/shared/row_guard.o \
	src/shared/savepoint_list.o \
	src/shared/schema_drop.o \
	src/shared/session_reset.o \
	src/shared/node_tables.o \
	src/shared/relation_changes.o \
	src/shared/settings.o \
	src/shared/shard_rows.o \
	src/shared/subtransaction.o \
	src/shared/transaction.o \
	src/shared/trigger_row.o \
	src/pipelines/catalog.o \
	src/pipelines/catalog_rows.o \
	src/pipelines/pipeline_cache.o \
	src/pipelines/run.o \
	src/pipelines/run_state.o \
	src/pipelines/trigger.o \
	src/hooks/hook_call.o \
	src/hooks/hook_keys.o \
	src/hooks/hook_rows.o \
	src/hooks/post_commit.o \
	src/hooks/post_commit_source.o \
	src/hooks/pre_commit.o \
	src/buffers/buffer.o \
	src/buffers/buffer_catalog.o \
	src/buffers/buffer_draft.o \
	src/buffers/buffer_pending.o \
	src/buffers/table_sink.o \
	src/buffers/capture.o \
	src/streams/stream_sink.o \
	src/streams/stream.o \
	src/streams/activity_announce.o \
	src/streams/activity_catalog.o \
	src/streams/activity_run.o \
	src/streams/activity_cursor.o \
	src/streams/activity_source.o \
	src/eventbox/inbox_sink.o \
	src/eventbox/inbox.o \
	src/eventbox/batch_result.o \
	src/eventbox/process_batch.o \
	src/workers/shmem.o \
	src/workers/work_source.o \
	src/workers/worker.o \
	src/workers/worker_session.o \
	src/workers/worker_transaction.o

DATA = sql/choreograph--0.1.sql sql/choreograph--0.1--0.2.sql sql/choreograph--0.2--0.3.sql sql/choreograph--0.3--0.4.sql sql/choreograph--0.4--0.5.sql sql/choreograph--0.5--0.6.sql sql/choreograph--0.6--0.7.sql
PGFILEDESC = "choreograph - transactional orchestration"

# pg_regress files, one per feature, in the order they run
REGRESS = init definition run bag input trigger errors privileges namespaces dump pre_commit buffer buffer_write buffer_types capture security_restricted leaks post_commit streams activities eventbox upgrade
REGRESS_OPTS = --inputdir=.

# Multi-session behaviour, checked by PostgreSQL's isolation tester
ISOLATION = cache planted_step streams activity_runs stream_commit_order stream_prepared \
	stream_snapshot activity_contention activity_contention_stored eventbox eventbox_garbage
ISOLATION_OPTS = --inputdir=test/isolation

PG_CPPFLAGS = -I$(srcdir)/src
# -Wextra's unused-parameter warnings fire in PostgreSQL's own headers (and
# on every PG_FUNCTION_ARGS), so that one is off, as in pgvector's CI
PG_CFLAGS += -Wall -Wextra -Wno-unused-parameter

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

# The two commands of the README work on a fresh machine, before the
# server headers (and so PGXS) are installed: they install what is missing.
.DEFAULT_GOAL := all
.PHONY: demo test bench fuzz print-regress print-isolation
bench:
	bash bench/run
# random transactions against a model, and sqlsmith (FUZZ_SEED, FUZZ_TRANSACTIONS, FUZZ_QUERIES)
fuzz:
	bash test/fuzz/run
demo:
	bash test/demo
# make test PG=17: the tests against another major version, in a Debian
# root made for it (test/in_root; as root; ROOT=DIR reuses one)
test:
ifdef PG
	bash test/in_root $(PG)
else
	bash test/run
endif
# test/run calls pg_regress and pg_isolation_regress itself (their output
# goes to a temporary directory), with these lists
print-regress:
	@echo $(REGRESS)
print-isolation:
	@echo $(ISOLATION)

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
# every object depends on the headers: they hold the shared structs
$(OBJS): $(wildcard $(srcdir)/src/*/*.h)
else
all install installcheck:
	@echo "PostgreSQL's PGXS was not found; run 'make demo' or 'make test' to install it, or set PG_CONFIG" >&2
	@exit 1
endif
