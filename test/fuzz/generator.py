"""The generator: random transactions, reproducible from a seed.

Transaction t of seed s is drawn from random.Random("s:t") and from the
model's state (which keys src holds, which savepoints are open), which the
earlier transactions of the same seed determine: the same seed always gives
the same transactions.  Each statement is handed to the model as it is
drawn, and comes out with what it must do.
"""

import random

from model import (BUFFERS, Begin, Block, Commit, Delete, Fail, FinishPrepared, Fire,
                   FireWait, Flush, Insert, Post, Pre, Prepare, Release, Rollback, Dyn,
                   RollbackTo, Run, Savepoint, SetRole, Update)

KEYS = 24                       # src keys are 1..KEYS
PRE_KEYS = ("k1", "k2", "k3")
POST_KEYS = ("p1", "p2", "p3")


class Statement:
    def __init__(self, session, op, expect):
        self.session, self.op, self.expect = session, op, expect

    def sql(self):
        return self.op.sql()


class Generator:
    def __init__(self, seed, model, post_enabled, role=None):
        self.seed, self.model, self.post, self.role = seed, model, post_enabled, role
        self.pending = None     # a transaction left prepared, finished by the next one
        self.no_src = False

    def pick(self, weights):
        items = [(k, w) for k, w in weights.items() if w > 0]
        total = sum(w for _, w in items)
        x = self.rng.random() * total
        for k, w in items:
            x -= w
            if x < 0:
                return k
        return items[-1][0]

    def key(self, keys, used, p):
        """None, or (with probability p) a key: often one used before in
        this transaction."""
        r = self.rng
        if r.random() >= p:
            return None
        k = r.choice(used) if used and r.random() < 0.6 else r.choice(keys)
        used.append(k)
        return k

    def next_op(self):
        self.op_number += 1
        return self.op_number

    # -- operations --------------------------------------------------------
    def random_op(self, in_pl, depth=0):
        r, tx = self.rng, self.tx
        weights = {
            "fire": 30, "fire_many": 4, "fire_bad": 0 if in_pl else 2, "fire_wait": 5, "fire_wait_bad": 0.7,
            "flush": 6, "flush_all": 3, "insert": 6, "insert_dup": 0.7, "update": 4, "delete": 3,
            "run": 9, "pre": 9, "post": 6 if self.post else 0,
            # definitions change as the connecting role only (it owns pl_dyn)
            "dyn": 3 if self.model.role == self.model.session_role and not self.no_src else 0,
            "block": (5 if depth < 2 else 0) if in_pl else 6, "try": 0 if in_pl else 3,
        }
        if self.no_src:
            # a prepared transaction holds src's rows: no change of src
            for k in ("insert", "insert_dup", "update", "delete"):
                weights[k] = 0
        kind = self.pick(weights)
        op = self.next_op()
        buf = r.choice(sorted(BUFFERS))
        if kind == "fire":
            return Fire(buf, tx, op, 0, variant=self.pick({0: 6, 1: 2, 2: 2, 3: 0.5}))
        if kind == "fire_many":
            return Fire(buf, tx, op, 0, count=r.randint(2, 25))
        if kind == "fire_bad":
            return Fire(buf, tx, op, 0, bad=True)
        if kind == "fire_wait":
            return FireWait(buf, tx, op, 0, variant=self.pick({0: 6, 1: 2, 2: 2}))
        if kind == "fire_wait_bad":
            return FireWait(buf, tx, op, 0, bad=True)
        if kind == "flush":
            return Flush(buf)
        if kind == "flush_all":
            return Flush(None)
        src = self.model.src
        if kind == "insert":
            free = [k for k in range(1, KEYS + 1) if k not in src]
            if free:
                ks = r.sample(free, min(len(free), r.randint(1, 3)))
                return Insert([(k, r.randint(0, 99)) for k in ks], tx, op)
            kind = "update"
        if kind == "insert_dup":
            if src:
                k = r.choice(sorted(src))
                return Insert([(k, 0)], tx, op)
            return Insert([(1, 0), (1, 1)], tx, op)
        if kind == "update":
            return Update(r.sample(range(1, KEYS + 1), r.randint(1, 4)), tx, op)
        if kind == "delete":
            return Delete(r.sample(range(1, KEYS + 1), r.randint(1, 3)))
        if kind == "run":
            pipeline = r.choice(Run.PIPELINES)
            if pipeline == "pl_dyn" and self.model.dyn is None and r.random() < 0.7:
                pipeline = "pl_ok"      # running a pipeline that does not exist: now and then
            # choreo_run of a failing pipeline fails the statement: now and then
            fatal = pipeline in ("pl_fail", "pl_cancel")
            mode = "run" if r.random() < (0.3 if fatal else 0.5) else "try"
            return Run(pipeline, mode, tx, op, self.post, count=r.randint(2, 4) if r.random() < 0.2 else 0)
        if kind == "pre":
            cb = self.pick({"write": 6, "noarg": 1, "fail": 3, "chain": 2, "fire": 2,
                            "fire_flush_fail": 2, "post": 1 if self.post else 0,
                            "post_fail": 1 if self.post else 0, "capture": 0 if self.no_src else 2})
            fails = cb in ("fail", "fire_flush_fail", "post_fail")
            # an 'abort' hook that fails fails the commit: now and then
            on_error = "log" if (fails and r.random() < 0.75) or (not fails and r.random() < 0.3) else "abort"
            key = self.key(PRE_KEYS, self.pre_keys, 0.5)
            extra = {}
            if cb in ("fire", "fire_flush_fail"):
                extra["buffer"] = r.choice(sorted(BUFFERS))
            if cb == "chain" and r.random() < 0.6:
                # often a key already used: the hook it registers is then ignored
                extra["key"] = self.key(PRE_KEYS, self.pre_keys, 1.0)
            if cb == "capture":
                extra["k"] = r.randint(1, KEYS)
            return Pre(cb, tx, op, 0, on_error, key, extra, style=r.randint(0, 1))
        if kind == "post":
            capture_k = r.randint(1, KEYS) if not self.no_src and r.random() < 0.25 else None
            return Post(tx, op, 0, self.key(POST_KEYS, self.post_keys, 0.5), capture_k)
        if kind == "dyn":
            action = self.pick({"add": 6, "remove": 3, "drop": 1})
            steps = [s for s, _ in self.model.dyn or ()]
            if action == "remove" and steps and r.random() < 0.7:
                step = r.choice(steps)
            else:
                step = r.choice(("d1", "d2", "d3", "d4"))
            return Dyn(action, step, r.choice(("w1", "w2", "w3", "w9")))
        if kind == "block":
            return self.random_block(depth)
        if kind == "try":
            items = [self.random_op(True, 99) for _ in range(r.randint(1, 3))]
            items = [it for it in items if not isinstance(it, Block)] or [Fire("b", tx, self.next_op(), 0)]
            fail = Fail("raise") if r.random() < 0.4 else None      # fz_try raises P0001
            return Block(items, fail, [], style="try")
        raise AssertionError(kind)

    def random_block(self, depth):
        r = self.rng
        items = [self.random_op(True, depth + 1) for _ in range(r.randint(1, 4))]
        fail = Fail(r.choice(("div0", "raise"))) if r.random() < 0.4 else None
        if depth == 0:
            handler = None if r.random() < 0.15 else [self.random_op(True, depth + 1) for _ in range(r.randint(0, 2))]
        else:
            handler = None if r.random() < 0.3 else [self.random_op(True, depth + 1) for _ in range(r.randint(0, 1))]
        return Block(items, fail, handler)

    # -- transactions ------------------------------------------------------
    def transaction(self, t, last=False):
        """Draws transaction t; returns its statements, each with what the
        model expects of it.  The last one leaves nothing prepared."""
        self.rng = random.Random("%s:%d" % (self.seed, t))
        self.no_src = self.pending is not None
        self.tx, self.op_number = t, 0
        self.pre_keys, self.post_keys = [], []
        m, r = self.model, self.rng
        m.tx_number = t
        out = []

        def emit(op, session=1):
            out.append(Statement(session, op, m.statement(op)))

        emit(Begin())
        savepoint_names = 0
        for _ in range(r.randint(1, 14) if r.random() < 0.9 else r.randint(15, 50)):
            open_sp = m.savepoints()
            # while a bad item is pending, a statement may fail or not: no
            # RELEASE then (it would or would not pop a savepoint), and no
            # savepoint named like an open one (ROLLBACK TO would find
            # either), so that savepoints are the same either way
            unc = m.uncertain
            action = self.pick({
                "op": 60, "savepoint": 12 if len(open_sp) < 6 else 0,
                "release": 8 if open_sp and not unc else 0, "rollback_to": 10 if open_sp else 0,
                "error": 4 if open_sp else 0.7, "role": 3 if self.role else 0,
            })
            if m.failed and not m.uncertain and open_sp and r.random() < 0.7:
                action = "rollback_to"
            if action == "op":
                emit(self.random_op(False))
            elif action == "savepoint":
                if open_sp and not unc and r.random() < 0.1:
                    name = r.choice(open_sp)          # a name used twice
                else:
                    savepoint_names += 1
                    name = "s%d" % savepoint_names
                emit(Savepoint(name))
            elif action in ("release", "rollback_to"):
                # mostly the innermost, sometimes an outer one
                name = open_sp[-1] if r.random() < 0.7 else r.choice(open_sp)
                emit(Release(name) if action == "release" else RollbackTo(name))
            elif action == "role":
                emit(SetRole(self.role if r.random() < 0.6 else None))
            elif action == "error":
                self.next_op()
                emit(Fail(r.choice(("div0", "raise"))))
        end = self.pick({"commit": 60, "rollback": 8, "prepare_commit": 14, "prepare_rollback": 6})
        if end == "commit":
            emit(Commit())
        elif end == "rollback":
            emit(Rollback())
        else:
            gid = "fz_%s_%d" % (self.seed, t)
            emit(Prepare(gid))
            if not self.no_src and not last and gid in m.prepared and r.random() < 0.3:
                self.pending = gid      # the next transaction runs, then this one is finished
                return out
            emit(FinishPrepared(gid, end == "prepare_commit"), session=r.choice((1, 2)))
        if self.no_src:
            emit(FinishPrepared(self.pending, r.random() < 0.7), session=r.choice((1, 2)))
            self.pending = None
        return out
