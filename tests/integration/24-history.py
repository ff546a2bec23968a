#!/usr/bin/env python3
"""24-history: HISTORY returns a room's last N messages, oldest first, with
sender and UTC time; the ring wraps around; N comes from the config (server
default, a room's own, 0 = none); only members' messages are kept (not join,
leave or topic notices), whichever port they were sent on; only members may
ask (errors 1, 2, 3)."""
import os
import re
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

ENTRY_RE = rb"ENTRY: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\nCLIENT_NAME: %s\nMESSAGE: %s\n\n"


def history(c, ref, jid, name):
    """Ask; return the entries as (name, text), checking the exact form."""
    c.send(b"HISTORY: %d\nJOIN_ID: %d\nCLIENT_NAME: %s\n" % (ref, jid, name.encode()))
    head = c.read_until(b"\n", what="HISTORY head") + c.read_until(b"\n", what="COUNT")
    m = re.match(rb"\AHISTORY: %d\nCOUNT: (\d+)\n\Z" % ref, head)
    check(m, "%s: bad HISTORY head %s" % (c.label, show(head)))
    out = []
    for _ in range(int(m.group(1))):
        f = c.expect_frame()
        e = re.match(ENTRY_RE % (rb"(\S+)", rb"([^\n]*)") + rb"\Z", f.raw)
        check(e, "%s: bad history entry %s" % (c.label, show(f.raw)))
        out.append((e.group(1).decode(), e.group(2).decode()))
    return out


def main():
    rooms = {"small": {"ref": 1, "history": 2}, "none": {"ref": 2, "history": 0}}
    with Daemon(limits={"history": 5}, rooms=rooms) as d:
        a = d.connect("alice")
        b = d.connect("bob")
        ref, ida, _, port = a.join("chatter", "alice")
        _, idb, _, _ = b.join("chatter", "bob")
        a.expect(join_announce(ref, "bob"))
        check(history(a, ref, ida, "alice") == [], "history of a new room is not empty")
        # Bob is attached: his messages come over the room port.
        r = d.room_connect(port, "bob-room")
        r.send(attach_req(ref, idb, "bob"))
        r.expect(attached_reply(ref, idb))
        sent = []
        for i in range(12):
            if i % 3 == 2:
                r.send(chat_req(ref, idb, "bob", "msg %d" % i))
                sent.append(("bob", "msg %d" % i))
            else:
                a.chat(ref, ida, "alice", "msg %d" % i)
                sent.append(("alice", "msg %d" % i))
            a.expect_chat(ref, sent[-1][0], sent[-1][1])
            r.expect_chat(ref, sent[-1][0], sent[-1][1])
        # A topic notice and a join are room traffic but not messages.
        a.send(b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: alice\nTOPIC: later\n" % (ref, ida))
        a.expect(b"TOPIC_SET: %d\nTOPIC: later\n" % ref)
        a.expect(chat_frame(ref, "test-id", "alice set the topic: later"))
        r.expect(chat_frame(ref, "test-id", "alice set the topic: later"))
        got = history(a, ref, ida, "alice")
        check(got == sent[-5:], "history after 12 messages (history = 5): expected the last five"
              " in order %s, got %s" % (sent[-5:], got))
        # Asked by the attached member over its control connection: the same.
        check(history(b, ref, idb, "bob") == sent[-5:], "bob's history differs")
        # Errors: not a member (other's JOIN_ID or name), unknown room, bad id.
        b.send(b"HISTORY: %d\nJOIN_ID: %d\nCLIENT_NAME: alice\n" % (ref, ida))
        b.expect_error(3, context="HISTORY with another connection's JOIN_ID")
        b.send(b"HISTORY: 999\nJOIN_ID: %d\nCLIENT_NAME: bob\n" % idb)
        b.expect_error(2, context="HISTORY of an unknown room")
        b.send(b"HISTORY: %d\nJOIN_ID: x\nCLIENT_NAME: bob\n" % ref)
        b.expect_error(1, context="HISTORY with a bad JOIN_ID")
        # A room's own bound, and a room that keeps nothing.
        sref, sid, _, _ = a.join("small", "alice")
        nref, nid, _, _ = a.join("none", "alice")
        for i in range(4):
            a.chat(sref, sid, "alice", "s%d" % i)
            a.expect_chat(sref, "alice", "s%d" % i)
            a.chat(nref, nid, "alice", "n%d" % i)
            a.expect_chat(nref, "alice", "n%d" % i)
        check(history(a, sref, sid, "alice") == [("alice", "s2"), ("alice", "s3")],
              "a room with history = 2 must keep its last two")
        check(history(a, nref, nid, "alice") == [], "a room with history = 0 keeps nothing")
        a.ping()
        d.assert_alive()



def too_much_history():
    """A history bound above the ceiling is refused at start, naming the key."""
    try:
        with Daemon(limits={"history": 20000}, start_timeout=5 * FACTOR):
            pass
    except TestFailure as e:
        check("exited with code 1 before listening" in str(e) and "[limits] history" in str(e),
              "unexpected failure: %s" % e)
        return
    fail("roomd started with history = 20000 (the ceiling is 10000)")


def both():
    main()
    too_much_history()


run(both)
