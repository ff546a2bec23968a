#!/usr/bin/env python3
"""06-error-malformed: error 1, malformed requests (SPEC §2.1 errors).

Unknown command, a line that is no request, a JOIN with a field missing, a
CHAT/LEAVE with a bad JOIN_ID or ROOM_REF: each gets exactly
ERROR_CODE: 1\\nERROR_DESCRIPTION: <text>\\n, changes nothing (no relay, no
announcement), and the connection stays usable (HELO round trip, relay)."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        w = d.connect("watcher")
        ref, _, _, _ = w.join("room1", "watcher")
        c = d.connect("client1")

        def bad(req, what):
            c.send(req)
            c.expect_error(1, context=what + ": " + show(req))
            c.ping()
            w.expect_nothing()

        bad(b"FOO: bar\n", "unknown command")
        bad(b"FOO: bar\n\n", "unknown command with a blank line")
        bad(b"hello there\n", "a line that is no request")
        # JOIN with CLIENT_NAME missing, ended by a blank line. (CLIENT_IP and
        # PORT may be missing: SPEC §2.4.)
        bad(b"JOIN_CHATROOM: room1\nCLIENT_IP: 0\nPORT: 0\n\n", "JOIN with CLIENT_NAME missing")
        # JOIN cut short by the next request's head: error, then that request.
        c.send(b"JOIN_CHATROOM: room1\nCLIENT_IP: 0\nPORT: 0\nHELO next\n")
        c.expect_error(1, context="JOIN interrupted by a HELO")
        c.expect(helo_reply("next", d.port), what="HELO that followed the broken JOIN")
        w.expect_nothing()

        # Now a member, for CHAT and LEAVE.
        r, jid, _, _ = c.join("room1", "client1")
        check(r == ref, "ROOM_REF of room1 changed")
        w.expect(join_announce(ref, "client1"))

        def bad_member(req, what):
            c.send(req)
            c.expect_error(1, context=what + ": " + show(req))
            c.chat(ref, jid, "client1", "still here")
            c.expect_chat(ref, "client1", "still here")
            w.expect_chat(ref, "client1", "still here")
            w.expect_nothing()

        bad_member(b"CHAT: %d\nJOIN_ID: abc\nCLIENT_NAME: client1\nMESSAGE: x\n\n" % ref, "CHAT with JOIN_ID abc")
        bad_member(b"CHAT: xyz\nJOIN_ID: %d\nCLIENT_NAME: client1\nMESSAGE: x\n\n" % jid, "CHAT with ROOM_REF xyz")
        bad_member(b"CHAT: %d\nJOIN_ID: %d\nMESSAGE: x\n\n" % (ref, jid), "CHAT without CLIENT_NAME")
        bad_member(b"LEAVE_CHATROOM: %d\nJOIN_ID: abc\nCLIENT_NAME: client1\n" % ref, "LEAVE with JOIN_ID abc")
        bad_member(b"LEAVE_CHATROOM: %d\nCLIENT_NAME: client1\n\n" % ref, "LEAVE without JOIN_ID")
        # (PORT may be missing: SPEC §2.4; CLIENT_NAME may not.)
        bad_member(b"DISCONNECT: 0\nPORT: 0\n\n", "DISCONNECT without CLIENT_NAME")
        c.ping()
        d.assert_alive()


run(main)
