#!/usr/bin/env python3
"""40-attack-mailbox-flood.py - issue 10, attack 5: the acceptor's delivery
backlog.

Attached members (room port) send CHATs paced under the rate limit into a
room whose other members are plain (traffic over the control connection,
through the acceptor), while other connections keep the acceptor busy with
LIST_ROOMS and LIST_MEMBERS. Before, the acceptor's delivery mailbox grew
without bound (776 MB in 4 s) and, applied at once, cut off members that had
been reading all along.

Bounds: daemon RSS growth under 64 MB (x FACTOR under sanitizers); every plain member that reads gets
every message (none cut off); the room's backlog at the acceptor is bounded
(8192 deliveries or 2 MiB, then the room stops reading its room port until
it drains: the log says so once). Scaled by FACTOR: the send rate."""

import selectors
import socket
import threading
import time

from roomtest import (FACTOR, Daemon, attach_req, attached_reply, chat_req, check, run)

READERS = 48
SENDERS = 16
BUSY = 6
RATE = 190 // FACTOR              # CHATs a second per sender: under rate = 200
TEXT = 300
FLOOD_S = 4.0
RSS_BOUND_MB = 64 * FACTOR           # sanitizers keep freed memory in quarantine


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Drain(threading.Thread):
    """Reads every registered socket; keeps the bytes of those asked to."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.closed = []

    def add(self, sock, keep):
        sock.setblocking(False)
        with self.lock:
            self.sel.register(sock, selectors.EVENT_READ, [keep, bytearray(), 0])

    def data(self, sock):
        return self.sel.get_key(sock).data

    def run(self):
        while not self.stop.is_set():
            with self.lock:
                events = self.sel.select(0.05)
                for key, _ in events:
                    try:
                        chunk = key.fileobj.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        self.closed.append(key.fileobj)
                        self.sel.unregister(key.fileobj)
                        continue
                    key.data[2] += len(chunk)
                    if key.data[0]:
                        key.data[1] += chunk


def main():
    # All clients share 127.0.0.1: the per-address limits are raised so that
    # the test models senders on many addresses (their own test: 36-38).
    limits = {"max_clients_per_ip": 128, "max_members": 256,
              "connect_rate_per_ip": 1000, "connect_burst_per_ip": 1000,
              "rate_per_ip": 1000000, "burst_per_ip": 1000000}
    with Daemon(limits=limits) as d:
        pid = d.proc.pid
        drain = Drain()
        readers, senders = [], []
        ref = None
        for i in range(READERS):
            c = d.connect("reader%d" % i)
            ref, _, _, _ = c.join("flood", "r%d" % i)
            readers.append(c)
        for i in range(SENDERS):
            c = d.connect("sender%d" % i)
            ref, jid, _, port = c.join("flood", "s%d" % i)
            rc = d.room_connect(port, "sender%d-room" % i)
            rc.send(attach_req(ref, jid, "s%d" % i))
            rc.expect(attached_reply(ref, jid), what="ATTACHED")
            senders.append((c, rc, jid))
        busy = []
        for i in range(BUSY):
            c = d.connect("busy%d" % i)
            c.join("flood", "b%d" % i)
            busy.append(c)
        time.sleep(0.3)
        for c in readers:
            drain.add(c.sock, True)
        for c, rc, _ in senders:
            drain.add(c.sock, False)
            drain.add(rc.sock, False)
        for c in busy:
            drain.add(c.sock, False)
        drain.start()
        base = rss_kb(pid)

        stop = threading.Event()
        sent = [0] * SENDERS

        def send_loop(i):
            _, rc, jid = senders[i]
            start = time.monotonic()
            rc.sock.setblocking(True)
            rc.sock.settimeout(10.0)
            while not stop.is_set():
                due = int((time.monotonic() - start) * RATE) - sent[i]
                if due > 0:
                    reqs = b"".join(chat_req(ref, jid, "s%d" % i, "F%d.%d.%s" % (i, sent[i] + j, "y" * TEXT))
                                    for j in range(due))
                    rc.sock.sendall(reqs)
                    sent[i] += due
                time.sleep(0.005)

        def busy_loop(c):
            c.sock.setblocking(True)
            c.sock.settimeout(10.0)
            reqs = (b"LIST_ROOMS: 0\n" + b"LIST_MEMBERS: %d\n" % ref) * 20
            while not stop.is_set():
                try:
                    c.sock.sendall(reqs)
                except OSError:
                    return
                time.sleep(0.01)

        threads = [threading.Thread(target=send_loop, args=(i,), daemon=True) for i in range(SENDERS)]
        threads += [threading.Thread(target=busy_loop, args=(c,), daemon=True) for c in busy]
        for t in threads:
            t.start()
        peak = base
        end = time.monotonic() + FLOOD_S
        while time.monotonic() < end:
            peak = max(peak, rss_kb(pid))
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(15)
        total = sum(sent)
        # Every reader must get every message: wait for the backlog to drain.
        deadline = time.monotonic() + 20.0 * FACTOR
        counts = []
        while time.monotonic() < deadline:
            peak = max(peak, rss_kb(pid))
            with drain.lock:
                counts = [drain.data(c.sock)[1].count(b"\nMESSAGE: F") if c.sock not in drain.closed else -1
                          for c in readers]
            if all(n == total for n in counts) or any(n < 0 for n in counts):
                break
            time.sleep(0.1)
        drain.stop.set()
        drain.join(2)
        d.assert_alive()
        growth = (peak - base) / 1024.0
        held = "room port input paused" in d.stderr()
        cut = [i for i, n in enumerate(counts) if n < 0]
        print("attack 5: %d attached senders sent %d CHATs of %d bytes in %.0fs (%d/s each), %d busy "
              "connections listing; %d plain readers got %s of them each (%d deliveries); RSS %.1f -> "
              "peak %.1f MB (growth %.1f MB, bound %d MB); room input held for its backlog: %s; "
              "readers cut off: %d"
              % (SENDERS, total, TEXT, FLOOD_S, RATE, BUSY, READERS, sorted(set(counts)),
                 sum(n for n in counts if n > 0), base / 1024.0, peak / 1024.0, growth, RSS_BOUND_MB,
                 "yes" if held else "no", len(cut)))
        check(not cut, "plain readers %s were cut off while reading" % cut)
        check(all(n == total for n in counts), "readers got %s messages, %d were sent" % (sorted(set(counts)), total))
        check(growth < RSS_BOUND_MB, "daemon RSS grew by %.1f MB (bound %d MB)" % (growth, RSS_BOUND_MB))


run(main)
