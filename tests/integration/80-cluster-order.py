#!/usr/bin/env python3
"""80-cluster-order: one room over three nodes has one order (issue 15).

Redis and three nodes n1..n3. Room "order" has two members on each node,
one plain (traffic on the control connection), one attached to its node's
room port; they join one after another, each join seen by everyone
already there. Then all six send at once, in bursts (40 messages each,
payload "NAME#n"), and a seventh member joins on n2 mid-traffic and
attaches at once. Checked exactly:
  * every member's stream of CHATs (announcements included) is the same
    list as the first joiner's, from its own join announcement on (the
    late joiner across its control -> room connection hand-off);
  * each sender's messages arrive in order 0..39, none lost, none twice;
  * a LEAVE on n3 is then the last frame of every stream, once;
  * a3 and a new plain member q3 (n3) leave while n1 and n2 chat: each leaver's
    stream is exactly the room's order from its join to its own leave
    (nothing missed between its LEAVE and its leave's place in the order,
    nothing after), the others' streams go on as one order.
"""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import TIMEOUT, check, fail, leave_announce, leave_req, left_reply, run  # noqa: E402

PER_SENDER = 40
BURST = 5


def main():
    with Cluster(limits={"history": 1000}) as cl:
        members = []
        for i, attach in ((0, False), (1, False), (2, False), (0, True), (1, True), (2, True)):
            m = cl.member(i, "%s%d" % ("a" if attach else "p", i + 1), "order", attach=attach)
            if members:
                check(m.ref == members[0].ref, "ROOM_REF of 'order' on %s is %d, on %s %d"
                      % (m.label, m.ref, members[0].label, members[0].ref))
            members.append(m)
            pump(members, lambda: all(announced(m.name) in x.chats() for x in members),
                 5 * TIMEOUT, "%s's join announced to every member" % m.label)
        first = members[0]

        late = None
        for k in range(0, PER_SENDER, BURST):
            for m in members:
                for _ in range(BURST):
                    m.chat(payload(m.name, m.sent))
            if k == PER_SENDER // 2:
                late = cl.member(1, "late2", "order", attach=True)
                members.append(late)
        senders = members[:6]
        total = len(senders) * PER_SENDER
        pump(members, lambda: (sum(1 for f in first.chats() if "#" in f[1]) >= total
                               and all(m.chats()[-1] == first.chats()[-1] for m in members)),
             10 * TIMEOUT, "all %d messages at every member" % total)
        settle(members, 0.3)
        check_slices(first, members[1:], "order")
        check_senders(first.chats(), senders, "order")
        for m in members:
            check(not m.errors(), "%s got errors: %s" % (m.label, m.errors()))

        # A leave on n3: the last frame of every stream, once.
        leaver = members[2]
        leaver.ctl.send(leave_req(leaver.ref, leaver.jid, leaver.name))
        leaver.ctl.expect(left_reply(leaver.ref, leaver.jid), what="LEFT_CHATROOM")
        stayers = [m for m in members if m is not leaver]
        pump(stayers, lambda: all(m.chats()[-1] == announced(leaver.name, False) for m in stayers),
             5 * TIMEOUT, "%s's leave at every member" % leaver.label)
        leaver.ctl.expect(leave_announce(leaver.ref, leaver.name), what="own leave announcement")
        settle(stayers, 0.5)
        check_slices(first, stayers[1:], "order after the leave")
        for m in stayers:
            check(count_of(m.chats(), announced(leaver.name, False)) == 1,
                  "%s: the leave of %s arrived %d times" % (m.label, leaver.name,
                                                           count_of(m.chats(), announced(leaver.name, False))))

        # Leaves while n1 and n2 chat: a leaver gets the room's frames up to
        # its own leave announcement, all of them, and nothing after it.
        talkers = [m for m in stayers if m.node is not leaver.node]
        q3 = cl.member(2, "q3", "order")
        pump(stayers + [q3], lambda: all(m.chats()[-1] == announced("q3") for m in stayers),
             5 * TIMEOUT, "q3's join")
        stayers.append(q3)
        leavers = [m for m in stayers if m.node is leaver.node]     # a3 (attached), q3 (plain)
        for k in range(4):
            for m in talkers:
                for _ in range(BURST):
                    m.chat(payload(m.name, m.sent))
            if k == 1:
                for m in leavers:
                    m.ctl.send(leave_req(m.ref, m.jid, m.name))
        stayers = [m for m in stayers if m not in leavers]
        pump(stayers + leavers, lambda: all(announced(x.name, False) in m.chats()
                                            for m in stayers for x in leavers)
             and all(m.own_leave for m in leavers)
             and all(m.chats()[-1] == first.chats()[-1] for m in stayers)
             and all(first.chats().count(f) == 1 for f in [(t.name, payload(t.name, t.sent - 1))
                                                             for t in talkers]),
             10 * TIMEOUT, "the leaves and the talkers' messages")
        settle(stayers + leavers, 0.5)
        check_slices(first, stayers[1:], "order after the leaves under traffic")
        check_senders(first.chats(), senders, "order after the leaves under traffic")
        rs = first.chats()
        for m in leavers:
            end = rs.index(announced(m.name, False))
            want = rs[rs.index(announced(m.name)):end + 1]
            s = m.chats()
            if s != want:
                k = next(i for i in range(max(len(s), len(want)))
                         if i >= len(s) or i >= len(want) or s[i] != want[i])
                fail("%s left with LEAVE while others chatted: it got %d CHATs, the room ordered %d "
                     "from its join to its leave; first difference at %d:\n  room: %s\n  it:   %s"
                     % (m.label, len(s), len(want), k, want[max(0, k - 2):k + 4], s[max(0, k - 2):k + 4]))
            check([e for e in m.events if e[0] == "left"] == [("left", m.ref, str(m.jid))],
                  "%s: LEFT_CHATROOM replies: %s" % (m.label, [e for e in m.events if e[0] == "left"]))


run(main)
