#!/usr/bin/env python3
"""41-attack-small: the smaller attacks of issue 10 (item 8), each performed
against a real roomd and bounded.

1. Idle connections cannot hold max_clients: with idle_timeout = 1, control
   connections in no room that send only blank lines, only the bytes of a
   request that never ends, or only garbage the parser refuses, are closed
   (no frame but the parser's error replies) between 0.9 s and
   1 + 0.5 (sweep) + slack after their last request; one sending HELO
   every 0.2 s stays open. A room-port connection that sends only blank
   lines or garbage never attaching is closed by the attach deadline (10 s).
2. roomc shows a peer's C1 controls (raw 0x9b and UTF-8 U+009B), bidi
   controls (U+202E, U+2066, U+200F), ESC and invalid UTF-8 escaped:
   exact stdout line, and none of those bytes raw anywhere in its stdout.
3. A retired room releases its port at once: right after LEFT_CHATROOM for
   the last member, a connection to its port is refused on the first try,
   the next room created gets the same port from the range, the room's
   unattached connection is closed and its descriptors are freed within
   0.25 s x FACTOR (the old code held them until the 500 ms sweep).
4. SET_TOPIC refuses (error 1, exact bytes) what the config loader refuses
   for a [room:*] topic (a byte 0x00-0x1f or 0x7f), the topic stays as it
   was; the loader refuses the same topic at start."""
import os
import random
import socket
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

SWEEP = 0.5  # the acceptor's and the room's deadline sweep


# ---- 1. idle timer ------------------------------------------------------------

IDLE_KINDS = {
    # kind: (what it sends every tick, port kind)
    "blank": (b"\n", "control"),
    "crlf": (b"\r\n \r\n", "control"),
    "partial": (b"H", "control"),          # "HHHH..." never ends a line
    "garbage": (b"no such request\n\n", "control"),
    "helo": (helo_req("still here"), "control"),
    "room-blank": (b"\n", "room"),
    "room-garbage": (b"garbage\n\n", "room"),
}


def idle():
    idle_timeout = 1
    attach_deadline = 10.0
    with Daemon(limits={"idle_timeout": idle_timeout}, rooms={"lobby": {"ref": 1}}) as d:
        lobby_port = [r for r in list_rooms(d.connect("lister")) if r[0] == "lobby"][0][2]
        socks = {}
        for kind, (_, where) in IDLE_KINDS.items():
            s = socket.create_connection((HOST, d.port if where == "control" else lobby_port),
                                         timeout=TIMEOUT)
            s.setblocking(False)
            socks[kind] = s
        t0 = time.monotonic()
        closed, got = {}, {k: b"" for k in socks}
        end = t0 + attach_deadline + SWEEP + 1.0 * FACTOR
        while time.monotonic() < end and len(closed) < len(socks) - 1:
            for kind, s in socks.items():
                if kind in closed:
                    continue
                try:
                    s.sendall(IDLE_KINDS[kind][0])
                except OSError:
                    pass  # closed under us: the read below sees it
                try:
                    while True:
                        data = s.recv(65536)
                        if not data:
                            closed[kind] = time.monotonic() - t0
                            break
                        got[kind] += data
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    closed[kind] = time.monotonic() - t0
            time.sleep(0.2)
        for kind, s in socks.items():
            print("attack 8 (idle): %-12s %s, received %d bytes" % (
                kind, "closed after %.2f s" % closed[kind] if kind in closed else "still open",
                len(got[kind])))
        control_bound = idle_timeout + SWEEP + 0.3 + 0.5 * FACTOR
        for kind in ("blank", "crlf", "partial", "garbage"):
            check(kind in closed, "a control connection sending only %s was not closed within"
                  " %.1f s (idle_timeout = %d)" % (kind, end - t0, idle_timeout))
            check(idle_timeout - 0.1 <= closed[kind] <= control_bound,
                  "%s: closed after %.2f s, expected %.1f..%.1f s" % (kind, closed[kind],
                                                                      idle_timeout - 0.1, control_bound))
        for kind in ("blank", "crlf", "partial"):
            check(got[kind] == b"", "%s: unexpected bytes before the close: %s"
                  % (kind, show(got[kind])))
        err1 = b"ERROR_CODE: 1\nERROR_DESCRIPTION: malformed request\n"
        check(got["garbage"] and got["garbage"] == err1 * (len(got["garbage"]) // len(err1)),
              "garbage: expected only error 1 replies, got %s" % show(got["garbage"]))
        check("helo" not in closed, "a connection sending HELO every 0.2 s was closed after"
              " %.2f s" % closed.get("helo", 0))
        check(got["helo"].startswith(helo_reply("still here", d.port)), "helo: %s"
              % show(got["helo"][:200]))
        for kind in ("room-blank", "room-garbage"):
            check(kind in closed and closed[kind] <= attach_deadline + SWEEP + 0.5 * FACTOR,
                  "%s: a room connection that never attaches was %s (attach deadline %.0f s)"
                  % (kind, "closed after %.2f s" % closed[kind] if kind in closed else "still open",
                     attach_deadline))
        for s in socks.values():
            s.close()
        d.connect("after").ping()


# ---- 2. roomc escapes what a peer sends ---------------------------------------

EVIL = (b"\x9b" b"31m" b"\xc2\x9b" b"\xe2\x80\xae" b"gpj.exe" b"\xe2\x81\xa6" b"\x1b[2J"
        b"\xff" b"\xe2\x80\x8f" b"end")
EVIL_SHOWN = (b"\\x9b31m\\u009b\\u202egpj.exe\\u2066\\x1b[2J\\xff\\u200fend")
RAW_FORBIDDEN = (b"\x9b", b"\xc2\x9b", b"\xe2\x80\xae", b"\xe2\x81\xa6", b"\x1b", b"\xff",
                 b"\xe2\x80\x8f")


def roomc_escapes():
    with Daemon() as d:
        with Roomc(d.port, "alice") as alice:
            alice.write("join room1\n")
            alice.expect_output("[room1] alice: alice has joined this chatroom.")
            m = d.connect("mallory")
            ref, jid, _, _ = m.join("room1", "mallory")
            m.chat(ref, jid, "mallory", EVIL)
            m.expect_chat(ref, "mallory", EVIL)
            # The topic notice is server text too (a bidi topic is valid UTF-8).
            m.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: mallory\nTOPIC: \xe2\x80\xaeevil\n"
                   % (ref, jid))
            m.expect(b"TOPIC_SET: %d\nTOPIC: \xe2\x80\xaeevil\n" % ref)
            want_chat = b"[room1] mallory: " + EVIL_SHOWN + b"\n"
            want_topic = b"[room1] test-id: mallory set the topic: \\u202eevil\n"
            deadline = time.monotonic() + TIMEOUT
            while (want_chat not in alice.out or want_topic not in alice.out) and \
                    time.monotonic() < deadline:
                alice._pump(min(deadline, time.monotonic() + 0.1))
            alice.write("topic room1\ndisconnect\n")
            alice.close_stdin()
            rc = alice.wait()
            print("attack 8 (roomc): a peer's %s was shown as %s" % (show(EVIL), show(EVIL_SHOWN)))
            check(rc == 0, "roomc exited with %s" % rc)
            check(want_chat in alice.out, "roomc's stdout lacks the escaped line %s\n  stdout: %s"
                  % (show(want_chat), show(alice.out)))
            check(want_topic in alice.out, "roomc's stdout lacks %s\n  stdout: %s"
                  % (show(want_topic), show(alice.out)))
            check(b"topic of room1: \\u202eevil\n" in alice.out, "topic line: %s" % show(alice.out))
            for raw in RAW_FORBIDDEN:
                check(raw not in alice.out, "roomc wrote %s raw to its stdout: %s"
                      % (show(raw), show(alice.out)))


# ---- 3. a retired room releases its port at once ------------------------------

def fd_count(d):
    return len(os.listdir("/proc/%d/fd" % d.proc.pid))


def free_range(n):
    """A base port with n free ports after it (bound and released here)."""
    for _ in range(50):
        base = random.randrange(20000, 32000)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                socks.append(s)
                s.bind((HOST, p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    fail("no free range of %d ports found" % n)


def refused(port):
    s = socket.socket()
    try:
        return s.connect_ex((HOST, port)) != 0
    finally:
        s.close()


def retire():
    base = free_range(8)
    cycles = 5
    bound = 0.25 * FACTOR
    with Daemon(server={"room_port_min": base, "room_port_max": base + 7}) as d:
        a = d.connect("a")
        b = d.connect("b")
        a.ping()
        b.ping()
        fd_base = fd_count(d)
        worst_fd = worst_close = 0.0
        for i in range(cycles):
            ref, jid, _, port = a.join("pop-%d" % i, "a")
            check(port == base, "cycle %d: the first room got port %d, expected %d (the lowest"
                  " of the range: the last room's port was not released)" % (i, port, base))
            hoard = d.room_connect(port, "hoarder-%d" % i)
            hoard.expect_nothing(0.05)
            a.leave(ref, jid, "a")
            t0 = time.monotonic()
            check(refused(port), "cycle %d: port %d still accepts connections right after"
                  " LEFT_CHATROOM for the last member" % (i, port))
            hoard.expect_closed(timeout=bound)
            closed_after = time.monotonic() - t0
            while fd_count(d) != fd_base and time.monotonic() - t0 < bound:
                time.sleep(0.001)
            freed_after = time.monotonic() - t0
            check(fd_count(d) == fd_base, "cycle %d: the retired room still holds %d descriptors"
                  " %.2f s after its last member left" % (i, fd_count(d) - fd_base, bound))
            worst_close = max(worst_close, closed_after)
            worst_fd = max(worst_fd, freed_after)
            # Another room, created right away, gets the same port.
            ref2, jid2, _, port2 = b.join("next-%d" % i, "b")
            check(port2 == port, "cycle %d: a room created right after got port %d, not the"
                  " released %d" % (i, port2, port))
            b.leave(ref2, jid2, "b")
            while fd_count(d) != fd_base and time.monotonic() - t0 < 2 * bound:
                time.sleep(0.001)
        print("attack 8 (retire): %d cycles: port refused on the first connect after LEFT and"
              " reused by the next room; the room connection closed within %.1f ms and the"
              " descriptors freed within %.1f ms (bound %.0f ms)"
              % (cycles, worst_close * 1000, worst_fd * 1000, bound * 1000))
        d.assert_alive()


# ---- 4. SET_TOPIC refuses what the config refuses -----------------------------

BAD_TOPICS = [b"\x1b[2Jcleared", b"tab\there", b"del\x7f", b"cr\rforged", b"\x01", b"bell\x07"]


def topic():
    with Daemon(rooms={"lobby": {"ref": 1, "topic": "hi"}}) as d:
        a = d.connect("a")
        ref, jid, _, _ = a.join("lobby", "a")
        for t in BAD_TOPICS:
            a.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: a\nTOPIC: %s\n" % (ref, jid, t))
            a.expect(b"ERROR_CODE: 1\nERROR_DESCRIPTION: topic contains a control byte\n",
                     what="error 1 for TOPIC %s" % show(t))
        a.expect_nothing()  # no notice to the room
        lobby = [r for r in list_rooms(a) if r[0] == "lobby"][0]
        check(lobby[4] == "hi", "the topic changed to %r after refused SET_TOPICs" % lobby[4])
        ok = "caf\u00e9 \u2014 fine"
        a.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: a\nTOPIC: %s\n" % (ref, jid, ok.encode()))
        a.expect(b"TOPIC_SET: %d\nTOPIC: %s\n" % (ref, ok.encode()))
        a.expect_chat(ref, SERVER_ID, "a set the topic: " + ok)
        print("attack 8 (topic): %d SET_TOPICs with control bytes refused with error 1, the"
              " topic kept; a UTF-8 topic accepted" % len(BAD_TOPICS))
    # The loader refuses the same bytes in a [room:*] topic.
    workdir = tempfile.mkdtemp(prefix="roomd-41-")
    try:
        for t in BAD_TOPICS:
            rc, out = roomd_once('[room:lobby]\ntopic = "%s"\n' % t.decode(), workdir)
            check(rc not in (None, 0) and "[room:lobby] topic:" in out and "control byte" in out,
                  "the config loader accepted topic %s (exit %s): %s" % (show(t), rc, out[-500:]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    topic()
    retire()
    roomc_escapes()
    idle()


run(main)
