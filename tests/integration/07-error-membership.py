#!/usr/bin/env python3
"""07-error-membership: errors 2 (no such room) and 3 (not a member).

CHAT/LEAVE with an unknown ROOM_REF -> 2. CHAT with another connection's
JOIN_ID (impersonation), with the right JOIN_ID but another CLIENT_NAME, with a
JOIN_ID never issued, or with a JOIN_ID of another room -> 3. Nothing is
relayed; the connection stays usable."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        c1, c2, ref1, _, id1, id2 = d.two_members()
        c3 = d.connect("client3")
        ref2, id3, _, _ = c3.join("room2", "client3")
        unknown_ref = max(ref1, ref2) + 1000
        never = 2147480000
        while never in (id1, id2, id3):
            never += 1

        def refused(code, req, what):
            c1.send(req)
            c1.expect_error(code, context=what + ": " + show(req))
            expect_nothing_all((c1, c2, c3))
            # Still a working member.
            c1.chat(ref1, id1, "client1", "ok")
            c1.expect_chat(ref1, "client1", "ok")
            c2.expect_chat(ref1, "client1", "ok")
            c3.expect_nothing(0.05)

        refused(2, chat_req(unknown_ref, id1, "client1", "to nowhere"), "CHAT to an unknown ROOM_REF")
        refused(2, leave_req(unknown_ref, id1, "client1"), "LEAVE of an unknown ROOM_REF")
        refused(3, chat_req(ref1, id2, "client2", "I am client2"), "CHAT with client2's JOIN_ID")
        refused(3, chat_req(ref1, id1, "client2", "I am client2"), "CHAT with own JOIN_ID but client2's name")
        refused(3, chat_req(ref1, never, "client1", "guess"), "CHAT with a JOIN_ID never issued")
        refused(3, chat_req(ref2, id1, "client1", "wrong room"), "CHAT to room2 with a room1 JOIN_ID")
        refused(3, chat_req(ref2, id3, "client3", "I am client3"), "CHAT to room2 with client3's JOIN_ID")
        c1.ping()

        # A member that left can no longer speak.
        c2.leave(ref1, id2, "client2")
        c1.expect(leave_announce(ref1, "client2"))
        c2.send(chat_req(ref1, id2, "client2", "ghost"))
        c2.expect_error(3, context="CHAT after LEAVE")
        c1.expect_nothing()
        c2.ping()
        d.assert_alive()


run(main)
