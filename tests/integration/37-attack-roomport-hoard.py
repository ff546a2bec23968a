#!/usr/bin/env python3
"""37-attack-roomport-hoard: issue 10, attack 4 (descriptors through room ports).

One address (127.0.0.1) opens many connections to room ports and never
attaches. It holds at most room_unattached_max = 8 of them per room (a new
one pushes out its own oldest) and at most max_clients_per_ip in all
(control connections included: they share the per-address count); the
others are refused or pushed out (error 7, or 9 when over
connect_rate_per_ip) and closed. The ones it holds are closed after the
attach deadline (3 s). Meanwhile a member from another address (127.0.0.2)
joins and attaches, pushing out one of the hoarded places; and when two
hoarding addresses fill a room's 8 places, a newcomer still attaches."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

PER_IP = 10         # max_clients_per_ip in this test
UNATTACHED = 8      # room_unattached_max (the default)
ATTACH_DEADLINE = 3.0  # server/room.c ROOM_ATTACH_TIMEOUT_MS
TRIES_PER_ROOM = 12
PUSHED_OUT = b"ERROR_CODE: 7\nERROR_DESCRIPTION: too many unattached room connections\n"


def open_many(d, port, tries, source=None, label="hoard"):
    conns = []
    for i in range(tries):
        try:
            c = d.room_connect(port, "%s-%d" % (label, i), source=source)
        except TestFailure:
            break  # the backlog is full: as good as refused
        c.opened = time.monotonic()
        conns.append(c)
    return conns


def classify(groups):
    """After a wait, split each group of connections into (held, refused).
    Every refusal or push-out comes with an error frame; a connection the
    attach deadline closes gets none, so a late look cannot mistake one for
    the other."""
    time.sleep(min(2.0, ATTACH_DEADLINE - 0.5))
    out = []
    for conns in groups:
        held, refused = [], []
        for c in conns:
            (refused if c.collect(0.01) else held).append(c)
        out.append((held, refused))
    return out


def main():
    rooms = ["r%d" % i for i in range(3)]
    with Daemon(limits={"max_clients_per_ip": PER_IP}, rooms=rooms) as d:
        ctl = d.connect("attacker-control")
        ports, ids = [], []
        for room in rooms:
            _, jid, _, port = ctl.join(room, "hoarder")
            ports.append(port)
            ids.append(jid)
        total_held = 0
        all_held = []
        per_room = []
        groups = [open_many(d, port, TRIES_PER_ROOM) for port in ports]
        for held, refused in classify(groups):
            check(len(held) <= UNATTACHED,
                  "one address holds %d unattached connections in one room (bound %d)"
                  % (len(held), UNATTACHED))
            per_room.append(len(held))
            total_held += len(held)
            all_held += held
        check(total_held + 1 <= PER_IP,
              "one address holds %d room connections and a control one (max_clients_per_ip %d)"
              % (total_held, PER_IP))
        check(total_held >= 1, "nothing held at all: the test proves nothing")
        print("attack 4: one address tried %d room connections in %d rooms: held %d %s "
              "(at most %d a room, %d with its control connection in all), the rest refused"
              % (TRIES_PER_ROOM * len(ports), len(ports), total_held, per_room, UNATTACHED, PER_IP))

        # A member from another address joins and attaches meanwhile.
        m = d.connect("member", source="127.0.0.2")
        ref, jid, _, port = m.join(rooms[0], "member")
        ctl.expect(join_announce(ref, "member"))
        r = d.room_connect(port, "member-room", source="127.0.0.2")
        r.send(attach_req(ref, jid, "member"))
        r.expect(attached_reply(ref, jid), what="ATTACHED for a member while one address hoards")
        ctl.chat(ref, ids[0], "hoarder", "hi")
        r.expect_chat(ref, "hoarder", "hi")
        ctl.expect_chat(ref, "hoarder", "hi")

        # The hoarded connections are closed at the attach deadline (one of
        # them may have made way for the member: closed earlier).
        closed_after = 0.0
        for c in all_held:
            c.expect_closed(timeout=ATTACH_DEADLINE + 1.0 + TIMEOUT, allowed=[PUSHED_OUT])
            closed_after = max(closed_after, time.monotonic() - c.opened)
        check(closed_after <= ATTACH_DEADLINE + 1.0 + TIMEOUT,
              "unattached connections lived %.1fs" % closed_after)
        print("attack 4: the %d unattached connections were closed at most %.1fs after they opened "
              "(deadline %.0fs)" % (len(all_held), closed_after, ATTACH_DEADLINE))

        # Two hoarding addresses fill one room's places; a newcomer still gets in.
        (held1, _), (held3, _) = classify([
            open_many(d, ports[1], UNATTACHED // 2, label="hoard-a"),
            open_many(d, ports[1], UNATTACHED // 2, source="127.0.0.3", label="hoard-b")])
        check(len(held1) + len(held3) == UNATTACHED,
              "two addresses should fill the %d places, held %d" % (UNATTACHED, len(held1) + len(held3)))
        m2 = d.connect("member2", source="127.0.0.2")
        ref1, jid2, _, port1 = m2.join(rooms[1], "member2")
        ctl.expect(join_announce(ref1, "member2"))
        r2 = d.room_connect(port1, "member2-room", source="127.0.0.2")
        r2.send(attach_req(ref1, jid2, "member2"))
        r2.expect(attached_reply(ref1, jid2), what="ATTACHED with every pending place taken")
        pushed = 0
        for c in held1 + held3:
            pushed += c.collect(0.05) == PUSHED_OUT
        check(pushed >= 1, "a newcomer found the places full but nobody was pushed out")
        print("attack 4: with all %d places of a room held by two addresses, a member from a third "
              "attached (%d hoarded connection(s) pushed out)" % (UNATTACHED, pushed))
        m2.ping()
        d.assert_alive()


run(main)
