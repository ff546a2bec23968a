#!/usr/bin/env python3
"""cluster_soak.py - the cluster soak of issue 15: three roomd nodes and one
redis-server (tests/integration/clustertest.py), a few hundred clients
spread over the nodes, joining, chatting, attaching, leaving and vanishing
for DURATION seconds (argv[1], else $CLUSTER_SOAK_DURATION, else 60), then
exact delivery checks: 0 lost, 0 duplicated, 0 reordered.

Population (one Python process, non-blocking sockets, one selector)
  observers  one per room per node (ROOMS x 3), members from the warm-up to
             the very end, reading everything: each one's stream is the
             room's order as its node relays it.
  healthy    the rest of CLIENTS (default 240 in all): connect to a random
             node, join 1-2 rooms (about half attach to the node's room
             port and chat there), chat at random with payloads NAME/SEQ,
             and after a random lifetime leave with LEAVE_CHATROOM, or
             DISCONNECT, or close abruptly (the leave is announced either
             way); replaced by a new client with a new name (churn).

Checks
  * the observers of a room on n1, n2 and n3 have the same stream (from
    the later one's join on): one order across the nodes;
  * every healthy member's stream of a room (control part, then room
    connection part, then its own leave copy) is a contiguous slice of
    that order starting with its own join announcement, ending with its
    own leave announcement when it left with LEAVE (nothing missed,
    nothing twice, nothing after its leave);
  * each sender's messages appear in order 0..k-1, all of them when it
    left with LEAVE, and only while it was a member; every message comes
    back to its sender within ECHO_BOUND; every join in a room is
    followed by its leave (nobody stays after the storm);
  * no healthy client gets an error; the nodes log no [error] line, stay
    up, and stop with exit 0 (SIGTERM) at the end.
Figures are printed at the end, one line each. Exit 0 on pass, 1 on
failure; bounded by DURATION + 60 s x FACTOR (ctest's TIMEOUT is 600).
Sanitizer builds keep the duration and scale the rates down
(CLUSTER_SOAK_RATE_SCALE overrides); $CLUSTER_SOAK_SEED repeats the random
choices (timing still varies).

Run by hand:  ROOMD=build/release/server/roomd python3 tests/soak/cluster_soak.py 20
"""
import heapq
import os
import random
import re
import selectors
import socket
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "integration"))
from clustertest import Cluster  # noqa: E402
from roomtest import (FACTOR, HOST, TIMEOUT, attach_req, check, chat_req, disconnect_req,  # noqa: E402
                      fail, join_req, leave_req, run, show)


def _duration():
    if len(sys.argv) > 1:
        return float(sys.argv[1])
    return float(os.environ.get("CLUSTER_SOAK_DURATION", "60"))


DURATION = _duration()
RATE = float(os.environ.get("CLUSTER_SOAK_RATE_SCALE", "0") or 0) or min(1.0, 2.0 / FACTOR)
SEED = int(os.environ.get("CLUSTER_SOAK_SEED", "0") or 0) or random.SystemRandom().randrange(1, 2 ** 31)
CLIENTS = int(os.environ.get("CLUSTER_SOAK_CLIENTS", "240"))
ROOMS = ["s%d" % i for i in range(6)]
NODES = 3
CHAT_MEAN = 3.0 / RATE          # seconds between a member's messages, on average
LIFETIME = (4.0, 16.0)          # a healthy client's time in its rooms
BOUND = 5 * TIMEOUT             # a reply must come by then
ECHO_BOUND = min(20.0 * FACTOR, 90.0)
HARD_BOUND = int(DURATION + 60 * FACTOR)
LIMITS = {
    "max_clients": 2000, "max_clients_per_ip": 2000, "max_members": 512,
    "max_rooms_per_client": 8, "rate": 200, "burst": 400, "history": 50,
    # every client shares 127.0.0.1: the per-address buckets out of reach
    "rate_per_ip": 1000000, "burst_per_ip": 1000000, "connect_rate_per_ip": 1000000,
    "connect_burst_per_ip": 1000000, "room_create_rate": 1000000, "room_unattached_max": 256,
}

CHAT_RE = re.compile(rb"\ACHAT: (\d+)\nCLIENT_NAME: ([^\n]*)\nMESSAGE: ([^\n]*)\n\n")
REPLY_RES = (
    ("JOINED", re.compile(rb"\AJOINED_CHATROOM: ([^\n]*)\nSERVER_IP: [^\n]*\nPORT: (\d+)\n"
                          rb"ROOM_REF: (\d+)\nJOIN_ID: (\d+)\n")),
    ("LEFT", re.compile(rb"\ALEFT_CHATROOM: (\d+)\nJOIN_ID: (\d+)\n")),
    ("ATTACHED", re.compile(rb"\AATTACHED_CHATROOM: (\d+)\nJOIN_ID: (\d+)\n")),
    ("ERROR", re.compile(rb"\AERROR_CODE: (\d+)\nERROR_DESCRIPTION: ([^\n]*)\n")),
)


def now():
    return time.monotonic()


class World:
    def __init__(self, cl):
        self.cl = cl
        self.rng = random.Random(SEED)
        self.sel = selectors.DefaultSelector()
        self.timers = []
        self.tseq = 0
        self.next_id = 0
        self.clients = set()
        self.memberships = {r: [] for r in ROOMS}   # every membership ever, per room
        self.observers = {r: [] for r in ROOMS}
        self.storm = True
        self.stats = {"clients": 0, "sent": 0, "frames": 0, "leave": 0, "disconnect": 0,
                      "vanish": 0, "attached": 0}

    def later(self, dt, fn):
        self.tseq += 1
        heapq.heappush(self.timers, (now() + dt, self.tseq, fn))

    def step(self, max_wait=0.05):
        t = now()
        while self.timers and self.timers[0][0] <= t:
            heapq.heappop(self.timers)[2]()
        wait = max_wait if not self.timers else max(0.0, min(max_wait, self.timers[0][0] - now()))
        for key, _ in self.sel.select(wait):
            key.data.on_readable()

    def run_until(self, cond, seconds, what):
        deadline = now() + seconds
        while not cond():
            if now() > deadline:
                fail("timed out after %.0fs waiting for %s" % (seconds, what))
            self.step()

    def name(self, prefix):
        self.next_id += 1
        return "%s%d" % (prefix, self.next_id)


class Sock:
    """A non-blocking client socket; complete frames go to owner.on_frame."""

    def __init__(self, w, port, owner, chan):
        self.w, self.owner, self.chan = w, owner, chan
        self.buf = b""
        self.closed = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(BOUND)
        self.sock.connect((HOST, port))
        self.sock.setblocking(False)
        w.sel.register(self.sock, selectors.EVENT_READ, self)

    def send(self, data):
        # Small requests into an empty send buffer: a short blocking send is fine.
        self.sock.setblocking(True)
        self.sock.settimeout(BOUND)
        try:
            self.sock.sendall(data)
        except OSError as e:
            fail("%s: send failed: %s" % (self.owner.label, e))
        finally:
            self.sock.setblocking(False)

    def on_readable(self):
        if self.chan == "room" and not self.owner.ctl.closed:
            # Frames relayed before the hand-off to this room connection are
            # in the control socket already (loopback): take them first.
            self.owner.ctl.on_readable()
        for _ in range(16):
            if self.closed:
                return
            try:
                data = self.sock.recv(262144)
            except BlockingIOError:
                return
            except ConnectionResetError:
                data = b""
            if not data:
                self.close()
                self.owner.on_eof(self)
                return
            self.buf += data
            self.parse()

    def parse(self):
        while self.buf:
            m = CHAT_RE.match(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                self.w.stats["frames"] += 1
                self.owner.on_chat(self, int(m.group(1)), m.group(2).decode(), m.group(3).decode())
                continue
            for kind, rx in REPLY_RES:
                m = rx.match(self.buf)
                if m:
                    self.buf = self.buf[m.end():]
                    self.owner.on_reply(self, kind, m.groups())
                    break
            else:
                if len(self.buf) > 65536 or (self.buf.count(b"\n") >= 6 and not self.buf.startswith(b"CHAT")):
                    fail("%s: unexpected bytes: %s" % (self.owner.label, show(self.buf)))
                return

    def close(self):
        if not self.closed:
            self.closed = True
            self.w.sel.unregister(self.sock)
            self.sock.close()


class Membership:
    def __init__(self, client, room, ref, jid, port):
        self.client, self.room, self.ref, self.jid, self.port = client, room, ref, jid, port
        self.name = client.name
        self.ctl_part, self.rc_part, self.own_leave = [], [], []
        self.rc = None
        self.sent = 0
        self.pending = {}         # seq -> send time, until it comes back
        self.complete = False     # left with LEAVE and got everything up to its leave
        self.active = True

    def stream(self):
        return self.ctl_part + self.rc_part + self.own_leave

    def token(self, sender, text):
        if text == "%s has joined this chatroom." % sender:
            return "+" + sender
        if text == "%s has left this chatroom." % sender:
            return "-" + sender
        check(text.startswith(sender + "/"), "%s in %s: CHAT from %s with text %r: not that sender's"
              % (self.client.label, self.room, sender, text))
        return text


class Client:
    """A client of one node; observers are clients that stay to the end."""

    def __init__(self, w, node, rooms, observer=False):
        self.w, self.node, self.observer = w, node, observer
        self.name = w.name("o" if observer else "h")
        self.label = "%s@n%d" % (self.name, node + 1)
        self.ctl = Sock(w, w.cl.nodes[node].port, self, "ctl")
        self.todo = list(rooms)
        self.by_ref = {}
        self.waiting = None       # (kind, deadline, what)
        self.gone = False
        self.end_how = None
        w.clients.add(self)
        w.stats["clients"] += 1

    # -- requests, one at a time
    def expect(self, kind, what):
        self.waiting = (kind, now() + BOUND, what)

    def next_join(self):
        if not self.todo:
            self.waiting = None
            if not self.observer:
                self.w.later(self.w.rng.uniform(*LIFETIME), self.end)
            return
        room = self.todo.pop(0)
        self.ctl.send(join_req(room, self.name))
        self.expect("JOINED", "JOINED for " + room)

    def on_reply(self, sock, kind, groups):
        if kind == "ERROR":
            fail("%s: ERROR_CODE %s (%s) on its %s connection" % (self.label, groups[0].decode(),
                                                                 groups[1].decode(), sock.chan))
        want = self.waiting[0] if self.waiting else None
        check(kind == want, "%s: unexpected %s reply (waiting for %s)" % (self.label, kind, want))
        self.waiting = None
        if kind == "JOINED":
            room, port, ref, jid = groups[0].decode(), int(groups[1]), int(groups[2]), int(groups[3])
            m = Membership(self, room, ref, jid, port)
            self.by_ref[ref] = m
            self.w.memberships[room].append(m)
            if self.observer:
                self.w.observers[room].append(m)
            if not self.observer and self.w.rng.random() < 0.5:
                m.rc = Sock(self.w, port, self, "room")
                m.rc.membership = m
                m.rc.send(attach_req(ref, jid, self.name))
                self.expect("ATTACHED", "ATTACHED for " + room)
            else:
                self.start_chat(m)
                self.next_join()
        elif kind == "ATTACHED":
            m = sock.membership
            self.w.stats["attached"] += 1
            self.start_chat(m)
            self.next_join()
        elif kind == "LEFT":
            self.leave_next()

    def on_chat(self, sock, ref, sender, text):
        m = sock.membership if sock.chan == "room" else self.by_ref.get(ref)
        check(m is not None and m.ref == ref, "%s: CHAT for ref %d, not one of its rooms" % (self.label, ref))
        t = m.token(sender, text)
        if t == "-" + self.name:
            m.own_leave.append(t)
        elif sock.chan == "room":
            m.rc_part.append(t)
        else:
            check(not m.rc_part, "%s in %s: a CHAT on the control connection after room-connection "
                  "traffic: %r" % (self.label, m.room, t))
            m.ctl_part.append(t)
        if sender == self.name and "/" in t:
            m.pending.pop(int(t.split("/")[1]), None)

    def on_eof(self, sock):
        if sock.chan == "room":
            m = sock.membership
            check(not m.active or self.gone, "%s: room connection of %s closed by the node while a member"
                  % (self.label, m.room))
            return
        check(self.gone, "%s: control connection closed by the node" % self.label)

    # -- traffic
    def start_chat(self, m):
        if not self.observer:
            self.w.later(self.w.rng.expovariate(1.0 / CHAT_MEAN), lambda: self.chat(m))

    def chat(self, m):
        if not m.active or self.gone or self.end_how:
            return
        text = "%s/%d" % (self.name, m.sent)
        m.pending[m.sent] = now()
        m.sent += 1
        self.w.stats["sent"] += 1
        (m.rc or self.ctl).send(chat_req(m.ref, m.jid, self.name, text))
        self.start_chat(m)

    # -- the end
    def end(self):
        if self.end_how:
            return
        if self.waiting:
            self.w.later(0.2, self.end)   # a JOIN or ATTACH in progress: after it
            return
        r = self.w.rng.random()
        self.end_how = "leave" if r < 0.5 or self.observer else ("disconnect" if r < 0.75 else "vanish")
        self.w.stats[self.end_how] += 1
        if self.end_how == "leave":
            self.leaving = [m for m in self.by_ref.values()]
            self.leave_next()
            return
        for m in self.by_ref.values():
            m.active = False
        self.gone = True
        if self.end_how == "disconnect":
            self.ctl.send(disconnect_req(self.name))
            self.expect("EOF", "the close after DISCONNECT")
        else:
            self.ctl.close()
            for m in self.by_ref.values():
                if m.rc:
                    m.rc.close()
        self.finish()

    def leave_next(self):
        if self.leaving:
            m = self.leaving.pop(0)
            m.active = False
            m.complete = True
            self.ctl.send(leave_req(m.ref, m.jid, self.name))
            self.expect("LEFT", "LEFT for " + m.room)
            return
        # own leave copies come after LEFT: let them arrive before closing
        self.waiting = None
        self.w.later(BOUND if self.observer else 1.0, self.close_after_leave)

    def close_after_leave(self):
        self.gone = True
        self.ctl.close()
        for m in self.by_ref.values():
            if m.rc:
                m.rc.close()
        self.finish()

    def finish(self):
        self.w.clients.discard(self)
        if self.w.storm and not self.observer:
            self.w.later(self.w.rng.uniform(0.05, 0.5), lambda: spawn(self.w))

    def late(self):
        if self.waiting and self.waiting[0] != "EOF" and now() > self.waiting[1]:
            fail("%s: no %s within %.0fs" % (self.label, self.waiting[2], BOUND))
        for m in self.by_ref.values():
            for seq, t in m.pending.items():
                if m.active and now() - t > ECHO_BOUND:
                    fail("%s: its message %d in %s did not come back within %.0fs"
                         % (self.label, seq, m.room, ECHO_BOUND))


def spawn(w):
    if not w.storm:
        return
    rooms = w.rng.sample(ROOMS, w.rng.choice((1, 1, 2)))
    c = Client(w, w.rng.randrange(NODES), rooms)
    c.next_join()


# ---- checks -------------------------------------------------------------------

def check_room(w, room, errors):
    obs = w.observers[room]
    ref = obs[0].stream()

    def before_observers_leave(x):
        """Up to the first observer's leave (they leave in any order at the end)."""
        return x[:next((k for k, t in enumerate(x) if t.startswith("-o")), len(x))]
    pos = {}
    for i, t in enumerate(ref):
        if t in pos:
            errors.append("%s: %s delivered twice to observer %s" % (room, t, obs[0].client.label))
            return 0
        pos[t] = i
    for t, i in pos.items():
        if t[0] == "+" and not t.startswith("+o"):
            j = pos.get("-" + t[1:])
            if j is None or j < i:
                errors.append("%s: %s joined but its leave was never announced" % (room, t[1:]))
    checked = 0
    for m in w.memberships[room]:
        if m is obs[0]:
            continue
        s = m.stream()
        if not s:
            errors.append("%s: %s received nothing, not even its own join" % (room, m.client.label))
            continue
        if s[0] != "+" + m.name or s[0] not in pos:
            errors.append("%s: %s's stream does not start with its own join: %s" % (room, m.client.label, s[:3]))
            continue
        i = pos[s[0]]
        want = ref[i:i + len(s)]
        if m in obs:
            want, s = before_observers_leave(ref[i:]), before_observers_leave(s)
        if s != want:
            k = next(j for j in range(max(len(s), len(want)))
                     if j >= len(s) or j >= len(want) or s[j] != want[j])
            j = pos.get("-" + m.name)
            errors.append("%s: %s (%s, %s) did not get the room's order at its frame %d of %d "
                          "(its join at room position %d, its leave at %s):\n"
                          "    room (%s): %s\n    it:   %s"
                          % (room, m.client.label, m.client.end_how or "observer",
                             "attached" if m.rc else "plain", k, len(s), i, j, obs[0].client.label,
                             want[max(0, k - 3):k + 4], s[max(0, k - 3):k + 4]))
            continue
        if m.complete and m not in obs and s[-1] != "-" + m.name:
            errors.append("%s: %s left with LEAVE but its stream does not end with its leave"
                          % (room, m.client.label))
        checked += 1
    for m in w.memberships[room]:
        seqs = [int(t.split("/")[1]) for t in ref if t.startswith(m.name + "/")]
        if seqs != list(range(len(seqs))):
            errors.append("%s: %s's messages out of order, with a gap or twice: %s"
                          % (room, m.client.label, seqs[:20]))
        elif len(seqs) > m.sent or (m.complete and len(seqs) != m.sent):
            errors.append("%s: %s sent %d messages (%s), the room relayed %d"
                          % (room, m.client.label, m.sent, m.client.end_how, len(seqs)))
        elif seqs:
            i0, i1 = pos.get("+" + m.name, -1), pos.get("-" + m.name, len(ref))
            if not i0 < pos["%s/0" % m.name] <= pos["%s/%d" % (m.name, len(seqs) - 1)] < i1:
                errors.append("%s: %s's messages relayed outside its membership" % (room, m.client.label))
    return checked


def main():
    random.seed(SEED)
    t_start = now()
    rooms = {}
    with Cluster(limits=LIMITS) as cl:
        w = World(cl)
        before = cl.redis.commandstats()
        # Warm-up: the observers, one per room per node.
        for room in ROOMS:
            for node in range(NODES):
                o = Client(w, node, [room], observer=True)
                o.next_join()
                w.run_until(lambda: o.waiting is None, BOUND, "observer %s's join" % o.label)
        # Each room's observers: the first in the room's order (whose stream
        # holds all three joins) is the reference. That is not always the
        # first to get JOINED: a join on another node just after a JOINED
        # may be ordered before it.
        w.run_until(lambda: all(any(len(o.stream()) == NODES for o in w.observers[r]) for r in ROOMS),
                    BOUND, "the observers' joins announced")
        for room in ROOMS:
            w.observers[room].sort(key=lambda o: -len(o.stream()))
        for room in ROOMS:
            refs = set(o.ref for o in w.observers[room])
            check(len(refs) == 1, "room %s has refs %s on the three nodes" % (room, refs))
            rooms[room] = refs.pop()
        healthy = CLIENTS - len(ROOMS) * NODES
        for i in range(healthy):
            w.later(i * 2.0 / healthy, lambda: spawn(w))

        def sweep():
            for c in list(w.clients):
                c.late()
            w.later(1.0, sweep)
        sweep()
        t_storm = now()
        w.run_until(lambda: now() - t_storm >= DURATION, DURATION + 5, "the storm")
        w.storm = False
        for c in list(w.clients):
            if not c.observer:
                c.end()
        w.run_until(lambda: all(c.observer for c in w.clients), ECHO_BOUND + 2 * BOUND,
                    "every healthy client gone")
        # quiet: every leave reaches the observers
        w.run_until(lambda: all(check_room_quiet(w, r) for r in ROOMS), ECHO_BOUND,
                    "every healthy member's leave at the observers")
        for c in list(w.clients):
            c.end()
        w.run_until(lambda: not w.clients, 3 * BOUND, "the observers' leaves")
        errors = []
        checked = sum(check_room(w, r, errors) for r in ROOMS)
        for node in cl.nodes:
            node.assert_alive()
            bad = [ln for ln in node.stderr().splitlines() if "[error]" in ln]
            if bad:
                errors.append("%s logged errors: %s" % (node.node_id, bad[:5]))
        after = cl.redis.commandstats()
        if errors:
            fail("%d delivery errors (seed %d), the first ones:\n  %s"
                 % (len(errors), SEED, "\n  ".join(errors[:10])))
        s = w.stats
        calls = sum(after.values()) - sum(before.values())
        print("cluster soak: %.0f s storm, seed %d, rate scale %.2f" % (DURATION, SEED, RATE))
        print("clients: %d (%d at once), attached memberships: %d" % (s["clients"], CLIENTS, s["attached"]))
        print("ends: leave %d, disconnect %d, vanish %d" % (s["leave"], s["disconnect"], s["vanish"]))
        print("messages sent: %d, CHAT frames received: %d" % (s["sent"], s["frames"]))
        print("memberships checked exactly: %d, lost 0, duplicated 0, reordered 0" % checked)
        print("redis commands: %d (%.2f per message sent)" % (calls, calls / max(1, s["sent"])))
        print("wall time: %.0f s" % (now() - t_start))


def check_room_quiet(w, room):
    """Every join the observers saw has its leave (healthy ones only)."""
    s = w.observers[room][0].stream()
    joined = set(t[1:] for t in s if t[0] == "+" and not t.startswith("+o"))
    left = set(t[1:] for t in s if t[0] == "-")
    return joined <= left


run(main, bound=HARD_BOUND)
