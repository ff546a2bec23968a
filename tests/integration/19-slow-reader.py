#!/usr/bin/env python3
"""19-slow-reader: no blocking write (SPEC §4, §2.1 "no request of any client
ever affects another client's service").

A member of room1 stops reading (tiny receive buffer). Another member floods
room1 with 3000-byte messages while it and an observer keep reading: every
batch is relayed to both of them promptly (bounded wait per batch), and the
stalled member is cut off once its bounded send queue (sendq_bytes = 65536)
fills: its connection is closed (its max_clients slot is free again, even
while it still does not read), and its departure is announced at most once.
The daemon stays healthy and serves new clients afterwards, and its RSS
while it holds the stalled member stays within RSS_BOUND of what it was
before the flood (release builds; sanitizer builds keep freed memory in
quarantine, so there it is only printed)."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

MSG = 3000
BATCH = 20
MAX_BYTES = 24 * 1024 * 1024   # give up (fail) if not cut off after this much
# A stalled member costs at most its send queue (64 KiB here) plus the read
# buffers and allocator slack: 8 MiB is far above that and far below what
# an unbounded queue would reach in this test (24 MiB of traffic).
RSS_BOUND = 8 * 1024 * 1024


def rss(d):
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    limits = {"sendq_bytes": 65536, "rate": 1000000, "burst": 1000000, "max_clients": 4}
    with Daemon(limits=limits) as d:
        slow = d.connect("slow", rcvbuf=4096)
        ref, _, _, _ = slow.join("room1", "slow")
        snd = d.connect("sender")
        _, sid, _, _ = snd.join("room1", "sender")
        obs = d.connect("observer")
        obs.join("room1", "observer")
        snd.expect(join_announce(ref, "observer"))
        # From here on slow never reads.
        bye = leave_announce(ref, "slow")
        byes = {"sender": 0, "observer": 0}
        rss_before = rss_peak = rss(d)
        sent = 0
        seq = 0
        t0 = time.monotonic()
        while sent < MAX_BYTES:
            texts = []
            for _ in range(BATCH):
                text = ("%08d " % seq) + "z" * (MSG - 9)
                texts.append(text)
                snd.chat(ref, sid, "sender", text)
                seq += 1
            sent += BATCH * MSG
            rss_peak = max(rss_peak, rss(d))
            for c in (snd, obs):
                for text in texts:
                    want = chat_frame(ref, "sender", text)
                    f = c.expect_frame()
                    if f.raw == bye:
                        byes[c.label] += 1
                        f = c.expect_frame()
                    check(f.raw == want, "%s: wrong relay (a stalled member must not disturb others)\n"
                          "  expected: %s\n  got:      %s" % (c.label, show(want, 200), show(f.raw, 200)))
            # Cut off yet? Its leave announcement says so (without one, flood on
            # up to MAX_BYTES, then look at the socket).
            if byes["sender"] and byes["observer"]:
                break
            if time.monotonic() - t0 > TEST_BOUND / 2:
                break
        # Cut off means closed: slow's slot (max_clients = 4) comes free while it
        # still does not read (allow the daemon a 2 s flush grace, plus margin).
        n1 = d.connect("newcomer1")
        n1.ping()
        deadline = time.monotonic() + 2 + 2 * TIMEOUT
        while True:
            n2 = d.connect("newcomer2")
            n2.send(helo_req("slot"))
            f = n2.expect_frame()
            if f.kind == "HELO":
                check(f.raw == helo_reply("slot", d.port), "newcomer2: bad HELO reply %s" % show(f.raw))
                break
            check(time.monotonic() < deadline,
                  "the cut-off member still holds its max_clients slot %.0fs after its leave was"
                  " announced (a 5th client gets %s): a client that stops reading must be cut off"
                  % (2 + 2 * TIMEOUT, show(f.raw)))
            n2.close()
            time.sleep(0.2)
        n2.close()
        # Drain what the kernel holds for slow: the server must have closed it.
        deadline = time.monotonic() + TIMEOUT
        while not slow.eof and time.monotonic() < deadline:
            slow.collect(0.05)
        check(slow.eof, "a member that never reads was not cut off after %d bytes of room traffic"
              " (sendq_bytes = 65536)" % sent)
        # The announcement, if any, at most once per member; nothing else.
        for c in (snd, obs):
            rest = c.collect(QUIET)
            byes[c.label] += rest.count(bye)
            check(rest.replace(bye, b"") == b"", "%s: unexpected bytes: %s" % (c.label, show(rest)))
            check(byes[c.label] <= 1, "%s: the cut-off member's leave announced %d times"
                  % (c.label, byes[c.label]))
        d.assert_alive()
        n1.join("room1", "newcomer1")
        snd.expect(join_announce(ref, "newcomer1"))
        n1.ping()
        grew = rss_peak - rss_before
        print("cut off after %d bytes of room traffic, %.1fs; daemon RSS %d KiB before, peak"
              " %d KiB (+%d KiB, bound %d KiB)" % (sent, time.monotonic() - t0, rss_before // 1024,
                                                   rss_peak // 1024, grew // 1024, RSS_BOUND // 1024))
        if FACTOR == 1:
            check(grew <= RSS_BOUND, "daemon RSS grew by %d KiB while a member stalled (bound %d KiB)"
                  % (grew // 1024, RSS_BOUND // 1024))


run(main)
