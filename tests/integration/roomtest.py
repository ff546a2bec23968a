"""roomtest.py - shared harness for the roomd process-level tests.

Each tests/integration/NN-area-case.py imports this module, starts its own
roomd on a kernel-chosen loopback port with a generated config, talks to it
over raw sockets (or drives roomc), and asserts exact bytes (SPEC §2.1/§2.2).
Every wait is bounded; the bounds scale for sanitizer builds. Standard library
only.

Environment: ROOMD, ROOMC (paths of the binaries), ROOMD_BUILD_TYPE
(RelWithDebInfo, Asan, Tsan, ...: selects the timeout factor).

A test reads:

    with Daemon(limits={"max_message": 64}, features={"room_creation": False},
                rooms={"lobby": {"topic": "hi"}}) as d:   # SIGTERM + exit 0 on leaving
        c = d.connect("client1")                           # a raw Conn
        ref, join_id, ip, port = c.join("room1", "client1")   # exact JOINED + announcement
        c.chat(ref, join_id, "client1", "hello")
        c.expect(chat_frame(ref, "client1", "hello"))      # exact bytes or a diff
        c.expect_error(3)  /  c.expect_nothing()  /  c.expect_closed()  /  c.ping()
        o = d.connect("other", source="127.0.0.2")        # from a second client address
        c1, c2, ref, port, id1, id2 = d.two_members()      # client1, client2 in room1
    run(main)                                               # time bound, exit status

Roomc(port, name) drives roomc through pipes (stdin, stdout, stderr).
"""

import collections
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

# ---- configuration ---------------------------------------------------------

BUILD_TYPE = os.environ.get("ROOMD_BUILD_TYPE", "")


def _factor(build_type):
    b = build_type.lower()
    if "tsan" in b:
        return 8
    if "asan" in b or "ubsan" in b or "msan" in b:
        return 4
    return 1


FACTOR = _factor(BUILD_TYPE)
TIMEOUT = 2.0 * FACTOR        # bound on anything that must arrive
QUIET = 0.25 * min(FACTOR, 4)  # how long "nothing arrives" is watched
HOST = "127.0.0.1"
SERVER_ID = "test-id"
TEST_BOUND = min(60 * FACTOR, 280)   # whole-test bound (ctest kills at 300)

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
    "LeakSanitizer",
)

_HERE = os.path.dirname(os.path.abspath(__file__))
_SRC = os.path.dirname(os.path.dirname(_HERE))


def _binary(var, rel):
    path = os.environ.get(var)
    if path:
        return path
    # Convenience for a hand run from the source tree: the usual build dirs.
    for d in ("build", "build/release", "build/debug"):
        guess = os.path.join(_SRC, d, rel)
        if os.path.isfile(guess):
            return guess
    return os.path.join(_SRC, "build", rel)


def roomd_path():
    return _binary("ROOMD", "server/roomd")


def roomc_path():
    return _binary("ROOMC", "client/roomc")


# ---- failures --------------------------------------------------------------

class TestFailure(AssertionError):
    pass


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def show(data, limit=1500):
    """Readable repr of bytes, truncated."""
    if isinstance(data, str):
        data = data.encode()
    r = repr(bytes(data))
    if len(r) > limit:
        r = r[:limit] + "...(%d bytes in all)" % len(data)
    return r


def _b(x):
    if isinstance(x, bytes):
        return x
    if isinstance(x, int):
        return str(x).encode()
    return str(x).encode("utf-8")


# ---- wire formats (SPEC §2.1, §2.2) ------------------------------------------

def helo_req(text):
    return b"HELO " + _b(text) + b"\n"


def helo_reply(text, port, ip=HOST, server_id=SERVER_ID):
    return (b"HELO " + _b(text) + b"\nIP:" + _b(ip) + b"\nPort:" + _b(port) +
            b"\nStudentID:" + _b(server_id) + b"\n")


def join_req(room, name):
    return (b"JOIN_CHATROOM: " + _b(room) + b"\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: " +
            _b(name) + b"\n")


def joined_reply(room, port, ref, join_id, ip=HOST):
    return (b"JOINED_CHATROOM: " + _b(room) + b"\nSERVER_IP: " + _b(ip) + b"\nPORT: " +
            _b(port) + b"\nROOM_REF: " + _b(ref) + b"\nJOIN_ID: " + _b(join_id) + b"\n")


def leave_req(ref, join_id, name):
    return (b"LEAVE_CHATROOM: " + _b(ref) + b"\nJOIN_ID: " + _b(join_id) +
            b"\nCLIENT_NAME: " + _b(name) + b"\n")


def left_reply(ref, join_id):
    return b"LEFT_CHATROOM: " + _b(ref) + b"\nJOIN_ID: " + _b(join_id) + b"\n"


def disconnect_req(name):
    return b"DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: " + _b(name) + b"\n"


def chat_req(ref, join_id, name, text):
    return (b"CHAT: " + _b(ref) + b"\nJOIN_ID: " + _b(join_id) + b"\nCLIENT_NAME: " +
            _b(name) + b"\nMESSAGE: " + _b(text) + b"\n\n")


def chat_frame(ref, name, text):
    return b"CHAT: " + _b(ref) + b"\nCLIENT_NAME: " + _b(name) + b"\nMESSAGE: " + _b(text) + b"\n\n"


def joined_text(name):
    return _b(name) + b" has joined this chatroom."


def left_text(name):
    return _b(name) + b" has left this chatroom."


def join_announce(ref, name):
    return chat_frame(ref, name, joined_text(name))


def leave_announce(ref, name):
    return chat_frame(ref, name, left_text(name))


def attach_req(ref, join_id, name):
    return (b"ATTACH_CHATROOM: " + _b(ref) + b"\nJOIN_ID: " + _b(join_id) +
            b"\nCLIENT_NAME: " + _b(name) + b"\n")


def attached_reply(ref, join_id):
    return b"ATTACHED_CHATROOM: " + _b(ref) + b"\nJOIN_ID: " + _b(join_id) + b"\n"


ERROR_RE = re.compile(rb"\AERROR_CODE: (\d+)\nERROR_DESCRIPTION: (\S[^\n]*)\n\Z")
JOINED_RE_TMPL = (rb"\AJOINED_CHATROOM: %s\nSERVER_IP: 127\.0\.0\.1\nPORT: ([1-9]\d*)\n"
                  rb"ROOM_REF: ([1-9]\d*)\nJOIN_ID: ([1-9]\d*)\n\Z")

# Reply heads and their number of lines (CHAT: up to the blank line).
FRAME_HEADS = (
    (b"JOINED_CHATROOM:", "JOINED", 5),
    (b"LEFT_CHATROOM:", "LEFT", 2),
    (b"ERROR_CODE:", "ERROR", 2),
    (b"ATTACHED_CHATROOM:", "ATTACHED", 2),
    (b"HELO ", "HELO", 4),
    (b"CHAT:", "CHAT", None),
    # extensions (docs/PROTOCOL.md, "Extensions"); lists are a head frame
    # and then one frame per entry
    (b"WELCOME:", "WELCOME", 4),
    (b"ROOMS:", "ROOMS", 2),
    (b"ROOM:", "ROOM", 5),
    (b"MEMBERS:", "MEMBERS", 2),
    (b"MEMBER:", "MEMBER", 1),
    (b"PRIVATE_SENT:", "PRIVATE_SENT", 2),
    (b"PRIVATE_FROM:", "PRIVATE_FROM", None),
    (b"HISTORY:", "HISTORY", 2),
    (b"ENTRY:", "ENTRY", None),
    (b"TOPIC_SET:", "TOPIC_SET", 2),
)
# The frames a plain CS4032 client may ever see.
CS4032_KINDS = ("JOINED", "LEFT", "ERROR", "HELO", "CHAT")


class Frame:
    """One reply frame: kind, raw bytes, and its KEY: value fields."""

    def __init__(self, kind, raw):
        self.kind = kind
        self.raw = raw
        self.fields = {}
        for line in raw.split(b"\n"):
            if b":" in line:
                k, v = line.split(b":", 1)
                self.fields.setdefault(k.decode("latin-1"), v.strip().decode("utf-8", "replace"))

    def __repr__(self):
        return "Frame(%s, %s)" % (self.kind, show(self.raw))


# ---- raw TCP client ----------------------------------------------------------

class Conn:
    """A raw TCP client. Reads are bounded; every mismatch fails with what arrived."""

    def __init__(self, port, host=HOST, label=None, daemon=None, nodelay=True,
                 rcvbuf=None, linger0=False, source=None):
        self.port = port
        self.host = host  # "::1" (any IPv6 literal) connects over IPv6
        self.label = label or "conn:%d" % port
        self.daemon = daemon
        self.buf = b""
        self.eof = False
        self.reset = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if linger0:
            import struct
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.settimeout(TIMEOUT)
        if source:
            # Another loopback source address (127.0.0.2, ...): a second
            # client address for the per-address rules.
            self.sock.bind((source, 0))
        try:
            self.sock.connect((host, port))
        except OSError as e:
            self.sock.close()
            fail("%s: cannot connect to %s:%d: %s" % (self.label, host, port, e))

    # -- sending
    def send(self, data):
        data = _b(data)
        try:
            self.sock.sendall(data)
        except OSError as e:
            fail("%s: send of %s failed: %s" % (self.label, show(data, 200), e))

    def send_split(self, data, delay=0.001):
        """Send one byte per segment (TCP_NODELAY is on), with a short pause."""
        for i in range(len(data)):
            self.send(data[i:i + 1])
            time.sleep(delay)

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving
    # What a read raises when the peer reset the connection, and when
    # nothing is there after all (a TLS connection adds its own: tlstest).
    RESET_ERRORS = (ConnectionResetError,)
    WAIT_ERRORS = (socket.timeout,)

    def _pending(self):
        """Bytes already received but not seen by select() (TLS)."""
        return 0

    def _read_some(self, deadline):
        """Wait until bytes or EOF arrive (True) or the deadline passes (False)."""
        if self.eof:
            return False
        if self._pending() == 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            sel = selectors.DefaultSelector()
            try:
                sel.register(self.sock, selectors.EVENT_READ)
                if not sel.select(remaining):
                    return False
            finally:
                sel.close()
        try:
            data = self.sock.recv(65536)
        except self.RESET_ERRORS:
            self.eof = True
            self.reset = True
            return True
        except self.WAIT_ERRORS:
            return False
        if not data:
            self.eof = True
        else:
            self.buf += data
        return True

    def _gone(self):
        return "connection reset" if self.reset else "connection closed"

    def expect(self, exact, timeout=None, what=None):
        """Read until exactly these bytes arrived (they are consumed)."""
        exact = _b(exact)
        deadline = time.monotonic() + (timeout if timeout is not None else TIMEOUT)
        what = what or "reply"
        while True:
            n = min(len(self.buf), len(exact))
            if self.buf[:n] != exact[:n]:
                i = next(i for i in range(n) if self.buf[i] != exact[i])
                fail("%s: wrong %s (first difference at byte %d)\n  expected: %s\n  got:      %s"
                     % (self.label, what, i, show(exact), show(self.buf)))
            if len(self.buf) >= len(exact):
                self.buf = self.buf[len(exact):]
                return
            if self.eof:
                fail("%s: %s before the whole %s arrived\n  expected: %s\n  got:      %s"
                     % (self.label, self._gone(), what, show(exact), show(self.buf)))
            if not self._read_some(deadline):
                fail("%s: timed out waiting for %s\n  expected: %s\n  got:      %s"
                     % (self.label, what, show(exact), show(self.buf)))

    def read_until(self, delim, timeout=None, what="data"):
        """Read up to and including delim (consumed and returned)."""
        deadline = time.monotonic() + (timeout if timeout is not None else TIMEOUT)
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = self.buf[:i + len(delim)]
                self.buf = self.buf[i + len(delim):]
                return out
            if self.eof:
                fail("%s: %s while waiting for %s; got: %s"
                     % (self.label, self._gone(), what, show(self.buf)))
            if not self._read_some(deadline):
                fail("%s: timed out waiting for %s; got: %s" % (self.label, what, show(self.buf)))

    def expect_frame(self, timeout=None):
        """Read one reply frame, known by its head line."""
        deadline = time.monotonic() + (timeout if timeout is not None else TIMEOUT)
        head = self.read_until(b"\n", max(0.0, deadline - time.monotonic()), "a reply frame")
        for prefix, kind, nlines in FRAME_HEADS:
            if head.startswith(prefix):
                break
        else:
            fail("%s: unknown reply head %s (following: %s)" % (self.label, show(head), show(self.buf)))
        raw = head
        if nlines is None:
            raw += self.read_until(b"\n\n", max(0.0, deadline - time.monotonic()),
                                   "the end of a CHAT frame after " + show(head))
            if raw.startswith(b"CHAT:") and raw.endswith(b"\n\n\n"):
                fail("%s: CHAT frame with a blank line: %s" % (self.label, show(raw)))
        else:
            for _ in range(nlines - 1):
                raw += self.read_until(b"\n", max(0.0, deadline - time.monotonic()),
                                       "the rest of a %s frame after %s" % (kind, show(raw)))
        return Frame(kind, raw)

    def expect_error(self, code, timeout=None, context=""):
        """Read one frame; it must be ERROR_CODE: code with a non-empty description."""
        f = self.expect_frame(timeout)
        m = ERROR_RE.match(f.raw)
        ctx = (" (after %s)" % context) if context else ""
        if not m:
            fail("%s: expected ERROR_CODE: %d%s\n  got: %s" % (self.label, code, ctx, show(f.raw)))
        if int(m.group(1)) != code:
            fail("%s: expected ERROR_CODE: %d%s\n  got: %s" % (self.label, code, ctx, show(f.raw)))
        return m.group(2).decode("utf-8", "replace")

    def expect_chat(self, ref, name, text, timeout=None):
        self.expect(chat_frame(ref, name, text), timeout, "CHAT frame")

    def expect_unordered(self, frames, timeout=None, what="frames"):
        """Read len(frames) frames; together they must be exactly these
        (any order: e.g. traffic of two rooms, whose threads are not
        ordered with each other). Returns the raw frames in arrival order."""
        want = [_b(f) for f in frames]
        left = list(want)
        got = []
        deadline = time.monotonic() + (timeout if timeout is not None else TIMEOUT)
        while left:
            try:
                f = self.expect_frame(max(0.0, deadline - time.monotonic()))
            except TestFailure as e:
                fail("%s\n  while waiting for %s; arrived so far: %s\n  still missing: %s"
                     % (e, what, " | ".join(show(x) for x in got) or "nothing",
                        " | ".join(show(x) for x in left)))
            if f.raw not in left:
                fail("%s: unexpected frame while waiting for %s\n  got: %s\n  still expected: %s"
                     % (self.label, what, show(f.raw), " | ".join(show(x) for x in left)))
            left.remove(f.raw)
            got.append(f.raw)
        return got

    def expect_closed(self, timeout=None, allowed=()):
        """EOF (or reset) must come within the timeout. Bytes before it fail,
        unless they are whole frames listed in allowed (each at most once).
        Returns the list of allowed frames seen."""
        deadline = time.monotonic() + (timeout if timeout is not None else TIMEOUT)
        allowed = [_b(a) for a in allowed]
        seen = []
        while True:
            progress = True
            while progress and self.buf:
                progress = False
                for a in allowed:
                    if a not in seen and self.buf.startswith(a):
                        seen.append(a)
                        self.buf = self.buf[len(a):]
                        progress = True
                        break
            if self.buf and not any(a.startswith(self.buf) for a in allowed if a not in seen):
                fail("%s: expected the server to close the connection, but got %s"
                     % (self.label, show(self.buf)))
            if self.eof:
                if self.buf:
                    fail("%s: closed in the middle of %s" % (self.label, show(self.buf)))
                return seen
            if not self._read_some(deadline):
                fail("%s: expected the server to close the connection within %.1fs; still open"
                     " (pending: %s)" % (self.label, timeout or TIMEOUT, show(self.buf)))

    def expect_nothing(self, seconds=None):
        """No bytes (and no close) may arrive for this long."""
        deadline = time.monotonic() + (seconds if seconds is not None else QUIET)
        while time.monotonic() < deadline and not self.buf and not self.eof:
            self._read_some(deadline)
        if self.buf:
            fail("%s: expected nothing, but got %s" % (self.label, show(self.buf)))
        if self.eof:
            fail("%s: expected nothing, but the server %s" % (self.label,
                 "reset the connection" if self.reset else "closed the connection"))

    def collect(self, seconds):
        """Everything that arrives within seconds (consumed)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.eof:
            self._read_some(deadline)
        out, self.buf = self.buf, b""
        return out

    # -- protocol helpers
    def ping(self, text="ping"):
        """HELO round trip: proves the control connection is still served."""
        port = self.daemon.port if self.daemon else self.port
        self.send(helo_req(text))
        self.expect(helo_reply(text, port), what="HELO reply (liveness check)")

    def join(self, room, name, timeout=None):
        """JOIN; checks the exact JOINED reply (SERVER_IP: the address this
        connection reached, in its family) and the own join announcement.
        Returns (ref, join_id, room_ip, room_port)."""
        self.send(join_req(room, name))
        f = self.expect_frame(timeout)
        tmpl = JOINED_RE_TMPL.replace(rb"127\.0\.0\.1", re.escape(_b(self.host)))
        m = re.match(tmpl % re.escape(_b(room)), f.raw)
        if not m:
            fail("%s: JOIN %s as %s: expected a JOINED_CHATROOM reply of the SPEC form\n"
                 "  JOINED_CHATROOM: %s\\nSERVER_IP: %s\\nPORT: <n>\\nROOM_REF: <n>\\nJOIN_ID: <n>\\n\n"
                 "  got: %s" % (self.label, room, name, room, self.host, show(f.raw)))
        port, ref, jid = int(m.group(1)), int(m.group(2)), int(m.group(3))
        check(port < 65536, "%s: room port %d out of range" % (self.label, port))
        check(jid < 2 ** 31, "%s: JOIN_ID %d is not a 31-bit integer" % (self.label, jid))
        self.expect(join_announce(ref, name), timeout, "own join announcement in %s" % room)
        return ref, jid, self.host, port

    def chat(self, ref, join_id, name, text):
        self.send(chat_req(ref, join_id, name, text))

    def leave(self, ref, join_id, name):
        """LEAVE; checks LEFT and the own leave announcement."""
        self.send(leave_req(ref, join_id, name))
        self.expect(left_reply(ref, join_id), what="LEFT_CHATROOM reply")
        self.expect(leave_announce(ref, name), what="own leave announcement")


def expect_nothing_all(conns, seconds=None):
    """No bytes (and no close) on any of these connections for this long:
    one shared wait, then a short look at each."""
    time.sleep(seconds if seconds is not None else QUIET)
    for c in conns:
        c.expect_nothing(0.01)


# ---- the daemon --------------------------------------------------------------

def _ini_value(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


# Daemon.two_members(): two members of one room, as a tuple or by field.
TwoMembers = collections.namedtuple("TwoMembers", "a b ref port id_a id_b")


class Daemon:
    """Start roomd on a free loopback port with a generated config.

        with Daemon(limits={"max_message": 64}, features={"room_creation": False},
                    rooms={"lobby": {"topic": "hi"}}) as d:
            c = d.connect("alice")

    Leaving the block stops it with SIGTERM and asserts exit code 0 within
    2 s x FACTOR and a sanitizer-clean stderr."""

    LISTEN_RE = re.compile(r"control listening on (\S+):(\d+)")

    def __init__(self, server=None, limits=None, features=None, rooms=None,
                 args=(), start_timeout=None, extra_ini=""):
        # No "port" key: -p 0 on the command line picks the control port.
        self.server = {"bind": HOST, "room_port_min": 0, "room_port_max": 0,
                       "server_id": SERVER_ID, "log_level": "info"}
        self.server.update(server or {})
        self.limits = dict(limits or {})
        self.features = dict(features or {})
        # rooms: dict name -> dict of keys, or a list of names / (name, dict)
        if isinstance(rooms, dict):
            self.rooms = list(rooms.items())
        else:
            self.rooms = [(r, {}) if isinstance(r, str) else r for r in (rooms or [])]
        self.args = list(args)
        self.extra_ini = extra_ini
        self.start_timeout = start_timeout if start_timeout is not None else 10.0 * FACTOR
        self.proc = None
        self.port = None
        self.dir = None
        self.expect_gone = False
        self.finished = False
        self.conns = []

    def config_text(self):
        out = ["[server]"]
        out += ["%s = %s" % (k, _ini_value(v)) for k, v in self.server.items()]
        if self.limits:
            out += ["", "[limits]"] + ["%s = %s" % (k, _ini_value(v)) for k, v in self.limits.items()]
        if self.features:
            out += ["", "[features]"] + ["%s = %s" % (k, _ini_value(v)) for k, v in self.features.items()]
        for name, keys in self.rooms:
            out += ["", "[room:%s]" % name] + ["%s = %s" % (k, _ini_value(v)) for k, v in keys.items()]
        if self.extra_ini:
            out += ["", self.extra_ini]
        return "\n".join(out) + "\n"

    def start(self):
        binary = roomd_path()
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            fail("roomd binary not found or not executable: %r (set ROOMD)" % binary)
        self.dir = tempfile.mkdtemp(prefix="roomd-it-")
        self.conf = os.path.join(self.dir, "rooms.ini")
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        self.err_path = os.path.join(self.dir, "stderr.log")
        self.err_file = open(self.err_path, "wb")
        self.proc = subprocess.Popen([binary, "-p", "0", "-c", self.conf] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self.err_file,
                                     stderr=self.err_file, cwd=self.dir)
        deadline = time.monotonic() + self.start_timeout
        while True:
            m = self.LISTEN_RE.search(self.stderr())
            if m:
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                fail("roomd exited with code %s before listening; config:\n%s\nstderr:\n%s"
                     % (self.proc.returncode, self.config_text(), self.stderr()[-4000:]))
            if time.monotonic() > deadline:
                fail("roomd did not log 'control listening on HOST:PORT' within %.0fs; stderr:\n%s"
                     % (self.start_timeout, self.stderr()[-4000:]))
            time.sleep(0.02)

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, needle, since=0, timeout=None):
        """Wait until needle appears in roomd's stderr after offset since;
        returns that part of the log."""
        deadline = time.monotonic() + (timeout if timeout is not None else 2 * TIMEOUT)
        while time.monotonic() < deadline:
            text = self.stderr()[since:]
            if needle in text:
                return text
            time.sleep(0.02)
        fail("roomd did not log %r; its stderr since:\n%s" % (needle, self.stderr()[since:][-3000:]))

    def rewrite_config(self):
        """Write config_text() (after a change of the limits or rooms) over
        the daemon's config file."""
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def reload(self, needle):
        """Rewrite the config file, SIGHUP, and wait for needle in the log
        lines that follow; returns them."""
        mark = len(self.stderr())
        self.rewrite_config()
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_log(needle, mark)

    def sanitizer_report(self):
        text = self.stderr()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def assert_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            fail("roomd died (exit code %s); stderr:\n%s" % (rc, self.stderr()[-4000:]))
        rep = self.sanitizer_report()
        if rep:
            fail("sanitizer report in roomd's stderr:\n%s" % rep)

    def connect(self, label=None, **kw):
        c = Conn(self.port, label=label, daemon=self, **kw)
        self.conns.append(c)
        return c

    def two_members(self, name_a="client1", name_b="client2", room="room1",
                    label_a=None, label_b=None):
        """The opening many tests share: two control connections, labelled
        label_a and label_b (default: the names), join room as name_a (who
        creates it, when it is new) then name_b, each checked as join()
        does, and a sees b's join announcement. Returns a TwoMembers: a, b
        (the Conns), ref, port (the room's), id_a, id_b (the JOIN_IDs)."""
        a = self.connect(label_a or name_a)
        b = self.connect(label_b or name_b)
        ref, id_a, _, port = a.join(room, name_a)
        _, id_b, _, _ = b.join(room, name_b)
        a.expect(join_announce(ref, name_b))
        return TwoMembers(a, b, ref, port, id_a, id_b)

    def room_connect(self, port, label=None, **kw):
        """A Conn to a room port (host=... as for connect)."""
        c = Conn(port, label=label, daemon=self, **kw)
        self.conns.append(c)
        return c

    def _check_exit(self, rc, how):
        if rc != 0:
            fail("roomd %s: exit code %s, expected 0; stderr:\n%s" % (how, rc, self.stderr()[-4000:]))
        rep = self.sanitizer_report()
        if rep:
            fail("sanitizer report in roomd's stderr:\n%s" % rep)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the daemon; it must exit 0 within 2 s x FACTOR, sanitizer-clean."""
        timeout = timeout if timeout is not None else 2.0 * FACTOR
        rc = self.proc.poll()
        if rc is not None:
            self.finished = True
            fail("roomd was already gone before %s (exit code %s); stderr:\n%s"
                 % (signal.Signals(sig).name, rc, self.stderr()[-4000:]))
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            fail("roomd did not exit within %.1fs of %s; stderr:\n%s"
                 % (timeout, signal.Signals(sig).name, self.stderr()[-4000:]))
        self.finished = True
        self.exit_seconds = time.monotonic() - t0
        self._check_exit(rc, "after %s" % signal.Signals(sig).name)

    def wait_exit(self, timeout=None):
        """The daemon must exit on its own (KILL_SERVICE) with code 0."""
        timeout = timeout if timeout is not None else 2.0 * FACTOR
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            fail("roomd still running %.1fs after it was asked to exit; stderr:\n%s"
                 % (timeout, self.stderr()[-4000:]))
        self.finished = True
        self._check_exit(rc, "on its own")

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def cleanup(self):
        for c in self.conns:
            c.close()
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(2.0 * FACTOR)
            except subprocess.TimeoutExpired:
                self._kill()
        try:
            self.err_file.close()
        except Exception:
            pass
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and not self.finished:
                self.stop()
        except BaseException:
            self._dump()
            self.cleanup()
            raise
        if exc_type is not None:
            self._dump()
        self.cleanup()
        return False

    def _dump(self):
        if self.proc is None:
            return
        text = self.stderr()
        sys.stderr.write("---- roomd stderr (last 3000 chars) ----\n%s\n---- end roomd stderr ----\n"
                         % text[-3000:])


# ---- roomc driver -------------------------------------------------------------


def restart_while_stopped(roomc, d_old, start_daemon, lines, room="lobby"):
    """Stop roomc (SIGSTOP), stop d_old, start the daemon start_daemon()
    returns on the same port, and have a raw member bob join room and say
    lines there; then continue roomc. Returns (daemon, bob, ref, join id)."""
    os.kill(roomc.proc.pid, signal.SIGSTOP)
    try:
        d_old.stop()
        d = start_daemon().start()
        bob = d.connect("bob")
        ref, bid, _, _ = bob.join(room, "bob")
        for t in lines:
            bob.chat(ref, bid, "bob", t)
            bob.expect_chat(ref, "bob", t)
    finally:
        os.kill(roomc.proc.pid, signal.SIGCONT)
    return d, bob, ref, bid


class Roomc:
    """roomc with stdin/stdout/stderr as pipes (script mode, SPEC §3)."""

    def __init__(self, port, name, host=HOST, args=None, argv=None, shell=None):
        binary = roomc_path()
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            fail("roomc binary not found or not executable: %r (set ROOMC)" % binary)
        if shell is not None:
            cmd = shell
        else:
            cmd = argv if argv is not None else [binary, "-h", host, "-p", str(port), "-n", name]
            cmd = cmd + list(args or [])
        # Its own process group, so that a shell pipeline dies with it.
        self.proc = subprocess.Popen(cmd, shell=shell is not None, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stderr.fileno(), False)
        self.out = b""
        self.err = b""
        self.rc = None

    def write(self, text):
        try:
            self.proc.stdin.write(_b(text))
            self.proc.stdin.flush()
        except BrokenPipeError:
            fail("roomc closed its stdin early (exit code %s)\nstdout: %s\nstderr: %s"
                 % (self.proc.poll(), show(self.out), show(self.err)))

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def _pump(self, deadline):
        streams = []
        if not self.proc.stdout.closed:
            streams.append(self.proc.stdout)
        if not self.proc.stderr.closed:
            streams.append(self.proc.stderr)
        if not streams:
            time.sleep(max(0.0, min(0.02, deadline - time.monotonic())))
            return
        sel = selectors.DefaultSelector()
        for s in streams:
            sel.register(s, selectors.EVENT_READ)
        try:
            ready = sel.select(max(0.0, deadline - time.monotonic()))
        finally:
            sel.close()
        for key, _ in ready:
            s = key.fileobj
            try:
                data = os.read(s.fileno(), 65536)
            except BlockingIOError:
                continue
            if not data:
                s.close()
            elif s is self.proc.stdout:
                self.out += data
            else:
                self.err += data

    def text(self):
        return self.out.decode("utf-8", "replace")

    def wait_text(self, pattern, what, timeout=None):
        """Wait until the regular expression pattern (multi-line) matches
        roomc's stdout."""
        deadline = time.monotonic() + (timeout or 10 * TIMEOUT)
        rx = re.compile(pattern, re.M)
        while not rx.search(self.text()):
            if time.monotonic() > deadline:
                fail("roomc: %s did not appear; stdout: %s" % (what, show(self.out, 4000)))
            self._pump(min(deadline, time.monotonic() + 0.1))

    def errtext(self):
        return self.err.decode("utf-8", "replace")

    def expect_output(self, needle, timeout=None, stream="stdout"):
        """Wait until needle (str, or compiled regex) appears on stdout
        (stream="any": stdout or stderr). Returns the match or True."""
        deadline = time.monotonic() + (timeout if timeout is not None else TIMEOUT)
        while True:
            hay = self.text() if stream == "stdout" else self.text() + "\n" + self.errtext()
            if isinstance(needle, str):
                if needle in hay:
                    return True
            else:
                m = needle.search(hay)
                if m:
                    return m
            if time.monotonic() >= deadline:
                fail("roomc: %r did not appear on %s within %.1fs (exit code %s)\n"
                     "  stdout: %s\n  stderr: %s"
                     % (needle if isinstance(needle, str) else needle.pattern, stream,
                        timeout if timeout is not None else TIMEOUT, self.proc.poll(),
                        show(self.out, 3000), show(self.err, 3000)))
            self._pump(min(deadline, time.monotonic() + 0.1))

    def wait(self, timeout=None):
        """Wait for exit (bounded), collecting all output; returns the exit code."""
        deadline = time.monotonic() + (timeout if timeout is not None else 3.0 * FACTOR)
        while self.proc.poll() is None or not (self.proc.stdout.closed and self.proc.stderr.closed):
            if time.monotonic() >= deadline:
                self.kill()
                fail("roomc did not exit within %.1fs\n  stdout: %s\n  stderr: %s"
                     % (timeout if timeout is not None else 3.0 * FACTOR, show(self.out, 3000),
                        show(self.err, 3000)))
            self._pump(min(deadline, time.monotonic() + 0.1))
        self.rc = self.proc.returncode
        self.check_sanitizers()
        return self.rc

    def check_sanitizers(self):
        text = self.errtext()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                fail("sanitizer report in roomc's stderr:\n%s" % text[max(0, i - 200):i + 3000])

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.kill()
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except Exception:
                pass
        if exc_type is not None:
            sys.stderr.write("---- roomc stdout ----\n%s\n---- roomc stderr ----\n%s\n"
                             % (self.text()[-3000:], self.errtext()[-3000:]))
        return False

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)   # the group we created
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


# ---- running a test -------------------------------------------------------------

def run(fn, bound=None):
    """Run fn() under a whole-test time bound (TEST_BOUND seconds, or bound:
    at most 280, ctest kills at 300); exit 0 on pass, 1 on failure."""
    limit = min(int(bound), 280) if bound else TEST_BOUND
    name = os.path.basename(sys.argv[0])
    test_file = os.path.abspath(sys.argv[0])

    def on_alarm(signum, frame):
        raise TestFailure("test exceeded its time bound of %ds" % limit)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    try:
        fn()
    except TestFailure as e:
        signal.alarm(0)
        where = ""
        for fr in reversed(traceback.extract_tb(e.__traceback__)):
            if os.path.abspath(fr.filename) == test_file:
                where = " [%s:%d: %s]" % (name, fr.lineno, (fr.line or "").strip())
                break
        sys.stderr.write("FAIL %s%s\n%s\n" % (name, where, e))
        sys.stderr.flush()
        os._exit(1)
    except BaseException:
        signal.alarm(0)
        traceback.print_exc()
        sys.stderr.write("FAIL %s: unexpected exception\n" % name)
        sys.stderr.flush()
        os._exit(1)
    signal.alarm(0)
    print("PASS %s" % name)
    sys.stdout.flush()
    os._exit(0)


# ---- persistence (tests 26..29) ------------------------------------------------

HISTORY_ENTRY_RE = re.compile(rb"\AENTRY: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\nCLIENT_NAME: (\S[^\n]*)\n"
                              rb"MESSAGE: ([^\n]*)\n\n\Z")


def history_of(c, ref, join_id, name, timeout=None):
    """HISTORY of room ref as [(name, text), ...], oldest first; the head and
    every entry are checked for their exact form."""
    c.send(b"HISTORY: %d\nJOIN_ID: %d\nCLIENT_NAME: %s\n" % (ref, join_id, _b(name)))
    head = c.read_until(b"\n", timeout, "HISTORY head") + c.read_until(b"\n", timeout, "COUNT")
    m = re.match(rb"\AHISTORY: %d\nCOUNT: (\d+)\n\Z" % ref, head)
    check(m, "%s: bad HISTORY head %s" % (c.label, show(head)))
    out = []
    for _ in range(int(m.group(1))):
        f = c.expect_frame(timeout)
        e = HISTORY_ENTRY_RE.match(f.raw)
        check(e, "%s: bad history entry %s" % (c.label, show(f.raw)))
        out.append((e.group(2).decode(), e.group(3).decode("utf-8")))
    return out


def list_rooms(c, args=b"0"):
    """LIST_ROOMS (one page: at most 100 rooms; args b"OFFSET=n LIMIT=n
    DORMANT=1" for others) as [(name, ref, port, members, topic), ...]."""
    c.send(b"LIST_ROOMS: " + args + b"\n")
    f = c.expect_frame()
    check(f.kind == "ROOMS", "%s: expected ROOMS, got %s" % (c.label, show(f.raw)))
    out = []
    for _ in range(int(f.fields["ROOMS"])):
        e = c.expect_frame()
        check(e.kind == "ROOM", "%s: expected a ROOM entry, got %s" % (c.label, show(e.raw)))
        out.append((e.fields["ROOM"], int(e.fields["ROOM_REF"]), int(e.fields["PORT"]),
                    int(e.fields["MEMBERS"]), e.fields["TOPIC"]))
    return out


class DataDir:
    """A temporary directory for databases that outlives each Daemon (whose
    own directory goes with it), removed at the end of the with block."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="roomd-db-")
        return self

    def __exit__(self, *exc):
        for root, dirs, _ in os.walk(self.path):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(self.path, 0o755)
        shutil.rmtree(self.path, ignore_errors=True)
        return False

    def file(self, name):
        return os.path.join(self.path, name)


def roomd_once(config_text, workdir, args=(), as_nobody=False, timeout=None):
    """Run roomd on config_text (written to workdir/rooms.ini) until it exits
    or listens; a start-up failure is expected. Returns (exit code or None
    if it started listening and was stopped, stderr text). With as_nobody
    and running as root, roomd runs as user nobody (setpriv), so that file
    modes apply to it."""
    timeout = timeout if timeout is not None else 10.0 * FACTOR
    conf = os.path.join(workdir, "rooms.ini")
    with open(conf, "w") as f:
        f.write(config_text)
    os.chmod(conf, 0o644)
    cmd = [roomd_path(), "-p", "0", "-c", conf] + list(args)
    if as_nobody and os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] + cmd
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=workdir)
    out = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while True:
        try:
            chunk = proc.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            out += chunk
        if b"control listening on" in out:
            proc.send_signal(signal.SIGTERM)
            proc.wait(2.0 * FACTOR)
            proc.stdout.close()
            return None, out.decode("utf-8", "replace")
        if proc.poll() is not None and not chunk:
            rest = proc.stdout.read() or b""
            proc.stdout.close()
            text = (out + rest).decode("utf-8", "replace")
            for marker in SANITIZER_MARKERS:
                check(marker not in text, "sanitizer report in roomd's output:\n%s" % text[-4000:])
            return proc.returncode, text
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(5)
            proc.stdout.close()
            fail("roomd neither exited nor listened within %.0fs; output:\n%s" % (timeout, out[-3000:]))
        time.sleep(0.02)
