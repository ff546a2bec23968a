#!/usr/bin/env python3
"""11-shutdown: graceful shutdown, by KILL_SERVICE and by signal.

KILL_SERVICE with kill_service = true, from a loopback peer (SPEC §2.1): the
daemon exits 0. SIGTERM and SIGINT (SPEC §3: "announce, flush what is queued,
close, exit 0 within 2 seconds"), with members in rooms, an attached room
connection, an idle connection and a half-sent request: exit 0 within
2 s x factor. Always sanitizer-clean, and every client connection is closed
(only whole CHAT frames, i.e. room traffic, may precede the close)."""
import os
import signal
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def drain_to_close(c):
    """Only whole CHAT frames may arrive before the close."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        c._read_some(deadline)
        while c.buf.startswith(b"CHAT:") and b"\n\n" in c.buf:
            c.buf = c.buf[c.buf.index(b"\n\n") + 2:]
        if c.eof:
            check(not c.buf, "%s: unexpected bytes before the close: %s" % (c.label, show(c.buf)))
            return
        check(time.monotonic() < deadline, "%s: still open %.1fs after the daemon exited (pending %s)"
              % (c.label, TIMEOUT, show(c.buf)))


def kill_service():
    with Daemon(features={"kill_service": True}) as d:
        m = d.connect("member")
        m.join("room1", "member")
        k = d.connect("killer")
        k.ping()
        k.send(b"KILL_SERVICE\n")
        d.wait_exit()
        drain_to_close(m)
        drain_to_close(k)


def busy_daemon(d):
    conns = []
    a, b, ref, port, ida, _ = d.two_members("a", "b")
    b.join("room2", "b")
    ra = d.room_connect(port, "a-room")
    ra.send(attach_req(ref, ida, "a"))
    ra.expect(attached_reply(ref, ida))
    idle = d.connect("idle")
    idle.ping()
    half = d.connect("half")
    half.send(b"JOIN_CHATROOM: room1\nCLIENT_IP: 0\n")
    a.chat(ref, ida, "a", "last words")
    conns += [a, b, ra, idle, half]
    ra.expect_chat(ref, "a", "last words")
    b.expect_chat(ref, "a", "last words")
    return conns


def signals():
    for sig in (signal.SIGTERM, signal.SIGINT):
        with Daemon() as d:
            conns = busy_daemon(d)
            d.stop(sig)   # exit 0 within 2 s x factor, sanitizer-clean
            for c in conns:
                drain_to_close(c)


def main():
    kill_service()
    signals()


run(main)
