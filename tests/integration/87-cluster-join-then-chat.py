#!/usr/bin/env python3
"""87-cluster-join-then-chat: a message sent after a joiner got JOINED
reaches it, whichever node either is on (issue 15).

A client that has its JOINED_CHATROOM reply is a member: what anyone says
in the room after that moment reaches it (single node: JOINED and the join
announcement are one step of the room). Lab harnesses and roombench start
their traffic once every JOINED (or ATTACHED) is in, without waiting for
announcements. Sixty times: a new member joins room "jc" on node i % 3
(raw JOIN, only JOINED read), and at once a standing member on another
node, or an attached one on the same node, sends a CHAT. Checked: the
joiner's first frames are its own join announcement and then that CHAT
(nothing of the room lost between the two, nothing before its
announcement); the other members get the join before the CHAT too.
"""
import os
import re
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import (JOINED_RE_TMPL, TIMEOUT, chat_frame, check, join_announce, join_req,  # noqa: E402
                      run, show)

ROUNDS = 60


def main():
    with Cluster() as cl:
        standing = [cl.member(i, "s%d" % (i + 1), "jc", attach=(i == 1)) for i in range(3)]
        pump(standing, lambda: all(m.chats()[-1] == announced("s3") for m in standing), 5 * TIMEOUT,
             "the standing members' joins")
        for k in range(ROUNDS):
            node = k % 3
            speaker = standing[(node + 1 + k % 2) % 3]
            name = "j%d" % k
            c = cl.nodes[node].connect(name)
            c.send(join_req("jc", name))
            f = c.expect_frame()
            m = re.match(JOINED_RE_TMPL % b"jc", f.raw)
            check(m, "%s: expected JOINED, got %s" % (name, show(f.raw)))
            ref = int(m.group(2))
            text = "after %s's JOINED" % name
            speaker.chat(text)
            c.expect(join_announce(ref, name), what="%s's own join announcement (on %s)"
                     % (name, cl.nodes[node].node_id))
            c.expect(chat_frame(ref, speaker.name, text),
                     what="%s's CHAT sent after %s (on %s) had its JOINED"
                     % (speaker.label, name, cl.nodes[node].node_id))
            pump(standing, lambda: all(m.chats()[-1] == (speaker.name, text) for m in standing),
                 5 * TIMEOUT, "the CHAT at the standing members")
            for m in standing:
                check(m.chats()[-2] == announced(name), "%s: %s's join is not just before the CHAT "
                      "sent after it: %s" % (m.label, name, m.chats()[-3:]))
            c.close()
            pump(standing, lambda: all(m.chats()[-1] == announced(name, False) for m in standing),
                 5 * TIMEOUT, "%s's leave" % name)


run(main)
