#!/usr/bin/env python3
"""81-cluster-identity: three nodes behave as one server (issue 15).

Rooms alpha, beta, gamma are created on n1, n2, n3 (by alice, bob, carol,
each on its own node), then each of the three joins all three rooms from
its node. Checked:
  * ROOM_REF of a room name is the same on every node; refs differ
    between names; after every node restarts (SIGTERM, same configs) the
    same names get the same refs again, and a new room a new ref;
  * LIST_ROOMS from every node lists the three rooms with their refs and
    cluster-wide member counts (3); LIST_MEMBERS from every node names
    alice, bob and carol (node of the asker irrelevant);
  * PRIVATE_MESSAGE from n1 to bob on n2 and from bob to carol on n3:
    PRIVATE_SENT COUNT 1 and PRIVATE_FROM at the recipient; to an unknown
    name, and to dave on n3 who never used an extension, error 2;
  * names are cluster-wide: "alice" from another connection, on n1, n2 or
    n3, in her room or another one, is error 5; after her DISCONNECT (her
    leave announced on the other nodes) the name is free on n2.
"""
import os
import re
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import (TIMEOUT, check, disconnect_req, join_req, list_rooms, run,  # noqa: E402
                      show)

ROOMS = ("alpha", "beta", "gamma")
NAMES = ("alice", "bob", "carol")


def list_members(c, ref):
    c.send(b"LIST_MEMBERS: %d\n" % ref)
    head = c.expect_frame()
    check(head.kind == "MEMBERS" and head.fields["MEMBERS"] == str(ref),
          "%s: expected MEMBERS: %d, got %s" % (c.label, ref, show(head.raw)))
    return sorted(c.expect_frame().fields["MEMBER"] for _ in range(int(head.fields["COUNT"])))


def private(c, sender, to, text):
    c.send(b"PRIVATE_MESSAGE: %s\nCLIENT_NAME: %s\nMESSAGE: %s\n\n"
           % (to.encode(), sender.encode(), text.encode()))


def join_everything(cl):
    """alice, bob, carol (n1, n2, n3) in alpha, beta, gamma (created in that
    order on n1, n2, n3); returns ({name: {room: Member}}, {room: ref})."""
    conns = [cl.nodes[i].connect(NAMES[i]) for i in range(3)]
    mem = {n: {} for n in NAMES}
    every = []
    for r, room in enumerate(ROOMS):
        for k in range(3):
            i = (r + k) % 3
            m = Member(cl.nodes[i], NAMES[i], room, conn=conns[i],
                       label="%s@%s/%s" % (NAMES[i], cl.nodes[i].node_id, room))
            mem[NAMES[i]][room] = m
            every.append(m)
            # Announced to every member before the next request (the
            # announcements come on the same control connections).
            pump(every, lambda: all(announced(m.name) in o.chats() for o in every if o.room == room),
                 5 * TIMEOUT, "%s's join in %s announced to every member" % (m.label, room))
    refs = {}
    for room in ROOMS:
        got = {n: mem[n][room].ref for n in NAMES}
        check(len(set(got.values())) == 1, "ROOM_REF of %s differs between nodes: %s" % (room, got))
        refs[room] = got["alice"]
    check(len(set(refs.values())) == 3, "rooms share a ROOM_REF: %s" % refs)
    settle(every, 0.3)
    return mem, refs, conns


def main():
    with Cluster() as cl:
        mem, refs, conns = join_everything(cl)
        listers = [node.connect("lister@" + node.node_id) for node in cl.nodes]
        for c in listers:
            got = sorted((r[0], r[1], r[3]) for r in list_rooms(c))
            check(got == sorted((room, refs[room], 3) for room in ROOMS),
                  "%s: LIST_ROOMS is %s, expected the three rooms with 3 members each" % (c.label, got))
            for room in ROOMS:
                got = list_members(c, refs[room])
                check(got == sorted(NAMES), "%s: LIST_MEMBERS of %s is %s" % (c.label, room, got))

        # Private messages across nodes (bob and carol opt in first).
        alice, bob, carol = conns
        for c in (bob, carol):
            list_rooms(c)
        private(alice, "alice", "bob", "lunch?")
        alice.expect(b"PRIVATE_SENT: bob\nCOUNT: 1\n", what="PRIVATE_SENT to bob on n2")
        bob.expect(b"PRIVATE_FROM: alice\nMESSAGE: lunch?\n\n", what="alice's private message")
        private(bob, "bob", "carol", "on n3?")
        bob.expect(b"PRIVATE_SENT: carol\nCOUNT: 1\n", what="PRIVATE_SENT to carol on n3")
        carol.expect(b"PRIVATE_FROM: bob\nMESSAGE: on n3?\n\n", what="bob's private message")
        private(alice, "alice", "nobody", "hello?")
        alice.expect_error(2, context="a private message to a name nobody holds")
        dave = Member(cl.nodes[2], "dave", "gamma")
        every = [m for n in NAMES for m in mem[n].values()]
        pump(every, lambda: all(m.chats()[-1] == announced("dave") for m in every if m.room == "gamma"),
             5 * TIMEOUT, "dave's join in gamma")
        private(alice, "alice", "dave", "psst")
        alice.expect_error(2, context="a private message to dave (n3), who never opted in")

        # One name, one connection, cluster-wide.
        for i, room in ((0, "alpha"), (1, "alpha"), (2, "beta"), (1, "delta")):
            c = cl.nodes[i].connect("second-alice@%s" % cl.nodes[i].node_id)
            c.send(join_req(room, "alice"))
            c.expect_error(5, context="JOIN %s as alice on %s (alice is on n1)" % (room, cl.nodes[i].node_id))
            c.close()

        # alice disconnects: announced on the other nodes; then the name is free on n2.
        alice.send(disconnect_req("alice"))
        alice.expect_closed()
        others = [m for m in every if m.name != "alice"] + [dave]
        pump(others, lambda: all(m.chats()[-1] == announced("alice", False) for m in others
                                 if m.room in ROOMS),
             5 * TIMEOUT, "alice's leave in every room")
        c = cl.nodes[1].connect("alice-again@n2")
        Member(cl.nodes[1], "alice", "alpha", conn=c)

        # Refs survive a restart of every node; a new room gets a new ref.
        cl.restart_all()
        mem, refs2, conns = join_everything(cl)
        check(refs2 == refs, "ROOM_REFs changed across a restart of every node: %s, then %s"
              % (refs, refs2))
        e = Member(cl.nodes[2], "erin", "epsilon")
        check(e.ref not in refs.values(), "new room epsilon got ref %d, already %s's"
              % (e.ref, [r for r, v in refs.items() if v == e.ref]))
        m = Member(cl.nodes[0], "frank", "epsilon")
        check(m.ref == e.ref, "epsilon: ref %d on n3, %d on n1" % (e.ref, m.ref))


run(main)
