#!/usr/bin/env python3
"""14-attach-traffic: room port attach (SPEC §2.2).

ATTACH_CHATROOM: ref\\nJOIN_ID: id\\nCLIENT_NAME: n\\n on the room port ->
ATTACHED_CHATROOM: ref\\nJOIN_ID: id\\n. Afterwards that member's room traffic
arrives on the room connection and not on the control connection; CHAT
requests sent on the room connection (or still on control) are relayed; its
other, unattached rooms still arrive on control. LEAVE on control closes the
room connection, and the leaver's own announcement arrives exactly once."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        c1, c2, ref, port, id1, id2 = d.two_members(label_a="client1-control")

        r1 = d.room_connect(port, "client1-room")
        r1.send(b"ATTACH_CHATROOM: %d\nJOIN_ID: %d\nCLIENT_NAME: client1\n" % (ref, id1))
        r1.expect(b"ATTACHED_CHATROOM: %d\nJOIN_ID: %d\n" % (ref, id1), what="ATTACHED reply")
        c1.expect_nothing(0.1)
        c2.expect_nothing(0.1)

        # Traffic from another member: room connection, not control.
        c2.chat(ref, id2, "client2", "after attach")
        r1.expect_chat(ref, "client2", "after attach")
        c2.expect_chat(ref, "client2", "after attach")
        c1.expect_nothing()

        # CHAT on the room connection: relayed, the echo on the room connection.
        r1.send(chat_req(ref, id1, "client1", "via the room port"))
        r1.expect_chat(ref, "client1", "via the room port")
        c2.expect_chat(ref, "client1", "via the room port")
        c1.expect_nothing()

        # CHAT still accepted on control; delivered on the room connection.
        c1.chat(ref, id1, "client1", "via control")
        r1.expect_chat(ref, "client1", "via control")
        c2.expect_chat(ref, "client1", "via control")
        c1.expect_nothing()

        # Announcements are room traffic too.
        c3 = d.connect("client3")
        c3.join("room1", "client3")
        r1.expect(join_announce(ref, "client3"), what="join announcement on the room connection")
        c2.expect(join_announce(ref, "client3"))
        c1.expect_nothing()

        # A room not attached keeps coming on control.
        ref2, _, _, port2 = c1.join("room2", "client1")
        check(port2 != port, "room2 has room1's port")
        c4 = d.connect("client4")
        _, id4, _, _ = c4.join("room2", "client4")
        c1.expect(join_announce(ref2, "client4"), what="room2 traffic on control")
        c4.chat(ref2, id4, "client4", "room2 message")
        c1.expect_chat(ref2, "client4", "room2 message")
        c4.expect_chat(ref2, "client4", "room2 message")
        r1.expect_nothing()

        # Leaving room1 on control: LEFT on control, the room connection closes,
        # and the leaver's own announcement comes once (on either connection).
        c1.send(leave_req(ref, id1, "client1"))
        c1.expect(left_reply(ref, id1), what="LEFT reply on control")
        bye = leave_announce(ref, "client1")
        seen_room = r1.expect_closed(allowed=[bye])
        rest = c1.collect(QUIET)
        count = len(seen_room) + rest.count(bye)
        check(rest in (b"", bye), "control connection got unexpected bytes after LEFT: %s" % show(rest))
        check(count == 1, "leaver's own leave announcement arrived %d times (room conn %d, control %d)"
              % (count, len(seen_room), rest.count(bye)))
        c2.expect(bye)
        c3.expect(bye)
        # room2 is unaffected.
        c4.chat(ref2, id4, "client4", "room2 again")
        c1.expect_chat(ref2, "client4", "room2 again")
        c1.ping()
        d.assert_alive()


run(main)
