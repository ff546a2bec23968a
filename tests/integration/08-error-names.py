#!/usr/bin/env python3
"""08-error-names: errors 4 (invalid name) and 5 (name in use).

max_name = 16. A client or room name with a space or longer than 16 bytes ->
4; exactly 16 is fine. The same name in the same room from another connection
-> 5 (fine in another room); the same connection re-joining under the same
name gets the same JOINED reply again and no second announcement."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon(limits={"max_name": 16}) as d:
        w = d.connect("watcher")
        ref, _, _, _ = w.join("room1", "watcher")
        c = d.connect("c")

        def bad(code, room, name, what):
            c.send(join_req(room, name))
            c.expect_error(code, context=what)
            c.ping()
            w.expect_nothing()

        bad(4, "room1", "a\tb", "JOIN with client name 'a<TAB>b'")
        bad(4, "room1", "a/b", "JOIN with client name 'a/b'")
        bad(4, "room1", "x" * 17, "JOIN with a 17-byte client name (max_name 16)")
        bad(4, "bad/room", "alice", "JOIN of room 'bad/room'")
        bad(4, "r" * 17, "alice", "JOIN of a 17-byte room name (max_name 16)")

        # The boundary: 16 bytes is valid.
        long_name = "n" * 16
        r, _, _, _ = c.join("room1", long_name)
        check(r == ref, "ROOM_REF of room1 changed")
        w.expect(join_announce(ref, long_name))

        # alice in room1 ...
        a = d.connect("alice")
        send = join_req("room1", "alice")
        a.send(send)
        first = a.expect_frame()
        check(first.kind == "JOINED", "JOIN as alice: %s" % show(first.raw))
        a.expect(join_announce(ref, "alice"))
        w.expect(join_announce(ref, "alice"))
        c.expect(join_announce(ref, "alice"))

        # ... so another connection cannot be alice there: 5.
        b = d.connect("bob")
        b.send(join_req("room1", "alice"))
        b.expect_error(5, context="JOIN room1 as alice from another connection")
        for x in (a, c, w):
            x.expect_nothing()
        b.ping()
        # Nor anywhere else: names are server wide (SPEC 2.1, issue 10), and
        # no room is opened for the refused JOIN.
        b.send(join_req("room2", "alice"))
        b.expect_error(5, context="JOIN room2 as alice from another connection")
        check(all(r[0] != "room2" for r in list_rooms(b)), "room2 was opened for a refused JOIN")
        # The holder may use its name in another room.
        a.join("room2", "alice")
        a.ping()

        # The same connection re-joining as alice: the same reply, no announcement.
        a.send(send)
        a.expect(first.raw, what="JOINED reply to a repeated JOIN (must be the first reply again)")
        for x in (a, c, w, b):
            x.expect_nothing()
        a.ping()
        d.assert_alive()


run(main)
