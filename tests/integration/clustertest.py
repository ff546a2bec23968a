"""clustertest.py - the harness of the cluster process tests (issue 15).

A test starts its own redis-server (Redis) on a free loopback port, never
6379, with AOF on (--appendonly yes --dir <its own temporary directory>
--save ''), and three roomd nodes (Node) whose configs carry

    [cluster]
    redis = 127.0.0.1:<the Redis port>
    node_id = n1            (n2, n3)

It talks to them with roomtest's Conn and checks delivery exactly: every
member's room traffic is read as a list of (sender, text) pairs (Member),
and the lists of members on different nodes are compared whole. Every
wait is bounded; the bounds scale with roomtest.FACTOR for sanitizer
builds. Standard library only.

    with Cluster() as cl:                       # Redis + nodes n1..n3
        a = cl.member(0, "alice", "room1")      # joined on n1 (plain)
        b = cl.member(1, "bob", "room1", attach=True)   # on n2, attached
        ...
        cl.nodes[2].kill9(); cl.nodes[2].restart()
        cl.redis.kill9(); cl.redis.restart()

Environment: as roomtest (ROOMD, ROOMD_BUILD_TYPE), plus REDIS_SERVER (the
redis-server binary; default: the one on PATH).

Ownership: everything here runs on the test's one thread.
"""

import os
import re
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import (Daemon, FACTOR, HOST, TIMEOUT, _b, attach_req,  # noqa: E402
                      attached_reply, chat_req, check, fail, joined_text, left_text, roomd_path,
                      show)

# The bound within which the survivors announce a killed node's members as
# left (issue 15's "a few seconds"; the contract of these tests is 5 s). A
# sanitizer build's daemon runs slower, not its clock: a little slack only.
LEAVE_BOUND = 5.0 if FACTOR == 1 else 5.0 + TIMEOUT
# How long a node may take to serve again after Redis came back (reconnect
# with back-off).
RESUME_BOUND = 15.0 * min(FACTOR, 2)
NODE_IDS = ("n1", "n2", "n3")


def free_port():
    """A loopback port nobody listens on now (the kernel's choice; never 6379)."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port != 6379:
            return port


# ---- Redis ------------------------------------------------------------------

def _resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = _b(a)
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Redis:
    """A redis-server of the test's own: free loopback port, AOF on, its own
    directory; kill9() and restart() keep the port and the directory."""

    def __init__(self):
        self.binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
        if not self.binary:
            fail("redis-server not found (scripts/setup.sh installs it; or set REDIS_SERVER)")
        self.dir = tempfile.mkdtemp(prefix="roomd-redis-")
        self.port = None
        self.proc = None
        self.starts = 0

    def start(self):
        """Start on a free port (first start) or on the same port (restart)."""
        for attempt in range(5):
            if self.port is None or (attempt and self.starts == 0):
                self.port = free_port()
            if self._spawn():
                self.starts += 1
                return self
            if self.starts:
                break   # a restart must get its old port back
        fail("redis-server did not start on 127.0.0.1:%s; its log:\n%s"
             % (self.port, self.log()[-3000:]))

    def _spawn(self):
        self.log_path = os.path.join(self.dir, "redis.%d.log" % self.starts)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", HOST, "--appendonly", "yes",
             "--dir", self.dir, "--save", "", "--daemonize", "no", "--logfile", self.log_path,
             "--protected-mode", "yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10.0 * FACTOR
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.command("PING") == b"+PONG":
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        self._kill()
        return False

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    def command(self, *args, timeout=None):
        """One command on a connection of its own; returns the raw reply
        (simple and error replies without their CRLF, a bulk reply's bytes)."""
        with socket.create_connection((HOST, self.port), timeout=timeout or TIMEOUT) as s:
            s.sendall(_resp(*args))
            buf = b""
            while True:
                got = s.recv(65536)
                if not got:
                    raise OSError("redis closed the connection")
                buf += got
                done = self._reply(buf)
                if done is not None:
                    return done

    @staticmethod
    def _reply(buf):
        i = buf.find(b"\r\n")
        if i < 0:
            return None
        if buf[:1] == b"$":
            n = int(buf[1:i])
            if n < 0:
                return b""
            if len(buf) < i + 2 + n + 2:
                return None
            return buf[i + 2:i + 2 + n]
        if buf[:1] in (b"+", b"-", b":"):
            return buf[:i]
        # arrays are not needed by the tests: the whole buffer once it pauses
        return buf

    def commandstats(self):
        """INFO commandstats as {command: calls}."""
        text = self.command("INFO", "commandstats").decode()
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"^cmdstat_(\S+?):calls=(\d+)", text, re.M)}

    def kill9(self):
        self.proc.kill()
        self.proc.wait(5)

    def restart(self):
        """Start again on the same port and directory (the AOF is read back)."""
        if self.proc and self.proc.poll() is None:
            fail("Redis.restart: redis-server is still running")
        return self.start()

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5.0 * FACTOR)
            except subprocess.TimeoutExpired:
                self._kill()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- a roomd node -------------------------------------------------------------

class Node(Daemon):
    """roomd with a [cluster] section. Its directory and (after the first
    start) its control port stay across stop()/kill9() and restart(): a
    restart is the same node on the same config."""

    def __init__(self, node_id, redis, **kw):
        extra = "[cluster]\nredis = %s:%d\nnode_id = %s\n" % (HOST, redis.port, node_id)
        if kw.get("extra_ini"):
            extra = kw.pop("extra_ini") + "\n\n" + extra
        super().__init__(extra_ini=extra, **kw)
        self.node_id = node_id
        self.label = node_id
        self.node_dir = tempfile.mkdtemp(prefix="roomd-%s-" % node_id)
        self.starts = 0

    def start(self):
        binary = roomd_path()
        if not os.path.isfile(binary) or not os.access(binary, os.X_OK):
            fail("roomd binary not found or not executable: %r (set ROOMD)" % binary)
        self.dir = self.node_dir
        self.conf = os.path.join(self.dir, "rooms.ini")
        with open(self.conf, "w") as f:
            f.write(self.config_text())
        self.err_path = os.path.join(self.dir, "stderr.%d.log" % self.starts)
        self.err_file = open(self.err_path, "wb")
        self.starts += 1
        self.finished = False
        self.proc = subprocess.Popen([binary, "-p", str(self.port or 0), "-c", self.conf] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self.err_file,
                                     stderr=self.err_file, cwd=self.dir)
        deadline = time.monotonic() + self.start_timeout
        while True:
            m = self.LISTEN_RE.search(self.stderr())
            if m:
                check(self.port in (None, int(m.group(2))),
                      "%s restarted on port %s, not its old %s" % (self.node_id, m.group(2), self.port))
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                fail("%s: roomd exited with code %s before listening; config:\n%s\nstderr:\n%s"
                     % (self.node_id, self.proc.returncode, self.config_text(), self.stderr()[-4000:]))
            if time.monotonic() > deadline:
                fail("%s: roomd did not log 'control listening on HOST:PORT' within %.0fs; stderr:\n%s"
                     % (self.node_id, self.start_timeout, self.stderr()[-4000:]))
            time.sleep(0.02)

    def kill9(self):
        """SIGKILL: no goodbye to anyone (its clients see their connections
        close; what they had received stays readable)."""
        self.proc.kill()
        self.proc.wait(5)
        self.finished = True
        self.err_file.close()

    def stop(self, sig=signal.SIGTERM, timeout=None):
        super().stop(sig, timeout)
        self.err_file.close()

    def restart(self):
        check(self.proc.poll() is not None, "%s: restart while still running" % self.node_id)
        return self.start()

    def cleanup(self):
        self.dir = None     # Daemon.cleanup would remove it: the node's own, below
        super().cleanup()
        shutil.rmtree(self.node_dir, ignore_errors=True)

    def _dump(self):
        if self.proc is None:
            return
        sys.stderr.write("---- %s stderr (last 3000 chars) ----\n%s\n---- end %s stderr ----\n"
                         % (self.node_id, self.stderr()[-3000:], self.node_id))


# ---- members and their traffic ----------------------------------------------------

CHAT_RE = re.compile(rb"\ACHAT: (\d+)\nCLIENT_NAME: ([^\n]*)\nMESSAGE: ([^\n]*)\n\n")
ERROR_FRAME_RE = re.compile(rb"\AERROR_CODE: (\d+)\nERROR_DESCRIPTION: ([^\n]*)\n")
LEFT_FRAME_RE = re.compile(rb"\ALEFT_CHATROOM: (\d+)\nJOIN_ID: (\d+)\n")
_HEADS = ((b"CHAT: ", b"\n\n"), (b"ERROR_CODE: ", None), (b"LEFT_CHATROOM: ", None))


def _incomplete(buf):
    """buf is the start of a frame Member.parse knows, not all there yet."""
    for head, end in _HEADS:
        if head.startswith(buf[:len(head)]):
            if len(buf) <= len(head):
                return True
            return (end not in buf) if end else buf.count(b"\n") < 2
    return False


class Member:
    """One membership: its node, control Conn, room Conn when attached, and
    everything its connections brought, in order (control connection
    first): ("chat", sender, text) for every CHAT of its room, ("error",
    code, description), ("left", ref, join id); its own leave announcement
    last (chats())."""

    def __init__(self, node, name, room, conn=None, attach=False, label=None):
        self.node = node
        self.name = name
        self.room = room
        self.label = label or "%s@%s" % (name, node.node_id)
        self.ctl = conn or node.connect(self.label)
        self.rc = None
        self.ref, self.jid, _, self.port = self.ctl.join(room, name)
        # Members sharing a control connection: parse() hands each CHAT to
        # the member of its room.
        if not hasattr(self.ctl, "members_by_ref"):
            self.ctl.members_by_ref = {}
        self.ctl.members_by_ref[self.ref] = self
        self.events = [("chat", name, joined_text(name).decode())]
        self.own_leave = []
        self.sent = 0
        if attach:
            self.attach()

    def attach(self):
        """ATTACH on the node's room port. Traffic relayed before the
        hand-off stays on the control connection, later traffic comes on the
        room connection: parse() reads both, so the member's one stream is
        checked whole (nothing lost or doubled at the hand-off)."""
        self.rc = self.node.room_connect(self.port, self.label + "/room")
        self.rc.send(attach_req(self.ref, self.jid, self.name))
        self.rc.expect(attached_reply(self.ref, self.jid), what="ATTACHED reply")

    @property
    def conns(self):
        out = [self.ctl]
        if self.rc:
            out.append(self.rc)
        return out

    def chat(self, text):
        c = self.rc or self.ctl
        c.send(chat_req(self.ref, self.jid, self.name, text))
        self.sent += 1

    def parse(self):
        """Move the complete frames of its buffers into events; a CHAT of
        another room, or any other frame, fails."""
        for c in self.conns:
            while c.buf:
                m = CHAT_RE.match(c.buf)
                if m:
                    to = self if c is self.rc else c.members_by_ref.get(int(m.group(1)))
                    check(to is not None and int(m.group(1)) == to.ref,
                          "%s: CHAT of ref %s, not a room of this connection: %s"
                          % (self.label, m.group(1).decode(), show(m.group(0))))
                    frame = ("chat", m.group(2).decode(), m.group(3).decode())
                    if frame[1:] == (to.name, left_text(to.name).decode()):
                        # Its own leave copy comes on the control connection,
                        # perhaps before what the room connection still
                        # carries from before the leave: it ends the stream.
                        to.own_leave.append(frame)
                    else:
                        to.events.append(frame)
                    c.buf = c.buf[m.end():]
                    continue
                m = ERROR_FRAME_RE.match(c.buf) or LEFT_FRAME_RE.match(c.buf)
                if m:
                    kind = "error" if c.buf.startswith(b"ERROR") else "left"
                    self.events.append((kind, int(m.group(1)), m.group(2).decode()))
                    c.buf = c.buf[m.end():]
                    continue
                if _incomplete(c.buf):
                    break
                fail("%s: unexpected bytes in the room traffic: %s" % (self.label, show(c.buf)))

    def read_available(self):
        """Take what the kernel holds for each connection, control first:
        on loopback a frame written before the ATTACHED reply is in the
        control socket before the room socket has anything, so reading in
        this order keeps the member's one stream in order."""
        for c in self.conns:
            while not c.eof and select.select([c.sock], [], [], 0)[0]:
                try:
                    data = c.sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    c.eof = True
                    break
                c.buf += data
        self.parse()

    def chats(self):
        return [(a, b) for k, a, b in self.events + self.own_leave if k == "chat"]

    def errors(self):
        return [(a, b) for k, a, b in self.events if k == "error"]


def pump(members, until, timeout, what):
    """Read every member's connections until until() is true (then return)
    or timeout seconds pass (fail, saying what was awaited)."""
    deadline = time.monotonic() + timeout
    conns = {}
    for m in members:
        for c in m.conns:
            conns[c.sock] = (m, c)
    for m in members:
        m.parse()
    while True:
        if until():
            return
        left = deadline - time.monotonic()
        if left <= 0:
            fail("timed out after %.1fs waiting for %s; last events:\n%s"
                 % (timeout, what, "\n".join("  %s: %s" % (m.label, m.events[-4:]) for m in members)))
        sel = selectors.DefaultSelector()
        for s, (m, c) in conns.items():
            if not c.eof:
                sel.register(s, selectors.EVENT_READ)
        if not sel.get_map():
            sel.close()
            time.sleep(min(left, 0.05))
            continue
        ready = sel.select(min(left, 0.1))
        sel.close()
        for key, _ in ready:
            conns[key.fileobj][0].read_available()


def settle(members, seconds):
    """Read whatever arrives for this long."""
    end = time.monotonic() + seconds
    pump(members, lambda: time.monotonic() >= end, seconds + 1.0, "the end of a quiet period")


def payload(name, n):
    return "%s#%d" % (name, n)


def check_senders(stream, senders, what, complete=True):
    """Each sender's payloads appear in order 0, 1, 2, ... without a gap or a
    repeat, and (complete) all of the m.sent it sent."""
    for m in senders:
        seqs = [int(t.rsplit("#", 1)[1]) for n, t in stream if n == m.name and "#" in t]
        check(seqs == list(range(len(seqs))),
              "%s: %s's messages out of order, repeated or with a gap: %s" % (what, m.label, seqs))
        if complete:
            check(len(seqs) == m.sent, "%s: %s sent %d messages, %d arrived"
                  % (what, m.label, m.sent, len(seqs)))


class Cluster:
    """Redis and three nodes n1..n3 (node options as Daemon's: limits,
    features, rooms, server). Leaving the block stops every node still
    running (SIGTERM, exit 0, sanitizer-clean) and then Redis."""

    def __init__(self, n=3, **node_kw):
        self.n = n
        self.node_kw = node_kw
        self.redis = None
        self.nodes = []

    def __enter__(self):
        try:
            self.redis = Redis().start()
            for i in range(self.n):
                self.nodes.append(Node(NODE_IDS[i], self.redis, **self.node_kw))
                self.nodes[-1].start()
            return self
        except BaseException:
            self._cleanup()
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                for node in self.nodes:
                    if node.proc and node.proc.poll() is None:
                        node.stop()
        except BaseException:
            self._dump()
            self._cleanup()
            raise
        if exc_type is not None:
            self._dump()
        self._cleanup()
        return False

    def _dump(self):
        for node in self.nodes:
            node._dump()
        if self.redis:
            sys.stderr.write("---- redis log (last 1500 chars) ----\n%s\n" % self.redis.log()[-1500:])

    def _cleanup(self):
        for node in self.nodes:
            node.cleanup()
        if self.redis:
            self.redis.cleanup()

    def member(self, i, name, room, attach=False, conn=None):
        return Member(self.nodes[i], name, room, conn=conn, attach=attach)

    def restart_all(self):
        """Every node stopped (SIGTERM, exit 0), then started again, same
        configs and ports."""
        for node in self.nodes:
            node.stop()
        for node in self.nodes:
            node.restart()


def check_slices(ref, members, what, whole=True):
    """ref's CHAT stream is the room's order (ref joined first and stayed):
    every member's stream is exactly a slice of it starting at its own join
    announcement; with whole, running to ref's end (it missed nothing)."""
    rs = ref.chats()
    for m in members:
        s = m.chats()
        own = (m.name, joined_text(m.name).decode())
        check(s and s[0] == own, "%s: %s's stream does not start with its own join: %s"
              % (what, m.label, s[:3]))
        # A name may join again after it left (a new member): the slice
        # may start at any of its joins.
        hits = [i for i, f in enumerate(rs) if f == own]
        check(hits, "%s: %s never saw %s's join" % (what, ref.label, m.label))
        for h in hits:
            want = rs[h:] if whole else rs[h:h + len(s)]
            if s == want:
                break
        if s != want:
            k = next(i for i in range(max(len(s), len(want)))
                     if i >= len(s) or i >= len(want) or s[i] != want[i])
            fail("%s: %s's stream (%d CHATs) is not the room's order as %s saw it (%d from its "
                 "join) at %d:\n  %s: %s\n  %s: %s"
                 % (what, m.label, len(s), ref.label, len(want), k, ref.label,
                    want[max(0, k - 2):k + 3], m.label, s[max(0, k - 2):k + 3]))


def count_of(stream, frame):
    return sum(1 for f in stream if f == frame)


def announced(name, joined=True):
    return (name, (joined_text(name) if joined else left_text(name)).decode())
