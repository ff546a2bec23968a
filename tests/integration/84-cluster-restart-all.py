#!/usr/bin/env python3
"""84-cluster-restart-all: a room's messages and history survive a restart
of every node, and of Redis too (issue 15).

Room "h" (created on n1) gets 10 messages from a member on each node, room
"h2" (created on n2) 5. Then:
  * every node stopped (SIGTERM, exit 0) and started again on its config:
    members join again (their names are free), each on another node than
    before; ROOM_REFs are the same; HISTORY on every node is exactly the
    messages of before, in order; the room goes on (3 more messages, in
    HISTORY after the old ones);
  * every node stopped, redis-server killed with SIGKILL and started on
    its AOF, every node started: the same again.
"""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import TIMEOUT, check, history_of, run  # noqa: E402

NAMES = ("x1", "x2", "x3")


def join_room(cl, room, shift, names=NAMES):
    """Members names[i] on node (i + shift) % 3, joined in turn, every join
    announced to the others; returns them."""
    mem = []
    for i, name in enumerate(names):
        mem.append(cl.member((i + shift) % 3, name, room))
        pump(mem, lambda: all(announced(name) in m.chats() for m in mem), 5 * TIMEOUT,
             "%s's join in %s" % (name, room))
    return mem


def talk(mem, n, tag):
    """n messages from each member in turn, each relayed before the next
    (one known order); returns them as (name, text)."""
    sent = []
    for k in range(n):
        for m in mem:
            text = "%s %s %d" % (tag, m.name, k)
            m.chat(text)
            sent.append((m.name, text))
            pump(mem, lambda: all(o.chats()[-1] == (m.name, text) for o in mem), 5 * TIMEOUT,
                 "%r relayed" % text)
    return sent


def leave_all(mem):
    for m in mem:
        m.ctl.close()


def check_history(mem, want, what):
    for m in mem:
        got = history_of(m.ctl, m.ref, m.jid, m.name)
        check(got == want, "%s: HISTORY of %s on %s:\n  got  %s\n  want %s"
              % (what, m.room, m.label, got, want))


def main():
    with Cluster(limits={"history": 100}) as cl:
        h = join_room(cl, "h", 0)
        said_h = talk(h, 10, "before")
        h2 = join_room(cl, "h2", 1, ("y1", "y2", "y3"))
        said_h2 = talk(h2, 5, "before")
        refs = {"h": h[0].ref, "h2": h2[0].ref}
        check_history(h, said_h, "before any restart")
        leave_all(h + h2)

        for how, shift in (("a restart of every node", 1), ("a restart of every node and Redis", 2)):
            for node in cl.nodes:
                node.stop()
            if "Redis" in how:
                cl.redis.kill9()
                cl.redis.restart()
            for node in cl.nodes:
                node.restart()
            h = join_room(cl, "h", shift)
            h2 = join_room(cl, "h2", shift + 1, ("y1", "y2", "y3"))
            got = {"h": h[0].ref, "h2": h2[0].ref}
            check(got == refs, "after %s ROOM_REFs are %s, before %s" % (how, got, refs))
            for m in h + h2:
                check(m.ref == refs[m.room], "after %s %s got ref %d for %s, the room's ref is %d"
                      % (how, m.label, m.ref, m.room, refs[m.room]))
            check_history(h, said_h, "after " + how)
            check_history(h2, said_h2, "after " + how)
            said_h += talk(h, 1, "after %d" % shift)
            check_history(h, said_h, "after %s and 3 new messages" % how)
            leave_all(h + h2)


run(main)
