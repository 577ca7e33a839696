"""A minimal PostgreSQL client: the frontend/backend protocol, version 3.

The fuzz test needs what psql does not give a program: each statement's
SQLSTATE, the notices it raised, and the transaction status the server
reports after it (idle, in a transaction, in a failed transaction).  This
speaks the simple query protocol over a Unix socket or TCP, with the
connection parameters libpq takes from its environment (PGHOST, PGPORT,
PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGAPPNAME, PGCONNECT_TIMEOUT),
and trust, password, md5 and SCRAM-SHA-256 authentication.  No SSL: with
PGSSLMODE=require (or verify-*) it refuses to connect.  Python's standard
library only.
"""

import base64
import getpass
import hashlib
import hmac
import os
import socket
import struct


class ConnectionLost(Exception):
    """The server closed the connection (or the socket failed)."""


class Error(Exception):
    """An ErrorResponse outside a query (at connection time)."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__("%s: %s" % (fields.get("C", "?"), fields.get("M", "")))


class Result:
    """What one simple query returned."""

    def __init__(self):
        self.rows = []          # rows of the last result set, values as text or None
        self.columns = []
        self.tags = []          # command tags, one per statement that completed
        self.error = None       # dict of ErrorResponse fields, or None
        self.notices = []       # dicts of NoticeResponse fields
        self.status = None      # 'I', 'T' or 'E' from ReadyForQuery

    @property
    def sqlstate(self):
        return self.error.get("C") if self.error else None

    def value(self):
        """The first column of the first row, or None."""
        return self.rows[0][0] if self.rows and self.rows[0] else None


def _env_params(overrides):
    p = {
        "host": os.environ.get("PGHOST", ""),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", ""),
        "dbname": os.environ.get("PGDATABASE", ""),
        "password": os.environ.get("PGPASSWORD"),
        "application_name": os.environ.get("PGAPPNAME", ""),
        "connect_timeout": os.environ.get("PGCONNECT_TIMEOUT", "10"),
    }
    p.update({k: v for k, v in overrides.items() if v is not None})
    if not p["user"]:
        p["user"] = getpass.getuser()
    if not p["dbname"]:
        p["dbname"] = p["user"]
    if not p["host"]:
        p["host"] = "/var/run/postgresql"
    # libpq takes the first of a comma-separated list; so do we
    p["host"] = p["host"].split(",")[0]
    p["port"] = str(p["port"]).split(",")[0] or "5432"
    return p


def _pgpass(p):
    path = os.environ.get("PGPASSFILE") or os.path.expanduser("~/.pgpass")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    host = "localhost" if p["host"].startswith("/") else p["host"]
    for line in lines:
        if not line or line.startswith("#"):
            continue
        fields, cur, esc = [], "", False
        for ch in line:
            if esc:
                cur += ch
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == ":":
                fields.append(cur)
                cur = ""
            else:
                cur += ch
        fields.append(cur)
        if len(fields) != 5:
            continue
        want = [host, p["port"], p["dbname"], p["user"]]
        if all(f == "*" or f == w for f, w in zip(fields[:4], want)):
            return fields[4]
    return None


class Connection:
    def __init__(self, **overrides):
        self.params = _env_params(overrides)
        mode = os.environ.get("PGSSLMODE", "prefer")
        if mode in ("require", "verify-ca", "verify-full"):
            raise Error({"C": "08000", "M": "PGSSLMODE=%s: this client has no SSL" % mode})
        self.backend_pid = None
        self.server_params = {}
        self._buf = b""
        self._connect()

    # -- transport -------------------------------------------------------
    def _connect(self):
        p = self.params
        timeout = float(p["connect_timeout"] or 10) or None
        if p["host"].startswith("/") or p["host"].startswith("@"):
            path = "%s/.s.PGSQL.%s" % (p["host"], p["port"])
            if path.startswith("@"):           # Linux abstract namespace, as libpq
                path = "\0" + path[1:]
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(path)
        else:
            sock = socket.create_connection((p["host"], int(p["port"])), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.sock.settimeout(None)
        startup = {"user": p["user"], "database": p["dbname"], "client_encoding": "UTF8"}
        if p["application_name"]:
            startup["application_name"] = p["application_name"]
        body = struct.pack("!i", 196608)
        for k, v in startup.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self._send(struct.pack("!i", len(body) + 4) + body)
        self._authenticate()
        while True:
            t, data = self._read()
            if t == b"S":
                k, v = data.split(b"\0")[:2]
                self.server_params[k.decode()] = v.decode()
            elif t == b"K":
                self.backend_pid = struct.unpack("!i", data[:4])[0]
            elif t == b"Z":
                return
            elif t == b"E":
                raise Error(self._fields(data))
            elif t == b"N":
                pass

    def set_timeout(self, seconds):
        self.sock.settimeout(seconds)

    def _send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionLost(str(e))

    def _msg(self, t, body=b""):
        self._send(t + struct.pack("!i", len(body) + 4) + body)

    def _recv_exact(self, n):
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise
            except OSError as e:
                raise ConnectionLost(str(e))
            if not chunk:
                raise ConnectionLost("server closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read(self):
        head = self._recv_exact(5)
        t = head[:1]
        n = struct.unpack("!i", head[1:])[0]
        return t, self._recv_exact(n - 4)

    @staticmethod
    def _fields(data):
        out = {}
        for part in data.split(b"\0"):
            if part:
                out[chr(part[0])] = part[1:].decode("utf-8", "replace")
        return out

    # -- authentication --------------------------------------------------
    def _password(self):
        pw = self.params["password"]
        if pw is None:
            pw = _pgpass(self.params)
        if pw is None:
            raise Error({"C": "28P01", "M": "the server asks for a password and none is set (PGPASSWORD, ~/.pgpass)"})
        return pw

    def _authenticate(self):
        while True:
            t, data = self._read()
            if t == b"E":
                raise Error(self._fields(data))
            if t != b"R":
                raise Error({"C": "08P01", "M": "unexpected message %r during authentication" % t})
            code = struct.unpack("!i", data[:4])[0]
            if code == 0:
                return
            if code == 3:
                self._msg(b"p", self._password().encode() + b"\0")
            elif code == 5:
                salt = data[4:8]
                inner = hashlib.md5((self._password() + self.params["user"]).encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + salt).hexdigest()
                self._msg(b"p", b"md5" + outer.encode() + b"\0")
            elif code == 10:
                mechs = data[4:].split(b"\0")
                if b"SCRAM-SHA-256" not in mechs:
                    raise Error({"C": "08P01", "M": "no supported SASL mechanism: %r" % mechs})
                self._scram()
                return
            else:
                raise Error({"C": "08P01", "M": "unsupported authentication method %d" % code})

    def _scram(self):
        pw = self._password().encode()
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = "n=,r=" + nonce
        first = ("n,," + first_bare).encode()
        self._msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
        t, data = self._read()
        if t == b"E":
            raise Error(self._fields(data))
        server_first = data[4:].decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac("sha256", pw, salt, iters)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored = hashlib.sha256(client_key).digest()
        final_bare = "c=biws,r=" + attrs["r"]
        auth = (first_bare + "," + server_first + "," + final_bare).encode()
        sig = hmac.new(stored, auth, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self._msg(b"p", (final_bare + ",p=" + base64.b64encode(proof).decode()).encode())
        while True:
            t, data = self._read()
            if t == b"E":
                raise Error(self._fields(data))
            if t == b"R" and struct.unpack("!i", data[:4])[0] == 0:
                return

    # -- queries ---------------------------------------------------------
    def query(self, sql):
        """Runs one simple query; never raises for SQL errors (see Result.error)."""
        self._msg(b"Q", sql.encode() + b"\0")
        res = Result()
        while True:
            t, data = self._read()
            if t == b"T":
                n = struct.unpack("!h", data[:2])[0]
                pos, cols = 2, []
                for _ in range(n):
                    end = data.index(b"\0", pos)
                    cols.append(data[pos:end].decode())
                    pos = end + 1 + 18
                res.columns, res.rows = cols, []
            elif t == b"D":
                n = struct.unpack("!h", data[:2])[0]
                pos, row = 2, []
                for _ in range(n):
                    ln = struct.unpack("!i", data[pos:pos + 4])[0]
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(data[pos:pos + ln].decode())
                        pos += ln
                res.rows.append(row)
            elif t == b"C":
                res.tags.append(data.rstrip(b"\0").decode())
            elif t == b"E":
                res.error = self._fields(data)
                if res.error.get("S") in ("FATAL", "PANIC"):
                    raise ConnectionLost("%s: %s" % (res.error.get("S"), res.error.get("M")))
            elif t == b"N":
                res.notices.append(self._fields(data))
            elif t == b"Z":
                res.status = data[:1].decode()
                return res
            elif t in (b"I", b"S", b"A", b"K"):
                pass
            elif t == b"G" or t == b"H":
                raise Error({"C": "0A000", "M": "COPY is not supported by this client"})

    def close(self):
        try:
            self._msg(b"X")
        except ConnectionLost:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
