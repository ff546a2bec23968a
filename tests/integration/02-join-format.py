#!/usr/bin/env python3
"""02-join-format: JOIN_CHATROOM reply and announcements, exact bytes (SPEC §2.1).

JOINED_CHATROOM: room\\nSERVER_IP: 127.0.0.1\\nPORT: p\\nROOM_REF: r\\nJOIN_ID: j\\n
then "<name> has joined this chatroom." to every member incl. the joiner.
ROOM_REF is stable for a name (also after the room empties), differs between
rooms; JOIN_IDs are positive, distinct and not a simple counter; the room port
is listening and is not the control port."""
import os
import socket
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403


def main():
    with Daemon() as d:
        c1 = d.connect("client1")
        c1.send(b"JOIN_CHATROOM: room1\nCLIENT_IP: 0\nPORT: 0\nCLIENT_NAME: client1\n")
        f = c1.expect_frame()
        m = re.match(rb"\AJOINED_CHATROOM: room1\nSERVER_IP: 127\.0\.0\.1\nPORT: ([1-9]\d*)\n"
                     rb"ROOM_REF: ([1-9]\d*)\nJOIN_ID: ([1-9]\d*)\n\Z", f.raw)
        check(m, "JOINED reply not in the SPEC form: %s" % show(f.raw))
        port, ref, id1 = int(m.group(1)), int(m.group(2)), int(m.group(3))
        check(port != d.port, "room port %d is the control port" % port)
        check(id1 < 2 ** 31, "JOIN_ID %d is not a 31-bit integer" % id1)
        c1.expect(b"CHAT: %d\nCLIENT_NAME: client1\nMESSAGE: client1 has joined this chatroom.\n\n" % ref,
                  what="own join announcement")
        c1.expect_nothing()

        # The room port accepts connections.
        s = socket.create_connection((HOST, port), timeout=TIMEOUT)
        s.close()

        # A second member: same ref, another JOIN_ID; both get its announcement.
        c2 = d.connect("client2")
        ref2, id2, _, port2 = c2.join("room1", "client2")
        check(ref2 == ref, "ROOM_REF for room1 changed: %d then %d" % (ref, ref2))
        check(port2 == port, "room1's port changed: %d then %d" % (port, port2))
        check(id2 != id1, "two memberships got the same JOIN_ID %d" % id1)
        c1.expect(join_announce(ref, "client2"), what="client2's join announcement")
        c2.expect_nothing()
        c1.expect_nothing()

        # Another room: another ref and port.
        ref3, id3, _, port3 = c1.join("room2", "client1")
        check(ref3 != ref, "room1 and room2 share ROOM_REF %d" % ref)
        check(port3 != port and port3 != d.port, "room2's port %d is not its own" % port3)
        check(id3 not in (id1, id2), "JOIN_ID %d reused" % id3)
        c2.expect_nothing()

        # Every member gets the join announcement; the ids stay distinct.
        ids = [id1, id2, id3]
        others = []
        for i in range(3, 8):
            c = d.connect("client%d" % i)
            r, j, _, _ = c.join("room1", "client%d" % i)
            check(r == ref, "ROOM_REF for room1 changed to %d" % r)
            check(j not in ids, "JOIN_ID %d reused" % j)
            ids.append(j)
            for o in [c1, c2] + others:
                o.expect(join_announce(ref, "client%d" % i), what="join announcement of client%d" % i)
            others.append(c)
        diffs = {b - a for a, b in zip(ids, ids[1:])}
        check(diffs != {1}, "JOIN_IDs are a counter (%s): guessable, SPEC says random" % ids)

        # A room created on demand that empties with no history is forgotten
        # (issue 10: bounded room tables): joined again, it gets a new ref,
        # never one handed out before.
        for c in [c1, c2] + others:
            c.close()
        time.sleep(0.2 * FACTOR)
        c9 = d.connect("client9")
        r, _, _, _ = c9.join("room1", "client9")
        check(r > ref, "ROOM_REF for room1 after it was forgotten: %d then %d (must be new)" % (ref, r))
        d.assert_alive()


run(main)
