#!/usr/bin/env python3
"""05-disconnect: DISCONNECT and abrupt closes (SPEC §2.1).

DISCONNECT: 0\\nPORT: 0\\nCLIENT_NAME: n\\n announces "n has left this
chatroom." in every room the connection joined, then the server closes the
connection. An abrupt close (FIN, or RST) makes the same announcements. The
name is free again afterwards."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        c1 = d.connect("client1")
        w1 = d.connect("watcher1")
        w2 = d.connect("watcher2")
        ref1, _, _, _ = w1.join("room1", "watcher1")
        ref2, _, _, _ = w2.join("room2", "watcher2")
        r, _, _, _ = c1.join("room1", "client1")
        check(r == ref1, "ROOM_REF of room1 changed")
        w1.expect(join_announce(ref1, "client1"))
        r, _, _, _ = c1.join("room2", "client1")
        check(r == ref2, "ROOM_REF of room2 changed")
        w2.expect(join_announce(ref2, "client1"))

        c1.send(b"DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: client1\n")
        w1.expect(b"CHAT: %d\nCLIENT_NAME: client1\nMESSAGE: client1 has left this chatroom.\n\n" % ref1,
                  what="leave announcement in room1 after DISCONNECT")
        w2.expect(leave_announce(ref2, "client1"), what="leave announcement in room2 after DISCONNECT")
        # The disconnecting client may get its own copies; then the server closes.
        c1.expect_closed(allowed=[leave_announce(ref1, "client1"), leave_announce(ref2, "client1")])
        w1.expect_nothing()
        w2.expect_nothing()

        # The name is free again.
        c1b = d.connect("client1-again")
        c1b.join("room1", "client1")
        w1.expect(join_announce(ref1, "client1"))

        # An abrupt close (FIN, no DISCONNECT) is a disconnect.
        c4 = d.connect("client4")
        c4.join("room1", "client4")
        c4.join("room2", "client4")
        w1.expect(join_announce(ref1, "client4"))
        c1b.expect(join_announce(ref1, "client4"))
        w2.expect(join_announce(ref2, "client4"))
        c4.close()
        w1.expect(leave_announce(ref1, "client4"), what="leave announcement after an abrupt close")
        c1b.expect(leave_announce(ref1, "client4"))
        w2.expect(leave_announce(ref2, "client4"), what="leave announcement after an abrupt close")

        # A reset (RST) is a disconnect too.
        c5 = d.connect("client5", linger0=True)
        c5.join("room2", "client5")
        w2.expect(join_announce(ref2, "client5"))
        c5.close()
        w2.expect(leave_announce(ref2, "client5"), what="leave announcement after a reset")

        # DISCONNECT from a connection that joined nothing: just closed.
        c6 = d.connect("client6")
        c6.ping()
        c6.send(disconnect_req("client6"))
        c6.expect_closed()
        for w in (w1, w2, c1b):
            w.expect_nothing()
        w1.ping()
        d.assert_alive()


run(main)
