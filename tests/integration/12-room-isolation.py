#!/usr/bin/env python3
"""12-room-isolation: rooms do not leak, and one connection serves many rooms.

client1 in room1, client2 in room2, client3 in both. room1 traffic reaches
client1 and client3 only, with room1's ref; room2 traffic client2 and client3
only, with room2's ref; client3 speaks in each room with the right JOIN_ID.
client3 leaving room1 keeps room2."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        c1, c2, c3 = d.connect("client1"), d.connect("client2"), d.connect("client3")
        ref1, id1, _, port1 = c1.join("room1", "client1")
        ref2, id2, _, port2 = c2.join("room2", "client2")
        check(ref1 != ref2, "room1 and room2 share a ROOM_REF")
        check(port1 != port2, "room1 and room2 share a port")
        r, id31, _, _ = c3.join("room1", "client3")
        check(r == ref1, "ROOM_REF of room1 changed")
        c1.expect(join_announce(ref1, "client3"))
        r, id32, _, _ = c3.join("room2", "client3")
        check(r == ref2, "ROOM_REF of room2 changed")
        c2.expect(join_announce(ref2, "client3"))
        c1.expect_nothing(0.1)

        c1.chat(ref1, id1, "client1", "room1 only")
        c1.expect_chat(ref1, "client1", "room1 only")
        c3.expect_chat(ref1, "client1", "room1 only")
        c2.expect_nothing()

        c2.chat(ref2, id2, "client2", "room2 only")
        c2.expect_chat(ref2, "client2", "room2 only")
        c3.expect_chat(ref2, "client2", "room2 only")
        c1.expect_nothing()

        c3.chat(ref1, id31, "client3", "to room1")
        c3.chat(ref2, id32, "client3", "to room2")
        c1.expect_chat(ref1, "client3", "to room1")
        c2.expect_chat(ref2, "client3", "to room2")
        # client3 gets both, each with its own ref (two room threads: any order).
        c3.expect_unordered([chat_frame(ref1, "client3", "to room1"),
                             chat_frame(ref2, "client3", "to room2")], what="own messages to both rooms")
        for c in (c1, c2, c3):
            c.expect_nothing()

        # The JOIN_ID of room1 does not open room2.
        c3.send(chat_req(ref2, id31, "client3", "crossed"))
        c3.expect_error(3, context="CHAT to room2 with the room1 JOIN_ID")
        c2.expect_nothing()

        c3.leave(ref1, id31, "client3")
        c1.expect(leave_announce(ref1, "client3"))
        c2.expect_nothing()
        c2.chat(ref2, id2, "client2", "still in room2?")
        c3.expect_chat(ref2, "client2", "still in room2?")
        c2.expect_chat(ref2, "client2", "still in room2?")
        c1.chat(ref1, id1, "client1", "room1 again")
        c1.expect_chat(ref1, "client1", "room1 again")
        c3.expect_nothing()
        c2.expect_nothing()
        d.assert_alive()


run(main)
