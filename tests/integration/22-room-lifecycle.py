#!/usr/bin/env python3
"""22-room-lifecycle: a room created on demand ends its thread and port when
its last member leaves (however it leaves); with no history (and no
database here) it is forgotten, so the next JOIN brings it back under a new
ROOM_REF, never one handed out before (issue 10: bounded room tables; it
kept its ref before); a configured room stays open with no members; a JOIN
racing the room's end is served by a fresh room thread."""
import os
import socket
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def fd_count(d):
    return len(os.listdir("/proc/%d/fd" % d.proc.pid))


def fd_list(d):
    fds = "/proc/%d/fd" % d.proc.pid
    return " ".join(sorted("%s:%s" % (n, os.readlink(os.path.join(fds, n))) for n in os.listdir(fds)))


def wait_for(cond, what, d=None):
    deadline = time.monotonic() + TIMEOUT * 2
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    fail("timed out waiting for " + what + ("\n  daemon fds: " + fd_list(d) if d else ""))


def port_closed(port):
    s = socket.socket()
    try:
        return s.connect_ex((HOST, port)) != 0
    finally:
        s.close()


def main():
    with Daemon(rooms={"lobby": {"ref": 1}}) as d:
        a = d.connect("a")
        b = d.connect("b")
        a.ping()
        b.ping()  # both accepted before the baseline is taken
        base = fd_count(d)

        # Last member leaves by LEAVE: the room's port and thread go.
        ref, jid, _, port = a.join("pop-up", "a")
        check(fd_count(d) > base, "a new room holds no descriptors?")
        a.leave(ref, jid, "a")
        wait_for(lambda: port_closed(port), "the empty room's port to close")
        wait_for(lambda: fd_count(d) == base, "the room's descriptors to be freed (%d -> %d)"
                 % (base, fd_count(d)), d)
        check("room pop-up closed" in d.stderr(), "no log line for the room's end")

        # Forgotten: the name comes back under a new ref, and works.
        ref2, jid2, _, port2 = b.join("pop-up", "b")
        check(ref2 > ref, "ROOM_REF after the room was forgotten: %d -> %d (must be new)" % (ref, ref2))
        r = d.room_connect(port2, "b-room")
        r.send(attach_req(ref2, jid2, "b"))
        r.expect(attached_reply(ref2, jid2))
        r.send(chat_req(ref2, jid2, "b", "back again"))
        r.expect_chat(ref2, "b", "back again")

        # Last member leaves by an abrupt close: same end.
        b.close()
        r.expect_closed()
        wait_for(lambda: port_closed(port2), "the room's port to close after an abrupt close")
        wait_for(lambda: fd_count(d) == base - 1, "descriptors back after the abrupt close", d)

        # A JOIN right after the last LEAVE, in one segment: served by a
        # fresh thread, under a new ref, both replies in order.
        c = d.connect("c")
        ref3, jid3, _, _ = c.join("pop-up", "c")
        check(ref3 > ref2, "ROOM_REF after the room was forgotten again: %d -> %d" % (ref2, ref3))
        c.send(leave_req(ref3, jid3, "c") + join_req("pop-up", "c"))
        c.expect(left_reply(ref3, jid3))
        c.expect(leave_announce(ref3, "c"))
        f = c.expect_frame()
        check(f.raw.startswith(b"JOINED_CHATROOM: pop-up\n") and b"ROOM_REF: %d\n" % (ref3 + 1) in f.raw,
              "re-join after the room ended (expected ref %d): %s" % (ref3 + 1, show(f.raw)))
        c.expect(join_announce(ref3 + 1, "c"))

        # A configured room stays open without members.
        lref, ljid, _, lport = a.join("lobby", "a")
        a.leave(lref, ljid, "a")
        time.sleep(0.3)
        check(not port_closed(lport), "a configured room closed when it emptied")
        d.assert_alive()


run(main)
