#!/usr/bin/env python3
"""91-cluster-foreign-key: a room's stream key overwritten in Redis by
something else than roomd (issue 15).

One node, rooms "good" and "bad", a member in each. The key of "bad"'s
stream (roomd:{REF}:s) is overwritten with a string: an XREAD naming it
is refused by Redis as a whole. Checked:
  * "good" relays on: its member's 5 messages come back in order (the
    node finds the foreign key and reads its shard's other streams);
  * the node logs which room's key it is;
  * once the key is removed, "bad" relays again: its member's next
    message comes back (a join waits meanwhile; nothing is lost on
    "good").
"""
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import TIMEOUT, check, run  # noqa: E402


def texts(m, prefix):
    return [t for s, t in m.chats() if t.startswith(prefix)]


def main():
    with Cluster(n=1) as cl:
        node = cl.nodes[0]
        good = cl.member(0, "g1", "good")
        bad = cl.member(0, "b1", "bad")
        key = "roomd:{%d}:s" % bad.ref
        cl.redis.command("DEL", key)
        cl.redis.command("SET", key, "not a stream")
        for i in range(5):
            good.chat("g#%d" % i)
        want = ["g#%d" % i for i in range(5)]
        pump([good], lambda: texts(good, "g#") == want, 5 * TIMEOUT,
             "good's 5 messages with bad's key foreign")
        check("is not a stream" in node.stderr() and key in node.stderr(),
              "the node did not log bad's key %s as not a stream:\n%s" % (key, node.stderr()[-2000:]))

        cl.redis.command("DEL", key)
        time.sleep(0.2)
        bad.chat("b#0")
        pump([bad], lambda: "b#0" in texts(bad, "b#"), 5 * TIMEOUT, "bad relaying again")
        good.chat("g#5")
        pump([good], lambda: texts(good, "g#") == want + ["g#5"], 5 * TIMEOUT, "good's 6th message")
    print("ok: a foreign stream key set aside one room, the others relayed on")


if __name__ == "__main__":
    run(main)
