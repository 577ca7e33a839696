"""The checker: runs a transaction's statements, compares each with what the
model expects of it, then the database with what the model says it must
hold.  Any difference, a lost connection or a crash in the server log is a
Failure, which says what differed."""

import json
import os
import time

import pgwire
from model import ABORTED, CANCEL, CHECK, DIV0, NO_PREPARED, NO_SAVEPOINT, RAISE, UNIQUE

# what a statement may fail with while a bad item is pending (see model.py)
UNCERTAIN_STATES = {CHECK, ABORTED, NO_SAVEPOINT, RAISE, DIV0, UNIQUE, CANCEL, NO_PREPARED}
HOOK_WARNING = "fz pre-commit hook failure"
UNORDERED = ("ev_a", "ev_b", "ev_c", "ev_d", "ev_p", "cap_log", "pipe_log", "def_log")
ORDERED = ("pre_log", "post_log")     # registration order is specified


class Failure(Exception):
    def __init__(self, message, statement=None, crash=False):
        super().__init__(message)
        self.statement = statement      # index in the transaction, or None
        self.crash = crash


def describe_result(res):
    if res.error:
        e = res.error
        s = "error %s: %s" % (e.get("C"), e.get("M"))
        for f, label in (("D", "detail"), ("H", "hint"), ("W", "context")):
            if e.get(f):
                s += "\n        %s: %s" % (label, e[f].replace("\n", "\n          "))
    else:
        s = "success"
        if res.rows:
            s += ", value %r" % (res.value(),)
        if res.tags:
            s += ", tag %s" % res.tags[-1]
    s += ", status %s" % res.status
    for n in res.notices:
        if n.get("S") == "WARNING":
            s += "\n        WARNING: %s" % n.get("M")
    return s


class ServerLog:
    """The server log, read from where it was when the test started."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.found = []         # every crash line seen
        if path:
            try:
                self.offset = os.path.getsize(path)
            except OSError:
                self.path = None

    def crashes(self):
        """New lines about a process terminated by a signal (and what it
        ran), since the last call."""
        if not self.path:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        # a line still being written is read again next time
        end = data.rfind(b"\n") + 1
        self.offset += end
        lines = data[:end].decode("utf-8", "replace").splitlines()
        out = []
        for i, line in enumerate(lines):
            if "terminated by signal" in line or "was terminated by exception" in line or "PANIC" in line:
                out.append(line)
                if i + 1 < len(lines) and "Failed process was running" in lines[i + 1]:
                    out.append(lines[i + 1])
        self.found.extend(out)
        return out


class Checker:
    def __init__(self, sessions, check_conn, expected, log, started, hook_timeout, post_enabled):
        self.sessions = sessions        # {1: Connection, 2: Connection}
        self.conn = check_conn
        self.expected = expected
        self.log = log
        self.started = started
        self.hook_timeout = hook_timeout
        self.post_enabled = post_enabled
        self.statements = 0
        self.watermark = {}             # table -> the highest id checked

    # -- statements ------------------------------------------------------
    def run_statement(self, index, stmt):
        conn = self.sessions[stmt.session]
        sql = stmt.sql()
        try:
            res = conn.query(sql)
        except pgwire.ConnectionLost as e:
            raise Failure("the connection was lost (%s)" % e, index, crash=True)
        self.statements += 1
        exp = stmt.expect
        problems = []
        state = res.sqlstate
        if state and state.startswith("XX"):
            problems.append("an internal error")
        warnings = [n for n in res.notices if n.get("S") == "WARNING"]
        # a 'log' hook failing on purpose; while a bad item is pending, a
        # 'log' hook writing its batch fails too
        ours = [w for w in warnings if HOOK_WARNING in (w.get("M") or "") or
                (exp.uncertain and (w.get("M") or "").startswith("pre-commit hook ")
                 and CHECK == w.get("C"))]
        others = [w for w in warnings if w not in ours]
        if others:
            problems.append("unexpected warning(s)")
        if exp.uncertain:
            if state and state not in UNCERTAIN_STATES and state != exp.error:
                problems.append("an unexpected error")
        else:
            if exp.error and state != exp.error:
                problems.append("not the expected outcome")
            elif not exp.error and state:
                problems.append("an unexpected error")
            elif res.status != exp.status:
                problems.append("not the expected transaction status")
            elif not state and exp.tag and (not res.tags or res.tags[-1] != exp.tag):
                problems.append("not the expected command tag")
            elif not state and exp.value is not None:
                got = res.value()
                ok = exp.value(got) if callable(exp.value) else got == exp.value
                if not ok:
                    problems.append("not the expected result")
            if exp.warnings is not None and len(ours) != exp.warnings:
                problems.append("%d hook failure warning(s) instead of %d" % (len(ours), exp.warnings))
        if exp.uncertain and res.status not in ("T", "E", "I"):
            problems.append("no transaction status")
        if problems:
            want = exp.describe()
            if callable(exp.value):
                want = want.replace(repr(exp.value), getattr(exp.value, "description", "?"))
            raise Failure("statement %d gave %s\n    expected: %s\n    got:      %s"
                          % (index + 1, " and ".join(problems), want, describe_result(res)), index)
        return res

    # -- the database ----------------------------------------------------
    COLUMNS = {"cap_log": "payload, wtx, who", "pipe_log": "tx, op, step, wtx, who", "def_log": "src, tx, op, n, wtx"}

    def snapshot(self, t, full):
        # the rows written since the last check: ids only grow, and every
        # transaction (and its post-commit hooks) is over before the check
        sel = []
        for table in self.expected.TABLES:
            sel.append("'%s', (SELECT coalesce(json_agg(json_build_array(id, %s) ORDER BY id), '[]') "
                       "FROM %s WHERE id > %d)" % (table, self.COLUMNS.get(table, "tx, op, n, wtx, who"),
                                                  table, self.watermark.get(table, 0)))
        if full:
            sel.append("'counts', json_build_object(%s)" % ", ".join(
                "'%s', (SELECT count(*) FROM %s)" % (x, x) for x in self.expected.TABLES))
        sel.append("'src', (SELECT coalesce(json_agg(json_build_array(k, v, tx, op) ORDER BY k), '[]') FROM src)")
        sel.append("'hooks', (SELECT json_build_array(count(*) FILTER (WHERE next_attempt_at IS NOT NULL), "
                   "count(*) FILTER (WHERE next_attempt_at IS NULL)) FROM choreograph.hooks)")
        sel.append("'prepared', (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())")
        sel.append("'started', pg_postmaster_start_time()::text")
        try:
            res = self.conn.query("SELECT json_build_object(%s)" % ", ".join(sel))
        except pgwire.ConnectionLost as e:
            raise Failure("the checker's connection was lost (%s)" % e, crash=True)
        if res.error:
            raise Failure("the check query failed: %s" % describe_result(res))
        return json.loads(res.value())

    def check(self, t, full=True):
        """Compares the database with the model after transaction t (and,
        if full, counts every table's rows)."""
        deadline = time.monotonic() + self.hook_timeout
        delay = 0.001
        while True:
            snap = self.snapshot(t, full)
            queued, failed = snap["hooks"]
            if queued == 0 or time.monotonic() > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        crashes = self.log.crashes()
        if crashes:
            raise Failure("the server log reports a crash:\n    " + "\n    ".join(crashes), crash=True)
        if snap["started"] != self.started:
            raise Failure("the server restarted (pg_postmaster_start_time %s, was %s)"
                          % (snap["started"], self.started), crash=True)
        problems = []
        if queued:
            res = self.conn.query("SELECT json_agg(h) FROM choreo_hooks h")
            problems.append("gave up after %.0f s waiting for %d queued post-commit hook(s) to run: %s"
                            % (self.hook_timeout, queued, res.value()))
        if failed:
            res = self.conn.query("SELECT json_agg(h) FROM choreo_hooks h WHERE status = 'failed'")
            problems.append("%d post-commit hook(s) failed: %s" % (failed, res.value()))
        if snap["prepared"]:
            problems.append("%d prepared transaction(s) left" % snap["prepared"])
        exp = self.expected
        new_watermark = {}
        for table in UNORDERED + ORDERED:
            got = snap[table]
            if got:
                new_watermark[table] = got[-1][0]
            if table == "cap_log":
                got = [(json.dumps(p, sort_keys=True), w, who) for _, p, w, who in got]
            else:
                got = [tuple(r[1:]) for r in got]
            want = exp.unchecked[table]
            if table in UNORDERED:
                g, w = sorted(got, key=repr), sorted(want, key=repr)
            else:
                # registration order, within each transaction
                def by_tx(rows):
                    groups = {}
                    for r in rows:
                        groups.setdefault(r[0], []).append(r)
                    return sorted(groups.items(), key=repr)
                g, w = by_tx(got), by_tx(want)
            if g != w:
                problems.append(diff(table, got, want, ordered=table in ORDERED))
        for table, n in snap.get("counts", {}).items():
            if n != exp.counts[table]:
                problems.append("%s holds %d rows in all, the model %d (rows of other transactions)"
                                % (table, n, exp.counts[table]))
        src = [tuple(r) for r in snap["src"]]
        want_src = sorted((k,) + v for k, v in exp.src.items())
        if src != want_src:
            problems.append(diff("src", src, want_src, ordered=True))
        if problems:
            raise Failure("the database does not hold what the model says after transaction %d:\n    %s"
                          % (t, "\n    ".join(p.replace("\n", "\n    ") for p in problems)))
        self.watermark.update(new_watermark)
        for rows in exp.unchecked.values():
            rows.clear()


def diff(table, got, want, ordered):
    rest = list(want)
    extra = []
    for r in got:
        if r in rest:
            rest.remove(r)
        else:
            extra.append(r)
    lines = ["%s differs:" % table]
    if extra:
        lines.append("  extra:   " + ", ".join(map(str, extra)))
    if rest:
        lines.append("  missing: " + ", ".join(map(str, rest)))
    if not extra and not rest and ordered:
        lines.append("  same rows, another order")
        lines.append("  got:     " + ", ".join(map(str, got)))
        lines.append("  model:   " + ", ".join(map(str, want)))
    return "\n".join(lines)
