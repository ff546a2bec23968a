#!/usr/bin/env python3
"""04-leave: LEAVE_CHATROOM (SPEC §2.1 and its semantics).

LEFT_CHATROOM: ref\\nJOIN_ID: id\\n then the leave announcement to the leaver
and the others; afterwards the leaver gets no CHAT of that room but keeps its
other rooms; a repeated LEAVE (or one for a never-live JOIN_ID) gets the same
LEFT reply and no announcement; a LEAVE with a JOIN_ID live on another
connection gets that same echo too (SPEC §2.1 as changed by issue 10: no
reply may tell an outsider which ids are live) and leaves that member in
the room."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        c1, c2, ref1, _, id1, id2 = d.two_members()
        ref2, id1r2, _, _ = c1.join("room2", "client1")

        # The leave: exact reply, then the announcement to both.
        c1.send(b"LEAVE_CHATROOM: %d\nJOIN_ID: %d\nCLIENT_NAME: client1\n" % (ref1, id1))
        c1.expect(b"LEFT_CHATROOM: %d\nJOIN_ID: %d\n" % (ref1, id1), what="LEFT_CHATROOM reply")
        c1.expect(b"CHAT: %d\nCLIENT_NAME: client1\nMESSAGE: client1 has left this chatroom.\n\n" % ref1,
                  what="leaver's own copy of the leave announcement")
        c2.expect(leave_announce(ref1, "client1"), what="client1's leave announcement")

        # No more room1 traffic for client1 ...
        c2.chat(ref1, id2, "client2", "after the leave")
        c2.expect_chat(ref1, "client2", "after the leave")
        c1.expect_nothing()
        # ... but room2 traffic still arrives.
        _, id2r2, _, _ = c2.join("room2", "client2")
        c1.expect(join_announce(ref2, "client2"), what="room2 announcement after leaving room1")
        c2.chat(ref2, id2r2, "client2", "room2 still works")
        c1.expect_chat(ref2, "client2", "room2 still works")
        c2.expect_chat(ref2, "client2", "room2 still works")

        # Repeating the LEAVE: the same reply, no second announcement.
        c1.send(leave_req(ref1, id1, "client1"))
        c1.expect(left_reply(ref1, id1), what="LEFT reply to a repeated LEAVE")
        c1.expect_nothing()
        c2.expect_nothing()

        # A LEAVE for a JOIN_ID that never was live: the same LEFT reply.
        never = 2147480000
        while never in (id1, id2, id1r2, id2r2):
            never += 1
        c1.send(leave_req(ref1, never, "client1"))
        c1.expect(left_reply(ref1, never), what="LEFT reply for a never-live JOIN_ID")
        c1.expect_nothing()
        c2.expect_nothing()

        # Nobody can make someone else leave, and the answer is the echo a
        # dead id gets: client2 stays.
        c1.send(leave_req(ref1, id2, "client2"))
        c1.expect(left_reply(ref1, id2), what="LEFT echo for another connection's JOIN_ID")
        c1.expect_nothing()
        c2.expect_nothing()
        c3 = d.connect("client3")
        _, id3, _, _ = c3.join("room1", "client3")
        c2.expect(join_announce(ref1, "client3"), what="client2 still in room1")
        c3.chat(ref1, id3, "client3", "is client2 here?")
        c2.expect_chat(ref1, "client3", "is client2 here?")
        c3.expect_chat(ref1, "client3", "is client2 here?")
        c1.expect_nothing()
        c1.ping()

        # Leaving the last room: the connection stays usable.
        c1.leave(ref2, id1r2, "client1")
        c2.expect(leave_announce(ref2, "client1"))
        c1.ping()
        d.assert_alive()


run(main)
