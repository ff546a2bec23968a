#!/usr/bin/env python3
"""82-cluster-node-kill: kill -9 of a node (issue 15).

Room "k" has a plain and an attached member on each of n1, n2, n3; c1
(n3) is also in room "k2" with b1 (n2). Everyone chats; while messages
are in flight, once n1 has relayed some of n3's, n3 is killed with
SIGKILL. Checked:
  * c1 and c2 are announced as left in k on n1 and n2 (and c1 in k2)
    within LEAVE_BOUND (5 s) of the kill, exactly once (watched for a
    while after, and again after n3 is back);
  * the survivors' streams are one order; what n3's members had received
    before the kill is a prefix of it (nothing another node acknowledged
    is lost); each sender's messages in order without a gap, all of those
    of the survivors;
  * the names are free again: "c1" joins k on n1;
  * n3 restarted on the same config rejoins: "c2" joins on it, attaches,
    and chats with everyone in the one order;
  * then n2 is killed and restarted at once (before its liveness key can
    expire): b1 and b2 are still announced as left, once each, within the
    bound, and LIST_MEMBERS on every node names only the live members.
"""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import QUIET, TIMEOUT, check, run, show  # noqa: E402


def chat_all(members, n):
    for _ in range(n):
        for m in members:
            m.chat(payload(m.name, m.sent))


def wait_leaves(members, names, t0, what):
    """Every member sees every name's leave; within LEAVE_BOUND of t0."""
    pump(members, lambda: all(announced(n, False) in m.chats() for m in members for n in names),
         LEAVE_BOUND + 2 * TIMEOUT, what)
    took = time.monotonic() - t0
    check(took <= LEAVE_BOUND, "%s took %.1fs, the bound is %.1fs" % (what, took, LEAVE_BOUND))
    return took


def once(members, names, what):
    for m in members:
        for n in names:
            k = count_of(m.chats(), announced(n, False))
            check(k == 1, "%s: %s saw %s's leave %d times" % (what, m.label, n, k))


def list_members(c, ref):
    c.send(b"LIST_MEMBERS: %d\n" % ref)
    head = c.expect_frame()
    check(head.kind == "MEMBERS", "%s: expected MEMBERS, got %s" % (c.label, show(head.raw)))
    return sorted(c.expect_frame().fields["MEMBER"] for _ in range(int(head.fields["COUNT"])))


def main():
    with Cluster(limits={"history": 1000}) as cl:
        n1, n2, n3 = cl.nodes
        mem = []
        for node, name, attach in ((0, "a1", False), (1, "b1", False), (2, "c1", False),
                                   (0, "a2", True), (1, "b2", True), (2, "c2", True)):
            mem.append(cl.member(node, name, "k", attach=attach))
            pump(mem, lambda: all(announced(mem[-1].name) in m.chats() for m in mem),
                 5 * TIMEOUT, "%s's join announced" % mem[-1].label)
        a1, b1, c1, a2, b2, c2 = mem
        c1k2 = Member(n3, "c1", "k2", conn=c1.ctl, label="c1@n3/k2")
        b1k2 = Member(n2, "b1", "k2", conn=b1.ctl, label="b1@n2/k2")
        pump([c1k2, b1k2], lambda: announced("b1") in c1k2.chats(), 5 * TIMEOUT, "b1's join in k2")

        # Acknowledged traffic, then traffic in flight when n3 dies.
        chat_all(mem, 10)
        pump(mem, lambda: all(sum(1 for f in m.chats() if "#" in f[1]) >= 60 for m in mem),
             5 * TIMEOUT, "the first 60 messages everywhere")
        chat_all(mem, 20)
        pump(mem, lambda: any(f[0] in ("c1", "c2") and "#" in f[1] and int(f[1].split("#")[1]) >= 10
                              for f in a1.chats()),
             5 * TIMEOUT, "n1 relaying n3's second batch")
        n3.kill9()
        t0 = time.monotonic()
        dead = [c1, c2]
        alive = [a1, a2, b1, b2]
        for m in dead:
            m.read_available()
        chat_all([a1, b1], 5)
        took = wait_leaves(alive, ("c1", "c2"), t0, "n3's members announced as left in k")
        pump([b1k2], lambda: announced("c1", False) in b1k2.chats(), max(0.1, LEAVE_BOUND - took)
             + TIMEOUT, "c1's leave in k2")
        pump(alive, lambda: all(sum(1 for f in m.chats() if f[0] in ("a1", "b1") and "#" in f[1])
                                >= a1.sent + b1.sent for m in alive),
             5 * TIMEOUT, "every survivor's messages")
        settle(alive + [b1k2], 2.0)
        once(alive, ("c1", "c2"), "after the kill")
        once([b1k2], ("c1",), "after the kill (k2)")
        check_slices(a1, [a2, b1, b2], "survivors")
        check_slices(a1, dead, "n3's members before the kill", whole=False)
        check_senders(a1.chats(), [a1, a2, b1, b2], "after the kill")
        check_senders(a1.chats(), dead, "n3's senders", complete=False)

        # The names are free; n3 comes back and its members chat again.
        c1n = cl.member(0, "c1", "k")
        alive.append(c1n)
        pump(alive, lambda: all(m.chats()[-1] == announced("c1") for m in alive),
             5 * TIMEOUT, "the new c1's join (n1)")
        n3.restart()
        c2n = cl.member(2, "c2", "k", attach=True)
        alive.append(c2n)
        pump(alive, lambda: all(m.chats()[-1] == announced("c2") for m in alive),
             5 * TIMEOUT, "the new c2's join (restarted n3)")
        chat_all([c1n, c2n, b2], 5)
        pump(alive, lambda: all(sum(1 for f in m.chats() if f[0] == "c2" and "#" in f[1]) >= c2n.sent
                                for m in alive if m is not c2n) and len(c2n.chats()) >= 16,
             5 * TIMEOUT, "the restarted node's traffic")
        settle(alive, 1.0)
        check_slices(a1, alive[1:], "after n3's restart")
        once(alive[:4], ("c1", "c2"), "after n3's restart")

        # n2 killed and restarted at once: its members still leave, once.
        n2.kill9()
        t0 = time.monotonic()
        n2.restart()
        alive = [a1, a2, c1n, c2n]
        wait_leaves(alive, ("b1", "b2"), t0, "n2's members announced as left (quick restart)")
        settle(alive, max(QUIET, 2.0))
        once(alive, ("b1", "b2"), "after n2's quick restart")
        check_slices(a1, alive[1:], "after n2's quick restart")
        for node in cl.nodes:
            c = node.connect("lister@" + node.node_id)
            got = list_members(c, a1.ref)
            check(got == sorted(m.name for m in alive), "LIST_MEMBERS of k on %s: %s, expected %s"
                  % (node.node_id, got, sorted(m.name for m in alive)))
            c.close()


run(main)
