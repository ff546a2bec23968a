#!/usr/bin/env python3
"""83-cluster-redis-restart: redis-server killed and restarted during
traffic (issue 15).

Room "r" has a plain and an attached member on each node. Checked:
  * before: 10 messages from each member, all delivered;
  * redis-server killed with SIGKILL while every member sends (40 each
    over a second, a thread): by the end each of those is relayed (to
    everyone, once) or
    was answered with ERROR_CODE 11, never neither (a refused one that
    Redis had taken after all may still be relayed: not counted a loss);
  * during the outage every CHAT, on every node, plain or attached, gets
    ERROR_CODE 11, and is relayed to nobody, ever;
  * redis-server restarted on the same port and AOF: every node serves
    again within RESUME_BOUND (a probe CHAT per member until one is
    relayed), then 10 more messages from each member are all delivered, a
    new member joins on n2 and sees them;
  * every member's stream is the one order from its join on, with no gap
    or duplicate (each sender's numbers strictly increasing; numbers only
    missing where the sender got error 11);
  * HISTORY, asked on every node, is exactly the room's messages in that
    order (announcements excluded), before and after the outage.
"""
import os
import sys
import threading
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import TIMEOUT, check, history_of, run  # noqa: E402

STORM, STORM_GAP = 40, 0.025   # numbered CHATs per member around the kill, and their pace


def chat_all(members, n):
    """n numbered messages from each (m.seq: the next number; m.sent
    counts every CHAT, the unnumbered outage and probe texts too)."""
    for _ in range(n):
        for m in members:
            m.chat(payload(m.name, m.seq))
            m.seq += 1


def relayed(stream, m):
    return [int(t.rsplit("#", 1)[1]) for n, t in stream if n == m.name and "#" in t]


def messages(stream):
    """The members' messages (what HISTORY keeps): no announcements."""
    return [f for f in stream if f != announced(f[0]) and f != announced(f[0], False)]


def settled(ref, members):
    """Every CHAT sent so far is relayed (at ref) or refused with 11."""
    return all(len(relayed(ref.chats(), m)) + len(m.errors()) >= m.sent for m in members)


def check_history(members, ref, what):
    want = messages(ref.chats())
    for m in members:
        got = history_of(m.ctl, m.ref, m.jid, m.name)
        check(got == want, "%s: HISTORY on %s has %d entries, the room relayed %d messages; first "
              "difference at %s" % (what, m.label, len(got), len(want),
                                     next((i for i in range(max(len(got), len(want)))
                                           if i >= len(got) or i >= len(want) or got[i] != want[i]),
                                          None)))


def main():
    with Cluster(limits={"history": 1000}) as cl:
        mem = []
        for node, attach in ((0, False), (1, False), (2, False), (0, True), (1, True), (2, True)):
            mem.append(cl.member(node, "%s%d" % ("a" if attach else "p", node + 1), "r", attach=attach))
            pump(mem, lambda: all(announced(mem[-1].name) in m.chats() for m in mem),
                 5 * TIMEOUT, "%s's join announced" % mem[-1].label)
        first = mem[0]
        for m in mem:
            m.seq = 0
            m.probe_errors = 0

        chat_all(mem, 10)
        pump(mem, lambda: all(len(relayed(m.chats(), o)) == 10 for m in mem for o in mem), 5 * TIMEOUT,
             "the first 60 messages")
        settle(mem, 0.2)
        check_history(mem[:3], first, "before the outage")

        # Killed during traffic: a thread sends numbers 10..10+STORM-1 from
        # every member for about a second, Redis dies a third of the way
        # in. What happens to those is checked at the end (each relayed or
        # refused).
        sender = threading.Thread(target=lambda: [(chat_all(mem, 1), time.sleep(STORM_GAP))
                                                  for _ in range(STORM)])
        sender.start()
        time.sleep(STORM * STORM_GAP / 3)
        cl.redis.kill9()
        sender.join()
        settle(mem, 0.5)

        # During the outage: error 11 for every CHAT, relayed to nobody.
        outage = []
        for m in mem:
            before = len(m.errors())
            text = "outage %s" % m.name
            outage.append((m.name, text))
            m.chat(text)
            pump(mem, lambda: len(m.errors()) > before, 2 * TIMEOUT,
                 "%s: ERROR_CODE 11 for a CHAT during the outage" % m.label)
            check(m.errors()[-1][0] == 11, "%s: during the outage a CHAT got %s, expected error 11"
                  % (m.label, m.errors()[-1]))

        # Redis back: every node serves again.
        cl.redis.restart()
        t0 = time.monotonic()
        for m in mem:
            k = 0
            while True:
                text = "probe %s %d" % (m.name, k)
                errs = len(m.errors())
                m.chat(text)
                pump(mem, lambda: (m.name, text) in first.chats() or len(m.errors()) > errs,
                     2 * TIMEOUT, "%s's probe relayed or refused" % m.label)
                if (m.name, text) in first.chats():
                    break
                check(m.errors()[-1][0] == 11, "%s: probe refused with %s" % (m.label, m.errors()[-1]))
                m.probe_errors += 1
                check(time.monotonic() - t0 < RESUME_BOUND,
                      "%s: still refusing CHAT %.0fs after Redis came back" % (m.label, RESUME_BOUND))
                time.sleep(0.2)
                k += 1

        chat_all(mem, 10)
        late = cl.member(1, "late", "r")
        mem.append(late)
        pump(mem, lambda: all(relayed(first.chats(), m)[-1:] == [m.seq - 1] for m in mem[:6])
             and all(m.chats()[-1] == first.chats()[-1] for m in mem),
             10 * TIMEOUT, "the messages after the outage")
        settle(mem, 0.5)
        check_slices(first, mem[1:], "after the outage")
        for m in mem[:6]:
            seqs = relayed(first.chats(), m)
            check(seqs == sorted(set(seqs)), "%s's numbers not strictly increasing: %s" % (m.label, seqs))
            missing = sorted(set(range(m.seq)) - set(seqs))
            refused = len(m.errors()) - 1 - m.probe_errors   # minus the outage CHAT
            check(len(missing) <= refused and all(10 <= n < 10 + STORM for n in missing),
                  "%s: numbers %s never relayed, and only %d of its numbered CHATs (10..%d were sent "
                  "around the kill) refused with error 11: lost" % (m.label, missing, refused, 9 + STORM))
            bad = [e for e in m.errors() if e[0] != 11]
            check(not bad, "%s: errors other than 11: %s" % (m.label, bad))
        for name, text in outage:
            for m in mem:
                check((name, text) not in m.chats(), "%s received %s's CHAT sent during the outage"
                      % (m.label, name))
        check_history(mem[:3], first, "after the outage")


run(main)
