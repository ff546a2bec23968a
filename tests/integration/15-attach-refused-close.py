#!/usr/bin/env python3
"""15-attach-refused-close: room port attach refusals and closes (SPEC §2.2).

ATTACH with a wrong JOIN_ID, a wrong name, or another member's JOIN_ID ->
ERROR_CODE: 3 and the room connection is closed; the member keeps receiving
on control. After a successful attach, DISCONNECT on control closes the room
connection too, and so does an abrupt close of the control connection."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        c1, c2, ref, port, id1, id2 = d.two_members()
        never = 2147480000
        while never in (id1, id2):
            never += 1

        cases = [
            (attach_req(ref, never, "client1"), "ATTACH with a JOIN_ID never issued"),
            (attach_req(ref, id1, "client2"), "ATTACH with client1's JOIN_ID and client2's name"),
            (attach_req(ref, id2, "client1"), "ATTACH with client2's JOIN_ID and client1's name"),
            (attach_req(ref, id1, "nobody"), "ATTACH with a wrong name"),
        ]
        for req, what in cases:
            r = d.room_connect(port, "room-conn")
            r.send(req)
            r.expect_error(3, context=what)
            r.expect_closed()
            # Nothing changed: client1 still gets room1 traffic on control.
            c2.chat(ref, id2, "client2", "after a refused attach")
            c1.expect_chat(ref, "client2", "after a refused attach")
            c2.expect_chat(ref, "client2", "after a refused attach")

        # Attach, then DISCONNECT on control: both connections close.
        r1 = d.room_connect(port, "client1-room")
        r1.send(attach_req(ref, id1, "client1"))
        r1.expect(attached_reply(ref, id1), what="ATTACHED reply")
        c2.chat(ref, id2, "client2", "hello attached")
        r1.expect_chat(ref, "client2", "hello attached")
        c2.expect_chat(ref, "client2", "hello attached")
        c1.expect_nothing()
        c1.send(disconnect_req("client1"))
        bye = leave_announce(ref, "client1")
        c2.expect(bye, what="leave announcement after DISCONNECT")
        r1.expect_closed(allowed=[bye])
        c1.expect_closed(allowed=[bye])

        # Attach, then an abrupt close of control: the room connection closes.
        c3 = d.connect("client3")
        _, id3, _, _ = c3.join("room1", "client3")
        c2.expect(join_announce(ref, "client3"))
        r3 = d.room_connect(port, "client3-room")
        r3.send(attach_req(ref, id3, "client3"))
        r3.expect(attached_reply(ref, id3))
        c3.close()
        c2.expect(leave_announce(ref, "client3"), what="leave announcement after an abrupt close")
        r3.expect_closed(allowed=[leave_announce(ref, "client3")])

        c2.ping()
        d.assert_alive()


run(main)
