#!/usr/bin/env python3
"""86-cluster-room-isolation: different room names are different rooms on
every node (issue 15: one ROOM_REF per room name, cluster-wide).

Pairs of rooms, each room created on another node by a member who is its
only member there: the pair "room58498"/"room68665" (names whose 32-bit
FNV-1a hashes agree modulo 2^31 - 2^20: a ref derived from the name alone
would give both the same ref, and the same stream), and a few ordinary
names. Checked:
  * every room's ROOM_REF is the same on every node and differs from
    every other room's;
  * a member receives only its own room's traffic (its own join, its own
    messages, and those of the room's other member, who joined it on the
    third node);
  * LIST_ROOMS on each node lists every room once, with its own ref.
"""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import TIMEOUT, check, list_rooms, run  # noqa: E402

PAIRS = (("room58498", "room68665"), ("north", "south"))


def only_own(members):
    """Fails at once when a member got a frame of a member of another room."""
    for m in members:
        for sender, text in m.chats():
            check(sender.startswith(m.room + "-"), "%s (room %s, ref %d) received a frame of %s, a member "
                  "of another room: %r" % (m.label, m.room, m.ref, sender, text))
    return True


def main():
    with Cluster() as cl:
        mem = {}
        for x, y in PAIRS:
            mem[x] = [cl.member(0, "%s-a" % x, x)]
            mem[y] = [cl.member(1, "%s-a" % y, y)]
        for room in mem:
            mem[room].append(cl.member(2, "%s-b" % room, room))
            pump(mem[room], lambda: only_own(mem[room]) and announced("%s-b" % room) in mem[room][0].chats(),
                 5 * TIMEOUT, "%s-b's join in %s" % (room, room))
        refs = {}
        for room, (a, b) in mem.items():
            check(a.ref == b.ref, "%s: ROOM_REF %d on %s, %d on %s" % (room, a.ref, a.label, b.ref, b.label))
            refs[room] = a.ref
        check(len(set(refs.values())) == len(refs), "rooms share a ROOM_REF: %s" % refs)

        every = [m for ms in mem.values() for m in ms]
        for m in every:
            m.chat("%s in %s" % (m.name, m.room))
        pump(every, lambda: only_own(every) and all(sum(1 for f in m.chats() if " in " in f[1]) >= 2
                                                    for m in every),
             5 * TIMEOUT, "each room's two messages")
        settle(every, 0.5)
        for room, (a, b) in mem.items():
            want = [announced(a.name), announced(b.name), (a.name, "%s in %s" % (a.name, room)),
                    (b.name, "%s in %s" % (b.name, room))]
            for m, expect in ((a, want), (b, want[1:])):   # b joined after a
                check(sorted(m.chats()) == sorted(expect),
                      "%s: %s received %s; its room's traffic is %s" % (room, m.label, m.chats(), expect))
        for node in cl.nodes:
            c = node.connect("lister@" + node.node_id)
            got = sorted((r[0], r[1]) for r in list_rooms(c))
            check(got == sorted(refs.items()), "%s: LIST_ROOMS %s, expected %s"
                  % (node.node_id, got, sorted(refs.items())))
            c.close()


run(main)
