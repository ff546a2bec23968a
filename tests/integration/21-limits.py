#!/usr/bin/env python3
"""21-limits: the limits of the config (SPEC §3 "limits: clients total and per
IP, rooms, members per room, ..., rate and burst, idle timeout"; codes §2.1).

max_members -> 6 (room full), a room's own max_members too; max_rooms -> 7;
max_rooms_per_client -> 7; max_clients -> 7 and the connection is closed;
max_clients_per_ip -> the same for a peer over its share; rate/burst: a
burst over the limit is slowed by back-pressure, relayed in full and in order,
other clients unaffected;
idle_timeout closes a connection without membership, not a member's;
request_timeout closes a connection that leaves a request incomplete
(error 1), not one that is merely slow. Every
refused client that is not closed stays usable."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def refused_connection(d, label, what):
    """A connection over a client limit: ERROR_CODE: 7, then closed."""
    c = d.connect(label)
    c.send(helo_req("over the limit"))
    f = c.expect_frame()
    m = ERROR_RE.match(f.raw)
    check(m and int(m.group(1)) == 7, "%s: expected ERROR_CODE: 7, got %s" % (what, show(f.raw)))
    c.expect_closed()


def rooms_and_members():
    with Daemon(limits={"max_members": 2, "max_rooms": 2}, rooms=[("tiny", {"max_members": 1})]) as d:
        a, b, ref, _, _, _ = d.two_members("a", "b")   # a created room (tiny is configured)
        c = d.connect("c")
        c.send(join_req("room1", "c"))
        c.expect_error(6, context="third member of a room with max_members = 2")
        a.expect_nothing()
        c.ping()
        c.join("tiny", "c")
        b.send(join_req("tiny", "b"))
        b.expect_error(6, context="second member of room 'tiny' with its own max_members = 1")
        b.ping()
        # Rooms: 'tiny' and 'room1' exist; whether or not the configured room
        # counts, creating two more must hit max_rooms = 2.
        b.send(join_req("room2", "b"))
        f = b.expect_frame()
        if f.kind == "JOINED":
            b.expect_frame()   # own announcement
            b.send(join_req("room3", "b"))
            b.expect_error(7, context="a room beyond max_rooms = 2")
        else:
            m = ERROR_RE.match(f.raw)
            check(m and int(m.group(1)) == 7, "a room beyond max_rooms = 2: expected ERROR_CODE: 7, got %s"
                  % show(f.raw))
        b.ping()
        d.assert_alive()

    with Daemon(limits={"max_rooms_per_client": 2}) as d:
        a = d.connect("a")
        a.join("r1", "a")
        a.join("r2", "a")
        a.send(join_req("r3", "a"))
        a.expect_error(7, context="a third room with max_rooms_per_client = 2")
        a.ping()


def clients():
    with Daemon(limits={"max_clients": 2}) as d:
        a, b = d.connect("a"), d.connect("b")
        a.ping()
        b.ping()
        refused_connection(d, "c", "third connection with max_clients = 2")
        a.ping()
        a.close()
        time.sleep(0.2 * FACTOR)
        c = d.connect("c-again")
        c.ping()
    with Daemon(limits={"max_clients_per_ip": 2}) as d:
        a, b = d.connect("a"), d.connect("b")
        a.ping()
        b.ping()
        refused_connection(d, "c", "third connection from 127.0.0.1 with max_clients_per_ip = 2")
        b.ping()


def rate():
    """A burst over rate/burst is slowed, not refused: roomd stops reading the
    flooder until its bucket refills (TCP back-pressure), relays every
    request in order, and serves everyone else meanwhile."""
    rate_per_s, burst, n = 5, 5, 20
    with Daemon(limits={"rate": rate_per_s, "burst": burst}) as d:
        other = d.connect("other")
        oref, oid, _, _ = other.join("quiet", "other")
        a = d.connect("a")
        ref, jid, _, _ = a.join("room1", "a")   # the join took one token
        t0 = time.monotonic()
        a.send(b"".join(chat_req(ref, jid, "a", "m%d" % i) for i in range(n)))
        # While a is throttled, another client is served at once.
        time.sleep(0.3)
        t1 = time.monotonic()
        other.chat(oref, oid, "other", "unaffected")
        other.expect_chat(oref, "other", "unaffected")
        check(time.monotonic() - t1 < 0.5 * FACTOR,
              "another client waited %.2fs behind a throttled flooder" % (time.monotonic() - t1))
        # Every message arrives, in order; the last one only after the
        # bucket refilled enough: (n + 1 join - burst - 1 spare) / rate s.
        floor = (n + 1 - burst - 1) / rate_per_s
        for i in range(n):
            a.expect_chat(ref, "a", "m%d" % i, timeout=floor + TIMEOUT)
        took = time.monotonic() - t0
        check(took >= floor * 0.8, "%d CHATs with rate %d, burst %d relayed in %.2fs: not throttled"
              " (expected at least %.2fs)" % (n, rate_per_s, burst, took, floor))
        a.expect_nothing(0.2)
        a.ping()
        d.assert_alive()


def idle():
    with Daemon(limits={"idle_timeout": 1}) as d:
        idle_conn = d.connect("idle")
        idle_conn.ping()
        member = d.connect("member")
        member.join("room1", "member")
        deadline = time.monotonic() + 1 + 2 * TIMEOUT
        while not idle_conn.eof and time.monotonic() < deadline:
            idle_conn._read_some(deadline)
        check(idle_conn.eof, "a connection without membership was still open %.1fs after"
              " idle_timeout = 1 (got %s)" % (1 + 2 * TIMEOUT, show(idle_conn.buf)))
        check(idle_conn.buf == b"" or ERROR_RE.match(idle_conn.buf),
              "idle connection: unexpected bytes before the close: %s" % show(idle_conn.buf))
        member.ping()


def request_timeout():
    """A request left incomplete longer than request_timeout gets error 1 and
    the connection is closed; a slow but complete one, and everyone else,
    are served."""
    with Daemon(limits={"request_timeout": 1}) as d:
        slowloris = d.connect("slowloris")
        slowloris.send(b"JOIN_CHATROOM: room1\nCLIENT_IP: 0\n")   # and nothing more
        member = d.connect("member")
        ref, jid, _, _ = member.join("room1", "member")
        slow = d.connect("slow-but-done")
        # Cut where no request could end yet: a pause inside "HELO slow" longer
        # than end_quiet_ms would end the HELO there (SPEC §2.4).
        for piece in (b"HEL", b"O slow\n"):
            slow.send(piece)
            time.sleep(0.4)
        slow.expect(helo_reply("slow", d.port))
        slowloris.expect_error(1, timeout=1 + 2 * TIMEOUT, context="a request incomplete for 1 s+")
        slowloris.expect_closed()
        member.chat(ref, jid, "member", "unaffected")
        member.expect_chat(ref, "member", "unaffected")
        slow.ping()


def main():
    failures = []
    for part in (rooms_and_members, clients, rate, idle, request_timeout):
        try:
            part()
        except TestFailure as e:
            failures.append("%s: %s" % (part.__name__, e))
    if failures:
        fail("\n".join(failures))


run(main)
