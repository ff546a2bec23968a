#!/usr/bin/env python3
"""89-cluster-redis-refuses: Redis up but refusing writes (issue 15).

A Redis that answers appends with an error (out of memory under
maxmemory-policy noeviction here; a read-only replica after a failover or
failing persistence look the same) cannot take messages: it is treated as
an outage, not as a message to drop. Room "q" has a member on each node.
Checked:
  * before: 5 messages from each member, all delivered;
  * Redis made to refuse writes (CONFIG SET maxmemory 1): while it
    refuses, a CHAT gets ERROR_CODE 11 on every node (the first CHAT after
    the change may instead be held and relayed later: never dropped);
  * Redis takes writes again (maxmemory 0): within RESUME_BOUND every node
    relays again; then 5 more messages from each member;
  * every member's stream is the room's one order, each sender's numbers
    increasing, every number relayed exactly once unless its sender got
    error 11 for it: nothing lost, nothing doubled.
The refusal lasts under 2 s, within the nodes' liveness TTL (their
heartbeats are refused too), so no node is judged dead meanwhile.
"""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import TIMEOUT, check, run  # noqa: E402

RESUME_BOUND = 8.0


def numbers(stream, name):
    return [int(t.rsplit("#", 1)[1]) for n, t in stream if n == name and "#" in t]


def main():
    with Cluster() as cl:
        mem = []
        for i in range(3):
            mem.append(cl.member(i, "q%d" % (i + 1), "q"))
            pump(mem, lambda: all(announced(mem[-1].name) in m.chats() for m in mem),
                 5 * TIMEOUT, "%s's join announced" % mem[-1].label)
        for m in mem:
            m.seq = 0
            m.refused = set()

        def send_round():
            for m in mem:
                errs = len(m.errors())
                m.chat(payload(m.name, m.seq))
                m.pending = (m.seq, errs)
                m.seq += 1

        for _ in range(5):
            send_round()
        pump(mem, lambda: all(len(numbers(m.chats(), o.name)) == 5 for m in mem for o in mem),
             5 * TIMEOUT, "the first 15 messages")

        cl.redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
        cl.redis.command("CONFIG", "SET", "maxmemory", "1")
        t_refuse = time.monotonic()
        # Until every node has said 11 once: the first CHAT may be held.
        while not all(m.errors() for m in mem):
            check(time.monotonic() - t_refuse < 1.5,
                  "no ERROR_CODE 11 on every node within 1.5 s of Redis refusing writes: %s"
                  % [(m.label, m.errors()) for m in mem])
            send_round()
            pump(mem, lambda: True, 0.1, "a moment")
            settle(mem, 0.1)
        for m in mem:
            check(all(code == 11 for code, _ in m.errors()),
                  "%s: a refused CHAT got %s, expected error 11" % (m.label, m.errors()))
        cl.redis.command("CONFIG", "SET", "maxmemory", "0")

        t0 = time.monotonic()
        for m in mem:
            while True:
                errs = len(m.errors())
                n = m.seq
                m.chat(payload(m.name, n))
                m.seq += 1
                pump(mem, lambda: n in numbers(mem[0].chats(), m.name) or len(m.errors()) > errs,
                     2 * TIMEOUT, "%s's probe relayed or refused" % m.label)
                if n in numbers(mem[0].chats(), m.name):
                    break
                check(time.monotonic() - t0 < RESUME_BOUND,
                      "%s: still refused %.0fs after Redis took writes again" % (m.label, RESUME_BOUND))
                time.sleep(0.2)
        for _ in range(5):
            send_round()
        pump(mem, lambda: all(numbers(o.chats(), m.name)[-1:] == [m.seq - 1]
                              for m in mem for o in mem),
             10 * TIMEOUT, "the messages after Redis took writes again")
        settle(mem, 0.5)

        ref = mem[0]
        check_slices(ref, mem[1:], "after the refusal")
        for m in mem:
            got = numbers(ref.chats(), m.name)
            check(got == sorted(set(got)), "%s's messages doubled or out of order: %s" % (m.label, got))
            missing = set(range(m.seq)) - set(got)
            check(len(missing) <= len(m.errors()),
                  "%s: %d messages neither relayed nor refused (%d refused): %s"
                  % (m.label, len(missing) - len(m.errors()), len(m.errors()), sorted(missing)))
        print("refusal: %s errors 11; every message relayed once or refused"
              % [len(m.errors()) for m in mem])


if __name__ == "__main__":
    run(main)
