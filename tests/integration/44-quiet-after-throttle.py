#!/usr/bin/env python3
"""44-quiet-after-throttle: the quiet period (end_quiet_ms, SPEC §2.4) is
time with no byte arriving. A connection the daemon stopped reading (over its
rate, or paused) is not quiet: when it resumes and its buffer ends inside a
request, the rest is still in the socket. Regression test for a request cut
at a read boundary when the deadline was armed from the last read instead of
the resumption (found by the soak test).

A client pipelines thousands of LEAVE_CHATROOMs for ids that are not its own
(each answered with the LEFT_CHATROOM echo, SPEC §2.1), far over its rate, so
the daemon throttles and resumes it many times; every reply must be the exact
echo, in order.
"""
import random

import roomtest as rt
from roomtest import Daemon, FACTOR, left_reply, leave_req, fail

# At 100 requests a second, one 4 KiB read (about 60 LEAVEs) takes 0.6 s to
# work through, longer than end_quiet_ms: every read that ends inside a
# request is a chance for the bug.
RATE = 100
BATCHES = 2


def main():
    limits = {"rate": RATE, "burst": 10, "rate_per_ip": 1000000, "burst_per_ip": 1000000}
    with Daemon(limits=limits, rooms={"c00": {"ref": 1}}) as d:
        c = d.connect("probe")
        rng = random.Random(1)
        n = 0
        for _ in range(BATCHES):
            batch = [(1, rng.randrange(1, 2 ** 31), "h%d" % rng.randrange(1, 10 ** rng.randrange(2, 9)))
                     for _ in range(rng.randrange(150, 300))]
            c.send(b"".join(leave_req(*x) for x in batch))
            for ref, jid, name in batch:
                f = c.expect_frame()
                if f.raw != left_reply(ref, jid):
                    fail("after %d exact echoes: expected %r, got %r (a request cut at a read "
                         "boundary after a throttle)" % (n, left_reply(ref, jid), f.raw))
                n += 1
        cut = [l for l in d.stderr().splitlines() if "ended by" in l and "quiet" in l]
        print("quiet after throttle: %d pipelined LEAVEs over the rate, %d exact echoes, "
              "%d requests ended by the quiet period" % (n, n, len(cut)))
        d.assert_alive()


rt.run(main)
