"""The model: what each statement of a random transaction must do, and what
the database must hold once the transaction is over.

Operations (the classes below) are what the generator strings together; the
Model executes them abstractly, following the semantics of
/work/shared/spec/transactions.md, docs/hooks.md, docs/buffers.md and
docs/pipelines.md, with PostgreSQL's own rules for savepoints, failed
transactions and PL/pgSQL exception blocks:

- every effect (a buffer item, a captured change, a pipeline write, a hook
  registration) belongs to the innermost open scope: the transaction, a
  savepoint, a PL/pgSQL exception block, a precheck, a try_run job, an
  on_error => 'log' hook; a scope that rolls back forgets its effects, one
  that is released hands them to its parent;
- the captured table's rows, the current role (SET LOCAL ROLE) and pl_dyn's
  definition are state that a rolled-back scope restores;
- every effect records the role that asked for it: items are written as
  the firing role, hooks run as the registering role;
- buffer items are written once if the transaction commits, whenever their
  batch is written: the model does not predict when batches are written,
  only what is in the tables in the end;
- keys dedupe registrations per transaction and registering role,
  savepoint-exact;
- at COMMIT and PREPARE the pre-commit hooks run in registration order (those
  they register after them); an 'abort' hook that fails fails the commit, a
  'log' one warns and its effects are forgotten;
- post-commit hooks write after the commit (or COMMIT PREPARED), in
  registration order.

Items that fail their CHECK ('bad' ones) are fired only by plain SQL
statements.  Where their batch is written depends on batching, so from the
moment one is fired until its scope rolls back the model is "uncertain":
each statement may succeed or fail with the batch's error (or with "current
transaction is aborted"), but the end state is still exact: everything
done in the bad item's scope is forgotten with it, and if the bad item
reaches the commit, the commit fails and nothing is left.
"""

import copy
import json

BUFFERS = {"a": 1, "b": 3, "c": 7, "d": 2, "p": 2}   # name -> max_batch (see schema.sql)
BUFFER_TABLE = {"a": "ev_a", "b": "ev_b", "c": "ev_c", "d": "ev_d", "p": "ev_p"}

# SQLSTATEs
DIV0 = "22012"
RAISE = "P0001"
UNIQUE = "23505"
CHECK = "23514"
CANCEL = "CH001"
ABORTED = "25P02"
NO_SAVEPOINT = "3B001"
NO_PREPARED = "42704"


def q(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def jlit(obj):
    """A jsonb literal."""
    return q(json.dumps(obj, separators=(", ", ": "))) + "::jsonb"


# --------------------------------------------------------------------------
# operations

class Op:
    in_pl = True        # may appear inside a PL/pgSQL block

    def sql(self):
        raise NotImplementedError

    def pl(self):
        """The statement inside a PL/pgSQL block."""
        s = self.sql()
        return "PERFORM " + s[len("SELECT "):] if s.startswith("SELECT ") else s


class Fire(Op):
    """choreo_fire_forget of item (tx, op, n); variant 1 leaves n out (its
    default is 0), variant 2 names one more column, so that batches mix
    column sets (variant 3 a long one); count > 0 fires items n = 1..count in one statement."""

    def __init__(self, buf, tx, op, n, bad=False, variant=0, count=0):
        self.buf, self.tx, self.op, self.n, self.bad = buf, tx, op, n, bad
        self.variant, self.count = variant, count
        self.in_pl = not bad

    def item(self):
        d = {"tx": self.tx, "op": self.op}
        if not (self.variant == 1 and self.n == 0):
            d["n"] = self.n
        if self.bad:
            d["tag"] = "bad"
        elif self.variant == 2:
            d["tag"] = "x"
        elif self.variant == 3:
            d["tag"] = "L" * 3000       # stored out of line
        return d

    def numbers(self):
        return list(range(1, self.count + 1)) if self.count else [self.n]

    def sql(self):
        if self.count:
            return ("SELECT count(choreo_fire_forget(%s, jsonb_build_object('tx', %d, 'op', %d, 'n', g))) "
                    "FROM generate_series(1, %d) g" % (q(self.buf), self.tx, self.op, self.count))
        return "SELECT choreo_fire_forget(%s, %s)" % (q(self.buf), jlit(self.item()))


class FireWait(Fire):
    def __init__(self, buf, tx, op, n, bad=False, variant=0):
        super().__init__(buf, tx, op, n, bad, variant)
        self.in_pl = True

    def sql(self):
        return "SELECT choreo_fire_and_wait(%s, %s)" % (q(self.buf), jlit(self.item()))


class Flush(Op):
    def __init__(self, buf=None):
        self.buf = buf

    def sql(self):
        return "SELECT choreo_flush(%s)" % (q(self.buf) if self.buf else "")


class Insert(Op):
    def __init__(self, rows, tx, op):
        self.rows, self.tx, self.op = rows, tx, op   # rows: [(k, v)]

    def sql(self):
        return "INSERT INTO src (k, v, tx, op) VALUES " + ", ".join(
            "(%d, %d, %d, %d)" % (k, v, self.tx, self.op) for k, v in self.rows)


class Update(Op):
    def __init__(self, keys, tx, op):
        self.keys, self.tx, self.op = keys, tx, op

    def sql(self):
        return "UPDATE src SET v = v + 1, tx = %d, op = %d WHERE k IN (%s)" % (
            self.tx, self.op, ", ".join(map(str, self.keys)))


class Delete(Op):
    def __init__(self, keys):
        self.keys = keys

    def sql(self):
        return "DELETE FROM src WHERE k IN (%s)" % ", ".join(map(str, self.keys))


class Fail(Op):
    """A deliberate error."""

    def __init__(self, kind):
        self.kind = kind            # 'div0' or 'raise'
        self.state = DIV0 if kind == "div0" else RAISE

    def sql(self):
        return "SELECT 1/0" if self.kind == "div0" else "SELECT fz_raise()"

    def pl(self):
        return "PERFORM 1/0" if self.kind == "div0" else "RAISE EXCEPTION 'fz deliberate failure'"


class Run(Op):
    PIPELINES = ("pl_ok", "pl_fail", "pl_cancel", "pl_nest", "pl_dyn")

    def __init__(self, pipeline, mode, tx, op, post, count=0):
        self.pipeline, self.mode, self.tx, self.op, self.post = pipeline, mode, tx, op, post
        self.count = count      # > 0: that many runs in one statement

    def sql(self):
        fn = "choreo_run" if self.mode == "run" else "choreo_try_run"
        inp = {"tx": self.tx, "op": self.op}
        if self.post:
            inp["post"] = True
        if self.count:
            return "SELECT min(%s(%s, %s)->>'status') FROM generate_series(1, %d)" % (
                fn, q(self.pipeline), jlit(inp), self.count)
        return "SELECT %s(%s, %s)->>'status'" % (fn, q(self.pipeline), jlit(inp))

    def pl(self):
        return "PERFORM " + self.sql()[len("SELECT "):]


class Pre(Op):
    """choreo_pre_commit; callback is one of CALLBACKS."""
    CALLBACKS = ("write", "noarg", "fail", "chain", "fire", "fire_flush_fail", "post", "post_fail", "capture")

    def __init__(self, callback, tx, op, n, on_error, key, extra=None, style=0):
        self.callback, self.tx, self.op, self.n = callback, tx, op, n
        self.on_error, self.key, self.extra, self.style = on_error, key, extra or {}, style

    def payload(self):
        d = {"tx": self.tx, "op": self.op, "n": self.n}
        d.update(self.extra)
        return d

    def sql(self):
        if self.callback == "noarg":
            fn, payload = "'fz_pre_noarg()'", "NULL"
        else:
            fn, payload = "'fz_pre_%s(jsonb)'" % self.callback, jlit(self.payload())
        if self.style == 1 and self.on_error == "abort":
            # named notation, defaults left out
            args = [fn, payload] + (["key => %s" % q(self.key)] if self.key else [])
        else:
            args = [fn, payload, q(self.on_error), q(self.key) if self.key else "NULL"]
        return "SELECT choreo_pre_commit(%s)" % ", ".join(args)


class Post(Op):
    """choreo_post_commit of fz_post_write, or (capture_k set) of
    fz_post_capture, which also changes src row capture_k."""

    def __init__(self, tx, op, n, key, capture_k=None):
        self.tx, self.op, self.n, self.key, self.capture_k = tx, op, n, key, capture_k

    def payload(self):
        d = {"tx": self.tx, "op": self.op, "n": self.n}
        if self.capture_k is not None:
            d["k"] = self.capture_k
        return d

    def sql(self):
        fn = "fz_post_write" if self.capture_k is None else "fz_post_capture"
        args = ["'%s(jsonb)'" % fn, jlit(self.payload())]
        if self.key:
            args.append(q(self.key))
        return "SELECT choreo_post_commit(%s)" % ", ".join(args)


class Block(Op):
    """A PL/pgSQL block: items (operations or nested blocks), an optional
    deliberate error at the end, and an exception handler (a list of items)
    or None.  Outermost, it is a DO statement (style 'do') or a call of
    fz_try (style 'try': plain statements, a handler that returns)."""

    def __init__(self, items, fail, handler, style="do"):
        self.items, self.fail, self.handler, self.style = items, fail, handler, style

    def _body(self, indent):
        pad = " " * indent
        lines = []
        for it in self.items:
            if isinstance(it, Block):
                lines.append(pad + "BEGIN")
                lines.extend(it._body(indent + 4))
                lines.append(pad + "END;")
            else:
                lines.append(pad + it.pl() + ";")
        if self.fail:
            lines.append(pad + self.fail.pl() + ";")
        if self.handler is not None:
            lines.append(pad[:-4] + "EXCEPTION WHEN OTHERS THEN")
            for it in self.handler:
                if isinstance(it, Block):
                    lines.append(pad + "BEGIN")
                    lines.extend(it._body(indent + 4))
                    lines.append(pad + "END;")
                else:
                    lines.append(pad + it.pl() + ";")
            if not self.handler:
                lines.append(pad + "NULL;")
        return lines

    def sql(self):
        if self.style == "try":
            stmts = ", ".join("$s%d$%s$s%d$" % (i, it.sql(), i) for i, it in enumerate(self.items))
            return "SELECT fz_try(ARRAY[%s]::text[], %s)" % (stmts or "", "true" if self.fail else "false")
        return "DO $fz$\nBEGIN\n" + "\n".join(self._body(4)) + "\nEND\n$fz$"

    def pl(self):
        raise AssertionError("nested blocks are rendered by their parent")


class SetRole(Op):
    """SET LOCAL ROLE (role) or RESET ROLE (None): no effect on what is written."""
    in_pl = False

    def __init__(self, role):
        self.role = role

    def sql(self):
        return "SET LOCAL ROLE %s" % self.role if self.role else "RESET ROLE"


class Dyn(Op):
    """A change of the definition of pipeline pl_dyn: add step (with a job
    writing label), remove step, or drop the pipeline (step None)."""

    def __init__(self, action, step=None, label=None):
        self.action, self.step, self.label = action, step, label

    def sql(self):
        if self.action == "add":
            return "SELECT choreo_add_step('pl_dyn', %s, 'fz_job_%s(jsonb)')" % (q(self.step), self.label)
        if self.action == "remove":
            return "SELECT choreo_remove_step('pl_dyn', %s)" % q(self.step)
        return "SELECT choreo_drop_pipeline('pl_dyn')"


class Savepoint(Op):
    in_pl = False

    def __init__(self, name):
        self.name = name

    def sql(self):
        return "SAVEPOINT " + self.name


class Release(Savepoint):
    def sql(self):
        return "RELEASE SAVEPOINT " + self.name


class RollbackTo(Savepoint):
    def sql(self):
        return "ROLLBACK TO SAVEPOINT " + self.name


class Begin(Op):
    in_pl = False

    def sql(self):
        return "BEGIN"


class Commit(Op):
    in_pl = False

    def sql(self):
        return "COMMIT"


class Rollback(Op):
    in_pl = False

    def sql(self):
        return "ROLLBACK"


class Prepare(Op):
    in_pl = False

    def __init__(self, gid):
        self.gid = gid

    def sql(self):
        return "PREPARE TRANSACTION " + q(self.gid)


class FinishPrepared(Op):
    in_pl = False

    def __init__(self, gid, commit):
        self.gid, self.commit = gid, commit

    def sql(self):
        return ("COMMIT PREPARED " if self.commit else "ROLLBACK PREPARED ") + q(self.gid)


# --------------------------------------------------------------------------
# expectations

class Expect:
    """What one statement must do.  error: the SQLSTATE it must fail with, or
    None; status: the transaction status after it ('I', 'T', 'E');
    uncertain: a bad item may be written by this statement, so it may fail
    with CHECK (or ABORTED, NO_SAVEPOINT) instead; value: the first column of
    the result it must return (None: not checked); tag: the command tag;
    warnings: how many 'log' hook failures it must warn about (None: any)."""

    def __init__(self, error=None, status="T", uncertain=False, value=None, tag=None, warnings=0):
        self.error, self.status, self.uncertain = error, status, uncertain
        self.value, self.tag, self.warnings = value, tag, warnings

    def describe(self):
        parts = ["error %s" % self.error if self.error else "success"]
        if self.value is not None:
            parts.append("value %r" % (self.value,))
        if self.tag:
            parts.append("tag %s" % self.tag)
        parts.append("status %s" % self.status)
        if self.warnings:
            parts.append("%d warning(s)" % self.warnings)
        if self.uncertain:
            parts.append("(or, a bad item being pending, a CHECK or aborted-transaction error)")
        return ", ".join(parts)


class StatementError(Exception):
    def __init__(self, state):
        self.state = state


class Scope:
    def __init__(self, kind, name=None, src=None):
        self.kind, self.name = kind, name
        self.effects = []
        self.src = src          # the src table when the scope began
        self.bad = False        # holds a bad item (see module doc)


class Expected:
    """What the database must hold, across all transactions so far."""

    TABLES = ("ev_a", "ev_b", "ev_c", "ev_d", "ev_p", "cap_log", "pipe_log", "pre_log", "post_log", "def_log")

    def __init__(self):
        self.src = {}           # k -> (v, tx, op)
        self.dyn = None         # pl_dyn's steps ((step, label), ...), None: no such pipeline
        self.counts = {t: 0 for t in self.TABLES}
        self.unchecked = {t: [] for t in self.TABLES}   # rows published since the last check


def envelope(op, old, new):
    return {"op": op, "table": "public.src", "new": new, "old": old}


def upsert(src, k, tx, op):
    """fz_upsert: changes src (a dict), returns the captured envelope."""
    if k in src:
        v, tx0, op0 = src[k]
        src[k] = (v + 1, tx, op)
        return envelope("UPDATE", {"k": k, "v": v, "tx": tx0, "op": op0}, {"k": k, "v": v + 1, "tx": tx, "op": op})
    src[k] = (0, tx, op)
    return envelope("INSERT", None, {"k": k, "v": 0, "tx": tx, "op": op})


# --------------------------------------------------------------------------
# the model of one transaction

class Model:
    def __init__(self, expected, post_enabled, session_role):
        self.expected = expected
        self.post_enabled = post_enabled
        self.session_role = self.role = session_role
        self.reset()

    def reset(self):
        self.in_tx = False
        self.stack = []
        self.failed = False
        self.src = dict(self.expected.src)
        self.dyn = self.expected.dyn
        self.prepared = {}      # gid -> committed-effects list (not yet visible)

    # -- state the generator looks at ------------------------------------
    @property
    def uncertain(self):
        return any(s.bad for s in self.stack)

    def savepoints(self):
        return [s.name for s in self.stack if s.kind == "savepoint"]

    def live_effects(self):
        for s in self.stack:
            for e in s.effects:
                yield e

    def key_used(self, kind, key):
        # an effect's last element is the role; a registration's key is before it;
        # keys are each registering role's own
        return any(e[0] == kind and e[-2] == key and e[-1] == self.role
                   for e in self.live_effects())

    # -- scopes ----------------------------------------------------------
    def push(self, kind, name=None):
        s = Scope(kind, name, copy.copy(self.src))
        s.role, s.dyn = self.role, self.dyn
        self.stack.append(s)
        return s

    def pop_release(self):
        s = self.stack.pop()
        self.stack[-1].effects.extend(s.effects)
        self.stack[-1].bad |= s.bad

    def pop_rollback(self):
        s = self.stack.pop()
        self.src = s.src
        self.role = s.role          # SET LOCAL ROLE rolls back too
        self.dyn = s.dyn            # so do definitions

    def add(self, effect):
        """Records an effect, with the role that asked for it."""
        self.stack[-1].effects.append(effect + (self.role,))

    # -- operations ------------------------------------------------------
    def run_op(self, op):
        """Executes one operation in the current scope; raises StatementError."""
        t = type(op)
        if t is Fire or t is FireWait:
            if op.bad:
                if t is FireWait or BUFFERS[op.buf] == 1:
                    raise StatementError(CHECK)       # written at once
                self.stack[-1].bad = True
            else:
                for n in op.numbers():
                    self.add(("item", op.buf, op.tx, op.op, n))
        elif t is Flush:
            pass
        elif t is SetRole:
            self.role = op.role or self.session_role
        elif t is Dyn:
            steps = self.dyn
            if op.action == "add":
                if steps is not None and any(s == op.step for s, _ in steps):
                    raise StatementError("42710")
                self.dyn = (steps or ()) + ((op.step, op.label),)
            elif op.action == "remove":
                if steps is None or not any(s == op.step for s, _ in steps):
                    raise StatementError("42704")
                self.dyn = tuple(x for x in steps if x[0] != op.step)
            else:
                if steps is None:
                    raise StatementError("42704")
                self.dyn = None
        elif t is Insert:
            keys = [k for k, _ in op.rows]
            if len(set(keys)) != len(keys) or any(k in self.src for k in keys):
                raise StatementError(UNIQUE)
            for k, v in op.rows:
                self.src[k] = (v, op.tx, op.op)
                self.add(("cap", envelope("INSERT", None, {"k": k, "v": v, "tx": op.tx, "op": op.op})))
        elif t is Update:
            for k in sorted(set(op.keys)):
                if k in self.src:
                    v, tx0, op0 = self.src[k]
                    self.src[k] = (v + 1, op.tx, op.op)
                    self.add(("cap", envelope("UPDATE", {"k": k, "v": v, "tx": tx0, "op": op0},
                                              {"k": k, "v": v + 1, "tx": op.tx, "op": op.op})))
        elif t is Delete:
            for k in sorted(set(op.keys)):
                if k in self.src:
                    v, tx0, op0 = self.src.pop(k)
                    self.add(("cap", envelope("DELETE", {"k": k, "v": v, "tx": tx0, "op": op0}, None)))
        elif t is Fail:
            raise StatementError(op.state)
        elif t is Run:
            for _ in range(max(op.count, 1)):
                self.run_pipeline(op)
        elif t is Pre:
            if op.key and self.key_used("pre", op.key):
                return
            self.add(("pre", op.callback, op.payload(), op.on_error, op.key))
        elif t is Post:
            if op.key and self.key_used("post", op.key):
                return
            self.add(("post", op.payload(), op.key))
        elif t is Block:
            self.run_block(op)
        else:
            raise AssertionError("not an operation here: %r" % op)

    def sub(self, fn, *args):
        """Runs fn in a subtransaction: returns None, or the SQLSTATE it
        failed with (its effects forgotten)."""
        self.push("sub")
        try:
            fn(*args)
        except StatementError as e:
            self.pop_rollback()
            return e.state
        self.pop_release()
        return None

    def run_block(self, b):
        def body():
            for it in b.items:
                self.run_op(it)
            if b.fail:
                raise StatementError(b.fail.state)
        b.caught = None
        if b.handler is None:
            body()
            return None
        state = b.caught = self.sub(body)
        if state is not None:
            for it in b.handler:
                self.run_op(it)
        return state

    def run_pipeline(self, op):
        tx, o, p = op.tx, op.op, op.pipeline
        pipe = lambda step: self.add(("pipe", tx, o, step))
        item = lambda buf, n: self.add(("item", buf, tx, o, n))

        def pl_ok():
            pipe("w1")
            # pw, pf, pff: prechecks that fail (their writes and items forgotten)
            item("b", 106)
            item("c", 107)
            item("a", 108)
            pipe("fire")
            self.add(("pre", "write", {"tx": tx, "op": o, "n": 110}, "abort", None))
            if op.post:
                self.add(("post", {"tx": tx, "op": o, "n": 111}, None))
            pipe("hooks")
            pipe("w9")

        def pl_fail_tried():
            pipe("w1")          # the failing job's writes are rolled back

        if p == "pl_dyn":
            if self.dyn is None:
                raise StatementError("42704")      # unknown pipeline, even under try_run
            op.status = "completed"
            for _, label in self.dyn:
                pipe(label)
        elif p == "pl_ok":
            op.status = "completed"
            pl_ok()
        elif p == "pl_nest":
            op.status = "completed"
            pl_fail_tried()
            pipe("nested")
            pipe("w9")
        elif p == "pl_fail":
            if op.mode == "run":
                raise StatementError(RAISE)
            op.status = "failed"
            pl_fail_tried()
        elif p == "pl_cancel":
            if op.mode == "run":
                raise StatementError(CANCEL)
            op.status = "canceled"
            item("d", 130)
            pipe("w1")

    # -- statements ------------------------------------------------------
    def statement(self, op):
        """Applies one top-level statement; returns its Expect."""
        t = type(op)
        unc = self.uncertain
        if t is Begin:
            assert not self.in_tx
            self.in_tx, self.failed = True, False
            self.src = dict(self.expected.src)
            self.dyn = self.expected.dyn
            self.role = self.session_role
            self.stack = [Scope("top", None, copy.copy(self.src))]
            self.stack[0].role, self.stack[0].dyn = self.role, self.dyn
            return Expect(status="T")
        if t is FinishPrepared:
            effects = self.prepared.pop(op.gid, None)
            if effects is None:
                return Expect(error=NO_PREPARED, status="I")
            if op.commit:
                self.publish(effects)
            if effects[2] == self.tx_number:
                self.outcome = "prepared, then committed" if op.commit else "prepared, then rolled back"
            return Expect(status="I")
        assert self.in_tx
        if t in (Commit, Prepare):
            return self.finish(op, unc)
        if t is Rollback:
            self.outcome = "rolled back"
            self.end_tx()
            return Expect(status="I", tag="ROLLBACK")
        if t is RollbackTo:
            names = self.savepoints()
            if op.name not in names:
                return Expect(error=NO_SAVEPOINT, status="E", uncertain=unc)
            while not (self.stack[-1].kind == "savepoint" and self.stack[-1].name == op.name):
                self.pop_rollback()
            self.pop_rollback()
            self.push("savepoint", op.name)
            self.failed = False
            return Expect(status="T", uncertain=self.uncertain)
        if self.failed and not unc:
            return Expect(error=ABORTED, status="E")
        if t is Savepoint:
            self.push("savepoint", op.name)
            return Expect(status="T", uncertain=unc)
        if t is Release:
            assert not unc, "no RELEASE while a bad item is pending (see the generator)"
            names = self.savepoints()
            if op.name not in names:
                self.failed = True
                return Expect(error=NO_SAVEPOINT, status="E", uncertain=unc)
            while not (self.stack[-1].kind == "savepoint" and self.stack[-1].name == op.name):
                self.pop_release()
            self.pop_release()
            return Expect(status="T", uncertain=self.uncertain)
        # an ordinary statement: atomic
        state = self.sub(self.run_op, op)
        unc = unc or self.uncertain
        if state is not None:
            self.failed = True
            return Expect(error=state, status="E", uncertain=unc)
        value = None
        if t is Run:
            value = op.status
        elif t is Block and op.style == "try":
            value = "ok" if op.caught is None else "caught " + op.caught
        elif t is FireWait:
            want = dict(op.item(), wtx=op.tx)
            value = lambda v, want=want: v is not None and all(
                json.loads(v).get(k) == w for k, w in want.items())
            value.description = "a row holding %s" % json.dumps(want)
        return Expect(status="T", value=value, uncertain=unc)

    def end_tx(self):
        self.in_tx = False
        self.dyn = self.expected.dyn
        self.role = self.session_role
        self.stack = []
        self.failed = False
        self.src = dict(self.expected.src)

    def finish(self, op, unc):
        prepare = type(op) is Prepare
        tag_ok = "PREPARE TRANSACTION" if prepare else "COMMIT"
        if unc:
            # a bad item reaches the commit: it fails, or the transaction had
            # already failed; either way nothing is left
            self.outcome = "failed at commit on a bad item"
            self.end_tx()
            return Expect(error=CHECK, status="I", uncertain=True, warnings=None)
        if self.failed:
            self.outcome = "failed by a statement error"
            self.end_tx()
            return Expect(status="I", tag="ROLLBACK")
        while len(self.stack) > 1:
            self.pop_release()
        effects = list(self.stack[0].effects)
        warnings = 0
        # pre-commit hooks, in registration order, those they register after
        queue = [e for e in effects if e[0] == "pre"]
        keys = {(e[4], e[5]) for e in queue if e[4]}
        done = []
        src = dict(self.src)    # as the hooks leave it
        i = 0
        while i < len(queue):
            _, cb, payload, on_error, key, role = queue[i]
            i += 1
            tx, o, n = payload["tx"], payload["op"], payload["n"]
            out = []            # this hook's effects
            fails = False
            if cb == "noarg":
                out.append(("pre_row", self.tx_number, -1, -1, role))
            elif cb in ("write", "fail", "chain", "fire", "fire_flush_fail", "post", "capture"):
                out.append(("pre_row", tx, o, n, role))
            if cb == "capture":
                out.append(("cap", upsert(src, payload["k"], tx, o), role))
            if cb == "chain":
                ckey = payload.get("key")
                if not (ckey and (ckey, role) in keys):
                    if ckey:
                        keys.add((ckey, role))
                    out.append(("queue", ("pre", "write", {"tx": tx, "op": o, "n": n + 1}, "abort", ckey, role)))
            elif cb in ("fire", "fire_flush_fail"):
                out.append(("item", payload["buffer"], tx, o, n + 1, role))
            elif cb in ("post", "post_fail"):
                out.append(("post", {"tx": tx, "op": o, "n": n + 1}, None, role))
            if cb in ("fail", "fire_flush_fail", "post_fail"):
                fails = True
            if fails:
                if on_error == "abort":
                    self.outcome = "failed at commit by a hook"
                    self.end_tx()
                    return Expect(error=RAISE, status="I", warnings=warnings)
                warnings += 1
                continue
            for e in out:
                if e[0] == "queue":
                    queue.append(e[1])
                else:
                    done.append(e)
        committed = [e for e in effects if e[0] != "pre"] + done
        dyn = self.dyn
        self.end_tx()
        if prepare:
            self.outcome = "prepared, finished after the next transaction"
            self.prepared[op.gid] = (committed, src, self.tx_number, dyn)
        else:
            self.outcome = "committed"
            self.publish((committed, src, self.tx_number, dyn))
        return Expect(status="I", tag=tag_ok, warnings=warnings)

    def publish(self, result):
        """A transaction committed: its effects join the expected tables,
        then its post-commit hooks run (in registration order)."""
        effects, src, wtx, dyn = result
        exp = self.expected
        src = dict(src)
        rows = []
        # each row ends with the role that wrote it (who): the one that
        # fired the item, ran the pipeline or the DML, registered the hook
        for e in effects:
            who = e[-1]
            if e[0] == "item":
                rows.append((BUFFER_TABLE[e[1]], (e[2], e[3], e[4], wtx, who)))
            elif e[0] == "cap":
                rows.append(("cap_log", (json.dumps(e[1], sort_keys=True), wtx, who)))
            elif e[0] == "pipe":
                rows.append(("pipe_log", (e[1], e[2], e[3], wtx, who)))
            elif e[0] == "pre_row":
                rows.append(("pre_log", (e[1], e[2], e[3], wtx, who)))
            elif e[0] != "post":
                raise AssertionError(e)
        for e in effects:
            if e[0] == "post":
                p, who = e[1], e[-1]
                rows.append(("post_log", (p["tx"], p["op"], p["n"], None, who)))
                if "k" in p:
                    env = upsert(src, p["k"], p["tx"], p["op"])
                    rows.append(("cap_log", (json.dumps(env, sort_keys=True), None, who)))
        for table, row in rows:
            exp.unchecked[table].append(row)
            exp.counts[table] += 1
            if table in ("ev_c", "pre_log"):
                # the deferred trigger's row
                exp.unchecked["def_log"].append((table,) + row[:4])
                exp.counts["def_log"] += 1
        exp.src = src
        exp.dyn = dyn
