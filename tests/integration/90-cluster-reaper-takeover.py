#!/usr/bin/env python3
"""90-cluster-reaper-takeover: a reaper that dies midway (issue 15).

Reaping a dead node is claimed by one survivor for a while
(roomd:reaping:<node/inc>, docs/CLUSTER.md); a reaper that dies after its
claim must not leave the dead node's members in their rooms for long.
Room "t" has a member on each of n1 and n2 (a1 plain, b1 attached). n2
is killed with SIGKILL; at once, before its liveness key expires, the
state a reaper leaves when it dies right after claiming is written into
Redis: its claim (held by "ghost", expiring in 2 s) and the mark that n2's
incarnation was judged dead. Checked:
  * a1 still gets b1's leave, within the claim's 2 s plus LEAVE_BOUND of
    the kill (n1 takes the claim over once it expires), exactly once
    (watched for a while after);
  * the dead incarnation is gone from roomd:nodes and its registry entry
    from the room's members: LIST_MEMBERS on n1 names a1 alone.
"""
import os
import re
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import TIMEOUT, check, run, show  # noqa: E402

GHOST_CLAIM_S = 2


def incarnations(redis, node_id):
    raw = redis.command("SMEMBERS", "roomd:nodes")
    return sorted(set(re.findall(rb"%s/[0-9]+" % node_id.encode(), raw)))


def main():
    with Cluster(n=2) as cl:
        n1, n2 = cl.nodes
        a1 = cl.member(0, "a1", "t")
        b1 = cl.member(1, "b1", "t", attach=True)
        pump([a1, b1], lambda: announced("b1") in a1.chats(), 5 * TIMEOUT, "b1's join on n1")
        ref = a1.ref
        dead = incarnations(cl.redis, "n2")
        check(len(dead) == 1, "expected one incarnation of n2 in roomd:nodes, got %r" % dead)
        dead = dead[0].decode()

        n2.kill9()
        t0 = time.monotonic()
        cl.redis.command("SET", "roomd:reaping:" + dead, "ghost", "EX", str(GHOST_CLAIM_S))
        cl.redis.command("SET", "roomd:reaped:" + dead, "ghost", "EX", "86400")
        pump([a1], lambda: announced("b1", False) in a1.chats(),
             GHOST_CLAIM_S + LEAVE_BOUND + 2 * TIMEOUT, "b1's leave after the claim ran out")
        took = time.monotonic() - t0
        check(took <= GHOST_CLAIM_S + LEAVE_BOUND,
              "b1's leave took %.1fs, the bound is %.1fs" % (took, GHOST_CLAIM_S + LEAVE_BOUND))
        settle([a1], 3.0)
        k = count_of(a1.chats(), announced("b1", False))
        check(k == 1, "a1 saw b1's leave %d times" % k)
        check(incarnations(cl.redis, "n2") == [], "n2's dead incarnation is still in roomd:nodes")
        a1.ctl.send(b"LIST_MEMBERS: %d\n" % ref)
        head = a1.ctl.expect_frame()
        check(head.kind == "MEMBERS", "expected MEMBERS, got %s" % show(head.raw))
        names = sorted(a1.ctl.expect_frame().fields["MEMBER"] for _ in range(int(head.fields["COUNT"])))
        check(names == ["a1"], "LIST_MEMBERS on n1: %r, expected ['a1']" % names)
    print("ok: a dead reaper's claim ran out and n1 reaped n2 (b1 announced as left once, %.1fs)"
          % took)


if __name__ == "__main__":
    run(main)
