#!/usr/bin/env python3
"""91-cluster-foreign-key: a room's stream key overwritten in Redis by
something else than roomd (issue 15).

One node, rooms "good" and "bad", a member in each. The key of "bad"'s
stream (roomd:{REF}:s) is overwritten with a string: an XREAD naming it
is refused by Redis as a whole, and so is an append to it. "bad"'s
member chats at once (its message meets the foreign key on the way in,
or is refused if the node found the key first). Checked:
  * "good" relays on: its member's 5 messages come back in order (the
    node sets "bad" aside instead of taking the whole shard, and the node
    as a whole, for down), and a new member joins "good";
  * the node logs which room's key it is;
  * once the key is removed, the node logs that it takes "bad" back
    (within its back-off, 2 s at most; a message meanwhile is refused),
    and "bad" relays again: its member's next message comes back, and its first one at most once (nothing is lost
    or doubled on "good").
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
        bad.chat("b#early")
        time.sleep(0.3)
        for i in range(5):
            good.chat("g#%d" % i)
        want = ["g#%d" % i for i in range(5)]
        pump([good], lambda: texts(good, "g#") == want, 5 * TIMEOUT,
             "good's 5 messages with bad's key foreign")
        late = cl.member(0, "g2", "good")
        pump([good], lambda: announced("g2") in good.chats(), 5 * TIMEOUT, "g2's join in good")
        check(("is not a stream" in node.stderr() or "WRONGTYPE" in node.stderr())
              and key in node.stderr(),
              "the node did not log bad's key %s as not a stream:\n%s" % (key, node.stderr()[-2000:]))

        cl.redis.command("DEL", key)
        deadline = time.monotonic() + 5 * TIMEOUT
        while "is a stream again" not in node.stderr():
            check(time.monotonic() < deadline, "bad was not taken back within %.0fs" % (5 * TIMEOUT))
            time.sleep(0.05)
        bad.chat("b#0")
        pump([bad], lambda: "b#0" in texts(bad, "b#"), 5 * TIMEOUT, "bad relaying again")
        good.chat("g#5")
        pump([good, late], lambda: texts(good, "g#") == want + ["g#5"] and "g#5" in texts(late, "g#"),
             5 * TIMEOUT, "good's 6th message")
        settle([good, bad], 0.5)
        check(texts(bad, "b#").count("b#early") <= 1 and texts(bad, "b#").count("b#0") == 1,
              "bad's messages: %r" % texts(bad, "b#"))
        check(texts(good, "g#") == want + ["g#5"], "good's messages: %r" % texts(good, "g#"))
    print("ok: a foreign stream key set aside one room, the others relayed on")


if __name__ == "__main__":
    run(main)
